"""Runs killed (SIGKILL) or interrupted (SIGINT) at several points, then resumed.

Each crash happens in a child process, by a real signal, at a chosen point:
during the search (inside a fit), between two models, and while the report is
being written. After each, no file under the run folder may be partial, and
``--resume`` must finish the run without recomputing what had finished, with
the same metrics as an uninterrupted run.
"""

import json
import os
import signal
import subprocess
import sys
import textwrap

import joblib
import pytest

from benchmark.stages import ordered_stages
from fer_sklearn.reporting import render_report

TINY = """
n_boot = 30
models = ["cnn", "resnet18"]
explain_per_class = 1
explain_methods = ["saliency"]
[synthetic]
n_samples = 140
[recipes.cnn.params]
max_epochs = 2
module__width = 4
module__depth = 2
[recipes.cnn.grid]
module__dropout = [0.1, 0.3]
[recipes.resnet18.params]
max_epochs = 1
module__width = 4
"""

# Installs a hook that sends the child a signal at one point, then runs the CLI.
CHILD = textwrap.dedent("""
    import os, signal, sys
    from benchmark import runner, store
    from benchmark.__main__ import main
    from benchmark.stages import search
    from fer_sklearn import FERClassifier

    point, sig = sys.argv[1], getattr(signal, sys.argv[2])
    die = lambda: os.kill(os.getpid(), sig)

    # Every search actually computed is printed, so a resume shows what it redid.
    searched = search.search_one
    def announced(config, model, X, y):
        print("SEARCHED", model, flush=True)
        return searched(config, model, X, y)
    search.search_one = announced

    def die_on_call(name, n):  # the signal comes on the n-th call of FERClassifier.<name>
        method, calls = getattr(FERClassifier, name), []
        def counted(self, *a, **k):
            calls.append(1)
            if len(calls) == n:
                die()
            return method(self, *a, **k)
        setattr(FERClassifier, name, counted)

    if point == "during-search":  # the third fit: inside the cnn grid search
        die_on_call("fit", 3)
    elif point == "mid-fit":  # inside the first fit's training loop, which skorch guards
        die_on_call("train_step", 2)
    elif point == "between-models":  # cnn stored, resnet18 not started
        one = search.search_one
        def second(config, model, X, y):
            if model == "resnet18":
                die()
            return one(config, model, X, y)
        search.search_one = second
    elif point == "writing-report":  # half of report.md written to its temporary file
        def half(path, text):
            if path.name == "report.md":
                with store.atomic_path(path) as tmp:
                    tmp.write_text(text[: len(text) // 2])
                    die()
            return store.write_text(path, text)
        runner.write_text = half
    sys.exit(main(sys.argv[3:]))
""")


@pytest.fixture(scope="module")
def config_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("cfg") / "tiny.toml"
    path.write_text(TINY)
    return path


@pytest.fixture(scope="module")
def clean_metrics(config_file, tmp_path_factory):
    # In a fresh process like the interrupted and resumed runs: float results can
    # depend on process state (thread pools) that earlier tests leave behind.
    out = tmp_path_factory.mktemp("clean")
    proc = _child("none", "SIGKILL", config_file, out, out / "cache")
    assert proc.returncode == 0, proc.stderr[-2000:]
    return _metrics(out / "t")


def _metrics(run_dir):
    results = json.loads((run_dir / "results.json").read_text())
    return {m: r["metrics"] for m, r in results["stages"]["evaluate"]["models"].items()}


def _child(point, sig, config_file, out, env_cache, *extra):
    args = ["run", "--config", str(config_file), "--out", str(out), "--name", "t", *extra]
    env = {**os.environ, "FER_SKLEARN_CACHE": str(env_cache)}
    return subprocess.run([sys.executable, "-c", CHILD, point, sig, *args], env=env,
                          capture_output=True, text=True, timeout=600)


def _assert_nothing_partial(run_dir):
    """Every file that has its final name is complete; only temporaries may be cut."""
    ordered_stages()  # registers the stages' report sections
    for path in run_dir.rglob("*"):
        if not path.is_file() or path.name.endswith(".tmp"):
            continue
        if path.suffix == ".json":
            json.loads(path.read_text())
        elif path.suffix == ".joblib":
            joblib.load(path)
        elif path.name == "report.md":
            results = json.loads((run_dir / "results.json").read_text())
            assert path.read_text() == render_report(results)


@pytest.mark.parametrize("point,recomputed", [
    ("during-search", ["cnn", "resnet18"]),
    ("between-models", ["resnet18"]),
    ("writing-report", []),
])
def test_sigkill_then_resume_recomputes_nothing_finished(point, recomputed, config_file,
                                                         clean_metrics, tmp_path,
                                                         private_cache):
    out = tmp_path / "runs"
    proc = _child(point, "SIGKILL", config_file, out, private_cache)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    run_dir = out / "t"
    assert not (run_dir / "report.md").exists()
    if point != "writing-report":
        assert not (run_dir / "results.json").exists()
    _assert_nothing_partial(run_dir)

    proc = _child("none", "SIGKILL", config_file, out, private_cache, "--resume")
    assert proc.returncode == 0, proc.stderr[-2000:]
    calls = [line.split()[1] for line in proc.stdout.splitlines() if line.startswith("SEARCHED")]
    assert calls == recomputed
    assert _metrics(run_dir) == clean_metrics
    assert not [p for p in run_dir.rglob("*.tmp")]
    _assert_nothing_partial(run_dir)


def test_sigint_stops_cleanly_with_one_line_on_how_to_resume(config_file, tmp_path,
                                                             private_cache):
    out = tmp_path / "runs"
    proc = _child("during-search", "SIGINT", config_file, out, private_cache)
    assert proc.returncode == 130, proc.stderr[-2000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("Interrupted.") and "--resume" in last
    assert "Traceback" not in proc.stderr
    _assert_nothing_partial(out / "t")


def test_sigint_inside_a_fit_stops_the_run_and_stores_no_cut_short_model(config_file,
                                                                         clean_metrics,
                                                                         tmp_path,
                                                                         private_cache):
    # skorch ends a fit on KeyboardInterrupt and returns normally; the run must
    # still stop, and the half-trained cnn must not be stored as finished.
    out = tmp_path / "runs"
    proc = _child("mid-fit", "SIGINT", config_file, out, private_cache)
    assert proc.returncode == 130, proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines()[-1].startswith("Interrupted.")
    state = out / "t" / "state"
    assert not [p.name for p in state.iterdir() if "cnn" in p.name]
    _assert_nothing_partial(out / "t")

    proc = _child("none", "SIGKILL", config_file, out, private_cache, "--resume")
    assert proc.returncode == 0, proc.stderr[-2000:]
    calls = [line.split()[1] for line in proc.stdout.splitlines() if line.startswith("SEARCHED")]
    assert calls == ["cnn", "resnet18"]
    assert _metrics(out / "t") == clean_metrics
