"""Decode image files to 48x48 grayscale uint8, by one documented rule.

* Colour images (RGB, RGBA, palette, CMYK, ...) become grayscale with Pillow's
  ``convert("L")`` (ITU-R 601-2 luma: L = 0.299 R + 0.587 G + 0.114 B).
* 16-bit and 32-bit grayscale (``I;16``, ``I``) are scaled to 8 bits
  (0..65535 -> 0..255, rounded).
* Non-square images are centre-cropped to a square; images of another size are
  resized to ``size x size`` with Pillow's antialiased bilinear filter.

Each conversion is counted in the loader's ``report``.
"""

import bz2
import contextlib
import csv
import gzip
import io
import lzma
import tarfile
import zipfile
import zlib
from collections import Counter

import numpy as np
import pandas as pd
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from .._checks import is_whole

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")

CORRUPT_IMAGE = (
    "Cannot decode image {source}: {reason}. Remove or replace the file, or pass "
    "on_error='skip' to skip unreadable images (they are listed in bunch.report)."
)
BAD_ON_ERROR = "on_error={value!r} is not one of 'raise', 'skip'."
NOTHING_READABLE = (
    "None of the {count} image(s) of {path} could be read, so on_error='skip' left nothing "
    "(e.g. {examples}); check the path, the CSV's root or the files themselves."
)
BAD_SIZE = "size must be a positive integer (the side of the square images); got {value!r}."


def check_on_error(on_error):
    if on_error not in ("raise", "skip"):
        raise ValueError(BAD_ON_ERROR.format(value=on_error))


def check_some_read(path, n_images, report):
    """Raise when ``on_error='skip'`` left no image at all: an empty dataset
    would otherwise fail later, far from its cause, or score nothing."""
    if n_images:
        return
    left_out = ([*report.get("missing_files", []), *report.get("conflicting_rows", []),
                 *(source for source, _ in report.get("skipped", []))])
    raise ValueError(NOTHING_READABLE.format(count=len(left_out), path=path,
                                             examples=left_out[:3]))


def check_size(size):
    if not is_whole(size):
        raise ValueError(BAD_SIZE.format(value=size))


def _to_gray(img, counts):
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        arr = np.asarray(img, dtype=np.float64)
        counts["high_bit_depth"] += 1
        arr = np.clip(np.round(arr * 255.0 / 65535.0), 0, 255).astype(np.uint8)
        return Image.fromarray(arr, mode="L")
    if img.mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        counts["high_bit_depth"] += 1
        return Image.fromarray(np.clip(np.round(arr), 0, 255).astype(np.uint8), mode="L")
    if img.mode != "L":
        counts["converted_to_gray"] += 1
        return img.convert("L")
    return img


def to_size(img, size, counts):
    w, h = img.size
    if w != h:
        side = min(w, h)
        left, top = (w - side) // 2, (h - side) // 2
        img = img.crop((left, top, left + side, top + side))
        counts["cropped_to_square"] += 1
    if img.size != (size, size):
        img = img.resize((size, size), Image.Resampling.BILINEAR)
        counts["resized"] += 1
    return img


def decode_image(raw, size, counts):
    """Decode one file's bytes to a ``(size, size)`` uint8 array.

    Parameters
    ----------
    raw : bytes
    size : int
    counts : collections.Counter
        Incremented per conversion applied.

    Raises
    ------
    ValueError
        The bytes are not a readable image (message without the file name).
    """
    try:
        with Image.open(io.BytesIO(raw)) as img:
            img.load()
            if img.getexif().get(ExifTags.Base.Orientation, 1) != 1:
                img = ImageOps.exif_transpose(img)  # a phone's rotated photo, as shown
                counts["exif_rotated"] += 1
            img = to_size(_to_gray(img, counts), size, counts)
            return np.asarray(img, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError,
            Image.DecompressionBombError) as exc:
        raise ValueError(str(exc) or type(exc).__name__) from exc


# What reading a zip (or a compressed file) can raise: RuntimeError for an
# encrypted member, NotImplementedError for an unknown compression, zlib's and
# lzma's errors for damaged compressed data.
ZIP_READ_ERRORS = (OSError, EOFError, zipfile.BadZipFile, RuntimeError, NotImplementedError,
                   zlib.error, lzma.LZMAError)


def _read(read):
    """The file's bytes; a file that cannot be read (a damaged zip member, a
    vanished file) is reported like an undecodable one."""
    try:
        return read()
    except ZIP_READ_ERRORS as exc:
        raise ValueError(f"cannot read the file ({type(exc).__name__}: {exc})") from exc


def decode_all(items, size, on_error, progress_desc=None):
    """Decode ``(source, read_bytes)`` pairs into one array.

    Parameters
    ----------
    items : list of (str, callable)
        Source name and a function returning the file's bytes.
    size : int
    on_error : {"raise", "skip"}
    progress_desc : str or None
        Shown by tqdm for long lists (only on a terminal).

    Returns
    -------
    data : ndarray of uint8, shape (n_ok, size, size)
    ok : ndarray of bool, shape (len(items),)
    skipped : list of [source, reason]
    counts : dict
    """
    from tqdm.auto import tqdm

    counts = Counter()
    data = np.empty((len(items), size, size), dtype=np.uint8)
    ok = np.zeros(len(items), dtype=bool)
    skipped = []
    iterator = tqdm(items, desc=progress_desc, unit="img", disable=None,
                    leave=False, mininterval=1.0) if len(items) > 2000 else items
    for i, (source, read) in enumerate(iterator):
        try:
            data[i] = decode_image(_read(read), size, counts)
            ok[i] = True
        except ValueError as exc:
            if on_error == "raise":
                raise ValueError(CORRUPT_IMAGE.format(source=source, reason=exc)) from exc
            skipped.append([source, str(exc)])
    return data[ok], ok, skipped, dict(counts)


UNREADABLE_CSV = "Cannot read {path} as CSV: {reason}."


def read_csv_or_explain(path, **kwargs):
    """``pandas.read_csv(path)``; a file that is not a readable CSV (binary, empty,
    malformed) raises ValueError naming it, with pandas' reason cut short."""
    try:
        return pd.read_csv(path, **kwargs)
    except FileNotFoundError:
        raise
    except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError,
            *ZIP_READ_ERRORS) as exc:  # also a damaged .gz/.xz/.zip
        raise unreadable_csv(path, exc) from exc


# The compressions pandas infers from a file name, tried in this order (as
# ``pandas.io.common.extension_to_compression``); any other name is plain text.
_COMPRESSIONS = ((".tar", "tar"), (".tar.gz", "tar"), (".tar.bz2", "tar"), (".tar.xz", "tar"),
                 (".gz", "gzip"), (".bz2", "bz2"), (".zip", "zip"), (".xz", "xz"),
                 (".zst", "zstd"))
_OPENERS = {"gzip": gzip.open, "bz2": bz2.open, "xz": lzma.open}


class _Unfollowed(Exception):
    """The file's text cannot be read as pandas read it (a tar that does not hold
    exactly one file, a zip without a member named, or zstd without the
    ``zstandard`` package)."""


def _compression(path):
    name = str(path).lower()
    return next((kind for ext, kind in _COMPRESSIONS if name.endswith(ext)), None)


@contextlib.contextmanager
def _open_text(path, member=None):
    """The text of ``path`` as ``pandas.read_csv`` reads it by default: ``member``
    of a zip; the one file of a ``.tar`` (also ``.tar.gz``, ``.tar.bz2``,
    ``.tar.xz``); a file compressed by its extension (``.gz``, ``.bz2``,
    ``.xz``, ``.zst``); or plain text. Raises :class:`_Unfollowed` where
    pandas' reading cannot be followed."""
    kind = "zip" if member is not None else _compression(path)
    with contextlib.ExitStack() as stack:
        if kind == "zip":
            if member is None:  # the loaders name the member they read
                raise _Unfollowed(path)
            zf = stack.enter_context(zipfile.ZipFile(path))
            raw = stack.enter_context(zf.open(member))
        elif kind == "tar":
            tf = stack.enter_context(tarfile.open(path, "r:*"))
            names = tf.getnames()
            raw = tf.extractfile(names[0]) if len(names) == 1 else None
            if raw is None:  # not one file (a folder, a link, several members)
                raise _Unfollowed(path)
            stack.enter_context(raw)
        elif kind == "zstd":
            try:
                import zstandard
            except ImportError:  # pandas cannot read it either
                raise _Unfollowed(path) from None
            raw = stack.enter_context(zstandard.open(path, "rb"))
        else:
            raw = stack.enter_context(_OPENERS.get(kind, open)(path, "rb"))
        yield stack.enter_context(io.TextIOWrapper(raw, encoding="utf-8-sig",
                                                   errors="replace"))


def _blank(line):
    """Whether pandas skips the line: nothing but spaces, tabs and line ends
    (other spaces, such as a form feed, are data)."""
    return not line.strip(" \t\r\n")


def _record_lines(fh):
    """The file line (from 1) each CSV record starts on, None for a line that
    pandas skips; quoted cells that span lines are followed."""
    last = ""  # the last line the reader took

    def lines():
        nonlocal last
        for line in fh:
            last = line
            yield line

    reader = csv.reader(lines())
    number = 1  # the line the next record starts on
    for _ in reader:
        start, number = number, reader.line_num + 1
        # a blank line, not a quoted blank cell, which is data
        yield None if number - start == 1 and _blank(last) else start


def _unquoted_record_lines(fh):
    """As :func:`_record_lines`, one record per line (where a cell is too long
    for the ``csv`` module)."""
    for number, line in enumerate(fh, start=1):
        yield None if _blank(line) else number


def csv_lines(path, rows, member=None):
    """File line numbers (from 1) of data rows ``rows`` (from 0) of a CSV read
    by pandas' defaults, which skip blank and whitespace-only lines: data row
    ``i`` sits on line ``i + 2`` only when no blank line, and no quoted cell
    spanning lines, comes before it. Read again only to name lines in an error,
    through the compression pandas infers from the name (see :func:`_open_text`);
    where that cannot be followed, rows are named as ``i + 2``. Where a cell is
    too long for the ``csv`` module, lines are counted as records."""
    wanted = sorted(set(int(r) for r in rows))
    if not wanted:
        return []
    for records in (_record_lines, _unquoted_record_lines):
        found = {}
        row = -1  # the header, the first record that is not blank
        try:
            with _open_text(path, member) as fh:
                for start in records(fh):
                    if start is None:
                        continue
                    if row >= 0 and row == wanted[len(found)]:
                        found[row] = start
                        if len(found) == len(wanted):
                            break
                    row += 1
            break
        except csv.Error:  # a cell over the csv module's size limit
            continue
        except Exception:  # it only names lines in an error being raised
            found = {}  # (not followed, or unreadable): i + 2
            break
    return [found.get(int(r), int(r) + 2) for r in rows]


def unreadable_csv(path, exc):
    """The ValueError saying that ``path`` cannot be read as CSV, with the
    reason ``exc`` cut short."""
    reason = str(exc) or type(exc).__name__
    if len(reason) > 300:
        reason = reason[:300] + " ..."
    return ValueError(UNREADABLE_CSV.format(path=path, reason=reason))
