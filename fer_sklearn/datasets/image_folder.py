"""Folders of labelled face images, on disk or inside a zip."""

import zipfile
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd

from ._bunch import make_bunch
from ._cache import load_or_build
from ._decode import (
    IMAGE_EXTENSIONS,
    ZIP_READ_ERRORS,
    check_on_error,
    check_size,
    check_some_read,
    decode_all,
)
from ._labels import canonical_label, canonical_split, map_labels
from ._walk import walk

MISSING_PATH = "No such file or folder: {path}. Check the path (relative paths are from {cwd})."
NOT_A_ZIP = "{path} is not a folder or a readable .zip file: {reason}. Is the file complete?"
NO_IMAGES = (
    "No images found in {path}. Expected ROOT/<split>/<class>/*.jpg or "
    "ROOT/<class>/*.jpg (JPEG or PNG); found {found}."
)
MIXED_LAYOUT = (
    "{path} mixes layouts: some images sit at depth {depths}. Use either "
    "ROOT/<split>/<class>/<image> or ROOT/<class>/<image> throughout; "
    "e.g. {examples}."
)
WRONG_DEPTH = (
    "{path}: every image sits at depth {depth} (e.g. {examples}), where "
    "ROOT/<class>/<image> (depth 2) or ROOT/<split>/<class>/<image> (depth 3) is expected."
)


def _is_hidden(parts):
    return any(p.startswith(".") or p == "__MACOSX" for p in parts)


def _member_path(name):
    """A zip member's name as a relative posix path: some Windows tools write
    backslashes, some archivers a leading ``./`` or ``/``."""
    path = PurePosixPath(name.replace("\\", "/"))
    relative = "/".join(part for part in path.parts if part.strip("/") not in ("", "."))
    return relative + "/" if name.endswith(("/", "\\")) and relative else relative


def _member_name(info):
    """A zip member's name as its archiver wrote it. Without the zip's UTF-8
    flag, :mod:`zipfile` reads a name as cp437, but many archivers (macOS,
    7-Zip, Info-ZIP on Linux) store UTF-8 there without setting the flag:
    a name whose bytes are valid UTF-8 is read as UTF-8."""
    if info.flag_bits & 0x800:
        return info.filename
    try:
        return info.filename.encode("cp437").decode("utf-8")
    except UnicodeError:
        return info.filename


def _empty_folders(folders, files):
    """Folders (relative posix paths) with no file anywhere below them."""
    full = set()
    for rel in files:
        parts = PurePosixPath(rel).parts
        full.update("/".join(parts[:k]) for k in range(1, len(parts)))
    return sorted(f for f in folders if f not in full and not _is_hidden(PurePosixPath(f).parts))


def _last_of_each_path(infos):
    """The zip's file members, one per relative path: where several share a
    path (a zip appended to, or names that differ only in ``./`` or
    backslashes), the last in the archive, as unzipping would leave it; and
    the paths of the members passed over."""
    last = {}
    repeated = []
    for info in infos:
        rel = _member_path(_member_name(info))
        if rel in last:
            repeated.append(rel)
        last[rel] = info
    return sorted(last.items()), sorted(repeated)


def _list_entries(path):
    """``(relative posix path, reader)`` for every file, the open zip (or None),
    the folders that hold no file, and the zip members passed over because a
    later one has the same path."""
    if path.is_dir():
        files, folders = walk(path)
        rels = [p.relative_to(path).as_posix() for p in files]
        empty = _empty_folders([p.relative_to(path).as_posix() for p in folders], rels)
        return [(r, p.read_bytes) for r, p in zip(rels, files)], None, empty, []
    zf = None
    try:
        zf = zipfile.ZipFile(path)
        infos = zf.infolist()
        members, repeated = _last_of_each_path(i for i in infos if not i.is_dir())
        names = [rel for rel, _ in members]
        empty = _empty_folders([f for f in (_member_path(_member_name(i)).rstrip("/")
                                            for i in infos if i.is_dir()) if f], names)
    except ZIP_READ_ERRORS as exc:
        if zf is not None:
            zf.close()
        raise ValueError(NOT_A_ZIP.format(path=path, reason=exc)) from exc
    # A damaged member surfaces when it is read, as an image that cannot be
    # decoded (named, or skipped with on_error="skip"); members that are not
    # loaded (passed-over duplicates, non-image files) are never read.
    # Read by ZipInfo: by name, zipfile reads the last member of that name.
    return [(rel, (lambda i=i: zf.read(i))) for rel, i in members], zf, empty, repeated


def _strip_single_root(rels):
    """Drop a single top-level folder that is neither a split nor a class."""
    tops = {PurePosixPath(r).parts[0] for r in rels if len(PurePosixPath(r).parts) > 1}
    if len(tops) == 1 and all(len(PurePosixPath(r).parts) > 1 for r in rels):
        top = next(iter(tops))
        if canonical_label(top) is None and canonical_split(top) not in (
            "train", "validation", "test"
        ):
            return top
    return None


def _scan(path, on_error, size):
    entries, zf, empty, repeated = _list_entries(path)
    try:
        report = {"ignored_files": [], "hidden_files": 0, "empty_folders": empty,
                  "duplicate_members": repeated}
        visible = []
        for rel, read in entries:
            parts = PurePosixPath(rel).parts
            if _is_hidden(parts):
                report["hidden_files"] += 1
            elif not rel.lower().endswith(IMAGE_EXTENSIONS):
                report["ignored_files"].append(rel)
            else:
                visible.append((rel, read))
        top = _strip_single_root([r for r, _ in visible])
        if top is not None:
            visible = [(r[len(top) + 1:], read) for r, read in visible]
            report["root_folder"] = top
        if not visible:
            found = (f"{len(report['ignored_files'])} non-image file(s), e.g. "
                     f"{report['ignored_files'][:3]}" if report["ignored_files"]
                     else "nothing")
            raise ValueError(NO_IMAGES.format(path=path, found=found))
        by_depth = {}
        for r, _ in visible:
            by_depth.setdefault(len(PurePosixPath(r).parts), []).append(r)
        if len(by_depth) > 1:
            raise ValueError(MIXED_LAYOUT.format(
                path=path, depths=sorted(by_depth),
                examples=[rs[0] for rs in by_depth.values()][:3]))
        ((depth, rels),) = by_depth.items()
        if depth not in (2, 3):
            raise ValueError(WRONG_DEPTH.format(path=path, depth=depth, examples=rels[:2]))
        parts = [PurePosixPath(r).parts for r, _ in visible]
        folders = np.array([p[-2] for p in parts])
        target = map_labels(folders, where=f"class folders of {path}")
        split = np.array([canonical_split(p[0]) if len(p) == 3 else "unassigned"
                          for p in parts])
        data, ok, skipped, counts = decode_all(visible, size, on_error,
                                               progress_desc=f"decoding {path.name}")
    finally:
        if zf is not None:
            zf.close()
    report.update(skipped=skipped, conversions=counts,
                  n_images=int(ok.sum()))
    frame = pd.DataFrame({
        "split": split[ok],
        "source": np.array([r for r, _ in visible])[ok],
        "folder": folders[ok],
    })
    return data, target[ok], frame, report


def load_image_folder(path, *, size=48, on_error="raise", cache=True, return_X_y=False):
    """Load labelled face images from a folder tree or a ``.zip``.

    Layouts: ``ROOT/<split>/<class>/<image>`` or ``ROOT/<class>/<image>``.
    A zip (or folder) holding one top-level folder that is neither a split nor
    a class name (``fer2013/`` in the Kaggle FER2013 zip) has it taken as ROOT.
    Class folder names are mapped to the canonical labels (``anger`` -> ``angry``,
    ``happiness`` -> ``happy``, ids ``0``-``6``, ...); unknown names are rejected,
    all listed in one error. Split folders map to ``train``/``validation``/``test``
    (``Training``, ``PublicTest``, ``val``, ...); other split names are kept.
    Hidden files and ``__MACOSX`` are skipped (counted in
    ``report["hidden_files"]``); non-image files are skipped and listed in
    ``report["ignored_files"]``; folders without any file (an empty class
    folder) are listed in ``report["empty_folders"]``. Where zip members share
    a path, the last one is loaded (as unzipping leaves it) and the others are
    listed in ``report["duplicate_members"]``. Images are decoded by the rule in
    :mod:`fer_sklearn.datasets._decode` (grayscale, square, ``size`` pixels).

    Parameters
    ----------
    path : str or Path
        Folder or ``.zip`` file.
    size : int, default=48
        Side of the decoded images.
    on_error : {"raise", "skip"}, default="raise"
        What to do with an unreadable image: fail naming it, or skip it and
        list it in ``report["skipped"]``.
    cache : bool or path, default=True
        Decode-cache folder (see :mod:`fer_sklearn.datasets._cache`).
    return_X_y : bool, default=False

    Returns
    -------
    sklearn.utils.Bunch
        ``data`` (n, size, size) uint8, ``target`` labels, ``target_names``,
        ``frame`` (``split``, ``source`` = path relative to ROOT, ``folder``),
        ``DESCR``, ``report`` (conversions, skipped and ignored files, cache hit).

    Raises
    ------
    FileNotFoundError, ValueError
        ValueError also when ``on_error="skip"`` leaves no readable image.

    Examples
    --------
    >>> faces = load_image_folder("fer2013-train-validation.zip")  # doctest: +SKIP
    >>> faces.frame.split.value_counts()  # doctest: +SKIP
    """
    check_on_error(on_error)
    check_size(size)
    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(MISSING_PATH.format(path=path, cwd=Path.cwd()))
    data, target, frame, report, hit = load_or_build(
        "image_folder", path, {"size": size, "on_error": on_error}, cache,
        lambda: _scan(path, on_error, size),
    )
    report = {**report, "cache_hit": hit}
    check_some_read(path, len(data), report)  # also for what an older version cached
    descr = (f"Face images from {path} ({len(data)} images, "
             f"splits: {', '.join(sorted(set(frame['split'])))}).")
    return make_bunch(data, target, frame, descr, return_X_y, report=report)
