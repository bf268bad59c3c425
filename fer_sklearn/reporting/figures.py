"""PNG figures of a benchmark's results (matplotlib, Agg canvas, no pyplot state)."""

from pathlib import Path

import numpy as np

_DPI = 80


def new_figure(width, height):
    """A matplotlib ``Figure`` of ``width`` x ``height`` inches on its own Agg canvas
    (no pyplot state), laid out with ``constrained`` layout."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=_DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save_png(fig, path, gray=False, dpi=None):
    """Write ``fig`` as a small PNG (256-colour palette, or 8-bit gray for
    grayscale figures); returns the file name.

    Written beside the final name, then moved: a crash leaves no half PNG.
    """
    import io

    from PIL import Image

    path = Path(path)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    buf.seek(0)
    image = Image.open(buf)
    image = image.convert("L") if gray else image.convert("RGB").quantize(
        colors=256, method=Image.Quantize.MEDIANCUT)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        image.save(tmp, format="PNG", optimize=True)
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # no stray temporary file beside a failed write
        raise
    return path.name


def confusion_matrices(evaluate, path):
    """One row-normalised confusion matrix per model, side by side."""
    models = list(evaluate["models"])
    classes = evaluate["classes"]
    fig = new_figure(3.2 * len(models) + 0.4, 3.4)
    axes = fig.subplots(1, len(models), squeeze=False)[0]
    for ax, model in zip(axes, models):
        cm = np.asarray(evaluate["models"][model]["confusion_matrix"], dtype=float)
        norm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
        ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
        for i, j in np.ndindex(cm.shape):
            ax.text(j, i, f"{int(cm[i, j])}", ha="center", va="center", fontsize=6,
                    color="white" if norm[i, j] > 0.5 else "black")
        ax.set_xticks(range(len(classes)), [c[:3] for c in classes], fontsize=7)
        ax.set_yticks(range(len(classes)), [c[:3] for c in classes], fontsize=7)
        ax.set_xlabel("predicted", fontsize=8)
        ax.set_title(model, fontsize=9)
    axes[0].set_ylabel("true", fontsize=8)
    return save_png(fig, path)


def _per_epoch(ax, search, key, ylabel):
    """One line per model: ``key`` of each epoch that recorded it."""
    for model, record in search.items():
        hist = [h for h in record["history"] if key in h]
        ax.plot([h["epoch"] for h in hist], [h[key] for h in hist], marker=".", label=model)
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)


def learning_curves(search, path):
    """Training loss per epoch of each model's final fit, and held-out
    accuracy per epoch beside it where the fit held images out."""
    held = any("valid_acc" in h for r in search.values() for h in r["history"])
    fig = new_figure(8.0 if held else 4.5, 3.0)
    _per_epoch(fig.add_subplot(1, 2 if held else 1, 1), search, "train_loss", "training loss")
    if held:
        _per_epoch(fig.add_subplot(1, 2, 2), search, "valid_acc",
                   "held-out accuracy (part of Training)")
    return save_png(fig, path)


def per_class_f1(evaluate, path):
    """Grouped bars: test F1 per class and model (none for a class without
    test images, whose F1 the tables leave out too)."""
    models = list(evaluate["models"])
    classes = evaluate["classes"]
    fig = new_figure(5.5, 3.0)
    ax = fig.add_subplot(1, 1, 1)
    width = 0.8 / max(len(models), 1)
    x = np.arange(len(classes))
    for i, model in enumerate(models):
        per_class = evaluate["models"][model]["per_class"]
        f1 = [per_class[c]["f1"] if per_class[c]["support"] else np.nan for c in classes]
        ax.bar(x + (i - (len(models) - 1) / 2) * width, f1, width, label=model)
    ax.set_xticks(x, classes, fontsize=7)
    ax.set_ylim(0, 1)
    ax.set_ylabel("test F1")
    ax.legend(fontsize=7, ncols=min(len(models), 3))
    ax.grid(axis="y", alpha=0.3)
    return save_png(fig, path)


def cv_spread(search, path):
    """Each grid point's fold scores (dots) and mean, per model."""
    models = [m for m, r in search.items() if r.get("cv")]
    if not models:
        return None
    fig = new_figure(4.5, 3.0)
    ax = fig.add_subplot(1, 1, 1)
    pos = 0
    ticks, labels = [], []
    for model in models:
        cv = search[model]["cv"]
        for j, params in enumerate(cv["params"]):
            scores = [split[j] for split in cv["splits"]]
            ax.scatter([pos] * len(scores), scores, s=10, color="grey")
            ax.scatter([pos], [cv["mean"][j]], marker="_", s=200, color="C0")
            ticks.append(pos)
            labels.append(f"{model}\n" + ",".join(f"{v}" for v in params.values()))
            pos += 1
        pos += 0.5
    ax.set_xticks(ticks, labels, fontsize=6)
    ax.set_ylabel("CV accuracy")
    ax.grid(axis="y", alpha=0.3)
    return save_png(fig, path)
