"""Join sensitive attributes (age group, gender, ...) onto a loaded dataset."""

from pathlib import Path, PurePosixPath

import pandas as pd
from sklearn.utils import Bunch

from ._decode import read_csv_or_explain
from .image_folder import MISSING_PATH

NO_KEY_COLUMN = "{csv} has no column {on} to join on; its columns: {found}."
DUPLICATE_KEYS = "{csv} lists {count} key(s) more than once, e.g. {examples}; keep one row each."
NO_MATCH = (
    "No row of {csv} matched an image: its {on!r} values look like {csv_examples}, "
    "the images' sources like {image_examples}. Join on the same kind of key "
    "(paths relative to the dataset root, or row ids with on='row')."
)
RESERVED_COLUMNS = "{csv} has column(s) {cols} that the dataset's frame already has; rename them."


def _norm(key):
    key = str(key).strip().replace("\\", "/")
    return key[2:] if key.startswith("./") else key


def _strip_first(key):
    parts = PurePosixPath(key).parts
    return "/".join(parts[1:]) if len(parts) > 1 else key


def attach_attributes(bunch, csv, on="auto"):
    """Return a copy of ``bunch`` with the attribute columns of ``csv`` in its frame.

    Rows are matched on ``csv[on]`` == ``bunch.frame["source"]`` (paths relative to
    the dataset root for image folders, data row numbers for the FER2013 CSV).
    When nothing matches, a leading folder on either side (``fer2013/train/...``
    vs ``train/...``) is ignored; a key that then names two images or two rows
    matches none of them. Images without a row, and blank cells, get missing
    values (fairness reports show them as an explicit "unknown" group); a cell
    reading ``NA``, ``None`` or ``null`` is a group of that name.

    Parameters
    ----------
    bunch : sklearn.utils.Bunch
        A loader's result.
    csv : str, Path or pandas.DataFrame
        The attributes, one row per image.
    on : str, default="auto"
        Key column of ``csv``. ``auto``: ``path`` where ``csv`` has that
        column, else ``row`` (the FER2013 CSV's data row numbers).

    Returns
    -------
    sklearn.utils.Bunch
        With ``attributes`` (the new column names) and ``report["attributes"]``:
        ``matched``, ``unmatched_images``, ``unused_rows``, ``file`` and
        ``ambiguous_images`` (left unmatched: without their leading folder two
        images, or two rows, share a key).

    Raises
    ------
    FileNotFoundError, ValueError
        Missing key column, duplicate keys, no match at all, clashing columns.

    Examples
    --------
    >>> faces = attach_attributes(faces, "demographics.csv")  # doctest: +SKIP
    >>> faces.report["attributes"]["matched"]  # doctest: +SKIP
    32297
    """
    name = "the attribute table" if isinstance(csv, pd.DataFrame) else str(csv)
    if isinstance(csv, pd.DataFrame):
        table = csv.copy()
    else:
        if not Path(csv).is_file():
            raise FileNotFoundError(MISSING_PATH.format(path=csv, cwd=Path.cwd()))
        # Only a blank cell is missing: "NA", "None" or "null" may name a group.
        table = read_csv_or_explain(csv, dtype=str, keep_default_na=False, na_values=[""])
    table.columns = [str(c).strip() for c in table.columns]
    if on == "auto":
        on = next((c for c in ("path", "row") if c in table.columns), None)
        if on is None:
            raise ValueError(NO_KEY_COLUMN.format(csv=name, on="'path' or 'row'",
                                                  found=list(table.columns)))
    if on not in table.columns:
        raise ValueError(NO_KEY_COLUMN.format(csv=name, on=repr(on), found=list(table.columns)))
    blank = table[on].isna() | (table[on].astype(str).str.strip() == "")
    table = table[~blank].reset_index(drop=True)  # rows without a key name no image
    keys = table[on].map(_norm)
    dup = keys[keys.duplicated()].unique()
    if len(dup):
        raise ValueError(DUPLICATE_KEYS.format(csv=name, count=len(dup),
                                               examples=list(dup[:3])))
    columns = [c for c in table.columns if c != on]
    clash = [c for c in columns if c in bunch.frame.columns]
    if clash:
        raise ValueError(RESERVED_COLUMNS.format(csv=name, cols=clash))
    sources = bunch.frame["source"].map(_norm)
    for key_fn, src_fn in ((lambda k: k, lambda s: s), (_strip_first, lambda s: s),
                           (lambda k: k, _strip_first)):
        table_keys, image_keys = keys.map(key_fn), sources.map(src_fn)
        # Without its leading folder a key can name two rows or two images
        # (train/happy/0.png and test/happy/0.png): those stay unmatched. (One
        # image listed twice by a labels CSV is still one image.)
        distinct = pd.DataFrame({"source": sources, "key": image_keys}).drop_duplicates()
        shared = (set(table_keys[table_keys.duplicated()])
                  | set(distinct["key"][distinct["key"].duplicated()]))
        usable = ~table_keys.isin(shared)
        matched = image_keys.isin(set(table_keys[usable])) & ~image_keys.isin(shared)
        if matched.any():
            break
    else:
        raise ValueError(NO_MATCH.format(csv=name, on=on,
                                         csv_examples=list(keys[:2]),
                                         image_examples=list(sources[:2])))
    lookup = table.loc[usable.to_numpy(), columns].set_axis(table_keys[usable].to_numpy())
    values = lookup.reindex(image_keys.where(matched).to_numpy())
    frame = pd.concat([bunch.frame.reset_index(drop=True),
                       values.reset_index(drop=True)], axis=1)
    report = dict(bunch.get("report", {}))
    report["attributes"] = {
        "file": name,
        "matched": int(matched.sum()),
        "unmatched_images": int((~matched).sum()),
        "unused_rows": int((~table_keys.isin(set(image_keys[matched]))).sum()
                           + blank.sum()),
        "ambiguous_images": int((image_keys.isin(shared)
                                 & image_keys.isin(set(table_keys))).sum()),
    }
    out = Bunch(**{**bunch, "frame": frame, "report": report})
    out["attributes"] = list(bunch.get("attributes", [])) + columns
    return out
