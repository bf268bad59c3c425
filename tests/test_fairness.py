"""The bias audit: known gaps, uncertainty, small/unknown groups, bad input, the stage."""

import json
import re

import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import equalized_odds_difference
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    f1_score,
    log_loss,
    recall_score,
)
from sklearn.model_selection import train_test_split

from benchmark import stages as stage_registry
from benchmark.__main__ import main
from benchmark.config import resolve_config
from benchmark.stages import fairness as fairness_stage
from fer_sklearn import fairness
from fer_sklearn.fairness import (
    ALL_MISSING,
    AMBIGUOUS,
    BAD_INTERSECTION,
    BAD_MIN_GROUP_SIZE,
    BAD_PROBA,
    CONTINUOUS,
    MISSING_VALUES,
    NOT_SCALAR,
    SINGLE_GROUP,
    UNKNOWN_INTERSECTION,
    UNKNOWN_LABELS,
    WRONG_LENGTH,
    audit_fairness,
    check_sensitive_features,
    group_balanced_indices,
    sensitive_groups,
    significant_gaps,
)
from fer_sklearn.reporting.markdown import ci

CLASSES = ["angry", "happy", "sad"]


def _known_gap(n_a=200, n_b=200, right_a=180, right_b=120, seed=0):
    """Group a: right_a of n_a correct, group b: right_b of n_b; errors go to the
    next class. Rows are shuffled so groups interleave."""
    rng = np.random.default_rng(seed)
    y = np.array(CLASSES)[np.arange(n_a + n_b) % 3]
    group = np.array(["a"] * n_a + ["b"] * n_b, dtype=object)
    pred = y.copy()
    wrong = np.r_[np.arange(right_a, n_a), n_a + np.arange(right_b, n_b)]
    pred[wrong] = np.array(CLASSES)[(np.searchsorted(CLASSES, y[wrong]) + 1) % 3]
    order = rng.permutation(n_a + n_b)
    return y[order], pred[order], pd.DataFrame({"g": group[order]})


def approx(x):
    # results are rounded to 6 decimals
    return pytest.approx(x, abs=1e-6)


def _msg(template, **fields):
    return re.escape(template.format(**fields))


# --------------------------------------------------------------------------- #
# Metrics, gaps, MetricFrame agreement
# --------------------------------------------------------------------------- #
def test_a_known_accuracy_gap_is_measured_exactly_and_flagged():
    y, pred, groups = _known_gap()
    audit = audit_fairness(y, pred, groups, labels=CLASSES, n_boot=300)
    f = audit.results["features"]["g"]
    assert f["groups"]["a"]["metrics"]["accuracy"]["value"] == approx(0.9)
    assert f["groups"]["b"]["metrics"]["accuracy"]["value"] == approx(0.6)
    gap = f["gaps"]["accuracy"]
    between = gap["difference"]["between_groups"]
    assert between["value"] == approx(0.3) and between["groups"] == ["a", "b"]
    assert between["significant"] and 0 < between["low"] < 0.3 < between["high"]
    assert gap["difference"]["to_overall"]["value"] == approx(0.15)
    assert gap["ratio"]["between_groups"]["value"] == approx(0.6 / 0.9)
    assert gap["ratio"]["between_groups"]["significant"]  # its interval lies below 1
    assert gap["worst_group"] == {"group": "b", "value": approx(0.6),
                                  "significantly_worse": True}
    vs = f["groups"]["b"]["vs_rest"]["accuracy"]
    assert vs["value"] == approx(-0.3) and vs["worse"] and vs["high"] < 0
    assert not f["groups"]["a"]["vs_rest"]["accuracy"]["worse"]
    found = significant_gaps(audit.results)
    keys = [(g["metric"] == "log_loss", -g["value"]) for g in found]
    assert keys == sorted(keys)  # largest first, log loss (another unit) after the rates
    acc = [g for g in found if g["metric"] == "accuracy"]
    assert acc == [{"feature": "g", "metric": "accuracy", "groups": ["a", "b"],
                    "value": approx(0.3), "low": between["low"],
                    "high": between["high"], "worst_group": "b", "class": None}]


def test_every_gap_equals_metricframe_difference_and_ratio_when_all_groups_are_judged():
    y, pred, groups = _known_gap(right_a=170, right_b=130)
    groups["h"] = np.where(np.arange(len(y)) % 2, "x", "y")
    proba = np.full((len(y), 3), 0.2)
    proba[np.arange(len(y)), np.searchsorted(CLASSES, pred)] = 0.6
    audit = audit_fairness(y, pred, groups, y_proba=proba, labels=CLASSES, n_boot=50)
    for feature in ("g", "h"):
        mf = audit.frames[feature]
        gaps = audit.results["features"][feature]["gaps"]
        for method in ("between_groups", "to_overall"):
            diff, ratio = mf.difference(method=method), mf.ratio(method=method)
            for metric in audit.results["metrics"]:
                ours = gaps[metric]
                assert ours["difference"][method]["value"] == approx(
                    diff[metric]), (feature, metric, method)
                if ours["ratio"][method]["value"] is not None:
                    assert ours["ratio"][method]["value"] == approx(
                        ratio[metric]), (feature, metric, method)


def test_group_metrics_match_sklearn():
    rng = np.random.default_rng(3)
    n = 300
    y = rng.choice(CLASSES, n)
    pred = np.where(rng.random(n) < 0.6, y, rng.choice(CLASSES, n))
    proba = rng.dirichlet(np.ones(3), n)
    groups = pd.DataFrame({"g": rng.choice(["u", "v"], n)})
    audit = audit_fairness(y, pred, groups, y_proba=proba, labels=CLASSES, n_boot=20)
    f = audit.results["features"]["g"]
    for g in ("u", "v"):
        m = groups["g"].to_numpy() == g
        got = f["groups"][g]["metrics"]
        assert got["accuracy"]["value"] == approx(accuracy_score(y[m], pred[m]))
        assert got["balanced_accuracy"]["value"] == approx(
            balanced_accuracy_score(y[m], pred[m]))
        assert got["macro_f1"]["value"] == approx(f1_score(y[m], pred[m], average="macro"))
        assert got["log_loss"]["value"] == approx(
            log_loss(y[m], proba[m], labels=CLASSES))
        recalls = recall_score(y[m], pred[m], labels=CLASSES, average=None)
        for c, r in zip(CLASSES, recalls):
            assert got[f"recall[{c}]"]["value"] == approx(r)
            assert got[f"selection_rate[{c}]"]["value"] == approx(np.mean(pred[m] == c))
            neg = y[m] != c
            assert got[f"fpr[{c}]"]["value"] == approx(np.mean(pred[m][neg] == c))
            interval = got[f"recall[{c}]"]
            assert interval["low"] <= interval["value"] <= interval["high"]


def test_accuracy_and_macro_f1_move_with_the_class_mix_where_balanced_accuracy_does_not():
    # Both groups' faces are treated alike: every `a` right, half of the `b`s taken
    # for `a`. Only the mix differs (80/20 against 20/80), as the report says.
    y = np.array(["a"] * 80 + ["b"] * 20 + ["a"] * 20 + ["b"] * 80)
    pred = np.array(["a"] * 80 + ["b"] * 10 + ["a"] * 10 + ["a"] * 20 + ["b"] * 40 + ["a"] * 40)
    proba = np.where((y == "a")[:, None], [0.9, 0.1], [0.4, 0.6])  # alike per class too
    groups = pd.DataFrame({"g": ["u"] * 100 + ["v"] * 100})
    audit = audit_fairness(y, pred, groups, y_proba=proba, labels=["a", "b"], n_boot=20)
    u, v = (audit.results["features"]["g"]["groups"][g]["metrics"] for g in ("u", "v"))
    assert u["balanced_accuracy"]["value"] == v["balanced_accuracy"]["value"] == approx(0.75)
    assert u["recall[b]"]["value"] == v["recall[b]"]["value"] == approx(0.5)
    assert (u["accuracy"]["value"], v["accuracy"]["value"]) == (approx(0.9), approx(0.6))
    assert u["macro_f1"]["value"] - v["macro_f1"]["value"] > 0.2
    assert v["log_loss"]["value"] - u["log_loss"]["value"] > 0.2
    # ...but balanced accuracy moves too when a group lacks a class: `w` has only `a`s
    y2, pred2 = np.append(y[:100], ["a"] * 40), np.append(pred[:100], ["a"] * 40)
    groups2 = pd.DataFrame({"g": ["u"] * 100 + ["w"] * 40})
    f = audit_fairness(y2, pred2, groups2, labels=["a", "b"], n_boot=20).results["features"]
    assert [f["g"]["groups"][g]["metrics"]["balanced_accuracy"]["value"]
            for g in ("u", "w")] == [approx(0.75), approx(1.0)]


def test_no_gap_is_significant_between_groups_that_do_not_differ():
    # Six groups, the same 70% accuracy in expectation. The largest-minus-
    # smallest difference is positive in every bootstrap resample, so a plain
    # interval of it would always exclude 0; the audit's must not.
    rng = np.random.default_rng(0)
    n = 1200
    y = rng.choice(CLASSES, n)
    next_class = np.array(CLASSES)[(np.searchsorted(CLASSES, y) + 1) % 3]
    pred = np.where(rng.random(n) < 0.7, y, next_class)
    groups = pd.DataFrame({"g": np.repeat(list("abcdef"), n // 6)})
    audit = audit_fairness(y, pred, groups, labels=CLASSES, n_boot=300)
    f = audit.results["features"]["g"]
    between = f["gaps"]["accuracy"]["difference"]["between_groups"]
    assert between["value"] > 0.03  # a visible gap by chance
    assert not between["significant"] and between["low"] < 0
    assert between["comparisons"] == 15
    assert not any(f["groups"][g]["vs_rest"]["accuracy"]["significant"] for g in "abcdef")
    assert significant_gaps(audit.results) == []


def test_same_seed_same_numbers_other_seed_other_intervals():
    y, pred, groups = _known_gap()
    a = audit_fairness(y, pred, groups, labels=CLASSES, n_boot=100, random_state=1)
    b = audit_fairness(y, pred, groups, labels=CLASSES, n_boot=100, random_state=1)
    c = audit_fairness(y, pred, groups, labels=CLASSES, n_boot=100, random_state=2)
    assert a.results == b.results
    ga, gc = (x.results["features"]["g"]["groups"]["b"]["metrics"]["accuracy"] for x in (a, c))
    assert ga["value"] == gc["value"] and ga["low"] != gc["low"]
    json.dumps(a.to_dict(), allow_nan=False)  # plain JSON, no NaN


# --------------------------------------------------------------------------- #
# Small groups, unknown groups, intersections, representation
# --------------------------------------------------------------------------- #
def test_small_groups_are_shown_but_not_judged():
    y, pred, groups = _known_gap(n_a=200, n_b=200, right_a=160, right_b=150)
    tiny = 12
    y = np.r_[y, np.array(CLASSES)[np.arange(tiny) % 3]]
    pred = np.r_[pred, np.array(CLASSES)[(np.arange(tiny) + 1) % 3]]  # all wrong
    groups = pd.concat([groups, pd.DataFrame({"g": ["c"] * tiny})], ignore_index=True)
    audit = audit_fairness(y, pred, groups, labels=CLASSES, n_boot=100, min_group_size=30)
    f = audit.results["features"]["g"]
    c = f["groups"]["c"]
    assert c["status"] == "too small" and c["n"] == tiny and c["vs_rest"] == {}
    accuracy = c["metrics"]["accuracy"]
    assert accuracy["value"] == 0.0 and accuracy["low"] == 0.0
    assert accuracy["high"] > 0.2  # 0 of 12 is no certainty: not a collapsed [0, 0]
    assert f["order"] == ["a", "b", "c"] and f["judged"] == ["a", "b"]
    gap = f["gaps"]["accuracy"]
    assert gap["difference"]["between_groups"]["groups"] == ["a", "b"]
    assert gap["worst_group"]["group"] == "b"
    judged = audit_fairness(y, pred, groups, labels=CLASSES, n_boot=100, min_group_size=10)
    jf = judged.results["features"]["g"]
    assert jf["groups"]["c"]["status"] == "ok"
    assert jf["gaps"]["accuracy"]["worst_group"]["group"] == "c"
    assert jf["gaps"]["accuracy"]["difference"]["between_groups"]["value"] == approx(0.8)


def test_one_large_group_leaves_nothing_to_judge_and_says_so():
    y, pred, groups = _known_gap(n_a=200, n_b=20)
    f = audit_fairness(y, pred, groups, labels=CLASSES, n_boot=20).results["features"]["g"]
    assert f["judged"] == ["a"] and f["gaps"] == {} and "fewer than two groups" in f["note"]


def test_a_perfect_tiny_group_is_not_declared_significantly_better():
    # 8 of 8 right: every bootstrap resample repeats 100%, a zero-width interval.
    y, pred, groups = _known_gap(n_a=200, n_b=8, right_a=150, right_b=8)
    f = audit_fairness(y, pred, groups, labels=CLASSES, n_boot=100,
                       min_group_size=5).results["features"]["g"]
    vs = f["groups"]["b"]["vs_rest"]["accuracy"]
    assert vs["value"] == approx(0.25) and not vs["significant"]
    assert f["gaps"]["accuracy"]["difference"]["between_groups"]["se"] > 0.03


def _faces_with_a_rare_class(*groups):
    """Faces of three common classes and a rare fourth, by group: each of
    ``groups`` is ``(name, each, right, rare, rare_right)``, ``each`` faces of
    every common class (``right`` of them right, the others predicted as the
    next class) and ``rare`` of the rare one (``rare_right`` right)."""
    classes = CLASSES + ["zrare"]
    y, pred, labels = [], [], []
    for name, each, right, rare, rare_right in groups:
        for i, c in enumerate(CLASSES):
            y += [c] * each
            pred += [c] * right + [CLASSES[(i + 1) % 3]] * (each - right)
        y += ["zrare"] * rare
        pred += ["zrare"] * rare_right + ["angry"] * (rare - rare_right)
        labels += [name] * (3 * each + rare)
    return np.array(y), np.array(pred), pd.DataFrame({"g": labels}), classes


def _rare_class_faces(n_each, right, n_rare):
    """A large group, 70% right in each of three classes and a rare fourth, and
    a small group with ``n_each`` faces of each common class, ``right`` of
    them right, and ``n_rare`` faces of the rare class, all wrong."""
    return _faces_with_a_rare_class(("big", 700, 490, 20, 14),
                                    ("small", n_each, right, n_rare, 0))


def test_null_variance_of_balanced_accuracy_matches_its_formula():
    # Balanced accuracy is a mean of per-class recalls: with the recalls r_c of
    # the whole test set and the group's rows m_c per class, its variance is
    # sum r_c (1 - r_c) / m_c / K^2; the simulated one must agree.
    y, pred, groups, classes = _rare_class_faces(13, 9, 1)
    index = {c: i for i, c in enumerate(classes)}
    t, p = (np.array([index[c] for c in v]) for v in (y, pred))
    all_cm = fairness._cm(t, p, 4)
    small = (groups["g"] == "small").to_numpy()
    cm = fairness._cm(t[small], p[small], 4)[None]
    got = fairness._null_var(cm, all_cm, classes, ["balanced_accuracy"], 20000,
                             np.random.default_rng(0))[0]["balanced_accuracy"][0]
    r = np.diag(all_cm) / all_cm.sum(1)
    m = cm[0].sum(1)
    assert got == pytest.approx(np.sum(r * (1 - r) / m) / 16, rel=0.05)
    # far above p (1 - p) / n, the floor of a pooled rate over the group's faces
    assert got > 2.5 * 0.7 * 0.3 / 40


@pytest.mark.parametrize("metric, n_each, right, n_rare", [
    ("balanced_accuracy", 10, 7, 2),
    ("macro_f1", 13, 9, 1),
])
def test_rare_class_faces_wrong_in_a_small_group_are_not_a_significant_gap(
        metric, n_each, right, n_rare):
    # The small group is right on 70% of its common faces, as the large one,
    # but wrong on its one or two faces of the rare class (by chance, in one
    # group in ten or three). Its balanced accuracy or macro-F1 falls about 18
    # and 22 points, all from those faces; with the null variance of a pooled
    # rate over the group's faces, that used to be called significant.
    y, pred, groups, classes = _rare_class_faces(n_each, right, n_rare)
    f = audit_fairness(y, pred, groups, labels=classes, n_boot=300).results["features"]["g"]
    between = f["gaps"][metric]["difference"]["between_groups"]
    assert between["groups"] == ["big", "small"] and between["value"] > 0.17
    assert not between["significant"]
    assert not f["groups"]["small"]["vs_rest"][metric]["significant"]
    # Its common faces right less often (45%): a fall that many faces make.
    y, pred, groups, classes = _rare_class_faces(40, 18, n_rare)
    f = audit_fairness(y, pred, groups, labels=classes, n_boot=300).results["features"]["g"]
    assert f["gaps"][metric]["difference"]["between_groups"]["significant"]
    assert f["groups"]["small"]["vs_rest"][metric]["significant"]


def test_distance_to_overall_of_balanced_accuracy_agrees_with_the_gap_of_two_groups():
    # Two groups: the distance of either to the whole test set is the gap,
    # scaled. For balanced accuracy the scale is not the group's share of the
    # faces: the large group holds 3,002 of 3,502 faces but 2 of the 52 rare
    # ones. Its null variance is simulated with the whole test set, not
    # scaled from the gap's, or the distance is flagged where the gap is not.
    y, pred, groups, classes = _faces_with_a_rare_class(("big", 1000, 700, 2, 0),
                                                        ("small", 150, 105, 50, 30))
    f = audit_fairness(y, pred, groups, labels=classes, n_boot=500).results["features"]["g"]
    gaps = f["gaps"]["balanced_accuracy"]
    between, to_overall = gaps["difference"]["between_groups"], gaps["difference"]["to_overall"]
    assert between["value"] > 0.14 and not between["significant"]
    assert to_overall["groups"] == ["big"] and to_overall["value"] > 0.14
    assert not to_overall["significant"] and not gaps["ratio"]["to_overall"]["significant"]
    # its standard error is about the gap's times the distance's scale (here
    # 0.144 / 0.150), not times the face share of the small group (0.14)
    assert to_overall["se"] > 0.8 * between["se"]


@pytest.mark.slow
def test_false_flags_stay_near_the_stated_level_for_every_headline_metric():
    # 100 test sets of FER2013's PublicTest size and its predicted race groups
    # (3052 / 397 / 91 / 46 faces), every group predicted by one confusion
    # matrix with a rare class: any flag (the gap, the distance to overall or a
    # group against the rest) is false. Each of the three is a 5% claim; they
    # largely coincide.
    names = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
    prior = np.array([.138, .015, .143, .25, .169, .111, .174])
    conf = np.array([[.60, .02, .08, .04, .12, .03, .11], [.25, .55, .05, .04, .06, .02, .03],
                     [.09, .01, .48, .04, .17, .11, .10], [.02, 0, .02, .88, .02, .02, .04],
                     [.08, .005, .09, .04, .55, .015, .22], [.03, 0, .10, .04, .02, .78, .03],
                     [.05, 0, .05, .05, .15, .02, .68]])
    conf /= conf.sum(1, keepdims=True)
    sizes = [3052, 397, 91, 46]
    flags = {m: 0 for m in ("accuracy", "balanced_accuracy", "macro_f1")}
    runs = 100
    for run in range(runs):
        rng = np.random.default_rng(run)
        y = rng.choice(7, size=sum(sizes), p=prior / prior.sum())
        pred = (rng.random(len(y))[:, None] > np.cumsum(conf[y], 1)).sum(1).clip(0, 6)
        g = rng.permutation(np.repeat(list("abcd"), sizes))
        f = audit_fairness(np.array(names)[y], np.array(names)[pred], {"g": g}, labels=names,
                           n_boot=300, random_state=run).results["features"]["g"]
        for m in flags:
            difference = f["gaps"][m]["difference"]
            flags[m] += (difference["between_groups"]["significant"]
                         or difference["to_overall"]["significant"]
                         or any(rec["vs_rest"][m]["significant"]
                                for rec in f["groups"].values()))
    # 5% of 100 runs, with room for chance (P(X >= 10) < 3% at 5%)
    assert all(count <= 9 for count in flags.values()), flags


@pytest.mark.parametrize("metric", ["accuracy", "balanced_accuracy", "macro_f1"])
def test_a_tiny_perfect_group_has_an_honest_interval_for_every_headline_metric(metric):
    # 2 faces, both right: 100% of 2 is not [100%, 100%] for any headline metric.
    y, pred, groups = _known_gap(n_a=60, n_b=60, right_a=45, right_b=45)
    y = np.r_[y, ["angry", "happy"]]
    pred = np.r_[pred, ["angry", "happy"]]
    groups = pd.concat([groups, pd.DataFrame({"g": ["c", "c"]})], ignore_index=True)
    f = audit_fairness(y, pred, groups, labels=CLASSES, n_boot=100).results["features"]["g"]
    tiny = f["groups"]["c"]["metrics"]
    assert tiny[metric]["value"] == 1.0 and tiny[metric]["high"] == 1.0
    assert tiny[metric]["low"] == approx(tiny["accuracy"]["low"])  # Wilson for 2 of 2
    assert tiny[metric]["low"] < 0.4


@pytest.mark.parametrize("n_b, right_b", [(10, 10), (200, 125), (200, 150)])
def test_a_ratio_is_significant_exactly_when_its_difference_is(n_b, right_b):
    # A perfect group of 10 next to a 75% group: the difference is not
    # significant, so its ratio (75 / 100) may not be either.
    y, pred, groups = _known_gap(n_a=200, n_b=n_b, right_a=150, right_b=right_b)
    f = audit_fairness(y, pred, groups, labels=CLASSES, n_boot=200,
                       min_group_size=5).results["features"]["g"]
    for metric in f["gaps"]:
        d, r = f["gaps"][metric]["difference"], f["gaps"][metric]["ratio"]
        for method in ("between_groups", "to_overall"):
            if r[method]["value"] is None:
                continue
            # The ratio to overall may pick another group than the difference.
            if sorted(r[method]["groups"]) == sorted(d[method]["groups"]):
                assert r[method]["significant"] == d[method]["significant"], (metric, method)
            excludes_one = r[method]["high"] < 1 or r[method]["low"] > 1
            assert excludes_one == r[method]["significant"], (metric, method)
            assert r[method]["low"] <= r[method]["value"] <= r[method]["high"]
    if n_b == 10:
        assert not f["gaps"]["accuracy"]["ratio"]["between_groups"]["significant"]
    else:
        assert f["gaps"]["accuracy"]["ratio"]["between_groups"]["significant"] == (
            right_b == 125)


@pytest.mark.parametrize("n_a, n_b, right_a, right_b", [(150, 150, 105, 117),
                                                         (200, 10, 150, 10)])
def test_the_distance_to_overall_counts_the_group_inside_the_overall_value(
        n_a, n_b, right_a, right_b):
    # With two groups, group minus overall is (1 - share) times group minus the
    # other group: its standard error is the gap's, scaled, whether it comes from
    # the bootstrap (150 and 150) or from the z-test floor (a perfect group of 10).
    y, pred, groups = _known_gap(n_a=n_a, n_b=n_b, right_a=right_a, right_b=right_b)
    f = audit_fairness(y, pred, groups, labels=CLASSES, n_boot=300,
                       min_group_size=5).results["features"]["g"]
    d = f["gaps"]["accuracy"]["difference"]
    far = d["to_overall"]["groups"][0]
    share = f["groups"][far]["n"] / (n_a + n_b)
    assert d["to_overall"]["se"] == pytest.approx((1 - share) * d["between_groups"]["se"],
                                                  rel=1e-4)
    assert d["to_overall"]["significant"] == d["between_groups"]["significant"]


def test_with_two_groups_vs_rest_is_the_gap_itself():
    # 0.88 vs 0.80 in 200 faces each: significant with one comparison, not with
    # the two a Bonferroni over groups would count.
    y, pred, groups = _known_gap(n_a=200, n_b=200, right_a=176, right_b=160)
    f = audit_fairness(y, pred, groups, labels=CLASSES, n_boot=300).results["features"]["g"]
    between = f["gaps"]["accuracy"]["difference"]["between_groups"]
    assert between["significant"] and between["comparisons"] == 1
    for g, sign in (("a", 1), ("b", -1)):
        vs = f["groups"][g]["vs_rest"]["accuracy"]
        assert vs["comparisons"] == 1 and vs["significant"]
        assert vs["value"] == approx(sign * between["value"])
        assert vs["se"] == approx(between["se"])
    assert f["groups"]["b"]["vs_rest"]["accuracy"]["worse"]
    # Unknown rows make each group's rest differ from the other group: two contrasts.
    groups.loc[:19, "g"] = None
    f = audit_fairness(y, pred, groups, labels=CLASSES, n_boot=50,
                       min_group_size=5).results["features"]["g"]
    assert f["groups"]["a"]["vs_rest"]["accuracy"]["comparisons"] == 2


def test_missing_values_form_an_explicit_unknown_group_or_raise():
    y, pred, groups = _known_gap()
    groups.loc[:9, "g"] = None
    groups.loc[10:14, "g"] = np.nan
    groups.loc[15:19, "g"] = ""
    audit = audit_fairness(y, pred, groups, labels=CLASSES, n_boot=20, min_group_size=5)
    f = audit.results["features"]["g"]
    assert f["order"][-1] == "unknown" and f["groups"]["unknown"]["n"] == 20
    assert f["groups"]["unknown"]["status"] == "unknown" and "unknown" not in f["judged"]
    assert sum(r["n"] for r in f["groups"].values()) == len(y)
    with pytest.raises(ValueError, match=_msg(MISSING_VALUES, column="g", count=20, n=len(y),
                                              row=0)):
        audit_fairness(y, pred, groups, labels=CLASSES, missing="error")


def test_intersections_name_groups_by_their_parts():
    y, pred, groups = _known_gap()
    groups["age"] = np.where(np.arange(len(y)) % 4 == 0, "old", "young")
    groups.loc[0, "age"] = None
    audit = audit_fairness(y, pred, groups, labels=CLASSES, n_boot=20,
                           intersections=[("g", "age")])
    assert audit.features == ["g", "age", "g x age"]
    f = audit.results["features"]["g x age"]
    assert f["columns"] == ["g", "age"]
    assert f["order"][:4] == ["a & old", "a & young", "b & old", "b & young"]
    assert sum(r["n"] for r in f["groups"].values()) == len(y)
    unknown = [g for g, r in f["groups"].items() if r["status"] == "unknown"]
    assert len(unknown) == 1 and "unknown" in unknown[0]
    labels = sensitive_groups(groups, ["g", "age"])
    assert labels[0] == "unknown" and labels[1] in f["groups"]
    # rows with a missing part are kept as they are by the mitigation's resampling
    idx = group_balanced_indices(labels, y, random_state=0)
    assert np.sum(idx == 0) == 1
    mask = (groups["g"] == "b").to_numpy() & (groups["age"] == "old").to_numpy()
    assert f["groups"]["b & old"]["metrics"]["accuracy"]["value"] == approx(
        accuracy_score(y[mask], pred[mask]))


def test_representation_reports_training_shares_beside_the_metrics():
    y, pred, groups = _known_gap()
    y_train = np.array(["sad"] * 50 + ["happy"] * 150 + ["angry"] * 100)
    g_train = np.array(["b"] * 5 + ["a"] * 45 + ["b"] * 45 + ["a"] * 105 + ["a"] * 100)
    audit = audit_fairness(y, pred, groups, labels=CLASSES, n_boot=20,
                           train_features=pd.DataFrame({"g": g_train}), y_train=y_train)
    b = audit.results["features"]["g"]["groups"]["b"]
    assert b["n_train"] == 50 and b["train_share"] == approx(50 / 300)
    assert b["train_share_by_class"] == {"angry": 0.0, "happy": approx(0.3),
                                         "sad": approx(0.1)}
    assert audit.results["features"]["g"]["equal_share"] == 0.5
    table = audit.by_group("g")
    assert table.loc["b", "train_share"] == approx(50 / 300)
    assert table.loc["a", "accuracy"] == approx(0.9)
    # a group seen only in test is one of the groups an equal share divides among
    # (it was once left out: 1/2 where three groups are audited)
    only_a_b = g_train.copy()
    test_groups = groups.copy()
    test_groups["g"] = np.where(np.arange(len(test_groups)) % 3 == 0, "c", test_groups["g"])
    audit = audit_fairness(y, pred, test_groups, labels=CLASSES, n_boot=20,
                           train_features=pd.DataFrame({"g": only_a_b}), y_train=y_train)
    assert audit.results["features"]["g"]["groups"]["c"]["n_train"] == 0
    assert audit.results["features"]["g"]["equal_share"] == approx(1 / 3)


def test_groups_seen_only_in_training_are_listed_as_absent():
    y, pred, groups = _known_gap()
    g_train = np.array(["a", "b", "z"] * 10)
    audit = audit_fairness(y, pred, groups, labels=CLASSES, n_boot=20,
                           train_features={"g": g_train}, y_train=["happy"] * 30)
    f = audit.results["features"]["g"]
    assert f["order"] == ["a", "b", "z"]
    assert f["groups"]["z"]["status"] == "absent from test" and f["groups"]["z"]["n"] == 0


def test_unknown_values_seen_only_in_training_keep_their_training_share():
    # such rows were once dropped from the table: the shares then did not add up
    y, pred, groups = _known_gap()
    g_train = np.array(["a", "b", None] * 10, dtype=object)
    audit = audit_fairness(y, pred, groups, labels=CLASSES, n_boot=20,
                           train_features={"g": g_train}, y_train=["happy"] * 30)
    f = audit.results["features"]["g"]
    assert f["order"] == ["a", "b", "unknown"]
    assert f["groups"]["unknown"]["status"] == "unknown" and f["groups"]["unknown"]["n"] == 0
    assert sum(f["groups"][g]["train_share"] for g in f["order"]) == pytest.approx(1.0, abs=1e-5)
    assert f["equal_share"] == approx(1 / 2)  # divided among the known groups only
    assert audit.by_group("g").loc["unknown", "train_share"] == approx(1 / 3)


def test_non_string_values_become_group_names():
    y, pred, groups = _known_gap()
    frame = pd.DataFrame({"flag": groups["g"] == "a", "level": np.where(groups["g"] == "a", 2, 10),
                          "cat": pd.Categorical(groups["g"], categories=["b", "a"])})
    audit = audit_fairness(y, pred, frame, labels=CLASSES, n_boot=20)
    assert audit.results["features"]["flag"]["order"] == ["False", "True"]
    assert audit.results["features"]["level"]["order"] == ["2", "10"]  # by value
    assert audit.results["features"]["cat"]["order"] == ["b", "a"]  # categorical order
    # integer-valued floats with NaN: how pandas stores an int column with gaps
    floats = pd.DataFrame({"level": np.where(groups["g"] == "a", 2.0, 3.0)})
    floats.loc[:4, "level"] = np.nan
    f = audit_fairness(y, pred, floats, labels=CLASSES, n_boot=20,
                       min_group_size=5).results["features"]["level"]
    assert f["order"] == ["2", "3", "unknown"] and f["groups"]["unknown"]["n"] == 5


# --------------------------------------------------------------------------- #
# One-vs-rest parity against a manual computation
# --------------------------------------------------------------------------- #
def _manual_ovr(y, pred, g, classes):
    dp, eo = {}, {}
    groups = sorted(set(g))
    for c in classes:
        sel = [np.mean(pred[g == k] == c) for k in groups]
        tpr = [np.mean(pred[(g == k) & (y == c)] == c) for k in groups
               if np.any((g == k) & (y == c))]
        fpr = [np.mean(pred[(g == k) & (y != c)] == c) for k in groups]
        dp[c] = max(sel) - min(sel)
        eo[c] = max(max(tpr) - min(tpr) if len(tpr) > 1 else 0.0, max(fpr) - min(fpr))
    return dp, eo


def test_one_vs_rest_parity_matches_a_manual_computation():
    rng = np.random.default_rng(5)
    n = 600
    g = rng.choice(["p", "q", "r"], n)
    y = rng.choice(CLASSES, n)
    pred = np.where(rng.random(n) < np.where(g == "r", 0.4, 0.8), y, rng.choice(CLASSES, n))
    audit = audit_fairness(y, pred, pd.DataFrame({"g": g}), labels=CLASSES, n_boot=100)
    ovr = audit.results["features"]["g"]["one_vs_rest"]
    dp, eo = _manual_ovr(y, pred, g, CLASSES)
    for c in CLASSES:
        assert ovr["demographic_parity_difference"]["per_class"][c]["value"] == approx(dp[c])
        assert ovr["equalized_odds_difference"]["per_class"][c]["value"] == approx(eo[c])
    top = ovr["equalized_odds_difference"]["max"]
    assert top["class"] == max(eo, key=eo.get) and top["value"] == approx(max(eo.values()))
    assert top["significant"] and top["comparisons"] == 3 * 3 * 2
    assert ovr["demographic_parity_difference"]["max"]["value"] == approx(max(dp.values()))


def test_equalized_odds_ignores_groups_without_the_class_where_fairlearn_counts_zero():
    y, pred, groups = _known_gap(n_a=120, n_b=120)
    y, pred = y.astype(object), pred.astype(object)
    b = (groups["g"] == "b").to_numpy()
    rare = np.flatnonzero(~b)[:6]
    y[rare], pred[rare] = "fear", "fear"  # fear only in group a, always right
    labels = CLASSES + ["fear"]
    audit = audit_fairness(y, pred, groups, labels=labels, n_boot=50)
    rec = audit.results["features"]["g"]["one_vs_rest"]["equalized_odds_difference"][
        "per_class"]["fear"]
    raw = equalized_odds_difference(y == "fear", pred == "fear", sensitive_features=groups["g"])
    assert raw == approx(1.0)  # fairlearn: group b's undefined TPR counted as 0
    assert rec["value"] == approx(0.0) and rec["groups_without_class"] == ["b"]


# --------------------------------------------------------------------------- #
# Bad input: clear errors that name the column and the fix
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("column, message", [
    (["dark", "dark", "dark", "dark"], _msg(SINGLE_GROUP, column="x", group="dark")),
    ([None, np.nan, None, np.nan], _msg(ALL_MISSING, column="x")),
    ([1.5, 2.5, 1.5, 2.0], _msg(CONTINUOUS, column="x", example=1.5)),
    ([["a"], ["b"], ["a"], ["b"]], _msg(NOT_SCALAR, column="x", type="list", row=0)),
    (["1", 1, "2", 2], re.escape(AMBIGUOUS.split("(")[0].format(column="x"))),
    (["a", "b", "a"], _msg(WRONG_LENGTH, column="x", n=3, n_true=4)),
])
def test_bad_sensitive_columns_raise_naming_the_column_and_the_fix(column, message):
    y = ["happy", "sad", "happy", "sad"]
    with pytest.raises(ValueError, match=message):
        audit_fairness(y, y, {"x": column}, n_boot=10)
    assert check_sensitive_features({"x": column}, 4)["x"]


def test_every_bad_column_is_reported_in_one_error():
    y = ["happy", "sad"] * 5
    frame = pd.DataFrame({"one": ["a"] * 10, "none": [None] * 10, "ok": ["u", "v"] * 5})
    with pytest.raises(ValueError) as info:
        audit_fairness(y, y, frame, n_boot=10)
    message = str(info.value)
    assert "'one'" in message and "'none'" in message and "'ok'" not in message
    assert check_sensitive_features(frame, 10).keys() == {"one", "none"}


@pytest.mark.parametrize("kwargs, message", [
    ({"intersections": [("g", "age")]}, _msg(UNKNOWN_INTERSECTION, intersection=("g", "age"),
                                             missing="age", valid=["g"])),
    ({"intersections": [("g", "g")]}, _msg(BAD_INTERSECTION, intersection=("g", "g"),
                                           valid=["g"])),
    ({"min_group_size": 0}, _msg(BAD_MIN_GROUP_SIZE, value=0)),
    ({"y_proba": np.ones((3, 3))}, _msg(BAD_PROBA, n=400, k=3, shape=(3, 3))),
    ({"labels": ["angry", "happy"]}, _msg(UNKNOWN_LABELS, what="y_true", values=["sad"])),
])
def test_bad_arguments_raise_clear_errors(kwargs, message):
    y, pred, groups = _known_gap()
    kwargs = {"labels": CLASSES, **kwargs}
    with pytest.raises(ValueError, match=message):
        audit_fairness(y, pred, groups, n_boot=10, **kwargs)


def test_public_names_exist():
    assert all(hasattr(fairness, name) for name in fairness.__all__)


def test_by_group_names_valid_features():
    y, pred, groups = _known_gap()
    audit = audit_fairness(y, pred, groups, labels=CLASSES, n_boot=10)
    with pytest.raises(ValueError, match="features: \\['g'\\]"):
        audit.by_group("tone")


# --------------------------------------------------------------------------- #
# Mitigation: group-balanced resampling
# --------------------------------------------------------------------------- #
def test_group_balanced_indices_equalise_groups_and_keep_the_class_mix():
    rng = np.random.default_rng(0)
    groups = np.array(["a"] * 900 + ["b"] * 100 + [None] * 20, dtype=object)
    y = np.where(rng.random(1020) < 0.3, "sad", "happy")
    y[900:1000] = np.where(np.arange(100) < 80, "sad", "happy")  # b: mostly sad
    idx = group_balanced_indices(groups, y, random_state=0)
    assert len(idx) == 1020
    picked_g, picked_y = groups[idx], y[idx]
    assert np.sum(picked_g == "a") == np.sum(picked_g == "b") == 500
    assert np.sum(pd.isna(picked_g)) == 20 and len(set(idx[pd.isna(picked_g)])) == 20
    overall_sad = np.mean(y[:1000] == "sad")
    for g in ("a", "b"):
        assert np.mean(picked_y[picked_g == g] == "sad") == pytest.approx(overall_sad, abs=0.002)
    assert np.array_equal(idx, group_balanced_indices(groups, y, random_state=0))
    only_groups = group_balanced_indices(groups[:1000], random_state=1)
    assert np.sum(groups[only_groups] == "b") == 500


def test_group_balanced_indices_need_two_groups():
    with pytest.raises(ValueError, match="single group"):
        group_balanced_indices(["a"] * 5)
    # nor may the unknown group's rows, kept once each, take the whole resample
    with pytest.raises(ValueError, match="n_samples=2 leaves no row for each of the 2 known"):
        group_balanced_indices(["a", "b", None, None, None, "a", "b"], n_samples=2)


# --------------------------------------------------------------------------- #
# Config and the benchmark stage
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("toml, message", [
    ("min_group_size = 0\n", "min_group_size must be a positive integer"),
    ('fairness_mitigation = "larget"\n', "Did you mean 'largest'?"),
    ('fairness_intersections = [["tone"]]\n', "fairness_intersections must be"),
    ("fairness_n_boot = 1\n", "fairness_n_boot must be None or an integer >= 2"),
])
def test_fairness_config_is_validated(tmp_path, toml, message):
    path = tmp_path / "c.toml"
    path.write_text(toml)
    with pytest.raises(ValueError, match=re.escape(message)):
        resolve_config(path)


TINY_TOML = """
n_boot = 50
models = ["cnn", "resnet18"]
min_group_size = 5
fairness_mitigation = "largest"
[synthetic]
n_samples = 200
[recipes.cnn.params]
max_epochs = 1
module__width = 4
module__depth = 2
[recipes.resnet18.params]
max_epochs = 1
module__width = 4
"""


@pytest.fixture
def fairness_run(tmp_path, monkeypatch):
    """A tiny benchmark run through the fairness stage (later stages left out)."""
    stage_registry.ordered_stages()
    for name in [s for s, spec in stage_registry.STAGES.items() if spec.order > 40]:
        monkeypatch.delitem(stage_registry.STAGES, name)
    config = tmp_path / "tiny.toml"
    config.write_text(TINY_TOML)
    args = ["run", "--config", str(config), "--out", str(tmp_path / "runs"), "--name", "t"]
    assert main(args) == 0
    return tmp_path / "runs" / "t", args


def test_stage_audits_every_model_and_renders_a_section(fairness_run, monkeypatch):
    run_dir, args = fairness_run
    results = json.loads((run_dir / "results.json").read_text())
    stage = results["stages"]["fairness"]
    n_test = results["stages"]["data"]["n_test"]
    assert stage["features"] == ["tone", "age", "tone x age"]
    assert set(stage["models"]) == {"cnn", "resnet18"}
    for model, audit in stage["models"].items():
        for feature in stage["features"]:
            f = audit["features"][feature]
            assert sum(r["n"] for r in f["groups"].values()) == n_test
            for g, rec in f["groups"].items():
                assert (rec["status"] == "too small") == (0 < rec["n"] < 5), (g, rec["n"])
                assert 0 <= rec["train_share"] <= 1
        # The audit's overall accuracy is the evaluate stage's.
        assert audit["features"]["tone"]["overall"]["accuracy"]["value"] == approx(
            results["stages"]["evaluate"]["models"][model]["metrics"]["accuracy"]["value"])
    mitigation = stage["mitigation"]
    assert mitigation["status"] == "done" and mitigation["feature"] in stage["features"]
    assert mitigation["n_train_after"] > 0
    best = mitigation["model"]
    assert mitigation["before"]["gap"] == stage["models"][best]["features"][
        mitigation["feature"]]["gaps"]["accuracy"]["difference"]["between_groups"]
    for feature in stage["features"]:
        png = results["figures"][f"fairness_{feature.replace(' ', '_')}"]
        assert (run_dir / png).stat().st_size > 1000
    report = (run_dir / "report.md").read_text()
    for needle in ("## Fairness", "### `tone`", "### `age`", "### `tone x age`",
                   "#### cnn: `tone`", "#### resnet18: `tone x age`",
                   "### Mitigation: group-balanced resampling", "fairness_tone.png",
                   "can come from the mix alone"):
        assert needle in report
    assert "predicted by a model" not in report  # synthetic groups are ground truth
    cnn_tone = stage["models"]["cnn"]["features"]["tone"]
    for g in cnn_tone["order"]:
        shown = ci(cnn_tone["groups"][g]["metrics"]["accuracy"])
        assert f"| `{g}` " in report and shown in report
    (run_dir / "report.md").unlink()
    assert main(["report", str(run_dir)]) == 0
    assert (run_dir / "report.md").read_text() == report

    # --resume reuses the finished mitigation even when the stage itself reruns.
    (run_dir / "state" / "stage-fairness.json").unlink()

    def no_retraining(*a, **k):
        raise AssertionError("the mitigation was recomputed")

    monkeypatch.setattr(fairness_stage, "group_balanced_indices", no_retraining)
    assert main(args + ["--resume"]) == 0
    again = json.loads((run_dir / "results.json").read_text())["stages"]["fairness"]
    assert again["mitigation"] == mitigation


def test_stage_reports_unusable_attributes_instead_of_failing(tmp_path):
    from benchmark.runner import Context
    from benchmark.stages.data import DataSplit

    config = resolve_config(models=["cnn"], min_group_size=5, n_boot=20,
                            fairness_intersections=[["tone", "age"]])
    ctx = Context(config, tmp_path)
    rng = np.random.default_rng(0)

    def frame(n):
        return pd.DataFrame({"tone": rng.choice(["dark", "light"], n),
                             "score": rng.random(n), "site": ["x"] * n})

    y_train, y_test = rng.choice(CLASSES, 60), rng.choice(CLASSES, 40)
    ctx._data = DataSplit(X_train=np.zeros((60, 48, 48), np.uint8), y_train=y_train,
                          frame_train=frame(60), X_test=np.zeros((40, 48, 48), np.uint8),
                          y_test=y_test, frame_test=frame(40),
                          attributes=["tone", "score", "site"], protocol="", descr="")
    proba = np.eye(3)[np.searchsorted(CLASSES, y_test)]
    ctx.store.put_arrays("pred-cnn", y_pred=y_test.astype(str), proba=proba)
    ctx.results["evaluate"] = {"classes": CLASSES,
                               "models": {"cnn": {"metrics": {"accuracy": {"value": 1.0}}}}}
    out = fairness_stage.fairness_stage(ctx)
    assert out["attributes"] == ["tone"] and out["features"] == ["tone"]
    assert "non-integer numbers" in out["excluded"]["score"]
    assert "single group" in out["excluded"]["site"]
    assert "'age', which is not an audited attribute" in out["excluded"]["tone x age"]
    # A perfect model has no gap: nothing to mitigate, and no model was needed.
    assert out["mitigation"]["status"] == "skipped"
    assert "no significant accuracy gap" in out["mitigation"]["reason"]
    text = fairness_stage.fairness_section({"config": config.to_dict(),
                                            "stages": {"fairness": out}})
    assert "Not audited: `score`" in text and "Not audited: `tone x age`" in text
    assert "**cnn**: no significant between-group gap" in text


def test_section_names_predicted_attributes_and_unaudited_ones():
    results = {"config": {"models": ["m"], "seed": 0, "attributes": "/data/demographics.csv"},
               "stages": {"fairness": {
                   "attributes": [], "features": [], "models": {}, "min_group_size": 30,
                   "n_boot": 10, "confidence": 0.95, "predicted_attributes": True,
                   "excluded": {"age": "Sensitive feature 'age' holds non-integer numbers."},
                   "mitigation": {"status": "skipped", "reason": "no attribute could be audited"}}}}
    text = fairness_stage.fairness_section(results)
    assert "`demographics.csv`" in text and "predicted by a model" in text
    assert "Not audited: `age`" in text and "no attribute could be audited" in text


# --------------------------------------------------------------------------- #
# Acceptance on the synthetic benchmark (trains small CNNs: slow)
# --------------------------------------------------------------------------- #
def _train_and_audit(bias):
    from fer_sklearn import CNNClassifier, DenseNetClassifier, ResNetClassifier
    from fer_sklearn.datasets import make_synthetic_faces

    faces = make_synthetic_faces(3000, random_state=0, bias=bias)
    train, test = train_test_split(np.arange(3000), test_size=0.25, stratify=faces.target,
                                   random_state=0)
    models = {
        "cnn": CNNClassifier(module__width=16, module__depth=3, max_epochs=8, lr=3e-3,
                             lr_schedule="onecycle", random_state=0),
        "resnet18": ResNetClassifier(module__width=16, module__stem_stride=2, max_epochs=8,
                                     lr=3e-3, lr_schedule="onecycle", random_state=0),
        "densenet_bc": DenseNetClassifier(module__growth_rate=8, module__block_config=(3, 6, 6),
                                          module__stem_stride=2, max_epochs=8, lr=3e-3,
                                          lr_schedule="onecycle", random_state=0),
    }
    audits = {}
    for name, est in models.items():
        est.fit(faces.data[train], faces.target[train])
        audits[name] = audit_fairness(
            faces.target[test], est.predict(faces.data[test]), faces.frame.iloc[test][["tone"]],
            y_proba=est.predict_proba(faces.data[test]), labels=est.classes_, n_boot=500,
            random_state=0, train_features=faces.frame.iloc[train][["tone"]],
            y_train=faces.target[train])
    return audits


def _accuracy_summary(audit):
    f = audit.results["features"]["tone"]
    d = f["gaps"]["accuracy"]["difference"]["between_groups"]
    return {"groups": {g: f["groups"][g]["metrics"]["accuracy"] for g in f["order"]},
            "gap": d, "vs_rest": {g: f["groups"][g]["vs_rest"]["accuracy"] for g in f["order"]}}


@pytest.mark.slow
def test_audit_flags_the_injected_bias_for_every_model():
    bias = {"attribute": "tone", "group": "dark", "contrast": 0.3, "label_noise": 0.2}
    for name, audit in _train_and_audit(bias).items():
        s = _accuracy_summary(audit)
        print(name, json.dumps(s))
        assert s["gap"]["significant"] and s["gap"]["groups"][1] == "dark", name
        assert s["vs_rest"]["dark"]["worse"], name
        assert not any(s["vs_rest"][g]["worse"] for g in ("light", "medium")), name
        # Representation is not the cause: dark holds about a third of training.
        share = audit.results["features"]["tone"]["groups"]["dark"]["train_share"]
        assert 0.28 < share < 0.39


@pytest.mark.slow
def test_audit_flags_no_accuracy_gap_in_the_unbiased_control():
    for name, audit in _train_and_audit(None).items():
        s = _accuracy_summary(audit)
        print(name, json.dumps(s))
        assert not s["gap"]["significant"], name
        assert not any(v["significant"] for v in s["vs_rest"].values()), name


@pytest.mark.real_data
def test_fer2013_predicted_demographics_with_their_tiny_groups():
    from .conftest import DEMOGRAPHICS

    if not DEMOGRAPHICS.is_file():
        pytest.skip(f"FER2013 demographics not found at {DEMOGRAPHICS}")
    frame = pd.read_csv(DEMOGRAPHICS)
    frame = frame[frame["path"].str.startswith("validation/")].reset_index(drop=True)
    y = frame["path"].str.split("/").str[1].to_numpy()
    rng = np.random.default_rng(0)
    pred = np.where(rng.random(len(y)) < 0.6, y, rng.choice(sorted(set(y)), len(y)))
    audit = audit_fairness(y, pred, frame[["race", "age_group", "gender"]], n_boot=100,
                           intersections=[("race", "gender")])
    race = audit.results["features"]["race"]
    counts = frame["race"].value_counts()
    for group, rec in race["groups"].items():
        assert rec["n"] == counts[group]
        assert (rec["status"] == "too small") == (counts[group] < 30)
    assert race["groups"]["others"]["status"] == "too small"  # 3 faces: shown, not judged
    assert "others" not in race["gaps"]["accuracy"]["difference"]["between_groups"]["groups"]
    inter = audit.results["features"]["race x gender"]
    assert sum(r["n"] for r in inter["groups"].values()) == len(y)
    # Predictions that ignore the groups: no accuracy gap may be flagged.
    assert not any(g["metric"] == "accuracy" for g in audit.significant_gaps())


def test_summary_names_the_significant_gaps_that_its_table_shows():
    # No headline gap is significant, but the log loss and one one-vs-rest gap
    # are: the sentence must not read as "no significant gap" at all.
    def gap(value, significant, groups=("a", "b")):
        not_flagged = {"value": 0.01, "significant": False, "groups": ["a"]}
        return {"difference": {"between_groups": {
            "value": value, "low": value - 0.1, "high": value + 0.1,
            "significant": significant, "groups": list(groups)},
            "to_overall": dict(not_flagged)}, "ratio": {"to_overall": dict(not_flagged)}}

    group = {"metrics": {m: {"value": 0.6} for m in ("accuracy", "balanced_accuracy",
                                                      "macro_f1")}, "vs_rest": {}}
    f = {"note": None,
         "gaps": {"accuracy": gap(0.05, False), "balanced_accuracy": gap(0.04, False),
                  "macro_f1": gap(0.03, False), "log_loss": gap(0.2, True, ("b", "a"))},
         "groups": {"a": group, "b": group},
         "one_vs_rest": {"demographic_parity_difference": {"max": {
             "value": 0.18, "class": "surprise", "groups": ["a", "b"], "significant": True}}}}
    text = fairness_stage._model_sentence("cnn", f)
    assert text.startswith("**cnn**: no significant between-group gap in accuracy, balanced "
                           "accuracy or macro-F1. The largest, accuracy `a` vs `b`, is 5.0 pp")
    assert "The log loss is significantly higher for `b` than for `a` (by 0.200)." in text
    # in percentage points, like the table beside it
    assert "demographic-parity difference peaks at 18.0 pp for `surprise`" in text
    assert "whole test set" not in text
    # the groups the training-share sentences then discuss: those shown worse
    assert fairness_stage._named_worse(f) == {"b"}  # by its log loss
    f["groups"] = {"a": {**group, "vs_rest": {"macro_f1": {"worse": True}}},
                   "b": {**group, "vs_rest": {"accuracy": {"worse": True}}}}
    assert fairness_stage._named_worse(f) == {"b"}  # a vs-rest macro-F1 gap is not shown
    f["groups"] = {"a": group, "b": group}
    f["gaps"]["log_loss"] = gap(0.2, False)
    f["one_vs_rest"]["demographic_parity_difference"]["max"]["significant"] = False
    assert fairness_stage._model_sentence("cnn", f).endswith("which includes 0).")


@pytest.mark.parametrize("kind", ["difference", "ratio"])
def test_summary_names_a_significant_gap_to_overall_that_its_table_bolds(kind):
    # No between-group gap is significant, but one group's distance to the whole
    # test set is: the sentence must say so rather than only "no significant gap".
    def gap(value):
        rec = {"value": value, "low": value - 0.1, "high": value + 0.1,
               "significant": False, "groups": ["a", "c"]}
        far = {"value": 0.01, "significant": False, "groups": ["c"]}
        return {"difference": {"between_groups": rec, "to_overall": dict(far)},
                "ratio": {"between_groups": dict(rec), "to_overall": dict(far)}}

    def group(value):
        return {"metrics": {m: {"value": value} for m in ("accuracy", "balanced_accuracy",
                                                           "macro_f1")}, "vs_rest": {}}

    f = {"note": None, "one_vs_rest": {},
         "gaps": {"accuracy": gap(0.06), "balanced_accuracy": gap(0.05),
                  "macro_f1": gap(0.04)},
         "groups": {"a": group(0.66), "b": group(0.63), "c": group(0.6)},
         "overall": {m: {"value": 0.63} for m in ("accuracy", "balanced_accuracy",
                                                   "macro_f1")}}
    text = fairness_stage._model_sentence("cnn", f)
    assert "no significant between-group gap" in text and "whole test set" not in text
    f["gaps"]["balanced_accuracy"][kind]["to_overall"]["significant"] = True
    text = fairness_stage._model_sentence("cnn", f)
    assert text.endswith("which includes 0). `c` differs significantly from the whole test "
                         "set on balanced accuracy (60.0% vs 63.0%).")
    assert fairness_stage._named_worse(f) == {"c"}


def _mitigation_record(before, after):
    def side(accuracy, gap, significant):
        acc = {"value": accuracy, "low": accuracy - 0.02, "high": accuracy + 0.02}
        return {"accuracy": acc,
                "gap": {"value": gap, "low": gap - 0.05, "high": gap + 0.05,
                        "significant": significant, "groups": ["light", "dark"]},
                "worst_group": {"group": "dark", **acc},
                "groups": {"dark": {"accuracy": acc, "train_share": 0.3}}}

    return {"status": "done", "model": "cnn", "feature": "tone", "columns": ["tone"],
            "significant_before": before, "method": "group-balanced resampling",
            "n_train_before": 100, "n_train_after": 100, "fit_time_s": 1.0,
            "before": side(0.7, 0.08, before), "after": side(0.69, 0.1, after),
            "mcnemar": {"p_value": 0.5}}


@pytest.mark.parametrize("before, after, verdict", [
    (True, True, "still significant"),
    (True, False, "no longer significant"),
    (False, True, "newly significant"),
    (False, False, "still not significant"),
])
def test_mitigation_verdict_reads_true_for_every_change_of_significance(before, after,
                                                                        verdict):
    text = "\n".join(fairness_stage._mitigation_text(_mitigation_record(before, after)))
    assert f"The accuracy gap rose by 2.0 pp ({verdict} after retraining)" in text


def test_significant_gaps_rank_log_loss_after_the_rates():
    def gap(value):
        return {"difference": {"between_groups": {"significant": True, "groups": ["a", "b"],
                                                  "value": value, "low": value / 2,
                                                  "high": value * 2}},
                "worst_group": {"group": "b"}}

    results = {"features": {"g": {"gaps": {"accuracy": gap(0.03), "log_loss": gap(0.07),
                                           "macro_f1": gap(0.05)}}}}
    found = significant_gaps(results, metrics=["accuracy", "log_loss", "macro_f1"])
    assert [g["metric"] for g in found] == ["macro_f1", "accuracy", "log_loss"]


def test_summary_names_the_metric_of_a_significant_gap_to_the_rest():
    def gap(value, significant):
        return {"difference": {"between_groups": {
            "value": value, "low": value - 0.01, "high": value + 0.1,
            "significant": significant, "groups": ["a", "b"]}}}

    def group(value, worse=False):
        return {"metrics": {m: {"value": value} for m in ("accuracy", "balanced_accuracy",
                                                           "macro_f1")},
                "vs_rest": {"macro_f1": {"value": -0.07, "worse": worse}}}

    f = {"note": None, "one_vs_rest": {},
         "gaps": {"accuracy": gap(0.03, False), "balanced_accuracy": gap(0.04, False),
                  "macro_f1": gap(0.1, True)},
         "groups": {"a": group(0.7), "b": group(0.6, worse=True)}}
    text = fairness_stage._model_sentence("cnn", f)
    assert text.startswith("**cnn**: macro-F1 is 10.0 pp lower for `b` (60.0%)")
    assert "`b` is also significantly below the rest of the test set on macro-F1 (-7.0 pp)." in text
    assert fairness_stage._named_worse(f) == {"b"}


def test_figures_show_every_models_groups_when_their_training_rows_differ(tmp_path):
    # a group seen only in the training rows of one model (another's recipe caps
    # them) once ended the figures in a KeyError
    from benchmark.stages.fairness import draw_fairness_figures

    classes = ["angry", "happy"]
    y = np.array(classes * 50)
    pred = y.copy()
    pred[::7] = "angry"
    g_test = np.array(["a", "b"] * 50)
    g_train = np.array(["a", "b"] * 95 + ["z"] * 10)
    y_train = np.array(classes * 100)
    audits = {
        "cnn": audit_fairness(y, pred, {"g": g_test}, labels=classes, n_boot=20,
                              train_features={"g": g_train}, y_train=y_train),
        "seed_cnn": audit_fairness(y, pred, {"g": g_test}, labels=classes, n_boot=20,
                                   train_features={"g": g_train[:40]}, y_train=y_train[:40]),
    }
    assert [a.results["features"]["g"]["order"] for a in audits.values()] == [
        ["a", "b", "z"], ["a", "b"]]
    results = {"config": {"models": ["cnn", "seed_cnn"]}, "stages": {"fairness": {
        "features": ["g"], "models": {m: a.to_dict() for m, a in audits.items()}}}}
    figures = draw_fairness_figures(results, tmp_path)
    assert all((tmp_path / png).stat().st_size > 1000 for png in figures.values())
