"""Results in, Markdown out: the same results always render the same report.

:func:`render_report` assembles sections; each section is a function of the
results alone (``results.json``), so ``benchmark report`` re-renders a run
byte for byte. Stages added later register their own section with
:func:`register_section`.
"""

import json

from tabulate import tabulate

from ..stats import holm

SECTIONS = {}


def register_section(name, *, order):
    """Decorator: ``render(results) -> str or None`` adds a section to every report.

    A section that returns None (e.g. its stage did not run) is left out.
    """

    def decorator(func):
        SECTIONS[name] = (order, func)
        return func

    return decorator


def table(rows, headers):
    """A GitHub-flavoured Markdown table."""
    return tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)


def pct(x, digits=1):
    """A share as a percentage; "n/a" where undefined."""
    return "n/a" if x is None else f"{100 * x:.{digits}f}"


def ci(m, scale=100.0, digits=1, bold_if_significant=False):
    """``value [low, high]`` of a bootstrap record ("n/a" where undefined; the
    interval is left out when the record has none)."""
    if not m or m.get("value") is None:
        return "n/a"
    f = f"{{:.{digits}f}}"
    text = f.format(scale * m["value"])
    if m.get("low") is not None:
        text += f" [{f.format(scale * m['low'])}, {f.format(scale * m['high'])}]"
    if bold_if_significant and m.get("significant"):
        text = f"**{text}**"
    return text


def pvalue(p):
    """A p-value for a table: three decimals, five near 0.05 (where three
    would show 0.050 on either side of the 5% line)."""
    if p < 1e-3:
        return "<0.001"
    return f"{p:.5f}" if abs(p - 0.05) < 5e-4 else f"{p:.3f}"


def p_equals(p):
    """``p < 0.001`` or ``p = 0.123``, for a sentence."""
    text = pvalue(p)
    return f"p < {text[1:]}" if text.startswith("<") else f"p = {text}"


def si(x):
    """Compact engineering notation: 1.2M, 35.4k."""
    for unit, div in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(x) >= div:
            return f"{x / div:.1f}{unit}"
    return f"{x:.0f}"


def params_text(params):
    return ", ".join(f"{k.replace('module__', '')}={v}" for k, v in sorted(params.items())) or "-"


def budget_text(plan):
    """One sentence on how a time budget set a fit's epochs."""
    budget = plan["budget_s"]
    budget = f"{budget / 60:.0f} min" if budget >= 60 else f"{budget:.0f} s"
    head = (f"time budget {budget}; one epoch estimated at "
            f"{plan['epoch_s']:.0f} s here ({plan['probe_images_per_s']:.0f} images/s "
            f"over a {plan['probe_images']}-image probe)")
    if "small_epoch_s" in plan:
        side = plan["small_side"]
        head += (f", {plan['small_epoch_s']:.0f} s at {side}x{side} pixels "
                 f"({plan['small_images_per_s']:.0f} images/s)")
    if plan["epochs"] < plan["max_epochs"]:
        return (f"{head}, so the schedule starts at {plan['epochs']} of the recipe's "
                f"{plan['max_epochs']} epochs")
    return f"{head}: all {plan['max_epochs']} epochs of the recipe fit"


def _models_of(results, present):
    """The run's models in the order the config lists them."""
    return [m for m in results["config"]["models"] if m in present]


def _stage(results, name):
    return results.get("stages", {}).get(name)


@register_section("summary", order=10)
def _summary(results):
    search, evaluate = _stage(results, "search"), _stage(results, "evaluate")
    if not evaluate:
        return None
    rows = []
    for model in _models_of(results, evaluate["models"]):
        rec, s = evaluate["models"][model], search[model]
        cv = (f"{pct(s['best_score'])} ± {pct(s['cv']['std'][s['cv']['rank'].index(1)])}"
              if s.get("cv") else "no search")
        m, cost = rec["metrics"], rec["cost"]
        rows.append([model, cv, params_text(s["best_params"]), ci(m["accuracy"]),
                     ci(m["macro_f1"]), ci(m["balanced_accuracy"]),
                     ci(m["log_loss"], scale=1, digits=3), f"{cost['fit_time_s']:.0f}",
                     f"{cost['inference_images_per_s']:.0f}", si(cost["parameters"]),
                     si(cost["flops_per_image"])])
    ens = evaluate.get("ensemble")
    if ens:
        m = ens["metrics"]
        members = [evaluate["models"][k]["cost"] for k in ens["members"]]
        rows.append([f"**ensemble** (soft vote of {len(members)})", "-", "mean of probabilities",
                     ci(m["accuracy"]), ci(m["macro_f1"]), ci(m["balanced_accuracy"]),
                     ci(m["log_loss"], scale=1, digits=3),
                     f"{sum(c['fit_time_s'] for c in members):.0f}",
                     f"{1 / sum(1 / c['inference_images_per_s'] for c in members):.0f}",
                     si(sum(c["parameters"] for c in members)),
                     si(sum(c["flops_per_image"] for c in members))])
    rows.extend(results.get("reference_rows", []))
    headers = ["model", "CV acc. % (mean ± sd)", "chosen", "test acc. % [95% CI]",
               "macro-F1 % [CI]", "balanced acc. % [CI]", "log loss [CI]", "fit s",
               "infer img/s", "params", "FLOPs/img"]
    text = ["## Summary", "", table(rows, headers), ""]
    # the model the ensemble was compared with (ties broken in the config's
    # order, which the stored results, sorted by name, have lost)
    best = (ens or {}).get("best_single") or max(
        evaluate["models"], key=lambda k: evaluate["models"][k]["metrics"]["accuracy"]["value"])
    text.append(f"Best single model by test accuracy: **{best}** "
                f"({ci(evaluate['models'][best]['metrics']['accuracy'])} %).")
    if ens:
        test = ens["mcnemar_vs_best"]
        text.append(f"The ensemble averages the probabilities of {', '.join(ens['members'])}; "
                    f"against {ens['best_single']} alone it is right on {test['only_a']} test "
                    f"images that model gets wrong and wrong on {test['only_b']} it gets right "
                    f"(McNemar {p_equals(test['p_value'])}). {ens['best_single']} was chosen "
                    "as the best member on these same test images, which favours it; this "
                    "test is not among the Holm-adjusted pairs.")
    text.append("")
    if str(results["config"]["dataset"]).startswith("fer2013"):
        text += _fer2013_references()
    if evaluate["mcnemar"]:
        pairs = evaluate["mcnemar"]
        adjusted = holm([p["p_value"] for p in pairs])
        rows = [[p["a"], p["b"], p["only_a"], p["only_b"], pvalue(p["p_value"]), pvalue(h),
                 "yes" if h < 0.05 else "no"] for p, h in zip(pairs, adjusted)]
        text += ["### Pairwise McNemar tests", "",
                 f"Exact McNemar tests; Holm's adjustment over the {len(pairs)} pairs keeps "
                 "the chance of any false \"differ\" at 5%." if len(pairs) > 1 else
                 "Exact McNemar test.", "",
                 table(rows, ["model A", "model B", "only A right", "only B right",
                              "p-value", "Holm p", "differ at 5%"]), ""]
    return "\n".join(text)


# Published FER2013 figures, for scale. Not measured by this tool.
FER2013_REFERENCES = (
    ("original study: DenseNet", "50.74", "reported by the study, different split"),
    ("original study: ResNet", "50.46", "reported by the study, different split"),
    ("original study: CNN", "16.13", "reported by the study, different split"),
    ("VGG variant (Khaireddin & Chen, 2021)", "73.28",
     "reported, PrivateTest, single network, GPU, ~300 epochs"),
    ("ResNet/VGG ensemble baselines (Pramerdorfer & Kampel, 2016)", "72.7 (single) / 75.2",
     "reported, PrivateTest, GPU"),
)


def _fer2013_references():
    rows = [[name, acc, note] for name, acc, note in FER2013_REFERENCES]
    return ["Reference figures (not measured here; other splits and hardware):", "",
            table(rows, ["model", "test acc. %", "source"]), ""]


@register_section("data", order=20)
def _data(results):
    data = _stage(results, "data")
    if not data:
        return None
    counts = data["class_counts"]
    rows = [[c, counts["train"].get(c, 0), counts["test"].get(c, 0)] for c in data["classes"]]
    rows.append(["**total**", data["n_train"], data["n_test"]])
    text = ["## Data", "", f"Dataset: `{data['dataset']}`. Protocol: {data['protocol']}.", "",
            table(rows, ["class", "train", "test"]), ""]
    for attr, groups in data["attributes"].items():
        names = sorted(set(groups["train"]) | set(groups["test"]))
        rows = [[g, groups["train"].get(g, 0), groups["test"].get(g, 0)] for g in names]
        text += [f"Group attribute `{attr}`:", "", table(rows, [attr, "train", "test"]), ""]
    note = results["config"].get("attributes_note")
    if data["attributes"] and note:
        text += [f"Group attributes are {note}.", ""]
    return "\n".join(text)


@register_section("models", order=30)
def _models(results):
    search, evaluate = _stage(results, "search"), _stage(results, "evaluate")
    if not search:
        return None
    text = ["## Models", ""]
    for model in _models_of(results, search):
        s = search[model]
        text += [f"### {model}", "",
                 f"Recipe: {params_text(s['params'])}. Training images: {s['n_train']}.", ""]
        if s.get("cv"):
            cv = s["cv"]
            rows = [[params_text(p), pct(mu), pct(sd), " / ".join(pct(sp[j]) for sp in cv["splits"]),
                     f"{cv['mean_fit_time'][j]:.1f}", cv["rank"][j]]
                    for j, (p, mu, sd) in enumerate(zip(cv["params"], cv["mean"], cv["std"]))]
            text += [table(rows, ["grid point", "CV acc. %", "sd over folds", "per fold", "fit s",
                                  "rank"]),
                     "", f"Chosen: {params_text(s['best_params'])}; refit on all training "
                     f"images in {s['refit_time']:.0f} s.", ""]
        elif s.get("holdout"):
            text += [f"No grid: one fit in {s['refit_time']:.0f} s on "
                     f"{1 - s['holdout']:.0%} of the training images; the other "
                     f"{s['holdout']:.0%} (stratified) only draw the learning curve.", ""]
        else:
            text += [f"No grid: one fit in {s['refit_time']:.0f} s.", ""]
        if s.get("time_budget"):
            sentence = budget_text(s["time_budget"])
            text += [f"{sentence[0].upper()}{sentence[1:]}; the schedule spans the epochs "
                     "trained.", ""]
            budget, took = s["time_budget"]["budget_s"], s.get("refit_time", 0)
            trained = s["time_budget"].get("epochs_trained", s["time_budget"]["epochs"])
            if trained != s["time_budget"]["epochs"]:
                shortened = trained < s["time_budget"]["epochs"]
                change, aim = ("shortened", "end within") if shortened else ("lengthened", "use")
                text += [f"Re-planning after each epoch from the epochs' measured times, "
                         f"the fit {change} its schedule to {trained} epochs to {aim} the "
                         "budget.", ""]
            if took > 1.02 * budget:
                why = ("it re-plans after every epoch, and its last epochs ran slower than "
                       "the ones before them" if "epochs_trained" in s["time_budget"] else
                       "the probe measures the speed once, before the fit, and the fit ran "
                       "slower than that")
                text += [f"The fit took {took / budget - 1:.0%} longer than its budget: "
                         f"{why}.", ""]
        if evaluate and model in evaluate["models"]:
            per = evaluate["models"][model]["per_class"]
            # A class with no test image has no recall, hence no F1.
            rows = [[c, pct(v["precision"]), pct(v["recall"]) if v["support"] else "-",
                     pct(v["f1"]) if v["support"] else "-", v["support"]]
                    for c, v in per.items()]
            text += [table(rows, ["class", "precision %", "recall %", "F1 %", "support"]), ""]
            absent = [c for c, v in per.items() if not v["support"]]
            if absent:
                text += [f"No test image of {', '.join(absent)}: its recall and F1 are "
                         "undefined (shown as -).", ""]
            total = sum(v["support"] for v in per.values())
            rare = [c for c, v in per.items() if 0 < v["support"] < 0.02 * total]
            if rare:
                counts = ", ".join(f"{c} ({per[c]['support']} images)" for c in rare)
                text += [f"Rare in the test split: {counts}; their per-class figures rest "
                         "on few faces.", ""]
            unseen = evaluate["models"][model].get("classes_unseen_in_training")
            if unseen:
                text += [f"Classes absent from this model's training data: {', '.join(unseen)}.", ""]
    return "\n".join(text)


@register_section("figures", order=35)
def _figures(results):
    figures = results.get("figures", {})
    if not figures:
        return None
    captions = {
        "confusion_matrices": "Confusion matrices on the test split (counts; colour: row share)",
        "learning_curves": "Training loss per epoch of each final fit",
        "per_class_f1": "Test F1 per class",
        "cv_spread": "Cross-validation accuracy per grid point (dots: folds; bar: mean)",
    }
    search = _stage(results, "search") or {}
    if any("valid_acc" in h for r in search.values() for h in r.get("history", [])):
        captions["learning_curves"] += (" (left) and accuracy per epoch on the held-out "
                                        "part of the training images (right)")
    text = ["## Figures", ""]
    for key, caption in captions.items():
        if figures.get(key):
            text += [f"![{caption}]({figures[key]})", "", f"*{caption}.*", ""]
    return "\n".join(text)


@register_section("methods", order=80)
def _methods(results):
    evaluate = _stage(results, "evaluate")
    config = results["config"]
    search = _stage(results, "search") or {}
    if any(r.get("cv") for r in search.values()):
        selection = (f"- Model selection: `GridSearchCV` with stratified {config['cv']}-fold "
                     "cross-validation on the training split only (accuracy); the best grid "
                     "point is refit on all training images. Estimators train on all data they "
                     "are given (no hidden inner validation split).")
    else:
        selection = ("- Model selection: none; each model is one fixed recipe, fit once on the "
                     "training split (less a stratified held-out part where the model section "
                     "says so, used only to draw learning curves).")
    text = ["## Methods", "", selection,
            "- Test metrics are computed once on the test split, which no selection step saw."]
    if evaluate:
        text += [
            f"- 95% confidence intervals: percentile bootstrap over test images "
            f"({evaluate['n_boot']} resamples, seed {config['seed']})"
            + ("; balanced accuracy and macro-F1 resample within each true class, so that "
               "every resample holds every class of the test split."
               if evaluate.get("bootstrap_by_class") else "."),
            "- McNemar: exact two-sided binomial test on the test images exactly one of "
            "the two models classifies correctly.",
            "- Cost: *fit s* is the wall time of the final refit; *infer img/s* is "
            "`predict_proba` throughput on up to 512 test images; *FLOPs/img* counts one "
            "forward pass (`torch.utils.flop_counter`, multiply-add = 2 FLOPs). The "
            "ensemble's cost is that of all its members together (fit s summed, img/s of "
            "running them all).",
            "- CV acc. *sd* is the standard deviation of the fold accuracies (numpy's, "
            "over the folds); *pp* means percentage points.",
        ]
        tta = evaluate.get("tta")
        if tta in (True, "flip"):
            text.append("- Test-time augmentation: probabilities averaged over each face "
                        "and its mirror image." + _VIEW_COST.format(n="two"))
        elif tta == "crops":
            text.append("- Test-time augmentation: probabilities averaged over ten views of "
                        "each face: unshifted and shifted 2 pixels along each diagonal "
                        "(edges repeated), each also mirrored." + _VIEW_COST.format(n="ten"))
        elif tta == "affine":
            text.append("- Test-time augmentation: probabilities averaged over eighteen views "
                        "of each face: unshifted and shifted 2 pixels along each diagonal "
                        "(edges repeated), zoomed in and out by 10%, and rotated 8 degrees "
                        "each way, each also mirrored." + _VIEW_COST.format(n="eighteen"))
    text.append("")
    return "\n".join(text)


_VIEW_COST = (" Each test prediction so costs {n} forward passes: {n} times *FLOPs/img*, "
              "and {n} times as long as *infer img/s* implies.")


@register_section("environment", order=90)
def _environment(results):
    env = results.get("environment", {})
    timings = results.get("timings", {})
    rows = [[k, v] for k, v in env.get("versions", {}).items()]
    text = ["## Environment", "",
            f"Hardware: {env.get('hardware', 'unknown')}. Device: {env.get('device', 'unknown')}. "
            f"Seed: {results['config']['seed']}.", "",
            table(rows, ["package", "version"]), ""]
    if timings:
        rows = [[k, f"{v:.1f}"] for k, v in timings.items()]
        total = sum(timings.values())
        rows.append(["**total**", f"{total:.1f}"])
        text += ["Wall time per stage (seconds; stages reused by `--resume` count the "
                 "time of the run that computed them):", "",
                 table(rows, ["stage", "seconds"]), ""]
    text += ["Resolved configuration:", "", "```json",
             json.dumps(results["config"], indent=2, sort_keys=True), "```", ""]
    return "\n".join(text)


def render_report(results):
    """The Markdown report of a run's ``results`` (a dict as in ``results.json``).

    Parameters
    ----------
    results : dict

    Returns
    -------
    str
    """
    config = results["config"]
    name = results.get("name", "")
    models = ", ".join(config["models"])
    head = [f"# Benchmark report: {name}", "",
            f"Dataset `{config['dataset']}`, profile `{config['profile']}`, models {models}, "
            f"seed {config['seed']}.", ""]
    parts = []
    for _, (_, render) in sorted(SECTIONS.items(), key=lambda kv: kv[1][0]):
        section = render(results)
        if section:
            parts.append(section.rstrip("\n") + "\n")
    return "\n".join(head) + "\n" + "\n".join(parts)
