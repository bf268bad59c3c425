"""How trustworthy an attribution is: deletion curves and localisation scores."""

import numpy as np

from .._checks import is_real
from .attributions import target_indices

BAD_IMAGES = ("deletion_curve() takes grayscale images of shape (n, H, W) or (n, 1, H, W); "
              "got {shape}.")
BAD_MAPS = "maps have shape {maps}; deletion_curve() needs one map per image: {images}."
BAD_MASKS = "masks have shape {masks}; localisation() needs {maps} (or one (H, W) mask for all)."
BAD_LOCALISATION_MAPS = ("maps have shape {maps}; localisation() needs one (H, W) map per "
                         "face: (n, H, W).")
BAD_TOLERANCE = "tolerance must be a whole number of pixels, 0 or more; got {value!r}."
BAD_STEPS = "steps must be fractions in [0, 1]; got {value!r}."

#: Fractions of pixels removed along a deletion curve.
DELETION_STEPS = np.linspace(0.0, 1.0, 11)


def deletion_curve(estimator, X, maps, target, steps=DELETION_STEPS, random_state=0):
    """Class probability as the most-attributed pixels are removed first.

    Pixels are replaced, in order of decreasing attribution, by the image's
    median (a plausible skin value rather than black); ties are broken at
    random. A faithful attribution makes the probability fall fast.

    Parameters
    ----------
    estimator : fitted classifier with ``predict_proba`` and ``classes_``
    X : ndarray (n, H, W) or (n, 1, H, W) of uint8 images
    maps : ndarray (n, H, W)
    target : array of class labels (n,), each one of ``estimator.classes_``
    steps : array of fractions in [0, 1]

    Returns
    -------
    curve : ndarray (len(steps),)
        Mean probability of the target class after each step.
    auc : float
        Area under the curve over the fraction removed (lower is better).
    """
    X = np.asarray(X)
    if X.ndim == 4 and X.shape[1] == 1:
        X = X[:, 0]
    if X.ndim != 3:
        raise ValueError(BAD_IMAGES.format(shape=X.shape))
    n, h, w = X.shape
    maps = np.asarray(maps)
    if maps.shape != X.shape:
        raise ValueError(BAD_MAPS.format(maps=maps.shape, images=X.shape))
    steps = np.asarray(steps, dtype=object).ravel()
    if not len(steps) or not all(is_real(f) and 0 <= f <= 1 for f in steps):
        raise ValueError(BAD_STEPS.format(value=steps.tolist()))
    steps = steps.astype(np.float64)
    cls = target_indices(estimator, target, n)
    rng = np.random.default_rng(random_state)
    jitter = rng.random(maps.shape) * 1e-9 * (np.abs(maps).max() + 1e-12)
    order = np.argsort(-(np.asarray(maps, dtype=np.float64) + jitter).reshape(n, -1), axis=1)
    fill = np.median(X.reshape(n, -1), axis=1).astype(X.dtype)
    batch = np.empty((len(steps), n, h * w), dtype=X.dtype)
    for s, frac in enumerate(steps):
        img = X.reshape(n, -1).copy()
        k = int(round(frac * h * w))
        if k:
            rows = np.repeat(np.arange(n), k)
            img[rows, order[:, :k].ravel()] = np.repeat(fill, k)
        batch[s] = img
    proba = estimator.predict_proba(batch.reshape(-1, h, w)).reshape(len(steps), n, -1)
    curve = proba[:, np.arange(n), cls].mean(1)
    return curve, float(np.trapezoid(curve, steps))


def localisation(maps, masks, tolerance=2):
    """Agreement of attributions with ground-truth evidence masks.

    Parameters
    ----------
    maps : ndarray (n, H, W)
    masks : bool ndarray (n, H, W), or (H, W) for all faces
        Pixels that carry each face's expression (for synthetic faces, the
        strokes of the brows, lids and lips that the expression moves).
    tolerance : int, default=2
        The masks are grown by this many pixels first: a brow's region is the
        stroke and the skin edge around it, where its position is read. The
        scores of a random attribution (``area``) use the same grown masks.

    Returns
    -------
    dict
        ``inside``: mean share of positive attribution inside the mask;
        ``pointing``: share of faces whose most-attributed pixel is inside it;
        ``area``: mean share of the image the mask covers (what a random
        attribution scores on ``inside``).
    """
    maps = np.asarray(maps, dtype=np.float64)
    masks = np.asarray(masks, dtype=bool)
    if maps.ndim != 3:
        raise ValueError(BAD_LOCALISATION_MAPS.format(maps=maps.shape))
    if not (is_real(tolerance) and float(tolerance).is_integer() and tolerance >= 0):
        raise ValueError(BAD_TOLERANCE.format(value=tolerance))
    if masks.shape == maps.shape[1:]:
        masks = np.broadcast_to(masks, maps.shape)
    if maps.ndim != 3 or masks.shape != maps.shape:
        raise ValueError(BAD_MASKS.format(masks=masks.shape, maps=maps.shape))
    if tolerance:
        from scipy.ndimage import binary_dilation

        grow = np.zeros((1, 3, 3), dtype=bool)
        grow[0] = True  # grow within each image, never across the batch
        masks = binary_dilation(masks, structure=grow, iterations=int(tolerance))
    pos = np.clip(maps, 0, None)
    total = pos.sum((1, 2))
    has = total > 0
    inside = np.where(has, (pos * masks).sum((1, 2)) / np.where(has, total, 1), 0.0)
    flat = maps.reshape(len(maps), -1).argmax(1)
    pointing = masks.reshape(len(masks), -1)[np.arange(len(masks)), flat]
    return {"inside": float(inside.mean()), "pointing": float(pointing.mean()),
            "area": float(masks.mean())}
