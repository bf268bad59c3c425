"""Atomic files and the store of finished units of work (what ``--resume`` reuses)."""

import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

import joblib
import numpy as np


@contextmanager
def atomic_path(path):
    """Yield a temporary path beside ``path``; move it into place only on success.

    A crash or an exception inside the block leaves ``path`` as it was (absent
    or the previous complete version) and removes the temporary file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        # mkstemp creates the file private (0600); give it the usual mode.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        with _ignore_missing():
            os.unlink(tmp)
        raise


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


class UnitStore:
    """Finished units of a run, one file each, under ``RUN_DIR/state/``.

    A unit is written once, atomically, when it finishes; ``--resume`` reads
    it back instead of recomputing. Keys are short names such as
    ``search-cnn``.
    """

    def __init__(self, folder):
        self.folder = Path(folder)

    def _path(self, key, ext):
        return self.folder / f"{key}.{ext}"

    def has(self, key, ext="json"):
        return self._path(key, ext).is_file()

    def get_json(self, key):
        return json.loads(self._path(key, "json").read_text(encoding="utf-8"))

    def put_json(self, key, obj):
        write_json(self._path(key, "json"), obj)

    def get_arrays(self, key):
        with np.load(self._path(key, "npz"), allow_pickle=False) as f:
            return {k: f[k] for k in f.files}

    def put_arrays(self, key, **arrays):
        with atomic_path(self._path(key, "npz")) as tmp:
            with tmp.open("wb") as fh:
                np.savez(fh, **arrays)

    def get_model(self, key):
        return joblib.load(self._path(key, "joblib"))

    def put_model(self, key, model):
        with atomic_path(self._path(key, "joblib")) as tmp:
            joblib.dump(model, tmp)
