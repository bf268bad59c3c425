"""Stage ``data``: load the dataset, fix the train/test protocol, summarise it."""

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

from . import register_stage

NO_TRAIN_SPLIT = (
    "{dataset} has splits {splits} but no 'train' split to fit on; name the "
    "training folder 'train' (or 'Training'), or drop the split folders."
)
TOO_SMALL = "{dataset} has only {n} images; the benchmark needs at least 20."

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


def _load_bunch(config):
    kind, path = config.dataset_kind, config.dataset_path
    if kind == "synthetic":
        options = dict(config.synthetic)
        options.setdefault("random_state", config.seed)
        return make_synthetic_faces(return_masks=True, **options)
    if kind == "fer2013":
        name = Path(path).name.lower()
        if ".csv" in name or (name.endswith(".zip") and _zip_holds_csv(path)):
            return load_fer2013_csv(path)
        return load_image_folder(path)
    if kind == "folder":
        return load_image_folder(path)
    return load_labels_csv(path)


def _zip_holds_csv(path):
    import zipfile

    try:
        with zipfile.ZipFile(path) as zf:
            return any(n.lower().endswith(".csv") for n in zf.namelist())
    except (OSError, zipfile.BadZipFile):
        return False  # the folder loader reports what is wrong with it


def _stratified_cap(idx, y, cap, seed):
    if cap is None or len(idx) <= cap:
        return idx
    keep, _ = train_test_split(idx, train_size=cap, stratify=y[idx], random_state=seed)
    return np.sort(keep)


def load(config):
    """Load ``config.dataset`` and split it into train and test.

    The dataset's own splits decide the protocol when it has them: ``test`` is
    the test split when present (``validation`` then joins training, since
    model selection is done by cross-validation on training data); otherwise
    ``validation`` is the test split. A dataset without splits is split
    stratified by label, seeded, ``config.test_size`` to test.

    Returns
    -------
    DataSplit
    """
    bunch = _load_bunch(config)
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
        train, test = train_test_split(idx, test_size=config.test_size, stratify=y,
                                       random_state=config.seed)
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
        train, test = train_test_split(idx, test_size=config.test_size, stratify=y[idx],
                                       random_state=config.seed)
        protocol = f"train split only: stratified {config.test_size:.0%} of it held out as test"
    train, test = np.sort(train), np.sort(test)
    if config.max_train is not None and len(train) > config.max_train:
        train = _stratified_cap(train, y, config.max_train, config.seed)
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
    )


def class_order(*targets):
    """Labels present in ``targets``: FER2013's order, then any others sorted."""
    labels = np.unique(np.concatenate([np.asarray(t).astype(str) for t in targets])).tolist()
    known = present_target_names(labels)
    return known + sorted(set(labels) - set(known))


def _counts(values):
    labels, counts = np.unique(np.asarray(values).astype(str), return_counts=True)
    return {str(k): int(v) for k, v in zip(labels, counts)}


@register_stage("data", order=10, description="load, split, summarise classes and groups")
def data_stage(ctx):
    d = ctx.data
    classes = class_order(d.y_train, d.y_test)
    return {
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
