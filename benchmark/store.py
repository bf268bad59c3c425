"""Atomic files and the store of finished units of work (what ``--resume`` reuses)."""

import json
import os
import signal
import tempfile
import threading
from contextlib import contextmanager, suppress
from pathlib import Path

import joblib
import numpy as np

NO_RESULTS = "{path} has no results.json: it is not a finished benchmark run."
BAD_RUN_FILE = "{path} is not a readable benchmark {what}: {reason}."


def read_run_json(path, what):
    """A run folder's JSON file (``results.json``, ``config.json``) as a dict;
    a damaged one raises ValueError naming it."""
    try:
        obj = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:  # UnicodeDecodeError and JSONDecodeError too
        raise ValueError(BAD_RUN_FILE.format(path=path, what=what, reason=exc)) from exc
    if not isinstance(obj, dict):
        raise ValueError(BAD_RUN_FILE.format(
            path=path, what=what, reason=f"it holds a JSON {type(obj).__name__}, not an object"))
    return obj


def read_results(run_dir):
    """``results.json`` of a finished run folder, checked enough to render or extend."""
    path = Path(run_dir) / "results.json"
    if not path.is_file():
        raise ValueError(NO_RESULTS.format(path=run_dir))
    results = read_run_json(path, "results.json")
    if not isinstance(results.get("config"), dict) or not isinstance(
            results["config"].get("models"), list):
        raise ValueError(BAD_RUN_FILE.format(path=path, what="results.json",
                                             reason="it records no run configuration"))
    return results


LOCK_FILE = ".fer-benchmark-lock"
IN_USE = ("{path} is in use by another benchmark process{holder}; wait for it to end, or "
          "pick another --out/--name.")


@contextmanager
def run_lock(run_dir, create=False):
    """Hold the run folder for the block; a second benchmark process that asks
    for the same folder meanwhile is refused with ValueError, instead of
    writing into it too.

    The lock is the operating system's (``fcntl.flock`` on ``LOCK_FILE`` in
    the folder), so it ends with the process however that ends. Without
    ``create`` a folder that does not exist is not locked (nothing is there to
    guard); with it, the folder (and any missing parent) is created, and
    removed again if the block leaves nothing but the lock file in it. Where
    ``fcntl`` is missing (Windows) or the filesystem refuses locks, nothing
    is locked.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    run_dir = Path(run_dir)
    if not (create or run_dir.is_dir()):
        yield
        return
    made = [p for p in (run_dir, *run_dir.parents) if not p.exists()]  # deepest first
    path = run_dir / LOCK_FILE
    with writing():
        run_dir.mkdir(parents=True, exist_ok=True)
    while True:
        with writing():
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = os.pread(fd, 20, 0).decode("ascii", "replace").strip()
            os.close(fd)
            raise ValueError(IN_USE.format(
                path=run_dir, holder=f" (pid {pid})" if pid.isdigit() else "")) from None
        except OSError:  # a filesystem without locks (some network ones): go on unlocked
            break
        try:  # the file we locked may have been removed by its last holder meanwhile
            if os.path.samestat(os.fstat(fd), os.stat(path)):
                os.ftruncate(fd, 0)
                os.pwrite(fd, str(os.getpid()).encode(), 0)
                break
        except FileNotFoundError:
            pass
        os.close(fd)
    try:
        yield
    finally:
        with suppress(OSError):
            if made and [p.name for p in run_dir.iterdir()] == [LOCK_FILE]:
                # Nothing was written: leave no folder this call made behind.
                path.unlink()
                for folder in made:
                    folder.rmdir()
        os.close(fd)


@contextmanager
def holding_run(run_dir):
    """Hold a finished run folder (:func:`run_lock`) and yield its results, as
    read once no other process writes them. A folder that is not a finished
    run is refused before the lock file goes into it."""
    read_results(run_dir)
    with run_lock(run_dir):
        yield read_results(run_dir)


class WriteError(OSError):
    """An ``OSError`` met while writing a run's files (disk full, read-only folder)."""


@contextmanager
def writing():
    """Re-raise the block's ``OSError`` as :class:`WriteError`, so that the
    command line can tell a failed write from a failed read."""
    try:
        yield
    except WriteError:
        raise
    except OSError as exc:
        raise WriteError(exc.errno, exc.strerror or str(exc), exc.filename) from exc


@contextmanager
def atomic_path(path):
    """Yield a temporary path beside ``path``; move it into place only on success.

    A crash or an exception inside the block leaves ``path`` as it was (absent
    or the previous complete version) and removes the temporary file. The new
    file is synced to disk before it replaces the old one, so a power cut
    cannot leave an empty file in its place either. An ``OSError`` comes out
    as :class:`WriteError`.
    """
    path = Path(path)
    with writing():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        try:
            yield Path(tmp)
            # mkstemp creates the file private (0600); give it the usual mode.
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)
            _sync(tmp)  # on disk before it replaces the earlier version
            os.replace(tmp, path)
            if os.name == "posix":  # and the rename too, where the filesystem can
                with suppress(OSError):  # (some network filesystems refuse folders)
                    _sync(path.parent)
        except BaseException:
            with _ignore_missing():
                os.unlink(tmp)
            raise


def _sync(path):
    """``fsync`` a file or (POSIX) a folder, so a power cut cannot undo a write."""
    fd = os.open(path, os.O_RDONLY if os.path.isdir(path) else os.O_RDWR)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def _ignore_missing():
    try:
        yield
    except FileNotFoundError:
        pass


def write_text(path, text):
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path, obj):
    """Write ``obj`` as compact, key-sorted JSON atomically."""
    write_text(path, json.dumps(obj, sort_keys=True, separators=(",", ":"),
                                default=_json_default) + "\n")


def _json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot write {type(obj).__name__} to JSON")


def to_jsonable(obj):
    """``obj`` as ``results.json`` will hold it: plain Python, keys sorted."""
    return json.loads(json.dumps(obj, sort_keys=True, default=_json_default))


@contextmanager
def watch_interrupts():
    """Note every Ctrl-C (SIGINT) inside the block, for :func:`stop_if_interrupted`.

    The signal still raises ``KeyboardInterrupt`` as usual. The note matters
    where that exception is swallowed: skorch ends a fit on it and returns
    normally (its way to stop training by hand, and how early stopping and a
    time budget end a fit), so a Ctrl-C during a fit would otherwise leave a
    half-trained model that looks finished. Outside the main thread, or where
    SIGINT has no Python handler, nothing is installed.
    """
    global _seen
    previous = signal.getsignal(signal.SIGINT)
    if threading.current_thread() is not threading.main_thread() or not callable(previous):
        yield
        return
    seen, outer = [], _seen

    def note(signum, frame):
        seen.append(signum)
        previous(signum, frame)

    signal.signal(signal.SIGINT, note)
    _seen = seen
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        _seen = outer


_seen = []  # the signals noted by the innermost watch_interrupts


def stop_if_interrupted():
    """Raise ``KeyboardInterrupt`` if a Ctrl-C came during the current
    :func:`watch_interrupts` (a fit may have swallowed it). Called where a fit
    starts or ends and before every stored unit, so that the run stops at once
    and nothing cut short is recorded as finished."""
    if _seen:
        raise KeyboardInterrupt


class UnitStore:
    """Finished units of a run, one file each, under ``RUN_DIR/state/``.

    A unit is written once, atomically, when it finishes; ``--resume`` reads
    it back instead of recomputing. Keys are short names such as
    ``search-cnn``. Once a Ctrl-C has come (see :func:`watch_interrupts`),
    nothing more is stored: the unit may have been cut short.
    """

    def __init__(self, folder):
        self.folder = Path(folder)

    def _writable(self, key, ext):
        stop_if_interrupted()
        return self._path(key, ext)

    def _path(self, key, ext):
        return self.folder / f"{key}.{ext}"

    def has(self, key, ext="json"):
        return self._path(key, ext).is_file()

    def get_json(self, key):
        return json.loads(self._path(key, "json").read_text(encoding="utf-8"))

    def put_json(self, key, obj):
        write_json(self._writable(key, "json"), obj)

    def get_arrays(self, key):
        with np.load(self._path(key, "npz"), allow_pickle=False) as f:
            return {k: f[k] for k in f.files}

    def put_arrays(self, key, **arrays):
        with atomic_path(self._writable(key, "npz")) as tmp:
            with tmp.open("wb") as fh:
                np.savez(fh, **arrays)

    def get_model(self, key):
        return joblib.load(self._path(key, "joblib"))

    def put_model(self, key, model):
        with atomic_path(self._writable(key, "joblib")) as tmp:
            joblib.dump(model, tmp)
