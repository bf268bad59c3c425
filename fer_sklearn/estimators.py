"""scikit-learn classifiers for face images, built on skorch.

``FERClassifier`` trains any registered architecture; ``CNNClassifier``,
``ResNetClassifier`` and ``DenseNetClassifier`` are the same class with a
family's default. All of sklearn works on them: ``clone``, pipelines,
cross-validation, ``GridSearchCV`` over ``module__*`` options, pickling.
"""

import contextlib
import inspect
import numbers
import warnings

import numpy as np
import torch
from sklearn.preprocessing import LabelEncoder
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import _check_feature_names, check_is_fitted, column_or_1d
from skorch import NeuralNetClassifier
from skorch.callbacks import (
    Checkpoint,
    EarlyStopping,
    EpochTimer,
    PassthroughScoring,
    PrintLog,
)
from skorch.dataset import ValidSplit, unpack_data
from skorch.exceptions import DeviceWarning
from skorch.utils import to_tensor
from torch import nn
from torch.nn import functional as F

from ._checks import is_real, is_whole
from ._images import TOO_FEW_SAMPLES, as_image_array, check_fitted_images
from ._torch_utils import (
    BAD_PRECISION,
    bf16_supported,
    channels_last_safe,
    free_device_memory,
    resolve_device,
    resolve_precision,
    seed_from,
    seeded,
)
from ._training import (
    BatchIterator,
    BatchLRSchedule,
    TimeBudget,
    ValidAccuracy,
    augment_batch,
    configured_lrs,
    schedule_epochs,
    small_epochs,
)
from .architectures import create, get_spec
from .architectures._registry import check_options

LENGTH_MISMATCH = "X has {n_x} samples but y has {n_y}; they must be the same length."
Y_IS_NONE = "{name} requires y to be passed, but the target y is None."
UNKNOWN_LABELS = "y has label(s) {unknown} not among the classes {classes} of this model."
UNSEEN_AT_SCORE = (
    "y has label(s) {labels} that were never seen in fit (classes: {classes}); the model "
    "cannot predict them, so they count as errors."
)
OOM_RETRY = (
    "{device} ran out of memory at batch size {old}; the fit starts over with batch size "
    "{new} (recorded in oom_retries_; set batch_size lower to avoid the retry)."
)
BAD_MAX_EPOCHS = "max_epochs={value!r} is not a whole number of epochs >= 0."
BAD_BATCH_SIZE = "batch_size={value!r} is not a whole number >= 1 (or -1: all images in one batch)."
BAD_LR = "lr={value!r} is not a positive number."
BAD_LABEL_SMOOTHING = "label_smoothing={value!r} is not a number in [0, 1)."
BAD_LR_SCHEDULE = "lr_schedule={value!r} is not one of None, 'cosine', 'onecycle'."
BAD_TIME_BUDGET = "time_budget={value!r} is not None or a positive number of seconds."
BAD_EARLY_STOPPING = "early_stopping={value!r} is not None or a positive number of epochs."
EPOCHS_ARGUMENT = ("{name}.{method}() takes no epochs=; set max_epochs (each fit call trains "
                   "its own schedule of max_epochs).")
BAD_PROGRESSIVE_RESIZE = (
    "progressive_resize={value!r} is not None or (side, fraction) with an integer "
    "side >= 8 and 0 <= fraction <= 1, e.g. (32, 0.5)."
)
WRONG_FAMILY = (
    "{name} takes a {family} architecture ({valid}); got {arch!r}. "
    "Use FERClassifier(architecture={arch!r}) for any registered architecture."
)
UNKNOWN_CLASS_WEIGHT_LABEL = "class_weight names label(s) {labels} that are not in y."
BAD_CLASS_WEIGHT = ("class_weight={value!r} is not None, 'balanced' or a dict of label -> "
                    "weight (e.g. {{'disgust': 3.0}}).")

UNKNOWN_AUGMENT = "Unknown augmentation option(s) {unknown}; valid: {valid}."
BAD_OPTIMIZER = ("optimizer={value!r} is not an optimizer class such as torch.optim.AdamW "
                 "(in a config file, its import path: optimizer = \"torch.optim.SGD\").")
BAD_OPTIMIZER_OPTION = "{optimizer} refuses its options: {reason}"
UNKNOWN_OPTIMIZER_OPTION = ("{optimizer} takes no option(s) {unknown} (optimizer__...); "
                            "it takes: {valid}.")
LOSS_OPTIONS_NEED_CROSS_ENTROPY = (
    "label_smoothing and class_weight build the default loss, CrossEntropyLoss, and apply "
    "only when criterion is that class (or a subclass); with criterion={criterion!r} pass "
    "them to it as criterion__ options instead.")
TOO_SMALL_INPUT = ("{arch} needs images of at least {need}x{need} pixels; this fit would "
                   "train at {side}x{side} (the images, or progressive_resize's side). "
                   "Use larger images, a larger side, or another architecture.")
_AUGMENT_DEFAULTS = {"shift": 0.1, "rotation": 10.0, "scale": 0.1, "flip": True}


# What a fit records about its data and sets before (or while) initialising the
# network: restored when the data or the parameters are rejected.
_FIT_STATE = ("input_shape_", "n_features_in_", "feature_names_in_", "label_encoder_",
              "class_weight_", "class_counts_", "batch_size_", "oom_retries_", "amp_dtype_",
              "channels_last_", "callbacks_")
# Prefixes of options read each time batches are drawn.
_READ_PER_BATCH = ("iterator_train", "iterator_valid", "dataset", "augment")
# The parts set_params may rebuild on a fitted model: put back when it fails.
_BUILT_PARTS = ("module_", "criterion_", "optimizer_", "class_weight_", "amp_dtype_",
                "channels_last_", "virtual_params_")
# Parameters the default callbacks are built from (at initialisation).
_CALLBACK_PARAMS = frozenset({"lr_schedule", "time_budget", "early_stopping", "checkpoint_dir",
                              "train_split"})


def _check_optimizer_options(optimizer, names):
    """Refuse ``optimizer__`` options the optimizer class does not take."""
    try:
        params = inspect.signature(optimizer).parameters
    except (TypeError, ValueError):  # not introspectable: the optimizer itself checks
        return
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return
    valid = [n for n in params if n != "params"]
    unknown = sorted(set(names) - set(valid))
    if unknown:
        raise ValueError(UNKNOWN_OPTIMIZER_OPTION.format(
            optimizer=getattr(optimizer, "__name__", optimizer), unknown=unknown,
            valid=", ".join(valid)))


def _check_augment_options(names):
    unknown = sorted(set(names) - set(_AUGMENT_DEFAULTS))
    if unknown:
        raise ValueError(UNKNOWN_AUGMENT.format(
            unknown=", ".join(f"augment__{k}" for k in unknown),
            valid=", ".join(f"augment__{k}" for k in _AUGMENT_DEFAULTS)))


class FERClassifier(NeuralNetClassifier):
    """A face-expression classifier around any registered architecture.

    Parameters
    ----------
    architecture : str, default="cnn"
        Registry name (see :func:`fer_sklearn.architectures.list_architectures`).
        Its options are set as ``module__<option>`` (e.g. ``module__width=32``).
    module : torch.nn.Module class or instance, default=None
        Use this network instead of the registry (skorch's usual ``module``).
    criterion : default=torch.nn.CrossEntropyLoss
    optimizer : default=torch.optim.AdamW
        Its options as ``optimizer__<option>`` (e.g. ``optimizer__weight_decay``).
        Adam and AdamW run PyTorch's fused implementation where it exists for
        the device (``optimizer__fused=False`` for the per-tensor one).
    lr : float, default=1e-3
    max_epochs : int, default=10
    batch_size : int, default=64
    lr_schedule : {"cosine", "onecycle"} or None, default="cosine"
        Per-batch schedule over the fit (see :class:`fer_sklearn._training.BatchLRSchedule`).
    label_smoothing : float, default=0.0
        Passed to ``CrossEntropyLoss`` (refused with another ``criterion``:
        pass it as a ``criterion__`` option there).
    class_weight : None, "balanced" or dict, default=None
        Loss weight per class (``"balanced"``: inverse class frequency, which
        helps rare classes such as ``disgust``); like ``label_smoothing``, only
        for the default ``CrossEntropyLoss``. On a fitted model,
        ``set_params`` of it or of ``label_smoothing`` rebuilds the loss, so
        a ``partial_fit`` or ``warm_start`` fit trains with the new values
        (``"balanced"`` over the class counts of the last full fit).
    augment : bool, default=True
        Random flip, shift, rotation and zoom of training batches only
        (``augment__flip``, ``augment__shift``, ``augment__rotation``,
        ``augment__scale`` tune it). Validation and prediction never augment.
    progressive_resize : (int, float) or None, default=None
        ``(side, fraction)``: train the first ``fraction`` of each fit's epochs on
        faces scaled down to ``side`` x ``side`` pixels, the rest at the data's
        own size (progressive resizing). Early epochs then cost less (a 32-pixel
        epoch about half a 48-pixel one), so more epochs fit a time budget; the
        last ones at full size match what prediction sees (a ``fraction`` below
        1 always leaves the last epoch at full size). Needs a network
        that takes the small size: the registry's own take any from 8 pixels,
        except ``vgg11_bn`` and ``convnext_tiny`` (32 at least; a smaller side
        is refused before training).
    time_budget : float or None, default=None
        Seconds the fit may take (wall clock, validation included). After
        every epoch the fit re-plans from the epochs' measured times: when
        ``max_epochs`` would not end in time, the learning-rate schedule and
        progressive resizing shrink to the most epochs that do, and the fit
        stops at their end (see :class:`fer_sklearn._training.TimeBudget`;
        initialisation and the end-of-fit callbacks fall outside the budget).
        It never trains more than ``max_epochs``.
    precision : {"auto", "bf16", "fp32"}, default="auto"
        ``auto`` uses bfloat16 autocast where the device runs it fast (NVIDIA
        GPUs from Ampere, CPUs with AVX512-BF16/AMX) and fp32 elsewhere;
        ``bf16`` also where a GPU only emulates it.
    channels_last : bool, default=True
        Channels-last memory layout for the module and batches.
    early_stopping : int or None, default=None
        Patience in epochs; holds out ``validation_fraction`` of the training
        data (stratified) and restores the best epoch's weights.
    validation_fraction : float, default=0.1
        Only used with ``early_stopping`` and no explicit ``train_split``.
    checkpoint_dir : str or None, default=None
        Save the best parameters there during training (skorch ``Checkpoint``).
    train_split : callable or None, default=None
        skorch's internal validation split. None (the default) trains on all
        of ``X``: model selection belongs to the caller (``GridSearchCV``'s folds),
        not to a second hidden split inside every fit.
    device : str, default="auto"
        ``"auto"`` takes CUDA when available, else the CPU; any torch device
        string works. ``"cuda"`` without a GPU fails at once with a clear error.
    random_state : int, RandomState or None, default=None
        Seeds weight initialisation, shuffling, augmentation and dropout:
        two CPU fits with the same value give identical models.
    verbose : int, default=0
        1 prints skorch's per-epoch table (progress for long fits).
    **kwargs
        Any other skorch parameter or routed option (``module__*``,
        ``optimizer__*``, ``criterion__*``, ``iterator_train__*``, ``augment__*``).

    Attributes
    ----------
    classes_ : ndarray of str
        Labels in sorted order; ``predict`` returns them.
    n_features_in_ : int
        Pixels per image (C*H*W) seen in ``fit``.
    input_shape_ : tuple
        ``(C, H, W)`` of the training images.
    module_ : torch.nn.Module
        The trained network.
    batch_size_ : int
        The batch size the fit used: ``batch_size``, halved after each
        out-of-memory error on the device (the fit then starts over, with a
        ``ResourceWarning``; an ``iterator_train__batch_size`` is halved too).
        ``set_params(batch_size=...)`` sets it for the next fit call.
    class_counts_ : ndarray of int
        Training images per class (``classes_`` order) of the last full fit.
    oom_retries_ : list of [int, int]
        ``[old, new]`` batch sizes of each such retry (empty when none).
    schedule_epochs_ : int
        The epochs the last fit's schedule spanned: ``max_epochs``, or fewer
        where ``time_budget`` shortened it.
    full_size_from_ : int or None
        With ``progressive_resize``: the epoch (from 0) of the last fit from
        which faces trained at full size; None if none did.
    train_side_ : int or None
        The side the current (or last) epoch scaled training faces to; None
        for their own size.

    Examples
    --------
    >>> from fer_sklearn import CNNClassifier
    >>> clf = CNNClassifier(max_epochs=1, module__width=8, random_state=0)
    >>> clf.fit(X, y).predict(X[:3])  # doctest: +SKIP
    array(['happy', 'sad', 'happy'], dtype='<U7')
    """

    prefixes_ = NeuralNetClassifier.prefixes_ + ["augment"]
    _family = None

    def __init__(
        self,
        architecture="cnn",
        *,
        module=None,
        criterion=nn.CrossEntropyLoss,
        optimizer=torch.optim.AdamW,
        lr=1e-3,
        max_epochs=10,
        batch_size=64,
        lr_schedule="cosine",
        label_smoothing=0.0,
        class_weight=None,
        augment=True,
        progressive_resize=None,
        time_budget=None,
        precision="auto",
        channels_last=True,
        early_stopping=None,
        validation_fraction=0.1,
        checkpoint_dir=None,
        train_split=None,
        iterator_train=BatchIterator,
        iterator_valid=BatchIterator,
        callbacks=None,
        device="auto",
        random_state=None,
        verbose=0,
        **kwargs,
    ):
        super().__init__(
            module,
            criterion=criterion,
            optimizer=optimizer,
            lr=lr,
            max_epochs=max_epochs,
            batch_size=batch_size,
            train_split=train_split,
            iterator_train=iterator_train,
            iterator_valid=iterator_valid,
            callbacks=callbacks,
            device=device,
            verbose=verbose,
            **kwargs,
        )
        self.architecture = architecture
        self.lr_schedule = lr_schedule
        self.label_smoothing = label_smoothing
        self.class_weight = class_weight
        self.augment = augment
        self.progressive_resize = progressive_resize
        self.time_budget = time_budget
        self.precision = precision
        self.channels_last = channels_last
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.checkpoint_dir = checkpoint_dir
        self.random_state = random_state

    # ------------------------------------------------------------------ device
    @contextlib.contextmanager
    def _resolved_device(self):
        # skorch reads ``self.device`` everywhere; it must be a real torch device
        # while work runs, yet ``get_params`` must keep returning what the user
        # set ("auto"), so the resolved value is swapped in for the duration.
        requested = self.__dict__["device"]
        self.__dict__["device"] = resolve_device(requested)
        try:
            yield self.__dict__["device"]
        finally:
            self.__dict__["device"] = requested

    @contextlib.contextmanager
    def _evaluating(self):
        """The module in eval mode on the resolved device (yielded); its
        train/eval state is restored afterwards."""
        module = self.module_
        was_training = module.training
        with self._resolved_device() as device:
            module.eval()
            try:
                yield device
            finally:
                module.train(was_training)

    def set_params(self, **kwargs):
        """Set parameters; on a fitted model also the parts built from them.

        Every value is checked as ``fit`` checks it before anything changes.
        On a fitted model, new ``module__``/``criterion__`` options or a new
        ``architecture`` rebuild the network (untrained) as skorch does, from
        the weights a fresh fit with the same ``random_state`` starts from; new
        ``optimizer``/``optimizer__`` options, ``label_smoothing``,
        ``class_weight``, ``precision`` and ``channels_last`` apply to the next
        ``partial_fit`` (or ``warm_start`` fit) and, for the last two, to
        prediction too. A rebuild that fails leaves the model as it was.
        """
        if not self.initialized_:
            return super().set_params(**kwargs)
        self._check_new_params(kwargs)
        rebuild = _CALLBACK_PARAMS.intersection(kwargs)
        names = [*kwargs, *_BUILT_PARTS]
        before = self._kept(names)
        # skorch sets optimizer__ options on the optimizer in use, in place
        groups = [{k: v for k, v in g.items() if k != "params"}
                  for g in self.optimizer_.param_groups]
        try:
            self._set_initialized_params(dict(kwargs))
            if {"label_smoothing", "class_weight"}.intersection(kwargs) and hasattr(
                    self, "label_encoder_"):
                # The loss is built from these at initialisation: rebuild it, so
                # that a partial_fit or warm_start fit trains with the new values.
                self._rebuild_criterion()
        except Exception:
            self._restore(names, before)
            for group, kept in zip(self.optimizer_.param_groups, groups):
                group.update(kept)
            raise
        if "batch_size" in kwargs and hasattr(self, "batch_size_"):
            # The next fit call, partial_fit included, trains in the new batches.
            self.batch_size_, self.oom_retries_ = kwargs["batch_size"], []
        if rebuild:
            # The default callbacks are built from these at initialisation: rebuild
            # them, so that a partial_fit or warm_start fit uses the new values too.
            self.initialize_callbacks()
        return self

    def _check_new_params(self, kwargs):
        """Check the parameters as they would be after ``set_params(**kwargs)``
        (written in for the checks, then put back), so that nothing changes
        when one is refused."""
        kept = self._kept(kwargs)
        self.__dict__.update(kwargs)
        try:
            self._check_params()
            resolve_precision(self.precision, resolve_device(self.device))
            self._check_optimizer_params()
        finally:
            self._restore(kwargs, kept)

    def _check_optimizer_params(self):
        """Build the optimizer with its options on a stand-in weight: names it
        does not take and values it refuses (a negative lr, a beta of 2) fail
        here, before the model's own optimizer is touched."""
        options = {k: v for k, v in self.get_params_for("optimizer").items()
                   if k not in ("param_groups", "fused", "foreach", "capturable")}
        _check_optimizer_options(self.optimizer, options)
        options.setdefault("lr", self.lr)
        try:
            self.optimizer([torch.zeros(1, requires_grad=True)], **options)
        except (TypeError, ValueError) as exc:
            raise ValueError(BAD_OPTIMIZER_OPTION.format(
                optimizer=getattr(self.optimizer, "__name__", self.optimizer),
                reason=exc)) from exc

    def _set_initialized_params(self, kwargs):
        # Options read when batches are drawn need no rebuild (skorch refuses them
        # on an initialised net): they are set as they are.
        for key in [k for k in kwargs if k.split("__")[0] in _READ_PER_BATCH]:
            setattr(self, key, kwargs.pop(key))
        # skorch applies optimizer__ options to the optimizer in use only; they
        # are kept as parameters too, so that get_params, clone, the next fit and
        # a rebuilt optimizer have them.
        for key in [k for k in kwargs if k.startswith("optimizer__")
                    and not k.startswith("optimizer__param_groups")]:
            setattr(self, key, kwargs[key])
        new_optimizer = False
        for key in ("optimizer", "optimizer__param_groups"):  # a new optimizer, built anew
            if key in kwargs:
                setattr(self, key, kwargs.pop(key))
                new_optimizer = True
        new_architecture = (self.module is None and "architecture" in kwargs
                            and kwargs["architecture"] != self.architecture)
        new_device = "device" in kwargs
        if new_device:
            super().set_params(device=kwargs.pop("device"))
        # A rebuilt network (skorch rebuilds it for module__ options) starts from
        # the weights a fresh fit with the same random_state would draw; only a
        # rebuild draws, and the caller's random streams stay as they were.
        rebuilt = new_architecture or any(k.split("__")[0] == "module" for k in kwargs)
        seed = seed_from(kwargs.get("random_state", self.random_state)) if rebuilt else None
        with self._resolved_device() as device, seeded(seed, device):
            super().set_params(**kwargs)
            if new_architecture:  # as skorch does for new module__ options
                self._initialize_module()
                self._initialize_criterion()
                new_optimizer = True
            elif "channels_last" in kwargs or new_device:  # the layout safe there
                self.channels_last_ = (bool(self.channels_last)
                                       and channels_last_safe(self.module_, device))
                self.module_.to(memory_format=torch.channels_last if self.channels_last_
                                else torch.contiguous_format)
            if "precision" in kwargs or new_device:
                self.amp_dtype_ = resolve_precision(self.precision, device)
            if new_optimizer:
                self._initialize_optimizer()

    def __setstate__(self, state):
        # Models pickled before these parameters existed still refit.
        state.setdefault("progressive_resize", None)
        state.setdefault("time_budget", None)
        requested = state.get("device")
        if str(requested) == "auto":
            state["device"] = resolve_device("auto")
        with warnings.catch_warnings():
            # skorch warns that device=None becomes "cpu"; here it stays None.
            warnings.filterwarnings("ignore", message=".*requested device was not specified",
                                    category=DeviceWarning)
            super().__setstate__(state)
        if requested is None or str(requested) == "auto":
            # skorch loads onto a real device (None: the CPU) and records it;
            # the parameter stays what the user set.
            self.__dict__["device"] = requested
        if getattr(self, "amp_dtype_", None) is not None and not bf16_supported(
            resolve_device(self.device), emulated=self.precision == "bf16"
        ):
            # Trained with bf16 autocast on hardware this machine lacks: run fp32.
            self.amp_dtype_ = None
        module = getattr(self, "module_", None)
        if getattr(self, "channels_last_", False) and module is not None and not (
                channels_last_safe(module, resolve_device(self.device))):
            # Fitted where channels-last is safe (a GPU), loaded where it is not.
            self.channels_last_ = False
            module.to(memory_format=torch.contiguous_format)

    # ------------------------------------------------------------ components
    @property
    def classes_(self):
        if not hasattr(self, "label_encoder_"):
            raise AttributeError(
                f"{type(self).__name__} has no attribute 'classes_' before fit"
            )
        return self.label_encoder_.classes_

    def _n_classes(self):
        if hasattr(self, "label_encoder_"):
            return len(self.label_encoder_.classes_)
        return len(self.classes) if self.classes is not None else 7

    def initialize(self):
        with self._resolved_device() as device:
            self.amp_dtype_ = resolve_precision(self.precision, device)
            self._check_params()
            return super().initialize()

    def _check_callback_params(self, **values):
        """Check the parameters the default callbacks are built from (their
        current values, or those given)."""
        get = lambda k: values.get(k, getattr(self, k))  # noqa: E731
        if get("lr_schedule") not in (None, "cosine", "onecycle"):
            raise ValueError(BAD_LR_SCHEDULE.format(value=get("lr_schedule")))
        budget = get("time_budget")
        if budget is not None and (isinstance(budget, bool) or not isinstance(
                budget, numbers.Real) or not budget > 0):
            raise ValueError(BAD_TIME_BUDGET.format(value=budget))
        patience = get("early_stopping")
        if patience is not None and (isinstance(patience, bool) or not isinstance(
                patience, numbers.Integral) or patience < 1):
            raise ValueError(BAD_EARLY_STOPPING.format(value=patience))

    def check_params(self):
        """Check the parameters without building anything or touching data.

        ``fit`` and ``initialize`` run the same checks; call it to find a bad
        value before long work starts (the benchmark does, for every recipe).

        Raises
        ------
        ValueError
            Naming the parameter, its value and what it takes.
        """
        self._check_params()

    def _check_params(self):
        self._check_family()
        self._check_scalars()
        self._check_choices()
        self._check_callback_params()
        if self.module is None:
            check_options(self.architecture, self.get_params_for("module"))
        _check_augment_options(self.get_params_for("augment"))
        resolve_device(self.device)  # the precision: initialize(), restored on failure
        self._check_progressive_resize()

    def _check_scalars(self):
        if not is_whole(self.max_epochs, 0):
            raise ValueError(BAD_MAX_EPOCHS.format(value=self.max_epochs))
        if not is_whole(self.batch_size, -1) or self.batch_size == 0:  # -1: one batch of all
            raise ValueError(BAD_BATCH_SIZE.format(value=self.batch_size))
        if not (is_real(self.lr) and self.lr > 0):
            raise ValueError(BAD_LR.format(value=self.lr))
        if not (is_real(self.label_smoothing) and 0 <= self.label_smoothing < 1):
            raise ValueError(BAD_LABEL_SMOOTHING.format(value=self.label_smoothing))

    def _check_choices(self):
        """Values from a fixed set, or of a fixed kind: class weights, precision,
        optimizer, and loss options only with the default loss."""
        weight = self.class_weight
        if not (weight is None or (isinstance(weight, str) and weight == "balanced") or (
                isinstance(weight, dict) and all(is_real(v) and v >= 0
                                                 for v in weight.values()))):
            raise ValueError(BAD_CLASS_WEIGHT.format(value=weight))
        if self.precision not in ("auto", "bf16", "fp32"):
            raise ValueError(BAD_PRECISION.format(precision=self.precision))
        if not callable(self.optimizer):
            raise ValueError(BAD_OPTIMIZER.format(value=self.optimizer))
        criterion = self.criterion
        default = isinstance(criterion, type) and issubclass(criterion, nn.CrossEntropyLoss)
        if not default and (self.label_smoothing or self.class_weight is not None):
            raise ValueError(LOSS_OPTIONS_NEED_CROSS_ENTROPY.format(criterion=criterion))

    def _check_progressive_resize(self):
        value = self.progressive_resize
        if value is None:
            return
        try:
            side, fraction = value
            ok = (float(side) == int(side) and int(side) >= 8 and 0 <= float(fraction) <= 1)
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise ValueError(BAD_PROGRESSIVE_RESIZE.format(value=value))

    def _check_family(self):
        if self._family is None or self.module is not None:
            return
        spec = get_spec(self.architecture)
        if spec.family != self._family:
            from .architectures import list_architectures

            raise ValueError(
                WRONG_FAMILY.format(
                    name=type(self).__name__,
                    family=self._family,
                    valid=", ".join(list_architectures(self._family)),
                    arch=self.architecture,
                )
            )

    def _check_input_size(self):
        """Refuse images (or a progressive-resize side) smaller than the
        registry network's ``min_input_size``, before building it."""
        spec = get_spec(self.architecture)
        shape = getattr(self, "input_shape_", None)
        if spec.min_input_size is None or spec.input_size is not None or shape is None:
            return
        side = min(shape[-2:])
        if self.progressive_resize is not None and float(self.progressive_resize[1]) > 0:
            side = min(side, int(self.progressive_resize[0]))
        if side < spec.min_input_size:
            raise ValueError(TOO_SMALL_INPUT.format(arch=self.architecture, side=side,
                                                    need=spec.min_input_size))

    def initialize_module(self):
        kwargs = self.get_params_for("module")
        in_chans = getattr(self, "input_shape_", (1,))[0]
        if self.module is not None:
            module = self.initialized_instance(self.module, kwargs)
        else:
            self._check_input_size()
            module = create(self.architecture, num_classes=self._n_classes(),
                            in_chans=in_chans, **kwargs)
        # channels_last_ is the layout in use: the requested one where it is safe.
        self.channels_last_ = bool(self.channels_last) and channels_last_safe(module, self.device)
        if self.channels_last_:
            module = module.to(memory_format=torch.channels_last)
        self.module_ = module
        return self

    def initialize_criterion(self):
        kwargs = self.get_params_for("criterion")
        criterion = self.criterion
        if isinstance(criterion, type) and issubclass(criterion, nn.CrossEntropyLoss):
            kwargs.setdefault("label_smoothing", self.label_smoothing)
            weight = getattr(self, "class_weight_", None)
            if weight is not None:
                kwargs.setdefault("weight", torch.as_tensor(weight, dtype=torch.float32))
        self.criterion_ = self.initialized_instance(criterion, kwargs)
        return self

    def initialize_optimizer(self, triggered_directly=None):
        # Adam and AdamW take PyTorch's fused kernel (one pass over all the
        # weights instead of a dozen ops per tensor) where the installed
        # PyTorch has it for the device; optimizer__fused/foreach override.
        if self.optimizer in (torch.optim.Adam, torch.optim.AdamW):
            args, kwargs = self.get_params_for_optimizer(
                "optimizer", self.get_all_learnable_params())
            if "fused" not in kwargs and "foreach" not in kwargs:
                try:
                    self.optimizer_ = self.optimizer(*args, fused=True, **kwargs)
                    return self
                except RuntimeError:  # no fused kernel for this device or version
                    pass
        return super().initialize_optimizer(triggered_directly)

    @property
    def _default_callbacks(self):
        callbacks = [
            ("epoch_timer", EpochTimer()),
            ("train_loss", PassthroughScoring(name="train_loss", on_train=True)),
            ("valid_loss", PassthroughScoring(name="valid_loss")),
            ("valid_acc", ValidAccuracy()),
        ]
        if self.lr_schedule is not None:
            callbacks.append(("lr_schedule", BatchLRSchedule(self.lr_schedule)))
        if self.time_budget is not None:
            callbacks.append(("time_budget", TimeBudget(self.time_budget)))
        if self.early_stopping is not None:
            callbacks.append(("early_stopping", EarlyStopping(
                monitor="valid_loss", patience=int(self.early_stopping), load_best=True)))
        if self.checkpoint_dir is not None:
            monitor = "valid_loss_best" if self._validates() else "train_loss_best"
            callbacks.append(("checkpoint", Checkpoint(
                dirname=str(self.checkpoint_dir), monitor=monitor, f_pickle=None)))
        callbacks.append(("print_log", PrintLog()))
        return callbacks

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        super().on_train_begin(net, X=X, y=y, **kwargs)
        # Each fit call runs its own schedule; a time budget may shorten it.
        self.schedule_epochs_ = self.max_epochs
        self.full_size_from_ = None
        self._fit_start_epoch_ = len(self.history)
        if self.lr_schedule is None and getattr(self, "lr_annealed_", False):
            # Without a schedule, too, a fit trains at the configured lr, not at
            # the 0 an earlier fit's schedule left (a user's own lr scheduler
            # callback otherwise goes on from where it was).
            for group, lr in zip(self.optimizer_.param_groups, configured_lrs(self)):
                group["lr"] = lr
            self.lr_annealed_ = False

    def on_epoch_begin(self, net, dataset_train=None, dataset_valid=None, **kwargs):
        epoch = len(self.history) - self._fit_start_epoch_  # of this fit, from 0
        planned = schedule_epochs(self)
        if epoch >= planned:
            raise KeyboardInterrupt  # skorch ends the fit here, as early stopping does
        # The side this epoch's training faces are scaled to (None: their own
        # size), decided once here: the first part of the schedule is small,
        # and once an epoch has trained at full size every later one does too.
        self.train_side_ = None
        if self.progressive_resize is not None and self.full_size_from_ is None:
            side = int(self.progressive_resize[0])
            if (epoch < small_epochs(self.progressive_resize, planned)
                    and side < min(self.input_shape_[-2:])):
                self.train_side_ = side
            else:
                self.full_size_from_ = epoch
        super().on_epoch_begin(net, dataset_train=dataset_train,
                               dataset_valid=dataset_valid, **kwargs)

    def _validates(self):
        return self.train_split is not None or self.early_stopping is not None

    def get_split_datasets(self, X, y=None, **fit_params):
        if self.train_split is None and self.early_stopping is not None:
            dataset = self.get_dataset(X, y)
            split = ValidSplit(self.validation_fraction, stratified=True,
                               random_state=seed_from(self.random_state))
            return split(dataset, y, **fit_params)
        return super().get_split_datasets(X, y, **fit_params)

    def _batch_size(self, n, training):
        """The batch size batches of ``n`` samples are drawn with:
        ``iterator_train__``/``iterator_valid__batch_size`` over ``batch_size_``
        (-1: all ``n``), at most ``batch_size_`` after an out-of-memory retry."""
        prefix = "iterator_train" if training else "iterator_valid"
        size = self.get_params_for(prefix).get(
            "batch_size", getattr(self, "batch_size_", self.batch_size))
        size = n if size == -1 else size
        if getattr(self, "oom_retries_", None):  # the device ran out of memory at more
            size = min(size, self.batch_size_)
        return size

    def get_iterator(self, dataset, training=False):
        prefix = "iterator_train" if training else "iterator_valid"
        kwargs = self.get_params_for(prefix)
        iterator = self.iterator_train if training else self.iterator_valid
        kwargs["batch_size"] = self._batch_size(len(dataset), training)
        if training:
            kwargs.setdefault("shuffle", True)
        return iterator(dataset, **kwargs)

    # ------------------------------------------------------------- forward
    def _model_input(self, x, augment=True):
        """uint8 or float batch on the device -> what the module takes.

        Floats are used as given (so gradients can flow back to them); the
        batch is resized and its channels repeated for fixed-input
        architectures; training batches are augmented (and scaled down in the
        epochs ``progressive_resize`` names) unless ``augment`` is False.
        """
        if x.dtype == torch.uint8:
            x = x.float().div_(255.0)
        elif x.dtype != torch.float32:
            x = x.float()
        if self.module is None:
            spec = get_spec(self.architecture)
            if spec.input_size is not None and tuple(x.shape[-2:]) != (spec.input_size,) * 2:
                x = F.interpolate(x, size=(spec.input_size,) * 2, mode="bilinear",
                                  align_corners=False)
            if spec.in_chans is not None and x.shape[1] != spec.in_chans:
                x = x.mean(1, keepdim=True).expand(-1, spec.in_chans, -1, -1)
        if augment and self.module_.training:
            side = getattr(self, "train_side_", None)
            if self.augment:
                x = augment_batch(x, size=side,
                                  **{**_AUGMENT_DEFAULTS, **self.get_params_for("augment")})
            elif side is not None:
                x = F.interpolate(x, size=(side, side), mode="bilinear", antialias=True,
                                  align_corners=False)
        if getattr(self, "channels_last_", False):
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def infer(self, x, **fit_params):
        x = self._model_input(to_tensor(x, device=self.device))
        amp = getattr(self, "amp_dtype_", None)
        device_type = torch.device(self.device or "cpu").type
        with torch.autocast(device_type=device_type, dtype=amp or torch.float32,
                            enabled=amp is not None):
            out = self.module_(x, **fit_params)
        # Logits leave autocast as float32: the loss and softmax need full range.
        return out.float()

    def evaluation_step(self, batch, training=False):
        self.check_is_fitted()
        Xi, _ = unpack_data(batch)
        mode = torch.enable_grad() if training else torch.inference_mode()
        with mode:
            self._set_training(training)
            return self.infer(Xi)

    def load_params(self, *args, **kwargs):
        with self._resolved_device():
            return super().load_params(*args, **kwargs)

    def forward_iter(self, X, training=False, device="cpu"):
        with self._resolved_device():
            yield from super().forward_iter(X, training=training, device=device)

    # ------------------------------------------------------------ fit/predict
    def _validate_X(self, X, reset):
        if not reset:
            check_is_fitted(self, "input_shape_")
        images, n_features = as_image_array(X, estimator=self, return_n_features=True)
        if reset:
            _check_feature_names(self, X, reset=True)
            self.input_shape_ = tuple(images.shape[1:])
            self.n_features_in_ = n_features
        else:
            _check_feature_names(self, X, reset=False)
            check_fitted_images(self, images, n_features)
        return images

    def _validate_y(self, y, n, reset):
        if y is None:
            raise ValueError(Y_IS_NONE.format(name=type(self).__name__))
        y = column_or_1d(y, warn=True)
        check_classification_targets(y)
        if len(y) != n:
            raise ValueError(LENGTH_MISMATCH.format(n_x=n, n_y=len(y)))
        if reset:
            encoder = LabelEncoder().fit(self.classes if self.classes is not None else y)
            self.label_encoder_ = encoder
        unknown = np.setdiff1d(y, self.label_encoder_.classes_)
        if len(unknown):
            raise ValueError(UNKNOWN_LABELS.format(
                unknown=unknown.tolist(), classes=self.label_encoder_.classes_.tolist()))
        return self.label_encoder_.transform(y).astype(np.int64)

    def _set_class_weight(self, y_enc):
        self.class_counts_ = np.bincount(y_enc, minlength=len(self.classes_))
        self.class_weight_ = self._class_weights(y_enc)

    def _class_weights(self, y_enc):
        """Per-class loss weights (``classes_`` order) for encoded labels ``y_enc``."""
        if self.class_weight is None:
            return None
        classes = np.arange(len(self.classes_))
        if isinstance(self.class_weight, dict):
            missing = set(self.class_weight) - set(self.classes_.tolist())
            if missing:
                raise ValueError(UNKNOWN_CLASS_WEIGHT_LABEL.format(labels=sorted(missing)))
            weight = {int(self.label_encoder_.transform([k])[0]): v
                      for k, v in self.class_weight.items()}
        elif isinstance(self.class_weight, str) and self.class_weight == "balanced":
            weight = self.class_weight
        else:
            raise ValueError(BAD_CLASS_WEIGHT.format(value=self.class_weight))
        w = np.ones(len(classes))
        if weight == "balanced":  # from the classes this fit's labels hold
            present = np.unique(y_enc)
            w[present] = compute_class_weight(weight, classes=present, y=y_enc)
        else:  # every class, also one absent from a first partial_fit batch
            w[:] = [weight.get(c, 1.0) for c in classes]
        return w.astype(np.float32)

    def _rebuild_criterion(self):
        """The loss again, from ``label_smoothing`` and ``class_weight`` as they
        are now (``balanced``: over the class counts of the last full fit)."""
        self._check_scalars()
        counts = getattr(self, "class_counts_", None)  # None: pickled before it existed
        if counts is None:
            counts = np.ones(len(self.classes_), dtype=np.int64)
        weight = self._class_weights(np.repeat(np.arange(len(counts)), counts))
        kept = self.class_weight_
        self.class_weight_ = weight
        try:
            with self._resolved_device():
                self._initialize_criterion()
        except Exception:
            self.class_weight_ = kept
            raise

    def fit(self, X, y, **fit_params):
        """Train the network on images ``X`` and labels ``y``.

        Parameters
        ----------
        X : array-like of shape (n, H, W), (n, C, H, W) or (n, H*W)
            uint8 pixels (scaled by 1/255 per batch) or floats used as given.
        y : array-like of shape (n,)
            Labels of any type (strings such as ``"happy"``).
        **fit_params
            Passed to the module's ``forward``.

        Returns
        -------
        self
        """
        if "epochs" in fit_params:
            raise TypeError(EPOCHS_ARGUMENT.format(name=type(self).__name__, method="fit"))
        warm = self.warm_start and self.initialized_ and hasattr(self, "label_encoder_")
        self._check_params()  # before any fitted state changes
        # Rejected data or parameters leave an earlier fit as it was (its
        # network still matches its recorded input shape and labels).
        kept = self._kept(_FIT_STATE)
        try:
            X = self._validate_X(X, reset=not warm)
            if len(X) < 2:
                raise ValueError(TOO_FEW_SAMPLES.format(name=type(self).__name__, n=len(X)))
            y = self._validate_y(y, len(X), reset=not warm)
            if not warm:
                self._set_class_weight(y)
        except Exception:
            self._restore(_FIT_STATE, kept)
            raise
        if not warm:
            self.batch_size_ = self.batch_size
            self.oom_retries_ = []
        while True:
            try:
                with self._resolved_device(), seeded(self._fit_seed(warm), self.device):
                    device = self.device
                    if not warm:
                        try:
                            self.initialize()
                        except Exception:
                            self._restore(_FIT_STATE, kept)
                            raise
                    return NeuralNetClassifier.partial_fit(self, X, y, **fit_params)
            except torch.cuda.OutOfMemoryError:
                old = self._batch_size(len(X), training=True)
                if warm or old <= 1:
                    raise
            # Start over at half the batch (the same seed, so the retry is reproducible),
            # outside the except block so that the failed step's tensors can be freed.
            self.batch_size_ = old // 2
            self.oom_retries_.append([old, self.batch_size_])
            warnings.warn(OOM_RETRY.format(device=device, old=old, new=self.batch_size_),
                          ResourceWarning, stacklevel=2)
            free_device_memory()

    def _kept(self, names):
        """The attributes ``names`` that are set, to :meth:`_restore` after a failure."""
        return {k: self.__dict__[k] for k in names if k in self.__dict__}

    def _restore(self, names, kept):
        """Set the attributes ``names`` back to ``kept`` (unset those it lacks)."""
        for k in names:
            self.__dict__.pop(k, None)
        self.__dict__.update(kept)

    def partial_fit(self, X, y, classes=None, **fit_params):
        """Continue training (initialising first if needed) on ``X``, ``y``.

        ``classes``, on the first call, lists every label later calls may
        bring (as in scikit-learn), so a first batch may lack some; without
        it the classes are those of the first batch. Later calls ignore it.
        """
        if "epochs" in fit_params:
            raise TypeError(EPOCHS_ARGUMENT.format(name=type(self).__name__,
                                                   method="partial_fit"))
        if not self.initialized_ or not hasattr(self, "label_encoder_"):
            if classes is None:
                return self.fit(X, y, **fit_params)
            # The encoder and the network's outputs follow ``classes``, as they
            # follow the ``classes`` parameter; get_params stays as it was.
            own = self.classes
            self.classes = list(classes)
            try:
                return self.fit(X, y, **fit_params)
            finally:
                self.classes = own
        self._check_params()
        X = self._validate_X(X, reset=False)
        y = self._validate_y(y, len(X), reset=False)
        # Seeded as fit is: the same random_state gives the same result, and the
        # caller's global random streams are left alone.
        with self._resolved_device(), seeded(self._fit_seed(True), self.device):
            return NeuralNetClassifier.partial_fit(self, X, y, **fit_params)

    def _fit_seed(self, continuing):
        """The seed of a fit call: a fresh fit's is ``random_state``'s; a call
        that continues training (``partial_fit``, a ``warm_start`` fit) also
        takes the epochs trained so far, so that each call draws new batches,
        augmentations and dropout (the same ones for the same ``random_state``)."""
        seed = seed_from(self.random_state)
        if seed is None or not continuing:
            return seed
        state = np.random.SeedSequence([seed % 2**63, len(self.history)]).generate_state(1)
        return int(state[0])

    def __sklearn_is_fitted__(self):
        # skorch's answer is "initialised"; predict needs a fit (its labels) too.
        return bool(self.initialized_) and hasattr(self, "label_encoder_")

    def predict_proba(self, X):
        """Class probabilities, shape (n, n_classes), columns in ``classes_`` order."""
        X = self._validate_X(X, reset=False)
        return super().predict_proba(X)

    def score(self, X, y, sample_weight=None):
        """Accuracy of ``predict(X)`` against ``y``.

        Labels of ``y`` that were not in the training labels can never be
        predicted; they are named in a ``UserWarning`` (and count as errors).
        """
        check_is_fitted(self, "label_encoder_")
        known = set(self.classes_.tolist())
        unseen = [v for v in np.unique(np.asarray(y)).tolist() if v not in known]
        if unseen:
            warnings.warn(UNSEEN_AT_SCORE.format(labels=unseen, classes=self.classes_.tolist()),
                          UserWarning, stacklevel=2)
        return super().score(X, y, sample_weight=sample_weight)

    def predict(self, X):
        """Predicted labels (values of ``classes_``)."""
        proba = self.predict_proba(X)
        return self.classes_[proba.argmax(axis=1)]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True
        tags.non_deterministic = self.random_state is None
        return tags


class CNNClassifier(FERClassifier):
    """:class:`FERClassifier` with the VGG-style ``cnn`` architecture by default."""

    _family = "cnn"

    def __init__(self, architecture="cnn", **kwargs):
        super().__init__(architecture, **kwargs)


class ResNetClassifier(FERClassifier):
    """:class:`FERClassifier` with ``resnet18`` (48x48 stem) by default."""

    _family = "resnet"

    def __init__(self, architecture="resnet18", **kwargs):
        super().__init__(architecture, **kwargs)


class DenseNetClassifier(FERClassifier):
    """:class:`FERClassifier` with the compact ``densenet_bc`` by default."""

    _family = "densenet"

    def __init__(self, architecture="densenet_bc", **kwargs):
        super().__init__(architecture, **kwargs)
