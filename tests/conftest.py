"""Shared fixtures: tiny face-like data, a private decode cache, the real data."""

from pathlib import Path

import numpy as np
import pytest
from skorch.callbacks import Callback

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
FER_ZIP = SHARED_DATA / "fer2013" / "fer2013-train-validation.zip"
DEMOGRAPHICS = SHARED_DATA / "fer2013" / "demographics.csv"

# One tiny, fast configuration per architecture family: (registry name,
# construction options, a module__ option to search and two values for it).
FAMILY_CONFIGS = {
    "cnn": ("cnn", {"module__width": 4, "module__depth": 2}, "module__width", [4, 6]),
    "resnet": ("resnet18", {"module__width": 4}, "module__width", [4, 6]),
    "densenet": ("densenet_bc", {"module__growth_rate": 4, "module__block_config": (1, 1)},
                 "module__growth_rate", [4, 6]),
    "torchvision": ("mobilenet_v3_small", {"module__width_mult": 0.25},
                    "module__dropout", [0.1, 0.2]),
    "seed": ("seed_cnn", {"module__width": 2}, "module__width", [2, 3]),
}


def make_faces(n=48, n_classes=3, seed=0):
    """Noise images whose class is a local pattern: horizontal bar, vertical bar,
    square, or nothing (learnable by translation-invariant networks too)."""
    rng = np.random.RandomState(seed)
    labels = np.array(["angry", "happy", "sad", "neutral"][:n_classes])
    y = labels[np.arange(n) % n_classes]
    X = rng.randint(0, 120, size=(n, 48, 48)).astype(np.uint8)
    for i in range(n):
        r, c = rng.randint(6, 26, size=2)
        kind = int(np.flatnonzero(labels == y[i])[0])
        if kind == 0:
            X[i, r:r + 4, c:c + 18] = 250
        elif kind == 1:
            X[i, r:r + 18, c:c + 4] = 250
        elif kind == 2:
            X[i, r:r + 10, c:c + 10] = 250
    return X, y


@pytest.fixture
def faces():
    return make_faces()


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    """Every test decodes into its own cache folder, never the user's."""
    folder = tmp_path / "fer-cache"
    monkeypatch.setenv("FER_SKLEARN_CACHE", str(folder))
    return folder


@pytest.fixture
def fer_zip():
    if not FER_ZIP.is_file():
        pytest.skip(f"real FER2013 data not found at {FER_ZIP}")
    return FER_ZIP


@pytest.fixture(scope="session")
def synthetic_model():
    """A small CNN trained on synthetic faces (about 10 s on 2 CPU cores):
    ``(estimator, faces with masks, test indices)``."""
    from fer_sklearn import CNNClassifier
    from fer_sklearn.datasets import make_synthetic_faces

    faces = make_synthetic_faces(4000, random_state=1, return_masks=True)
    train, test = np.arange(3000), np.arange(3000, 4000)
    clf = CNNClassifier(module__width=16, module__depth=3, max_epochs=8, lr=3e-3,
                        lr_schedule="onecycle", random_state=0)
    clf.fit(faces.data[train], faces.target[train])
    return clf, faces, test


class FakeClock(Callback):
    """A clock for ``TimeBudget``: ``unit`` seconds per 48x48 training batch, and
    the pixel ratio of that for a smaller batch (a quarter at 24x24); it records
    (epoch, side) of every training batch."""

    def __init__(self, unit=1.0):
        self.unit, self.now, self.sides = unit, 0.0, []

    def __call__(self):
        return self.now

    def on_train_begin(self, net, **kwargs):
        def tick(module, args):
            if module.training:
                side = args[0].shape[-1]
                self.now += self.unit * (1.0 if side == 48 else (side / 48) ** 2)
                self.sides.append((len(net.history), side))
        net.module_.register_forward_pre_hook(tick)
