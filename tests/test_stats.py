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

