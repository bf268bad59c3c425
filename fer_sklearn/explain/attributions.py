"""Attribution maps for a fitted estimator: which pixels drive its decision.

:func:`attribute` runs one method on a batch of faces and returns one 48x48
map per face. Gradient methods come from captum (``saliency``,
``integrated_gradients``, ``gradcam``, ``occlusion``), SHAP from
``shap.GradientExplainer`` (``shap``; it works with BatchNorm, in-place ReLU
and residual or dense connections, where ``DeepExplainer`` fails), and
``random`` is the baseline every method must beat.
"""

import contextlib

import numpy as np
import torch
from torch import nn

from .._checks import is_whole
from .._hints import did_you_mean
from ..architectures import target_layer

METHODS = ("saliency", "integrated_gradients", "gradcam", "occlusion", "shap", "random")

UNKNOWN_METHOD = "Unknown attribution method {method!r}.{hint} Valid methods: {valid}."
NOT_FITTED = "attribute() needs a fitted estimator; call fit first."
SHAP_NEEDS_BACKGROUND = (
    "method='shap' needs background images (e.g. 32 training faces): "
    "attribute(est, X, 'shap', background=X_train[:32])."
)
BAD_TARGET = "target has {got} entries for {n} images; give one class per image or None."
NOT_POSITIVE = "{name} must be a positive integer; got {value!r}."
WINDOW_TOO_LARGE = ("occlusion_window={window} is larger than the {h}x{w} images; use at most "
                    "{side}.")
UNKNOWN_TARGET_CLASS = "target names class(es) {unknown} that the model does not know: {known}."


class _PixelModel(nn.Module):
    """The estimator's network as a function of float pixels in [0, 1],
    shape (n, C, H, W): the same input path as prediction, without autocast."""

    def __init__(self, estimator):
        super().__init__()
        self.estimator = estimator
        self.net = estimator.module_

    def forward(self, x):
        return self.net(self.estimator._model_input(x, augment=False)).float()


@contextlib.contextmanager
def _eval_mode(estimator):
    """The network as a pixel function, in eval mode on the estimator's device."""
    with estimator._evaluating() as device:
        yield _PixelModel(estimator), device


def _pixels(estimator, X, device):
    images = estimator._validate_X(X, reset=False)  # the size and channels fitted on
    x = torch.as_tensor(images)
    x = x.float().div_(255.0) if x.dtype == torch.uint8 else x.float()
    return x.to(device)


def _targets(estimator, model, x, target):
    if target is None:
        with torch.no_grad():  # inference tensors could not enter autograd later
            return torch.cat([model(b).argmax(1) for b in x.split(256)])
    return torch.as_tensor(target_indices(estimator, target, len(x)), device=x.device)


def target_indices(estimator, target, n):
    """Column of ``estimator.classes_`` for each of ``n`` class labels in
    ``target``; a wrong count or an unknown label raises ValueError."""
    target = np.asarray(target)
    if target.shape != (n,):
        raise ValueError(BAD_TARGET.format(got=target.size, n=n))
    classes = np.asarray(estimator.classes_).tolist()
    unknown = sorted(set(target.tolist()) - set(classes))
    if unknown:
        raise ValueError(UNKNOWN_TARGET_CLASS.format(unknown=unknown, known=classes))
    index = {c: i for i, c in enumerate(classes)}
    return np.array([index[t] for t in target.tolist()], dtype=np.int64)


def _gradcam(estimator, model, x, t):
    from captum.attr import LayerAttribution, LayerGradCam

    layer = target_layer(estimator.module_, estimator.architecture
                         if estimator.module is None else None)
    cam = LayerGradCam(model, layer).attribute(x, target=t, relu_attributions=True)
    return LayerAttribution.interpolate(cam.float(), tuple(x.shape[-2:]), "bilinear")


class _OneLogit(nn.Module):
    def __init__(self, model, index):
        super().__init__()
        self.model, self.index = model, index

    def forward(self, x):
        return self.model(x)[:, self.index:self.index + 1]


# Occluded copies of each face per forward pass: with a 64-face batch, 512
# images at once. (64 made 4,096-image passes whose activations alone took
# gigabytes: a 48x48, 32-channel float map of 4,096 faces is 1.2 GB.)
_OCCLUSION_PER_EVAL = 8


def _shap(model, x, t, background, nsamples, seed):
    import shap

    # shap's PyTorch GradientExplainer explains all outputs or the top-ranked
    # ones; to explain a chosen class per face, explain one logit at a time.
    out = torch.zeros_like(x)
    for index in torch.unique(t).tolist():
        rows = (t == index).nonzero().flatten()
        explainer = shap.GradientExplainer(_OneLogit(model, index), background)
        # shap seeds NumPy's global generator with rseed: the caller's stream is
        # put back afterwards
        numpy_state = np.random.get_state()
        try:
            values = explainer.shap_values(x[rows], nsamples=nsamples, rseed=seed)
        finally:
            np.random.set_state(numpy_state)
        out[rows] = torch.as_tensor(np.asarray(values)[..., 0], dtype=x.dtype,
                                    device=x.device)
    return out


def attribute(estimator, X, method="integrated_gradients", *, target=None, background=None,
              batch_size=64, random_state=0, ig_steps=16, occlusion_window=8,
              shap_samples=50):
    """Attribution of each face's class score to its pixels.

    Parameters
    ----------
    estimator : fitted FERClassifier
    X : array-like of images, as ``predict`` takes them
    method : str, default="integrated_gradients"
        One of :data:`METHODS`.
    target : array-like of class labels or None
        Class to explain per face; None explains the predicted class.
    background : array-like of images or None
        Reference faces for ``shap`` (ignored by the other methods).
    batch_size : int, default=64
    random_state : int, default=0
        Seeds ``random`` and SHAP's sampling.
    ig_steps, occlusion_window, shap_samples : int
        Integration steps, occlusion patch side (stride half of it) and SHAP
        samples per face. IG integrates from, and occlusion fills with, a flat
        image at each face's median value.

    Returns
    -------
    ndarray of shape (n, H, W), float32
        Summed over channels. Positive values support the class, negative ones
        speak against it; ``saliency`` (the gradient's magnitude: where a small
        change moves the score most) and ``random`` are never negative.

    Raises
    ------
    ValueError
        Unknown method, missing background for SHAP, bad targets, images of
        another size or channel count than the model was fitted on, a
        batch size or method option below 1, an occlusion window larger than
        the images.

    Examples
    --------
    >>> maps = attribute(clf, X_test[:8], "gradcam")  # doctest: +SKIP
    >>> maps.shape  # doctest: +SKIP
    (8, 48, 48)
    """
    if method not in METHODS:
        raise ValueError(UNKNOWN_METHOD.format(method=method, hint=did_you_mean(method, METHODS),
                                               valid=", ".join(METHODS)))
    if not getattr(estimator, "initialized_", False) or not hasattr(estimator, "input_shape_"):
        raise ValueError(NOT_FITTED)
    if method == "shap" and background is None:
        raise ValueError(SHAP_NEEDS_BACKGROUND)
    for name, value in (("batch_size", batch_size), ("ig_steps", ig_steps),
                        ("occlusion_window", occlusion_window), ("shap_samples", shap_samples)):
        if not is_whole(value):
            raise ValueError(NOT_POSITIVE.format(name=name, value=value))
    side = min(estimator.input_shape_[-2:])
    if method == "occlusion" and occlusion_window > side:
        h, w = estimator.input_shape_[-2:]
        raise ValueError(WINDOW_TOO_LARGE.format(window=occlusion_window, h=h, w=w, side=side))
    with _eval_mode(estimator) as (model, device):
        x = _pixels(estimator, X, device)
        t = _targets(estimator, model, x, target)
        if method == "random":
            rng = np.random.default_rng(random_state)
            return rng.random((len(x),) + tuple(x.shape[-2:])).astype(np.float32)
        bg = _pixels(estimator, background, device) if method == "shap" else None
        out = []
        for start in range(0, len(x), batch_size):
            xb = x[start:start + batch_size].clone().requires_grad_(True)
            tb = t[start:start + batch_size]
            out.append(_one_batch(estimator, model, method, xb, tb, bg, random_state,
                                  ig_steps, occlusion_window, shap_samples).detach().cpu())
    maps = torch.cat(out).float().sum(1)
    return maps.numpy().astype(np.float32)


def _one_batch(estimator, model, method, x, t, background, seed, ig_steps, window,
               shap_samples):
    from captum.attr import IntegratedGradients, Occlusion, Saliency

    # Reference for IG and occlusion: each face's median, a flat skin-like
    # image (black would make bright skin look important).
    reference = x.detach().flatten(1).median(1).values[:, None, None, None].expand_as(x)
    if method == "saliency":
        return Saliency(model).attribute(x, target=t, abs=True)
    if method == "integrated_gradients":
        return IntegratedGradients(model).attribute(x, baselines=reference, target=t,
                                                    n_steps=ig_steps,
                                                    internal_batch_size=len(x) * 4)
    if method == "gradcam":
        return _gradcam(estimator, model, x, t)
    if method == "occlusion":
        c = x.shape[1]
        stride = max(1, window // 2)
        return Occlusion(model).attribute(x.detach(), target=t, baselines=reference,
                                          sliding_window_shapes=(c, window, window),
                                          strides=(c, stride, stride),
                                          perturbations_per_eval=_OCCLUSION_PER_EVAL)
    return _shap(model, x.detach(), t, background, shap_samples, seed)
