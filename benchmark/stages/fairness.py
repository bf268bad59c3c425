"""Stage ``fairness``: bias audit of every model's test predictions, one mitigation.

For each sensitive attribute of the dataset and each intersection of two,
:func:`fer_sklearn.fairness.audit_fairness` measures every model's metrics per
group with bootstrap intervals and significance-tested gaps. Then the best
model is retrained once on a group-balanced resample of its training set for
the attribute with the largest significant accuracy gap, and the accuracy and
the gap are compared before and after. The report section renders from the
results alone.
"""

import itertools
import re
import time
from pathlib import Path

import numpy as np
from sklearn.base import clone

from fer_sklearn.fairness import (
    GROUP_SEP,
    INTERSECTION_SEP,
    audit_fairness,
    check_sensitive_features,
    group_balanced_indices,
    sensitive_groups,
)
from fer_sklearn.reporting.figures import new_figure, save_png
from fer_sklearn.reporting.markdown import ci, pct, register_section, table
from fer_sklearn.stats import mcnemar

from ..progress import FitProgress, log
from . import register_stage
from .data import training_rows
from .evaluate import predict_proba

MITIGATION_KEY = "fairness-mitigation"
UNKNOWN_ATTRIBUTE = (
    "fairness_intersections names {name!r}, which is not an audited attribute of this "
    "dataset; audited attributes: {valid}."
)
METHOD = ("group-balanced resampling (each group the same share of the training images, "
          "each with the training set's class mix: the uniform sampling of Kamiran & "
          "Calders, 2012, with equal group shares); the estimator is unchanged")

_HEADLINE = ("accuracy", "balanced_accuracy", "macro_f1")
_NAMES = {"accuracy": "accuracy", "balanced_accuracy": "balanced accuracy",
          "macro_f1": "macro-F1", "log_loss": "log loss",
          "demographic_parity_difference": "one-vs-rest demographic-parity difference",
          "equalized_odds_difference": "one-vs-rest equalized-odds difference"}


def _features(config, attributes):
    """Intersections to audit, and those that cannot be (name -> reason)."""
    if config.fairness_intersections is None:
        return [list(p) for p in itertools.combinations(attributes, 2)], {}
    chosen, excluded = [], {}
    for parts in config.fairness_intersections:
        missing = [a for a in parts if a not in attributes]
        if missing:
            excluded[INTERSECTION_SEP.join(parts)] = UNKNOWN_ATTRIBUTE.format(
                name=missing[0], valid=", ".join(attributes) or "none")
        else:
            chosen.append(list(parts))
    return chosen, excluded


def _applies(ctx):
    return bool(ctx.data.attributes)


def draw_fairness_figures(results, folder):
    """One bar chart per audited feature: accuracy per group and model, with
    95% CI whiskers; returns ``{key: file name}``."""
    stage = results["stages"]["fairness"]
    order = [m for m in results["config"]["models"] if m in stage["models"]]
    out = {}
    for feature in stage["features"]:
        key = f"fairness_{_slug(feature)}"
        out[key] = _group_bars(stage, feature, Path(folder) / f"{key}.png", order)
    return out


def _slug(feature):
    return re.sub(r"[^A-Za-z0-9]+", "_", feature).strip("_").lower() or "feature"


def _group_bars(stage, feature, path, models):
    # Groups seen only in training can differ between models whose recipes cap
    # the training set: every model's, in order of first appearance.
    audits = [stage["models"][m]["features"][feature] for m in models]
    groups = list(dict.fromkeys(g for f in audits for g in f["order"]))
    n_test = {g: f["groups"][g]["n"] for f in audits for g in f["order"]}
    fig = new_figure(max(4.5, 0.55 * len(groups) * max(len(models), 2) + 1.2), 3.4)
    ax = fig.add_subplot(1, 1, 1)
    width = 0.8 / len(models)
    x = np.arange(len(groups))
    for i, model in enumerate(models):
        f = stage["models"][model]["features"][feature]
        pos = x + (i - (len(models) - 1) / 2) * width
        colour = f"C{i}"
        label = model
        for xi, g in zip(pos, groups):
            rec = f["groups"].get(g)
            m = rec and rec["metrics"].get("accuracy")
            if not m or m["value"] is None:
                continue
            judged = rec["status"] == "ok"
            ax.bar(xi, m["value"], width, color=colour, alpha=1.0 if judged else 0.35,
                   hatch=None if judged else "//", edgecolor=colour, label=label)
            label = None
            if m["low"] is not None:
                ax.errorbar(xi, m["value"], color="black", capsize=2, linewidth=0.8,
                            yerr=[[m["value"] - m["low"]], [m["high"] - m["value"]]])
            worse = rec["vs_rest"].get("accuracy", {}).get("worse")
            if worse:
                ax.text(xi, (m["high"] if m["high"] is not None else m["value"]) + 0.02, "!",
                        ha="center", va="bottom", fontsize=9, color="red", fontweight="bold")
        ax.axhline(f["overall"]["accuracy"]["value"], color=colour, linestyle="--",
                   linewidth=0.8)
    labels = [f"{g.replace(GROUP_SEP, chr(10))}\nn={n_test[g]}" for g in groups]
    ax.set_xticks(x, labels, fontsize=7)
    ax.set_ylim(0, 1.08)
    ax.set_ylabel("test accuracy")
    ax.set_title(f"accuracy by {feature} (hatched: not judged; !: significantly worse)",
                 fontsize=8)
    ax.legend(fontsize=7, ncols=min(len(models), 3), loc="upper right")
    ax.grid(axis="y", alpha=0.3)
    return save_png(fig, path)


@register_stage("fairness", order=40, applies=_applies,
                description="bias audit per attribute and intersection, one mitigation",
                figures=draw_fairness_figures)
def fairness_stage(ctx):
    config, d = ctx.config, ctx.data
    classes = ctx.results["evaluate"]["classes"]
    n_boot = config.fairness_n_boot or config.n_boot
    # A column the audit cannot use is reported, not fatal: the models are trained.
    problems = check_sensitive_features(d.frame_test[d.attributes], len(d.y_test))
    excluded = {a: " ".join(m) for a, m in problems.items()}
    for a in d.attributes:
        try:
            sensitive_groups(d.frame_train, a)
        except ValueError as exc:
            excluded.setdefault(a, f"In the training data: {exc}")
    attributes = [a for a in d.attributes if a not in excluded]
    for a, message in excluded.items():
        log(f"fairness: attribute {a!r} not audited: {message}")
    intersections, bad = _features(config, attributes)
    excluded.update(bad)
    record = {"attributes": attributes, "excluded": excluded, "features": [],
              "predicted_attributes": bool(config.attributes), "min_group_size":
              config.min_group_size, "n_boot": n_boot, "confidence": 0.95,
              "models": {}, "mitigation": None}
    if not attributes:
        record["mitigation"] = {"status": "skipped", "reason": "no attribute could be audited"}
        return record
    common = dict(labels=classes, intersections=intersections,
                  min_group_size=config.min_group_size, n_boot=n_boot,
                  random_state=config.seed)
    for model in config.models:
        pred = ctx.store.get_arrays(f"pred-{model}")
        # the group shares of the faces this model was fitted on (its recipe
        # may cap the training set)
        rows = training_rows(config, d.y_train, model)
        start = time.perf_counter()
        audit = audit_fairness(d.y_test, pred["y_pred"], d.frame_test[attributes],
                               y_proba=pred["proba"], **common,
                               train_features=d.frame_train[attributes].iloc[rows],
                               y_train=d.y_train[rows])
        record["models"][model] = audit.to_dict()
        log(f"fairness {model}: {len(audit.features)} feature(s) audited in "
            f"{time.perf_counter() - start:.1f} s")
    record["features"] = audit.features
    record["mitigation"] = _mitigation(ctx, record, classes, common)
    return record


def _mitigation(ctx, record, classes, common):
    """Retrain the best model on a group-balanced resample; stored as a unit."""
    if ctx.store.has(MITIGATION_KEY):
        log("fairness mitigation: finished in an earlier run, reused")
        return ctx.store.get_json(MITIGATION_KEY)
    config, d = ctx.config, ctx.data
    mode = config.fairness_mitigation
    evaluated = ctx.results["evaluate"]["models"]
    best = max(config.models, key=lambda m: evaluated[m]["metrics"]["accuracy"]["value"])
    if mode == "off":
        result = {"status": "off", "model": best,
                  "reason": "switched off (fairness_mitigation = \"off\")"}
        ctx.store.put_json(MITIGATION_KEY, result)
        return result
    audit = record["models"][best]
    # (significant, a single attribute, gap, feature): a significant gap first;
    # among those, single attributes before intersections, whose extreme groups
    # give larger but less actionable gaps; then the largest.
    candidates = []
    for feature in record["features"]:
        f = audit["features"][feature]
        gap = f["gaps"].get("accuracy")
        if gap and gap["difference"]["between_groups"]["value"] is not None:
            d_gap = gap["difference"]["between_groups"]
            candidates.append((bool(d_gap["significant"]), len(f["columns"]) == 1,
                               d_gap["value"], feature))
    pool = [c for c in candidates if c[0]] or ([] if mode == "significant" else candidates)
    if not pool:
        reason = ("no significant accuracy gap between groups for the best model"
                  if candidates else "no attribute has two groups large enough to judge")
        result = {"status": "skipped", "model": best, "reason": reason}
        ctx.store.put_json(MITIGATION_KEY, result)
        return result
    significant, _, _, feature = max(pool)
    columns = audit["features"][feature]["columns"]
    idx = training_rows(config, d.y_train, best)
    groups = sensitive_groups(d.frame_train.iloc[idx], columns)
    pick = idx[group_balanced_indices(groups, d.y_train[idx], random_state=config.seed)]
    est = clone(ctx.store.get_model(f"model-{best}"))
    est.set_params(callbacks=[("progress", FitProgress(f"{best} (group-balanced by {feature})"))])
    log(f"fairness mitigation: retrain {best} on a group-balanced resample by {feature}")
    start = time.perf_counter()
    est.fit(d.X_train[pick], d.y_train[pick])
    fit_time = time.perf_counter() - start
    proba = predict_proba(est, d.X_test, tta=config.tta, classes=classes)
    y_after = np.asarray(classes)[proba.argmax(1)]
    y_before = ctx.store.get_arrays(f"pred-{best}")["y_pred"]
    options = {**common, "intersections": [columns] if len(columns) > 1 else ()}
    options["train_features"] = d.frame_train.iloc[pick][columns].reset_index(drop=True)
    options["y_train"] = d.y_train[pick]
    after = audit_fairness(d.y_test, y_after, d.frame_test[columns], y_proba=proba,
                           **options).to_dict()["features"][feature]
    result = {"status": "done", "model": best, "feature": feature, "columns": columns,
              "significant_before": significant, "method": METHOD,
              "n_train_before": int(len(idx)), "n_train_after": int(len(pick)),
              "fit_time_s": fit_time, "before": _summary(audit["features"][feature]),
              "after": _summary(after), "mcnemar": mcnemar(d.y_test, y_before, y_after)}
    ctx.store.put_json(MITIGATION_KEY, result)
    return result


def _summary(f):
    gap = f["gaps"]["accuracy"]
    worst = gap["worst_group"]["group"]
    return {
        "accuracy": f["overall"]["accuracy"],
        "gap": gap["difference"]["between_groups"],
        "worst_group": {"group": worst, **f["groups"][worst]["metrics"]["accuracy"]},
        "groups": {g: {"accuracy": f["groups"][g]["metrics"].get("accuracy"),
                       "train_share": f["groups"][g].get("train_share")}
                   for g in f["order"]},
    }


# --------------------------------------------------------------------------- #
# Report section (a function of the results alone)
# --------------------------------------------------------------------------- #
def _status(rec, min_size):
    return {"ok": "", "too small": f"too small (n < {min_size})",
            "unknown": "missing value: not judged",
            "absent from test": "absent from test"}[rec["status"]]


def _group_rows(f, min_size, with_train):
    rows = []
    for g in f["order"]:
        rec = f["groups"][g]
        m = rec["metrics"]
        vs = rec["vs_rest"].get("accuracy")
        if vs:
            vs_text = ci(vs)
            if vs["worse"]:
                vs_text += " **worse**"
            elif vs["significant"]:
                vs_text += " better"
        else:
            vs_text = "not judged"
        row = [f"`{g}`", rec["n"], _status(rec, min_size)]
        if with_train:
            shares = [v for v in (rec.get("train_share_by_class") or {}).values()
                      if v is not None]
            row += [pct(rec.get("train_share")),
                    f"{pct(min(shares))}-{pct(max(shares))}" if shares else "n/a"]
        row += [ci(m.get("accuracy")), ci(m.get("balanced_accuracy")),
                ci(m.get("macro_f1")), vs_text]
        rows.append(row)
    return rows


def _gap_rows(f):
    rows = []
    for metric in _HEADLINE + ("log_loss",):
        gap = f["gaps"].get(metric)
        if not gap:
            continue
        scale, digits = (1.0, 3) if metric == "log_loss" else (100.0, 1)
        d, r = gap["difference"], gap["ratio"]
        between = d["between_groups"]
        rows.append([_NAMES[metric], ci(between, scale, digits, True),
                     " vs ".join(f"`{g}`" for g in between["groups"]),
                     ci(d["to_overall"], scale, digits, True),
                     ci(r["between_groups"], 1.0, 2, True),
                     ci(r["to_overall"], 1.0, 2, True)])
    for measure, rec in f.get("one_vs_rest", {}).items():
        top = rec.get("max")
        if not top:
            continue
        rows.append([f"{_NAMES[measure]} (max over classes: `{top['class']}`)",
                     ci(top, 100.0, 1, True),
                     " vs ".join(f"`{g}`" for g in top["groups"]), "-", "-", "-"])
    return rows


def _headline_gaps(f):
    """The judged headline gaps, the significant ones, and the (metric, gap)
    a model's sentence names: the largest significant one, else the largest."""
    gaps = [(m, f["gaps"][m]) for m in _HEADLINE if f["gaps"].get(m)]
    gaps = [(m, g) for m, g in gaps if g["difference"]["between_groups"]["value"] is not None]
    significant = [(m, g) for m, g in gaps if g["difference"]["between_groups"]["significant"]]
    named = max(significant or gaps, default=(None, None),
                key=lambda mg: mg[1]["difference"]["between_groups"]["value"])
    return gaps, significant, named


def _named_worse(f):
    """Groups the report shows significantly worse for one model: below the
    rest on accuracy (the tables' column), the lower side of the gap the
    model's sentence names (or a group it names below the whole test set),
    or the higher side of a significant log-loss gap."""
    if f["note"]:
        return set()
    named = _worse_than_rest(f)
    gaps, significant, (_, gap) = _headline_gaps(f)
    if significant:
        named.add(gap["difference"]["between_groups"]["groups"][1])
    elif gaps:  # the sentence names the group farthest from the whole test set
        farthest = _farthest_from_overall(f, gaps)
        if farthest is not None and farthest[2] < farthest[3]:
            named.add(farthest[1])
    loss = _significant_loss_gap(f)
    if loss:
        named.add(loss["groups"][0])
    return named


def _worse_than_rest(f):
    """Groups significantly below the rest of the test set on accuracy."""
    return {g for g, rec in f["groups"].items()
            if rec["vs_rest"].get("accuracy", {}).get("worse")}


def _significant_loss_gap(f):
    """The between-group log-loss gap, where it is significant; else None."""
    loss = (f["gaps"].get("log_loss") or {}).get("difference", {}).get("between_groups")
    return loss if loss and loss.get("significant") else None


def _model_sentence(model, f):
    if f["note"]:
        return f"**{model}**: no gap can be judged: {f['note']}."
    gaps, significant, (metric, gap) = _headline_gaps(f)
    if not gaps:
        return f"**{model}**: no gap can be judged."
    d = gap["difference"]["between_groups"]
    hi, lo = d["groups"]
    values = {g: f["groups"][g]["metrics"][metric]["value"] for g in (hi, lo)}
    ci_text = f"simultaneous 95% CI of the gap {100 * d['low']:.1f} to {100 * d['high']:.1f} pp"
    if not significant:
        text = (f"**{model}**: no significant between-group gap in accuracy, balanced accuracy "
                f"or macro-F1. The largest, {_NAMES[metric]} `{hi}` vs `{lo}`, is "
                f"{100 * d['value']:.1f} pp ({ci_text}, which includes 0).")
        text += _to_overall_sentence(f, gaps)
    else:
        text = (f"**{model}**: {_NAMES[metric]} is {100 * d['value']:.1f} pp lower for `{lo}` "
                f"({pct(values[lo])}%) than for `{hi}` ({pct(values[hi])}%); {ci_text}.")
        vs = f["groups"][lo]["vs_rest"].get(metric)
        if vs and vs["worse"]:
            text += (f" `{lo}` is also significantly below the rest of the test set on "
                     f"{_NAMES[metric]} ({100 * vs['value']:.1f} pp).")
    # The other measures of the table below, where their gap is significant.
    loss = _significant_loss_gap(f)
    if loss:
        worse, better = loss["groups"]
        text += (f" The log loss is significantly higher for `{worse}` than for `{better}` "
                 f"(by {loss['value']:.3f}).")
    for measure in ("equalized_odds_difference", "demographic_parity_difference"):
        top = (f.get("one_vs_rest", {}).get(measure) or {}).get("max")
        if top and top["significant"]:
            text += (f" The {_NAMES[measure]} peaks at {100 * top['value']:.1f} pp for "
                     f"`{top['class']}` (`{top['groups'][0]}` vs `{top['groups'][1]}`, "
                     "significant).")
            break
    return text


def _to_overall_sentence(f, gaps):
    """The group farthest from the whole test set among the significant
    to-overall gaps (difference or ratio) of ``gaps``; empty when none is."""
    farthest = _farthest_from_overall(f, gaps)
    if farthest is None:
        return ""
    metric, g, value, overall = farthest
    return (f" `{g}` differs significantly from the whole test set on {_NAMES[metric]} "
            f"({pct(value)}% vs {pct(overall)}%).")


def _farthest_from_overall(f, gaps):
    """(metric, group, value, overall) of :func:`_to_overall_sentence`, or None."""
    found = []
    for metric, gap in gaps:
        for kind in ("difference", "ratio"):
            rec = (gap.get(kind) or {}).get("to_overall") or {}
            if rec.get("significant"):
                g = rec["groups"][0]
                value = f["groups"][g]["metrics"][metric]["value"]
                overall = f["overall"][metric]["value"]
                found.append((abs(value - overall), metric, g, value, overall))
    if not found:
        return None
    return max(found)[1:]


def _representation_sentence(group, rec, equal_share):
    shares = [v for v in (rec.get("train_share_by_class") or {}).values() if v is not None]
    if rec.get("train_share") is None or equal_share is None:
        return None
    spread = f", per class {pct(min(shares))}-{pct(max(shares))}%" if shares else ""
    numbers = (f"{pct(rec['train_share'])}% of the training images{spread}; an equal share "
               f"would be {pct(equal_share)}%")
    numbers += "; under-represented means below three quarters of that"
    if rec["train_share"] < 0.75 * equal_share:
        return (f"`{group}` is under-represented in training ({numbers}): more (or "
                "up-weighted) training images of this group are a first remedy.")
    return (f"`{group}` is not under-represented in training ({numbers}), so its share "
            "of the data does not explain the gap: look at the model and at the quality "
            "of this group's images and labels.")


def _feature_findings(stage, feature, models):
    lines = [_model_sentence(m, stage["models"][m]["features"][feature]) for m in models]
    features = [stage["models"][m]["features"][feature] for m in models]
    judged_worse = set.intersection(*(_worse_than_rest(f) for f in features))
    if judged_worse and len(models) > 1:
        names = ", ".join(f"`{g}`" for g in sorted(judged_worse))
        lines.append(f"{names} {'is' if len(judged_worse) == 1 else 'are'} significantly "
                     "below the rest of the test set on accuracy for every model.")
    flagged = set().union(*(_named_worse(f) for f in features))
    f = features[0]
    for g in [g for g in f["order"] if g in flagged]:
        sentence = _representation_sentence(g, f["groups"][g], f.get("equal_share"))
        if sentence:
            lines.append(sentence)
    return lines


def _mitigation_text(mit):
    text = ["### Mitigation: group-balanced resampling", ""]
    if mit is None:
        return []
    if mit["status"] != "done":
        text += [f"Not run: {mit['reason']}.", ""]
        return text
    b, a = mit["before"], mit["after"]
    note = "" if mit["significant_before"] else " (not significant: shown for comparison)"
    kind = "attribute" if len(mit["columns"]) == 1 else "intersection"
    text += [f"**{mit['model']}** (the best single model by test accuracy) was retrained on a group-balanced "
             f"resample of its training images by `{mit['feature']}`, the {kind} with the "
             f"largest {'significant ' if mit['significant_before'] else ''}accuracy "
             f"gap{note}. Method: {mit['method']}. {mit['n_train_after']} images "
             f"(before: {mit['n_train_before']}), fit in {mit['fit_time_s']:.0f} s.", ""]
    rows = []
    for name, s in (("before", b), ("after", a)):
        w = s["worst_group"]
        rows.append([name, ci(s["accuracy"]), ci(s["gap"], bold_if_significant=True),
                     " vs ".join(f"`{g}`" for g in s["gap"]["groups"]),
                     f"`{w['group']}` {ci(w)}"])
    text += [table(rows, ["", "test accuracy % [95% CI]", "accuracy gap, pp [sim. 95% CI]",
                          "groups", "worst group: accuracy % [95% CI]"]), ""]
    rows = [[f"`{g}`", pct(b["groups"][g]["train_share"]),
             pct(a["groups"].get(g, {}).get("train_share")),
             ci(b["groups"][g]["accuracy"]), ci(a["groups"].get(g, {}).get("accuracy"))]
            for g in b["groups"]]
    text += [table(rows, ["group", "train share % before", "after", "accuracy % before",
                          "after"]), ""]
    change = 100 * (a["gap"]["value"] - b["gap"]["value"])
    acc = 100 * (a["accuracy"]["value"] - b["accuracy"]["value"])
    p = mit["mcnemar"]["p_value"]
    verdict = {(True, True): "still significant", (True, False): "no longer significant",
               (False, True): "newly significant", (False, False): "still not significant"}[
        (bool(b["gap"]["significant"]), bool(a["gap"]["significant"]))]
    text += [f"The accuracy gap {'fell' if change < 0 else 'rose'} by {abs(change):.1f} pp "
             f"({verdict} after retraining) and test accuracy changed by {acc:+.1f} pp "
             f"(McNemar before vs after: p {'< 0.001' if p < 1e-3 else f'= {p:.3f}'}).", ""]
    return text


@register_section("fairness", order=40)
def fairness_section(results):
    """The ``## Fairness`` section: per feature a chart, findings, a table per model."""
    stage = results.get("stages", {}).get("fairness")
    if not stage:
        return None
    config = results["config"]
    models = [m for m in config["models"] if m in stage["models"]]
    figures = results.get("figures", {})
    min_size = stage["min_group_size"]
    text = ["## Fairness", ""]
    if stage["features"]:
        text += [
            "Each model's test predictions are split by group with fairlearn's "
            f"`MetricFrame`. Brackets: 95% percentile bootstrap intervals ({stage['n_boot']} "
            f"resamples within each group, seed {config['seed']}), never narrower than the "
            "Wilson score interval over the images the figure counts (log loss aside). "
            "Groups with fewer than "
            f"{min_size} test images are shown but marked *too small* and left out of gaps; "
            "missing attribute values form the group `unknown`, shown but not judged. "
            "*Gap*: largest minus smallest group (fairlearn's `difference()`); *to overall*: "
            "the largest distance of a group from the whole test set; ratios: fairlearn's "
            "`ratio()`. A gap is **significant** (bold) when its simultaneous 95% interval "
            "excludes 0: the bootstrap interval of the contrast between the groups behind "
            "it (or between a group and the whole test set, which contains it), its "
            "standard error never (log loss aside) below the contrast's if every group "
            "were predicted as the whole test set is (simulated for balanced accuracy and "
            "macro-F1, whose per-class terms can rest on a face or two in a small group), "
            "Bonferroni-widened over every contrast it could have been picked from (group "
            "pairs, or groups, times classes for per-class measures), so a flag stays a 5% "
            "claim although the groups were picked as the most extreme. A ratio's interval "
            "is its difference's divided by the larger value, so it excludes 1 exactly when "
            "that difference is significant. Each "
            "flag is a 5% claim on its own: across every model and attribute below, a false "
            "flag somewhere is not unlikely, while a real bias shows for every model. *vs "
            "rest*: the group minus all other test images (Bonferroni over groups; when the "
            "test set holds just two groups, neither unknown nor too small, it is the gap "
            "itself). "
            "One-vs-rest parity: fairlearn's binary demographic-parity and equalized-odds "
            "differences of each class against the others, maximum over classes. *Train %*: "
            "the group's share of the training images given to the model's fit (its "
            "held-out part included), and of each class's (min-max over classes), to tell "
            "under-representation from model error. Accuracy, macro-F1 and log loss also "
            "move with a group's class mix (accuracy and log loss weigh each class by its "
            "share of the group; precision, in macro-F1, depends on the shares of a class "
            "and of those mistaken for it); per-class recall does not, nor does balanced "
            "accuracy where the group holds every class. A gap in accuracy, macro-F1 or log "
            "loss with none in balanced accuracy can come from the mix alone, not from how "
            "the group's faces are treated.", ""]
    if stage["predicted_attributes"]:
        text += [f"The attributes come from `{Path(config['attributes']).name}`. Attributes "
                 "such as FER2013's demographics are predicted by a model, not reported by the "
                 "people shown: misassigned groups blur real gaps and can create spurious "
                 "ones. Read these results as an audit of the predicted groups.", ""]
    for name, reason in stage["excluded"].items():
        text += [f"Not audited: `{name}`. {reason}", ""]
    for feature in stage["features"]:
        text += [f"### `{feature}`", ""]
        key = f"fairness_{_slug(feature)}"
        if figures.get(key):
            caption = (f"Test accuracy per `{feature}` group and model, with 95% CIs (dashed: "
                       "each model's overall accuracy)")
            text += [f"![{caption}]({figures[key]})", "", f"*{caption}.*", ""]
        text += [line + "\n" for line in _feature_findings(stage, feature, models)]
        for model in models:
            f = stage["models"][model]["features"][feature]
            with_train = any("train_share" in r for r in f["groups"].values())
            headers = ["group", "n test", "status"]
            if with_train:
                headers += ["train %", "train % per class"]
            headers += ["accuracy % [95% CI]", "balanced acc. % [CI]", "macro-F1 % [CI]",
                        "accuracy vs rest, pp [sim. CI]"]
            text += [f"#### {model}: `{feature}`", "",
                     table(_group_rows(f, min_size, with_train), headers), ""]
            rows = _gap_rows(f)
            if rows:
                text += [table(rows, ["measure", "gap (pp; log loss raw) [sim. CI]", "groups",
                                      "to overall [sim. CI]", "ratio [sim. CI]",
                                      "ratio to overall [sim. CI]"]), ""]
    text += _mitigation_text(stage.get("mitigation"))
    return "\n".join(text)
