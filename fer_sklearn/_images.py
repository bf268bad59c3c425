"""Turn the array shapes users pass into ``(n, C, H, W)`` image batches."""

import math

import numpy as np
from sklearn.utils.validation import check_array

NOT_IMAGES = (
    "Expected images of shape (n, H, W), (n, C, H, W) or flat rows (n, H*W); "
    "got an array of shape {shape}."
)
TOO_FEW_SAMPLES = (
    "{name} needs at least 2 samples to fit, got {n} sample(s)."
)
# An image array of another size than the one fitted on.
FEATURE_MISMATCH = (
    "X has {got} features, but {name} is expecting {expected} features as input "
    "(images of shape {shape})."
)


def check_fitted_images(estimator, images, n_features):
    """Raise FEATURE_MISMATCH unless ``images`` (from :func:`as_image_array`,
    with ``n_features`` before padding) match what ``estimator`` was fitted on."""
    shape = estimator.input_shape_
    if tuple(images.shape[1:]) != shape or n_features not in (
            estimator.n_features_in_, int(np.prod(shape))):
        raise ValueError(FEATURE_MISMATCH.format(
            got=n_features, name=type(estimator).__name__,
            expected=estimator.n_features_in_, shape=shape))


CHANNELS_LAST = (
    "X of shape {shape} looks channels-last (n, H, W, C), as Keras or PIL stack images; "
    "images are (n, C, H, W) here: pass X.transpose(0, 3, 1, 2)."
)


def as_image_array(X, *, estimator=None, return_n_features=False):
    """Validate ``X`` and return it as an ``(n, C, H, W)`` numpy array.

    Rules (documented in the README):

    * ``(n, H, W)`` becomes ``(n, 1, H, W)``; ``(n, C, H, W)`` is kept.
    * Flat rows ``(n, d)`` become ``(n, 1, s, s)`` where ``s = ceil(sqrt(d))``;
      when ``d`` is not a perfect square the rows are zero-padded to ``s * s``.
      (2304 columns are one 48x48 face, as after ``Flatten``.)
    * ``uint8`` stays ``uint8`` (expanded to float per batch, /255); every other
      numeric dtype becomes ``float32`` and is used as given.
    * NaN or infinite values are rejected.

    Parameters
    ----------
    X : array-like
    estimator : estimator or None
        Named in error messages.
    return_n_features : bool
        Also return the features per sample as the caller counts them
        (columns of flat rows, C*H*W of images), before any padding.

    Returns
    -------
    ndarray of shape (n, C, H, W), dtype uint8 or float32
        And the feature count, with ``return_n_features``.
    """
    X = check_array(X, allow_nd=True, dtype=None, ensure_all_finite=True,
                    ensure_2d=False, estimator=estimator, input_name="X")
    if X.dtype.kind not in "uifb":
        X = check_array(X, allow_nd=True, dtype=np.float32, ensure_2d=False,
                        estimator=estimator, input_name="X")
    if X.ndim < 2:
        raise ValueError(
            f"Expected 2D array, got {X.ndim}D array instead. Reshape your data "
            "with X.reshape(1, -1) if it holds a single sample. " + NOT_IMAGES.format(
                shape=X.shape))
    n_features = int(np.prod(X.shape[1:]))
    if X.ndim == 2:
        n, d = X.shape
        side = math.isqrt(d)
        if side * side != d:
            side += 1
            X = np.pad(X, ((0, 0), (0, side * side - d)))
        X = X.reshape(n, 1, side, side)
    elif X.ndim == 3:
        X = X[:, None]
    elif X.ndim != 4:
        raise ValueError(NOT_IMAGES.format(shape=X.shape))
    elif X.shape[-1] in (1, 3, 4) and X.shape[1] not in (1, 3, 4):
        raise ValueError(CHANNELS_LAST.format(shape=X.shape))
    if X.dtype == np.bool_:
        X = X.astype(np.uint8) * 255
    elif X.dtype != np.uint8:
        X = X.astype(np.float32, copy=False)
    X = np.ascontiguousarray(X)
    return (X, n_features) if return_n_features else X
