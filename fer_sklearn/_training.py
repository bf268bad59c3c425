"""Training-loop pieces for the estimators: batch iterator, augmentation, callbacks.

Everything here works on whole batches of tensors: no per-sample Python work.
"""

import math
import time

import numpy as np
import torch
import torch.nn.functional as F
from skorch.callbacks import Callback
from torch.utils.data import Subset


def _arrays_of(dataset):
    """The ``(X, y)`` arrays behind a skorch ``Dataset`` or a ``Subset`` of one."""
    if isinstance(dataset, Subset):
        X, y = _arrays_of(dataset.dataset)
        idx = np.asarray(dataset.indices)
        return X[idx], (None if y is None else y[idx])
    return dataset.X, dataset.y


def n_batches(n, batch_size):
    """How many batches :class:`BatchIterator` cuts ``n`` samples into
    (``batch_size`` below 1: one batch of all of them)."""
    n, batch_size = int(n), int(batch_size)
    if batch_size < 1:
        return 1
    count = -(-n // batch_size)
    if count > 1 and n - (count - 1) * batch_size == 1:
        count -= 1  # a last batch of one sample joins the one before
    return count


class BatchIterator:
    """Mini-batches sliced straight out of in-memory arrays.

    Replaces ``torch.utils.data.DataLoader`` (which indexes one sample at a time
    and collates in Python). A trailing batch of a single sample is merged into
    the previous one: BatchNorm cannot train on one sample, and no data is dropped.

    Parameters
    ----------
    dataset : skorch.dataset.Dataset or torch.utils.data.Subset of one
    batch_size : int
    shuffle : bool
        Draw a new permutation (from torch's global generator) every epoch.
    """

    def __init__(self, dataset, batch_size=64, shuffle=False):
        self.X, self.y = _arrays_of(dataset)
        self.batch_size = int(batch_size)
        self.shuffle = shuffle

    def _bounds(self):
        n, bs = len(self.X), self.batch_size
        starts = [i * bs for i in range(n_batches(n, bs))]
        return list(zip(starts, starts[1:] + [n]))

    def __len__(self):
        return n_batches(len(self.X), self.batch_size)

    def __iter__(self):
        order = torch.randperm(len(self.X)).numpy() if self.shuffle else None
        for start, stop in self._bounds():
            if order is None:
                xb = self.X[start:stop]
                yb = None if self.y is None else self.y[start:stop]
            else:
                idx = np.sort(order[start:stop])
                xb = self.X[idx]
                yb = None if self.y is None else self.y[idx]
            yield torch.as_tensor(xb), (None if yb is None else torch.as_tensor(yb))


def small_epochs(progressive_resize, epochs):
    """How many of ``epochs`` a ``progressive_resize=(side, fraction)`` schedule
    trains at the small size: the first ``round(fraction * epochs)``, leaving at
    least the last epoch at full size unless ``fraction`` is 1."""
    if progressive_resize is None:
        return 0
    fraction = float(progressive_resize[1])
    small = round(fraction * epochs)
    return small if fraction >= 1 else min(small, max(epochs - 1, 0))


def augment_batch(x, *, shift=0.1, rotation=10.0, scale=0.1, flip=True, size=None):
    """Random flip, shift, rotation and zoom of a batch, one draw per image.

    One affine warp (``affine_grid`` + ``grid_sample``) applies all four, on the
    batch's device, with torch's global generator; with ``size`` the same warp
    also scales the faces to ``size`` x ``size`` pixels.

    Parameters
    ----------
    x : Tensor of shape (n, C, H, W), float
    shift : float
        Largest translation, as a fraction of the image side.
    rotation : float
        Largest rotation, in degrees.
    scale : float
        Largest relative zoom in or out.
    flip : bool
        Mirror half of the images horizontally.
    size : int or None
        Side length of the output; None keeps the input's.

    Returns
    -------
    Tensor of shape (n, C, H, W), or (n, C, size, size), of the input's dtype
    """
    n = x.shape[0]
    dev = x.device
    u = torch.rand(4, n, device=dev) * 2 - 1
    mirror = torch.ones(n, device=dev)
    if flip:
        mirror = torch.where(torch.rand(n, device=dev) < 0.5, -mirror, mirror)
    return affine_warp(x, u[0] * math.radians(rotation), 1 + u[1] * scale, mirror,
                       u[2] * 2 * shift, u[3] * 2 * shift, size=size)


def affine_warp(x, angle, zoom, mirror, shift_x, shift_y, size=None):
    """Each image of a batch rotated, zoomed, mirrored and shifted (edges repeated).

    Parameters
    ----------
    x : Tensor of shape (n, C, H, W), float
    angle, zoom, mirror, shift_x, shift_y : Tensors of shape (n,)
        Rotation in radians; zoom factor (above 1 enlarges the face); 1 or -1
        (mirrored horizontally); shifts in units of half the image side.
    size : int or None
        Side length of the output; None keeps the input's.

    Returns
    -------
    Tensor of shape (n, C, H, W), or (n, C, size, size), of the input's dtype
    """
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    theta = torch.stack([
        torch.stack([cos * mirror, -sin, shift_x], dim=1),
        torch.stack([sin * mirror, cos, shift_y], dim=1),
    ], dim=1).to(x.dtype)
    shape = list(x.shape) if size is None else [x.shape[0], x.shape[1], int(size), int(size)]
    grid = F.affine_grid(theta, shape, align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border",
                         align_corners=False)


def schedule_epochs(net):
    """The epochs the current fit's schedule spans: ``max_epochs``, or fewer
    once a ``time_budget`` has shortened it (see :class:`TimeBudget`)."""
    return getattr(net, "schedule_epochs_", None) or net.max_epochs


def epochs_that_fit(done, elapsed, budget, most, epoch_s, small_epoch_s, small_of):
    """The longest schedule, of ``done`` to ``most`` epochs, that ends within ``budget``.

    Parameters
    ----------
    done : int
        Epochs already trained.
    elapsed : float
        Seconds spent so far.
    budget : float
        Seconds the whole fit may take.
    most : int
        The longest schedule allowed (the fit's ``max_epochs``).
    epoch_s, small_epoch_s : float
        Expected seconds of one epoch at full size and at the small size.
    small_of : callable
        ``small_of(epochs)``: how many epochs a schedule of ``epochs`` trains
        at the small size (``small_epochs`` of the progressive resizing).

    Returns
    -------
    int
        At least ``done`` (nothing is undone) and at most ``most``.
    """
    epochs = most
    while (epochs > done and elapsed + seconds_left(done, epochs, epoch_s, small_epoch_s,
                                                    small_of) > budget):
        epochs -= 1
    return epochs


def seconds_left(done, epochs, epoch_s, small_epoch_s, small_of):
    """Expected seconds of epochs ``done`` to ``epochs`` (arguments as in :func:`epochs_that_fit`)."""
    small = small_of(epochs)
    return sum(small_epoch_s if e < small else epoch_s for e in range(done, epochs))


class TimeBudget(Callback):
    """Keeps a fit within ``seconds`` by re-planning its schedule after every epoch.

    The epochs' measured times give the pace (each epoch counted from the end
    of the one before, so validation and the other callbacks are included);
    when the fit's ``max_epochs`` would not end in time, the schedule shortens
    to the most epochs that do: the learning-rate schedule is laid over the
    shorter span, and progressive resizing keeps its fraction of it. If the
    pace recovers, the schedule grows back, never past ``max_epochs``. The plan
    ends one standard deviation of the full-size epochs' times before the
    budget (of the small epochs' times, scaled to full size, until two
    full-size epochs are timed), so that a slower last epoch still ends in
    time. Once an epoch has trained at full size, no later one goes back to
    the small size.
    If an epoch runs so slowly that the budget ends with it, the fit stops
    there, before its learning rate has annealed. ``FERClassifier(time_budget=...)``
    adds this callback; initialisation and the end-of-fit callbacks fall
    outside the budget.

    Parameters
    ----------
    seconds : float
        Wall-clock seconds from the start of training to the end of the last epoch.
    small_cost : float or None
        With progressive resizing: a small epoch's time as a fraction of a
        full-size one, used until a full-size epoch has been timed. None takes
        the pixel ratio (``side**2 / (H * W)``); a measured figure (the
        benchmark's probe) is closer, since small epochs cost a little more
        than their pixels.
    initial_epochs : int or None
        The schedule's length until the first epoch has been timed (an
        estimate made beforehand, such as the benchmark's probe); None:
        ``max_epochs``. Later plans may grow past it, up to ``max_epochs``.
    """

    clock = staticmethod(time.perf_counter)

    def __init__(self, seconds, small_cost=None, initial_epochs=None):
        self.seconds = seconds
        self.small_cost = small_cost
        self.initial_epochs = initial_epochs

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        if self.initial_epochs is not None:
            net.schedule_epochs_ = max(1, min(int(self.initial_epochs), net.max_epochs))
        self.start_ = self.last_end_ = self.clock()
        self.done_ = 0
        self.times_ = {True: [], False: []}  # small epoch? -> durations
        self.seconds_left_ = None

    def on_epoch_end(self, net, **kwargs):
        now = self.clock()
        small_now = getattr(net, "train_side_", None) is not None
        self.times_[small_now].append(now - self.last_end_)
        self.last_end_ = now
        self.done_ += 1
        small, full = self.times_[True], self.times_[False]
        ratio = 1.0
        if net.progressive_resize is not None:
            ratio = self.small_cost
            if ratio is None:
                side = float(net.progressive_resize[0])
                ratio = min(1.0, side * side / float(np.prod(net.input_shape_[-2:])))
        epoch_s = np.mean(full) if full else np.mean(small) / ratio
        small_epoch_s = np.mean(small) if small else epoch_s * ratio
        full_from = getattr(net, "full_size_from_", None)

        def small_of(epochs):
            if full_from is not None:  # full size has begun: no more small epochs
                return full_from
            return small_epochs(net.progressive_resize, epochs)

        # One standard deviation of the full-size epochs' times is kept in
        # hand, so that a last epoch a little slower than their mean does not
        # carry the fit past its budget (steady epochs keep none). Until two
        # full-size epochs are timed, the small ones' spread stands in, scaled
        # as their mean is.
        spread = 0.0
        if len(full) > 1:
            spread = float(np.std(full, ddof=1))
        elif len(small) > 1:
            spread = float(np.std(small, ddof=1)) / ratio
        net.schedule_epochs_ = epochs_that_fit(
            self.done_, now - self.start_, self.seconds - spread, net.max_epochs, epoch_s,
            small_epoch_s, small_of)
        net.history.record("schedule_epochs", net.schedule_epochs_)
        # What the rest of the plan should take, for progress messages.
        self.seconds_left_ = seconds_left(self.done_, net.schedule_epochs_, epoch_s,
                                          small_epoch_s, small_of)


def configured_lrs(net):
    """The learning rate ``net`` is configured with, per optimizer param group
    (``lr``, ``optimizer__lr``, or a group's own from ``optimizer__param_groups``).

    A schedule starts every fit from these rather than from the optimizer's
    current rates, which the previous fit annealed to 0 (or a reloaded
    optimizer state carries); ``set_params(lr=...)`` changes them.
    """
    live = [g["lr"] for g in net.optimizer_.param_groups]
    (groups,), kwargs = net.get_params_for_optimizer("optimizer", net.get_all_learnable_params())
    if len(groups) != len(live):  # an optimizer that groups parameters its own way
        return live
    return [g.get("lr", kwargs["lr"]) for g in groups]


class BatchLRSchedule(Callback):
    """Per-batch learning-rate schedule over the whole fit.

    Parameters
    ----------
    kind : {"cosine", "onecycle"}
        ``cosine`` decays from the configured lr (:func:`configured_lrs`) to 0;
        ``onecycle`` warms up linearly from lr/25 over the first 30% of steps,
        then decays as cosine. Every fit call (``partial_fit``, a
        ``warm_start`` fit) runs the schedule anew. When a time budget
        shortens or lengthens the fit, the rest of the schedule is laid over
        the steps that remain, from where it stands: the lr goes on without a
        jump and still passes the peak and ends at 0.
    """

    def __init__(self, kind="cosine"):
        self.kind = kind

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        self.base_lrs_ = configured_lrs(net)
        self.step_ = 0
        self.total_ = None
        self.anchor_ = (0.0, 0)  # (progress, step) where the current span began

    def on_epoch_begin(self, net, dataset_train=None, **kwargs):
        # Recounted every epoch: a time budget may have changed the schedule.
        batch = net._batch_size(len(dataset_train), training=True)
        per_epoch = max(1, n_batches(len(dataset_train), batch))
        total = per_epoch * schedule_epochs(net)
        if self.total_ is not None and total != self.total_:
            self.anchor_ = (self._progress(), self.step_)
        self.total_ = total
        self._apply(net)

    def on_batch_end(self, net, training=False, **kwargs):
        if training:
            self.step_ += 1
            self._apply(net)

    def on_train_end(self, net, X=None, y=None, **kwargs):
        # The lr is now annealed: a later fit without a schedule starts from
        # the configured one (``FERClassifier.on_train_begin``).
        net.lr_annealed_ = True

    def _progress(self):
        """Share of the schedule done, in [0, 1]: continuous across re-plans."""
        done, start = getattr(self, "anchor_", (0.0, 0))  # (a callback pickled before)
        left = self.total_ - start
        if left <= 0:
            return 1.0
        return min(1.0, done + (1.0 - done) * (self.step_ - start) / left)

    def _factor(self):
        p = self._progress()
        if self.kind == "onecycle":
            warm = 0.3
            if p < warm:
                return 1 / 25 + (1 - 1 / 25) * p / warm
            p = (p - warm) / (1 - warm)
        return 0.5 * (1 + math.cos(math.pi * p))

    def _apply(self, net):
        factor = self._factor()
        for group, base in zip(net.optimizer_.param_groups, self.base_lrs_):
            group["lr"] = base * factor


class ValidAccuracy(Callback):
    """Validation accuracy from the predictions the validation pass already made."""

    def on_epoch_begin(self, net, **kwargs):
        self.correct_, self.seen_ = 0, 0

    def on_batch_end(self, net, batch=None, training=False, y_pred=None, **kwargs):
        if training or y_pred is None:
            return
        yb = batch[1].to(y_pred.device)
        self.correct_ += int((y_pred.argmax(1) == yb).sum())
        self.seen_ += len(yb)

    def on_epoch_end(self, net, dataset_valid=None, **kwargs):
        if dataset_valid is not None and self.seen_:
            net.history.record("valid_acc", self.correct_ / self.seen_)
