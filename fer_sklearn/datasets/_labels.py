"""Canonical expression labels, split names and the synonyms found in the wild."""

import difflib

import numpy as np
import pandas as pd

#: FER2013's classes in its canonical order (``emotion`` ids 0-6).
EMOTIONS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
#: Classes other face sets add (CK+, JAFFE-style posed sets), listed after EMOTIONS.
EXTRA_EMOTIONS = ("contempt",)

_LABEL_SYNONYMS = {
    "anger": "angry",
    "angry": "angry",
    "mad": "angry",
    "disgust": "disgust",
    "disgusted": "disgust",
    "fear": "fear",
    "fearful": "fear",
    "afraid": "fear",
    "scared": "fear",
    "happy": "happy",
    "happiness": "happy",
    "joy": "happy",
    "sad": "sad",
    "sadness": "sad",
    "surprise": "surprise",
    "surprised": "surprise",
    "neutral": "neutral",
    "neutrality": "neutral",
    "contempt": "contempt",
    "contemptuous": "contempt",
}
# FER2013 copies that name class folders by their emotion id.
_LABEL_SYNONYMS.update({str(i): name for i, name in enumerate(EMOTIONS)})

_SPLIT_SYNONYMS = {
    "training": "train",
    "train": "train",
    "publictest": "validation",
    "validation": "validation",
    "valid": "validation",
    "val": "validation",
    "privatetest": "test",
    "test": "test",
    "testing": "test",
}

UNKNOWN_LABELS = (
    "Unknown class name(s) {unknown} in {where}. Known names: {known} "
    "(synonyms such as 'anger', 'happiness', 'sadness' and the ids 0-6 are mapped). "
    "Rename the folders or labels, or remove those images.{hint}"
)


def canonical_label(name):
    """Return the canonical label for ``name``, or None when it is unknown."""
    return _LABEL_SYNONYMS.get(str(name).strip().lower())


def canonical_split(name):
    """Map a split name (``Training``, ``PublicTest``, ``val``, ...) to
    ``train``/``validation``/``test``; a blank or missing one (an empty CSV
    cell) to ``unassigned``; other names are kept, lower-cased."""
    if not isinstance(name, str) and pd.isna(name):
        return "unassigned"
    key = str(name).strip().lower()
    return _SPLIT_SYNONYMS.get(key, key) if key else "unassigned"


def map_labels(names, where):
    """Map an array of raw label names to canonical ones.

    Raises
    ------
    ValueError
        Naming every unknown label at once, with a suggestion where one is close.
    """
    names = np.asarray(names).astype(str)
    uniques, inverse = np.unique(names, return_inverse=True)
    mapped = [canonical_label(u) for u in uniques]
    unknown = [str(u) for u, m in zip(uniques, mapped) if m is None]
    if unknown:
        close = {
            u: difflib.get_close_matches(u.lower(), list(_LABEL_SYNONYMS), n=1)
            for u in unknown
        }
        hints = [f"'{u}' -> did you mean '{c[0]}'?" for u, c in close.items() if c]
        hint = (" " + " ".join(hints)) if hints else ""
        raise ValueError(
            UNKNOWN_LABELS.format(
                unknown=", ".join(repr(u) for u in unknown),
                where=where,
                known=", ".join(EMOTIONS + EXTRA_EMOTIONS),
                hint=hint,
            )
        )
    return np.asarray(mapped, dtype=object)[inverse].astype(str)


def present_target_names(target):
    """The labels present in ``target``, in canonical FER2013 order (extra classes last)."""
    present = set(np.unique(target).tolist())
    return [name for name in EMOTIONS + EXTRA_EMOTIONS if name in present]


def optional_column(columns, name):
    """``columns`` with the first one that spells ``name`` in another case
    (``Split``, ``usage``) renamed to it, unless ``name`` is there already: an
    optional column is otherwise ignored without a word."""
    columns = list(columns)
    if name not in columns:
        for i, c in enumerate(columns):
            if c.lower() == name.lower():
                columns[i] = name
                break
    return columns
