"""Stage ``data``: load the dataset, fix the train/test protocol, summarise it."""

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from fer_sklearn.datasets import (
    attach_attributes,
    load_fer2013_csv,
    load_image_folder,
    load_labels_csv,
    make_synthetic_faces,
)
from fer_sklearn.datasets._labels import present_target_names
from fer_sklearn.datasets.fer2013_csv import zip_members
from fer_sklearn.reporting.markdown import register_section

from ..progress import log
from . import register_stage

NO_TRAIN_SPLIT = (
    "{dataset} has splits {splits} but no 'train' split to fit on; name the "
    "training folder 'train' (or 'Training'), or drop the split folders."
)
TOO_SMALL = "{dataset} has only {n} images; the benchmark needs at least 20."
ONE_CLASS = ("{dataset}: every training image is labelled {label!r}; a classifier needs at "
             "least two classes to learn from.")
CANNOT_SPLIT = ("{dataset}: {n} images of {k} classes cannot be split into train and test "
                "by class: {reason}")
TOO_FEW_TO_SPLIT = (
    "{dataset}: class(es) {classes} have a single image{where}, too few for a stratified "
    "train/test split (each class needs 2); add images, drop the class, or give the data "
    "its own train/test split."
)

@dataclass
class DataSplit:
    """The arrays every later stage uses."""

    X_train: np.ndarray
    y_train: np.ndarray
    frame_train: pd.DataFrame
    X_test: np.ndarray
    y_test: np.ndarray
    frame_test: pd.DataFrame
    attributes: list
    protocol: str
    descr: str
    masks_test: Optional[dict] = None
    load_report: Optional[dict] = None
    unused_splits: Optional[dict] = None


FIXED_SIZE = ("{dataset} holds 48x48 faces (the FER2013 CSV) and the models take "
              "{size}x{size} ones; score them on a dataset of image files, which are "
              "resized when loaded.")


def load_bunch(config, size=None):
    """The config's dataset as a Bunch (``data``, ``target``, ``frame``), by its kind.

    ``size``: the side image files are decoded to (default 48); synthetic faces
    keep the size their options give.
    """
    kind, path = config.dataset_kind, config.dataset_path
    if kind == "synthetic":
        options = dict(config.synthetic)
        options.setdefault("random_state", config.seed)
        return make_synthetic_faces(return_masks=True, **options)
    files = {"size": size} if size is not None else {}
    if kind == "fer2013":
        if fer2013_is_csv(path):
            if size not in (None, 48):
                raise ValueError(FIXED_SIZE.format(dataset=config.dataset, size=size))
            return load_fer2013_csv(path)
        return load_image_folder(path, **files)
    if kind == "folder":
        return load_image_folder(path, **files)
    return load_labels_csv(path, root=config.dataset_root, **files)


def fer2013_is_csv(path):
    """Whether a ``fer2013:`` path is FER2013's CSV (plain, compressed or zipped),
    not image files (a folder, or a zip of them)."""
    name = Path(path).name.lower()
    return ".csv" in name or (name.endswith(".zip") and _zip_holds_csv(path))


def _zip_holds_csv(path):
    """Whether a zip is FER2013's CSV zipped (CSV files and no images), not a
    folder of images (which may carry a CSV of its own, such as attributes)."""
    import zipfile

    try:
        csvs, images = zip_members(path)
    except (OSError, zipfile.BadZipFile):
        return False  # the folder loader reports what is wrong with it
    return bool(csvs) and not images


def _stratified_split(idx, y, config, where):
    """``idx`` split into train and test, stratified by ``y``, seeded."""
    labels, counts = np.unique(y[idx], return_counts=True)
    single = labels[counts < 2].tolist()
    if single:
        raise ValueError(TOO_FEW_TO_SPLIT.format(dataset=config.dataset, classes=single,
                                                 where=where))
    try:
        return train_test_split(idx, test_size=config.test_size, stratify=y[idx],
                                random_state=config.seed)
    except ValueError as exc:  # e.g. fewer test images than classes
        raise ValueError(CANNOT_SPLIT.format(dataset=config.dataset, n=len(idx),
                                             k=len(labels), reason=exc)) from exc


def stratified_cap(idx, y, cap, seed):
    """At most ``cap`` of ``idx``, stratified by ``y`` (a plain seeded sample
    where a class is too rare to stratify), sorted."""
    if cap is None or len(idx) <= cap:
        return idx
    try:
        keep, _ = train_test_split(idx, train_size=cap, stratify=y[idx], random_state=seed)
    except ValueError:  # a class with a single image
        keep = np.random.default_rng(seed).choice(idx, cap, replace=False)
    return np.sort(keep)


def training_rows(config, y_train, model):
    """The rows of the training split that ``model`` is fitted on: all of them,
    or the stratified cap its recipe's ``max_train`` sets."""
    return stratified_cap(np.arange(len(y_train)), y_train,
                          config.recipe(model)["max_train"], config.seed)


def load(config):
    """Load ``config.dataset`` and split it into train and test.

    The dataset's own splits decide the protocol when it has them: ``test`` is
    the test split when present (``validation`` then joins training, since
    model selection is done by cross-validation on training data); otherwise
    ``validation`` is the test split. A dataset without splits is split
    stratified by label, seeded, ``config.test_size`` to test. Images the
    protocol leaves out (a split other than train/validation/test, e.g. ``dev``,
    or no split beside images that have one) are counted by split in
    ``DataSplit.unused_splits`` and reported in the loading notes.

    Returns
    -------
    DataSplit
    """
    bunch = load_bunch(config)
    if config.attributes:
        bunch = attach_attributes(bunch, config.attributes)
    n = len(bunch.data)
    if n < 20:
        raise ValueError(TOO_SMALL.format(dataset=config.dataset, n=n))
    split = bunch.frame["split"].astype(str).to_numpy()
    splits = sorted(set(split))
    y = np.asarray(bunch.target)
    if set(splits) <= {"unassigned", ""}:
        idx = np.arange(n)
        train, test = _stratified_split(idx, y, config, "")
        protocol = (f"no split in the data: stratified {1 - config.test_size:.0%} / "
                    f"{config.test_size:.0%} train/test split, seed {config.seed}")
    elif "train" not in splits:
        raise ValueError(NO_TRAIN_SPLIT.format(dataset=config.dataset, splits=splits))
    elif "test" in splits:
        train = np.flatnonzero(np.isin(split, ["train", "validation"]))
        test = np.flatnonzero(split == "test")
        protocol = "the dataset's own split: train (+ validation) to fit, test to report"
    elif "validation" in splits:
        train = np.flatnonzero(split == "train")
        test = np.flatnonzero(split == "validation")
        protocol = ("the dataset's own split: train to fit (and to select on, by "
                    "cross-validation, where a grid is searched), "
                    "validation to report (never used for selection)")
    else:
        idx = np.flatnonzero(split == "train")
        train, test = _stratified_split(idx, y, config, " in the train split")
        protocol = f"train split only: stratified {config.test_size:.0%} of it held out as test"
    train, test = np.sort(train), np.sort(test)
    if len(np.unique(y[train])) < 2:
        raise ValueError(ONE_CLASS.format(dataset=config.dataset, label=str(y[train][0])))
    unused = np.setdiff1d(np.arange(n), np.concatenate([train, test]))
    if config.max_train is not None and len(train) > config.max_train:
        train = stratified_cap(train, y, config.max_train, config.seed)
        protocol += f"; training capped at {config.max_train} images (stratified)"
    frame = bunch.frame
    # Sensitive attributes are those the dataset declares (the synthetic
    # groups, or columns joined by --attributes); other frame columns describe
    # files, not people.
    attributes = list(bunch.get("attributes", []))
    masks = getattr(bunch, "masks", None)
    return DataSplit(
        X_train=bunch.data[train], y_train=y[train],
        frame_train=frame.iloc[train].reset_index(drop=True),
        X_test=bunch.data[test], y_test=y[test],
        frame_test=frame.iloc[test].reset_index(drop=True),
        attributes=attributes, protocol=protocol, descr=bunch.DESCR,
        masks_test=None if masks is None else {k: v[test] for k, v in masks.items()},
        load_report=dict(bunch.get("report", {})),
        unused_splits=_counts(split[unused]) if len(unused) else None,
    )


def class_order(*targets):
    """Labels present in ``targets``: FER2013's order, then any others sorted."""
    labels = np.unique(np.concatenate([np.asarray(t).astype(str) for t in targets])).tolist()
    known = present_target_names(labels)
    return known + sorted(set(labels) - set(known))


def _row_hashes(X):
    return [hashlib.blake2b(row.tobytes(), digest_size=16).digest()
            for row in X.reshape(len(X), -1)]


def duplicates_across(X_train, X_test):
    """Indices of test images whose pixels equal some training image's."""
    seen = set(_row_hashes(X_train))
    return [i for i, h in enumerate(_row_hashes(X_test)) if h in seen]


_EXAMPLES = 5


def loading_notes(d):
    """What loading skipped, converted or found suspicious, for the report and log."""
    report = d.load_report or {}
    notes = {}
    for key in ("skipped", "missing_files", "ignored_files", "duplicate_members"):
        items = report.get(key) or []
        if items:
            notes[key] = {"count": len(items), "examples": [
                item[0] if isinstance(item, (list, tuple)) else item
                for item in items[:_EXAMPLES]]}
    if report.get("hidden_files"):
        notes["hidden_files"] = {"count": int(report["hidden_files"])}
    if report.get("empty_folders"):
        notes["empty_folders"] = {"count": len(report["empty_folders"]),
                                  "examples": report["empty_folders"][:_EXAMPLES]}
    conversions = {k: int(v) for k, v in (report.get("conversions") or {}).items() if v}
    if conversions:
        notes["conversions"] = conversions
    if report.get("attributes"):
        notes["attributes"] = report["attributes"]
    if d.unused_splits:
        notes["unused_splits"] = {"count": sum(d.unused_splits.values()),
                                  "splits": dict(d.unused_splits)}
    dup = duplicates_across(d.X_train, d.X_test)
    if dup:
        sources = d.frame_test["source"].astype(str).to_numpy() if (
            "source" in d.frame_test) else np.arange(len(d.y_test)).astype(str)
        notes["test_duplicates_of_train"] = {"count": len(dup), "examples": [
            str(sources[i]) for i in dup[:_EXAMPLES]]}
    return notes


NOTE_TEXT = {
    "skipped": "{count} unreadable image(s) skipped, e.g. {examples}",
    "missing_files": "{count} listed file(s) missing, skipped, e.g. {examples}",
    "ignored_files": "{count} non-image file(s) ignored, e.g. {examples}",
    "duplicate_members": ("{count} zip member(s) passed over, each for a later member of "
                          "the same path (the one unzipping would leave), e.g. {examples}"),
    "hidden_files": "{count} hidden file(s) (.DS_Store, __MACOSX, ...) ignored",
    "empty_folders": "{count} empty folder(s), e.g. {examples}: a class there has no images",
    "test_duplicates_of_train": ("{count} test image(s) are pixel-identical to a training "
                                 "image (leakage: they inflate test accuracy), e.g. {examples}"),
}


UNUSED_SPLITS = ("{count} image(s) left out, in splits the protocol does not use "
                 "({splits}): name their split train, validation or test to use them")


def describe_notes(notes):
    """One sentence per loading note (``conversions`` and ``attributes`` included)."""
    lines = []
    for key, text in NOTE_TEXT.items():
        if key in notes:
            lines.append(text.format(**{"examples": "", **notes[key]}))
    if "conversions" in notes:
        parts = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in notes["conversions"].items())
        lines.append(f"images converted by the loader's rule (turned upright by their EXIF "
                     f"orientation, grayscale by ITU-R 601 luma, 16-bit scaled to 8, "
                     f"centre-cropped to square, resized): {parts}")
    unused = notes.get("unused_splits")
    if unused:
        splits = ", ".join(f"{name} {count}" for name, count in unused["splits"].items())
        lines.append(UNUSED_SPLITS.format(count=unused["count"], splits=splits))
    att = notes.get("attributes")
    if att and (att.get("unmatched_images") or att.get("unused_rows")):
        lines.append(f"attributes from {att['file']}: {att['matched']} image(s) matched, "
                     f"{att['unmatched_images']} without a row (group 'unknown'), "
                     f"{att['unused_rows']} row(s) matching no image"
                     + (f"; {att['ambiguous_images']} image(s) left unmatched because, "
                        "without their leading folder, their key names more than one "
                        "image or row" if att.get("ambiguous_images") else ""))
    return lines


@register_section("loading", order=21)
def loading_section(results):
    """What the loader skipped, converted or found suspicious (after the data section)."""
    data = results.get("stages", {}).get("data") or {}
    lines = describe_notes(data.get("loading") or {})
    if not lines:
        return None
    return "\n".join(["Loading notes:", ""]
                     + [f"- {line[0].upper()}{line[1:]}." for line in lines] + [""])


def _counts(values):
    labels, counts = np.unique(np.asarray(values).astype(str), return_counts=True)
    return {str(k): int(v) for k, v in zip(labels, counts)}


@register_stage("data", order=10, description="load, split, summarise classes and groups")
def data_stage(ctx):
    d = ctx.data
    classes = class_order(d.y_train, d.y_test)
    notes = loading_notes(d)
    for line in describe_notes(notes):
        log(f"data: note: {line}")
    return {
        "loading": notes,
        "dataset": ctx.config.dataset,
        "description": d.descr,
        "protocol": d.protocol,
        "n_train": int(len(d.y_train)),
        "n_test": int(len(d.y_test)),
        "image_shape": list(d.X_train.shape[1:]),
        "classes": classes,
        "class_counts": {"train": _counts(d.y_train), "test": _counts(d.y_test)},
        "attributes": {a: {"train": _counts(d.frame_train[a].fillna("unknown")),
                           "test": _counts(d.frame_test[a].fillna("unknown"))}
                       for a in d.attributes},
    }
