"""``benchmark perf``: training and inference speed, measured side by side in one process.

Everything is timed on this process's threads, one measurement after another
(never two at once). The sections:

1. the dense-matmul peak in fp32 and bf16 (best of several sizes): the ceiling
   that model-FLOP utilisation is measured against;
2. per family (the quick profile's recipe and batch size): training images/s
   through the estimator's ``fit`` and through a plain PyTorch loop doing the
   same work (same module, data, augmentation, precision, layout, optimizer);
   fp32 vs bf16 and contiguous vs channels-last, for training and inference;
   training FLOPs per image (``torch.utils.flop_counter`` over a forward and
   backward pass) x images/s over the peak of the same dtype; inference
   images/s of ``predict_proba`` at batch 512;
3. the original study's pipeline (torchvision ResNet-18 on 224x224 3-channel
   images read and transformed per item from JPEG files with PIL, fp32, batch
   32) vs ours (the ``resnet18`` entry on the in-memory 48x48 uint8 arrays);
4. with FER2013: time to reach the study's best validation accuracy (50.74%),
   measured for ours and estimated for the original from its 10 epochs on half
   the training set; bf16 vs fp32 accuracy after the same short schedule; cold
   and warm loading of the zip; the process's peak RSS.
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
from fer_sklearn._torch_utils import bf16_supported
from fer_sklearn._training import augment_batch
from fer_sklearn.architectures import create
from fer_sklearn.cost import flops_per_image, inference_rate
from fer_sklearn.reporting.markdown import table

from .config import _QUICK_RECIPES
from .progress import log
from .store import write_json, write_text

STUDY_BEST = 0.5074  # the original study's best validation accuracy (DenseNet)
STUDY_EPOCHS, STUDY_TRAIN_SHARE = 10, 0.5
FAMILIES = ("cnn", "resnet18", "densenet_bc")
_N_TRAIN = 4096  # images per timed training epoch
_PREDICT_BATCH = 512


def _sync(device):
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


# --------------------------------------------------------------------------- #
# Peak
# --------------------------------------------------------------------------- #
def matmul_peak(dtype, device="cpu", sizes=(1024, 2048, 3072), repeats=4):
    """Best FLOP/s of a square matmul over ``sizes`` (2 n^3 FLOPs each)."""
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


def estimator_train_rate(model, X, y, device, precision="bf16", channels_last=True):
    """Images/s of the estimator's ``fit`` (its second epoch; the first warms up)."""
    est = _estimator(model, device, precision, channels_last).fit(X, y)
    return len(X) / est.history[-1, "dur"], est


def plain_train_rate(est, X, y, device, precision, epochs=2):
    """Images/s of a plain PyTorch loop doing the estimator's work (second epoch)."""
    torch.manual_seed(0)
    params = _recipe(est.architecture)
    module = create(est.architecture, num_classes=len(est.classes_), in_chans=1,
                    **est.get_params_for("module")).to(device)
    channels_last = est.channels_last_
    if channels_last:
        module = module.to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(module.parameters(), lr=params["lr"])
    criterion = nn.CrossEntropyLoss(label_smoothing=params.get("label_smoothing", 0.0))
    Xt = torch.as_tensor(X)
    yt = torch.as_tensor(np.searchsorted(est.classes_, y))
    bf16 = precision == "bf16"
    device_type = torch.device(device).type
    batch = params["batch_size"]
    module.train()
    durations = []
    for _ in range(epochs):
        order = torch.randperm(len(Xt))
        _sync(device)
        start = time.perf_counter()
        for i in range(0, len(Xt), batch):
            idx = order[i:i + batch].sort().values
            xb = Xt[idx].to(device).unsqueeze(1).float().div_(255)
            xb = augment_batch(xb)
            if channels_last:
                xb = xb.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device_type, dtype=torch.bfloat16, enabled=bf16):
                loss = criterion(module(xb).float(), yt[idx].to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        _sync(device)
        durations.append(time.perf_counter() - start)
    return len(Xt) / durations[-1]


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
    combos = {}
    for precision in ("fp32", "bf16"):
        for layout in ("contiguous", "channels_last"):
            rate, est = estimator_train_rate(model, X, y, device, precision,
                                             layout == "channels_last")
            combos[f"{precision}/{layout}"] = {
                "train_images_per_s": rate,
                "infer_images_per_s": inference_rate(est, X[:_PREDICT_BATCH], repeats=2),
                "layout_used": "channels_last" if est.channels_last_ else "contiguous",
            }
            if precision == "bf16" and layout == "channels_last":
                best_est = est
    rec["combos"] = combos
    fast = combos["bf16/channels_last"]
    rec["estimator_train_images_per_s"] = fast["train_images_per_s"]
    rec["plain_train_images_per_s"] = plain_train_rate(best_est, X, y, device, "bf16")
    rec["estimator_over_plain"] = rec["estimator_train_images_per_s"] / rec[
        "plain_train_images_per_s"]
    rec["bf16_over_fp32_train"] = fast["train_images_per_s"] / combos[
        "fp32/contiguous"]["train_images_per_s"]
    rec["infer_images_per_s"] = fast["infer_images_per_s"]
    rec["forward_flops_per_image"] = flops_per_image(best_est)
    rec["train_flops_per_image"] = train_flops_per_image(best_est, X, device)
    achieved = rec["train_flops_per_image"] * rec["estimator_train_images_per_s"]
    rec["train_flops_per_s"] = achieved
    rec["mfu"] = achieved / peaks["bf16"]
    fp32_rate = combos["fp32/contiguous"]["train_images_per_s"]
    rec["mfu_fp32"] = rec["train_flops_per_image"] * fp32_rate / peaks["fp32"]
    log(f"perf {model}: {rec['estimator_train_images_per_s']:.0f} img/s training (plain "
        f"loop {rec['plain_train_images_per_s']:.0f}), bf16 x{rec['bf16_over_fp32_train']:.2f}"
        f", MFU {rec['mfu']:.0%}, inference {rec['infer_images_per_s']:.0f} img/s")
    return rec


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
def run(dataset=None, out="reports/perf-cpu", device="cpu", models=FAMILIES, epochs=6):
    """Measure everything, write ``perf.json`` and ``perf.md`` under ``out``."""
    from .config import resolve_config
    from .stages.data import load

    unknown = [m for m in models if m not in _QUICK_RECIPES]
    if unknown:
        raise ValueError(f"perf times the quick profile's recipes; no recipe for {unknown}. "
                         f"Choose from {', '.join(_QUICK_RECIPES)}.")
    if not bf16_supported(device):
        raise ValueError(f"perf compares fp32 with bf16, which {device} does not run fast "
                         "(no AVX512-BF16/AMX or CUDA bf16).")
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
               "threads": torch.get_num_threads(), "hardware": _hardware(device)}
    log("perf: matmul peak (fp32, bf16)")
    peaks = {"fp32": matmul_peak(torch.float32, device), "bf16": matmul_peak(torch.bfloat16,
                                                                            device)}
    results["matmul_peak_flops_per_s"] = peaks
    results["families"] = {m: family(m, X, y, device, peaks) for m in models}
    log("perf: the original study's pipeline (JPEG -> PIL -> 224x224x3 ResNet-18, fp32)")
    theirs = original_pipeline_rate(X, y, device)
    ours = results["families"].get("resnet18", {}).get("estimator_train_images_per_s")
    results["original_pipeline"] = {"theirs_images_per_s": theirs,
                                    "ours_resnet18_images_per_s": ours,
                                    "ratio": ours / theirs if ours else None}
    if config.dataset_kind == "fer2013" and "train" in set(d.frame_train["split"]):
        n_half = STUDY_TRAIN_SHARE * len(d.y_train)
        theirs_s = STUDY_EPOCHS * n_half / theirs
        fast = min(models, key=lambda m: -results["families"][m]["estimator_train_images_per_s"])
        log(f"perf: {fast} to {STUDY_BEST:.2%} on the validation split, bf16 and fp32 "
            f"({epochs} epochs each)")
        curves = {p: curve(fast, d.X_train, d.y_train, d.X_test, d.y_test, device, p, epochs)
                  for p in ("bf16", "fp32")}
        reached = next((r for r in curves["bf16"] if r["val_acc"] >= STUDY_BEST), None)
        results["convergence"] = {
            "model": fast, "epochs": epochs, "curves": curves,
            "ours_s_to_target": reached["train_s"] if reached else None,
            "theirs_s_estimated": theirs_s,
            "speedup": theirs_s / reached["train_s"] if reached else None,
            "bf16_minus_fp32_final_acc": curves["bf16"][-1]["val_acc"]
            - curves["fp32"][-1]["val_acc"],
            "bf16_over_fp32_full_epochs": curves["fp32"][-1]["train_s"]
            / curves["bf16"][-1]["train_s"],
        }
        if ".csv" not in Path(config.dataset_path).name.lower():
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


def render(r):
    """The Markdown performance report of ``perf.json``'s contents."""
    peaks = r["matmul_peak_flops_per_s"]
    text = [f"# Performance: {r['device']}", "",
            f"Hardware: {r['hardware']}. Dataset: `{r['dataset']}`; training speed timed on "
            f"{r['n_train_timed']} images (second epoch), quick-profile recipes. Whole "
            f"benchmark: {r['seconds'] / 60:.1f} min, peak RSS "
            f"{r['peak_rss_bytes'] / 2**30:.2f} GiB.", "",
            f"Matmul peak (best of 1024-3072 square): fp32 {_g(peaks['fp32'])} GFLOP/s, "
            f"bf16 {_g(peaks['bf16'])} GFLOP/s.", "",
            "## Training and inference per family", ""]
    rows = []
    for m, f in r["families"].items():
        rows.append([m, f"{f['estimator_train_images_per_s']:.0f}",
                     f"{f['plain_train_images_per_s']:.0f}", f"{f['estimator_over_plain']:.2f}",
                     f"{f['combos']['fp32/contiguous']['train_images_per_s']:.0f}",
                     f"{f['bf16_over_fp32_train']:.2f}",
                     f"{f['train_flops_per_image'] / 1e6:.0f}",
                     f"{_g(f['train_flops_per_s'])}", f"{f['mfu']:.0%}",
                     f"{f['infer_images_per_s']:.0f}"])
    text += [table(rows, ["model", "estimator img/s", "plain loop img/s", "ratio",
                          "fp32 img/s", "bf16 / fp32", "train MFLOP/img", "GFLOP/s",
                          "MFU (bf16)", "infer img/s (batch 512)"]), "",
             "Estimator and plain loop: bf16 autocast, channels-last where safe. MFU: "
             "training FLOPs per image (forward and backward, `torch.utils.flop_counter`) "
             "x images/s over the bf16 matmul peak.", "",
             "### Precision and memory layout", ""]
    rows = []
    for m, f in r["families"].items():
        for combo, c in f["combos"].items():
            rows.append([m, combo, c["layout_used"], f"{c['train_images_per_s']:.0f}",
                         f"{c['infer_images_per_s']:.0f}"])
    text += [table(rows, ["model", "precision/layout asked", "layout used", "train img/s",
                          "infer img/s"]), "",
             "The layout used differs from the one asked where channels-last would hit a "
             "oneDNN memory-corruption bug (narrow strided 1x1 convolutions on CPU).", ""]
    o = r["original_pipeline"]
    rows = [["original: ResNet-18, 224x224x3 fp32, JPEG + PIL per item, batch 32",
             f"{o['theirs_images_per_s']:.1f}"]]
    if o["ratio"]:
        rows.append(["ours: resnet18 entry, 48x48 uint8 in memory, bf16",
                     f"{o['ours_resnet18_images_per_s']:.0f}"])
    text += ["## The original study's pipeline vs ours", "",
             table(rows, ["pipeline", "training img/s"]), ""]
    if o["ratio"]:
        text += [f"Ours trains **{o['ratio']:.0f}x** as many images per second.", ""]
    c = r.get("convergence")
    if c:
        rows = [[row["epoch"], f"{row['train_s']:.0f}",
                 f"{row['val_acc']:.1%}", f"{c['curves']['fp32'][i]['train_s']:.0f}",
                 f"{c['curves']['fp32'][i]['val_acc']:.1%}"]
                for i, row in enumerate(c["curves"]["bf16"])]
        reached = (f"{c['ours_s_to_target']:.0f} s" if c["ours_s_to_target"] is not None
                   else f"not within {c['epochs']} epochs")
        text += [f"## Time to the study's best accuracy ({STUDY_BEST:.2%})", "",
                 f"`{c['model']}` (quick recipe, one-cycle over {c['epochs']} epochs) on all "
                 "FER2013 training faces; accuracy on the validation split (PublicTest) after "
                 "each epoch; cumulative training time (validation not counted):", "",
                 table(rows, ["epoch", "bf16 s", "bf16 acc.", "fp32 s", "fp32 acc."]), "",
                 f"- Ours reaches {STUDY_BEST:.2%} after **{reached}** of training.",
                 f"- The original setup, at its measured {o['theirs_images_per_s']:.1f} img/s, "
                 f"needs an estimated **{c['theirs_s_estimated'] / 60:.0f} min** for its "
                 f"reported {STUDY_EPOCHS} epochs on half the training set."]
        if c["speedup"]:
            text.append(f"- Speed-up to the same accuracy: **{c['speedup']:.0f}x**.")
        text += [f"- bf16 vs fp32 after {c['epochs']} epochs: "
                 f"{c['bf16_minus_fp32_final_acc'] * 100:+.1f} points of accuracy, "
                 f"{c['bf16_over_fp32_full_epochs']:.2f}x the training speed on full epochs.",
                 ""]
    if r.get("loading"):
        lt = r["loading"]
        text += ["## Loading FER2013", "",
                 f"Cold decode of the zip (no cache): {lt['cold_s']:.2f} s; warm reload "
                 f"from the cache: {lt['warm_s']:.2f} s.", ""]
    return "\n".join(text)

