import pickle
import warnings

import joblib
import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from skorch.callbacks import Callback, EarlyStopping
from skorch.dataset import Dataset, ValidSplit
from skorch.exceptions import DeviceWarning

from fer_sklearn import (
    CNNClassifier,
    DenseNetClassifier,
    FERClassifier,
    ResNetClassifier,
)
from fer_sklearn._torch_utils import NO_CUDA, bf16_supported
from fer_sklearn._training import (
    BatchIterator,
    TimeBudget,
    epochs_that_fit,
    n_batches,
    seconds_left,
    small_epochs,
)
from fer_sklearn.preprocessing import PixelScaler

from .conftest import FAMILY_CONFIGS, FakeClock, make_faces

FAMILIES = sorted(FAMILY_CONFIGS)


def _estimator(family, **kwargs):
    name, options, _, _ = FAMILY_CONFIGS[family]
    params = dict(max_epochs=1, batch_size=16, random_state=0, **options)
    params.update(kwargs)
    return FERClassifier(architecture=name, **params)


@pytest.mark.parametrize("family", FAMILIES)
def test_clone_and_params_round_trip(family):
    est = _estimator(family, lr=0.02)
    params = est.get_params(deep=False)
    assert params["lr"] == 0.02 and params["device"] == "auto"
    copy = clone(est)
    assert copy.get_params(deep=False) == params
    assert "callbacks__lr_schedule__kind" in est.get_params(deep=True)
    option, values = FAMILY_CONFIGS[family][2:]
    copy.set_params(**{option: values[1], "lr": 0.5})
    assert copy.get_params()[option] == values[1] and copy.lr == 0.5
    assert est.get_params().get(option) != values[1]


@pytest.mark.parametrize("family", FAMILIES)
def test_pipeline_and_cross_val_score(family, faces):
    X, y = faces
    pipe = make_pipeline(PixelScaler(), _estimator(family))
    scores = cross_val_score(pipe, X, y, cv=StratifiedKFold(2, shuffle=True, random_state=0))
    assert scores.shape == (2,) and np.all((scores >= 0) & (scores <= 1))
    pipe.fit(X, y)
    assert set(pipe.predict(X)) <= set(y)


@pytest.mark.parametrize("family", FAMILIES)
def test_grid_search_over_lr_and_a_module_option(family, faces):
    X, y = faces
    option, values = FAMILY_CONFIGS[family][2:]
    search = GridSearchCV(_estimator(family), {"lr": [1e-3, 1e-2], option: values}, cv=2)
    search.fit(X, y)
    assert len(search.cv_results_["params"]) == 4
    assert search.best_params_[option] in values
    best = search.best_estimator_
    assert best.get_params()[option] == search.best_params_[option]
    assert best.predict_proba(X[:3]).shape == (3, 3)


@pytest.mark.parametrize("family", FAMILIES)
def test_pickle_and_joblib_round_trip(family, faces, tmp_path):
    X, y = faces
    est = _estimator(family).fit(X, y)
    expected = est.predict_proba(X)
    again = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(again.predict_proba(X), expected)
    joblib.dump(est, tmp_path / "model.joblib")
    loaded = joblib.load(tmp_path / "model.joblib")
    np.testing.assert_array_equal(loaded.predict(X), est.predict(X))
    assert loaded.get_params()["device"] == "auto"


@pytest.mark.parametrize("device", [None, "cpu", "auto"])
def test_a_pickled_model_keeps_its_device_parameter(faces, device):
    # device=None (skorch: move nothing) used to come back as "cpu".
    X, y = faces
    est = CNNClassifier(module__width=4, module__depth=2, max_epochs=1, device=device,
                        random_state=0).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = pickle.loads(pickle.dumps(est))
    assert again.get_params()["device"] == device
    np.testing.assert_array_equal(again.predict_proba(X), est.predict_proba(X))


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_a_cuda_model_loaded_without_cuda_still_warns_that_it_moved(faces):
    X, y = faces
    est = CNNClassifier(module__width=4, module__depth=2, max_epochs=1, random_state=0).fit(X, y)
    est.__dict__["device"] = "cuda"  # as pickled on a GPU machine
    with pytest.warns(DeviceWarning, match="no CUDA devices are available"):
        again = pickle.loads(pickle.dumps(est))
    assert str(again.device) == "cpu" and again.predict(X[:2]).shape == (2,)


def test_family_classes_default_to_their_family_and_reject_others(faces):
    assert CNNClassifier().architecture == "cnn"
    assert ResNetClassifier().architecture == "resnet18"
    assert DenseNetClassifier().architecture == "densenet_bc"
    X, y = faces
    with pytest.raises(ValueError, match="ResNetClassifier takes a resnet architecture"):
        ResNetClassifier(architecture="cnn", max_epochs=1).fit(X, y)


def test_string_labels_and_probabilities(faces):
    X, y = faces
    clf = CNNClassifier(max_epochs=10, lr=0.01, batch_size=8, module__width=8,
                        module__depth=2, augment=False, random_state=0).fit(X, y)
    assert clf.classes_.tolist() == ["angry", "happy", "sad"]
    proba = clf.predict_proba(X)
    np.testing.assert_allclose(proba.sum(1), 1, rtol=1e-5)
    assert proba.dtype == np.float32
    pred = clf.predict(X)
    assert pred.dtype.kind == "U"
    assert (pred == y).mean() > 0.9  # the bars are trivially learnable
    assert clf.score(X, y) == pytest.approx((pred == y).mean())


@pytest.mark.parametrize("form", ["uint8_3d", "uint8_4d", "float_4d", "flat", "dataframe"])
def test_input_forms_all_give_one_shape(form, faces):
    X, y = faces
    converted = {
        "uint8_3d": X,
        "uint8_4d": X[:, None],
        "float_4d": X[:, None].astype(np.float64) / 255,
        "flat": X.reshape(len(X), -1),
        "dataframe": pd.DataFrame(X.reshape(len(X), -1)),
    }[form]
    clf = CNNClassifier(max_epochs=1, module__width=4, module__depth=2, random_state=0)
    clf.fit(converted, y)
    assert clf.input_shape_ == (1, 48, 48)
    assert clf.n_features_in_ == 2304
    assert clf.predict(converted[:5]).shape == (5,)


def test_only_uint8_pixels_are_divided_by_255_other_dtypes_are_used_as_given(faces):
    # README: "uint8 pixels are divided by 255 per batch; every other dtype,
    # integers included, is used as given"; bool images are 0 and 255
    from fer_sklearn._images import as_image_array

    X, y = faces
    clf = CNNClassifier(max_epochs=1, module__width=4, module__depth=2, random_state=0).fit(X, y)
    ints = X[:6].astype(np.int16)
    as_given = clf.predict_proba(X[:6].astype(np.float32))
    np.testing.assert_allclose(clf.predict_proba(ints), as_given, rtol=1e-5, atol=1e-6)
    divided = clf.predict_proba(X[:6].astype(np.float32) / 255)
    np.testing.assert_allclose(clf.predict_proba(X[:6]), divided, rtol=1e-5, atol=1e-6)
    assert not np.allclose(as_given, divided)
    mask = X[:2] > 128
    images = as_image_array(mask)
    assert images.dtype == np.uint8 and set(np.unique(images)) <= {0, 255}
    np.testing.assert_array_equal(images[:, 0], np.where(mask, 255, 0))


def test_flat_predict_accepted_after_image_fit(faces):
    X, y = faces
    clf = CNNClassifier(max_epochs=1, module__width=4, module__depth=2, random_state=0)
    clf.fit(X, y)
    np.testing.assert_array_equal(clf.predict_proba(X.reshape(len(X), -1)),
                                  clf.predict_proba(X))


def test_same_random_state_same_model_different_state_differs(faces):
    X, y = faces

    def fit(seed):
        return CNNClassifier(max_epochs=2, module__width=4, module__depth=2,
                             random_state=seed).fit(X, y).predict_proba(X)

    np.testing.assert_array_equal(fit(3), fit(3))
    assert not np.array_equal(fit(3), fit(4))


def test_fitting_does_not_touch_the_global_torch_rng(faces):
    X, y = faces
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    CNNClassifier(max_epochs=1, module__width=4, module__depth=2, random_state=0).fit(X, y)
    assert torch.rand(1) == before


def test_augmentation_only_while_training(faces):
    X, y = faces
    clf = CNNClassifier(max_epochs=1, module__width=4, module__depth=2,
                        random_state=0, augment__rotation=20.0).fit(X, y)
    batch = torch.as_tensor(X[:8, None])
    clf.module_.train()
    augmented = clf._model_input(batch)
    clf.module_.eval()
    plain = clf._model_input(batch)
    np.testing.assert_allclose(plain.numpy(), X[:8, None] / 255.0, rtol=1e-6)
    assert not torch.allclose(augmented, plain)
    # prediction is deterministic: no augmentation leaks into it
    np.testing.assert_array_equal(clf.predict_proba(X), clf.predict_proba(X))


class _SideSpy(Callback):
    """Records (epoch, training?, input side) of every forward pass of the fit."""

    def on_train_begin(self, net, **kwargs):
        self.seen = []
        net.module_.register_forward_pre_hook(
            lambda module, args: self.seen.append(
                (len(net.history), module.training, args[0].shape[-1])))


@pytest.mark.parametrize("augment", [True, False])
def test_progressive_resize_trains_small_first_then_at_full_size(augment, faces):
    X, y = faces
    spy = _SideSpy()
    clf = CNNClassifier(max_epochs=4, batch_size=16, module__width=4, module__depth=2,
                        random_state=0, augment=augment, progressive_resize=(24, 0.5),
                        train_split=ValidSplit(0.25, stratified=True, random_state=0),
                        callbacks=[("spy", spy)]).fit(X, y)
    train = {(epoch, side) for epoch, training, side in spy.seen if training}
    assert train == {(1, 24), (2, 24), (3, 48), (4, 48)}
    # the held-out faces are scored at their own size in every epoch
    assert {side for _, training, side in spy.seen if not training} == {48}
    assert clf.predict_proba(X).shape == (len(X), 3)
    assert clone(CNNClassifier(progressive_resize=(24, 0.5))).progressive_resize == (24, 0.5)


@pytest.mark.parametrize("value", [(4, 0.5), (32, 1.5), (32.5, 0.5), "32", (32,)])
def test_bad_progressive_resize_is_named(value, faces):
    X, y = faces
    with pytest.raises(ValueError, match="progressive_resize=.*e.g. \\(32, 0.5\\)"):
        CNNClassifier(max_epochs=1, module__width=4, progressive_resize=value).fit(X, y)


def test_epochs_that_fit_is_the_longest_schedule_within_the_budget():
    none_small = lambda epochs: 0  # noqa: E731
    assert epochs_that_fit(2, 20, 100, 10, 10, 10, none_small) == 10  # exactly 100 s
    assert epochs_that_fit(2, 20, 100, 10, 12, 12, none_small) == 8  # 20 + 6 * 12 = 92
    # half the schedule at the small size: 13 epochs = 6 small (round(6.5)) + 7 full
    half = lambda epochs: small_epochs((24, 0.5), epochs)  # noqa: E731
    assert epochs_that_fit(0, 0, 100, 20, 10, 5, half) == 13
    # what is trained stays trained, however late
    assert epochs_that_fit(5, 200, 100, 10, 10, 10, none_small) == 5
    # what the rest of a plan takes: epochs 2..12 of 13, those before 6 small
    assert seconds_left(2, 13, 10, 5, half) == 4 * 5 + 7 * 10
    assert seconds_left(13, 13, 10, 5, half) == 0


def test_time_budget_shortens_the_schedule_to_end_in_time(faces, monkeypatch):
    X, y = faces
    clock = FakeClock()
    monkeypatch.setattr(TimeBudget, "clock", clock)
    batches = 3  # 48 faces in batches of 16
    # planned: 4 epochs at 24 px (a quarter unit per batch) + 4 at 48 px = 5 units
    # per batch; the budget is 4: after the first epoch the fit re-plans to 7 epochs,
    # 4 small and 3 full (round(3.5) = 4), which end exactly on time
    params = dict(max_epochs=8, batch_size=16, module__width=4, module__depth=2,
                  random_state=0, lr_schedule="cosine", progressive_resize=(24, 0.5))
    clf = CNNClassifier(time_budget=4.0 * batches, callbacks=[("clock", clock)],
                        **params).fit(X, y)
    assert len(clf.history) == clf.schedule_epochs_ == 7
    assert clf.history[:, "schedule_epochs"] == [7] * 7
    sides = sorted(set(clock.sides))
    assert sides == [(1, 24), (2, 24), (3, 24), (4, 24), (5, 48), (6, 48), (7, 48)]
    assert clock.now == pytest.approx(4.0 * batches)
    # the shortened cosine still anneals to its end
    assert clf.optimizer_.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-9)
    # the fit's bookkeeping is not mistaken for parameters (clone would carry it)
    assert set(clf.get_params(deep=False)) == set(CNNClassifier(**params).get_params(deep=False))
    # a budget that fits the whole schedule exactly changes nothing
    clock = FakeClock()
    monkeypatch.setattr(TimeBudget, "clock", clock)
    roomy = CNNClassifier(time_budget=5.0 * batches, callbacks=[("clock", clock)],
                          **params).fit(X, y)
    assert len(roomy.history) == roomy.schedule_epochs_ == 8 and roomy.full_size_from_ == 4


class _PacedNet:
    """What TimeBudget reads of a fit: no resizing, a history to record in."""

    progressive_resize = train_side_ = full_size_from_ = None

    def __init__(self, max_epochs):
        from skorch.history import History

        self.max_epochs, self.history = max_epochs, History()


@pytest.mark.parametrize("times, epochs", [([20.0] * 4, 5), ([18.0, 22.0] * 2, 4)])
def test_time_budget_keeps_the_spread_of_the_epoch_times_in_hand(times, epochs):
    # Epochs of 18 and 22 s (mean 20): after four, 80 s of a 100-s budget are
    # spent. A plan on the mean alone ran a fifth, which ends past the budget
    # whenever it is one of the slower ones; steady 20-s epochs keep no margin.
    now = [0.0]
    budget = TimeBudget(100.0)
    budget.clock = lambda: now[0]
    net = _PacedNet(max_epochs=10)
    budget.on_train_begin(net)
    for seconds in times:
        now[0] += seconds
        net.history.new_epoch()
        budget.on_epoch_end(net)
    assert net.schedule_epochs_ == epochs


def test_time_budget_keeps_the_small_epochs_spread_until_full_ones_are_timed():
    # Small epochs of 4.5 and 5.5 s at half a full epoch's cost: full ones are
    # expected at 10 s, give or take 1.4 (their spread, doubled). With 10 s
    # spent, ten epochs (three more small, five full) would end exactly on the
    # 75-s budget, so the plan keeps the margin and trains nine.
    now = [0.0]
    budget = TimeBudget(75.0, small_cost=0.5)
    budget.clock = lambda: now[0]
    net = _PacedNet(max_epochs=10)
    net.progressive_resize, net.train_side_ = (24, 0.5), 24
    budget.on_train_begin(net)
    for seconds in (4.5, 5.5):
        now[0] += seconds
        net.history.new_epoch()
        budget.on_epoch_end(net)
    assert net.schedule_epochs_ == 9
    budget.times_[True] = [5.0, 5.0]  # steady small epochs keep no margin:
    now[0] += 5.0  # a third, of 5 s, and the ten fit
    net.history.new_epoch()
    budget.on_epoch_end(net)
    assert budget.done_ == 3 and net.schedule_epochs_ == 10


def test_time_budget_never_goes_back_to_small_faces(faces, monkeypatch):
    X, y = faces
    clock = FakeClock()
    monkeypatch.setattr(TimeBudget, "clock", clock)
    # Told that a 24-pixel epoch costs an eighth of a full one (it costs a quarter),
    # the fit first expects full-size epochs twice as slow as they are and plans
    # short; once it has timed one, the schedule grows again, but the faces stay
    # at full size.
    clf = CNNClassifier(max_epochs=8, batch_size=16, module__width=4, module__depth=2,
                        random_state=0, progressive_resize=(24, 0.5), time_budget=15.0,
                        callbacks__time_budget__small_cost=0.125,
                        callbacks=[("clock", clock)]).fit(X, y)
    sides = [side for _, side in sorted(set(clock.sides))]
    assert sides == sorted(sides) and sides[0] == 24 and sides[-1] == 48
    plans = clf.history[:, "schedule_epochs"]
    assert min(plans) < plans[-1] == len(clf.history)  # shortened, then grown back
    assert clock.now <= 15.0


def test_time_budget_grows_an_initial_plan_that_was_too_short(faces, monkeypatch):
    X, y = faces
    clock = FakeClock()
    monkeypatch.setattr(TimeBudget, "clock", clock)
    # A probe guessed 4 epochs; the budget holds all 8 (4 small + 4 full, 15 units
    # for 3 batches an epoch): after the first epoch the schedule grows to 8.
    clf = CNNClassifier(max_epochs=8, batch_size=16, module__width=4, module__depth=2,
                        random_state=0, lr_schedule="cosine", progressive_resize=(24, 0.5),
                        time_budget=15.0, callbacks__time_budget__initial_epochs=4,
                        callbacks=[("clock", clock)]).fit(X, y)
    assert len(clf.history) == 8 and clf.history[:, "schedule_epochs"] == [8] * 8
    assert [side for _, side in sorted(set(clock.sides))] == [24] * 4 + [48] * 4
    assert clock.now == pytest.approx(15.0)
    assert clf.optimizer_.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-9)


class _LRs(Callback):
    """The lr of each training batch, as the optimizer has it when the batch starts."""

    def on_train_begin(self, net, **kwargs):
        self.lrs = []

    def on_batch_begin(self, net, training=False, **kwargs):
        if training:
            self.lrs.append(net.optimizer_.param_groups[0]["lr"])


@pytest.mark.parametrize("initial, budget", [(4, 15.0), (8, 9.0)])
def test_a_replanned_one_cycle_goes_on_from_where_it_stood(faces, monkeypatch, initial,
                                                          budget):
    # A re-plan once recomputed the schedule's progress over the new length: the
    # lr jumped (back into the warm-up when the plan grew, so the fit warmed up
    # twice), and the one-cycle might never reach its peak.
    X, y = faces
    clock = FakeClock()
    monkeypatch.setattr(TimeBudget, "clock", clock)
    lrs = _LRs()
    clf = CNNClassifier(max_epochs=8, batch_size=16, module__width=4, module__depth=2,
                        random_state=0, lr=1.0, lr_schedule="onecycle",
                        progressive_resize=(24, 0.5), time_budget=budget,
                        callbacks__time_budget__initial_epochs=initial,
                        callbacks=[("clock", clock), ("lrs", lrs)]).fit(X, y)
    plans = clf.history[:, "schedule_epochs"]
    assert plans[0] != initial or len(set(plans)) > 1  # the plan did change
    peak = int(np.argmax(lrs.lrs))
    rising, falling = np.diff(lrs.lrs[:peak + 1]), np.diff(lrs.lrs[peak:])
    assert (rising > 0).all() and (falling < 0).all()  # one warm-up, one decay
    assert lrs.lrs[0] == pytest.approx(1 / 25) and max(lrs.lrs) > 0.9
    assert clf.optimizer_.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-9)


def test_a_model_pickled_before_time_budget_existed_still_refits(faces):
    X, y = faces
    clf = CNNClassifier(max_epochs=1, module__width=4, module__depth=2, random_state=0).fit(X, y)
    state = clf.__getstate__()
    del state["time_budget"], state["progressive_resize"]
    old = CNNClassifier.__new__(CNNClassifier)
    old.__setstate__(state)
    assert old.time_budget is None and old.fit(X, y).predict(X[:2]).shape == (2,)


@pytest.mark.parametrize("value", [0, -1, "20", True])
def test_bad_time_budget_is_named(value, faces):
    X, y = faces
    with pytest.raises(ValueError, match="time_budget=.*positive number of seconds"):
        CNNClassifier(max_epochs=1, module__width=4, time_budget=value).fit(X, y)


@pytest.mark.parametrize("param, value, message", [
    ("max_epochs", "2", "BAD_MAX_EPOCHS"), ("max_epochs", -1, "BAD_MAX_EPOCHS"),
    ("max_epochs", 2.0, "BAD_MAX_EPOCHS"), ("batch_size", 0, "BAD_BATCH_SIZE"),
    ("batch_size", True, "BAD_BATCH_SIZE"), ("batch_size", -2, "BAD_BATCH_SIZE"),
    ("lr", "1e-3", "BAD_LR"), ("lr", 0, "BAD_LR"),
    ("label_smoothing", 1.0, "BAD_LABEL_SMOOTHING"), ("label_smoothing", None,
                                                      "BAD_LABEL_SMOOTHING")])
def test_bad_training_numbers_are_named_before_anything_is_built(param, value, message):
    # max_epochs="2" once failed deep in the fit with "'str' object cannot be
    # interpreted as an integer"; check_params finds it with no data at all
    import re

    from fer_sklearn import estimators

    clf = CNNClassifier(**{param: value})
    expected = re.escape(getattr(estimators, message).format(value=value))
    with pytest.raises(ValueError, match=expected):
        clf.check_params()
    assert not hasattr(clf, "module_")
    with pytest.raises(ValueError, match=expected):
        clf.initialize()
    CNNClassifier(max_epochs=0, batch_size=1, lr=1, label_smoothing=0.5).check_params()
    CNNClassifier(batch_size=-1, max_epochs=np.int64(2), lr=np.float32(1e-3)).check_params()


def test_precision_and_layout_options(faces):
    X, y = faces
    fp32 = CNNClassifier(max_epochs=1, module__width=4, module__depth=2, random_state=0,
                         precision="fp32", channels_last=False).fit(X, y)
    assert fp32.amp_dtype_ is None and fp32.channels_last_ is False
    wide = CNNClassifier(max_epochs=1, module__width=32, module__depth=2, random_state=0,
                         channels_last=True).fit(X, y)
    assert wide.channels_last_ is True
    assert wide.module_.features[0][0][0].weight.is_contiguous(memory_format=torch.channels_last)
    auto = CNNClassifier(max_epochs=1, module__width=4, module__depth=2, random_state=0,
                         precision="auto").fit(X, y)
    from fer_sklearn._torch_utils import bf16_supported

    assert (auto.amp_dtype_ is torch.bfloat16) == bf16_supported("cpu")
    assert auto.predict_proba(X).dtype == np.float32
    with pytest.raises(ValueError, match="precision='fp16' is not one of"):
        CNNClassifier(precision="fp16", max_epochs=1).fit(X, y)


def test_class_weight_label_smoothing_and_optimizer_routing(faces):
    X, y = faces
    y = y.copy()
    y[:30] = "happy"  # imbalance
    clf = CNNClassifier(max_epochs=1, module__width=4, module__depth=2, random_state=0,
                        class_weight="balanced", label_smoothing=0.1,
                        optimizer=torch.optim.SGD, optimizer__momentum=0.9).fit(X, y)
    weight = clf.criterion_.weight.numpy()
    counts = pd.Series(y).value_counts()[clf.classes_].to_numpy()
    np.testing.assert_allclose(weight, len(y) / (len(counts) * counts), rtol=1e-5)
    assert clf.criterion_.label_smoothing == 0.1
    assert isinstance(clf.optimizer_, torch.optim.SGD)
    assert clf.optimizer_.param_groups[0]["momentum"] == 0.9


@pytest.mark.parametrize("value", ["balance", 3.0, ["disgust"]])
def test_bad_class_weight_is_named(value, faces):
    X, y = faces
    with pytest.raises(ValueError, match="class_weight=.* is not None, 'balanced' or a dict"):
        CNNClassifier(max_epochs=1, module__width=4, class_weight=value).fit(X, y)


def test_a_class_weight_for_a_label_not_in_y_is_named(faces):
    # without this check scikit-learn's "previously unseen labels" would surface
    X, y = faces
    with pytest.raises(ValueError) as err:
        CNNClassifier(max_epochs=1, module__width=4, class_weight={"disgus": 3.0}).fit(X, y)
    assert str(err.value) == "class_weight names label(s) ['disgus'] that are not in y."


def test_bf16_on_a_machine_without_it_says_what_to_use(faces, monkeypatch):
    from fer_sklearn import _torch_utils

    X, y = faces
    monkeypatch.setattr(_torch_utils, "bf16_supported", lambda device, emulated=False: False)
    with pytest.raises(ValueError) as err:
        CNNClassifier(max_epochs=1, module__width=4, precision="bf16").fit(X, y)
    assert str(err.value) == _torch_utils.NO_BF16.format(device="cpu")
    assert "precision='auto'" in str(err.value)


def test_adam_runs_fused_where_available_unless_asked_otherwise(faces, monkeypatch):
    X, y = faces
    small = dict(max_epochs=1, module__width=4, module__depth=2, random_state=0,
                 precision="fp32")
    fused = CNNClassifier(**small).fit(X, y)
    if tuple(int(v) for v in torch.__version__.split(".")[:2]) >= (2, 4):
        assert fused.optimizer_.defaults["fused"] is True  # a fused CPU kernel since 2.4
    plain = CNNClassifier(**small, optimizer__fused=False).fit(X, y)
    assert not plain.optimizer_.defaults["fused"]
    # Same updates either way, up to rounding.
    np.testing.assert_allclose(fused.predict_proba(X), plain.predict_proba(X), atol=1e-4)
    # Where the installed PyTorch has no fused kernel for the device: the per-tensor one.
    real = torch.optim.AdamW.__init__

    def no_fused(self, params, *args, fused=None, **kwargs):
        if fused:
            raise RuntimeError("`fused=True` requires all the params to be on a supported device")
        real(self, params, *args, **kwargs)

    monkeypatch.setattr(torch.optim.AdamW, "__init__", no_fused)
    fallback = CNNClassifier(**small).fit(X, y)
    assert not fallback.optimizer_.defaults.get("fused")


def test_lr_schedule_decays_to_zero(faces):
    X, y = faces
    clf = CNNClassifier(max_epochs=3, lr=0.1, module__width=4, module__depth=2,
                        random_state=0, lr_schedule="cosine").fit(X, y)
    assert clf.optimizer_.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-9)
    # 48 faces in batches of 47: the lone 48th joins the batch, one step per epoch
    clf.set_params(batch_size=47).fit(X, y)
    assert clf.optimizer_.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-9)
    assert [n_batches(n, 47) for n in (47, 48, 49, 95, 1)] == [1, 1, 2, 2, 1]
    # the count is the iterator's own, whatever the batch size
    for n, batch in [(2, 1), (3, 2), (48, 47), (95, 47), (0, 4), (10, 4)]:
        batches = BatchIterator(Dataset(np.zeros((n, 2)), np.zeros(n)), batch_size=batch)
        assert len(list(batches)) == len(batches) == n_batches(n, batch)
    with pytest.raises(ValueError, match="lr_schedule='linear'"):
        CNNClassifier(lr_schedule="linear", max_epochs=1).fit(X, y)


def test_early_stopping_holds_out_validation_and_records_it(faces):
    X, y = faces
    clf = CNNClassifier(max_epochs=30, module__width=4, module__depth=2, random_state=0,
                        early_stopping=2, validation_fraction=0.25, lr=0.05).fit(X, y)
    history = clf.history
    assert "valid_loss" in history[-1] and "valid_acc" in history[-1]
    # it stopped: the last two epochs did not improve on the best
    assert len(history) < 30 and not any(history[-2:, "valid_loss_best"])
    # on a quarter of the 48 faces, held out of training
    assert history[-1, "batches"][-1]["valid_batch_size"] == 12


def test_checkpoint_writes_parameters(faces, tmp_path):
    X, y = faces
    clf = CNNClassifier(max_epochs=1, module__width=4, module__depth=2, random_state=0,
                        checkpoint_dir=tmp_path / "ckpt").fit(X, y)
    # the best (here the only) epoch's parameters: they load back
    other = CNNClassifier(max_epochs=1, module__width=4, module__depth=2, random_state=1).fit(X, y)
    other.load_params(f_params=tmp_path / "ckpt" / "params.pt")
    np.testing.assert_allclose(other.predict_proba(X), clf.predict_proba(X), rtol=1e-5)


def test_verbose_prints_epoch_progress(faces, capsys):
    X, y = faces
    CNNClassifier(max_epochs=2, module__width=4, module__depth=2, random_state=0,
                  verbose=1).fit(X, y)
    out = capsys.readouterr().out
    assert "epoch" in out and "train_loss" in out


def test_model_saved_with_a_cuda_device_loads_on_cpu(faces):
    X, y = faces
    clf = CNNClassifier(max_epochs=1, module__width=4, module__depth=2,
                        random_state=0, device="cpu").fit(X, y)
    expected = clf.predict_proba(X)
    clf.__dict__["device"] = "cuda"  # as if trained on a GPU machine
    blob = pickle.dumps(clf)
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU; the fallback is for CPU-only machines")
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        loaded = pickle.loads(blob)
    assert str(loaded.device) == "cpu"
    np.testing.assert_allclose(loaded.predict_proba(X), expected, rtol=1e-5)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_gpu_fails_early_with_our_message(faces):
    X, y = faces
    clf = CNNClassifier(device="cuda", max_epochs=1)
    with pytest.raises(ValueError) as err:
        clf.fit(X, y)
    assert str(err.value) == NO_CUDA.format(device="cuda")
    with pytest.raises(ValueError, match="not a torch device"):
        CNNClassifier(device="gpu0", max_epochs=1).fit(X, y)


def test_auto_device_resolves_to_what_torch_sees(faces):
    X, y = faces
    clf = CNNClassifier(max_epochs=1, module__width=4, module__depth=2, random_state=0)
    clf.fit(X, y)
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert next(clf.module_.parameters()).device.type == expected
    assert clf.device == "auto"


@pytest.mark.parametrize("bad, message", [
    ("nan", "NaN"),
    ("inf", "infinity"),
    ("length", "X has 48 samples but y has 47"),
    ("one_sample", "at least 2 samples"),
    ("one_d", "Expected 2D array"),
    ("five_d", "Expected images of shape"),
])
def test_bad_input_is_rejected_with_a_clear_error(bad, message, faces):
    X, y = faces
    Xf = X.astype(np.float32)
    clf = CNNClassifier(max_epochs=1, module__width=4, module__depth=2)
    args = {
        "nan": (np.where(np.arange(Xf.size).reshape(Xf.shape) == 5, np.nan, Xf), y),
        "inf": (np.where(np.arange(Xf.size).reshape(Xf.shape) == 5, np.inf, Xf), y),
        "length": (X, y[:-1]),
        "one_sample": (X[:1], y[:1]),
        "one_d": (X[0, 0], y[:48]),
        "five_d": (X[:, None, None], y),
    }[bad]
    with pytest.raises(ValueError, match=message):
        clf.fit(*args)


def test_predict_with_wrong_image_size_names_both_sizes(faces):
    X, y = faces
    clf = CNNClassifier(max_epochs=1, module__width=4, module__depth=2).fit(X, y)
    with pytest.raises(ValueError, match="X has 1024 features, but CNNClassifier is expecting 2304"):
        clf.predict(X[:, :32, :32])


def test_unknown_architecture_fails_at_fit_with_valid_names(faces):
    X, y = faces
    with pytest.raises(ValueError, match="Unknown architecture 'resnet19'.*resnet18"):
        FERClassifier("resnet19", max_epochs=1).fit(X, y)


def test_unknown_labels_at_partial_fit_are_named(faces):
    X, y = faces
    clf = CNNClassifier(max_epochs=1, module__width=4, module__depth=2).fit(X, y)
    with pytest.raises(ValueError, match="'fear'"):
        clf.partial_fit(X[:4], np.array(["fear"] * 4))
    clf.partial_fit(X[:4], y[:4])  # known labels continue training
    assert len(clf.history) == 2


def _weights(clf):
    return [p.detach().clone() for p in clf.module_.parameters()]


def _moved(before, clf):
    return max(float((a - b.detach()).abs().max())
               for a, b in zip(before, clf.module_.parameters()))


class LRLog(Callback):
    """Appends the lr of every training batch to ``seen``."""

    def __init__(self, seen):
        self.seen = seen

    def on_batch_begin(self, net, training=False, **kwargs):
        if training:
            self.seen.append(net.optimizer_.param_groups[0]["lr"])


@pytest.mark.parametrize("schedule", ["cosine", "onecycle"])
def test_later_fits_restart_the_lr_schedule_from_its_start(faces, schedule, tmp_path):
    X, y = faces
    small = dict(module__width=4, module__depth=2, random_state=0, lr=0.01, max_epochs=2,
                 lr_schedule=schedule)
    clf = CNNClassifier(**small).fit(X, y)
    assert clf.optimizer_.param_groups[0]["lr"] == 0  # annealed
    before = _weights(clf)
    seen = []

    clf.callbacks_.append(("lr_log", LRLog(seen)))
    clf.partial_fit(X, y)
    assert _moved(before, clf) > 1e-4 and 0.005 < max(seen) <= 0.01
    warm = CNNClassifier(**small, warm_start=True).fit(X, y)
    before = _weights(warm)
    warm.fit(X, y)
    assert _moved(before, warm) > 1e-4
    # an lr set in between is the new start
    seen.clear()
    clf.set_params(lr=0.002)
    clf.partial_fit(X, y)
    assert 0.001 < max(seen) <= 0.002
    # so is the configured one after a reloaded, annealed optimizer state
    clf.save_params(f_params=tmp_path / "p.pt", f_optimizer=tmp_path / "o.pt")
    again = CNNClassifier(**small).fit(X, y)
    again.load_params(f_params=tmp_path / "p.pt", f_optimizer=tmp_path / "o.pt")
    assert again.optimizer_.param_groups[0]["lr"] == 0
    before = _weights(again)
    again.partial_fit(X, y)
    assert _moved(before, again) > 1e-4


def test_callback_options_set_on_a_fitted_model_apply_to_the_next_partial_fit(faces, monkeypatch):
    X, y = faces
    seen = []

    clf = CNNClassifier(module__width=4, module__depth=2, random_state=0, lr=0.01, max_epochs=3,
                        batch_size=16, lr_schedule="onecycle",
                        callbacks=[("lr_log", LRLog(seen))]).fit(X, y)
    assert seen[0] < 0.001 and clf.optimizer_.param_groups[0]["lr"] == 0
    # no schedule: the next fit trains at the configured lr, not the annealed 0
    seen.clear()
    clf.set_params(lr_schedule=None)
    assert "lr_schedule" not in dict(clf.callbacks_)
    clf.partial_fit(X, y)
    assert seen == [0.01] * 9
    clf.set_params(lr_schedule="cosine", early_stopping=2)
    assert isinstance(dict(clf.callbacks_)["early_stopping"], EarlyStopping)
    seen.clear()
    clf.partial_fit(X, y)
    assert seen[0] == 0.01 and seen[-1] < seen[0]
    # a rejected value changes nothing, the other values given with it included
    for bad in ({"lr_schedule": "cos"}, {"early_stopping": "x"}, {"time_budget": -1}):
        with pytest.raises(ValueError, match=f"{next(iter(bad))}="):
            clf.set_params(batch_size=4, **bad)
    assert clf.lr_schedule == "cosine" and clf.early_stopping == 2
    assert clf.batch_size == clf.batch_size_ == 16
    # options read per batch change on a fitted model too (skorch refuses them there)
    import fer_sklearn.estimators as estimators_module

    shifts, real = [], estimators_module.augment_batch
    monkeypatch.setattr(estimators_module, "augment_batch",
                        lambda x, **kw: shifts.append(kw["shift"]) or real(x, **kw))
    seen.clear()
    clf.set_params(iterator_train__batch_size=24, augment__shift=0.05).partial_fit(X, y)
    assert set(shifts) == {0.05} and len(seen) < 9


def test_loss_options_set_on_a_fitted_model_apply_to_the_next_partial_fit(faces):
    # set_params(label_smoothing=..., class_weight=...) on a fitted model once
    # changed get_params only: partial_fit and warm_start fits kept the old loss
    X, y = faces
    clf = CNNClassifier(module__width=4, module__depth=2, random_state=0, max_epochs=1,
                        batch_size=16).fit(X, y)
    assert clf.criterion_.label_smoothing == 0.0 and clf.criterion_.weight is None
    classes = clf.classes_.tolist()
    clf.set_params(label_smoothing=0.2, class_weight={classes[1]: 5.0})
    assert clf.criterion_.label_smoothing == 0.2
    assert clf.criterion_.weight.tolist() == [5.0 if c == classes[1] else 1.0 for c in classes]
    clf.partial_fit(X, y)
    assert clf.criterion_.label_smoothing == 0.2 and clf.criterion_.weight[1] == 5.0
    # balanced: over the class counts of the last full fit
    counts = np.array([np.sum(y == c) for c in classes])
    assert clf.class_counts_.tolist() == counts.tolist()
    clf.set_params(class_weight="balanced")
    np.testing.assert_allclose(clf.criterion_.weight.numpy(),
                               len(y) / (len(classes) * counts), rtol=1e-6)
    # a bad value changes nothing
    with pytest.raises(ValueError, match="label_smoothing=1.5"):
        clf.set_params(label_smoothing=1.5)
    with pytest.raises(ValueError, match=r"class_weight names label\(s\) \['joy'\]"):
        clf.set_params(class_weight={"joy": 2.0})
    assert clf.label_smoothing == 0.2 and clf.class_weight == "balanced"
    np.testing.assert_allclose(clf.criterion_.weight.numpy(),
                               len(y) / (len(classes) * counts), rtol=1e-6)


def test_partial_fit_is_seeded_as_fit_is(faces):
    # partial_fit once drew from the global torch stream: two equal models went
    # apart, and the caller's random state moved
    X, y = faces
    make = lambda: CNNClassifier(module__width=4, module__depth=2, random_state=0,  # noqa: E731
                                 max_epochs=1, batch_size=16).fit(X, y)
    a, b = make(), make()
    state = torch.get_rng_state()
    a.partial_fit(X, y)
    torch.rand(3)  # the caller draws in between
    b.partial_fit(X, y)
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))
    torch.set_rng_state(state)
    expected = torch.rand(3)
    torch.set_rng_state(state)
    a.partial_fit(X, y)
    assert torch.equal(torch.rand(3), expected)


def test_a_users_own_lr_scheduler_goes_on_across_partial_fits(faces):
    from skorch.callbacks import LRScheduler

    X, y = faces
    seen = []

    class EpochLRLog(Callback):
        def on_epoch_begin(self, net, **kwargs):
            seen.append(net.optimizer_.param_groups[0]["lr"])

    clf = CNNClassifier(module__width=4, module__depth=2, random_state=0, lr=0.01, max_epochs=2,
                        lr_schedule=None, callbacks=[
                            ("step", LRScheduler("StepLR", step_size=1, gamma=0.5)),
                            ("lr_log", EpochLRLog())]).fit(X, y)
    clf.partial_fit(X, y)
    assert seen[:2] == pytest.approx([0.01, 0.005])
    assert seen[2] <= 0.0025 and seen[3] < seen[2]  # goes on; no restart at 0.01


def test_lr_schedule_counts_the_training_iterator_batches(faces):
    X, y = faces
    seen = []

    CNNClassifier(module__width=4, module__depth=2, random_state=0, lr=0.01, max_epochs=2,
                  batch_size=64, iterator_train__batch_size=8,
                  callbacks=[("lr_log", LRLog(seen))]).fit(X, y)
    assert len(seen) == 12  # 48 faces in batches of 8, twice
    assert all(a > b for a, b in zip(seen, seen[1:])) and seen[-1] > 0


def test_options_of_a_fitted_model_can_change_with_device_auto(faces):
    X, y = faces
    clf = CNNClassifier(module__width=4, module__depth=2, max_epochs=1, random_state=0).fit(X, y)
    clf.set_params(module__width=6, criterion__label_smoothing=0.2, optimizer__weight_decay=0.1)
    assert clf.device == "auto" and clf.get_params()["module__width"] == 6
    assert clf.module_.features[0][0][0].out_channels == 6
    assert clf.fit(X, y).predict(X[:3]).shape == (3,)


class _InitialWeights(Callback):
    def on_train_begin(self, net, **kwargs):
        self.state = {k: v.clone() for k, v in net.module_.state_dict().items()}


def test_a_rebuilt_network_starts_where_a_fresh_fit_starts(faces):
    # A rebuild by set_params draws its weights from the random_state, as a
    # fresh fit does, and leaves the caller's random stream alone.
    X, y = faces
    rebuilt = []
    for _ in range(2):
        clf = CNNClassifier(module__width=4, module__depth=2, max_epochs=1,
                            random_state=0).fit(X, y)
        stream = torch.random.get_rng_state()
        clf.set_params(module__width=6)
        assert torch.equal(torch.random.get_rng_state(), stream)
        rebuilt.append(clf.module_.state_dict())
    start = _InitialWeights()
    CNNClassifier(module__width=6, module__depth=2, max_epochs=1, random_state=0,
                  callbacks=[("start", start)]).fit(X, y)
    for key, value in start.state.items():
        assert torch.equal(rebuilt[0][key], value) and torch.equal(rebuilt[1][key], value)
    # a random_state given with the rebuild is the one it draws from
    clf.set_params(module__width=6, random_state=1)
    fresh = _InitialWeights()
    CNNClassifier(module__width=6, module__depth=2, max_epochs=1, random_state=1,
                  callbacks=[("start", fresh)]).fit(X, y)
    for key, value in fresh.state.items():
        assert torch.equal(clf.module_.state_dict()[key], value)


def test_set_params_on_a_fitted_model_keeps_a_new_device_and_draws_only_to_rebuild(faces):
    X, y = faces
    stream = np.random.RandomState(0)
    clf = CNNClassifier(module__width=4, module__depth=2, max_epochs=1,
                        random_state=stream).fit(X, y)
    drawn = stream.get_state()[1].copy(), stream.get_state()[2]
    clf.set_params(device="cpu", lr=0.01)
    assert clf.get_params()["device"] == "cpu"
    after = stream.get_state()
    assert np.array_equal(after[1], drawn[0]) and after[2] == drawn[1]
    clf.set_params(device="auto")
    assert clf.get_params()["device"] == "auto"
    assert clf.fit(X, y).predict(X[:2]).shape == (2,)


def test_a_network_option_the_rebuild_rejects_leaves_every_parameter_as_it_was(faces):
    X, y = faces
    clf = CNNClassifier(module__width=4, module__depth=2, max_epochs=1, random_state=0).fit(X, y)
    expected = clf.predict_proba(X)
    for bad in ({"module__width": -3}, {"module__widht": 3},
                {"module__depth": 0, "module__dropout": 0.1, "lr": 0.5, "device": "cpu"}):
        with pytest.raises(ValueError, match="width|depth"):
            clf.set_params(**bad)
        params = clf.get_params()
        assert params["module__width"] == 4 and params["module__depth"] == 2
        assert "module__widht" not in params and "module__dropout" not in params
        assert params["lr"] == 0.001 and params["device"] == "auto"
        np.testing.assert_allclose(clf.predict_proba(X), expected)
    assert clf.fit(X, y).module_.features[0][0][0].out_channels == 4


def test_a_rejected_refit_keeps_the_earlier_fit(faces):
    X, y = faces
    clf = CNNClassifier(module__width=4, module__depth=2, max_epochs=1, random_state=0).fit(X, y)
    expected = clf.predict(X)
    renamed = np.where(y == "sad", "fear", y)
    with pytest.raises(ValueError, match="time_budget"):
        clf.set_params(time_budget=0).fit(X, renamed)
    with pytest.raises(ValueError, match="class_weight"):
        clf.set_params(time_budget=None, class_weight="balance").fit(X, renamed)
    clf.set_params(class_weight=None)
    with pytest.raises(ValueError, match=f"X has {len(X)} samples but y has 1; they must"):
        clf.fit(X, renamed[:1])
    with pytest.raises(ValueError, match="needs at least 2 samples to fit, got 1"):
        clf.fit(X[:1, :40, :40], renamed[:1])
    # parameters that only building the network (or the first batch) used to reject
    with pytest.raises(ValueError, match="precision='fp16'"):
        clf.set_params(precision="fp16").fit(X, renamed)
    clf.set_params(precision="auto")
    # whatever building the network rejects leaves the earlier fit whole
    real = CNNClassifier.initialize_module

    def rejects(self):
        raise ValueError("rejected option")

    clf.set_params(precision="fp32")
    clf.amp_dtype_ = amp = torch.bfloat16  # a state any machine can tell from fp32's None
    callbacks = clf.callbacks_
    CNNClassifier.initialize_module = rejects
    try:
        with pytest.raises(ValueError, match="rejected option"):
            clf.fit(X, renamed)
    finally:
        CNNClassifier.initialize_module = real
    assert clf.amp_dtype_ is amp and clf.callbacks_ is callbacks
    clf.set_params(precision="auto")
    clf.amp_dtype_ = torch.bfloat16 if bf16_supported("cpu") else None
    # set_params refuses what it can check before changing anything
    with pytest.raises(ValueError, match="cuda:99"):
        clf.set_params(device="cuda:99")
    with pytest.raises(ValueError, match="augment__shfit"):
        clf.set_params(augment__shfit=0.2)
    assert clf.device == "auto" and "augment__shfit" not in clf.get_params()
    # an unfitted model's augmentation typo fails the fit before it trains
    with pytest.raises(ValueError, match="augment__shfit"):
        CNNClassifier(augment__shfit=0.2).fit(X, y)
    assert clf.classes_.tolist() == ["angry", "happy", "sad"]
    assert clf.input_shape_ == (1, 48, 48)
    np.testing.assert_array_equal(clf.predict(X), expected)


def test_partial_fit_takes_the_classes_of_later_batches(faces):
    X, y = faces
    clf = CNNClassifier(module__width=4, module__depth=2, max_epochs=1, random_state=0)
    first = y != "sad"
    clf.partial_fit(X[first], y[first], classes=["angry", "happy", "sad"])
    assert clf.classes_.tolist() == ["angry", "happy", "sad"] and clf.classes is None
    clf.partial_fit(X, y)  # the later batch brings 'sad'
    assert clf.predict_proba(X).shape == (48, 3)


def test_class_weight_dict_covers_a_class_the_first_batch_lacks(faces):
    X, y = faces
    clf = CNNClassifier(module__width=4, module__depth=2, max_epochs=1, random_state=0,
                        class_weight={"sad": 3.0})
    first = y != "sad"
    clf.partial_fit(X[first], y[first], classes=["angry", "happy", "sad"])
    assert clf.class_weight_.tolist() == [1.0, 1.0, 3.0]
    assert clf.criterion_.weight.tolist() == [1.0, 1.0, 3.0]


def test_a_new_batch_size_applies_to_partial_fit_and_warm_start_fits(faces):
    X, y = faces
    sizes = []

    class BatchLog(Callback):
        def on_batch_begin(self, net, batch=None, training=False, **kwargs):
            if training:
                sizes.append(len(batch[0]))

    clf = CNNClassifier(module__width=4, module__depth=2, max_epochs=1, random_state=0,
                        batch_size=8, callbacks=[("log", BatchLog())]).fit(X, y)
    assert sizes == [8] * 6
    sizes.clear()
    clf.set_params(batch_size=16).partial_fit(X, y)
    assert sizes == [16] * 3
    sizes.clear()
    clf.set_params(batch_size=48, warm_start=True).fit(X, y)
    assert sizes == [48]


def test_epochs_argument_is_refused_with_the_parameter_to_use(faces):
    X, y = faces
    clf = CNNClassifier(module__width=4, module__depth=2, max_epochs=1)
    for method in (clf.fit, clf.partial_fit):
        with pytest.raises(TypeError, match="no epochs=; set max_epochs"):
            method(X, y, epochs=3)


def test_unfitted_score_and_initialised_warm_start(faces):
    from sklearn.exceptions import NotFittedError

    X, y = faces
    clf = CNNClassifier(module__width=4, module__depth=2, max_epochs=1, warm_start=True)
    with pytest.raises(NotFittedError):
        clf.score(X, y)
    clf.initialize()
    assert clf.module_.head[-1].out_features == 7  # built before any y: seven classes
    # never fitted, so nothing to warm-start from: the fit builds for y's classes
    clf.fit(X, y)
    assert clf.module_.head[-1].out_features == len(np.unique(y)) == len(clf.classes_)
    assert len(clf.history) == 1
    net, start = clf.module_, [p.detach().clone() for p in clf.module_.parameters()]
    clf.fit(X, y)  # now fitted: a warm start trains on the same network
    assert clf.module_ is net and len(clf.history) == 2
    assert any(not torch.equal(a, b.detach()) for a, b in zip(start, clf.module_.parameters()))
    assert 0 <= clf.score(X, y) <= 1


def test_seed_models_train_from_48x48_grayscale():
    X, y = make_faces(n=12, n_classes=2)
    clf = FERClassifier("seed_cnn", module__width=2, max_epochs=1, batch_size=6,
                        random_state=0).fit(X, y)
    batch = clf._model_input(torch.as_tensor(X[:2, None]))
    assert tuple(batch.shape) == (2, 3, 224, 224)
    assert clf.predict(X).shape == (12,)


def test_save_params_round_trip(faces, tmp_path):
    X, y = faces
    clf = CNNClassifier(max_epochs=1, module__width=4, module__depth=2, random_state=0).fit(X, y)
    clf.save_params(f_params=tmp_path / "p.pt")
    other = CNNClassifier(max_epochs=1, module__width=4, module__depth=2, random_state=1).fit(X, y)
    other.load_params(f_params=tmp_path / "p.pt")
    np.testing.assert_array_equal(other.predict_proba(X), clf.predict_proba(X))


@pytest.mark.parametrize("width, expected", [(4, False), (16, True)])
def test_channels_last_is_skipped_where_onednn_would_corrupt_memory(width, expected, faces):
    # PyTorch 2.14's oneDNN crashes in the weight gradient of narrow (< 16
    # channel) strided 1x1 convolutions in channels-last layout on CPU.
    X, y = faces
    est = ResNetClassifier(module__width=width, max_epochs=1, device="cpu", random_state=0)
    for _ in range(3):
        est.fit(X, y)
    assert est.channels_last_ is expected
    assert est.get_params()["channels_last"] is True


def test_auto_precision_skips_cpus_that_only_emulate_bf16(monkeypatch):
    # oneDNN's own check says yes on any AVX-512 CPU; "auto" once took bf16 there
    from fer_sklearn import _torch_utils
    from fer_sklearn._torch_utils import bf16_supported, resolve_precision

    monkeypatch.setattr(_torch_utils.platform, "machine", lambda: "x86_64")
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: True)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    assert not bf16_supported("cpu") and bf16_supported("cpu", emulated=True)
    assert resolve_precision("auto", "cpu") is None
    assert resolve_precision("bf16", "cpu") is torch.bfloat16  # asked for: allowed
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True)
    assert bf16_supported("cpu") and resolve_precision("auto", "cpu") is torch.bfloat16
    # a model asked to train in bf16 keeps it when loaded on such a CPU; "auto" does not
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    X, y = make_faces(n=12, n_classes=2)
    for precision, kept in (("bf16", torch.bfloat16), ("auto", None)):
        clf = CNNClassifier(max_epochs=1, module__width=4, module__depth=2, precision=precision)
        clf.fit(X, y).amp_dtype_ = torch.bfloat16  # as fitted where bf16 is native
        assert pickle.loads(pickle.dumps(clf)).amp_dtype_ is kept
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: False)
    assert not bf16_supported("cpu", emulated=True)


def test_auto_precision_skips_gpus_that_only_emulate_bf16(monkeypatch):
    from fer_sklearn._torch_utils import bf16_supported, resolve_precision

    capability = {0: (7, 5), 1: (8, 0)}  # a T4 beside an A100
    monkeypatch.setattr(torch.version, "hip", None)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda i: capability[i])
    assert not bf16_supported("cuda") and not bf16_supported("cuda:0")
    assert bf16_supported("cuda:1")
    assert resolve_precision("auto", "cuda") is None
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)  # emulated
    assert resolve_precision("bf16", "cuda") is torch.bfloat16  # asked for: allowed


def _small_cnn(**kwargs):
    params = dict(module__width=4, module__depth=2, max_epochs=1, batch_size=16,
                  random_state=0)
    params.update(kwargs)
    return CNNClassifier(**params)


def test_set_params_on_a_fitted_model_sets_what_skorch_refused(faces):
    # each once ended in skorch's "Something went wrong, please open an issue"
    X, y = faces
    clf = _small_cnn().fit(X, y)
    proba = clf.predict_proba(X[:4])
    clf.set_params(augment=False, iterator_train=BatchIterator)
    assert clf.augment is False and clf.iterator_train is BatchIterator
    np.testing.assert_allclose(clf.predict_proba(X[:4]), proba, rtol=1e-5, atol=1e-6)
    clf.set_params(optimizer=torch.optim.SGD)
    assert isinstance(clf.optimizer_, torch.optim.SGD)
    clf.partial_fit(X, y)


def test_set_params_optimizer_options_are_kept_as_parameters(faces):
    X, y = faces
    clf = _small_cnn().fit(X, y)
    clf.set_params(optimizer__weight_decay=0.3)
    assert clf.get_params()["optimizer__weight_decay"] == 0.3
    assert clone(clf).optimizer__weight_decay == 0.3
    # a rebuild of the optimizer (here by a new module option) keeps them
    clf.set_params(module__width=6, optimizer__betas=(0.8, 0.9))
    group = clf.optimizer_.param_groups[0]
    assert group["weight_decay"] == 0.3 and group["betas"] == (0.8, 0.9)
    assert clf.fit(X, y).optimizer_.param_groups[0]["weight_decay"] == 0.3
    with pytest.raises(ValueError, match=r"AdamW takes no option\(s\) \['foo'\]"):
        clf.set_params(optimizer__foo=1)
    assert "optimizer__foo" not in clf.get_params()


def test_a_refused_set_params_leaves_the_fitted_network_alone(faces):
    # the new (untrained) network was once kept while the parameters were put back
    X, y = faces
    clf = _small_cnn().fit(X, y)
    module, proba = clf.module_, clf.predict_proba(X[:4])
    with pytest.raises(ValueError, match="label_smoothing"):
        clf.set_params(module__width=6, label_smoothing=2.0)
    with pytest.raises(TypeError):
        clf.set_params(module__width=6, criterion__foo=1)
    assert clf.module_ is module and clf.get_params()["module__width"] == 4
    np.testing.assert_array_equal(clf.predict_proba(X[:4]), proba)


def test_set_params_precision_layout_and_architecture_apply_to_a_fitted_model(faces):
    X, y = faces
    clf = _small_cnn(precision="fp32").fit(X, y)
    assert clf.amp_dtype_ is None
    with pytest.raises(ValueError, match="precision='fp16'"):
        clf.set_params(precision="fp16")
    convs = [m for m in clf.module_.modules() if isinstance(m, torch.nn.Conv2d)]
    assert clf.channels_last_ and not convs[-1].weight.is_contiguous()
    clf.set_params(channels_last=False)
    assert clf.channels_last_ is False and convs[-1].weight.is_contiguous()
    clf.predict(X[:4])
    # a new architecture builds its network, as new module options do (it once
    # kept the old network and fed it the new architecture's input)
    res = ResNetClassifier(module__width=4, max_epochs=1, batch_size=16,
                           random_state=0).fit(X, y)
    with pytest.raises(ValueError, match="resnet"):
        res.set_params(architecture="densenet_bc")  # not of this class's family
    generic = FERClassifier("cnn", module__width=4, max_epochs=1, batch_size=16,
                            random_state=0).fit(X, y)
    generic.set_params(architecture="resnet18")
    assert type(generic.module_) is type(res.module_)
    assert generic.predict(X[:4]).shape == (4,)
    generic.partial_fit(X, y)


def test_partial_fit_and_warm_fits_check_parameters_and_draw_new_batches(faces):
    X, y = faces
    clf = _small_cnn().fit(X, y)
    clf.max_epochs = "2"  # set directly, past set_params' checks
    with pytest.raises(ValueError, match="max_epochs"):
        clf.partial_fit(X, y)
    clf.max_epochs = 1

    class Batches(Callback):
        def on_train_begin(self, net, **kwargs):
            self.seen = []

        def on_batch_begin(self, net, batch=None, training=False, **kwargs):
            if training:
                self.seen.append(batch[1].tolist())

    seen = Batches()
    clf = _small_cnn(callbacks=[("seen", seen)]).fit(X, y)
    calls = []
    for _ in range(2):
        clf.partial_fit(X, y)
        calls.append(seen.seen)
    assert calls[0] != calls[1]  # each call once replayed the same stream
    again = _small_cnn(callbacks=[("seen", seen)]).fit(X, y)
    again.partial_fit(X, y)
    assert seen.seen == calls[0]  # and stays reproducible


def test_loss_options_with_another_criterion_are_refused(faces):
    # they were once ignored without a word
    X, y = faces
    with pytest.raises(ValueError, match="criterion__ options instead"):
        _small_cnn(criterion=torch.nn.CrossEntropyLoss(), label_smoothing=0.3).fit(X, y)
    with pytest.raises(ValueError, match="criterion__ options instead"):
        _small_cnn(criterion=torch.nn.NLLLoss, class_weight="balanced").fit(X, y)


def test_progressive_resize_leaves_the_last_epoch_at_full_size():
    assert small_epochs((24, 0.75), 2) == 1
    assert small_epochs((24, 0.9), 1) == 0
    assert small_epochs((24, 0.5), 40) == 20
    assert small_epochs((24, 1.0), 3) == 3


def test_an_initialised_but_unfitted_model_is_not_fitted_for_sklearn():
    from sklearn.exceptions import NotFittedError
    from sklearn.utils.validation import check_is_fitted

    clf = _small_cnn().initialize()
    with pytest.raises(NotFittedError):
        check_is_fitted(clf)


def test_a_model_loaded_where_channels_last_is_unsafe_drops_it(faces):
    # a narrow ResNet fitted on a GPU (channels-last) once kept that layout on a
    # CPU, where oneDNN's 1x1 strided weight gradient corrupts the heap
    X, y = faces
    clf = ResNetClassifier(module__width=4, max_epochs=1, batch_size=16, random_state=0,
                           device="cpu").fit(X, y)
    assert clf.channels_last_ is False
    clf.channels_last_ = True  # as a CUDA fit leaves it
    clf.module_.to(memory_format=torch.channels_last)
    loaded = pickle.loads(pickle.dumps(clf))
    assert loaded.channels_last_ is False
    convs = [m for m in loaded.module_.modules() if isinstance(m, torch.nn.Conv2d)]
    assert all(c.weight.is_contiguous() for c in convs)
    loaded.partial_fit(X, y)


def test_set_params_on_a_fitted_model_with_a_recording_callback(faces):
    # checking the new values on a clone once rebuilt such a callback from its
    # recorded attributes: TypeError on every set_params
    X, y = faces

    class Losses(Callback):
        def on_train_begin(self, net, **kwargs):
            self.losses = []

    clf = _small_cnn(callbacks=[("losses", Losses())]).fit(X, y)
    clf.set_params(max_epochs=2)
    clf.set_params(criterion=torch.nn.CrossEntropyLoss)
    assert clf.max_epochs == 2


def test_a_refused_optimizer_value_leaves_the_optimizer_as_it_was(faces):
    X, y = faces
    clf = _small_cnn().fit(X, y)
    betas = clf.optimizer_.param_groups[0]["betas"]
    with pytest.raises(ValueError, match="AdamW refuses its options: Invalid beta"):
        clf.set_params(module__width=6, optimizer__betas=(2.0, 0.9))
    with pytest.raises(ValueError, match="AdamW refuses its options"):
        clf.set_params(optimizer__lr=-1.0)
    assert clf.optimizer_.param_groups[0]["betas"] == betas
    assert "optimizer__betas" not in clf.get_params() and clf.module__width == 4
    # param groups build a new optimizer
    clf.set_params(optimizer__param_groups=[("head.*", {"lr": 0.5})])
    assert [g["lr"] for g in clf.optimizer_.param_groups] == [0.5, clf.lr]


def test_a_new_device_sets_the_layout_safe_there(faces):
    X, y = faces
    clf = ResNetClassifier(module__width=4, max_epochs=1, batch_size=16, random_state=0,
                           device="cpu").fit(X, y)
    clf.channels_last_ = True  # as a CUDA fit leaves it
    clf.module_.to(memory_format=torch.channels_last)
    clf.set_params(device="cpu")
    assert clf.channels_last_ is False
    clf.partial_fit(X, y)
