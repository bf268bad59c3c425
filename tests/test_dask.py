"""The search stage on a Dask cluster gives what it gives in one process."""

import os
import sys

import pytest
import torch

from benchmark.config import resolve_config
from benchmark.parallel import MISSING_DASK, cluster_for
from benchmark.stages.search import search_one
from fer_sklearn.datasets import make_synthetic_faces

TOML = """
models = ["cnn"]
[recipes.cnn.params]
max_epochs = 2
module__width = 4
module__depth = 2
batch_size = 32
[recipes.cnn.grid]
module__dropout = [0.0, 0.5]
lr = [0.001, 0.01]
"""


def _config(tmp_path, **flags):
    path = tmp_path / "c.toml"
    path.write_text(TOML)
    return resolve_config(path, **flags)


def _search(config, X, y):
    _, record = search_one(config, "cnn", X, y)
    cv = record["cv"]
    return cv["params"], cv["splits"], record["best_params"]


def test_dask_and_loky_give_the_sequential_results_and_dask_uses_the_workers(tmp_path):
    distributed = pytest.importorskip("distributed")
    X, y = make_synthetic_faces(120, random_state=0, return_X_y=True)
    # Dask workers run one thread each; float sums (and so, rarely, a
    # prediction) depend on the thread count, so compare at one thread.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        sequential = _search(_config(tmp_path), X, y)
    finally:
        torch.set_num_threads(threads)

    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address=None) as cluster:
        config = _config(tmp_path, backend="dask", scheduler=cluster.scheduler_address)
        with cluster_for(config) as client, distributed.get_task_stream(client) as stream:
            on_dask = _search(config, X, y)
        workers = {t["worker"] for t in stream.data}
    assert on_dask == sequential
    # loky workers are single-threaded too when there is one per core
    # (joblib gives each cpu_count // n_jobs threads)
    assert _search(_config(tmp_path, n_jobs=os.cpu_count()), X, y) == sequential
    # the 4 grid points x 2 folds ran as tasks on the cluster, on both workers
    assert len(stream.data) >= 1 and len(workers) == 2


def test_missing_dask_names_the_extra(tmp_path, monkeypatch):
    for name in ("distributed", "dask"):
        monkeypatch.setitem(sys.modules, name, None)  # as if not installed
    config = _config(tmp_path, backend="dask")
    with pytest.raises(ValueError, match=r"pip install 'fer-sklearn\[dask\]'"):
        with cluster_for(config):
            pass
    assert "fer-sklearn[dask]" in MISSING_DASK


def test_backend_and_scheduler_are_validated(tmp_path):
    with pytest.raises(ValueError, match="Did you mean 'dask'"):
        _config(tmp_path, backend="dusk")
    with pytest.raises(ValueError, match="only applies with backend 'dask'"):
        _config(tmp_path, scheduler="tcp://127.0.0.1:8786")
    config = _config(tmp_path, backend="dask")
    assert config.backend == "dask" and config.scheduler is None and config.n_jobs == 1


def test_an_unreachable_scheduler_is_named(tmp_path):
    pytest.importorskip("distributed")
    import dask

    config = _config(tmp_path, backend="dask", scheduler="tcp://127.0.0.1:1")
    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
        with pytest.raises(ValueError, match="cannot reach the Dask scheduler tcp://127.0.0.1:1"):
            with cluster_for(config):
                pass


def test_no_cluster_starts_when_no_model_has_a_grid(tmp_path, monkeypatch):
    # one once started for the single fits of grid-less recipes (fer2013-cpu)
    from benchmark.__main__ import main
    from benchmark.stages import search as search_module

    def no_cluster(config):
        raise AssertionError("a cluster started")

    monkeypatch.setattr(search_module, "cluster_for", no_cluster)
    toml = tmp_path / "nogrid.toml"
    toml.write_text('models = ["cnn"]\nn_boot = 10\nbackend = "dask"\nexplain_per_class = 1\n'
                    'explain_methods = ["saliency"]\n[synthetic]\nn_samples = 140\n'
                    '[recipes.cnn]\ngrid = {}\n[recipes.cnn.params]\nmax_epochs = 1\n'
                    'module__width = 4\nmodule__depth = 2\n')
    assert main(["run", "--config", str(toml), "--out", str(tmp_path), "--name", "t"]) == 0


def test_a_local_cluster_starts_one_worker_per_cpu_the_process_may_use(monkeypatch):
    # In a container or under taskset, os.cpu_count() counts CPUs it cannot use.
    from benchmark import parallel

    started = {}

    class Fake:
        def __init__(self, *args, **kwargs):
            started.setdefault("n_workers", kwargs.get("n_workers"))

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(parallel, "_distributed",
                        lambda: type("distributed", (), {"LocalCluster": Fake, "Client": Fake}))
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {3}, raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    with parallel.dask_client():
        pass
    assert started["n_workers"] == 1
    monkeypatch.delattr(os, "sched_getaffinity")
    assert parallel.usable_cpus() == 64
