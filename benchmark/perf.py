"""``benchmark perf``: training and inference speed, measured side by side in one process.

Everything is timed on this process's threads, one measurement after another
(never two at once). The sections:

1. the dense-matmul peak in fp32 and bf16 (best of several sizes): the ceiling
   that model-FLOP utilisation is measured against;
2. per family (the quick profile's recipe and batch size): training images/s
   of the estimator's ``fit`` in every precision (fp32, bf16) and layout
   (contiguous, channels-last), the four taking turns epoch by epoch; then
   the fast one against a plain PyTorch loop doing the same work (a module of
   the same architecture, the same data, augmentation, precision, layout,
   optimizer and loss), the two alternating epoch by epoch. Taking turns
   keeps a drift in a shared or virtual machine's speed from counting as
   overhead or as a precision's gain. Inference in each precision and layout;
   training FLOPs per image (``torch.utils.flop_counter`` over a forward and
   backward pass) x images/s over the peak of the same dtype; inference
   images/s of ``predict_proba`` in batches of 512;
3. the original study's pipeline (torchvision ResNet-18 on 224x224 3-channel
   images read and transformed per item from JPEG files with PIL, fp32, batch
   32) vs ours (the ``resnet18`` entry on the in-memory 48x48 uint8 arrays);
4. with FER2013: time to reach the study's best validation accuracy (50.74%),
   measured for ours and estimated for the original from its 10 epochs on half
   the training set; bf16 vs fp32 accuracy after the same short schedule; cold
   and warm loading of the zip; the process's peak RSS.

On hardware without fast bfloat16 (no AVX512-BF16/AMX, no CUDA bf16) the bf16
measurements are left out and marked as such; everything else runs in fp32.
"""

import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from fer_sklearn import FERClassifier
from fer_sklearn._torch_utils import bf16_supported, resolve_device
from fer_sklearn._training import augment_batch
from fer_sklearn.architectures import create
from fer_sklearn.cost import flops_per_image, inference_rate
from fer_sklearn.reporting.markdown import table

from .config import _QUICK_RECIPES
from .progress import log
from .stages.data import fer2013_is_csv
from .store import write_json, write_text

NO_PERF_RECIPE = ("perf times the quick profile's recipes; there is none for {unknown}. "
                  "Choose from {valid}.")
BAD_EPOCHS = "--epochs must be a whole number >= 1; got {value!r}."
STUDY_BEST = 0.5074  # the original study's best validation accuracy (DenseNet)
STUDY_EPOCHS, STUDY_TRAIN_SHARE = 10, 0.5
FAMILIES = ("cnn", "resnet18", "densenet_bc")
_N_TRAIN = 4096  # images per timed training epoch
_PREDICT_BATCH = 512
_ROUNDS = 5  # rounds of the precision/layout round robin, after a warm-up epoch each
# The estimator against the plain loop: shorter epochs, more rounds, so that the
# two epochs of a pair run within a couple of seconds of each other.
_PAIR_N, _PAIR_ROUNDS = 2048, 9


def _sync(device):
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


# --------------------------------------------------------------------------- #
# Peak
# --------------------------------------------------------------------------- #
def _nvidia(device):
    return torch.device(device).type == "cuda" and not torch.version.hip


def fp32_convolutions_use_tf32(device):
    """Whether fp32 convolutions on ``device`` run on TF32 tensor cores: cuDNN
    does so by default on NVIDIA GPUs from Ampere (compute capability 8.0)."""
    return (_nvidia(device) and bool(torch.backends.cudnn.allow_tf32)
            and torch.cuda.get_device_capability(device)[0] >= 8)


def fp32_peak_on_tf32(device):
    """Whether the fp32 matmul peak is taken on TF32: where the convolutions
    run on it, or where the caller already lets matmuls do so."""
    return fp32_convolutions_use_tf32(device) or (
        _nvidia(device) and bool(torch.backends.cuda.matmul.allow_tf32))


def matmul_peak(dtype, device="cpu", sizes=(1024, 2048, 3072), repeats=4):
    """Best FLOP/s of a square matmul over ``sizes`` (2 n^3 FLOPs each).

    The fp32 peak is taken with TF32 where the models' fp32 convolutions run
    in TF32 (:func:`fp32_peak_on_tf32`): measured in true fp32, that ceiling
    sits below the convolutions' own, and the fp32 MFU could pass 100%.
    """
    before = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = dtype == torch.float32 and fp32_peak_on_tf32(device)
    try:
        best = 0.0
        for n in sizes:
            a = torch.randn(n, n, device=device).to(dtype)
            b = torch.randn(n, n, device=device).to(dtype)
            a @ b
            _sync(device)
            start = time.perf_counter()
            for _ in range(repeats):
                a @ b
            _sync(device)
            best = max(best, 2 * n ** 3 * repeats / (time.perf_counter() - start))
    finally:
        torch.backends.cuda.matmul.allow_tf32 = before
    return best


# --------------------------------------------------------------------------- #
# One family
# --------------------------------------------------------------------------- #
def _recipe(model):
    params = dict(_QUICK_RECIPES[model]["params"])
    for name, values in _QUICK_RECIPES[model]["grid"].items():
        params.setdefault(name, values[0])
    if "module__block_config" in params:
        params["module__block_config"] = tuple(params["module__block_config"])
    return params


def _estimator(model, device, precision, channels_last, max_epochs=2, **extra):
    params = {**_recipe(model), "max_epochs": max_epochs, **extra}
    return FERClassifier(architecture=model, device=device, precision=precision,
                         channels_last=channels_last, random_state=0, **params)


class PlainLoop:
    """A plain PyTorch loop doing the estimator's work: same module architecture,
    data, augmentation, precision, layout, optimizer and loss, nothing else."""

    def __init__(self, est, X, y, device, precision):
        torch.manual_seed(0)
        params = _recipe(est.architecture)
        self.module = create(est.architecture, num_classes=len(est.classes_), in_chans=1,
                             **est.get_params_for("module")).to(device)
        self.channels_last = est.channels_last_
        if self.channels_last:
            self.module = self.module.to(memory_format=torch.channels_last)
        self.optimizer = torch.optim.AdamW(self.module.parameters(), lr=params["lr"],
                                           fused=est.optimizer_.defaults.get("fused"))
        self.criterion = nn.CrossEntropyLoss(
            label_smoothing=params.get("label_smoothing", 0.0))
        self.X = torch.as_tensor(X)
        self.y = torch.as_tensor(np.searchsorted(est.classes_, y))
        self.bf16 = precision == "bf16"
        self.device = device
        self.batch = params["batch_size"]

    def epoch(self):
        """Train one epoch; its images/s."""
        device, batch = self.device, self.batch
        device_type = torch.device(device).type
        self.module.train()
        order = torch.randperm(len(self.X))
        _sync(device)
        start = time.perf_counter()
        for i in range(0, len(self.X), batch):
            idx = order[i:i + batch].sort().values
            xb = self.X[idx].to(device).unsqueeze(1).float().div_(255)
            xb = augment_batch(xb)
            if self.channels_last:
                xb = xb.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device_type, dtype=torch.bfloat16, enabled=self.bf16):
                loss = self.criterion(self.module(xb).float(), self.y[idx].to(device))
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
        _sync(device)
        return len(self.X) / (time.perf_counter() - start)


def alternated_rates(model, X, y, device, precisions, rounds=None):
    """Training images/s of the estimator in every precision and layout, taken
    in turn epoch by epoch.

    Each estimator first trains one warm-up epoch; then every round trains one
    more epoch of each (continuing with ``partial_fit``). A ratio pairs epochs
    of the same round, so a drift in the machine's speed (other tenants of a
    virtual machine, clock changes) largely cancels.

    Returns
    -------
    rates : dict
        ``"precision/layout"`` -> images/s of each round.
    ests : dict
        ``"precision/layout"`` -> the fitted estimator.
    """
    rounds = rounds or _ROUNDS
    ests = {f"{p}/{layout}": _estimator(model, device, p, layout == "channels_last",
                                        max_epochs=1).fit(X, y)
            for p in precisions for layout in ("contiguous", "channels_last")}
    rates = {key: [] for key in ests}
    for _ in range(rounds):
        for key, est in ests.items():
            est.partial_fit(X, y)
            rates[key].append(len(X) / est.history[-1, "dur"])
    return rates, ests


def estimator_vs_plain(est, X, y, device, precision, rounds=None):
    """Images/s of a fitted estimator and of a :class:`PlainLoop` doing its work,
    alternating epoch by epoch (the estimator continuing with ``partial_fit``)
    after a warm-up epoch of the loop; each is always preceded by the other.

    Returns
    -------
    ours, plain : lists of images/s, one per round
    """
    loop = PlainLoop(est, X, y, device, precision)
    loop.epoch()
    ours, plain = [], []
    for _ in range(rounds or _PAIR_ROUNDS):
        est.partial_fit(X, y)
        ours.append(len(X) / est.history[-1, "dur"])
        plain.append(loop.epoch())
    return ours, plain


def _paired(a, b):
    """Median of the round-by-round ratios a/b, and their range."""
    ratios = [x / z for x, z in zip(a, b)]
    return float(np.median(ratios)), [float(min(ratios)), float(max(ratios))]


def train_flops_per_image(est, X, device):
    """FLOPs of one training step (forward and backward) per image."""
    batch = X[:32]
    module = est.module_
    module.train()
    x = est._model_input(torch.as_tensor(batch)[:, None].to(device), augment=False)
    counter = FlopCounterMode(display=False)
    with counter:
        with torch.autocast(torch.device(device).type, dtype=torch.bfloat16,
                            enabled=est.amp_dtype_ is not None):
            out = module(x)
        out.float().sum().backward()
    module.zero_grad(set_to_none=True)
    return counter.get_total_flops() / len(batch)


def family(model, X, y, device, peaks):
    """Every speed figure of one family."""
    log(f"perf {model}: estimator vs plain loop, precision and layout")
    rec = {"recipe": {k: v for k, v in _recipe(model).items() if k.startswith("module__")
                      or k == "batch_size"}}
    precisions = [p for p in ("fp32", "bf16") if peaks[p] is not None]
    fast_precision = precisions[-1]
    fast = f"{fast_precision}/channels_last"
    rates, ests = alternated_rates(model, X, y, device, precisions)
    best_est = ests[fast]
    combos = {}
    for key, est in ests.items():
        est.set_params(iterator_valid__batch_size=_PREDICT_BATCH)  # prediction only
        combos[key] = {
            "train_images_per_s": float(np.median(rates[key])),
            "infer_images_per_s": inference_rate(est, X[:_PREDICT_BATCH], repeats=2),
            "layout_used": "channels_last" if est.channels_last_ else "contiguous",
        }
    rec["combos"] = combos
    pair = slice(0, _PAIR_N)
    ours_rounds, plain_rounds = estimator_vs_plain(best_est, X[pair], y[pair], device,
                                                   fast_precision)
    ours = combos[fast]["train_images_per_s"]
    # The fast path's speed is the round robin's (longer epochs, like the other
    # combinations); the pair's own medians go beside the plain loop's.
    rec["estimator_train_images_per_s"] = ours
    rec["paired_estimator_images_per_s"] = float(np.median(ours_rounds))
    rec["plain_train_images_per_s"] = plain = float(np.median(plain_rounds))
    rec["estimator_over_plain"] = _paired(ours_rounds, plain_rounds)[0]
    rec["rounds"] = {"estimator": ours_rounds, "plain": plain_rounds, "combos": rates}
    fp32_rate = combos["fp32/contiguous"]["train_images_per_s"]
    rec["bf16_over_fp32_train"] = rec["bf16_over_fp32_same_layout"] = None
    if "bf16" in precisions:
        # The fast path against plain fp32, and bf16 alone (both channels-last).
        rec["bf16_over_fp32_train"] = _paired(rates["bf16/channels_last"],
                                              rates["fp32/contiguous"])[0]
        rec["bf16_over_fp32_same_layout"] = _paired(rates["bf16/channels_last"],
                                                    rates["fp32/channels_last"])[0]
    rec["infer_images_per_s"] = combos[fast]["infer_images_per_s"]
    rec["forward_flops_per_image"] = flops_per_image(best_est)
    rec["train_flops_per_image"] = train_flops_per_image(best_est, X, device)
    achieved = rec["train_flops_per_image"] * ours
    rec["train_flops_per_s"] = achieved
    rec["mfu"] = achieved / peaks[fast_precision]
    rec["mfu_fp32"] = rec["train_flops_per_image"] * fp32_rate / peaks["fp32"]
    bf16_text = (f"bf16 x{rec['bf16_over_fp32_train']:.2f}"
                 if rec["bf16_over_fp32_train"] is not None else "no fast bf16 here")
    log(f"perf {model}: {ours:.0f} img/s training (plain loop {plain:.0f}), {bf16_text}, "
        f"MFU {rec['mfu']:.0%}, inference {rec['infer_images_per_s']:.0f} img/s")
    return rec


def _precisions(device):
    """The precisions to time: fp32, and bf16 where the device runs it fast."""
    return ("fp32", "bf16") if bf16_supported(device) else ("fp32",)


# --------------------------------------------------------------------------- #
# The original pipeline
# --------------------------------------------------------------------------- #
def original_pipeline_rate(X, y, device, n_batches=6, batch=32):
    """Images/s of the study's training loop: JPEG files -> PIL -> 224x224x3 -> ResNet-18."""
    from PIL import Image
    from torchvision import datasets, models, transforms

    n = (n_batches + 1) * batch
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(n):
            folder = Path(tmp) / str(y[i])
            folder.mkdir(exist_ok=True)
            Image.fromarray(X[i]).save(folder / f"{i}.jpg", quality=95)
        transform = transforms.Compose([
            transforms.Resize((224, 224)), transforms.Grayscale(num_output_channels=3),
            transforms.ToTensor(), transforms.Normalize([0.485, 0.456, 0.406],
                                                        [0.229, 0.224, 0.225])])
        data = datasets.ImageFolder(tmp, transform=transform)
        loader = torch.utils.data.DataLoader(data, batch_size=batch, shuffle=True)
        torch.manual_seed(0)
        net = models.resnet18(num_classes=len(data.classes)).to(device)
        optimizer = torch.optim.SGD(net.parameters(), lr=3e-4, momentum=0.9)
        criterion = nn.CrossEntropyLoss()
        net.train()
        seen, start = 0, None
        for k, (xb, yb) in enumerate(loader):
            if k == 1:  # the first batch warms up
                _sync(device)
                start, seen = time.perf_counter(), 0
            loss = criterion(net(xb.to(device)), yb.to(device))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            seen += len(xb)
        _sync(device)
        return seen / (time.perf_counter() - start)


# --------------------------------------------------------------------------- #
# FER2013
# --------------------------------------------------------------------------- #
def curve(model, X, y, X_val, y_val, device, precision, epochs):
    """Fit ``epochs`` epochs; validation accuracy and cumulative training time per epoch."""
    from skorch.callbacks import Callback

    rows = []

    class Validate(Callback):
        def on_epoch_end(self, net, **kwargs):
            train_s = sum(h["dur"] for h in net.history)
            acc = float(np.mean(net.predict(X_val) == y_val))
            rows.append({"epoch": len(net.history), "train_s": train_s, "val_acc": acc})

    est = _estimator(model, device, precision, True, max_epochs=epochs,
                     callbacks=[("validate", Validate())])
    est.fit(X, y)
    return rows


def load_times(path):
    """Cold decode (no cache), first cached load (decode + write), warm reload."""
    import os

    from fer_sklearn.datasets import load_image_folder

    out = {}
    with tempfile.TemporaryDirectory() as cache:
        old = os.environ.get("FER_SKLEARN_CACHE")
        os.environ["FER_SKLEARN_CACHE"] = cache
        try:
            start = time.perf_counter()
            load_image_folder(path, cache=False)
            out["cold_s"] = time.perf_counter() - start
            load_image_folder(path)
            start = time.perf_counter()
            bunch = load_image_folder(path)
            out["warm_s"] = time.perf_counter() - start
            assert bunch.report["cache_hit"]
        finally:
            if old is None:
                os.environ.pop("FER_SKLEARN_CACHE", None)
            else:
                os.environ["FER_SKLEARN_CACHE"] = old
    return out


# --------------------------------------------------------------------------- #
# The command
# --------------------------------------------------------------------------- #
def default_out(device):
    """``reports/perf-cpu`` or ``reports/perf-cuda``: figures of one kind of device."""
    return f"reports/perf-{torch.device(device or 'cpu').type}"


def run(dataset=None, out=None, device="cpu", models=FAMILIES, epochs=6):
    """Measure everything, write ``perf.json`` and ``perf.md`` under ``out``
    (None: ``reports/perf-cpu``, ``reports/perf-cuda``, after the device)."""
    from .config import resolve_config
    from .stages.data import load

    unknown = [m for m in models if m not in _QUICK_RECIPES]
    if unknown:
        raise ValueError(NO_PERF_RECIPE.format(unknown=", ".join(unknown),
                                               valid=", ".join(_QUICK_RECIPES)))
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(BAD_EPOCHS.format(value=epochs))
    device = resolve_device(device)  # "auto" to what is there; a bad name, before any work
    out = default_out(device) if out is None else out
    precisions = _precisions(device)
    if "bf16" not in precisions:
        log(f"perf: {device} has no fast bfloat16 (no AVX512-BF16/AMX or CUDA bf16): "
            "timing fp32 only")
    start_all = time.perf_counter()
    torch.manual_seed(0)
    config = resolve_config(dataset=dataset or "synthetic",
                            synthetic={"n_samples": 6000}, models=list(models))
    log(f"perf: loading {config.dataset}")
    d = load(config)
    rng = np.random.RandomState(0)
    idx = rng.choice(len(d.y_train), size=min(_N_TRAIN, len(d.y_train)), replace=False)
    X, y = d.X_train[idx], d.y_train[idx]
    results = {"device": device, "dataset": config.dataset, "n_train_timed": int(len(X)),
               "threads": torch.get_num_threads(), "hardware": _hardware(device),
               "precisions": list(precisions), "rounds": _PAIR_ROUNDS,
               "combo_rounds": _ROUNDS, "pair_images": int(min(_PAIR_N, len(X))),
               "infer_batch": _PREDICT_BATCH}
    log(f"perf: matmul peak ({', '.join(precisions)})")
    dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16}
    peaks = {p: matmul_peak(dtypes[p], device) if p in precisions else None
             for p in ("fp32", "bf16")}
    results["matmul_peak_flops_per_s"] = peaks
    results["fp32_peak_tf32"] = fp32_peak_on_tf32(device)
    results["families"] = {m: family(m, X, y, device, peaks) for m in models}
    log("perf: the original study's pipeline (JPEG -> PIL -> 224x224x3 ResNet-18, fp32)")
    theirs = original_pipeline_rate(X, y, device)
    ours = results["families"].get("resnet18", {}).get("estimator_train_images_per_s")
    results["original_pipeline"] = {"theirs_images_per_s": theirs,
                                    "ours_resnet18_images_per_s": ours,
                                    "ratio": ours / theirs if ours else None}
    if config.dataset_kind == "fer2013" and "train" in set(d.frame_train["split"]):
        # Training and its validation split (PublicTest), as the study used them:
        # with all three FER2013 splits, the harness trains on PublicTest too
        # and tests on PrivateTest.
        split = d.frame_train["split"].to_numpy()
        if (split == "validation").any():
            fit, val = split == "train", split == "validation"
            X_fit, y_fit, X_val, y_val = d.X_train[fit], d.y_train[fit], d.X_train[val], \
                d.y_train[val]
        else:
            X_fit, y_fit, X_val, y_val = d.X_train, d.y_train, d.X_test, d.y_test
        n_half = STUDY_TRAIN_SHARE * len(y_fit)
        theirs_s = STUDY_EPOCHS * n_half / theirs
        fast = max(models, key=lambda m: results["families"][m]["estimator_train_images_per_s"])
        log(f"perf: {fast} to {STUDY_BEST:.2%} on the validation split, "
            f"{' and '.join(precisions)} ({epochs} epochs each)")
        curves = {p: curve(fast, X_fit, y_fit, X_val, y_val, device, p, epochs)
                  for p in precisions}
        main = precisions[-1]
        reached = next((r for r in curves[main] if r["val_acc"] >= STUDY_BEST), None)
        both = "bf16" in curves
        results["convergence"] = {
            "model": fast, "epochs": epochs, "curves": curves,
            "ours_s_to_target": reached["train_s"] if reached else None,
            "theirs_s_estimated": theirs_s,
            "speedup": theirs_s / reached["train_s"] if reached else None,
            "bf16_minus_fp32_final_acc": curves["bf16"][-1]["val_acc"]
            - curves["fp32"][-1]["val_acc"] if both else None,
            "bf16_over_fp32_full_epochs": curves["fp32"][-1]["train_s"]
            / curves["bf16"][-1]["train_s"] if both else None,
        }
        if not fer2013_is_csv(config.dataset_path):
            log("perf: FER2013 images, cold and warm")
            results["loading"] = load_times(config.dataset_path)
    results["peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    results["seconds"] = time.perf_counter() - start_all
    out = Path(out)
    write_json(out / "perf.json", results)
    write_text(out / "perf.md", render(results))
    log(f"perf: {out / 'perf.md'}")
    return results


def _hardware(device):
    from .runner import cpu_name

    if torch.device(device).type == "cuda":
        return torch.cuda.get_device_name(0)
    return f"{cpu_name()}, {torch.get_num_threads()} torch threads"


def _g(x):
    return f"{x / 1e9:.0f}"


def _with_range(value, a, b):
    """``value`` with the range of the round-by-round ratios a/b, where recorded."""
    text = f"{value:.2f}"
    if a and b:
        low, high = _paired(a, b)[1]
        text += f" ({low:.2f}-{high:.2f})"
    return text


def _ratio(f):
    """Estimator/plain ratio (reports before the paired rounds: the ratio alone)."""
    rounds = f.get("rounds", {})
    return _with_range(f["estimator_over_plain"], rounds.get("estimator"), rounds.get("plain"))


def _bf16_ratio(f):
    """bf16 (channels-last) over fp32 (contiguous); n/a without bf16."""
    if f["bf16_over_fp32_train"] is None:
        return "n/a"
    combos = f.get("rounds", {}).get("combos", {})
    return _with_range(f["bf16_over_fp32_train"], combos.get("bf16/channels_last"),
                       combos.get("fp32/contiguous"))


def _method(r, layout, main):
    """How the per-family table was measured (reports before the round robin:
    one sentence less)."""
    mfu = (f"MFU: training FLOPs per image (forward and backward, "
           f"`torch.utils.flop_counter`) x images/s over the {main} matmul peak.")
    if not r.get("combo_rounds"):
        return (f"Estimator and plain loop: {layout}, channels-last where safe"
                + (f", alternating epoch by epoch ({r['rounds']} each after a warm-up; "
                   "medians, and the median of the paired ratios)" if r.get("rounds") else "")
                + ". " + mfu)
    return (f"Training speeds come from a round robin: the estimator in each precision "
            f"and layout taking turns over {r['n_train_timed']}-image epochs "
            f"({r['combo_rounds']} rounds after a warm-up epoch each; medians). train "
            f"img/s: the fast path ({layout}, channels-last where safe); fp32 img/s: fp32 in "
            "PyTorch's default (contiguous) layout"
            + ("; bf16 / fp32: the first over the second, the median of the paired rounds "
               "(range)" if main == "bf16" else "")
            + ". Then the fast path and a plain PyTorch loop doing the same work alternate "
            f"epoch by epoch on {r['pair_images']} images ({r['rounds']} rounds; medians, "
            "and the median of the paired ratios with its range). " + mfu)


def _combo_order(combo):
    precision, layout = combo.split("/")
    return (precision != "fp32", layout != "contiguous")


def _infer_header(r):
    # Runs before "infer_batch" was recorded predicted in the training batches.
    batch = r.get("infer_batch")
    return f"infer img/s (batch {batch})" if batch else "infer img/s (training batch)"


def render(r):
    """The Markdown performance report of ``perf.json``'s contents."""
    peaks = r["matmul_peak_flops_per_s"]
    # Run order (a JSON round trip sorts the keys): families, then precision/layout.
    order = {m: i for i, m in enumerate(FAMILIES)}
    fams = {m: r["families"][m] for m in sorted(r["families"], key=lambda m: (
        order.get(m, len(order)), m))}
    # The precision of the fast path (reports written before this key: bf16).
    main = r.get("precisions", ["fp32", "bf16"])[-1]
    has_bf16 = peaks.get("bf16") is not None
    bf16_peak = (f"bf16 {_g(peaks['bf16'])} GFLOP/s" if has_bf16
                 else "bf16 not timed (no fast bfloat16 on this hardware)")
    text = [f"# Performance: {r['device']}", "",
            f"Hardware: {r['hardware']}. Dataset: `{r['dataset']}`; "
            + ("quick-profile recipes (how each figure was timed: below the first table). "
               if r.get("combo_rounds") else
               f"training speed timed on {r['n_train_timed']} images per epoch, after a "
               "warm-up epoch, quick-profile recipes. ")
            + f"Whole benchmark: {r['seconds'] / 60:.1f} min, peak RSS "
            f"{r['peak_rss_bytes'] / 2**30:.2f} GiB.", "",
            f"Matmul peak (best of 1024-3072 square): fp32 {_g(peaks['fp32'])} GFLOP/s"
            + (" (on TF32 tensor cores, which fp32 work runs on here)"
               if r.get("fp32_peak_tf32") else "") + ", "
            f"{bf16_peak}.", "",
            "## Training and inference per family", ""]
    rows = []
    paired = "paired_estimator_images_per_s" in next(iter(fams.values()))
    for m, f in fams.items():
        plain = f"{f['plain_train_images_per_s']:.0f}"
        if paired:
            plain = f"{f['paired_estimator_images_per_s']:.0f} vs {plain}"
        rows.append([m, f"{f['estimator_train_images_per_s']:.0f}", plain, _ratio(f),
                     f"{f['combos']['fp32/contiguous']['train_images_per_s']:.0f}",
                     _bf16_ratio(f), f"{f['train_flops_per_image'] / 1e6:.0f}",
                     f"{_g(f['train_flops_per_s'])}", f"{f['mfu']:.0%}",
                     f"{f['infer_images_per_s']:.0f}"])
    layout = "bf16 autocast" if main == "bf16" else "fp32"
    speed = (["train img/s", "estimator vs plain loop img/s"] if paired
             else ["estimator img/s", "plain loop img/s"])
    text += [table(rows, ["model", *speed, "ratio (range)",
                          "fp32 img/s", "bf16 / fp32", "train MFLOP/img", "GFLOP/s",
                          f"MFU ({main})", _infer_header(r)]), "",
             _method(r, layout, main), ""]
    same = [f"{m} {f['bf16_over_fp32_same_layout']:.2f}" for m, f in fams.items()
            if f.get("bf16_over_fp32_same_layout") is not None]
    if same:
        text += ["bf16 alone (both sides channels-last): " + ", ".join(same) + ".", ""]
    text += ["### Precision and memory layout", ""]
    rows = []
    for m, f in fams.items():
        for combo in sorted(f["combos"], key=_combo_order):
            c = f["combos"][combo]
            rows.append([m, combo, c["layout_used"], f"{c['train_images_per_s']:.0f}",
                         f"{c['infer_images_per_s']:.0f}"])
    text += [table(rows, ["model", "precision/layout asked", "layout used", "train img/s",
                          _infer_header(r)]), "",
             ("Training: the medians of the round robin above. " if
              r.get("combo_rounds") else "")
             + "The layout used differs from the one asked where channels-last would hit a "
             "oneDNN memory-corruption bug (narrow strided 1x1 convolutions on CPU).", ""]
    o = r["original_pipeline"]
    rows = [["original: ResNet-18, 224x224x3 fp32, JPEG + PIL per item, batch 32",
             f"{o['theirs_images_per_s']:.1f}"]]
    if o["ratio"]:
        rows.append([f"ours: resnet18 entry, 48x48 uint8 in memory, {main}",
                     f"{o['ours_resnet18_images_per_s']:.0f}"])
    text += ["## The original study's pipeline vs ours", "",
             table(rows, ["pipeline", "training img/s"]), ""]
    if o["ratio"]:
        text += [f"Ours trains **{o['ratio']:.0f}x** as many images per second.", ""]
    c = r.get("convergence")
    if c:
        precisions = [p for p in ("fp32", "bf16") if p in c["curves"]]  # JSON sorts keys
        rows = [[row["epoch"]] + [x for p in precisions for x in (
            f"{c['curves'][p][i]['train_s']:.0f}", f"{c['curves'][p][i]['val_acc']:.1%}")]
            for i, row in enumerate(c["curves"][precisions[0]])]
        reached = (f"{c['ours_s_to_target']:.0f} s" if c["ours_s_to_target"] is not None
                   else f"not within {c['epochs']} epochs")
        text += [f"## Time to the study's best accuracy ({STUDY_BEST:.2%})", "",
                 f"`{c['model']}` (quick recipe, one-cycle over {c['epochs']} epochs) on all "
                 "FER2013 training faces; accuracy on the validation split (PublicTest) after "
                 "each epoch; cumulative training time (validation not counted):", "",
                 table(rows, ["epoch"] + [h for p in precisions
                                          for h in (f"{p} s", f"{p} acc.")]), "",
                 f"- Ours ({main}) reaches {STUDY_BEST:.2%} after "
                 f"**{reached}** of training.",
                 f"- The original setup, at its measured {o['theirs_images_per_s']:.1f} img/s, "
                 f"needs an estimated **{c['theirs_s_estimated'] / 60:.0f} min** for its "
                 f"reported {STUDY_EPOCHS} epochs on half the training set."]
        if c["speedup"]:
            text.append(f"- Speed-up to the same accuracy: **{c['speedup']:.0f}x**.")
        if c["bf16_minus_fp32_final_acc"] is not None:
            text += [f"- bf16 vs fp32 after {c['epochs']} epochs: "
                     f"{c['bf16_minus_fp32_final_acc'] * 100:+.1f} points of accuracy, "
                     f"{c['bf16_over_fp32_full_epochs']:.2f}x the training speed on full "
                     "epochs."]
        text.append("")
    if r.get("loading"):
        lt = r["loading"]
        text += ["## Loading FER2013", "",
                 f"Cold decode of the zip (no cache): {lt['cold_s']:.2f} s; warm reload "
                 f"from the cache: {lt['warm_s']:.2f} s.", ""]
    return "\n".join(text)
