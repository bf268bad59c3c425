"""``benchmark faces``: the synthetic benchmark's speed, and a picture of it."""

import csv
import os
import shutil
import time
from pathlib import Path

import numpy as np

from fer_sklearn.datasets import make_synthetic_faces, plot_face_grid
from fer_sklearn.reporting.figures import save_png

from .progress import log
from .store import writing


def _one_core():
    """Pin this process to one CPU for the measurement (Linux); returns the old set."""
    if not hasattr(os, "sched_setaffinity"):
        return None
    old = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(old)})
    return old


def faces_per_second(n=20000, seed=0, return_masks=False):
    """Faces per second of :func:`make_synthetic_faces` on one CPU core."""
    old = _one_core()
    try:
        make_synthetic_faces(256, random_state=seed, return_masks=return_masks)  # warm-up
        start = time.perf_counter()
        make_synthetic_faces(n, random_state=seed, return_masks=return_masks)
        return n / (time.perf_counter() - start)
    finally:
        if old is not None:
            os.sched_setaffinity(0, old)


# Label names of the exported set: synonyms, as another dataset would spell them.
EXPORT_NAMES = {"angry": "anger", "disgust": "disgusted", "fear": "fearful",
                "happy": "happiness", "sad": "sadness", "surprise": "surprised",
                "neutral": "neutral"}
NOT_EMPTY = "{path} exists and is not empty; export into a new folder."
UNKNOWN_DROP = "--drop names {unknown}, not among the classes {valid}."
DROPS_EVERY_CLASS = "--drop leaves no class to export; keep at least one of {valid}."
NO_FACE_LEFT = ("none of the {n} faces drawn is of a class --drop keeps; draw more with a "
                "larger --n.")
GRID_IS_A_FOLDER = "--grid {path} is a folder; give the PNG file to write, e.g. {path}/faces.png."


def export_faces(folder, n=2000, seed=0, drop=()):
    """Write synthetic faces as another dataset would ship them.

    ``folder/images/NNNNN.png`` (8-bit gray), ``folder/labels.csv``
    (``image_path,label``, labels spelled as synonyms such as ``happiness``) and
    ``folder/attributes.csv`` (``path`` plus the generator's group columns).
    Classes in ``drop`` are left out (``n`` faces are drawn before that).
    Load it with ``csv:FOLDER/labels.csv``. The files are written into a
    temporary folder (beside ``folder``, or inside it when it exists empty)
    that is moved into place only when all are written, so a failed export
    leaves nothing behind.
    """
    folder = Path(folder)
    if folder.exists() and any(folder.iterdir()):
        raise ValueError(NOT_EMPTY.format(path=folder))
    unknown = sorted(set(drop) - set(EXPORT_NAMES))
    if unknown:
        raise ValueError(UNKNOWN_DROP.format(unknown=", ".join(unknown),
                                             valid=", ".join(EXPORT_NAMES)))
    if set(drop) >= set(EXPORT_NAMES):
        raise ValueError(DROPS_EVERY_CLASS.format(valid=", ".join(EXPORT_NAMES)))
    faces = make_synthetic_faces(n, random_state=seed)
    keep = ~np.isin(faces.target, list(drop))
    if not keep.any():
        raise ValueError(NO_FACE_LEFT.format(n=n))
    groups = list(faces.get("attributes", []))
    # Written into a temporary folder, moved into place when whole: beside the
    # target, or inside it when it exists already (an empty folder, a link to
    # one, a mount point: it stays, and only its new entries move).
    folder = folder.resolve()
    existing = folder.exists()
    partial = (folder if existing else folder.parent) / f".{folder.name}.partial-{os.getpid()}"
    with writing():
        try:
            (partial / "images").mkdir(parents=True)
            _write_export(partial, faces, keep, groups)
            if existing:
                for entry in sorted(partial.iterdir()):
                    entry.rename(folder / entry.name)
                partial.rmdir()
            else:
                partial.rename(folder)
        except BaseException:
            shutil.rmtree(partial, ignore_errors=True)
            raise
    log(f"faces: {int(keep.sum())} faces written to {folder} (load with csv:{folder}/labels.csv)")
    return folder


def _write_export(folder, faces, keep, groups):
    from PIL import Image

    with open(folder / "labels.csv", "w", newline="") as fl, \
            open(folder / "attributes.csv", "w", newline="") as fa:
        labels, attrs = csv.writer(fl), csv.writer(fa)
        labels.writerow(["image_path", "label"])
        attrs.writerow(["path"] + groups)
        for i in np.flatnonzero(keep):
            name = f"images/{i:05d}.png"
            Image.fromarray(faces.data[i]).save(folder / name)
            labels.writerow([name, EXPORT_NAMES[faces.target[i]]])
            attrs.writerow([name] + [faces.frame[g].iloc[i] for g in groups])


def run(n=20000, grid=None, seed=0):
    """Print generation speed (with and without masks); draw a grid if asked."""
    if grid and Path(grid).is_dir():
        raise ValueError(GRID_IS_A_FOLDER.format(path=Path(grid)))
    plain = faces_per_second(n, seed)
    masked = faces_per_second(n, seed, return_masks=True)
    print(f"make_synthetic_faces, 48x48, one CPU core: {plain:,.0f} faces/s "
          f"({masked:,.0f} faces/s with masks), n={n}")
    if grid:
        faces = make_synthetic_faces(700, random_state=seed)
        fig = plot_face_grid(faces.data, faces.target, n_per_class=8, random_state=seed,
                             title="Synthetic faces (make_synthetic_faces, seed "
                                   f"{seed}), 8 per class")
        with writing():
            Path(grid).parent.mkdir(parents=True, exist_ok=True)
            save_png(fig, grid, gray=True, dpi=72)
        log(f"faces: grid written to {grid}")
    return plain, masked
