"""Where the search stage's fits run: in this process, on loky workers, or on Dask.

Dask is reached through joblib's ``dask`` backend, which scikit-learn's
``GridSearchCV`` uses as it is: every (grid point, fold) fit becomes a task on
the cluster. The training arrays are scattered to the workers once per search
rather than shipped with every task.
"""

import asyncio
import contextlib
import os

import joblib

from .progress import log

MISSING_DASK = (
    "--backend dask needs the optional packages dask and distributed: "
    "pip install 'fer-sklearn[dask]' (or pip install dask distributed)."
)


def _distributed():
    try:
        import distributed
    except ImportError as exc:
        raise ValueError(MISSING_DASK) from exc
    return distributed


NO_SCHEDULER = ("cannot reach the Dask scheduler {scheduler}: {reason} Is it running, and is "
                "the address (tcp://HOST:PORT) right?")


def usable_cpus():
    """The CPUs this process may run on: its affinity mask (a container's or
    ``taskset``'s share) where the OS has one, else every CPU."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


@contextlib.contextmanager
def dask_client(scheduler=None, n_workers=None):
    """A ``distributed.Client``: connected to ``scheduler`` when given, else to a
    new ``LocalCluster`` of one single-threaded worker process per usable core."""
    distributed = _distributed()
    if scheduler:
        log(f"dask: connecting to {scheduler}")
        try:
            client = distributed.Client(scheduler)  # dask's connect timeout, 30 s by default
        except (OSError, asyncio.TimeoutError) as exc:  # the latter: 3.10 (OSError holds TimeoutError)
            raise ValueError(NO_SCHEDULER.format(scheduler=scheduler, reason=exc)) from exc
        with client:
            yield client
        return
    n_workers = n_workers or usable_cpus()
    log(f"dask: starting a local cluster of {n_workers} single-threaded workers")
    with distributed.LocalCluster(n_workers=n_workers, threads_per_worker=1,
                                  processes=True, host="127.0.0.1",
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        yield client


@contextlib.contextmanager
def cluster_for(config):
    """Stage-level context: the Dask client the searches use (None for loky)."""
    if config.backend == "dask":
        with dask_client(config.scheduler) as client:
            yield client
    else:
        yield None


@contextlib.contextmanager
def fits_on(config, X, y):
    """Context in which one ``GridSearchCV`` runs its fits on ``config.backend``.

    Yields the ``n_jobs`` to pass: ``config.n_jobs`` for loky, -1 (every Dask
    worker) for Dask, where ``X`` and ``y`` are scattered to the workers once.
    Needs :func:`cluster_for` around it for Dask.
    """
    if config.backend == "dask":
        with joblib.parallel_config(backend="dask", scatter=[X, y]):
            yield -1
        return
    yield config.n_jobs
