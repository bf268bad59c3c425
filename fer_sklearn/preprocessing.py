"""scikit-learn transformers for face images, for use in pipelines.

They take the same inputs as the estimators (``(n, H, W)``, ``(n, C, H, W)`` or
flat ``(n, H*W)`` rows, see :func:`fer_sklearn._images.as_image_array`) and
return ``(n, C, H, W)`` arrays (``Flatten``: rows) of float32. The scalers turn
``uint8`` pixels into float32 too; the shape transformers (``Resize``,
``ToChannels``, ``Flatten``, ``Unflatten``) keep ``uint8`` pixels ``uint8``, so
that an estimator after them still divides them by 255. So
``make_pipeline(PixelScaler(), ResNetClassifier())`` just works.
"""

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from ._images import as_image_array, check_fitted_images

__all__ = ["Flatten", "PixelScaler", "PixelStandardizer", "Resize", "ToChannels", "Unflatten"]


class _ImageTransformer(TransformerMixin, BaseEstimator):
    def fit(self, X, y=None):
        images, n_features = as_image_array(X, estimator=self, return_n_features=True)
        self.input_shape_ = tuple(images.shape[1:])
        self.n_features_in_ = n_features  # flat rows of a non-square count are padded
        self._fit_images(images)
        return self

    def _fit_images(self, images):
        pass

    def transform(self, X):
        check_is_fitted(self, "input_shape_")
        images, n_features = as_image_array(X, estimator=self, return_n_features=True)
        check_fitted_images(self, images, n_features)
        return self._transform(images, n_features)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True
        tags.transformer_tags.preserves_dtype = ["float32"]  # float64 comes out float32
        return tags


class PixelScaler(_ImageTransformer):
    """Scale pixels to floats: ``x * scale`` (uint8 0..255 -> 0..1 by default).

    Parameters
    ----------
    scale : float, default=1/255

    Examples
    --------
    >>> import numpy as np
    >>> PixelScaler().fit_transform(np.full((1, 2, 2), 255, np.uint8)).max()
    np.float32(1.0)
    """

    def __init__(self, scale=1 / 255):
        self.scale = scale

    def _transform(self, images, n_features):
        return images.astype(np.float32) * np.float32(self.scale)


class PixelStandardizer(_ImageTransformer):
    """Subtract the training mean and divide by the standard deviation.

    Parameters
    ----------
    per_pixel : bool, default=False
        One mean/std per pixel position (like ``StandardScaler`` on flat rows),
        or one for the whole image (the usual choice for faces).
    eps : float, default=1e-6
        Guards against constant pixels.
    """

    def __init__(self, per_pixel=False, eps=1e-6):
        self.per_pixel = per_pixel
        self.eps = eps

    def _fit_images(self, images):
        x = images.astype(np.float64)
        axis = 0 if self.per_pixel else None
        self.mean_ = np.asarray(x.mean(axis=axis), dtype=np.float32)
        self.scale_ = np.asarray(x.std(axis=axis) + self.eps, dtype=np.float32)

    def _transform(self, images, n_features):
        return (images.astype(np.float32) - self.mean_) / self.scale_


class Resize(_ImageTransformer):
    """Resize images to ``size x size`` (bilinear, antialiased when shrinking).

    Parameters
    ----------
    size : int, default=48
    """

    def __init__(self, size=48):
        self.size = size

    def _transform(self, images, n_features):
        x = torch.as_tensor(images.astype(np.float32))
        out = F.interpolate(x, size=(self.size, self.size), mode="bilinear",
                            align_corners=False, antialias=True).numpy()
        if images.dtype == np.uint8:
            return np.clip(np.round(out), 0, 255).astype(np.uint8)
        return out


class ToChannels(_ImageTransformer):
    """Repeat grayscale to ``n_channels`` (or average colour down to 1).

    Parameters
    ----------
    n_channels : int, default=3
    """

    def __init__(self, n_channels=3):
        self.n_channels = n_channels

    def _transform(self, images, n_features):
        gray = images.mean(axis=1, keepdims=True) if images.shape[1] != 1 else images
        if images.dtype == np.uint8:
            gray = np.round(gray).astype(np.uint8)
        return np.repeat(gray, self.n_channels, axis=1)


def _rows(images, n_features):
    """Flat rows of the images' own ``n_features`` values (as_image_array pads a
    row of non-square length to a square image)."""
    return images.reshape(len(images), -1)[:, :n_features]


class Flatten(_ImageTransformer):
    """Images to flat rows ``(n, C*H*W)``, for tabular sklearn models."""

    def _transform(self, images, n_features):
        return _rows(images, n_features)


class Unflatten(_ImageTransformer):
    """Flat rows back to images ``(n, *shape)``.

    Parameters
    ----------
    shape : tuple or None, default=None
        ``(C, H, W)``; None takes one square grayscale image per row.
    """

    def __init__(self, shape=None):
        self.shape = shape

    def _transform(self, images, n_features):
        if self.shape is None:
            return images
        shape = tuple(self.shape)
        if int(np.prod(shape)) != n_features:
            raise ValueError(
                f"shape={shape} holds {int(np.prod(shape))} values per image, but X "
                f"rows hold {n_features}."
            )
        return _rows(images, n_features).reshape(len(images), *shape)
