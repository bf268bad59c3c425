"""Kaggle's ``fer2013.csv`` (``emotion,pixels,Usage``)."""

import math
import warnings
import zipfile
from collections import Counter
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd
from PIL import Image

from ._bunch import make_bunch
from ._cache import load_or_build
from ._decode import IMAGE_EXTENSIONS, ZIP_READ_ERRORS, csv_lines, to_size, unreadable_csv
from ._labels import EMOTIONS, canonical_split, optional_column
from .image_folder import MISSING_PATH, _is_hidden, _member_path

MISSING_COLUMNS = (
    "{path} lacks column(s) {missing}; a FER2013 CSV has 'emotion,pixels,Usage' "
    "(Usage optional). Columns found: {found}."
)
BAD_PIXEL_ROWS = (
    "{path}: {count} row(s) do not hold {expected} pixel values (a {side}x{side} "
    "image), e.g. line(s) {lines} with {lengths} values. Fix or drop those rows."
)
BAD_PIXEL_VALUES = (
    "{path}: pixel values must be integers 0-255; line(s) {lines} hold other values."
)
BAD_EMOTION = (
    "{path}: 'emotion' must be an id 0-6 ({names}); line(s) {lines} hold {values}."
)
NO_ROWS = "{path} has a header but no data rows."
FER_CSV_IS_A_FOLDER = (
    "{path} is a folder, not FER2013's CSV. For a folder of images "
    "(ROOT/<class>/<image> or ROOT/<split>/<class>/<image>) use load_image_folder."
)
ZIP_CSV_COUNT = "the zip holds {n} CSV file(s) {names}, not one"


def _lines(path, index):
    """The file lines of the first five data rows of ``index``, as text."""
    member = None
    if str(path).lower().endswith(".zip"):
        with zipfile.ZipFile(path) as zf:
            member = _members(zf)[0][0]
    return ", ".join(map(str, csv_lines(path, list(index[:5]), member)))


def zip_members(path):
    """The visible ``.csv`` and image members of the zip ``path`` (hidden files
    and macOS ``__MACOSX`` copies left out), as two lists."""
    with zipfile.ZipFile(path) as zf:
        return _members(zf)


def _members(zf):
    # Names as stored, to open them; a name stored twice (a zip appended to)
    # is one file, the last, as zipfile opens it.
    names = [n for n in dict.fromkeys(zf.namelist())
             if not (path := _member_path(n)).endswith("/")
             and not _is_hidden(PurePosixPath(path).parts)]
    return ([n for n in names if n.lower().endswith(".csv")],
            [n for n in names if n.lower().endswith(IMAGE_EXTENSIONS)])


def _read_table(path):
    if not str(path).lower().endswith(".zip"):
        return pd.read_csv(path, dtype={"pixels": str}, compression="infer")
    with zipfile.ZipFile(path) as zf:
        csvs, _ = _members(zf)
        if len(csvs) != 1:
            raise ValueError(ZIP_CSV_COUNT.format(path=path, n=len(csvs), names=csvs[:5]))
        with zf.open(csvs[0]) as fh:
            return pd.read_csv(fh, dtype={"pixels": str})


def _parse(path):
    try:
        df = _read_table(path)
    except (*ZIP_READ_ERRORS, ValueError) as exc:  # ValueError: pandas' parse errors too
        raise unreadable_csv(path, exc) from exc
    df.columns = optional_column([str(c).strip() for c in df.columns], "Usage")
    missing = [c for c in ("emotion", "pixels") if c not in df.columns]
    if missing:
        raise ValueError(MISSING_COLUMNS.format(path=path, missing=missing,
                                                found=list(df.columns)))
    if not len(df):
        raise ValueError(NO_ROWS.format(path=path))
    pixels = df["pixels"].fillna("").str.strip()
    lengths = pixels.str.split().str.len().to_numpy()
    # The image size: the most common square row length (48x48 on a tie; 48x48
    # when no row holds a square number of values).
    counts = np.bincount(lengths)
    squares = [n for n in np.flatnonzero(counts) if n > 0 and math.isqrt(n) ** 2 == n]
    expected = int(max(squares, key=lambda n: (counts[n], n == 2304), default=2304))
    side = math.isqrt(expected)
    bad = np.flatnonzero(lengths != expected)
    if len(bad):
        raise ValueError(BAD_PIXEL_ROWS.format(
            path=path, count=len(bad), expected=expected, side=side,
            lines=_lines(path, bad), lengths=lengths[bad[:5]].tolist()))
    with warnings.catch_warnings():
        # fromstring parses in C (6x faster than str.split); a malformed token
        # stops it early with a DeprecationWarning, caught as an error here.
        warnings.simplefilter("error")
        try:
            flat = np.fromstring(" ".join(pixels), dtype=np.int32, sep=" ")
        except (ValueError, DeprecationWarning):
            flat = None
    if (flat is None or flat.size != len(df) * expected
            or flat.min(initial=0) < 0 or flat.max(initial=0) > 255):
        bad_rows = [i for i, row in enumerate(pixels) if not all(
            t.isdigit() and int(t) <= 255 for t in row.split())]
        raise ValueError(BAD_PIXEL_VALUES.format(path=path, lines=_lines(path, bad_rows)))
    data = flat.astype(np.uint8).reshape(len(df), side, side)

    emotion = pd.to_numeric(df["emotion"], errors="coerce")
    bad = np.flatnonzero(~emotion.isin(range(len(EMOTIONS))).to_numpy())
    if len(bad):
        raise ValueError(BAD_EMOTION.format(
            path=path, names=", ".join(f"{i}={n}" for i, n in enumerate(EMOTIONS)),
            lines=_lines(path, bad), values=df["emotion"].iloc[bad[:5]].tolist()))
    target = np.asarray(EMOTIONS)[emotion.to_numpy(dtype=int)]
    usage = df["Usage"].fillna("").astype(str) if "Usage" in df.columns else pd.Series(
        ["unassigned"] * len(df))
    frame = pd.DataFrame({
        "split": [canonical_split(u) for u in usage],
        "source": np.arange(len(df)).astype(str),
        "usage": usage.to_numpy(),
    })
    report = {"n_images": len(df), "conversions": {}}
    if side != 48:
        counts = Counter()
        data = np.stack([np.asarray(to_size(Image.fromarray(im), 48, counts))
                         for im in data])
        report["conversions"] = dict(counts)
    return data, target, frame, report


def load_fer2013_csv(path, *, cache=True, return_X_y=False):
    """Load Kaggle's FER2013 CSV (``emotion,pixels,Usage``).

    Plain, ``.gz``, ``.xz``, ``.bz2`` or single-file ``.zip`` (by extension).
    ``emotion`` ids 0-6 become the canonical labels; ``Usage`` becomes ``split``
    (``Training`` -> ``train``, ``PublicTest`` -> ``validation``,
    ``PrivateTest`` -> ``test``; the raw value stays in ``frame["usage"]``;
    a blank Usage, or no Usage column, is ``unassigned``). Rows must all hold the
    same square number of pixels; sizes other than 48x48 are resized.

    Parameters
    ----------
    path : str or Path
    cache : bool or path, default=True
        Decode cache (see :mod:`fer_sklearn.datasets._cache`).
    return_X_y : bool, default=False

    Returns
    -------
    sklearn.utils.Bunch
        ``frame["source"]`` is the data row number (0-based), for joining
        attributes with ``attach_attributes(..., on="row")``.

    Raises
    ------
    FileNotFoundError, ValueError
        Naming the file lines at fault.

    Examples
    --------
    >>> fer = load_fer2013_csv("fer2013.csv.gz")  # doctest: +SKIP
    """
    path = Path(path).expanduser()
    if path.is_dir():
        raise ValueError(FER_CSV_IS_A_FOLDER.format(path=path))
    if not path.is_file():
        raise FileNotFoundError(MISSING_PATH.format(path=path, cwd=Path.cwd()))
    data, target, frame, report, hit = load_or_build(
        "fer2013_csv", path, {}, cache, lambda: _parse(path))
    report = {**report, "cache_hit": hit}
    descr = f"FER2013 CSV {path} ({len(data)} images)."
    return make_bunch(data, target, frame, descr, return_X_y, report=report)
