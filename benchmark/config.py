"""The run configuration: defaults -> profile -> TOML file -> flags, frozen.

Every key a config file may set is a field of :class:`Config`; profiles are
named bundles of such fields (:data:`PROFILES`). Model recipes (estimator
parameters and the grid the search stage explores) live under ``recipes``,
keyed by registry name; their ``params`` merge key by key across the layers,
while a ``grid``, or a parameter (or ``synthetic`` option) whose value is a
table, replaces the earlier layer's whole.
"""

import copy
import inspect
import json
import math
import sys
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

from fer_sklearn._hints import did_you_mean

UNKNOWN_KEY = "Unknown {where} key {key!r}.{hint} Valid keys: {valid}."
UNKNOWN_VALUE = "Unknown {what} {value!r}.{hint} Valid values: {valid}."
BAD_VALUE = "{key} must be {expected}; got {value!r}."
BAD_TOML = "Cannot read config file {path}: {reason}."
BUDGET_WITH_GRID = ("recipes.{model}: time_budget applies to one fit, so it needs an empty "
                    "grid; set grid = {{}} or time_budget = 0.")
HOLDOUT_WITH_GRID = ("recipes.{model}: holdout draws the learning curves of one fit, so it "
                     "needs an empty grid (a grid's folds are its held-out data); set grid = "
                     "{{}} or holdout = 0.")
MISSING_CONFIG = "Config file {path} does not exist."
CONFIG_IS_A_FOLDER = "Config file {path} is a folder; --config takes a TOML file."
BAD_DATASET = (
    "dataset {value!r} is not one of synthetic, fer2013:PATH, folder:PATH, csv:PATH "
    "(e.g. fer2013:data/fer2013.csv or folder:faces/).{hint}"
)
SCHEDULER_WITHOUT_DASK = ("scheduler {scheduler!r} only applies with backend 'dask' "
                          "(--backend dask).")
ROOT_NOT_CSV = (
    "dataset_root {root!r} only applies to a labels CSV (csv:PATH), not to a {kind} "
    "dataset, whose image paths are its own."
)

DATASET_KINDS = ("synthetic", "fer2013", "folder", "csv")
_EXPLAIN_METHODS = ("saliency", "integrated_gradients", "gradcam", "occlusion", "shap")
FAIRNESS_MITIGATIONS = ("significant", "largest", "off")
# Test-time averaging: none, the face and its mirror, ten views (the face and
# four 2-pixel diagonal shifts, each mirrored) or eighteen (those, zoomed in and
# out and rotated each way, each mirrored); see the ``tta`` attribute of Config.
TTA_MODES = ("none", "flip", "crops", "affine")

# Recipe keys a recipe table may hold.
RECIPE_KEYS = ("params", "grid", "max_train", "holdout", "time_budget")


# --------------------------------------------------------------------------- #
# Profiles
# --------------------------------------------------------------------------- #
# Quick: sized so that the default run (synthetic faces, three families, a
# 2-point grid, 2-fold CV) finishes in minutes on a 2-core CPU. Layers are
# kept wide enough (at least 32 channels) to run the CPU's bf16 units at over
# half their matmul rate. Thinner ones are held back by memory traffic: a
# width-16 ResNet does a quarter of the width-32 one's FLOPs yet trains only
# about twice as fast (`python -m benchmark perf`).
_QUICK_COMMON = {"batch_size": 64, "lr_schedule": "onecycle", "label_smoothing": 0.05}

_QUICK_RECIPES = {
    "cnn": {
        "params": {**_QUICK_COMMON, "max_epochs": 8, "lr": 3e-3,
                   "module__width": 32, "module__depth": 3},
        "grid": {"module__dropout": [0.1, 0.3]},
    },
    "resnet18": {
        "params": {**_QUICK_COMMON, "max_epochs": 8, "lr": 3e-3,
                   "module__width": 32, "module__stem_stride": 2},
        "grid": {"lr": [1e-3, 3e-3]},
    },
    "densenet_bc": {
        "params": {**_QUICK_COMMON, "max_epochs": 8, "lr": 3e-3,
                   "module__growth_rate": 32, "module__block_config": [2, 2, 2],
                   "module__stem_stride": 2},
        "grid": {"lr": [1e-3, 3e-3]},
    },
}

# The original study's setup: 224x224 3-channel input (the registry's seed_*
# entries resize on the device), SGD lr 3e-4 momentum 0.9, 10 epochs, batch 32,
# no augmentation, no schedule. At 224x224 a CPU trains a few dozen faces per
# second, so the profile caps the training set (``max_train``) and skips the
# grid search: the study tuned nothing.
_SEED_PARAMS = {
    "optimizer": "torch.optim.SGD", "lr": 3e-4, "optimizer__momentum": 0.9,
    "max_epochs": 10, "batch_size": 32, "lr_schedule": None, "augment": False,
    "precision": "fp32", "channels_last": False,
}
_SEED_RECIPES = {
    name: {"params": dict(_SEED_PARAMS), "grid": {}, "max_train": 200}
    for name in ("seed_cnn", "seed_resnet", "seed_densenet")
}

# Full: the GPU recipe for FER2013 (long schedule, augmentation, ten-view
# averaging at test time). Expect hours on a CPU.
_FULL_COMMON = {"batch_size": 128, "lr_schedule": "onecycle", "label_smoothing": 0.1,
                "class_weight": "balanced", "optimizer__weight_decay": 5e-4}
_FULL_RECIPES = {
    "cnn": {"params": {**_FULL_COMMON, "max_epochs": 120, "lr": 3e-3, "module__width": 64},
            "grid": {"module__dropout": [0.3, 0.5]}},
    "resnet18": {"params": {**_FULL_COMMON, "max_epochs": 120, "lr": 3e-3},
                 "grid": {"lr": [1e-3, 3e-3]}},
    "densenet_bc": {"params": {**_FULL_COMMON, "max_epochs": 120, "lr": 3e-3,
                               "module__growth_rate": 24},
                    "grid": {"lr": [1e-3, 3e-3]}},
}

# FER2013 on a 2-core CPU: one fixed recipe per family, with what works on
# FER2013 at this scale: random shift/rotation/zoom/flip, label smoothing, a
# one-cycle schedule, extra loss weight on the rare `disgust`, and test-time
# averaging over eighteen views. The first half of the epochs train on faces
# scaled to 32x32 (progressive resizing: about half the cost of a 48x48
# epoch), so more epochs fit. Each fit gets a 20-minute time budget that sets
# its epochs (at most ``max_epochs``) on the machine at hand. No grid: 5% of
# Training is held out only to draw the learning curves, so nothing is
# selected on the test split. Recipe choices were made on that held-out 5%
# alone: the cnn trains in batches of 64, which beat batches of 128 there by
# 1.4 to 2.5 points in three runs at the same images/s (the DenseNet showed
# no such gain); the resnet18 too (eighteen-view held-out accuracy 68.5%
# against 67.8% with 128, at 721 against 715 images/s). Batches of 32 lost
# for both (69.4 -> 68.8% and 68.0 -> 66.5%: 81% and 75% of the images/s,
# so fewer epochs fit). The DenseNet's first
# block, at 24x24, holds two layers: four there cost a third of its speed
# (357 against 524 images/s in a 4-epoch probe on 3,072 faces, 2-core Xeon), and with the epochs this frees
# (28 against 19 in 20 minutes) its held-out accuracy rose from 64.6% to 67.3%.
_FER_CPU_COMMON = {"batch_size": 64, "lr_schedule": "onecycle", "label_smoothing": 0.1,
                   "class_weight": {"disgust": 3.0}, "optimizer__weight_decay": 0.05,
                   "progressive_resize": [32, 0.5]}
_FER_CPU_BUDGET = 20 * 60
_FER_CPU_RECIPES = {
    "cnn": {"params": {**_FER_CPU_COMMON, "max_epochs": 40, "lr": 2e-3,
                       "module__width": 32, "module__depth": 4, "module__dropout": 0.4},
            "grid": {}, "holdout": 0.05, "time_budget": _FER_CPU_BUDGET},
    "resnet18": {"params": {**_FER_CPU_COMMON, "max_epochs": 50, "lr": 2e-3,
                            "module__width": 32, "module__stem_stride": 2,
                            "module__dropout": 0.2},
                 "grid": {}, "holdout": 0.05, "time_budget": _FER_CPU_BUDGET},
    "densenet_bc": {"params": {**_FER_CPU_COMMON, "batch_size": 128, "max_epochs": 36,
                               "lr": 2e-3, "module__growth_rate": 16,
                               "module__block_config": [2, 8, 12], "module__stem_stride": 2},
                    "grid": {}, "holdout": 0.05, "time_budget": _FER_CPU_BUDGET},
}

PROFILES = {
    "quick": {
        "description": "CPU-sized: small models, a 2-point grid, 2-fold CV (the default)",
        "models": ["cnn", "resnet18", "densenet_bc"],
        "cv": 2,
        "recipes": _QUICK_RECIPES,
    },
    "full": {
        "description": "GPU recipe for FER2013: long schedule, augmentation, ten-view averaging",
        "models": ["cnn", "resnet18", "densenet_bc"],
        "cv": 3,
        "tta": "crops",
        "recipes": _FULL_RECIPES,
    },
    "fer2013-cpu": {
        "description": ("FER2013 on a 2-core CPU: one tuned recipe per family, ~20 min "
                        "each, eighteen-view test averaging"),
        "models": ["cnn", "resnet18", "densenet_bc"],
        "tta": "affine",
        "fairness_mitigation": "off",
        "attributes_note": ("predicted, not self-reported: FER2013's demographics.csv "
                            "comes from a CNN trained on UTKFace applied to the enlarged "
                            "48x48 grayscale faces; treat groups as noisy, race especially"),
        "recipes": _FER_CPU_RECIPES,
    },
    "seed": {
        "description": ("the original study's setup (224x224x3, SGD 3e-4, 10 epochs) "
                        "beside the quick recipes; the seed models on 200 training images"),
        "models": ["cnn", "resnet18", "densenet_bc",
                   "seed_cnn", "seed_resnet", "seed_densenet"],
        "cv": 2,
        # 224x224 networks explain slowly on a CPU: fewer faces, the fast methods
        "explain_per_class": 2,
        "explain_methods": ["saliency", "integrated_gradients", "gradcam"],
        "recipes": {**_QUICK_RECIPES, **_SEED_RECIPES},
    },
}


# --------------------------------------------------------------------------- #
# Config
# --------------------------------------------------------------------------- #
@dataclass(frozen=True)
class Config:
    """Everything a run depends on; written to ``config.json`` beside the results.

    Attributes
    ----------
    dataset : str
        ``synthetic``, ``fer2013:PATH``, ``folder:PATH`` or ``csv:PATH``.
    dataset_root : str or None
        For ``csv:PATH``: the folder its relative image paths are read
        from, and that absolute paths recorded on another machine (such as
        ``/content/drive/...``) are re-rooted to; None: the CSV's folder.
    attributes : str or None
        CSV of sensitive attributes joined on the image path (its ``path``
        column), or, for the FER2013 CSV, which has no paths, on the data row
        number (its ``row`` column).
    attributes_note : str or None
        Where the attributes come from (e.g. predicted by a model, not
        self-reported); printed with every table that uses them.
    models : list of str
        Registry names to compare.
    profile : str
        Name in :data:`PROFILES`.
    device : str
        ``auto``, ``cpu``, ``cuda``, ...
    out : str
        Folder holding run folders.
    name : str or None
        Run folder name; default ``<dataset kind>-<profile>``, or the
        profile's name alone when it starts with the dataset kind
        (``fer2013-cpu``).
    seed : int
        Seeds the split, the folds, every model and the bootstrap. (A
        recipe's ``time_budget`` can still make its epochs machine-dependent.)
    n_jobs : int
        Parallel fits in the search on the ``loky`` backend (1: in this process).
    backend : {"loky", "dask"}
        Where the search's fits run: local processes (loky), or a Dask
        cluster through joblib's ``dask`` backend.
    scheduler : str or None
        Address of a running Dask scheduler (``tcp://HOST:8786``); None with
        ``backend="dask"`` starts a local cluster of one worker per core.
    cv : int
        Folds of the stratified K-fold search.
    test_size : float
        Test share when the dataset has no test or validation split.
    max_train : int or None
        Stratified cap on training images (all models).
    n_boot : int
        Bootstrap resamples for confidence intervals.
    tta : {"none", "flip", "crops", "affine"}
        Test-time averaging of probabilities: none, over the face and its
        mirror, over ten views (the face unshifted and shifted by 2 pixels
        along each diagonal, each also mirrored) or over eighteen (those ten,
        and the face zoomed in and out by 10% and rotated 8 degrees each way,
        each mirrored). ``true``/``false`` mean ``flip``/``none``.
    save_models : bool
        Also write each fitted model to ``RUN_DIR/models/`` (a joblib pickle
        and skorch ``save_params`` files), for ``benchmark evaluate``.
    explain_per_class : int
        Test faces per class that the explain stage explains (seeded sample).
    explain_methods : list of str
        Attribution methods of the explain stage (``random``, the baseline,
        is always added).
    synthetic : dict
        Options for :func:`~fer_sklearn.datasets.make_synthetic_faces`.
    recipes : dict
        Per registry name: ``params`` (estimator parameters), ``grid``
        (searched values), optionally ``max_train`` and, for a recipe without
        a grid, ``holdout``: a stratified fraction of the training images
        kept out of the fit to draw held-out learning curves (nothing is
        selected on it), and ``time_budget``: about how many seconds the fit
        may take (0 or false: no budget); a short timed probe on this
        machine then lowers ``max_epochs`` (the schedule is laid out over
        the epochs that fit) when the recipe's epochs would take longer,
        and the fit itself re-plans after every epoch (the estimator's
        ``time_budget``), shortening its schedule if the epochs run slower
        than probed, or lengthening it (up to ``max_epochs``) if faster.
        The epochs trained then depend on the machine and its load; the
        run's results record them.
    min_group_size : int
        Fairness audit: groups with fewer test images are shown but marked
        too small to judge and left out of gaps.
    fairness_n_boot : int or None
        Bootstrap resamples of the fairness audit; None: ``n_boot``.
    fairness_intersections : list of lists of str, or None
        Attribute combinations audited as one feature (e.g.
        ``[["tone", "age"]]``); None: every pair of attributes; ``[]``: none.
    fairness_mitigation : str
        ``significant``: retrain the best model on a group-balanced resample
        for the attribute with the largest significant accuracy gap (single
        attributes before intersections; skipped when there is none);
        ``largest``: for the largest gap even if not significant; ``off``: no
        retraining.
    """

    dataset: str = "synthetic"
    dataset_root: str = None
    attributes: str = None
    attributes_note: str = None
    models: list = field(default_factory=list)
    profile: str = "quick"
    device: str = "auto"
    out: str = "reports"
    name: str = None
    seed: int = 0
    n_jobs: int = 1
    backend: str = "loky"
    scheduler: str = None
    cv: int = 2
    test_size: float = 0.2
    max_train: int = None
    n_boot: int = 500
    tta: str = "none"
    save_models: bool = False
    explain_per_class: int = 5
    explain_methods: list = field(default_factory=lambda: list(_EXPLAIN_METHODS))
    synthetic: dict = field(default_factory=lambda: {"n_samples": 5000})
    recipes: dict = field(default_factory=dict)
    min_group_size: int = 30
    fairness_n_boot: int = None
    fairness_intersections: list = None
    fairness_mitigation: str = "significant"

    @property
    def dataset_kind(self):
        return self.dataset.split(":", 1)[0]

    @property
    def dataset_path(self):
        return self.dataset.split(":", 1)[1] if ":" in self.dataset else None

    @property
    def run_name(self):
        if self.name:
            return self.name
        if self.profile.startswith(self.dataset_kind):  # fer2013 + fer2013-cpu
            return self.profile
        return f"{self.dataset_kind}-{self.profile}"

    @property
    def run_dir(self):
        return Path(self.out) / self.run_name

    def recipe(self, model):
        """The recipe of ``model``: ``{"params": {...}, "grid": {...}, "max_train": ...}``."""
        recipe = self.recipes.get(model, {})
        return {"params": dict(recipe.get("params", {})),
                "grid": {k: list(v) for k, v in recipe.get("grid", {}).items()},
                "max_train": recipe.get("max_train"),
                "holdout": recipe.get("holdout") or None,  # 0 or false: none
                "time_budget": recipe.get("time_budget")}

    def to_dict(self):
        return asdict(self)

    def to_json(self):
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)


FIELDS = tuple(f.name for f in fields(Config))
_PROFILE_KEYS = ("description",) + FIELDS


def _merge(base, update, path=()):
    """Recursive dict merge of config layers: tables merge key by key down to a
    recipe's ``params``, anything else replaces.

    A recipe's ``grid`` is one search space and replaces the earlier layer's
    whole (``grid = {}`` clears it); a parameter or ``synthetic`` option whose
    value is a table (such as ``class_weight`` or ``bias``) replaces the
    earlier value whole too.
    """
    out = copy.deepcopy(base)
    for key, value in update.items():
        option = path == ("synthetic",) or (
            len(path) == 3 and path[0] == "recipes" and path[2] == "params")
        replaces = option or (len(path) == 2 and path[0] == "recipes" and key == "grid")
        if isinstance(value, dict) and not replaces and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value, (*path, key))
        else:
            out[key] = copy.deepcopy(value)
    return out


def _check_keys(mapping, valid, where):
    problems = []
    for key in mapping:
        if key not in valid:
            problems.append(UNKNOWN_KEY.format(where=where, key=key,
                                               hint=did_you_mean(key, valid),
                                               valid=", ".join(valid)))
    return problems


def read_toml(path):
    """Read a TOML config file into a dict, with the file named in errors."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(CONFIG_IS_A_FOLDER.format(path=path))
    if not path.is_file():
        raise ValueError(MISSING_CONFIG.format(path=path))
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(BAD_TOML.format(path=path, reason=exc)) from exc


# Fields that hold text (or None), and what they name.
_TEXT_FIELDS = {"out": "a folder path", "attributes": "a CSV path",
                "attributes_note": "a sentence", "device": "a device name such as 'cpu'",
                "scheduler": "a scheduler address such as 'tcp://HOST:8786'"}


def _validate(values):
    """Every problem of a merged config, as one list of messages."""
    from fer_sklearn.architectures import list_architectures

    problems = _check_keys(values, FIELDS, "config")
    kind, colon, where = str(values.get("dataset", "")).partition(":")
    if kind not in DATASET_KINDS:
        problems.append(BAD_DATASET.format(value=values.get("dataset"),
                                           hint=did_you_mean(kind, DATASET_KINDS)))
    elif kind == "synthetic" and colon:
        problems.append(BAD_DATASET.format(value=values["dataset"],
                                           hint=" The synthetic faces take no path."))
    elif kind != "synthetic" and not where.strip():
        problems.append(BAD_DATASET.format(value=values["dataset"],
                                           hint=f" {kind}: needs a path after the colon."))
    elif values.get("dataset_root") is not None and kind != "csv":
        problems.append(ROOT_NOT_CSV.format(root=values["dataset_root"], kind=kind))
    elif not isinstance(values.get("dataset_root"), (str, type(None))):
        problems.append(BAD_VALUE.format(key="dataset_root", expected="a folder path",
                                         value=values["dataset_root"]))
    for key, expected in _TEXT_FIELDS.items():  # a number there once failed late, in a traceback
        if not isinstance(values.get(key), (str, type(None))):
            problems.append(BAD_VALUE.format(key=key, expected=expected, value=values[key]))
    valid_models = list_architectures()
    models = values.get("models")
    if not _is_list_of_str(models) or not models:
        problems.append(BAD_VALUE.format(key="models", expected="a non-empty list of "
                                         "registry names", value=models))
    else:
        repeated = sorted({m for m in models if models.count(m) > 1})
        if repeated:
            problems.append(BAD_VALUE.format(key="models", expected="a list naming each "
                                             f"model once ({', '.join(repeated)} repeated)",
                                             value=models))
        for model in models:
            if model not in valid_models:
                problems.append(UNKNOWN_VALUE.format(what="model", value=model,
                                                     hint=did_you_mean(model, valid_models),
                                                     valid=", ".join(valid_models)))
    name = values.get("name")
    if name is not None and (not isinstance(name, str) or not name.strip()
                             or name in (".", "..") or any(c in name for c in "/\\")):
        problems.append(BAD_VALUE.format(key="name", expected="None or a folder name inside "
                                         "out (not empty, no '/', '\\' or '..')", value=name))
    problems += _validate_synthetic(values.get("synthetic"))
    problems += _validate_recipes(values.get("recipes"), valid_models)
    checks = (  # key, expected, whether an integer value is acceptable
        ("seed", "an integer from 0 to 2**32 - 1", lambda v: 0 <= v < 2**32),
        ("n_jobs", "an integer other than 0 (-1: all cores)", lambda v: v != 0),
        ("cv", "an integer >= 2", lambda v: v >= 2),
        ("n_boot", "a positive integer", lambda v: v >= 1),
        ("explain_per_class", "a positive integer", lambda v: v >= 1),
    )
    for key, expected, fits in checks:
        value = values.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or not fits(value):
            problems.append(BAD_VALUE.format(key=key, expected=expected, value=value))
    methods = values.get("explain_methods")
    if not _is_list_of_str(methods):
        problems.append(BAD_VALUE.format(key="explain_methods", expected="a list of method "
                                         f"names ({', '.join(_EXPLAIN_METHODS)})",
                                         value=methods))
    elif not set(methods) - {"random"}:
        problems.append(BAD_VALUE.format(key="explain_methods", expected="at least one method "
                                         f"besides the random baseline ({', '.join(_EXPLAIN_METHODS)})",
                                         value=methods))
    else:
        for method in methods:
            if method not in _EXPLAIN_METHODS + ("random",):
                problems.append(UNKNOWN_VALUE.format(what="explain method", value=method,
                                                     hint=did_you_mean(method, _EXPLAIN_METHODS),
                                                     valid=", ".join(_EXPLAIN_METHODS)))
    if values.get("backend") not in ("loky", "dask"):
        problems.append(UNKNOWN_VALUE.format(what="backend", value=values.get("backend"),
                                             hint=did_you_mean(values.get("backend"),
                                                                ("loky", "dask")),
                                             valid="loky, dask"))
    elif values.get("scheduler") and values["backend"] != "dask":
        problems.append(SCHEDULER_WITHOUT_DASK.format(scheduler=values["scheduler"]))
    test_size = values.get("test_size")
    if not isinstance(test_size, (int, float)) or not 0 < test_size < 1:
        problems.append(BAD_VALUE.format(key="test_size", expected="a number in (0, 1)",
                                         value=test_size))
    tta = values.get("tta")
    if isinstance(tta, bool):
        values["tta"] = "flip" if tta else "none"
    elif tta not in TTA_MODES:
        problems.append(UNKNOWN_VALUE.format(what="tta", value=tta,
                                             hint=did_you_mean(tta, TTA_MODES),
                                             valid=", ".join(TTA_MODES)))
    if not isinstance(values.get("save_models"), bool):
        problems.append(BAD_VALUE.format(key="save_models", expected="true or false",
                                         value=values.get("save_models")))
    problems += _validate_fairness(values)
    problems += _max_train_problems("max_train", values.get("max_train"))
    return problems


def _max_train_problems(key, cap):
    """A training-set cap is None or an integer >= 10."""
    if cap is None or (isinstance(cap, int) and cap >= 10):  # a bool is below 10
        return []
    return [BAD_VALUE.format(key=key, expected="None or an integer >= 10", value=cap)]


def _is_list_of_str(value):
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _synthetic_keys():
    """Options of make_synthetic_faces a config may set (the data stage sets the rest)."""
    from fer_sklearn.datasets import make_synthetic_faces

    return tuple(name for name in inspect.signature(make_synthetic_faces).parameters
                 if not name.startswith("return_"))


def _validate_synthetic(synthetic):
    if not isinstance(synthetic, dict):
        return [BAD_VALUE.format(key="synthetic", expected="a table of make_synthetic_faces "
                                 f"options ({', '.join(_synthetic_keys())})", value=synthetic)]
    return _check_keys(synthetic, _synthetic_keys(), "synthetic")


def _validate_recipes(recipes, valid_models):
    if not isinstance(recipes, dict):
        return [BAD_VALUE.format(key="recipes", expected="a table of recipe tables keyed by "
                                 "model name, e.g. [recipes.cnn.params]", value=recipes)]
    problems = _check_keys(recipes, valid_models, "recipes")
    for model, recipe in recipes.items():
        if not isinstance(recipe, dict):
            problems.append(BAD_VALUE.format(key=f"recipes.{model}", expected="a table",
                                             value=recipe))
            continue
        problems += _check_keys(recipe, RECIPE_KEYS, f"recipes.{model}")
        for part in ("params", "grid"):
            if not isinstance(recipe.get(part, {}), dict):
                problems.append(BAD_VALUE.format(
                    key=f"recipes.{model}.{part}",
                    expected=f"a table, e.g. [recipes.{model}.{part}]", value=recipe[part]))
        problems += _max_train_problems(f"recipes.{model}.max_train", recipe.get("max_train"))
        holdout = recipe.get("holdout")
        if holdout not in (None, False, 0) and (isinstance(holdout, bool) or not isinstance(
                holdout, (int, float)) or not 0 < holdout < 0.5):
            problems.append(BAD_VALUE.format(key=f"recipes.{model}.holdout",
                                             expected="a number in (0, 0.5), or 0 or false "
                                             "for none", value=holdout))
        elif holdout and recipe.get("grid"):
            problems.append(HOLDOUT_WITH_GRID.format(model=model))
        budget = recipe.get("time_budget")
        if budget not in (None, False, 0) and (
                isinstance(budget, bool) or not isinstance(budget, (int, float))
                or not 0 < budget < math.inf):
            problems.append(BAD_VALUE.format(key=f"recipes.{model}.time_budget",
                                             expected="a finite number of seconds > 0, or "
                                             "0 or false for none", value=budget))
        elif budget and recipe.get("grid"):
            problems.append(BUDGET_WITH_GRID.format(model=model))
        grid = recipe.get("grid", {})
        for name, values_ in (grid.items() if isinstance(grid, dict) else ()):
            if not isinstance(values_, list) or not values_:
                problems.append(BAD_VALUE.format(key=f"recipes.{model}.grid.{name}",
                                                 expected="a non-empty list", value=values_))
    return problems


def _validate_fairness(values):
    problems = []
    size = values.get("min_group_size")
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        problems.append(BAD_VALUE.format(key="min_group_size", expected="a positive integer",
                                         value=size))
    n_boot = values.get("fairness_n_boot")
    if n_boot is not None and (isinstance(n_boot, bool) or not isinstance(n_boot, int)
                               or n_boot < 2):
        problems.append(BAD_VALUE.format(key="fairness_n_boot",
                                         expected="None or an integer >= 2", value=n_boot))
    inter = values.get("fairness_intersections")
    if inter is not None and (not isinstance(inter, list) or not all(
            isinstance(i, list) and len(set(i)) >= 2 and len(set(i)) == len(i)
            and all(isinstance(a, str) for a in i) for i in inter)):
        problems.append(BAD_VALUE.format(
            key="fairness_intersections",
            expected='None or a list of lists of two or more distinct attribute names, '
                     'e.g. [["tone", "age"]]', value=inter))
    mitigation = values.get("fairness_mitigation")
    if mitigation not in FAIRNESS_MITIGATIONS:
        problems.append(UNKNOWN_VALUE.format(what="fairness_mitigation", value=mitigation,
                                             hint=did_you_mean(mitigation, FAIRNESS_MITIGATIONS),
                                             valid=", ".join(FAIRNESS_MITIGATIONS)))
    return problems


def resolve_config(file=None, **flags):
    """Build the frozen :class:`Config` of a run.

    Layers, later ones winning: :class:`Config`'s defaults, the profile, the
    TOML ``file``, then ``flags`` (None values are "not given").

    Parameters
    ----------
    file : str or Path or None
        TOML file whose top-level keys are :class:`Config` fields.
    **flags
        Command-line values, by field name.

    Returns
    -------
    Config

    Raises
    ------
    ValueError
        Listing every unknown key or value, each with "did you mean".
    """
    flags = {k: v for k, v in flags.items() if v is not None}
    problems = _check_keys(flags, FIELDS, "flag")
    from_file = read_toml(file) if file is not None else {}
    profile = flags.get("profile", from_file.get("profile", Config.profile))
    if not isinstance(profile, str):
        problems.append(BAD_VALUE.format(key="profile", expected="one profile name ("
                                         + ", ".join(PROFILES) + ")", value=profile))
        layer = {}
    elif profile not in PROFILES:
        problems.append(UNKNOWN_VALUE.format(what="profile", value=profile,
                                             hint=did_you_mean(profile, PROFILES),
                                             valid=", ".join(PROFILES)))
        layer = {}
    else:
        layer = {k: v for k, v in PROFILES[profile].items() if k != "description"}
    if problems:
        raise ValueError("\n".join(problems))
    values = Config().to_dict()
    for update in (layer, from_file, flags):
        values = _merge(values, update)
    if "models" in flags or "models" in from_file:
        # Models named explicitly replace the profile's list rather than merge.
        models = flags["models"] if "models" in flags else from_file["models"]
        values["models"] = list(models) if isinstance(models, (list, tuple)) else models
    problems = _validate(values)
    if problems:
        raise ValueError("\n".join(problems))
    return Config(**values)


def describe_profiles():
    """``[(name, description)]`` for ``benchmark list``."""
    return [(name, p["description"]) for name, p in PROFILES.items()]
