"""Uncertainty for classifier comparisons: bootstrap intervals and McNemar's test."""

import numpy as np
from scipy.stats import binomtest

from ._checks import is_whole

BAD_CONFIDENCE = "confidence must be in (0, 1); got {value!r}."
BAD_N_BOOT = "n_boot must be a positive integer; got {value!r}."
LENGTHS_DIFFER = "{what} have different lengths: {lengths}."
NO_ARRAYS = "bootstrap_ci() needs at least one array to resample, and at least one sample in it."
BAD_P_VALUES = "p-values must be numbers in [0, 1]; got {bad}."


def bootstrap_ci(metric, *arrays, n_boot=1000, confidence=0.95, random_state=0, strata=None):
    """Point estimate and percentile bootstrap interval of ``metric(*arrays)``.

    Rows are resampled with replacement, the same rows for every array, so the
    interval of e.g. accuracy reflects the test set's finite size.

    Parameters
    ----------
    metric : callable
        ``metric(*resampled_arrays) -> float``.
    *arrays : array-like of equal length
        Typically ``y_true, y_pred`` (or ``y_true, y_proba``).
    n_boot : int, default=1000
        Bootstrap resamples.
    confidence : float, default=0.95
        Coverage of the interval.
    random_state : int, default=0
        Seed of the resampling.
    strata : array-like of shape (n,) or None, default=None
        Resample within each stratum (e.g. each true class), so that every
        resample keeps each stratum's size; None: over all rows.

    Returns
    -------
    dict
        ``{"value": float, "low": float, "high": float}``.

    Examples
    --------
    >>> from sklearn.metrics import accuracy_score
    >>> ci = bootstrap_ci(accuracy_score, [0, 1, 1, 0], [0, 1, 0, 0], n_boot=200)
    >>> ci["value"]
    0.75
    """
    if not 0 < confidence < 1:
        raise ValueError(BAD_CONFIDENCE.format(value=confidence))
    if not is_whole(n_boot):
        raise ValueError(BAD_N_BOOT.format(value=n_boot))
    arrays = [np.asarray(a) for a in arrays]
    if not arrays or not len(arrays[0]):
        raise ValueError(NO_ARRAYS)
    lengths = {len(a) for a in arrays}
    if len(lengths) != 1:
        raise ValueError(LENGTHS_DIFFER.format(what="arrays", lengths=[len(a) for a in arrays]))
    n = lengths.pop()
    if strata is not None:
        strata = np.asarray(strata)
        if len(strata) != n:
            raise ValueError(LENGTHS_DIFFER.format(what="strata and arrays",
                                                   lengths=[len(strata), n]))
        groups = [np.flatnonzero(strata == s) for s in np.unique(strata)]
    rng = np.random.default_rng(random_state)
    values = np.empty(n_boot)
    for b in range(n_boot):
        if strata is None:
            idx = rng.integers(0, n, n)
        else:
            idx = np.concatenate([g[rng.integers(0, len(g), len(g))] for g in groups])
        values[b] = metric(*(a[idx] for a in arrays))
    alpha = (1 - confidence) / 2
    low, high = np.nanquantile(values, [alpha, 1 - alpha])
    return {"value": float(metric(*arrays)), "low": float(low), "high": float(high)}


def mcnemar(y_true, pred_a, pred_b):
    """Exact McNemar test: do two classifiers err on the same test faces?

    Counts the faces only model A gets right (``b``) and only model B gets
    right (``c``); under the null hypothesis of equal accuracy each discordant
    face is a fair coin, so the two-sided p-value is a binomial test of ``b``
    in ``b + c`` trials at 0.5.

    Parameters
    ----------
    y_true, pred_a, pred_b : array-like of shape (n,)

    Returns
    -------
    dict
        ``{"only_a": b, "only_b": c, "p_value": float}`` (p = 1 when the two
        models never disagree on correctness).
    """
    y_true, pred_a, pred_b = (np.asarray(a) for a in (y_true, pred_a, pred_b))
    if not len(y_true) == len(pred_a) == len(pred_b):
        raise ValueError(LENGTHS_DIFFER.format(
            what="y_true, pred_a and pred_b",
            lengths=[len(y_true), len(pred_a), len(pred_b)]))
    right_a, right_b = pred_a == y_true, pred_b == y_true
    b = int(np.sum(right_a & ~right_b))
    c = int(np.sum(~right_a & right_b))
    p = 1.0 if b + c == 0 else float(binomtest(b, b + c, 0.5).pvalue)
    return {"only_a": b, "only_b": c, "p_value": p}


def holm(p_values):
    """Holm's step-down adjustment of ``p_values`` for testing them together.

    A hypothesis is rejected at level ``alpha`` when its adjusted p-value is
    below ``alpha``; the chance of any false rejection among the family stays
    at most ``alpha``.

    Parameters
    ----------
    p_values : array-like of shape (m,)

    Returns
    -------
    list of float
        The adjusted p-values, in the order given, each at most 1.

    Examples
    --------
    >>> [round(p, 3) for p in holm([0.01, 0.04, 0.03])]
    [0.03, 0.06, 0.06]
    """
    p = np.asarray(p_values, dtype=float)
    bad = p[~((p >= 0) & (p <= 1))]  # NaN included: it would have become 1.0 silently
    if bad.size:
        raise ValueError(BAD_P_VALUES.format(bad=bad.tolist()))
    m = len(p)
    adjusted = np.empty(m)
    running = 0.0
    for rank, i in enumerate(np.argsort(p, kind="stable")):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adjusted[i] = running
    return adjusted.tolist()
