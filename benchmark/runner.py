"""Run the stages of a benchmark, record each as it finishes, write the report."""

import hashlib
import os
import platform
import re
import shutil
import time
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd

from fer_sklearn._torch_utils import resolve_device
from fer_sklearn.reporting import figures, render_report

from .config import Config
from .progress import log
from .stages import ordered_stages
from .stages.data import load
from .stages.search import MODEL_FILE_SUFFIXES, check_recipes, save_model
from .store import (
    LOCK_FILE,
    UnitStore,
    read_results,
    read_run_json,
    run_lock,
    stop_if_interrupted,
    to_jsonable,
    watch_interrupts,
    write_json,
    write_text,
    writing,
)

MARKER = ".fer-benchmark-run"
NOT_A_RUN_DIR = (
    "{path} exists and holds files that are not a benchmark run ({examples}); "
    "refusing to write into it. Pick another --out/--name, or empty that folder."
)
RESUME_OTHER_CONFIG = (
    "{path} was started with a different configuration ({keys} differ); --resume "
    "continues only the same run. Drop --resume to start over, or use another --name."
)
RESUME_OTHER_DATA = (
    "{path} was started on other data: the images, labels, splits or attributes that "
    "{dataset} gives now differ from those the run began with. --resume continues only "
    "the same run; drop it to start over, or use another --name."
)
# The unit that records what the run's data were (a hash), to refuse a --resume on other data.
_DATA_UNIT = "data-fingerprint"

_VERSIONED = ("fer-sklearn", "torch", "torchvision", "skorch", "scikit-learn", "numpy",
              "pandas", "fairlearn", "shap", "captum")
# Config keys that do not change what a run computes.
_RESUME_FREE = {"n_jobs", "backend", "scheduler", "out", "name", "device", "save_models",
                "attributes_note"}


class Context:
    """What stages see: the config, the run folder, the unit store, the data
    (loaded on first use) and the results of the stages before them."""

    def __init__(self, config, run_dir, data=None):
        self.config = config
        self.run_dir = Path(run_dir)
        self.store = UnitStore(self.run_dir / "state")
        self.results = {}
        self._data = data

    @property
    def data(self):
        if self._data is None:
            log(f"data: loading {self.config.dataset}")
            self._data = load(self.config)
        return self._data


def cpu_name():
    """The CPU's model name (from /proc/cpuinfo on Linux)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment(device):
    """Library versions, hardware and the device a run used."""
    import torch

    versions = {"python": platform.python_version()}
    for name in _VERSIONED:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    hardware = f"{cpu_name()}, {os.cpu_count()} logical CPUs, torch threads {torch.get_num_threads()}"
    if torch.cuda.is_available():
        hardware += f", GPU {torch.cuda.get_device_name(0)}"
    return {"versions": versions, "hardware": hardware, "device": device}


class InterruptedBeforeStart(KeyboardInterrupt):
    """Ctrl-C while the data loaded: the run folder is as it was."""


def _check_run_dir(config, resume):
    """Refuse a folder that is not a run, or a --resume of another configuration,
    before anything is loaded or written."""
    run_dir = config.run_dir
    held = [p.name for p in run_dir.iterdir() if p.name != LOCK_FILE] if run_dir.exists() else []
    if held:
        if not (run_dir / MARKER).exists():
            examples = ", ".join(sorted(held)[:3])
            raise ValueError(NOT_A_RUN_DIR.format(path=run_dir, examples=examples))
        if resume:
            saved = run_dir / "config.json"
            if saved.is_file():
                old = read_run_json(saved, "config.json")
                new = config.to_dict()
                keys = sorted(k for k in set(old) | set(new)
                              if k not in _RESUME_FREE and old.get(k) != new.get(k))
                if keys:
                    raise ValueError(RESUME_OTHER_CONFIG.format(path=run_dir, keys=", ".join(keys)))


def data_fingerprint(d):
    """A hash of what a run trains and tests on: images, labels, splits and
    group attributes (a dataset file changed on disk changes it)."""
    h = hashlib.sha256()
    for array in (d.X_train, d.X_test):
        h.update(memoryview(np.ascontiguousarray(array)))  # no copy
    for labels in (d.y_train, d.y_test):
        h.update("\x1f".join(map(str, labels)).encode())
    for frame in (d.frame_train, d.frame_test):
        columns = [c for c in d.attributes if c in frame.columns]
        if columns:
            h.update(pd.util.hash_pandas_object(frame[columns], index=False).to_numpy().tobytes())
    return h.hexdigest()


def _prepare_run_dir(config, resume, fingerprint):
    run_dir = config.run_dir
    store = UnitStore(run_dir / "state")
    if resume and store.has(_DATA_UNIT) and store.get_json(_DATA_UNIT) != fingerprint:
        raise ValueError(RESUME_OTHER_DATA.format(path=run_dir, dataset=config.dataset))
    if not resume:
        # A fresh run starts over (its data loaded: a dataset that fails to load
        # leaves the folder as it was). The earlier run's results, report and
        # saved models stay usable until this run replaces them at its end.
        shutil.rmtree(run_dir / "state", ignore_errors=True)
    with writing():
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / MARKER).touch()
        # Temporary files of a killed run (atomic writes never finished) go.
        for tmp in run_dir.rglob(".*.tmp"):
            tmp.unlink()
    write_text(run_dir / "config.json", config.to_json() + "\n")
    if not store.has(_DATA_UNIT):
        store.put_json(_DATA_UNIT, fingerprint)
    return run_dir


def make_figures(results, folder):
    """Draw every figure the results support; returns ``{key: file name}``."""
    folder = Path(folder)
    stages = results["stages"]
    out = {}
    if "evaluate" in stages:
        out["confusion_matrices"] = figures.confusion_matrices(
            stages["evaluate"], folder / "confusion_matrices.png")
        out["per_class_f1"] = figures.per_class_f1(stages["evaluate"], folder / "per_class_f1.png")
    if "search" in stages:
        out["learning_curves"] = figures.learning_curves(stages["search"],
                                                         folder / "learning_curves.png")
        spread = figures.cv_spread(stages["search"], folder / "cv_spread.png")
        if spread:
            out["cv_spread"] = spread
    for stage in ordered_stages():
        if stage.figures is not None and stage.name in stages:
            out.update(stage.figures(results, folder))
    return out


def run(config: Config, resume=False):
    """Run every stage of ``config`` and write ``results.json`` and ``report.md``.

    Parameters
    ----------
    config : Config
    resume : bool
        Reuse the finished units (stages, searched models, evaluations) of an
        earlier, interrupted run of the same configuration.

    Returns
    -------
    pathlib.Path
        The run folder.
    """
    resolve_device(config.device)  # a device that is not there fails before anything
    check_recipes(config)  # a typo fails now, not after the first models have trained
    _check_run_dir(config, resume)  # before the lock file goes into the folder
    # One process at a time writes a run folder: a second run, evaluate or report
    # into it is refused while this one holds it.
    with run_lock(config.run_dir, create=True):
        _check_run_dir(config, resume)  # as it is now that no other process writes it
        log(f"data: loading {config.dataset}")
        try:
            data = load(config)
        except KeyboardInterrupt:
            raise InterruptedBeforeStart from None
        run_dir = _prepare_run_dir(config, resume, data_fingerprint(data))
        # A Ctrl-C that a fit swallowed (skorch ends the fit and returns) still
        # stops the run: the store refuses to record anything after it.
        with watch_interrupts():
            _run_stages(config, run_dir, resume, data)
    log(f"report: {run_dir / 'report.md'}")
    return run_dir


def _run_stages(config, run_dir, resume, data=None):
    device = resolve_device(config.device)
    ctx = Context(config, run_dir, data)
    if not resume:
        _note_earlier_models(ctx)
    timings = {}
    for stage in ordered_stages():
        key = f"stage-{stage.name}"
        if stage.applies is not None and not stage.applies(ctx):
            log(f"{stage.name}: does not apply to this run, skipped")
            continue
        if resume and ctx.store.has(key):
            unit = ctx.store.get_json(key)
            log(f"{stage.name}: finished in an earlier run, reused")
        else:
            log(f"{stage.name}: {stage.description}")
            start = time.perf_counter()
            result = stage.run(ctx)
            unit = {"result": result, "seconds": time.perf_counter() - start}
            ctx.store.put_json(key, unit)
            unit = ctx.store.get_json(key)
            log(f"{stage.name}: done in {unit['seconds']:.1f} s")
        ctx.results[stage.name] = unit["result"]
        timings[stage.name] = unit["seconds"]
    if config.save_models and "search" in ctx.results:
        save_models(ctx)
    drop_earlier_models(ctx)
    results = {
        "name": config.run_name,
        "config": config.to_dict(),
        "environment": environment(device),
        "stages": ctx.results,
        "timings": timings,
    }
    earlier = _earlier_sections(run_dir, to_jsonable(ctx.results.get("search"))) if resume else {}
    if earlier:
        results["cross_dataset"] = earlier
        log(f"kept the other-dataset section(s): {', '.join(sorted(earlier))}")
    with writing():
        results["figures"] = make_figures(results, run_dir)
    # The report is rendered from exactly what results.json holds, so that
    # `benchmark report` reproduces it byte for byte.
    results = to_jsonable(results)
    stop_if_interrupted()
    write_json(run_dir / "results.json", results)
    write_report(run_dir, results)


def _earlier_sections(run_dir, search):
    """The ``cross_dataset`` entries that ``benchmark evaluate`` added to the
    folder's results.json, when they scored the models of this run: its
    ``search`` stage is the one that file records (an earlier run's folder,
    resumed after a fresh run was cut short, holds other models)."""
    try:
        earlier = read_run_json(run_dir / "results.json", "results.json")
    except ValueError:  # none, or unreadable: the file is rewritten in full
        return {}
    if earlier.get("stages", {}).get("search") != search:
        return {}
    return earlier.get("cross_dataset", {})


# The models this run has saved in RUN_DIR/models/ (a state unit, so a fresh
# run, which starts its state over, saves every model again).
_SAVED_UNIT = "saved-models"


def _saved_models(ctx):
    return ctx.store.get_json(_SAVED_UNIT) if ctx.store.has(_SAVED_UNIT) else []


def save_models(ctx):
    """Copy each fitted model into ``RUN_DIR/models/`` that this run (before a
    ``--resume``) has not saved yet; files an earlier run left there, or a save
    cut short, are replaced."""
    folder = ctx.run_dir / "models"
    saved = _saved_models(ctx)
    todo = [m for m in ctx.config.models if m not in saved]
    if todo:
        # First the search these models come from: until results.json records
        # the same, `benchmark evaluate` refuses the folder's models (a run cut
        # short between the two would otherwise score them as the earlier run's).
        write_json(folder / MODELS_SEARCH, to_jsonable(ctx.results["search"]))
    for model in todo:
        save_model(ctx.store.get_model(f"model-{model}"), folder, model)
        saved.append(model)
        ctx.store.put_json(_SAVED_UNIT, saved)
    if todo:
        log(f"models saved in {folder}: {', '.join(todo)}")


# Files save_model writes for a model NAME.
_MODEL_FILE = re.compile(r"^([^.]+)\.({})$".format("|".join(map(re.escape, MODEL_FILE_SUFFIXES))))
_EARLIER_UNIT = "earlier-models"
# Beside the saved models: the search stage they come from.
MODELS_SEARCH = "search.json"


def _note_earlier_models(ctx):
    """Record the model files an earlier run left in ``RUN_DIR/models/`` as a
    fresh run starts (its state is new, so this survives a ``--resume``)."""
    folder = ctx.run_dir / "models"
    if folder.is_dir() and not folder.is_symlink():
        ctx.store.put_json(_EARLIER_UNIT, sorted(
            f.name for f in folder.iterdir()
            if _MODEL_FILE.match(f.name) and f.is_file() and not f.is_symlink()))


def drop_earlier_models(ctx):
    """Remove the earlier run's model files that this run did not save anew:
    ``benchmark evaluate`` would score them as this run's. Only the files
    noted when this run started are touched."""
    if not ctx.store.has(_EARLIER_UNIT):
        return
    folder = ctx.run_dir / "models"
    saved = set(_saved_models(ctx))
    stale = [folder / name for name in ctx.store.get_json(_EARLIER_UNIT)
             if _MODEL_FILE.match(name).group(1) not in saved]
    stale = [f for f in stale if f.is_file() and not f.is_symlink()]
    with writing():
        for f in stale:
            f.unlink()
        if folder.is_dir() and not saved and (folder / MODELS_SEARCH).is_file():
            (folder / MODELS_SEARCH).unlink()
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
    if stale:
        log(f"removed {len(stale)} file(s) of an earlier run's models from {folder}")


def write_report(run_dir, results=None):
    """(Re-)render ``report.md`` of a run folder from its ``results.json``."""
    from . import crossdata  # noqa: F401  (registers the other-dataset section)

    run_dir = Path(run_dir)
    ordered_stages()  # stage modules register their report sections
    if results is None:
        results = read_results(run_dir)
    write_text(run_dir / "report.md", render_report(results))
    return run_dir / "report.md"
