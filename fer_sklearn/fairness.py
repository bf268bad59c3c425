"""Bias audit of a classifier's predictions across groups of people.

:func:`audit_fairness` builds one fairlearn :class:`~fairlearn.metrics.MetricFrame`
per sensitive feature (and per intersection of features, e.g. ``tone x age``)
with accuracy, balanced accuracy, macro-F1, per-class recall (true-positive
rate), per-class selection rate and per-class false-positive rate, and adds
what a MetricFrame alone does not give:

- **Uncertainty.** A seeded bootstrap that resamples rows within each group
  (group sizes stay fixed) gives percentile intervals for every group metric
  (never narrower than the Wilson score interval over the metric's rows, log
  loss aside), and standard errors for every gap (the bootstrap's, never,
  log loss aside, below the contrast's under the null of every group
  predicted as the whole test set is: a two-proportion z-test's for rates,
  which keeps a perfect tiny group from looking certain, and a simulated one
  for balanced accuracy and macro-F1, whose per-class terms can rest on a
  face or two of a rare class in a small group).
- **Gaps that can be read as claims.** fairlearn's ``difference()`` and
  ``ratio()``, both ``between_groups`` and ``to_overall``, are extremes over
  groups: a largest-minus-smallest difference is positive even when no group
  differs, so its plain bootstrap interval always excludes 0. Each gap is
  therefore reported with the interval of the contrast between the groups
  that produce it (e.g. ``dark`` minus ``light``, or ``dark`` minus the whole
  test set, which contains ``dark``), widened by Bonferroni over every
  contrast it could have been picked from (group pairs, or groups for a
  distance to overall, and classes for per-class metrics). A gap is
  *significant* when that interval excludes 0: a claim that holds at the
  stated level even though the groups were chosen as the most extreme. A
  ratio carries the interval of its difference divided by the larger of its
  two values (the delta method at ratio 1), so it is significant, its
  interval excluding 1, exactly when that difference is.
- **Small and unknown groups.** A group with fewer than ``min_group_size``
  rows is shown with its count and interval but marked too small to judge and
  left out of gaps and worst groups; missing values form an explicit
  ``unknown`` group (or raise, with ``missing="error"``).
- **Representation.** Given the training features and labels, each group's
  share of the training set and of each class is reported beside its metrics,
  so under-representation can be told apart from model error.
- **Multiclass parity.** fairlearn's ``demographic_parity_difference`` and
  ``equalized_odds_difference`` are binary; they are applied one-vs-rest per
  class (class *c* against all others), with the maximum over classes.

:func:`group_balanced_indices` draws a group-balanced resample of a training
set, a mitigation that needs no change to the estimator.
"""

import numbers

import numpy as np
import pandas as pd
from fairlearn.metrics import (
    MetricFrame,
    demographic_parity_difference,
    equalized_odds_difference,
    false_positive_rate_difference,
    true_positive_rate_difference,
)
from scipy.stats import norm

from ._checks import is_whole

__all__ = [
    "FairnessAudit",
    "HEADLINE_METRICS",
    "UNKNOWN",
    "audit_fairness",
    "check_sensitive_features",
    "group_balanced_indices",
    "sensitive_groups",
    "significant_gaps",
]

# Label of the group of rows whose sensitive value is missing.
UNKNOWN = "unknown"
# "tone x age" names an intersection; "dark & young" one of its groups.
INTERSECTION_SEP = " x "
GROUP_SEP = " & "

# Group statuses.
OK, TOO_SMALL, MISSING, ABSENT = "ok", "too small", "unknown", "absent from test"

HEADLINE_METRICS = ("accuracy", "balanced_accuracy", "macro_f1", "log_loss")
PER_CLASS_METRICS = ("recall", "selection_rate", "fpr")
# Values a contrast of each metric can take (differences of rates lie in [-1, 1]).
_BOUNDS = {"accuracy": (-1.0, 1.0), "balanced_accuracy": (-1.0, 1.0), "macro_f1": (-1.0, 1.0),
           "log_loss": (None, None), "recall": (-1.0, 1.0), "selection_rate": (-1.0, 1.0),
           "fpr": (-1.0, 1.0)}
# +1: higher is better, -1: lower is better, 0: neither (selection rate).
_DIRECTION = {"accuracy": 1, "balanced_accuracy": 1, "macro_f1": 1, "log_loss": -1,
              "recall": 1, "selection_rate": 0, "fpr": -1}

NOT_A_TABLE = (
    "sensitive_features must be a pandas DataFrame (one column per feature), a named "
    "Series or a dict of arrays; got {type}."
)
NO_FEATURES = "sensitive_features has no columns: pass at least one sensitive feature."
UNNAMED_SERIES = (
    "A Series of sensitive values needs a name, e.g. frame['tone'] or s.rename('tone')."
)
WRONG_LENGTH = (
    "Sensitive feature {column!r} has {n} values but y_true has {n_true}: pass one value "
    "per row of y_true, in the same order (e.g. the test split's metadata frame)."
)
ALL_MISSING = (
    "Sensitive feature {column!r} is missing (NaN/None/empty) in every row: drop it from "
    "the audit, or fix the join that attached it."
)
SINGLE_GROUP = (
    "Sensitive feature {column!r} has a single group ({group!r}) apart from missing "
    "values: there is nothing to compare. Drop it from the audit, or check how it was "
    "attached."
)
MISSING_VALUES = (
    "Sensitive feature {column!r} is missing in {count} of {n} rows (first: row {row}); "
    "fill them, e.g. frame[{column!r}].fillna('unknown'), or pass missing='unknown' to "
    "audit them as an explicit 'unknown' group."
)
CONTINUOUS = (
    "Sensitive feature {column!r} holds non-integer numbers (e.g. {example!r}); bin it "
    "into groups first, e.g. pandas.cut(frame[{column!r}], bins=[0, 20, 40, 60, 120])"
    ".astype(str)."
)
NOT_SCALAR = (
    "Sensitive feature {column!r} holds a {type} (row {row}); group values must be "
    "strings, integers, booleans or categories: convert the column, e.g. "
    "frame[{column!r}].astype(str)."
)
AMBIGUOUS = (
    "Sensitive feature {column!r} has distinct values that read the same as text "
    "({values}); convert the column to one type first, e.g. frame[{column!r}].astype(str)."
)
BAD_INTERSECTION = (
    "Intersection {intersection!r} must name two or more distinct sensitive features, "
    "e.g. ('tone', 'age'); valid features: {valid}."
)
UNKNOWN_INTERSECTION = (
    "Intersection {intersection!r} names {missing!r}, which is not a sensitive feature; "
    "valid features: {valid}."
)
LENGTHS_DIFFER = "{what} have different lengths: {lengths}."
UNKNOWN_LABELS = (
    "{what} holds labels not in labels: {values}; pass labels=... listing every class."
)
BAD_PROBA = (
    "y_proba must have shape ({n}, {k}): one row per row of y_true, one column per "
    "class in labels order; got {shape}."
)
MISSING_TRAIN_COLUMN = (
    "train_features has no column {column!r}; pass the training rows' sensitive "
    "features with the same columns as sensitive_features."
)
NEEDS_Y_TRAIN = "train_features and y_train go together: pass both or neither."
BAD_MIN_GROUP_SIZE = "min_group_size must be a positive integer; got {value!r}."
BAD_N_BOOT = "n_boot must be an integer >= 2; got {value!r}."
BAD_CONFIDENCE = "confidence must be in (0, 1); got {value!r}."
BAD_MISSING = "missing must be 'unknown' or 'error'; got {value!r}."
UNKNOWN_FEATURE = "No sensitive feature {feature!r} in this audit; features: {valid}."
NO_COLUMN = "No column {column!r} among the sensitive features; columns: {valid}."


# --------------------------------------------------------------------------- #
# Group labels
# --------------------------------------------------------------------------- #
def _text_of(value):
    """The group label of one non-missing value, or an error kind."""
    if isinstance(value, str):
        return value, None
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value)), None
    if isinstance(value, numbers.Integral):
        return str(int(value)), None
    if isinstance(value, numbers.Real):
        if np.isfinite(value) and float(value).is_integer():
            return str(int(value)), None
        return None, "continuous"
    return None, "type"


def _natural(text):
    """Sort key: integers by value ("2" before "10"), then text."""
    try:
        return (0, int(text), "")
    except ValueError:
        return (1, 0, text)


def _column_labels(name, values, missing, *, require_groups=True):
    """``(labels, order, problems)`` of one sensitive column.

    Labels are strings; missing values (None, NaN, empty strings) and the
    literal value "unknown" become :data:`UNKNOWN`. ``order`` lists the known
    groups: categorical order when the column is categorical, sorted otherwise.
    """
    s = pd.Series(values, copy=False).reset_index(drop=True)
    categories = list(s.cat.categories) if isinstance(s.dtype, pd.CategoricalDtype) else None
    s = s.astype(object)
    na = s.isna().to_numpy() | s.map(lambda v: isinstance(v, str) and not v.strip()).to_numpy()
    problems = []
    if na.all():
        return None, None, [ALL_MISSING.format(column=name)]
    if missing == "error" and na.any():
        problems.append(MISSING_VALUES.format(column=name, count=int(na.sum()), n=len(s),
                                              row=int(np.flatnonzero(na)[0])))
    texts = {}
    seen = {}
    for row, value in zip(np.flatnonzero(~na), s[~na]):
        try:
            key = (type(value), value)
            hash(key)
        except TypeError:
            problems.append(NOT_SCALAR.format(column=name, type=type(value).__name__, row=row))
            break
        if key in texts:
            continue
        text, error = _text_of(value)
        if error == "continuous":
            problems.append(CONTINUOUS.format(column=name, example=value))
            break
        if error == "type":
            problems.append(NOT_SCALAR.format(column=name, type=type(value).__name__, row=row))
            break
        texts[key] = text
        seen.setdefault(text, set()).add(value if not isinstance(value, np.generic)
                                         else value.item())
    clashes = [sorted(map(repr, v)) for v in seen.values() if len(v) > 1]
    if clashes:
        problems.append(AMBIGUOUS.format(column=name, values=", ".join(
            " and ".join(c) for c in clashes)))
    if problems:
        return None, None, problems
    labels = np.array([UNKNOWN if miss else texts[(type(v), v)] for v, miss in zip(s, na)],
                      dtype=object).astype(str)
    known = sorted(set(labels[labels != UNKNOWN].tolist()), key=_natural)
    if categories is not None:
        ordered = [_text_of(c)[0] for c in categories]
        known = [c for c in ordered if c in known] + [c for c in known if c not in ordered]
    if require_groups and len(known) < 2:
        return None, None, [SINGLE_GROUP.format(column=name, group=known[0])]
    return labels, known, []


def _as_frame(features, n=None):
    if isinstance(features, pd.DataFrame):
        frame = features
    elif isinstance(features, pd.Series):
        if features.name is None:
            raise ValueError(UNNAMED_SERIES)
        frame = features.to_frame()
    elif isinstance(features, dict):
        lengths = {k: len(v) for k, v in features.items()}
        if n is not None and any(m != n for m in lengths.values()):
            raise ValueError("\n".join(WRONG_LENGTH.format(column=k, n=m, n_true=n)
                                       for k, m in lengths.items() if m != n))
        frame = pd.DataFrame({k: pd.Series(v).reset_index(drop=True)
                              for k, v in features.items()})
    else:
        raise ValueError(NOT_A_TABLE.format(type=type(features).__name__))
    if frame.shape[1] == 0:
        raise ValueError(NO_FEATURES)
    frame = frame.reset_index(drop=True)
    frame.columns = [str(c) for c in frame.columns]
    return frame


def check_sensitive_features(sensitive_features, n=None, *, missing="unknown"):
    """Problems that would stop :func:`audit_fairness` on each column.

    Parameters
    ----------
    sensitive_features : DataFrame, named Series or dict of arrays
    n : int or None, default=None
        Expected number of rows (``len(y_true)``).
    missing : {"unknown", "error"}, default="unknown"

    Returns
    -------
    dict of str -> list of str
        Column name -> error messages; columns without problems are absent.

    Examples
    --------
    >>> check_sensitive_features({"tone": ["dark", "dark"], "age": ["young", "old"]})
    {'tone': ["Sensitive feature 'tone' has a single group ('dark') apart from missing values: \
there is nothing to compare. Drop it from the audit, or check how it was attached."]}
    """
    if isinstance(sensitive_features, dict) and n is not None:
        bad = {k: [WRONG_LENGTH.format(column=k, n=len(v), n_true=n)]
               for k, v in sensitive_features.items() if len(v) != n}
        if bad:
            return bad
    frame = _as_frame(sensitive_features, n)
    out = {}
    for name in frame.columns:
        if n is not None and len(frame) != n:
            out[name] = [WRONG_LENGTH.format(column=name, n=len(frame), n_true=n)]
            continue
        problems = _column_labels(name, frame[name], missing)[2]
        if problems:
            out[name] = problems
    return out


def _feature_specs(columns, intersections):
    """``[(feature name, [columns])]``: single columns, then intersections."""
    columns = [str(c) for c in columns]
    specs = [(c, [c]) for c in columns]
    problems = []
    for inter in intersections or ():
        parts = [inter] if isinstance(inter, str) else [str(p) for p in inter]
        missing = [p for p in parts if p not in columns]
        if missing:
            problems.append(UNKNOWN_INTERSECTION.format(intersection=inter,
                                                        missing=missing[0], valid=columns))
        elif len(set(parts)) < 2 or len(set(parts)) != len(parts):
            problems.append(BAD_INTERSECTION.format(intersection=inter, valid=columns))
        else:
            specs.append((INTERSECTION_SEP.join(parts), parts))
    return specs, problems


def _join(labels_per_column, orders):
    """Intersection labels and their order (product order of the parts)."""
    stacked = np.stack(labels_per_column, axis=1)
    labels = np.array([GROUP_SEP.join(row) for row in stacked], dtype=object).astype(str)
    known_rows = ~(stacked == UNKNOWN).any(axis=1)
    rank = {}
    for row in stacked[known_rows]:
        key = GROUP_SEP.join(row)
        if key not in rank:
            rank[key] = tuple((order.index(v), "") if v in order else (len(order), v)
                              for v, order in zip(row, orders))
    order = sorted(rank, key=rank.get)
    return labels, order, known_rows


def sensitive_groups(features, columns=None, *, missing="unknown"):
    """Group label of every row for one feature or an intersection of features.

    Parameters
    ----------
    features : DataFrame, named Series or dict of arrays
        Sensitive features, one row per sample.
    columns : str, sequence of str or None, default=None
        One column, or several for their intersection (labels joined with
        ``" & "``); None: the only column of ``features``.
    missing : {"unknown", "error"}, default="unknown"
        What a missing value becomes: the group :data:`UNKNOWN`, or an error.

    Returns
    -------
    labels : ndarray of str, shape (n,)
        ``"unknown"`` where any part is missing.

    Raises
    ------
    ValueError
        For values that cannot name a group (non-integer numbers, objects,
        distinct values that read the same), all-missing columns and, with
        ``missing="error"``, missing values; every problem in one message.

    Examples
    --------
    >>> import pandas as pd
    >>> frame = pd.DataFrame({"tone": ["dark", "light", None], "age": [1, 2, 1]})
    >>> sensitive_groups(frame, ["tone", "age"]).tolist()
    ['dark & 1', 'light & 2', 'unknown']
    """
    frame = _as_frame(features)
    if missing not in ("unknown", "error"):
        raise ValueError(BAD_MISSING.format(value=missing))
    if columns is None:
        columns = list(frame.columns)
    columns = [columns] if isinstance(columns, str) else list(columns)
    problems, labels, orders = [], [], []
    for c in columns:
        if c not in frame.columns:
            problems.append(NO_COLUMN.format(column=c, valid=list(frame.columns)))
            continue
        lab, order, probs = _column_labels(c, frame[c], missing, require_groups=False)
        problems += probs
        labels.append(lab)
        orders.append(order)
    if problems:
        raise ValueError("\n".join(problems))
    if len(labels) == 1:
        return labels[0]
    joined, _, known_rows = _join(labels, orders)
    return np.where(known_rows, joined, UNKNOWN)


# --------------------------------------------------------------------------- #
# Metrics from confusion matrices
# --------------------------------------------------------------------------- #
def _metric_names(classes, with_loss):
    names = ["accuracy", "balanced_accuracy", "macro_f1"] + (["log_loss"] if with_loss else [])
    for kind in PER_CLASS_METRICS:
        names += [f"{kind}[{c}]" for c in classes]
    return names


def _kind(metric):
    return metric.split("[", 1)[0]


def _from_cm(cm, classes, loss_sum=None):
    """Every metric of confusion matrices ``cm`` (shape ``(..., K, K)``).

    Undefined values (no rows, or no true rows of a class for its recall) are NaN.
    """
    cm = np.asarray(cm, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        n = cm.sum((-2, -1))
        tp = np.diagonal(cm, axis1=-2, axis2=-1)
        row, col = cm.sum(-1), cm.sum(-2)
        recall = tp / row
        present = row > 0
        # sklearn's balanced accuracy: mean recall over classes present in y_true.
        balanced = np.where(present, recall, 0).sum(-1) / present.sum(-1)
        # sklearn's macro-F1 without `labels`: classes in y_true or y_pred.
        used = (row + col) > 0
        f1 = np.where(used, 2 * tp / np.where(used, row + col, 1), 0)
        out = {"accuracy": tp.sum(-1) / n, "balanced_accuracy": balanced,
               "macro_f1": f1.sum(-1) / used.sum(-1)}
        if loss_sum is not None:
            out["log_loss"] = loss_sum / n
        selection = col / n[..., None]
        fpr = (col - tp) / (n[..., None] - row)
    for j, c in enumerate(classes):
        out[f"recall[{c}]"] = recall[..., j]
        out[f"selection_rate[{c}]"] = selection[..., j]
        out[f"fpr[{c}]"] = fpr[..., j]
    return out


def _cm(t, p, k):
    return np.bincount(t * k + p, minlength=k * k).reshape(k, k)


def _denominators(cm, classes):
    """Rows behind each metric of confusion matrices ``cm``, absent for log loss.

    Balanced accuracy and macro-F1 are means of per-class rates, not one rate;
    they count the group's rows, so that a group of 2 faces, both right, gets
    the interval of 2 of 2 rather than a collapsed [100%, 100%].
    """
    cm = np.asarray(cm, dtype=float)
    n, row = cm.sum((-2, -1)), cm.sum(-1)
    out = {"accuracy": n, "balanced_accuracy": n, "macro_f1": n}
    for j, c in enumerate(classes):
        out[f"recall[{c}]"] = row[..., j]
        out[f"selection_rate[{c}]"] = n
        out[f"fpr[{c}]"] = n - row[..., j]
    return out


# Metrics that are means of per-class rates, whose null variance is simulated
# (at least _NULL_SIMS times).
_MEANS = ("balanced_accuracy", "macro_f1")
_NULL_SIMS = 1000


def _var_floors(cm, overall, classes, metrics):
    """Null variance of each metric of confusion matrices ``cm``: the variance
    a rate would have over the metric's rows if it equalled its value on the
    whole test set, ``p (1 - p) / m``.

    It is the standard error of a two-proportion z-test, and a floor under the
    bootstrap's: a group with no error in its 8 faces has a degenerate
    bootstrap (every resample repeats 100%) and would otherwise look certain.
    Negligible next to the bootstrap for hundreds of rows. Log loss has no
    floor; balanced accuracy and macro-F1, means of per-class rates, get theirs
    from :func:`_null_var` (``p (1 - p) / n`` over the group's size is too
    small for them: a class with one face in the group weighs a whole 1/K).
    """
    n = np.asarray(cm, dtype=float).sum((-2, -1))
    rows = _denominators(cm, classes)
    out = {}
    for metric in metrics:
        if metric == "log_loss":
            out[metric] = np.zeros_like(n)
            continue
        if metric in _MEANS:
            continue
        m = rows[metric]
        p = float(np.clip(np.nan_to_num(overall[metric]), 0, 1))
        with np.errstate(divide="ignore", invalid="ignore"):
            out[metric] = np.where(m > 0, p * (1 - p) / m, np.nan)
    return out


def _null_var(cm, all_cm, classes, metrics, n_sim, rng):
    """Null variances of ``metrics`` for groups with confusion matrices ``cm``
    (shape ``(G, K, K)``) in a test set with confusion matrix ``all_cm``.

    Under the null every row is predicted as the whole test set predicts its
    class (its row of ``all_cm``). Over ``n_sim`` simulated test sets that keep
    each group's and the rest's true rows per class, returns three dicts of
    arrays of shape ``(G,)``: the variance of the group's value, of the rest's,
    and of the group minus the whole test set (which contains the group).
    """
    all_cm = np.asarray(all_cm, dtype=float)
    total = all_cm.sum(1)
    probs = all_cm / np.where(total > 0, total, 1)[:, None]
    k = len(classes)
    out = tuple({m: np.full(len(cm), np.nan) for m in metrics} for _ in range(3))

    def simulate(rows):
        sims = np.zeros((n_sim, k, k))
        for c in np.flatnonzero(rows > 0):
            sims[:, c] = rng.multinomial(rows[c], probs[c], size=n_sim)
        return sims

    def var(values):
        values = values[np.isfinite(values)]
        return float(np.var(values, ddof=1)) if len(values) > 1 else np.nan

    for g, rows in enumerate(np.asarray(cm).sum(-1).astype(int)):
        group, rest = simulate(rows), simulate(total.astype(int) - rows)
        values = [_from_cm(x, classes) for x in (group, rest, group + rest)]
        for m in metrics:
            out[0][m][g] = var(values[0][m])
            out[1][m][g] = var(values[1][m])
            out[2][m][g] = var(values[0][m] - values[2][m])
    return out


def _wilson(p, m, confidence):
    """Wilson score interval of a rate ``p`` seen over ``m`` rows."""
    z = float(norm.ppf(1 - (1 - confidence) / 2))
    denom = 1 + z * z / m
    centre = (p + z * z / (2 * m)) / denom
    half = z * np.sqrt(p * (1 - p) / m + z * z / (4 * m * m)) / denom
    return max(centre - half, 0.0), min(centre + half, 1.0)


class _Metric:
    """One scalar metric on integer-coded labels, as a MetricFrame metric."""

    def __init__(self, name, classes):
        self.name, self.classes = name, classes

    def __call__(self, y_true, y_pred, row_loss=None):
        cm = _cm(np.asarray(y_true), np.asarray(y_pred), len(self.classes))
        loss = None if row_loss is None else float(np.sum(row_loss))
        return float(_from_cm(cm, self.classes, loss)[self.name])


# --------------------------------------------------------------------------- #
# Intervals
# --------------------------------------------------------------------------- #
def _num(x):
    return None if x is None or not np.isfinite(x) else float(x)


def _percentile(value, boot, confidence, rows=None):
    """``{"value", "low", "high"}``: percentile interval of finite resamples.

    For a metric over ``rows`` rows the interval is widened, where needed, to
    the Wilson score interval: a rate of 0 or 1 in a few faces has a degenerate
    bootstrap ([0, 0] for 0 of 9), the Wilson interval does not ([0, 0.30]).
    """
    boot = boot[np.isfinite(boot)]
    if not np.isfinite(value) or len(boot) < 2:
        return {"value": _num(value), "low": None, "high": None}
    alpha = (1 - confidence) / 2
    low, high = np.quantile(boot, [alpha, 1 - alpha])
    if rows is not None and rows > 0:
        w_low, w_high = _wilson(value, rows, confidence)
        low, high = min(low, w_low), max(high, w_high)
    return {"value": float(value), "low": float(low), "high": float(high)}


def _z(confidence, comparisons):
    return float(norm.ppf(1 - (1 - confidence) / (2 * comparisons)))


def _contrast(value, boot, confidence, comparisons, null, se_min=0.0, bounds=(None, None)):
    """Normal interval ``value +- z * se``, Bonferroni-widened over ``comparisons``;
    significant when it excludes ``null``.

    ``se`` is the bootstrap standard error, at least ``se_min``. Normal rather
    than percentile: a Bonferroni level such as 0.05 / 72 lies beyond the
    resolution of a few hundred resamples. The interval is clipped to
    ``bounds``, the values the contrast can take.
    """
    boot = boot[np.isfinite(boot)]
    record = {"value": _num(value), "low": None, "high": None, "se": None,
              "significant": False, "comparisons": int(comparisons)}
    if record["value"] is None or len(boot) < 2:
        return record
    se = max(float(np.std(boot, ddof=1)), float(np.nan_to_num(se_min)))
    half = _z(confidence, comparisons) * se
    low, high = value - half, value + half
    significant = bool(low > null or high < null)
    if bounds[0] is not None:
        low = max(low, bounds[0])
    if bounds[1] is not None:
        high = min(high, bounds[1])
    record.update(low=float(low), high=float(high), se=se, significant=significant)
    return record


# --------------------------------------------------------------------------- #
# The audit
# --------------------------------------------------------------------------- #
class FairnessAudit:
    """Result of :func:`audit_fairness`.

    Attributes
    ----------
    results : dict
        JSON-ready numbers (see :func:`audit_fairness`).
    frames : dict of str -> fairlearn.metrics.MetricFrame
        One MetricFrame per feature, on every row (small and unknown groups
        included), with the point values of every metric.
    """

    def __init__(self, results, frames):
        self.results = results
        self.frames = frames

    @property
    def features(self):
        """Feature names: single columns, then intersections."""
        return list(self.results["features"])

    def to_dict(self):
        """The results as plain, JSON-ready Python objects."""
        return self.results

    def by_group(self, feature, metric="accuracy"):
        """One row per group: size, status, training share, ``metric`` with its interval.

        Parameters
        ----------
        feature : str
        metric : str, default="accuracy"

        Returns
        -------
        pandas.DataFrame
        """
        if feature not in self.results["features"]:
            raise ValueError(UNKNOWN_FEATURE.format(feature=feature, valid=self.features))
        f = self.results["features"][feature]
        rows = []
        for g in f["order"]:
            rec = f["groups"][g]
            m = rec["metrics"].get(metric) or {}
            rows.append({"group": g, "n": rec["n"], "status": rec["status"],
                         "train_share": rec.get("train_share"), metric: m.get("value"),
                         "low": m.get("low"), "high": m.get("high")})
        return pd.DataFrame(rows).set_index("group")

    def significant_gaps(self, metrics=HEADLINE_METRICS):
        """Significant gaps, largest first, log loss last (see :func:`significant_gaps`)."""
        return significant_gaps(self.results, metrics=metrics)


def _check_params(min_group_size, n_boot, confidence, missing):
    problems = []
    if not is_whole(min_group_size):
        problems.append(BAD_MIN_GROUP_SIZE.format(value=min_group_size))
    if not is_whole(n_boot, 2):
        problems.append(BAD_N_BOOT.format(value=n_boot))
    if not isinstance(confidence, numbers.Real) or not 0 < confidence < 1:
        problems.append(BAD_CONFIDENCE.format(value=confidence))
    if missing not in ("unknown", "error"):
        problems.append(BAD_MISSING.format(value=missing))
    return problems


def _encode(values, index, what):
    values = np.asarray(values).astype(str)
    unknown = sorted(set(values.tolist()) - set(index))
    if unknown:
        raise ValueError(UNKNOWN_LABELS.format(what=what, values=unknown[:10]))
    return np.array([index[v] for v in values], dtype=np.int64)


def audit_fairness(y_true, y_pred, sensitive_features, *, y_proba=None, labels=None,
                   intersections=(), min_group_size=30, n_boot=500, confidence=0.95,
                   random_state=0, train_features=None, y_train=None, missing="unknown"):
    """Audit a classifier's predictions across groups of people.

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n,)
        True and predicted labels (any type; compared as strings).
    sensitive_features : DataFrame, named Series or dict of arrays
        One column per sensitive feature, one row per row of ``y_true``.
        Values must be strings, integers, booleans or categories (bin
        continuous values first); missing values form the group ``"unknown"``.
    y_proba : array-like of shape (n, n_classes) or None, default=None
        Probabilities with columns in ``labels`` order; adds the per-group
        log loss.
    labels : sequence or None, default=None
        Every class, in report order; default: sorted labels of ``y_true``
        and ``y_pred``.
    intersections : sequence of sequences of str, default=()
        Feature combinations audited as one feature each, e.g.
        ``[("tone", "age")]`` gives the feature ``"tone x age"`` with groups
        like ``"dark & young"``.
    min_group_size : int, default=30
        Groups with fewer rows are shown (count, values, intervals) but
        marked "too small" and left out of gaps and worst groups.
    n_boot : int, default=500
        Bootstrap resamples (rows resampled within each group); also the
        simulations of the null variance of balanced accuracy and macro-F1,
        at least 1000.
    confidence : float, default=0.95
        Level of every interval; gap intervals hold it simultaneously over
        the contrasts they were picked from (Bonferroni).
    random_state : int or None, default=0
        Seed of the bootstrap (None: unseeded).
    train_features : DataFrame, named Series or dict of arrays, optional
        The training rows' sensitive features (same columns); with
        ``y_train``, adds each group's share of the training set and of
        each class.
    y_train : array-like of shape (n_train,), optional
    missing : {"unknown", "error"}, default="unknown"
        Audit missing values as the group ``"unknown"`` (shown, not judged),
        or raise.

    Returns
    -------
    FairnessAudit
        ``.frames``: a fairlearn MetricFrame per feature. ``.results``: for
        each feature, ``order`` (groups), ``groups`` (per group ``n``,
        ``status`` in {"ok", "too small", "unknown", "absent from test"},
        ``share_test``, ``n_train``, ``train_share``,
        ``train_share_by_class``, ``metrics`` (value and percentile
        interval per metric) and ``vs_rest`` (headline metrics: group minus
        all other rows, simultaneous interval, ``significant``,
        ``worse``)), ``overall``, ``gaps`` (per metric: ``difference`` and
        ``ratio``, each ``between_groups`` and ``to_overall``, and
        ``worst_group``) and ``one_vs_rest`` (per-class and maximum
        demographic-parity and equalized-odds differences).

    Raises
    ------
    ValueError
        For inputs of the wrong length or type, labels outside ``labels``,
        sensitive columns that are all missing, hold a single group or
        cannot name groups; every problem in one message.

    Examples
    --------
    >>> import pandas as pd
    >>> y_true = ["happy", "sad"] * 40
    >>> y_pred = ["happy", "sad"] * 30 + ["sad", "happy"] * 10
    >>> groups = pd.DataFrame({"tone": ["light"] * 60 + ["dark"] * 20})
    >>> audit = audit_fairness(y_true, y_pred, groups, min_group_size=10, n_boot=200)
    >>> gap = audit.results["features"]["tone"]["gaps"]["accuracy"]["difference"]
    >>> gap["between_groups"]["groups"], gap["between_groups"]["significant"]
    (['light', 'dark'], True)
    """
    problems = _check_params(min_group_size, n_boot, confidence, missing)
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if len(y_true) != len(y_pred):
        problems.append(LENGTHS_DIFFER.format(what="y_true and y_pred",
                                              lengths=[len(y_true), len(y_pred)]))
    if problems:
        raise ValueError("\n".join(problems))
    n = len(y_true)
    frame = _as_frame(sensitive_features, n)
    if labels is None:
        labels = sorted(set(y_true.astype(str).tolist()) | set(y_pred.astype(str).tolist()))
    classes = [str(c) for c in labels]
    index = {c: i for i, c in enumerate(classes)}
    t = _encode(y_true, index, "y_true")
    p = _encode(y_pred, index, "y_pred")
    row_loss = None
    if y_proba is not None:
        proba = np.asarray(y_proba, dtype=float)
        if proba.shape != (n, len(classes)):
            raise ValueError(BAD_PROBA.format(n=n, k=len(classes), shape=proba.shape))
        row_loss = -np.log(np.clip(proba[np.arange(n), t], 1e-15, 1))

    specs, problems = _feature_specs(frame.columns, intersections)
    columns = {}
    for name, _ in specs[:frame.shape[1]]:
        values = frame[name]
        if len(values) != n:
            problems.append(WRONG_LENGTH.format(column=name, n=len(values), n_true=n))
            continue
        lab, order, probs = _column_labels(name, values, missing)
        problems += probs
        if lab is not None:
            columns[name] = (lab, order)
    train = None
    if (train_features is None) != (y_train is None):
        problems.append(NEEDS_Y_TRAIN)
    elif train_features is not None:
        train_frame = _as_frame(train_features)
        y_train = np.asarray(y_train).astype(str)
        if len(train_frame) != len(y_train):
            problems.append(LENGTHS_DIFFER.format(what="train_features and y_train",
                                                  lengths=[len(train_frame), len(y_train)]))
        train = {}
        for name in columns:
            if name not in train_frame.columns:
                problems.append(MISSING_TRAIN_COLUMN.format(column=name))
                continue
            lab, _, probs = _column_labels(name, train_frame[name], "unknown",
                                           require_groups=False)
            problems += [f"train_features: {m}" for m in probs]
            train[name] = lab
    if problems:
        raise ValueError("\n".join(problems))

    results = {"classes": classes, "n": n, "min_group_size": int(min_group_size),
               "n_boot": int(n_boot), "confidence": float(confidence),
               "random_state": random_state, "missing": missing,
               "metrics": _metric_names(classes, row_loss is not None),
               "features": {}}
    frames = {}
    for i, (name, parts) in enumerate(specs):
        if len(parts) == 1:
            labels_f, order, known = columns[name][0], columns[name][1], None
        else:
            labels_f, order, known = _join([columns[c][0] for c in parts],
                                           [columns[c][1] for c in parts])
        train_f = None
        if train is not None:
            train_f = (train[parts[0]] if len(parts) == 1 else
                       _join([train[c] for c in parts],
                             [columns[c][1] for c in parts])[0])
        rng = np.random.default_rng(None if random_state is None else [int(random_state), i])
        record, frames[name] = _audit_feature(
            name, parts, labels_f, order, t, p, row_loss, classes, train_f,
            None if train is None else y_train, results, rng)
        results["features"][name] = record
    return FairnessAudit(_rounded(results), frames)


def _rounded(obj, digits=6):
    """Floats rounded for a compact, stable ``results.json``."""
    if isinstance(obj, float):
        return round(obj, digits)
    if isinstance(obj, dict):
        return {k: _rounded(v, digits) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_rounded(v, digits) for v in obj]
    return obj


def _is_unknown(label, n_parts):
    return label == UNKNOWN if n_parts == 1 else UNKNOWN in label.split(GROUP_SEP)


def _audit_feature(name, parts, labels, order, t, p, row_loss, classes, train_labels,
                   y_train, settings, rng):
    k = len(classes)
    n, n_boot = len(t), settings["n_boot"]
    confidence, min_size = settings["confidence"], settings["min_group_size"]
    metric_names = settings["metrics"]

    # Group order: known groups in their order, groups only seen in training
    # after them, then any unknown groups (with test rows, then training only).
    present = set(labels.tolist())
    train_only = []
    if train_labels is not None:
        train_only = sorted(set(train_labels.tolist()) - present)
    known = [g for g in order if g in present and not _is_unknown(g, len(parts))]
    unknown = sorted(g for g in present if _is_unknown(g, len(parts)))
    absent = [g for g in train_only if not _is_unknown(g, len(parts))]
    # an unknown group seen only in training still shows its training share
    unknown_train_only = [g for g in train_only if _is_unknown(g, len(parts))]
    groups = known + unknown            # groups with test rows
    rows = {g: np.flatnonzero(labels == g) for g in groups}
    status = {g: (MISSING if g in unknown else TOO_SMALL if len(rows[g]) < min_size else OK)
              for g in groups}
    status.update({g: ABSENT for g in absent})
    judged = [g for g in groups if status[g] == OK]

    # fairlearn's view: every metric per group, on every row.
    fns = {m: _Metric(m, classes) for m in metric_names}
    sample_params = None
    if row_loss is not None:
        sample_params = {"log_loss": {"row_loss": row_loss}}
    mf = MetricFrame(metrics=fns, y_true=t, y_pred=p,
                     sensitive_features=pd.Series(labels, name=name),
                     sample_params=sample_params)
    by_group, overall = mf.by_group, mf.overall

    # Bootstrap: rows resampled within each group, so every group keeps its size
    # and the overall resample is the union of the groups' resamples.
    g_count = len(groups)
    boot_cm = np.zeros((g_count, n_boot, k, k))
    boot_loss = np.zeros((g_count, n_boot)) if row_loss is not None else None
    offsets = np.arange(n_boot)[:, None] * (k * k)
    for gi, g in enumerate(groups):
        r = rows[g]
        draw = r[rng.integers(0, len(r), size=(n_boot, len(r)))]
        codes = (offsets + t[draw] * k + p[draw]).ravel()
        boot_cm[gi] = np.bincount(codes, minlength=n_boot * k * k).reshape(n_boot, k, k)
        if row_loss is not None:
            boot_loss[gi] = row_loss[draw].sum(1)
    total_cm = boot_cm.sum(0)
    total_loss = None if boot_loss is None else boot_loss.sum(0)
    point_cm = np.stack([_cm(t[rows[g]], p[rows[g]], k) for g in groups])
    point_loss = (None if row_loss is None else
                  np.array([row_loss[rows[g]].sum() for g in groups]))
    all_cm = _cm(t, p, k)
    all_loss = None if row_loss is None else row_loss.sum()
    boot_g = _from_cm(boot_cm, classes, boot_loss)
    boot_all = _from_cm(total_cm, classes, total_loss)
    boot_rest = _from_cm(total_cm[None] - boot_cm, classes,
                         None if boot_loss is None else total_loss[None] - boot_loss)
    point_rest = _from_cm(all_cm[None] - point_cm, classes,
                          None if point_loss is None else all_loss - point_loss)
    floors = _var_floors(point_cm, overall, classes, metric_names)
    floors_rest = _var_floors(all_cm[None] - point_cm, overall, classes, metric_names)
    rows_g, rows_all = _denominators(point_cm, classes), _denominators(all_cm, classes)
    # The overall value contains the group: for a pooled rate, group minus
    # overall is (1 - share) times group minus rest, share being the group's
    # part of the metric's rows.
    floors_overall = {}
    with np.errstate(divide="ignore", invalid="ignore"):
        for m in metric_names:
            if m in _MEANS:  # below
                continue
            if m not in rows_g:  # log loss: no floor
                floors_overall[m] = floors[m]
                continue
            share = rows_g[m] / rows_all[m]
            floors_overall[m] = (1 - share) ** 2 * (floors[m] + floors_rest[m])
    # Balanced accuracy and macro-F1, means of per-class rates: simulated.
    means = [m for m in _MEANS if m in metric_names]
    null_rng = np.random.default_rng(rng.integers(2 ** 63))
    null = _null_var(point_cm, all_cm, classes, means, max(n_boot, _NULL_SIMS), null_rng)
    for floor, values in zip((floors, floors_rest, floors_overall), null):
        floor.update(values)

    group_records = {}
    for gi, g in enumerate(groups):
        metrics = {m: _percentile(float(by_group.loc[g, m]), boot_g[m][gi], confidence,
                                  rows_g[m][gi] if m in rows_g else None)
                   for m in metric_names}
        group_records[g] = {"n": int(len(rows[g])), "status": status[g],
                            "share_test": float(len(rows[g]) / n), "metrics": metrics,
                            "vs_rest": {}}
    for g in absent + unknown_train_only:
        group_records[g] = {"n": 0, "status": ABSENT if g in absent else MISSING,
                            "share_test": 0.0, "metrics": {}, "vs_rest": {}}

    headline = [m for m in HEADLINE_METRICS if m in metric_names]
    # Two groups and no other rows: each group's rest is the other group, so its
    # distance to the rest (and, scaled, to overall) is the gap: one comparison.
    two_only = len(judged) == 2 == len(groups)
    vs_rest_comparisons = 1 if two_only else max(len(judged), 1)
    for gi, g in enumerate(groups):
        if status[g] != OK:
            continue
        for m in headline:
            diff = float(by_group.loc[g, m]) - float(point_rest[m][gi])
            rec = _contrast(diff, boot_g[m][gi] - boot_rest[m][gi], confidence,
                            vs_rest_comparisons, 0.0,
                            se_min=np.sqrt(floors[m][gi] + floors_rest[m][gi]),
                            bounds=_BOUNDS[m])
            rec["worse"] = bool(rec["significant"] and _DIRECTION[m] * diff < 0)
            group_records[g]["vs_rest"][m] = rec

    record = {
        "columns": list(parts),
        "order": groups[:len(known)] + absent + unknown + unknown_train_only,
        "groups": group_records,
        "judged": judged,
        "overall": {m: _percentile(float(overall[m]), boot_all[m], confidence,
                                   rows_all.get(m))
                    for m in metric_names},
        "gaps": {},
        "one_vs_rest": {},
        "note": None,
    }
    if train_labels is not None:
        _add_representation(record, train_labels, y_train, classes)
    if len(judged) < 2:
        record["note"] = f"fewer than two groups have at least {min_size} test rows"
        return record, mf

    j_idx = np.array([groups.index(g) for g in judged])
    for m in metric_names:
        factor = 1 if m in HEADLINE_METRICS else k
        record["gaps"][m] = _gaps(m, judged, by_group.loc[judged, m].to_numpy(dtype=float),
                                  boot_g[m][j_idx], floors[m][j_idx],
                                  floors_overall[m][j_idx], float(overall[m]), boot_all[m],
                                  confidence, factor, two_only)
    for m in headline:
        worst = record["gaps"][m]["worst_group"]
        if worst is not None:
            worst["significantly_worse"] = group_records[worst["group"]]["vs_rest"][m]["worse"]
    record["one_vs_rest"] = _one_vs_rest(record["gaps"], labels, judged, t, p, classes,
                                         confidence)
    return record, mf


def _gaps(metric, judged, values, boot, floors, floors_overall, overall, boot_overall,
          confidence, factor, two_only=False):
    """fairlearn's difference and ratio (between groups, to overall) over the
    judged groups, each with the simultaneous interval of the contrast behind it.

    ``floors`` and ``floors_overall`` are the null variances of each group's
    value and of its distance to the overall value. ``two_only``: the two
    groups hold every row, so both distances to overall are the gap, scaled.
    """
    finite = np.flatnonzero(np.isfinite(values))
    empty = {"value": None, "low": None, "high": None, "se": None, "significant": False,
             "comparisons": 0, "groups": []}
    out = {"difference": {"between_groups": dict(empty), "to_overall": dict(empty)},
           "ratio": {"between_groups": dict(empty), "to_overall": dict(empty)},
           "worst_group": None}
    if len(finite) < 2:
        return out
    kk = len(finite)
    pairs = kk * (kk - 1) // 2
    v, b, f, fo = values[finite], boot[finite], floors[finite], floors_overall[finite]
    names = [judged[i] for i in finite]
    hi = int(np.argmax(v))
    lo = kk - 1 - int(np.argmin(v[::-1]))  # ties: two different groups
    bounds = _BOUNDS[_kind(metric)]

    def to_overall(i):
        sign = 1.0 if v[i] >= overall else -1.0
        return _contrast(abs(v[i] - overall), sign * (b[i] - boot_overall), confidence,
                         (1 if two_only else kk) * factor, 0.0, se_min=np.sqrt(fo[i]),
                         bounds=bounds)

    between = _contrast(v[hi] - v[lo], b[hi] - b[lo], confidence, pairs * factor, 0.0,
                        se_min=np.sqrt(f[hi] + f[lo]), bounds=bounds)
    out["difference"]["between_groups"] = {**between, "groups": [names[hi], names[lo]]}
    far = int(np.argmax(np.abs(v - overall)))
    out["difference"]["to_overall"] = {**to_overall(far), "groups": [names[far]]}
    with np.errstate(divide="ignore", invalid="ignore"):
        if v[hi] > 0:
            out["ratio"]["between_groups"] = {
                **_ratio(between, v[lo] / v[hi], v[hi], confidence),
                "groups": [names[lo], names[hi]]}
        if overall > 0:
            # fairlearn's to_overall ratio: each group's ratio to overall, as a
            # number <= 1, then the smallest.
            ratios = np.where(v <= overall, v / overall, overall / v)
            g = int(np.argmin(ratios))
            out["ratio"]["to_overall"] = {
                **_ratio(to_overall(g), ratios[g], max(v[g], overall), confidence),
                "groups": [names[g]]}
    direction = _DIRECTION[_kind(metric)]
    if direction:
        worst = lo if direction > 0 else hi
        out["worst_group"] = {"group": names[worst], "value": float(v[worst])}
    return out


def _ratio(diff, value, scale, confidence):
    """The ratio ``value = 1 - d / scale`` of the difference record ``diff`` (of
    ``d``), with the difference's interval and standard error divided by ``scale``.

    That is the delta-method interval of the ratio at 1, where it is tested, so
    a ratio is significant exactly when its difference is (its interval
    excludes 1 exactly then). Ratios lie in [0, inf).
    """
    record = {"value": _num(value), "low": None, "high": None, "se": None,
              "significant": False, "comparisons": diff["comparisons"]}
    if record["value"] is None or diff["se"] is None:
        return record
    se = diff["se"] / scale
    half = _z(confidence, diff["comparisons"]) * se
    record.update(low=max(float(value) - half, 0.0), high=float(value) + half, se=float(se),
                  significant=diff["significant"])
    return record


def _one_vs_rest(gaps, labels, judged, t, p, classes, confidence):
    """fairlearn's binary demographic-parity and equalized-odds differences
    (between groups), class by class (class c against the rest), with the
    maximum over classes."""
    keep = np.isin(labels, judged)
    sf = labels[keep]
    dp, eo = {}, {}
    for j, c in enumerate(classes):
        yt, yp = t[keep] == j, p[keep] == j
        value = demographic_parity_difference(yt, yp, sensitive_features=sf)
        dp[c] = _widen(gaps[f"selection_rate[{c}]"]["difference"]["between_groups"], value,
                       confidence, 1)
        rates = {"true_positive_rate": gaps[f"recall[{c}]"]["difference"]["between_groups"],
                 "false_positive_rate": gaps[f"fpr[{c}]"]["difference"]["between_groups"]}
        rates = {r: g for r, g in rates.items() if g["value"] is not None}
        rate = max(rates, key=lambda r: rates[r]["value"]) if rates else None
        value, without = _equalized_odds(yt, yp, sf)
        eo[c] = {**_widen(rates.get(rate), value, confidence, 2), "rate": rate,
                 "groups_without_class": without}
    out = {}
    for measure, per_class in (("demographic_parity_difference", dp),
                               ("equalized_odds_difference", eo)):
        values = {c: r["value"] for c, r in per_class.items() if r["value"] is not None}
        top = max(values, key=values.get) if values else None
        out[measure] = {"per_class": per_class,
                        "max": None if top is None else {"class": top, **per_class[top]}}
    return out


def _equalized_odds(yt, yp, sf):
    """fairlearn's equalized-odds difference, leaving out of the true-positive
    part the groups without a positive row.

    fairlearn counts the undefined true-positive rate of such a group as 0, so
    one group without a face of a rare class would give a gap of up to 1.
    Returns the value and the groups left out.
    """
    has = pd.Series(yt).groupby(sf).any()
    without = sorted(has.index[~has.to_numpy()].tolist())
    if not without:
        return equalized_odds_difference(yt, yp, sensitive_features=sf), []
    keep = np.isin(sf, has.index[has.to_numpy()])
    parts = [false_positive_rate_difference(yt, yp, sensitive_features=sf, pos_label=True)]
    if len(set(sf[keep].tolist())) >= 2:
        parts.append(true_positive_rate_difference(yt[keep], yp[keep],
                                                   sensitive_features=sf[keep],
                                                   pos_label=True))
    return max(parts), without


def _widen(gap, value, confidence, times):
    """A one-vs-rest record: fairlearn's ``value`` with the interval of the gap
    behind it, Bonferroni-widened ``times`` over (equalized odds picks the
    larger of two rates)."""
    value = _num(float(value))
    if gap is None or gap["se"] is None or value is None:
        return {"value": value, "low": None, "high": None, "se": None, "significant": False,
                "comparisons": 0, "groups": [] if gap is None else list(gap["groups"])}
    comparisons = gap["comparisons"] * times
    half = _z(confidence, comparisons) * gap["se"]
    # Rate differences lie in [-1, 1].
    return {"value": value, "low": max(value - half, -1.0), "high": min(value + half, 1.0),
            "se": gap["se"],
            "significant": bool(value - half > 0), "comparisons": int(comparisons),
            "groups": list(gap["groups"])}


def _add_representation(record, train_labels, y_train, classes):
    n_train = len(train_labels)
    class_totals = {c: int(np.sum(y_train == c)) for c in classes}
    for g, rec in record["groups"].items():
        in_g = train_labels == g
        rec["n_train"] = int(in_g.sum())
        rec["train_share"] = float(in_g.sum() / n_train) if n_train else None
        rec["train_share_by_class"] = {
            c: (float(np.sum(in_g & (y_train == c)) / class_totals[c])
                if class_totals[c] else None) for c in classes}
    # every known group the audit shows, in training or only in test
    known = [g for g, rec in record["groups"].items() if rec["status"] != MISSING]
    record["equal_share"] = 1.0 / len(known) if known else None


def significant_gaps(results, metrics=HEADLINE_METRICS):
    """The significant between-group gaps of an audit, largest first.

    Gaps of rates (accuracy, parity, ...: fractions) come first, then log-loss
    gaps, which are in another unit.

    Parameters
    ----------
    results : dict
        :attr:`FairnessAudit.results` (or the same dict read back from JSON).
    metrics : sequence of str, default=HEADLINE_METRICS
        Metrics whose largest-minus-smallest gap is considered; the
        one-vs-rest demographic-parity and equalized-odds maxima are always
        considered.

    Returns
    -------
    list of dict
        ``feature``, ``metric``, ``groups`` (``[higher, lower]``), ``value``,
        ``low``, ``high``, ``worst_group`` (None for parity measures) and
        ``class`` (parity measures only).
    """
    out = []
    for feature, f in results["features"].items():
        for metric in metrics:
            gap = f["gaps"].get(metric)
            if not gap or not gap["difference"]["between_groups"]["significant"]:
                continue
            d = gap["difference"]["between_groups"]
            out.append({"feature": feature, "metric": metric, "groups": d["groups"],
                        "value": d["value"], "low": d["low"], "high": d["high"],
                        "worst_group": (gap["worst_group"] or {}).get("group"),
                        "class": None})
        for measure, rec in f.get("one_vs_rest", {}).items():
            top = rec.get("max")
            if top and top["significant"]:
                out.append({"feature": feature, "metric": measure, "groups": top["groups"],
                            "value": top["value"], "low": top["low"], "high": top["high"],
                            "worst_group": None, "class": top["class"]})
    # Rates (fractions) and log loss (nats) are other units: log loss ranks after.
    return sorted(out, key=lambda r: (r["metric"] == "log_loss", -r["value"]))


# --------------------------------------------------------------------------- #
# Mitigation
# --------------------------------------------------------------------------- #
def _apportion(total, weights):
    """Integers proportional to ``weights`` summing to ``total`` (largest remainder)."""
    weights = np.asarray(weights, dtype=float)
    exact = total * weights / weights.sum()
    counts = np.floor(exact).astype(int)
    order = np.argsort(-(exact - counts), kind="stable")
    counts[order[:total - counts.sum()]] += 1
    return counts


SMALL_RESAMPLE = ("n_samples={n_samples} leaves no row for each of the {groups} known groups "
                  "once the {unknown} rows of the unknown group are kept; ask for more.")


def group_balanced_indices(groups, y=None, *, n_samples=None, random_state=0):
    """Row indices of a group-balanced resample of a training set.

    Every known group gets the same share of the resample and, when ``y`` is
    given, the training set's class mix inside it, so group and label become
    independent (the uniform-sampling idea of Kamiran & Calders, 2012, with
    equal group shares). A (group, class) cell larger than its target is
    subsampled, a smaller one drawn with replacement; an empty cell stays
    empty. Rows of the ``"unknown"`` group (missing values) are kept once each.
    The estimator needs no change: fit it on ``X[idx], y[idx]``.

    Parameters
    ----------
    groups : array-like of shape (n,)
        Group of each training row (see :func:`sensitive_groups` for
        intersections).
    y : array-like of shape (n,) or None, default=None
        Labels; balance classes inside each group too.
    n_samples : int or None, default=None
        Size of the resample before empty cells, the ``unknown`` rows
        included; default ``n``.
    random_state : int, default=0

    Returns
    -------
    ndarray of int
        Indices into the training rows, shuffled.

    Raises
    ------
    ValueError
        When ``groups`` cannot name groups or has fewer than two known groups,
        or ``n_samples`` leaves no row for each known group.

    Examples
    --------
    >>> idx = group_balanced_indices(["a"] * 8 + ["b"] * 2, random_state=0)
    >>> labels = np.array(["a"] * 8 + ["b"] * 2)[idx]
    >>> int((labels == "a").sum()), int((labels == "b").sum())
    (5, 5)
    """
    labels, known, problems = _column_labels("groups", groups, "unknown")
    if problems:
        raise ValueError("\n".join(problems))
    n = len(labels)
    y = None if y is None else np.asarray(y).astype(str)
    if y is not None and len(y) != n:
        raise ValueError(LENGTHS_DIFFER.format(what="groups and y", lengths=[n, len(y)]))
    rng = np.random.default_rng(random_state)
    unknown_rows = np.flatnonzero(labels == UNKNOWN)
    budget = (n if n_samples is None else int(n_samples)) - len(unknown_rows)
    if budget < len(known):
        raise ValueError(SMALL_RESAMPLE.format(n_samples=n_samples, unknown=len(unknown_rows),
                                               groups=len(known)))
    known_mask = labels != UNKNOWN
    per_group = _apportion(budget, np.ones(len(known)))
    if y is None:
        cells = [np.flatnonzero(labels == g) for g in known]
        targets = per_group
    else:
        classes, counts = np.unique(y[known_mask], return_counts=True)
        cells, targets = [], []
        for g, size in zip(known, per_group):
            cells += [np.flatnonzero((labels == g) & (y == c)) for c in classes]
            targets += list(_apportion(int(size), counts))
    parts = [rng.choice(rows, size=int(m), replace=bool(m > len(rows)))
             for rows, m in zip(cells, targets) if len(rows) and m]
    return rng.permutation(np.concatenate(parts + [unknown_rows]).astype(np.int64))
