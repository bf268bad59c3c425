"""Decode once: loaders store their arrays keyed by the source's path and file status.

The cache lives in ``$FER_SKLEARN_CACHE`` if set, else ``$XDG_CACHE_HOME/fer_sklearn``,
else ``~/.cache/fer_sklearn``. Each loader takes ``cache=True`` (that folder),
``cache=False`` (no cache) or a folder path. Entries are written atomically
(temporary file, then rename), so an interrupted load never leaves a broken one;
an entry damaged some other way (truncated, emptied) is a miss, rebuilt and rewritten.
A new entry replaces the older ones of the same source (loader, path and options), so
the cache holds one entry per source however often its files change.
"""

import hashlib
import json
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from ._walk import walk

# Bump when the decoded result of any loader changes for the same input.
_FORMAT_VERSION = 5


def cache_dir():
    """The default cache folder (see the module docstring)."""
    env = os.environ.get("FER_SKLEARN_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "fer_sklearn"


def _folder(cache):
    if cache is False or cache is None:
        return None
    return cache_dir() if cache is True else Path(cache)


def _status(st):
    """What changes when a file's content may have: its size and mtime, and
    its ctime, which a file written or put in place while keeping an older
    mtime (``cp -p``, ``rsync -t``, an unpacked archive) cannot carry over.
    (Not the inode, which some network filesystems renumber on every mount.)"""
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns]


def _stat(path, name):
    """``(name, status)`` of one file; a missing file is ``(name, None)``."""
    try:
        st = os.stat(path)
    except OSError:
        return (name, None)
    return (name, _status(st))


def _digest(obj):
    """SHA-256 (hex) of ``obj`` as JSON, dict keys sorted."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def _fingerprint(path):
    """Path and status of a file, or of every file under a folder."""
    path = Path(path).resolve()
    if path.is_file():
        return [str(path), _status(path.stat())]
    files, _ = walk(path)
    entries = [_stat(str(f), os.path.relpath(f, path)) for f in files]
    return [str(path), len(entries), _digest(entries)]


def _files_fingerprint(files):
    """The folder rule for a list of files (those a CSV names): the status of each,
    by absolute path, so a changed, deleted or re-rooted file changes the key."""
    entries = [_stat(f, os.path.abspath(f)) for f in files]
    return [len(entries), _digest(entries)]


def _source(kind, path, options):
    """What an entry is of, whatever state the files are in: a new entry
    replaces the older ones of the same source, so the cache keeps one each."""
    return _digest([kind, str(Path(path).resolve()), options])[:12]


def _key(kind, path, options, files=None):
    parts = [_FORMAT_VERSION, kind, _fingerprint(path), options]
    if files is not None:
        parts.append(_files_fingerprint(files))
    return _digest(parts)[:32]


def load_or_build(kind, path, options, cache, build, files=None):
    """Return ``build()``'s arrays, from the cache when an entry matches.

    Parameters
    ----------
    kind : str
        Loader name (part of the key).
    path : path-like
        The source; its status (size, mtime, ctime; every file's, for a folder) is in the key.
    options : dict
        Loader options that change the decoded result.
    cache : bool or path-like
    build : callable
        Returns ``(data, target, frame, report)``: uint8 images, str labels,
        a DataFrame of str/number columns and a JSON-serialisable dict.
    files : list of path-like, optional
        Further files the result is read from (the images a CSV lists); each
        one's absolute path and status are in the key, as for a folder.

    Returns
    -------
    tuple
        ``(data, target, frame, report, hit)`` where ``hit`` says whether the
        cache answered.
    """
    folder = _folder(cache)
    if folder is None:
        return (*build(), False)
    source = f"{kind}-{_source(kind, path, options)}"
    entry = folder / f"{source}-{_key(kind, path, options, files)}.npz"
    if entry.exists():
        try:
            return (*_read(entry), True)
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
            pass  # unreadable entry (damaged, truncated, empty): rebuild and overwrite it
    data, target, frame, report = build()
    try:
        _write(entry, data, target, frame, report)
        for older in folder.glob(f"{source}-*.npz"):
            if older != entry:
                older.unlink(missing_ok=True)
    except OSError:
        pass  # a read-only or full cache folder must not fail the load
    return data, target, frame, report, False


def _write(entry, data, target, frame, report):
    entry.parent.mkdir(parents=True, exist_ok=True)
    arrays = {"data": data, "target": np.asarray(target).astype(str)}
    columns = []
    for i, col in enumerate(frame.columns):
        values = frame[col].to_numpy()
        if values.dtype == object:
            values = values.astype(str)
        arrays[f"col{i}"] = values
        columns.append(str(col))
    meta = json.dumps({"columns": columns, "report": report})
    arrays["meta"] = np.frombuffer(meta.encode(), dtype=np.uint8)
    fd, tmp = tempfile.mkstemp(dir=entry.parent, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **arrays)
        os.replace(tmp, entry)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _read(entry):
    with np.load(entry, allow_pickle=False) as z:
        meta = json.loads(z["meta"].tobytes().decode())
        frame = pd.DataFrame({name: z[f"col{i}"] for i, name in enumerate(meta["columns"])})
        return z["data"], z["target"], frame, meta["report"]
