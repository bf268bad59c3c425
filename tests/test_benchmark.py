"""The benchmark harness end to end on tiny synthetic data."""

import errno
import json
import os
import re
import signal

import joblib
import pytest

from benchmark import runner
from benchmark.__main__ import main
from benchmark.config import PROFILES, resolve_config
from benchmark.stages import search as search_module
from benchmark.store import (
    LOCK_FILE,
    UnitStore,
    atomic_path,
    run_lock,
    stop_if_interrupted,
    watch_interrupts,
)

TINY_TOML = """
n_boot = 50
models = ["cnn", "resnet18"]
[synthetic]
n_samples = 140
[recipes.cnn.params]
max_epochs = 1
module__width = 4
module__depth = 2
[recipes.cnn.grid]
module__dropout = [0.1, 0.3]
[recipes.resnet18.params]
max_epochs = 1
module__width = 4
"""


@pytest.fixture
def tiny(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(TINY_TOML)
    return path


def _run(tiny, out, *extra):
    return main(["run", "--config", str(tiny), "--out", str(out), "--name", "t", *extra])


def _metrics(run_dir):
    results = json.loads((run_dir / "results.json").read_text())
    return {m: r["metrics"] for m, r in results["stages"]["evaluate"]["models"].items()}


def _no_partial_files(folder):
    return [p.name for p in folder.rglob("*") if p.name.endswith(".tmp")]


def test_cli_runs_end_to_end_and_report_rerenders_byte_identically(tiny, tmp_path, capsys):
    assert _run(tiny, tmp_path / "runs") == 0
    run_dir = tmp_path / "runs" / "t"
    report = (run_dir / "report.md").read_text()
    for needle in ("## Summary", "Pairwise McNemar", "CV acc.", "cnn", "resnet18",
                   "confusion_matrices.png", "## Environment", "Resolved configuration"):
        assert needle in report
    results = json.loads((run_dir / "results.json").read_text())
    cnn = results["stages"]["evaluate"]["models"]["cnn"]
    acc = cnn["metrics"]["accuracy"]
    assert acc["low"] <= acc["value"] <= acc["high"]
    assert sum(map(sum, cnn["confusion_matrix"])) == results["stages"]["data"]["n_test"]
    assert cnn["cost"]["parameters"] > 0 and cnn["cost"]["flops_per_image"] > 0
    assert len(results["stages"]["search"]["cnn"]["cv"]["params"]) == 2
    assert results["stages"]["evaluate"]["mcnemar"][0]["a"] == "cnn"
    for png in results["figures"].values():
        assert (run_dir / png).stat().st_size > 1000
    (run_dir / "report.md").unlink()
    assert main(["report", str(run_dir)]) == 0
    assert (run_dir / "report.md").read_text() == report
    assert not _no_partial_files(run_dir)


def test_list_names_architectures_and_profiles(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "resnet18" in out and "seed_densenet" in out and "quick" in out


def test_config_precedence_defaults_profile_file_flags(tmp_path):
    base = resolve_config()
    assert base.profile == "quick" and base.models == PROFILES["quick"]["models"]
    assert base.recipe("cnn")["params"]["max_epochs"] == 8  # from the profile
    path = tmp_path / "c.toml"
    path.write_text("seed = 5\nn_boot = 7\n[recipes.cnn.params]\nmax_epochs = 2\n")
    from_file = resolve_config(path)
    assert from_file.seed == 5 and from_file.n_boot == 7
    assert from_file.recipe("cnn")["params"]["max_epochs"] == 2
    # the file changes one recipe key; the profile's others stay
    quick_cnn = PROFILES["quick"]["recipes"]["cnn"]["params"]
    assert from_file.recipe("cnn")["params"]["module__width"] == quick_cnn["module__width"]
    flagged = resolve_config(path, seed=9, models=["cnn"])
    assert flagged.seed == 9 and flagged.models == ["cnn"] and flagged.n_boot == 7
    seed = resolve_config(profile="seed")
    assert "seed_resnet" in seed.models
    assert seed.recipe("seed_resnet")["params"]["lr"] == 3e-4


def test_a_file_grid_or_table_valued_parameter_replaces_the_profiles(tmp_path):
    # They used to merge key by key: a grid of lr beside the profile's grid of
    # module__dropout searched both, and class_weight = {neutral = 2.0} kept
    # the profile's disgust weight.
    path = tmp_path / "c.toml"
    path.write_text("[recipes.cnn.grid]\nlr = [0.001, 0.01]\n"
                    "[recipes.cnn.params]\nclass_weight = {neutral = 2.0}\n")
    config = resolve_config(path)
    assert PROFILES["quick"]["recipes"]["cnn"]["grid"] == {"module__dropout": [0.1, 0.3]}
    assert config.recipe("cnn")["grid"] == {"lr": [0.001, 0.01]}
    assert config.recipe("cnn")["params"]["class_weight"] == {"neutral": 2.0}
    assert config.recipe("cnn")["params"]["max_epochs"] == 8  # params still merge
    assert config.recipe("resnet18")["grid"] == {"lr": [1e-3, 3e-3]}  # other recipes stay
    # a synthetic option given as a table replaces the earlier one whole too
    assert resolve_config(synthetic={"class_weights": {"happy": 2.0}, "n_samples": 300},
                          **{}).synthetic == {"class_weights": {"happy": 2.0}, "n_samples": 300}
    path.write_text("[synthetic.class_weights]\nsad = 3.0\n")
    merged = resolve_config(path, synthetic={"class_weights": {"happy": 2.0}})
    assert merged.synthetic == {"n_samples": 5000, "class_weights": {"happy": 2.0}}
    path.write_text("[recipes.cnn.params]\nclass_weight = {neutral = 2.0}\n")
    fer = resolve_config(path, profile="fer2013-cpu")
    assert fer.recipe("cnn")["params"]["class_weight"] == {"neutral": 2.0}
    assert fer.recipe("resnet18")["params"]["class_weight"] == {"disgust": 3.0}


@pytest.mark.parametrize("toml, flags, message", [
    ("n_bot = 3\n", {}, "Did you mean 'n_boot'?"),
    ("", {"profile": "quik"}, "Did you mean 'quick'?"),
    ("", {"models": ["resnet19"]}, "Did you mean 'resnet18'?"),
    ("", {"dataset": "fer2031:x.csv"}, "Did you mean 'fer2013'?"),
    ("[recipes.cnn]\nparmas = {}\n", {}, "Did you mean 'params'?"),
    ("cv = 1\n", {}, "cv must be an integer >= 2"),
    ("[synthetic]\nn_sample = 100\n", {}, "Unknown synthetic key 'n_sample'. Did you mean "
     "'n_samples'?"),
    ("[recipes.cnnn.params]\nmax_epochs = 1\n", {}, "Unknown recipes key 'cnnn'. Did you mean "
     "'cnn'?"),
])
def test_unknown_keys_and_values_say_did_you_mean(tmp_path, toml, flags, message):
    path = tmp_path / "c.toml"
    path.write_text(toml)
    with pytest.raises(ValueError, match=message.replace("?", r"\?").replace("(", r"\(")):
        resolve_config(path, **flags)


@pytest.mark.parametrize("toml, flags, message", [
    ('models = "cnn"\n', {}, "models must be a non-empty list of registry names; got 'cnn'."),
    ("", {"models": []}, "models must be a non-empty list of registry names; got []."),
    ('explain_methods = "saliency"\n', {}, "explain_methods must be a list of method names"),
    ("recipes = [1]\n", {}, "recipes must be a table of recipe tables"),
    ("[recipes.cnn]\ngrid = [1, 2]\n", {}, "recipes.cnn.grid must be a table"),
    ("[recipes.cnn]\nparams = 5\n", {}, "recipes.cnn.params must be a table"),
    ('profile = ["quick"]\n', {}, "profile must be one profile name (quick, "),
    ("synthetic = 5\n", {}, "synthetic must be a table of make_synthetic_faces options"),
])
def test_values_of_the_wrong_type_name_their_key(tmp_path, toml, flags, message):
    path = tmp_path / "c.toml"
    path.write_text(toml)
    with pytest.raises(ValueError) as info:
        resolve_config(path, **flags)
    assert message in str(info.value)


@pytest.mark.parametrize("args, message", [
    (["--models", ","], "models must be a non-empty list of registry names; got []."),
    (["--config", "synthetic-typo"], "Unknown synthetic key 'n_sample'."),
    # each of these once ran: two identical rows and a model voting with itself; a
    # run into the default folder, wiping its state; a folder outside --out; a
    # dataset path that was ignored
    (["--models", "cnn,cnn"], "models must be a list naming each model once (cnn repeated)"),
    (["--name", ""], "name must be None or a folder name inside out (not empty, no '/', "),
    (["--name", "../escape"], "; got '../escape'."),
    (["--dataset", "synthetic:foo"], "'synthetic:foo' is not one of synthetic, fer2013:PATH"),
    (["--dataset", "csv:"], "(e.g. fer2013:data/fer2013.csv or folder:faces/). csv: needs a "
                            "path after the colon."),
])
def test_config_errors_end_the_run_before_any_folder_is_written(tmp_path, capsys, args,
                                                                message):
    typo = tmp_path / "synthetic-typo"
    typo.write_text("[synthetic]\nn_sample = 100\n")
    args = [str(typo) if a == "synthetic-typo" else a for a in args]
    assert main(["run", *args, "--out", str(tmp_path / "runs")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_every_problem_is_reported_at_once(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('n_bot = 3\nmodels = ["cnnn"]\n')
    with pytest.raises(ValueError) as info:
        resolve_config(path)
    assert "n_bot" in str(info.value) and "cnnn" in str(info.value)


def test_cli_reports_user_errors_without_traceback(tmp_path, capsys):
    assert main(["run", "--profile", "quik", "--out", str(tmp_path)]) == 2
    assert "Did you mean 'quick'?" in capsys.readouterr().err


@pytest.mark.parametrize("text, reason", [
    ("{bad", "Expecting property name"), ("[]", "it holds a JSON list, not an object"),
    ("{}", "it records no run configuration"), ("\xff\xfe", "codec can't decode")])
def test_a_damaged_results_file_is_named_not_a_traceback(tmp_path, capsys, text, reason):
    # once a KeyError/TypeError traceback, or a JSON message naming no file
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / runner.MARKER).touch()
    (run_dir / "results.json").write_bytes(text.encode("latin-1"))
    (run_dir / "config.json").write_bytes(text.encode("latin-1"))
    head = f"{run_dir / 'results.json'} is not a readable benchmark results.json: "
    for argv in (["report", str(run_dir)], ["evaluate", str(run_dir), "--dataset", "synthetic"]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert head in err and reason in err and "Traceback" not in err
    if text == "{}":
        return  # a config.json of {} is readable: it differs from any run's
    resumed = resolve_config(out=str(tmp_path), name="run")
    with pytest.raises(ValueError, match=re.escape(
            f"{run_dir / 'config.json'} is not a readable benchmark config.json: ")):
        runner._check_run_dir(resumed, resume=True)


def test_bad_recipe_parameter_names_the_model(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text(TINY_TOML.replace("max_epochs = 1\nmodule__width = 4\nmodule__depth = 2",
                                     "max_epochs = 1\nmax_epochz = 4"))
    assert _run(bad, tmp_path / "runs") == 2
    err = capsys.readouterr().err
    assert "recipes.cnn.params" in err and "Did you mean 'max_epochs'?" in err


def test_every_recipe_is_checked_before_the_first_fit(tmp_path, capsys):
    # A typo in the first model's grid and one in the second model's architecture
    # options fail the run together, before the first model trains.
    bad = tmp_path / "bad.toml"
    bad.write_text(TINY_TOML.replace("module__dropout = [", "module__dropuot = [")
                   .replace("[recipes.resnet18.params]\n",
                            "[recipes.resnet18.params]\nmodule__widht = 8\n"))
    assert _run(bad, tmp_path / "runs") == 2
    err = capsys.readouterr().err
    assert ("recipes.cnn.grid: unknown option(s) 'module__dropuot' Did you mean "
            "'module__dropout'?") in err
    assert ("recipes.resnet18.params: unknown option(s) 'module__widht' Did you mean "
            "'module__width'?") in err
    assert not (tmp_path / "runs").exists()


def test_a_value_of_the_wrong_type_fails_before_the_first_fit(tmp_path, capsys):
    # max_epochs = "2" for the second model once failed after the first had trained
    bad = tmp_path / "bad.toml"
    bad.write_text(TINY_TOML.replace("[recipes.resnet18.params]\nmax_epochs = 1",
                                     "[recipes.resnet18.params]\nmax_epochs = \"2\""))
    assert _run(bad, tmp_path / "runs") == 2
    assert ("recipes.resnet18.params: max_epochs='2' is not a whole number of epochs >= 0."
            in capsys.readouterr().err)
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("line, message", [
    # each once failed only after the first model had trained, or in a traceback
    ("class_weight = 5", "class_weight=5 is not None, 'balanced' or a dict"),
    ("precision = 5", "precision=5 is not one of 'auto', 'bf16', 'fp32'"),
    ("optimizer = 5", "optimizer=5 is not an optimizer class"),
    ('module__width = "a"', "recipes.resnet18.params:"),
])
def test_recipe_values_of_the_wrong_type_fail_before_the_first_fit(tmp_path, capsys, line,
                                                                   message):
    bad = tmp_path / "bad.toml"
    section = "[recipes.resnet18.params]\nmax_epochs = 1\nmodule__width = 4"
    assert section in TINY_TOML
    width = "" if line.startswith("module__width") else "\nmodule__width = 4"
    bad.write_text(TINY_TOML.replace(
        section, f"[recipes.resnet18.params]\nmax_epochs = 1\n{line}{width}"))
    assert _run(bad, tmp_path / "runs") == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "runs").exists()


def test_resume_after_a_crash_between_models_recomputes_nothing(tiny, tmp_path, monkeypatch):
    clean = tmp_path / "clean"
    assert _run(tiny, clean) == 0
    expected = _metrics(clean / "t")

    real = search_module.search_one
    calls = []

    def crash_on_second(config, model, X, y):
        calls.append(model)
        if model == "resnet18":
            raise KeyboardInterrupt  # as if the user pressed Ctrl-C
        return real(config, model, X, y)

    monkeypatch.setattr(search_module, "search_one", crash_on_second)
    crashed = tmp_path / "crashed"
    assert _run(tiny, crashed) == 130
    run_dir = crashed / "t"
    assert not (run_dir / "results.json").exists() and not (run_dir / "report.md").exists()
    assert (run_dir / "state" / "model-cnn.joblib").exists()
    assert not _no_partial_files(run_dir)

    calls.clear()
    monkeypatch.setattr(search_module, "search_one",
                        lambda *a: calls.append(a[1]) or real(*a))
    assert _run(tiny, crashed, "--resume") == 0
    assert calls == ["resnet18"]  # cnn's finished search was reused
    assert _metrics(run_dir) == expected


def test_resume_after_a_crash_in_a_late_stage_reruns_only_that_stage(tiny, tmp_path,
                                                                      monkeypatch):
    # Metrics are deterministic, so equal results cannot tell reuse from rework:
    # the resumed run must not call any finished stage or rewrite its unit.
    import dataclasses

    from benchmark.stages import STAGES, ordered_stages

    ordered_stages()
    late = max(STAGES.values(), key=lambda spec: spec.order)

    def crash(ctx):
        raise KeyboardInterrupt

    monkeypatch.setitem(STAGES, late.name, dataclasses.replace(late, run=crash))
    assert _run(tiny, tmp_path) == 130
    state = tmp_path / "t" / "state"
    finished = {p.name: p.stat().st_mtime_ns for p in state.glob("stage-*.json")}
    assert f"stage-{late.name}.json" not in finished and "stage-evaluate.json" in finished

    def must_not_run(*args, **kwargs):
        raise AssertionError("a finished stage ran again")

    for spec in list(STAGES.values()):
        if spec.name != late.name:
            monkeypatch.setitem(STAGES, spec.name, dataclasses.replace(spec, run=must_not_run))
    monkeypatch.setitem(STAGES, late.name, late)
    assert _run(tiny, tmp_path, "--resume") == 0
    assert {p: (state / p).stat().st_mtime_ns for p in finished} == finished
    assert late.name in json.loads((tmp_path / "t" / "results.json").read_text())["stages"]



def test_resume_after_a_crash_between_evaluations_reuses_the_first(tiny, tmp_path,
                                                                   monkeypatch):
    from benchmark.stages import evaluate as evaluate_module

    real = evaluate_module.predict_proba
    calls = []

    def crash_on_second(est, X, tta="none", classes=None):
        calls.append(est.architecture)
        if est.architecture == "resnet18":
            raise KeyboardInterrupt
        return real(est, X, tta=tta, classes=classes)

    monkeypatch.setattr(evaluate_module, "predict_proba", crash_on_second)
    assert _run(tiny, tmp_path) == 130
    assert calls == ["cnn", "resnet18"]
    first = tmp_path / "t" / "state" / "eval-cnn.json"
    stamp = first.stat().st_mtime_ns
    calls.clear()
    monkeypatch.setattr(evaluate_module, "predict_proba", lambda est, *a, **k: (
        calls.append(est.architecture), real(est, *a, **k))[1])
    assert _run(tiny, tmp_path, "--resume") == 0
    assert calls == ["resnet18"] and first.stat().st_mtime_ns == stamp


def test_resume_refuses_a_different_configuration(tiny, tmp_path, capsys):
    assert _run(tiny, tmp_path) == 0
    run_dir = tmp_path / "t"
    before = {p.relative_to(run_dir): p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    assert main(["run", "--config", str(tiny), "--out", str(tmp_path), "--name", "t",
                 "--seed", "3", "--resume"]) == 2
    assert runner.RESUME_OTHER_CONFIG.format(path=run_dir, keys="seed") in (
        capsys.readouterr().err)
    after = {p.relative_to(run_dir): p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    assert after == before  # the finished run is left as it was


def test_a_fresh_run_replaces_the_saved_models_of_the_earlier_run(tiny, tmp_path):
    assert _run(tiny, tmp_path, "--save-models") == 0
    run_dir = tmp_path / "t"
    (run_dir / "models" / "cnn.joblib").write_bytes(b"an older run's model")
    assert _run(tiny, tmp_path, "--save-models") == 0  # no --resume: starts over
    assert joblib.load(run_dir / "models" / "cnn.joblib").classes_ is not None


def test_a_resumed_run_replaces_the_saved_models_of_the_earlier_run(tiny, tmp_path,
                                                                      monkeypatch):
    assert _run(tiny, tmp_path, "--save-models") == 0
    run_dir = tmp_path / "t"
    (run_dir / "models" / "cnn.joblib").write_bytes(b"an older run's model")
    real = search_module.search_one

    def crash_on_second(config, model, X, y):
        if model == "resnet18":
            raise KeyboardInterrupt
        return real(config, model, X, y)

    monkeypatch.setattr(search_module, "search_one", crash_on_second)
    assert _run(tiny, tmp_path, "--save-models") == 130  # a fresh run, cut short
    monkeypatch.setattr(search_module, "search_one", real)
    assert _run(tiny, tmp_path, "--save-models", "--resume") == 0
    assert joblib.load(run_dir / "models" / "cnn.joblib").classes_ is not None
    # a run without --save-models leaves no earlier run's models behind, and
    # touches nothing else there
    (run_dir / "models" / "notes.txt").write_text("mine")
    assert _run(tiny, tmp_path) == 0
    assert [f.name for f in (run_dir / "models").iterdir()] == ["notes.txt"]


def test_the_store_refuses_every_unit_once_ctrl_c_came(tmp_path):
    handler = signal.getsignal(signal.SIGINT)
    store = UnitStore(tmp_path)
    with watch_interrupts():
        store.put_json("before", 1)
        with pytest.raises(KeyboardInterrupt):  # still raised where it lands
            signal.raise_signal(signal.SIGINT)
        with pytest.raises(KeyboardInterrupt):  # e.g. after a fit that swallowed it
            store.put_json("after", 2)
        with pytest.raises(KeyboardInterrupt):
            stop_if_interrupted()
    stop_if_interrupted()  # the note ends with the watch
    store.put_json("later", 3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["before.json", "later.json"]
    assert signal.getsignal(signal.SIGINT) is handler


def test_out_folder_with_user_files_is_never_written(tiny, tmp_path, capsys):
    mine = tmp_path / "t"
    mine.mkdir()
    (mine / "thesis.tex").write_text("precious")
    assert _run(tiny, tmp_path) == 2
    assert "not a benchmark run" in capsys.readouterr().err
    assert [p.name for p in mine.iterdir()] == ["thesis.tex"]


def test_a_run_folder_in_use_by_another_process_is_refused(tiny, tmp_path, capsys):
    # Two processes once wrote one run folder at once, each over the other's files.
    assert _run(tiny, tmp_path) == 0
    folder = tmp_path / "t"
    results = (folder / "results.json").read_bytes()
    with run_lock(folder):
        with pytest.raises(ValueError, match=r"in use by another benchmark process \(pid "
                                             + str(os.getpid()) + r"\)"):
            with run_lock(folder):
                pass
        capsys.readouterr()
        assert _run(tiny, tmp_path) == 2
        assert main(["evaluate", str(folder), "--dataset", "synthetic"]) == 2
        assert main(["report", str(folder)]) == 2
        assert capsys.readouterr().err.count("in use by another benchmark process") == 3
        assert (folder / "results.json").read_bytes() == results
    assert main(["evaluate", str(folder), "--dataset", "synthetic"]) == 0  # released
    assert _run(tiny, tmp_path, "--resume") == 0


def test_a_filesystem_that_refuses_locks_does_not_stop_a_run(tiny, tmp_path, monkeypatch):
    import fcntl

    def refuse(fd, operation):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", refuse)
    assert _run(tiny, tmp_path) == 0


def test_the_lock_leaves_no_folder_behind_a_run_that_failed_to_start(tiny, tmp_path):
    out = tmp_path / "new" / "runs"
    assert _run(tiny, out, "--dataset", f"folder:{tmp_path / 'missing'}") == 2
    assert not (tmp_path / "new").exists()
    # a folder holding only the lock file of an earlier process is a fresh folder
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / LOCK_FILE).write_text("12345")
    assert _run(tiny, tmp_path) == 0


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.json"
    target.write_text("old")
    with pytest.raises(OSError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise OSError("disk full")
    assert target.read_text() == "old"
    assert list(tmp_path.iterdir()) == [target]


def test_atomic_path_syncs_the_new_file_before_it_replaces_the_old(tmp_path, monkeypatch):
    # Without the sync a power cut after the rename can leave an empty file.
    from benchmark import store

    target = tmp_path / "out.json"
    target.write_text("old")
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append(("fsync", os.fstat(fd).st_ino))
        real_fsync(fd)

    def replace(src, dst):
        events.append(("replace", os.stat(src).st_ino))
        real_replace(src, dst)

    monkeypatch.setattr(store.os, "fsync", fsync)
    monkeypatch.setattr(store.os, "replace", replace)
    with atomic_path(target) as tmp:
        tmp.write_text("new")
    new = target.stat().st_ino  # the temporary file, renamed
    assert events.index(("fsync", new)) < events.index(("replace", new))
    assert events[-1] == ("fsync", tmp_path.stat().st_ino)
    assert target.read_text() == "new"
    # a folder the filesystem cannot sync does not fail a write that is done

    def no_folder_sync(fd):
        if os.fstat(fd).st_ino == tmp_path.stat().st_ino:
            raise OSError(22, "Invalid argument")
        real_fsync(fd)

    monkeypatch.setattr(store.os, "fsync", no_folder_sync)
    with atomic_path(target) as tmp:
        tmp.write_text("newer")
    assert target.read_text() == "newer"


def _the_run_start():
    from benchmark import progress

    return progress._START


def test_worker_processes_count_their_log_lines_from_the_run_start(monkeypatch):
    import subprocess
    import sys
    import time

    from benchmark import progress

    # loky workers, which the search's fits run on with n_jobs > 1
    starts = joblib.Parallel(n_jobs=2, backend="loky")(
        joblib.delayed(_the_run_start)() for _ in range(2))
    assert starts == [progress._START] * 2

    def child_log(start, command="log('fit')"):
        monkeypatch.setenv("FER_BENCHMARK_START", start)
        out = subprocess.run([sys.executable, "-c", f"from benchmark.progress import *; {command}"],
                             capture_output=True, text=True, check=True).stderr
        return re.search(r"^\[ *(\d+):(\d\d)\] fit$", out, re.M).groups()

    # a worker started two minutes into the run says so
    minutes, seconds = child_log(repr(time.monotonic() - 125))
    assert minutes == "2" and 5 <= int(seconds) < 60  # 2:05 and the start-up
    # a command starts its own clock (a run started from a notebook or a test)
    assert child_log(repr(time.monotonic() - 125), "start_clock(); log('fit')") == ("0", "00")
    # what is not a moment of this machine's clock so far is not taken
    for start in ["not a time", "nan", "inf", repr(time.monotonic() + 3600), "-5"]:
        monkeypatch.setenv("FER_BENCHMARK_START", start)
        assert progress._inherited_start() is None
    monkeypatch.setenv("FER_BENCHMARK_START", repr(time.monotonic() - 1))
    assert progress._inherited_start() is not None


def test_same_seed_gives_identical_metrics(tiny, tmp_path):
    assert _run(tiny, tmp_path / "a") == 0
    assert _run(tiny, tmp_path / "b") == 0
    assert _metrics(tmp_path / "a" / "t") == _metrics(tmp_path / "b" / "t")


def test_environment_names_versions_and_hardware():
    env = runner.environment("cpu")
    assert env["versions"]["torch"] != "not installed"
    assert runner.cpu_name() and env["hardware"].startswith(runner.cpu_name())
    assert f"{os.cpu_count()} logical CPUs" in env["hardware"]


def test_a_folder_dataset_has_no_sensitive_attributes_unless_given(tmp_path):
    from PIL import Image

    from fer_sklearn.datasets import make_synthetic_faces

    faces = make_synthetic_faces(70, random_state=0)
    for i, (img, label) in enumerate(zip(faces.data, faces.target)):
        folder = tmp_path / "faces" / label
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(folder / f"{i}.png")
    config = tmp_path / "c.toml"
    config.write_text(TINY_TOML.replace('models = ["cnn", "resnet18"]', 'models = ["cnn"]'))
    assert main(["run", "--config", str(config), "--dataset", f"folder:{tmp_path / 'faces'}",
                 "--out", str(tmp_path / "runs"), "--name", "f"]) == 0
    results = json.loads((tmp_path / "runs" / "f" / "results.json").read_text())
    assert results["stages"]["data"]["attributes"] == {}
    assert "fairness" not in results["stages"]
    assert results["stages"]["data"]["n_test"] == 14


def _face_folder(root, layout):
    """PNG faces under ``root``: ``layout`` maps a relative folder to an image count."""
    from PIL import Image

    from fer_sklearn.datasets import make_synthetic_faces

    faces = make_synthetic_faces(sum(layout.values()), random_state=0).data
    i = 0
    for folder, count in layout.items():
        (root / folder).mkdir(parents=True)
        for _ in range(count):
            Image.fromarray(faces[i]).save(root / folder / f"{i}.png")
            i += 1
    return f"folder:{root}"


def test_a_dataset_without_a_train_split_or_too_small_to_split_is_named(tmp_path, capsys):
    from benchmark.stages.data import CANNOT_SPLIT, NO_TRAIN_SPLIT

    dataset = _face_folder(tmp_path / "a", {"PublicTest/happy": 12, "PrivateTest/sad": 12})
    assert main(["run", "--dataset", dataset, "--models", "cnn",
                 "--out", str(tmp_path / "runs")]) == 2
    assert NO_TRAIN_SPLIT.format(dataset=dataset, splits=["test", "validation"]) in (
        capsys.readouterr().err)
    # seven classes, 3 images each: a 10% test split holds fewer images than classes
    dataset = _face_folder(tmp_path / "b", {c: 3 for c in (
        "angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")})
    config = tmp_path / "c.toml"
    config.write_text("test_size = 0.1\n")
    assert main(["run", "--config", str(config), "--dataset", dataset, "--models", "cnn",
                 "--out", str(tmp_path / "runs")]) == 2
    head = CANNOT_SPLIT.format(dataset=dataset, n=21, k=7, reason="")
    assert head in capsys.readouterr().err


def test_a_class_path_that_does_not_import_is_named(tmp_path, capsys):
    from benchmark.stages.search import BAD_IMPORT

    config = tmp_path / "c.toml"
    config.write_text('[recipes.cnn.params]\noptimizer = "torch.optim.Adamm"\n')
    assert main(["run", "--config", str(config), "--models", "cnn",
                 "--out", str(tmp_path / "runs")]) == 2
    assert BAD_IMPORT.format(model="cnn", key="optimizer", value="torch.optim.Adamm") in (
        capsys.readouterr().err)


def test_a_dataset_of_one_class_is_refused_before_training(tmp_path, capsys):
    # it once ran to the end and reported 100.0 [100.0, 100.0] % accuracy
    from PIL import Image

    from benchmark.stages.data import ONE_CLASS
    from fer_sklearn.datasets import make_synthetic_faces

    folder = tmp_path / "faces" / "surprise"
    folder.mkdir(parents=True)
    for i, img in enumerate(make_synthetic_faces(28, random_state=0).data):
        Image.fromarray(img).save(folder / f"{i}.png")
    dataset = f"folder:{tmp_path / 'faces'}"
    assert main(["run", "--dataset", dataset, "--models", "cnn",
                 "--out", str(tmp_path / "runs")]) == 2
    assert ONE_CLASS.format(dataset=dataset, label="surprise") in capsys.readouterr().err
    assert not (tmp_path / "runs" / "folder-quick" / "state").exists()


@pytest.mark.parametrize("line, key", [
    ("explain_per_class = 0", "explain_per_class"), ("explain_per_class = -2", "explain_per_class"),
    ("seed = -1", "seed"), ("n_jobs = 0", "n_jobs"), ('explain_methods = ["random"]', "explain_methods"),
    ("explain_methods = []", "explain_methods"), ('[recipes.cnn]\nmax_train = "100"', "max_train"),
    ("[recipes.cnn]\nmax_train = 3", "recipes.cnn.max_train"),
    # text fields given a number once failed late, in a traceback
    ("out = 5", "out"), ("attributes = 5", "attributes"), ("device = 1", "device"),
])
def test_values_that_would_fail_late_are_config_errors(tmp_path, line, key):
    path = tmp_path / "c.toml"
    path.write_text(line + "\n")
    with pytest.raises(ValueError, match=key):
        resolve_config(path)


def test_a_config_folder_and_faces_grid_with_export_are_refused(tmp_path, capsys):
    assert main(["run", "--config", str(tmp_path), "--out", str(tmp_path / "r")]) == 2
    assert "is a folder; --config takes a TOML file" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["faces", "--grid", str(tmp_path / "g.png"), "--export", str(tmp_path / "e")])
    assert "not allowed with argument --grid" in capsys.readouterr().err


def test_fairness_train_shares_count_the_faces_each_model_was_fitted_on(tmp_path):
    # the shares once came from the whole training split, also for a model
    # whose recipe caps it
    path = tmp_path / "capped.toml"
    path.write_text(TINY_TOML.replace("[recipes.cnn.params]",
                                      "[recipes.cnn]\nmax_train = 40\n[recipes.cnn.params]"))
    assert _run(path, tmp_path / "runs") == 0
    results = json.loads((tmp_path / "runs" / "t" / "results.json").read_text())
    n_train = results["stages"]["data"]["n_train"]
    assert n_train > 40
    audits = results["stages"]["fairness"]["models"]
    for model, expected in (("cnn", 40), ("resnet18", n_train)):
        groups = audits[model]["features"]["tone"]["groups"].values()
        assert sum(g["n_train"] for g in groups) == expected


def test_summary_names_the_model_the_ensemble_was_compared_with_on_a_tie():
    # the stored results are sorted by name, so a tie once named another model
    # than the one the ensemble's McNemar test was against
    from pathlib import Path

    from benchmark.stages import ordered_stages
    from fer_sklearn.reporting import render_report

    ordered_stages()
    path = Path(__file__).resolve().parents[1] / "reports" / "synthetic-quick" / "results.json"
    results = json.loads(path.read_text(encoding="utf-8"))
    evaluate = results["stages"]["evaluate"]
    for record in evaluate["models"].values():
        record["metrics"]["accuracy"]["value"] = 0.8
    evaluate["ensemble"]["best_single"] = "resnet18"
    text = render_report(results)
    assert "Best single model by test accuracy: **resnet18**" in text
    # chosen on the test split itself, and outside the family Holm adjusts
    assert ("resnet18 was chosen as the best member on these same test images, which "
            "favours it; this test is not among the Holm-adjusted pairs." in text)


def _csv_toml(tmp_path, rows):
    """A tiny config on a labels CSV of the first ``rows`` exported faces."""
    faces = tmp_path / "faces"
    if not faces.exists():
        assert main(["faces", "--export", str(faces), "--n", "200"]) == 0
        (faces / "all.csv").write_text((faces / "labels.csv").read_text())
    lines = (faces / "all.csv").read_text().splitlines()
    (faces / "labels.csv").write_text("\n".join(lines[:rows + 1]) + "\n")
    path = tmp_path / "csv.toml"
    path.write_text(f'dataset = "csv:{faces / "labels.csv"}"\n'
                    + TINY_TOML.replace("[synthetic]\nn_samples = 140\n", ""))
    return path


def test_resume_refuses_data_that_changed_on_disk(tmp_path, monkeypatch, capsys):
    # the finished units were once reused with the changed data: one results.json
    # mixing two datasets
    import dataclasses

    from benchmark.stages import STAGES, ordered_stages

    ordered_stages()
    late = max(STAGES.values(), key=lambda spec: spec.order)
    monkeypatch.setitem(STAGES, late.name, dataclasses.replace(
        late, run=lambda ctx: (_ for _ in ()).throw(KeyboardInterrupt)))
    config = _csv_toml(tmp_path, 200)
    assert _run(config, tmp_path / "runs") == 130
    monkeypatch.setitem(STAGES, late.name, late)
    _csv_toml(tmp_path, 120)
    capsys.readouterr()
    assert _run(config, tmp_path / "runs", "--resume") == 2
    assert "was started on other data" in capsys.readouterr().err
    _csv_toml(tmp_path, 200)
    assert _run(config, tmp_path / "runs", "--resume") == 0


def test_a_fresh_run_whose_data_fail_to_load_leaves_the_earlier_run_usable(tiny, tmp_path,
                                                                          capsys):
    # its state (the models `evaluate` falls back to) was once deleted first
    assert _run(tiny, tmp_path) == 0
    state = sorted(p.name for p in (tmp_path / "t" / "state").iterdir())
    config = (tmp_path / "t" / "config.json").read_text()
    assert _run(tiny, tmp_path, "--dataset", f"folder:{tmp_path / 'missing'}") == 2
    assert sorted(p.name for p in (tmp_path / "t" / "state").iterdir()) == state
    assert (tmp_path / "t" / "config.json").read_text() == config
    assert main(["evaluate", str(tmp_path / "t"), "--dataset", "synthetic"]) == 0


def test_evaluate_refuses_saved_models_of_a_run_that_did_not_finish(tiny, tmp_path, capsys):
    assert _run(tiny, tmp_path, "--save-models") == 0
    search = tmp_path / "t" / "models" / "search.json"
    assert json.loads(search.read_text()) == json.loads(
        (tmp_path / "t" / "results.json").read_text())["stages"]["search"]
    # as a later run leaves it when cut short after saving its models
    search.write_text(json.dumps({"cnn": {"other": "search"}}))
    capsys.readouterr()
    assert main(["evaluate", str(tmp_path / "t"), "--dataset", "synthetic"]) == 2
    assert "holds the models of a later run that did not finish" in capsys.readouterr().err


def test_ctrl_c_in_any_command_is_one_line_that_says_what_is_left(tiny, tmp_path,
                                                                   monkeypatch, capsys):
    # evaluate, faces and perf once printed a KeyboardInterrupt traceback; a run
    # stopped while its data loaded once suggested --resume of work it had not done
    from benchmark import crossdata

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(crossdata, "evaluate_run", interrupt)
    assert main(["evaluate", str(tmp_path), "--dataset", "synthetic"]) == 130
    err = capsys.readouterr().err
    assert "Interrupted; every file is written whole" in err and "Traceback" not in err
    monkeypatch.setattr(runner, "load", interrupt)
    assert _run(tiny, tmp_path) == 130
    err = capsys.readouterr().err
    assert "Interrupted while the data were loading" in err and "--resume" not in err
    assert not (tmp_path / "t").exists()
