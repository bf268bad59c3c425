"""What a fitted estimator costs: parameters, FLOPs per image, inference speed."""

import time

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode


def count_parameters(estimator):
    """Number of trainable parameters of a fitted estimator's network."""
    return int(sum(p.numel() for p in estimator.module_.parameters() if p.requires_grad))


def flops_per_image(estimator):
    """Forward FLOPs for one image, as ``torch.utils.flop_counter`` counts them.

    The image goes through the estimator's own input path (resizing and channel
    repetition for fixed-input architectures), so a 224x224 network is charged
    for 224x224. A multiply-add counts as two FLOPs.
    """
    shape = (1,) + tuple(estimator.input_shape_)
    with estimator._evaluating() as device, torch.inference_mode():
        x = estimator._model_input(torch.zeros(shape, dtype=torch.uint8, device=device))
        counter = FlopCounterMode(display=False)
        with counter:
            estimator.module_(x)
    return int(counter.get_total_flops())


def inference_rate(estimator, X, repeats=1):
    """Images per second of ``predict_proba`` on ``X`` (after one warm-up batch),
    in the estimator's prediction batches (``iterator_valid__batch_size``)."""
    X = np.asarray(X)
    estimator.predict_proba(X[: min(len(X), 32)])
    start = time.perf_counter()
    for _ in range(repeats):
        estimator.predict_proba(X)
    return len(X) * repeats / (time.perf_counter() - start)
