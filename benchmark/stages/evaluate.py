"""Stage ``evaluate``: test metrics with bootstrap CIs, McNemar tests, cost columns."""

import itertools
import math

import numpy as np
import torch
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

from fer_sklearn._training import affine_warp
from fer_sklearn.cost import count_parameters, flops_per_image, inference_rate
from fer_sklearn.stats import bootstrap_ci, mcnemar

from ..progress import log
from . import register_stage
from .data import class_order

# Batch used to measure inference speed.
_PREDICT_BATCH = 512


# Pixels each shifted test-time view moves the face by.
_SHIFT = 2
# The warped views of "affine": (zoom, degrees of rotation) pairs.
_WARPS = ((0.9, 0.0), (1.1, 0.0), (1.0, -8.0), (1.0, 8.0))


def _warp(X, zoom, angle):
    """``X`` (last two axes height and width) zoomed by ``zoom`` and rotated
    by ``angle`` degrees about the centre (edges repeated), in ``X``'s dtype."""
    shape = X.shape
    x = torch.as_tensor(np.ascontiguousarray(X), dtype=torch.float32).reshape(-1, 1, *shape[-2:])
    n = len(x)
    out = affine_warp(x, torch.full((n,), math.radians(angle)), torch.full((n,), zoom),
                      torch.ones(n), torch.zeros(n), torch.zeros(n))
    if X.dtype == np.uint8:
        out = out.round_().clamp_(0, 255)
    return out.numpy().astype(X.dtype, copy=False).reshape(shape)


def _views(X, tta):
    """The test-time views of ``X`` (last two axes are height and width)."""
    if tta in (None, False, "none"):
        return [X]
    flips = [X, np.ascontiguousarray(X[..., ::-1])]
    if tta in (True, "flip"):
        return flips
    # crops: the face and four copies shifted by 2 pixels (edges repeated), each mirrored
    views = []
    for img in flips:
        pad = [(0, 0)] * (img.ndim - 2) + [(_SHIFT, _SHIFT)] * 2
        padded = np.pad(img, pad, mode="edge")
        h, w = img.shape[-2:]
        for dy, dx in ((0, 0), (-1, -1), (-1, 1), (1, -1), (1, 1)):
            top, left = _SHIFT + dy * _SHIFT, _SHIFT + dx * _SHIFT
            views.append(np.ascontiguousarray(padded[..., top:top + h, left:left + w]))
    if tta == "affine":
        # ...and the face zoomed in and out by 10% and rotated 8 degrees each way, each mirrored
        for img in flips:
            views += [_warp(img, zoom, angle) for zoom, angle in _WARPS]
    return views


def predict_proba(est, X, tta="none", classes=None):
    """Probabilities, averaged over the test-time views of ``tta``.

    ``tta`` is ``"none"``, ``"flip"`` (the face and its mirror), ``"crops"``
    (ten views: unshifted and shifted by 2 pixels diagonally, each mirrored) or
    ``"affine"`` (eighteen: the ten crops, and the face zoomed in and out by 10%
    and rotated by 8 degrees each way, each mirrored);
    ``True``/``False`` mean ``"flip"``/``"none"``. With ``classes``, columns
    follow that order (zeros for a class the model never saw, e.g. a rare
    class missing from a capped training set).
    """
    views = _views(X, tta)
    proba = sum(est.predict_proba(v) for v in views) / len(views)
    if classes is None:
        return proba
    out = np.zeros((len(proba), len(classes)))
    for j, c in enumerate(est.classes_):
        out[:, list(classes).index(c)] = proba[:, j]
    return out


# Metrics on integer-coded labels, cheap enough to bootstrap.
def _cm(t, p, k):
    return np.bincount(t * k + p, minlength=k * k).reshape(k, k)


def _accuracy(t, p):
    return float(np.mean(t == p))


def _balanced_accuracy(t, p, k, classes=None):
    """Mean recall over ``classes`` (a mask; None: the classes ``t`` holds)."""
    cm = _cm(t, p, k)
    support = cm.sum(1)
    used = support > 0 if classes is None else classes
    return float(np.mean(np.diag(cm)[used] / np.maximum(support[used], 1)))


def _macro_f1(t, p, k, classes=None):
    """Mean F1 over ``classes`` (a mask; None: the classes ``t`` or ``p``
    holds); a class of ``classes`` that neither holds scores 0, as in sklearn's
    ``zero_division=0``."""
    cm = _cm(t, p, k)
    tp = np.diag(cm)
    denom = cm.sum(0) + cm.sum(1)
    used = denom > 0 if classes is None else classes
    return float(np.mean(2 * tp[used] / np.maximum(denom[used], 1)))


# The metrics averaged over classes are resampled within each true class: every
# resample then holds every class of the test set, and averages over the same
# classes as the point value (a resample without a rare class once dropped its
# term, which pushed the interval up).
BY_CLASS = ("balanced_accuracy", "macro_f1")


def _log_loss(t, proba):
    return float(-np.mean(np.log(np.clip(proba[np.arange(len(t)), t], 1e-15, 1))))


def score(y_true, proba, classes, n_boot, seed):
    """Every test metric of one model, each with a bootstrap 95% CI."""
    classes = np.asarray(classes)
    index = {c: i for i, c in enumerate(classes)}
    t = np.array([index[c] for c in y_true])
    p = proba.argmax(1)
    k = len(classes)
    boot = dict(n_boot=n_boot, random_state=seed)
    in_t = np.bincount(t, minlength=k) > 0
    in_t_or_p = in_t | (np.bincount(p, minlength=k) > 0)
    metrics = {
        "accuracy": bootstrap_ci(_accuracy, t, p, **boot),
        "balanced_accuracy": bootstrap_ci(lambda a, b: _balanced_accuracy(a, b, k, in_t),
                                          t, p, strata=t, **boot),
        "macro_f1": bootstrap_ci(lambda a, b: _macro_f1(a, b, k, in_t_or_p), t, p,
                                 strata=t, **boot),
        "log_loss": bootstrap_ci(_log_loss, t, proba, **boot),
    }
    prec, rec, f1, support = precision_recall_fscore_support(
        t, p, labels=np.arange(k), zero_division=0)
    per_class = {str(c): {"precision": float(prec[i]), "recall": float(rec[i]),
                          "f1": float(f1[i]), "support": int(support[i])}
                 for i, c in enumerate(classes)}
    cm = confusion_matrix(t, p, labels=np.arange(k))
    return metrics, per_class, cm.tolist()


@register_stage("evaluate", order=30, description="test metrics, CIs, McNemar, cost")
def evaluate_stage(ctx):
    config, d = ctx.config, ctx.data
    classes = class_order(d.y_train, d.y_test)
    models, preds = {}, {}
    for model in config.models:
        key = f"eval-{model}"
        if ctx.store.has(key) and ctx.store.has(f"pred-{model}", "npz"):
            log(f"evaluate {model}: finished in an earlier run, reused")
            models[model] = ctx.store.get_json(key)
            preds[model] = ctx.store.get_arrays(f"pred-{model}")["y_pred"]
            continue
        log(f"evaluate {model} on {len(d.y_test)} test images")
        est = ctx.store.get_model(f"model-{model}")
        proba = predict_proba(est, d.X_test, tta=config.tta, classes=classes)
        metrics, per_class, cm = score(d.y_test, proba, classes, config.n_boot, config.seed)
        y_pred = np.asarray(classes)[proba.argmax(1)]
        search = ctx.results["search"][model]
        record = {
            "metrics": metrics,
            "per_class": per_class,
            "confusion_matrix": cm,
            "cost": {
                "fit_time_s": search["refit_time"],
                "inference_images_per_s": inference_rate(est, d.X_test[:_PREDICT_BATCH]),
                "parameters": count_parameters(est),
                "flops_per_image": flops_per_image(est),
            },
            "classes_unseen_in_training": sorted(set(classes) - set(est.classes_.tolist())),
        }
        ctx.store.put_arrays(f"pred-{model}", y_pred=y_pred.astype(str), proba=proba)
        ctx.store.put_json(key, record)
        models[model] = ctx.store.get_json(key)
        preds[model] = y_pred
    pairs = []
    for a, b in itertools.combinations(config.models, 2):
        pairs.append({"a": a, "b": b, **mcnemar(d.y_test, preds[a], preds[b])})
    out = {"classes": classes, "models": models, "mcnemar": pairs,
           "tta": config.tta, "n_boot": config.n_boot, "bootstrap_by_class": list(BY_CLASS)}
    if len(config.models) > 1:
        out["ensemble"] = _ensemble(ctx, classes, models, preds)
    return out


def _ensemble(ctx, classes, models, preds):
    """Soft vote: the test metrics of the models' averaged probabilities."""
    config, d = ctx.config, ctx.data
    members = list(config.models)
    proba = np.mean([ctx.store.get_arrays(f"pred-{m}")["proba"] for m in members], axis=0)
    metrics, per_class, cm = score(d.y_test, proba, classes, config.n_boot, config.seed)
    y_pred = np.asarray(classes)[proba.argmax(1)]
    best = max(members, key=lambda m: models[m]["metrics"]["accuracy"]["value"])
    log(f"evaluate ensemble (soft vote of {', '.join(members)}): accuracy "
        f"{metrics['accuracy']['value']:.4f}")
    return {"members": members, "metrics": metrics, "per_class": per_class,
            "confusion_matrix": cm, "best_single": best,
            "mcnemar_vs_best": mcnemar(d.y_test, y_pred, preds[best])}
