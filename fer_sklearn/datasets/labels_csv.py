"""``image_path,label`` CSVs, as the original study recorded its data."""

import os
import zipfile
from pathlib import Path, PurePath, PureWindowsPath

import numpy as np
import pandas as pd

from ._bunch import make_bunch
from ._cache import load_or_build
from ._decode import (
    check_on_error,
    check_size,
    check_some_read,
    csv_lines,
    decode_all,
    read_csv_or_explain,
)
from ._labels import canonical_split, map_labels, optional_column
from .image_folder import MISSING_PATH

LABELS_MISSING_COLUMNS = (
    "{path} lacks column(s) {missing}; a labels CSV has 'image_path,label' "
    "(and optionally 'split'). Columns found: {found}."
)
MISSING_IMAGES = (
    "{count} of {total} image path(s) in {path} do not exist, e.g. {examples}. "
    "{hint}Or pass on_error='skip' to skip them (they are listed in bunch.report)."
)
REROOT_HINT = (
    "Absolute paths recorded on another machine are re-rooted by passing "
    "root=<folder that holds what {prefix} held> (in the benchmark: --dataset-root). "
)
MISSING_ROOT = (
    "root {root} (the folder the image paths of {path} are read from) is not a folder "
    "that exists."
)
CSV_IS_A_FOLDER = (
    "{path} is a folder, not a labels CSV. For a folder of images "
    "(ROOT/<class>/<image> or ROOT/<split>/<class>/<image>) use load_image_folder "
    "(in the benchmark: --dataset folder:{path})."
)
CONFLICTING_ROWS = (
    "{count} image(s) are listed more than once in {path} with different labels or "
    "splits, e.g. {examples}: one image cannot be two expressions, nor in training and "
    "test at once. Fix the CSV, or pass on_error='skip' to leave those images out (they "
    "are listed in bunch.report['conflicting_rows'])."
)
LABELS_NO_ROWS = "{path} has a header but no rows: it lists no images."
BLANK_CELLS = (
    "{path}: {count} row(s) have a blank {columns} cell, e.g. line(s) {lines}; every row "
    "names an image and its label. Fill in or drop those rows."
)
CSV_IS_A_ZIP = (
    "{path} is a zip archive, not a labels CSV. For a zip of images use load_image_folder "
    "(in the benchmark: --dataset folder:{path}); for a zipped FER2013 CSV, "
    "load_fer2013_csv (--dataset fer2013:{path})."
)


def _is_absolute(path):
    """Absolute here or on Windows (``C:/...``, ``//server/share/...``), where a
    CSV may have been written."""
    return PurePath(path).is_absolute() or PureWindowsPath(path).is_absolute()


def _common_folder(paths):
    """The deepest folder holding every path, or None for none or mixed styles."""
    if not paths:
        return None
    try:
        return os.path.commonpath([os.path.dirname(p) for p in paths])
    except ValueError:  # POSIX and Windows paths mixed: nothing to re-root by
        return None


def _resolve(paths, base, root):
    """Absolute paths: replace their common folder by ``root``; relative: from base.
    Surrounding spaces are dropped and backslashes read as folder separators."""
    paths = [str(p).strip().replace("\\", "/") for p in paths]
    flags = [_is_absolute(p) for p in paths]
    # The folder to re-root: common to every absolute path, or to those missing
    # here (paths that exist here are read as they are, and may sit elsewhere),
    # whichever finds more of the missing files under ``root``.
    absolute = [p for p, a in zip(paths, flags) if a]
    missing = [p for p in absolute if not Path(p).exists()]
    candidates = [c for c in dict.fromkeys([_common_folder(absolute), _common_folder(missing)])
                  if c is not None]
    prefix = candidates[0] if candidates else None
    if root is not None and len(candidates) > 1:
        prefix = max(candidates, key=lambda c: sum(
            (Path(root) / os.path.relpath(p, c)).exists() for p in missing))
    out = []
    for p, a in zip(paths, flags):
        if a:
            if root is not None and prefix is not None and not Path(p).exists():
                out.append(Path(root) / os.path.relpath(p, prefix))
            else:
                out.append(Path(p))
        else:
            out.append(Path(root if root is not None else base) / p)
    return out, prefix


def _table(path, root):
    """The CSV's rows, their canonical labels, and the image file of each row."""
    if zipfile.is_zipfile(path):
        raise ValueError(CSV_IS_A_ZIP.format(path=path))
    df = read_csv_or_explain(path, dtype=str)
    df.columns = optional_column([str(c).strip() for c in df.columns], "split")
    missing = [c for c in ("image_path", "label") if c not in df.columns]
    if missing:
        raise ValueError(LABELS_MISSING_COLUMNS.format(path=path, missing=missing,
                                                       found=list(df.columns)))
    if df.empty:
        raise ValueError(LABELS_NO_ROWS.format(path=path))
    blank = {c: df[c].fillna("").str.strip().eq("").to_numpy() for c in ("image_path", "label")}
    rows = np.flatnonzero(blank["image_path"] | blank["label"])
    if len(rows):
        # A blank path read as the CSV's folder (a "missing image"), a blank
        # label as an unknown one, neither saying where.
        raise ValueError(BLANK_CELLS.format(
            path=path, count=len(rows),
            columns=" or ".join(c for c in blank if blank[c].any()),
            lines=", ".join(map(str, csv_lines(path, rows[:5])))))
    target = map_labels(df["label"].fillna(""), where=f"the 'label' column of {path}")
    files, prefix = _resolve(df["image_path"].fillna(""), path.parent, root)
    return df, target, files, prefix


def _conflicting(df, target, files):
    """Rows whose image is listed again with another label or split."""
    split = df["split"].map(canonical_split) if "split" in df.columns else ""
    rows = pd.DataFrame({"file": [str(f) for f in files], "label": np.asarray(target),
                         "split": split})
    variants = rows.drop_duplicates().groupby("file").size()
    return rows["file"].isin(variants.index[variants > 1]).to_numpy()


def _read(path, root, on_error, size, table):
    df, target, files, prefix = table
    conflicting = _conflicting(df, target, files)
    named = df["image_path"].astype(str).to_numpy()
    if conflicting.any() and on_error == "raise":
        first = {}  # each conflicting image, as the CSV first names it
        for i in np.flatnonzero(conflicting):
            first.setdefault(str(files[i]), named[i])
        examples = list(first.values())
        raise ValueError(CONFLICTING_ROWS.format(count=len(examples), path=path,
                                                 examples=examples[:3]))
    exists = np.array([f.is_file() for f in files], dtype=bool) & ~conflicting
    report = {"missing_files": [named[i] for i in np.flatnonzero(~exists & ~conflicting)],
              "conflicting_rows": named[conflicting].tolist()}
    if not exists.all() and on_error == "raise":
        hint = REROOT_HINT.format(prefix=prefix) if prefix and root is None else ""
        raise FileNotFoundError(MISSING_IMAGES.format(
            count=int((~exists).sum()), total=len(files), path=path,
            examples=[str(files[i]) for i in np.flatnonzero(~exists)[:3]], hint=hint))
    keep = np.flatnonzero(exists)
    items = [(str(df["image_path"][i]), files[i].read_bytes) for i in keep]
    data, ok, skipped, counts = decode_all(items, size, on_error,
                                           progress_desc=f"decoding {path.name}")
    keep = keep[ok]
    split = (df["split"].map(canonical_split) if "split" in df.columns
             else pd.Series(["unassigned"] * len(df)))
    frame = pd.DataFrame({
        "split": split.to_numpy()[keep].astype(str),
        "source": df["image_path"].to_numpy()[keep].astype(str),
    })
    report.update(skipped=skipped, conversions=counts, n_images=len(keep))
    return data, target[keep], frame, report


def load_labels_csv(path, root=None, *, size=48, on_error="raise", cache=True,
                    return_X_y=False):
    """Load images listed in an ``image_path,label`` CSV.

    Relative paths are read from ``root`` (default: the CSV's folder). Absolute
    paths that exist are read as they are; absolute paths that do not exist
    (recorded on another machine, e.g. ``/content/drive/...``) are re-rooted
    when ``root`` is given: their longest common folder is replaced by ``root``.
    An optional ``split`` column becomes ``frame["split"]`` (a blank cell:
    ``unassigned``). The decode cache keys on the CSV, the resolved ``root`` and
    the status (size, mtime, ctime) of every listed image, so a changed image is decoded again.

    Parameters
    ----------
    path : str or Path
        The CSV file.
    root : str or Path or None
        Folder the paths are relative to, or that replaces their common prefix.
    size : int, default=48
        Side of the decoded images.
    on_error : {"raise", "skip"}, default="raise"
        Missing or unreadable images, and images listed more than once with
        different labels or splits: fail naming them, or skip and list them in
        ``report["missing_files"]`` / ``report["skipped"]`` /
        ``report["conflicting_rows"]``.
    cache : bool or path, default=True
    return_X_y : bool, default=False

    Returns
    -------
    sklearn.utils.Bunch
        ``frame["source"]`` is the path as written in the CSV.

    Raises
    ------
    FileNotFoundError
        The CSV or ``root``, or (with ``on_error="raise"``) a listed image,
        does not exist.
    ValueError
        ``path`` is a folder, a column is missing, the CSV lists no images, a
        row has a blank path or label (its file line is named), a label is
        unknown, (with ``on_error="raise"``) an image is listed with
        two labels or splits, ``size`` is not a positive integer, an image cannot
        be decoded, or (with ``on_error="skip"``) no listed image could be read.

    Examples
    --------
    >>> data = load_labels_csv("labels.csv", root="/data/fer2013")  # doctest: +SKIP
    """
    check_on_error(on_error)
    check_size(size)
    path = Path(path).expanduser()
    if path.is_dir():
        raise ValueError(CSV_IS_A_FOLDER.format(path=path))
    if not path.is_file():
        raise FileNotFoundError(MISSING_PATH.format(path=path, cwd=Path.cwd()))
    root = None if root is None else Path(root).expanduser()
    if root is not None and not root.is_dir():
        raise FileNotFoundError(MISSING_ROOT.format(root=root, path=path))
    table = _table(path, root)
    resolved_root = None if root is None else str(root.resolve())
    data, target, frame, report, hit = load_or_build(
        "labels_csv", path, {"root": resolved_root, "size": size, "on_error": on_error},
        cache, lambda: _read(path, root, on_error, size, table), files=table[2])
    report = {**report, "cache_hit": hit}
    check_some_read(path, len(data), report)  # also for what an older version cached
    descr = f"Images listed in {path} ({len(data)} images)."
    return make_bunch(data, target, frame, descr, return_X_y, report=report)
