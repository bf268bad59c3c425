"""Stage ``search``: grid search with stratified K-fold per model, refit on all training data."""

import contextlib
import importlib
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from skorch.dataset import ValidSplit

from fer_sklearn import FERClassifier
from fer_sklearn._hints import did_you_mean
from fer_sklearn._torch_utils import bf16_supported, resolve_device
from fer_sklearn._training import epochs_that_fit, small_epochs
from fer_sklearn.architectures import create, get_spec
from fer_sklearn.reporting.markdown import budget_text

from ..parallel import cluster_for, fits_on
from ..progress import FitProgress, log
from ..store import atomic_path, stop_if_interrupted
from . import register_stage
from .data import stratified_cap, training_rows

BAD_PARAM = "recipes.{model}.{part}: {reason}"
BAD_IMPORT = "recipes.{model}.params.{key}={value!r} is not an importable 'module.Name'."

# Parameters that name a class by its import path in config files.
_CLASS_PARAMS = ("optimizer", "criterion")


def _resolve(model, params):
    out = dict(params)
    for key in _CLASS_PARAMS:
        value = out.get(key)
        if isinstance(value, str):
            module, _, name = value.rpartition(".")
            try:
                out[key] = getattr(importlib.import_module(module), name)
            except (ImportError, AttributeError, ValueError) as exc:
                raise ValueError(BAD_IMPORT.format(model=model, key=key, value=value)) from exc
    if "module__block_config" in out:
        out["module__block_config"] = tuple(out["module__block_config"])
    return out


def build_estimator(config, model, params=None, part="params"):
    """The estimator of ``model`` with its recipe's parameters (and ``params`` on top);
    ``part`` names the recipe's part that an error message blames."""
    recipe = config.recipe(model)
    merged = _resolve(model, {**recipe["params"], **(params or {})})
    est = FERClassifier(architecture=model, device=config.device, random_state=config.seed)
    known = est.get_params(deep=False)
    unknown = [k for k in merged if "__" not in k and k not in known]
    if unknown:
        hints = "; ".join(f"{k!r}{did_you_mean(k, known)}" for k in unknown)
        raise ValueError(BAD_PARAM.format(model=model, part=part,
                                          reason=f"unknown parameter(s) {hints}"))
    try:
        est.set_params(**merged)
    except ValueError as exc:
        raise ValueError(BAD_PARAM.format(model=model, part=part, reason=exc)) from exc
    return est


def check_recipes(config):
    """Build every model's estimator, a grid point included, before any work starts.

    Raises
    ------
    ValueError
        Listing every recipe with an unknown parameter or architecture option
        (``module__*``), each with "did you mean", or a value the estimator
        refuses (:meth:`~fer_sklearn.FERClassifier.check_params`).
    """
    problems = []
    for model in config.models:
        options = [f"module__{o}" for o in get_spec(model).options()]
        grid = config.recipe(model)["grid"]
        point = {k: v[0] for k, v in grid.items() if v}
        for part, extra in (("params", {}), ("grid", point)):
            try:
                est = build_estimator(config, model, extra, part=part)
            except ValueError as exc:
                problems.append(str(exc))
                break
            unknown = [k for k in (extra or est.get_params(deep=False))
                       if k.startswith("module__") and k not in options]
            if unknown:
                hints = "; ".join(f"{k!r}{did_you_mean(k, options)}" for k in unknown)
                problems.append(BAD_PARAM.format(model=model, part=part,
                                                 reason=f"unknown option(s) {hints}"))
                break
            try:
                est.check_params()  # wrong types too (max_epochs = "2"), before any fit
                if est.module is None:  # options of the wrong type (width = "a")
                    with torch.device("meta"):  # the shapes alone: no weights allocated
                        create(est.architecture, **est.get_params_for("module"))
            except (ValueError, TypeError) as exc:
                problems.append(BAD_PARAM.format(model=model, part=part, reason=exc))
                break
    if problems:
        raise ValueError("\n".join(problems))


def _history(est):
    keys = ("epoch", "train_loss", "valid_loss", "valid_acc", "dur")
    return [{k: row[k] for k in keys if k in row} for row in est.history]


# The time-budget probe: one warm-up epoch, then one timed epoch, on this many
# training batches.
_PROBE_BATCHES = 24


def epochs_within(est, X, y, budget, holdout=None, seed=0):
    """How many of ``est``'s epochs fit ``budget`` seconds of training here.

    A throwaway copy of ``est`` trains two epochs on a stratified sample of
    ``_PROBE_BATCHES`` batches; the second epoch's images/s, applied to the
    training share of ``X`` (plus a third of that cost for the ``holdout``
    share, which is only scored), estimates one epoch. With
    ``progressive_resize`` a second copy times an epoch at the small size, and
    the plan counts the epochs the schedule runs at each size. The fit itself
    is seeded on its own, so the probe changes none of its random draws.

    Returns
    -------
    dict
        ``budget_s``, ``probe_images``, ``probe_images_per_s``, ``epoch_s``
        (the estimate), ``max_epochs`` (the recipe's) and ``epochs``: the
        most that fit, at least 1 and at most ``max_epochs``. With
        ``progressive_resize`` also ``small_side``, ``small_images_per_s`` and
        ``small_epoch_s``.
    """
    n = min(len(y), est.batch_size * _PROBE_BATCHES)
    idx = stratified_cap(np.arange(len(y)), y, n, seed)
    share = holdout or 0.0

    def epoch_seconds(**params):
        # Class weights could name a class the sample lacks; early stopping would
        # validate and checkpoints would write files: none of them change the speed.
        probe = clone(est).set_params(max_epochs=2, train_split=None, callbacks=None,
                                      class_weight=None, early_stopping=None,
                                      checkpoint_dir=None, **params)
        probe.fit(X[idx], y[idx])
        stop_if_interrupted()  # skorch ends a fit on Ctrl-C; its timing is then cut short
        rate = n / probe.history[-1, "dur"]
        return rate, len(y) * (1 - share) / rate

    rate, train_s = epoch_seconds(progressive_resize=None)
    valid_s = len(y) * share / 3 / rate  # the held-out share is scored at full size
    epoch_s = train_s + valid_s
    planned = est.max_epochs
    plan = {"budget_s": budget, "probe_images": int(n), "probe_images_per_s": float(rate),
            "epoch_s": float(epoch_s), "max_epochs": int(planned)}
    small_epoch_s = epoch_s
    if est.progressive_resize is not None:
        side = est.progressive_resize[0]
        small_rate, small_train_s = epoch_seconds(progressive_resize=(side, 1.0))
        small_epoch_s = small_train_s + valid_s
        plan.update(small_side=int(side), small_images_per_s=float(small_rate),
                    small_epoch_s=float(small_epoch_s))
    # The same rule the fit's own re-planning applies after each epoch.
    plan["epochs"] = int(max(1, epochs_that_fit(
        0, 0.0, budget, planned, epoch_s, small_epoch_s,
        lambda epochs: small_epochs(est.progressive_resize, epochs))))
    return plan


SHORT_SCHEDULE = ("search {model}: only {epochs} of the recipe's {max_epochs} epochs fit its "
                  "time budget here, so expect lower accuracy than where more fit{why}")
NO_FAST_BF16 = ("; this CPU has no fast bfloat16 (AVX512-BF16 or AMX), so the fit runs in "
                "fp32: a GPU, or a CPU with either, fits up to four times as many epochs")


def short_schedule_note(model, plan, est):
    """A line for the log where the budget leaves less than half the recipe's
    epochs (None otherwise), saying why where the CPU trains in fp32 for want
    of fast bfloat16."""
    if 2 * plan["epochs"] >= plan["max_epochs"]:
        return None
    device = resolve_device(est.device) or "cpu"
    fp32_cpu = (torch.device(device).type == "cpu" and est.precision == "auto"
                and not bf16_supported(device))
    return SHORT_SCHEDULE.format(model=model, epochs=plan["epochs"],
                                 max_epochs=plan["max_epochs"],
                                 why=NO_FAST_BF16 if fp32_cpu else "")


def search_one(config, model, X, y):
    """Search ``model``'s grid on ``(X, y)``; returns ``(fitted estimator, record)``."""
    recipe = config.recipe(model)
    est = build_estimator(config, model)
    est.set_params(callbacks=[("progress", FitProgress(model))])
    grid = recipe["grid"]
    record = {"grid": grid, "n_train": int(len(y)), "params": recipe["params"]}
    if not grid:
        holdout = recipe["holdout"]
        if holdout:
            # Held out only to draw learning curves; nothing is chosen on it.
            est.set_params(train_split=ValidSplit(holdout, stratified=True,
                                                  random_state=config.seed))
            record["holdout"] = holdout
        log(f"search {model}: no grid, one fit on {len(y)} images"
            + (f" ({holdout:.0%} held out for the learning curve)" if holdout else ""))
        if recipe["time_budget"]:
            plan = epochs_within(est, X, y, recipe["time_budget"], holdout, config.seed)
            # The probe's plan is the schedule's start; the fit re-plans after
            # every epoch, shortening it if the epochs run slower than probed
            # and lengthening it (up to the recipe's max_epochs) if faster.
            est.set_params(time_budget=recipe["time_budget"],
                           callbacks__time_budget__initial_epochs=plan["epochs"])
            if "small_epoch_s" in plan:  # the probe's cost ratio of the two sizes
                est.set_params(callbacks__time_budget__small_cost=plan["small_epoch_s"]
                               / plan["epoch_s"])
            record["time_budget"] = plan
            log(f"search {model}: {budget_text(plan)}")
            if note := short_schedule_note(model, plan, est):
                log(note)
        start = time.perf_counter()
        est.fit(X, y)
        record.update(cv=None, best_params={}, refit_time=time.perf_counter() - start)
        if recipe["time_budget"]:
            record["time_budget"]["epochs_trained"] = len(est.history)
    else:
        folds = StratifiedKFold(config.cv, shuffle=True, random_state=config.seed)
        n_cand = int(np.prod([len(v) for v in grid.values()]))
        log(f"search {model}: {n_cand} candidate(s) x {config.cv} folds on {len(y)} images, "
            f"then a refit on all of them")
        with fits_on(config, X, y) as n_jobs:
            search = GridSearchCV(est, grid, cv=folds, scoring="accuracy", refit=True,
                                  n_jobs=n_jobs, error_score="raise")
            search.fit(X, y)
        res = search.cv_results_
        record.update(
            cv={
                "params": [dict(p) for p in res["params"]],
                "mean": res["mean_test_score"].tolist(),
                "std": res["std_test_score"].tolist(),
                "splits": [res[f"split{i}_test_score"].tolist() for i in range(config.cv)],
                "mean_fit_time": res["mean_fit_time"].tolist(),
                "rank": res["rank_test_score"].tolist(),
            },
            best_params=dict(search.best_params_),
            best_score=float(search.best_score_),
            refit_time=float(search.refit_time_),
        )
        est = search.best_estimator_
    # Progress callbacks print; the stored model is quiet.
    est.set_params(callbacks=None)
    est.initialize_callbacks()
    record["history"] = _history(est)
    return est, record


@register_stage("search", order=20, description="grid search (stratified K-fold), refit")
def search_stage(ctx):
    config, d = ctx.config, ctx.data
    out = {}
    todo = [m for m in config.models
            if not (ctx.store.has(f"search-{m}") and ctx.store.has(f"model-{m}", "joblib"))]
    # a cluster only for grids to search (a single fit runs here)
    searches = [m for m in todo if config.recipe(m)["grid"]]
    with cluster_for(config) if searches else contextlib.nullcontext():
        for model in config.models:
            key = f"search-{model}"
            if model not in todo:
                log(f"search {model}: finished in an earlier run, reused")
                out[model] = ctx.store.get_json(key)
                continue
            idx = training_rows(config, d.y_train, model)
            est, record = search_one(config, model, d.X_train[idx], d.y_train[idx])
            ctx.store.put_model(f"model-{model}", est)
            ctx.store.put_json(key, record)
            out[model] = ctx.store.get_json(key)
    return out


# skorch's save_params files of a saved model, by argument; with NAME.joblib,
# every file save_model writes.
_PARAMS_FILES = {"f_params": "params.pt", "f_optimizer": "optimizer.pt",
                 "f_history": "history.json"}
MODEL_FILE_SUFFIXES = ("joblib", *_PARAMS_FILES.values())


def save_model(est, folder, name):
    """Write ``est`` as ``NAME.joblib`` plus skorch's ``save_params`` files.

    The joblib pickle restores the whole estimator (``joblib.load``). The
    ``NAME.params.pt`` / ``NAME.optimizer.pt`` / ``NAME.history.json`` trio
    loads with skorch's ``load_params`` into an estimator of the same
    parameters once it is initialised, e.g. by a ``max_epochs=0`` fit on one
    face per class. Every file is written atomically.
    """
    import joblib

    with atomic_path(Path(folder) / f"{name}.joblib") as tmp:
        joblib.dump(est, tmp)
    for arg, suffix in _PARAMS_FILES.items():
        with atomic_path(Path(folder) / f"{name}.{suffix}") as tmp:
            est.save_params(**{arg: str(tmp)})
