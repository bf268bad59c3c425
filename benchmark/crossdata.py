"""``benchmark evaluate``: score a finished run's models on another dataset.

The models are read from ``RUN_DIR/models/`` (written by ``run --save-models``).
Classes are matched by their canonical names: images of a class the models
never learned (e.g. ``contempt``) are left out and counted, and a class the
models know but the dataset lacks (e.g. ``neutral``) is removed from the
models' choices, so each model picks among the shared classes only (at least
two). A label outside the loaders' vocabulary (the seven FER2013 classes,
``contempt`` and their synonyms) stops the loading, naming it. Image files are
decoded at the size the models were trained on. The
result goes into ``results.json`` under ``cross_dataset`` and the report gains
a section for it. ``synthetic`` draws fresh faces with the run's generator
options under another seed (the run's seed + 1), so no face is one the models
trained on.
"""

import math
from pathlib import Path

import joblib
import numpy as np

from fer_sklearn.datasets import attach_attributes
from fer_sklearn.reporting.markdown import ci, pct, register_section, table
from fer_sklearn.stats import bootstrap_ci

from .config import resolve_config
from .progress import log
from .stages.data import class_order, load_bunch
from .stages.evaluate import predict_proba, score
from .store import holding_run, read_run_json, to_jsonable, write_json

NO_MODELS = (
    "{path} holds no saved model for {missing}. Re-run the benchmark with --save-models "
    "(add --resume to reuse its finished work)."
)
NO_SHARED = (
    "{dataset} shares {count} class(es) with the models (dataset: {data}; models: "
    "{models}); at least two are needed, since a choice among one class is always right."
)
UNREADABLE_MODEL = (
    "Cannot load the saved model {path} ({reason}); the file is damaged or was written "
    "by another version. Re-run the benchmark with --save-models."
)
REPLACED = "evaluate: replaces the earlier section '{label}' (pass --label to keep both)"
STATE_OF_ANOTHER_RUN = (
    " Its state/ folder holds models of a later run that did not finish (its search "
    "differs from the one in results.json): they are not scored in this run's name."
)
SAVED_OF_ANOTHER_RUN = (
    "{path} holds the models of a later run that did not finish (they come from another "
    "search than results.json records); finish that run with --resume, or re-run."
)
TOO_FEW = ("{dataset} has only {n} images of the models' classes in {which}; at least 20 "
           "are needed.")

_SPLIT_PREFERENCE = ("test", "validation")
# Below this total probability on the shared classes a face has no ranking
# among them left to renormalise (float32 softmax underflows near 1e-38).
_NO_MASS = 1e-30


def _same_search(path, what, results, key=None):
    """Whether the JSON file ``path`` (its ``key`` entry, if given) records the
    search that ``results`` describe; a missing or damaged file does not."""
    try:
        recorded = read_run_json(path, what)
    except ValueError:
        return False
    if key is not None:
        recorded = recorded.get(key)
    return recorded == results.get("stages", {}).get("search")


def _state_is_this_runs(run_dir, results):
    """Whether ``state/`` still holds the models of the run ``results`` describe:
    a fresh run into the same folder, stopped before its end, replaces them
    while the earlier results stay."""
    return _same_search(run_dir / "state" / "stage-search.json", "state unit", results,
                        key="result")


def _saved_are_this_runs(run_dir, results):
    """Whether ``models/`` holds the models of the run ``results`` describe: its
    ``search.json`` (written before them) records the same search. A folder
    saved before that file existed is trusted."""
    from .runner import MODELS_SEARCH

    path = run_dir / "models" / MODELS_SEARCH
    return not path.is_file() or _same_search(path, "models/search.json", results)


def _models(run_dir, names, results):
    """The saved models (``models/``), else those a run without --save-models
    left in ``state/``, if they are the ones its results describe."""
    models, missing, foreign = {}, [], False
    ours = _state_is_this_runs(run_dir, results)
    saved_ours = _saved_are_this_runs(run_dir, results)
    for name in names:
        saved = run_dir / "models" / f"{name}.joblib"
        state = run_dir / "state" / f"model-{name}.joblib"
        if saved.is_file() and not saved_ours:
            raise ValueError(SAVED_OF_ANOTHER_RUN.format(path=run_dir / "models"))
        if saved.is_file():
            models[name] = _load_model(saved)
            continue
        if state.is_file():
            if ours:
                models[name] = _load_model(state)
                continue
            foreign = True
        missing.append(name)
    if missing:
        raise ValueError(NO_MODELS.format(path=run_dir, missing=", ".join(missing))
                         + (STATE_OF_ANOTHER_RUN if foreign else ""))
    return models


def _load_model(path):
    """``joblib.load``; a damaged file is named, not a traceback."""
    try:
        return joblib.load(path)
    except Exception as exc:  # unpickling damaged bytes can raise almost anything
        reason = str(exc) or type(exc).__name__
        raise ValueError(UNREADABLE_MODEL.format(path=path, reason=reason[:200])) from exc


def _image_side(models):
    """The side of the square grayscale images the models were fitted on, or
    None where their input is not such an image (then the loader's default)."""
    sides = set()
    for est in models.values():
        n = getattr(est, "n_features_in_", None)
        side = math.isqrt(n) if isinstance(n, int) and n > 0 else None
        if side is None or side * side != n:
            return None
        sides.add(side)
    return sides.pop() if len(sides) == 1 else None


def _fresh_synthetic(config):
    """The run's synthetic-face options, under a seed other than the one its faces had."""
    options = dict(config.get("synthetic") or {})
    run_seed = options.get("random_state", config["seed"])
    if isinstance(run_seed, bool) or not isinstance(run_seed, int):
        run_seed = config["seed"]  # unseeded (None) faces: any fixed seed is fresh
    options["random_state"] = run_seed + 1
    return options


def _default_label(config):
    """The dataset's file or folder name (``posed`` for ``csv:posed/labels.csv``)."""
    if not config.dataset_path:
        return config.dataset
    path = Path(config.dataset_path)
    if path.name.lower() == "labels.csv" and path.parent.name:
        return path.parent.name
    return path.stem if path.is_file() else path.name


def _pick_split(bunch):
    """The images to score: the dataset's test (or validation) split, else all."""
    split = bunch.frame["split"].astype(str).to_numpy() if "split" in bunch.frame else None
    for name in _SPLIT_PREFERENCE:
        if split is not None and (split == name).any():
            return np.flatnonzero(split == name), f"its `{name}` split"
    return np.arange(len(bunch.data)), "all its images"


def on_shared(proba, cols):
    """Probabilities renormalised over the shared classes (columns ``cols``),
    and how many faces had none on them.

    A face whose probability all went to classes the dataset lacks (it
    underflowed to 0 on the shared ones) has no ranking among them left: it
    gets equal probabilities (its log loss is a uniform guess's; its
    prediction, the first shared class), and is counted.
    """
    proba = np.asarray(proba, dtype=float)[:, cols]
    mass = proba.sum(1, keepdims=True)
    none = mass[:, 0] < _NO_MASS
    out = np.where(none[:, None], 1.0 / len(cols), proba / np.maximum(mass, _NO_MASS))
    return out, int(none.sum())


def _group_accuracy(y, pred, groups, min_size, n_boot, seed):
    rows = {}
    for g in sorted(set(groups)):
        sel = groups == g
        rows[g] = {"n": int(sel.sum()), "small": bool(sel.sum() < min_size),
                   "accuracy": bootstrap_ci(lambda a, b: float(np.mean(a == b)), y[sel],
                                            pred[sel], n_boot=n_boot, random_state=seed)}
    return rows


def evaluate_run(run_dir, dataset, attributes=None, label=None, tta=None, dataset_root=None):
    """Score the saved models of ``run_dir`` on ``dataset``; update its results and report.

    Parameters
    ----------
    run_dir : str or Path
        A finished run folder.
    dataset : str
        ``folder:PATH``, ``csv:PATH``, ``fer2013:PATH`` or ``synthetic``.
    attributes : str or None
        CSV of group attributes of that dataset, joined on the image path.
    label : str or None
        Name of the section; default: the dataset's file or folder name.
    tta : str or None
        Test-time views; default: the run's own setting.
    dataset_root : str or None
        For ``csv:PATH``: the folder its image paths are read from or
        re-rooted to (see :class:`~benchmark.config.Config`).

    Returns
    -------
    dict
        The new ``results["cross_dataset"][label]`` entry.
    """
    with holding_run(run_dir) as results:  # no run or other evaluate writes it meanwhile
        return _evaluate_run(Path(run_dir), results, dataset, attributes, label, tta,
                             dataset_root)


def _evaluate_run(run_dir, results, dataset, attributes, label, tta, dataset_root):
    from .runner import write_report

    path = run_dir / "results.json"
    config = results["config"]
    # A run trained on synthetic faces is scored on other ones than its own.
    fresh = (str(dataset).split(":", 1)[0] == "synthetic"
             and str(config["dataset"]).split(":", 1)[0] == "synthetic")
    synthetic = _fresh_synthetic(config) if fresh else None
    # The config checks the dataset, its root and the views (with "did you mean").
    other = resolve_config(dataset=dataset, dataset_root=dataset_root, attributes=attributes,
                           models=config["models"], seed=config["seed"], synthetic=synthetic,
                           tta=tta or config.get("tta", "none"))
    label = label or _default_label(other)
    tta = other.tta
    models = _models(run_dir, config["models"], results)

    log(f"evaluate: loading {dataset}")
    bunch = load_bunch(other, size=_image_side(models))
    if attributes:
        bunch = attach_attributes(bunch, attributes)
    idx, which = _pick_split(bunch)
    y_all = np.asarray(bunch.target).astype(str)[idx]
    model_classes = class_order(*[m.classes_ for m in models.values()])
    data_classes = class_order(y_all)
    shared = [c for c in model_classes if c in data_classes]
    if len(shared) < 2:
        raise ValueError(NO_SHARED.format(dataset=dataset, count=len(shared),
                                          data=", ".join(data_classes),
                                          models=", ".join(model_classes)))
    keep = np.isin(y_all, shared)
    if keep.sum() < 20:
        raise ValueError(TOO_FEW.format(dataset=dataset, n=int(keep.sum()), which=which))
    dropped = {c: int((y_all == c).sum()) for c in data_classes if c not in shared}
    X, y = bunch.data[idx[keep]], y_all[keep]
    frame = bunch.frame.iloc[idx[keep]].reset_index(drop=True)
    n_boot = config["n_boot"]
    cols = [model_classes.index(c) for c in shared]

    entry = {
        "dataset": dataset, "images": which, "n": int(len(y)), "tta": tta,
        "shared_classes": shared, "dropped_classes": dropped,
        "missing_classes": [c for c in model_classes if c not in data_classes],
        "class_counts": {c: int((y == c).sum()) for c in shared},
        "attributes": {}, "models": {},
    }
    if synthetic is not None:
        entry["synthetic_seed"] = synthetic["random_state"]
    probas = {}
    for name, est in models.items():
        log(f"evaluate {name} on {len(y)} images of {label}")
        proba, none = on_shared(predict_proba(est, X, tta=tta, classes=model_classes), cols)
        if none:
            entry.setdefault("no_shared_mass", {})[name] = none
        probas[name] = proba
    if len(models) > 1:
        probas["ensemble"] = np.mean([probas[m] for m in models], axis=0)
    attrs = list(bunch.get("attributes", [])) if attributes else []
    for name, proba in probas.items():
        metrics, per_class, cm = score(y, proba, shared, n_boot, config["seed"])
        pred = np.asarray(shared)[proba.argmax(1)]
        entry["models"][name] = {"metrics": metrics, "per_class": per_class,
                                 "confusion_matrix": cm}
        for attr in attrs:
            groups = frame[attr].astype(object).where(frame[attr].notna(), "unknown")
            entry["attributes"].setdefault(attr, {})[name] = _group_accuracy(
                y, pred, groups.astype(str).to_numpy(), config.get("min_group_size", 30),
                n_boot, config["seed"])
    if label in results.get("cross_dataset", {}):
        log(REPLACED.format(label=label))
    results.setdefault("cross_dataset", {})[label] = entry
    # As `run` does: the report renders from exactly what results.json holds.
    results = to_jsonable(results)
    write_json(path, results)
    write_report(run_dir, results)
    log(f"report: {run_dir / 'report.md'} (section 'Other dataset: {label}')")
    return results["cross_dataset"][label]


@register_section("cross_dataset", order=45)
def cross_dataset_section(results):
    """One ``## Other dataset`` section per ``benchmark evaluate`` call."""
    parts = []
    for label, e in sorted(results.get("cross_dataset", {}).items()):
        text = [f"## Other dataset: {label}", "",
                f"The run's saved models scored on `{e['dataset']}` ({e['images']}, "
                f"{e['n']} images), without retraining.", ""]
        if "synthetic_seed" in e:
            text += [f"- Fresh faces: drawn with seed {e['synthetic_seed']}, not the seed of "
                     "the run's own faces, so none is one the models trained on.", ""]
        if e["dropped_classes"]:
            dropped = ", ".join(f"{c} ({n} images)" for c, n in e["dropped_classes"].items())
            text += [f"- Left out, classes the models never learned: {dropped}.", ""]
        if e["missing_classes"]:
            text += [f"- Classes the models know but this dataset lacks: "
                     f"{', '.join(e['missing_classes'])}; each model chooses among the "
                     f"{len(e['shared_classes'])} shared classes only (its probabilities "
                     "renormalised over them).", ""]
        if e.get("no_shared_mass"):
            counts = ", ".join(f"{m} {n}" for m, n in e["no_shared_mass"].items())
            text += [f"- Faces a model gave no probability on any shared class (all of it on "
                     f"classes this dataset lacks): {counts}. They get equal probabilities "
                     f"over the shared classes, so they count as predicted "
                     f"`{e['shared_classes'][0]}` and their log loss is a uniform guess's.", ""]
        # the run's models in its config's order, the ensemble after them
        # (results.json stores its keys sorted)
        listed = results["config"]["models"]
        names = ([m for m in listed if m in e["models"]]
                 + [m for m in e["models"] if m not in listed])
        rows = [[name, ci(e["models"][name]["metrics"]["accuracy"]),
                 ci(e["models"][name]["metrics"]["macro_f1"]),
                 ci(e["models"][name]["metrics"]["balanced_accuracy"])] for name in names]
        text += [table(rows, ["model", "accuracy % [95% CI]", "macro-F1 % [CI]",
                              "balanced acc. % [CI]"]), ""]
        rows = [[c, e["class_counts"][c]]
                + [pct(e["models"][m]["per_class"][c]["recall"]) for m in names]
                for c in e["shared_classes"]]
        text += ["Recall % per class:", "",
                 table(rows, ["class", "images"] + names), ""]
        for attr, per_model in e["attributes"].items():
            groups = sorted(next(iter(per_model.values())))
            rows = []
            for g in groups:
                first = next(iter(per_model.values()))[g]
                rows.append([g + (" (small)" if first["small"] else ""), first["n"]]
                            + [ci(per_model[m][g]["accuracy"]) for m in names])
            text += [f"Accuracy % [95% CI] by `{attr}` (groups marked small have too few "
                     "images to judge):", "", table(rows, [attr, "images"] + names), ""]
        parts.append("\n".join(text))
    return "\n".join(parts) if parts else None
