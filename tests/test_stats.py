import re

import numpy as np
import pytest
from sklearn.metrics import accuracy_score

from fer_sklearn.stats import BAD_N_BOOT, BAD_P_VALUES, NO_ARRAYS, bootstrap_ci, holm, mcnemar


def test_bootstrap_ci_brackets_the_value_and_narrows_with_more_data():
    rng = np.random.default_rng(0)
    small_t = rng.integers(0, 3, 100)
    small_p = np.where(rng.random(100) < 0.7, small_t, (small_t + 1) % 3)
    big_t = np.tile(small_t, 16)
    big_p = np.tile(small_p, 16)
    small = bootstrap_ci(accuracy_score, small_t, small_p, n_boot=300)
    big = bootstrap_ci(accuracy_score, big_t, big_p, n_boot=300)
    assert small["low"] < small["value"] < small["high"]
    assert small["value"] == pytest.approx(big["value"])
    # interval width shrinks roughly as 1/sqrt(n): 4x narrower for 16x data
    assert (big["high"] - big["low"]) < 0.4 * (small["high"] - small["low"])


def test_bootstrap_ci_is_seeded_and_validates():
    t, p = [0, 1, 1, 0, 1], [0, 1, 0, 0, 1]
    assert bootstrap_ci(accuracy_score, t, p, random_state=3) == \
        bootstrap_ci(accuracy_score, t, p, random_state=3)
    with pytest.raises(ValueError, match="different lengths"):
        bootstrap_ci(accuracy_score, t, p[:3])
    with pytest.raises(ValueError, match="confidence"):
        bootstrap_ci(accuracy_score, t, p, confidence=95)
    with pytest.raises(ValueError, match=re.escape(BAD_N_BOOT.format(value=True))):
        bootstrap_ci(accuracy_score, t, p, n_boot=True)  # bool is an int to Python
    for arrays in ((), ([], [])):  # once a NaN interval with warnings, or "lengths: []"
        with pytest.raises(ValueError, match=re.escape(NO_ARRAYS)):
            bootstrap_ci(accuracy_score, *arrays)


def test_mcnemar_counts_discordant_pairs_and_tests_them():
    y = np.zeros(100, dtype=int)
    a = y.copy()
    b = y.copy()
    b[:20] = 1  # B wrong on 20 faces A gets right
    a[20:22] = 1  # A wrong on 2 faces B gets right
    res = mcnemar(y, a, b)
    assert (res["only_a"], res["only_b"]) == (20, 2)
    assert res["p_value"] < 0.001
    same = mcnemar(y, a, a)
    assert same == {"only_a": 0, "only_b": 0, "p_value": 1.0}
    balanced = mcnemar(y, np.r_[np.ones(10), np.zeros(90)], np.r_[np.zeros(10), np.ones(10), np.zeros(80)])
    assert balanced["p_value"] == pytest.approx(1.0)


def test_holm_steps_down_and_stays_monotone():
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.2, 0.01]) == pytest.approx([0.2, 0.02])
    assert holm([0.6, 0.5]) == pytest.approx([1.0, 1.0])  # capped at 1
    assert holm([]) == []
    # a NaN once came back as 1.0, as if it had been tested
    with pytest.raises(ValueError, match=re.escape(BAD_P_VALUES.format(bad=[float("nan"), 1.5]))):
        holm([0.01, float("nan"), 0.02, 1.5])



def test_stratified_bootstrap_keeps_every_stratum_in_every_resample():
    t = np.array([0] * 50 + [1] * 3)
    seen = []

    def smallest_stratum(a):
        seen.append(np.bincount(a, minlength=2).tolist())
        return float(np.mean(a))

    bootstrap_ci(smallest_stratum, t, n_boot=200, strata=t)
    assert all(counts == [50, 3] for counts in seen)
    with pytest.raises(ValueError, match="strata and arrays"):
        bootstrap_ci(smallest_stratum, t, strata=t[:-1])


def test_class_averaged_metrics_keep_a_rare_class_in_every_resample():
    # a resample without the 2-image class once dropped its (zero) term, which
    # lifted the upper bounds of macro-F1 and balanced accuracy by about 7 points
    from benchmark.stages.evaluate import score

    rng = np.random.default_rng(0)
    t = rng.integers(0, 6, 300)
    t[:2] = 6
    p = np.where(rng.random(300) < 0.6, t, rng.integers(0, 6, 300))
    p[:2] = 0
    classes = [str(c) for c in range(7)]
    proba = np.eye(7)[p]
    metrics = score(np.array(classes)[t], proba, classes, n_boot=500, seed=0)[0]
    for name in ("macro_f1", "balanced_accuracy"):
        m = metrics[name]
        assert m["low"] < m["value"] < m["high"] < m["value"] + 0.06, (name, m)


def test_p_values_read_right_in_tables_and_sentences():
    from fer_sklearn.reporting.markdown import p_equals, pvalue

    assert pvalue(0.0004) == "<0.001" and p_equals(0.0004) == "p < 0.001"  # once "p = <0.001"
    assert p_equals(0.0712) == "p = 0.071"
    # three decimals once showed 0.050 beside both "yes" and "no"
    assert pvalue(0.04996) == "0.04996" and pvalue(0.05) == "0.05000"
    assert pvalue(0.0512) == "0.051"


def test_per_class_f1_draws_no_bar_for_a_class_without_test_images(monkeypatch, tmp_path):
    # such a class once showed an F1 bar of 0 while the table showed "-"
    from fer_sklearn.reporting import figures

    drawn = {}
    monkeypatch.setattr(figures, "save_png", lambda fig, path: drawn.setdefault("fig", fig))
    evaluate = {"classes": ["happy", "sad"], "models": {"cnn": {"per_class": {
        "happy": {"f1": 0.8, "support": 10}, "sad": {"f1": 0.0, "support": 0}}}}}
    figures.per_class_f1(evaluate, tmp_path / "f1.png")
    heights = [bar.get_height() for bar in drawn["fig"].axes[0].patches]
    assert heights[0] == 0.8 and np.isnan(heights[1])
