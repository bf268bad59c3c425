"""``benchmark faces``: the synthetic benchmark's speed, and a picture of it."""

import os
import time

from fer_sklearn.datasets import make_synthetic_faces, plot_face_grid
from fer_sklearn.reporting.figures import _save

from .progress import log


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


def run(n=20000, grid=None, seed=0):
    """Print generation speed (with and without masks); draw a grid if asked."""
    plain = faces_per_second(n, seed)
    masked = faces_per_second(n, seed, return_masks=True)
    print(f"make_synthetic_faces, 48x48, one CPU core: {plain:,.0f} faces/s "
          f"({masked:,.0f} faces/s with masks), n={n}")
    if grid:
        faces = make_synthetic_faces(700, random_state=seed)
        fig = plot_face_grid(faces.data, faces.target, n_per_class=8, random_state=seed,
                             title="Synthetic faces (make_synthetic_faces, seed "
                                   f"{seed}), 8 per class")
        _save(fig, grid, gray=True, dpi=72)
        log(f"faces: grid written to {grid}")
    return plain, masked
