"""Stage ``explain``: attribution maps, facial-region importance, explanation quality."""

import time
from pathlib import Path

import numpy as np

from fer_sklearn.explain import (
    METHODS,
    REGION_NAMES,
    attribute,
    deletion_curve,
    localisation,
    masks_to_regions,
    region_shares,
    template_regions,
)
from fer_sklearn.reporting import register_section, table
from fer_sklearn.reporting.figures import new_figure, save_png
from fer_sklearn.reporting.markdown import pct

from ..progress import log
from . import register_stage
from .data import class_order

# Methods drawn in the per-model grid (random is only a baseline).
_SHOWN = tuple(m for m in METHODS if m != "random")
_BACKGROUND = 32


def _sample(y, per_class, seed):
    rng = np.random.default_rng(seed)
    idx = []
    for c in class_order(y):
        members = np.flatnonzero(y == c)
        idx.extend(rng.choice(members, min(per_class, len(members)), replace=False).tolist())
    return np.sort(np.asarray(idx))


def _explain_model(est, X, y, background, regions, evidence, seed, chosen):
    pred = est.predict(X)
    methods, maps_by = {}, {}
    for method in chosen:
        start = time.perf_counter()
        maps = attribute(est, X, method, target=pred, background=background, random_state=seed)
        seconds = time.perf_counter() - start
        curve, auc = deletion_curve(est, X, maps, pred, random_state=seed)
        record = {"seconds": seconds, "deletion_auc": auc, "deletion_curve": curve.tolist(),
                  "regions": region_shares(maps, regions),
                  "regions_by_class": {
                      c: region_shares(maps[y == c], _subset(regions, y == c))
                      for c in class_order(y)}}
        if evidence is not None:
            # As in the pointing game: each face's map for its true class, whose
            # evidence the masks mark (a misread face's map for the predicted
            # class is explained again for the true one).
            true_maps, wrong = maps, pred != y
            if wrong.any():
                true_maps = maps.copy()
                true_maps[wrong] = attribute(est, X[wrong], method, target=y[wrong],
                                             background=background, random_state=seed)
            record["localisation"] = localisation(true_maps, evidence)
            record["localisation"]["target"] = "true class"
        methods[method] = record
        maps_by[method] = maps
    return {"accuracy_on_sample": float(np.mean(pred == y)), "methods": methods}, maps_by


def _subset(regions, rows):
    return {k: (v[rows] if v.ndim == 3 else v) for k, v in regions.items()}


def reference_method(models):
    """The method that localises best on average (ground truth known), else the
    one with the lowest mean deletion AUC; never the random baseline."""
    shown = [m for m in _SHOWN if m in next(iter(models.values()))["methods"]]

    def mean(key):
        return {m: np.mean([key(r["methods"][m]) for r in models.values()]) for m in shown}

    if all("localisation" in r["methods"]["random"] for r in models.values()):
        scores = mean(lambda q: q["localisation"]["inside"])
        return max(scores, key=scores.get)
    scores = mean(lambda q: q["deletion_auc"])
    return min(scores, key=scores.get)


def _overlay(ax, face, heat):
    ax.imshow(face, cmap="gray", vmin=0, vmax=255)
    top = np.quantile(np.abs(heat), 0.99) or 1.0
    ax.imshow(np.clip(heat / top, -1, 1), cmap="bwr", vmin=-1, vmax=1, alpha=0.55)
    ax.set_xticks([])
    ax.set_yticks([])


def _draw_grid(path, X, y, maps_by, model):
    shown = [m for m in _SHOWN if m in maps_by]
    classes = class_order(y)
    first = [int(np.flatnonzero(y == c)[0]) for c in classes]
    fig = new_figure(0.7 * (len(shown) + 1) + 0.5, 0.7 * len(classes) + 0.4)
    axes = fig.subplots(len(classes), len(shown) + 1, squeeze=False)
    for r, i in enumerate(first):
        axes[r, 0].imshow(X[i], cmap="gray", vmin=0, vmax=255)
        axes[r, 0].set_xticks([])
        axes[r, 0].set_yticks([])
        axes[r, 0].set_ylabel(classes[r], fontsize=7)
        for k, method in enumerate(shown):
            _overlay(axes[r, k + 1], X[i], maps_by[method][i])
            if r == 0:
                axes[r, k + 1].set_title(method.replace("integrated_gradients", "int. grad."),
                                         fontsize=7)
    axes[0, 0].set_title("face", fontsize=7)
    fig.suptitle(f"{model}: attributions for the predicted class (red supports it, blue "
                 "speaks against it; saliency: sensitivity, never negative)", fontsize=8)
    return save_png(fig, path)


def _draw_means(path, X, y, maps, method):
    classes = class_order(y)
    models = list(maps)
    fig = new_figure(0.7 * len(classes) + 0.8, 0.7 * len(models) + 0.5)
    axes = fig.subplots(len(models), len(classes), squeeze=False)
    for r, model in enumerate(models):
        for k, c in enumerate(classes):
            rows = y == c
            _overlay(axes[r, k], X[rows].mean(0), maps[model][rows].mean(0))
            if r == 0:
                axes[r, k].set_title(c, fontsize=7)
        axes[r, 0].set_ylabel(model, fontsize=7)
    fig.suptitle(f"Mean {method} attribution per class over the mean face", fontsize=8)
    return save_png(fig, path)


@register_stage("explain", order=50, description="attributions, region importance, quality")
def explain_stage(ctx):
    config, d = ctx.config, ctx.data
    idx = _sample(d.y_test, config.explain_per_class, config.seed)
    X, y = d.X_test[idx], d.y_test[idx]
    rng = np.random.default_rng(config.seed)
    background = d.X_train[rng.choice(len(d.X_train), min(_BACKGROUND, len(d.X_train)),
                                      replace=False)]
    if d.masks_test is not None:
        masks = {k: v[idx] for k, v in d.masks_test.items()}
        regions, evidence = masks_to_regions(masks), masks["evidence"]
        region_source = "the generator's masks of each face"
    else:
        regions, evidence = template_regions(X.shape[-1]), None
        region_source = "a fixed template for aligned crops"
    chosen = [m for m in METHODS if m in config.explain_methods or m == "random"]
    models, all_maps = {}, {}
    for model in config.models:
        log(f"explain {model}: {len(chosen)} methods on {len(y)} test faces")
        est = ctx.store.get_model(f"model-{model}")
        models[model], all_maps[model] = _explain_model(est, X, y, background, regions,
                                                        evidence, config.seed, chosen)
    reference = reference_method(models)
    folder = Path(ctx.run_dir)
    figures = {f"explain_{m}": _draw_grid(folder / f"explain_{m}.png", X, y, maps, m)
               for m, maps in all_maps.items()}
    figures["explain_means"] = _draw_means(
        folder / "explain_means.png", X, y,
        {m: maps[reference] for m, maps in all_maps.items()}, reference)
    return {"n_faces": int(len(y)), "per_class": config.explain_per_class,
            "classes": class_order(y), "region_source": region_source,
            "ground_truth": evidence is not None, "reference_method": reference,
            "models": models, "figures": figures}


# --------------------------------------------------------------------------- #
# Report section
# --------------------------------------------------------------------------- #
def _localises_true_class(ex):
    record = next(iter(ex["models"].values()))["methods"]["random"].get("localisation", {})
    return record.get("target") == "true class"


def _sentences(ex, order):
    ref = ex["reference_method"]
    lines = []
    tops = {}
    for model in (m for m in order if m in ex["models"]):
        shares = ex["models"][model]["methods"][ref]["regions"]["raw"]
        face = {k: v for k, v in shares.items() if k in ("brows", "eyes", "nose", "mouth")}
        top = max(face, key=face.get)
        tops[model] = top
        lines.append(f"- **{model}** puts most of its {ref} attribution among the facial "
                     f"features on the **{top}** ({pct(face[top], 0)}% of positive mass).")
    if len(set(tops.values())) > 1:
        lines.append("- The models differ in where they look: "
                     + ", ".join(f"{m}: {t}" for m, t in tops.items()) + ".")
    if ex["ground_truth"]:
        best = {m: max((k for k in _SHOWN if k in ex["models"][m]["methods"]),
                       key=lambda k: ex["models"][m]["methods"][k]["localisation"]["inside"])
                for m in order if m in ex["models"]}
        lines.append("- Best-localising method per model: "
                     + ", ".join(f"{m}: {k}" for m, k in best.items()) + ".")
    return lines


@register_section("explain", order=50)
def _section(results):
    ex = results.get("stages", {}).get("explain")
    if not ex:
        return None
    models = [m for m in results["config"]["models"] if m in ex["models"]]
    text = ["## Explanations", "",
            f"{ex['n_faces']} test faces ({ex['per_class']} per class, seeded), each explained "
            "for the class the model predicts. Regions come from "
            f"{ex['region_source']}. Reference method for region tables: "
            f"**{ex['reference_method']}**.", ""]
    text += _sentences(ex, models) + [""]
    headers = ["method"]
    for m in models:
        headers += [f"{m} deletion AUC"]
        if ex["ground_truth"]:
            headers += [f"{m} inside %", f"{m} pointing %"]
        headers += [f"{m} s"]
    rows = []
    for method in (k for k in METHODS if k in ex["models"][models[0]]["methods"]):
        row = [method]
        for m in models:
            q = ex["models"][m]["methods"][method]
            row.append(f"{q['deletion_auc']:.3f}")
            if ex["ground_truth"]:
                row += [pct(q["localisation"]["inside"], 0), pct(q["localisation"]["pointing"], 0)]
            row.append(f"{q['seconds']:.1f}")
        rows.append(row)
    text += ["### Explanation quality", "",
             "Deletion AUC: mean probability of the predicted class as the most-attributed "
             "pixels are replaced first by the face's median (area under the curve; lower is "
             "more faithful; `random` is the baseline order)."
             + (" Inside: share of positive attribution on the pixels that carry the "
                "expression (grown by 2 px); pointing: share of faces whose top pixel is "
                "there" + ("; both score each face's map for its true class (a face the "
                           "model misreads is explained again for it, outside the *s* column)"
                           if _localises_true_class(ex) else "")
                + ". A random map scores, on average, the regions' area share on both "
                f"({pct(ex['models'][models[0]]['methods']['random']['localisation']['area'], 0)}%; "
                "its pointing varies widely over few faces)."
                if ex["ground_truth"] else ""), "",
             table(rows, headers), ""]
    ref = ex["reference_method"]
    for m in models:
        by_class = ex["models"][m]["methods"][ref]["regions_by_class"]
        # regions of no area (the generator draws no background mask) are left out
        shown = [r for r in REGION_NAMES
                 if any(by_class[c]["per_area"][r] is not None for c in ex["classes"])]
        rows = []
        for c in ex["classes"]:
            raw, per_area = by_class[c]["raw"], by_class[c]["per_area"]
            rows.append([c] + [f"{pct(raw[r], 0)} ({per_area[r]:.1f}x)"
                               if per_area[r] is not None else f"{pct(raw[r], 0)} (-)"
                               for r in shown])
        text += [f"### Region importance: {m}", "",
                 f"Share of positive {ref} attribution per region, % (in brackets: share "
                 "divided by the region's area share; > 1x means concentrated there). Rows "
                 "group the faces by their true class; each map explains the class the model "
                 "predicted.", "",
                 table(rows, ["true class"] + shown), ""]
    figs = ex["figures"]
    text += [f"![Mean attribution per class]({figs['explain_means']})", ""]
    for m in models:
        text += [f"![{m} attributions]({figs[f'explain_{m}']})", ""]
    return "\n".join(text)
