"""Checks of the CUDA path, skipped without a CUDA GPU.

On a GPU machine: ``python -m pytest -m gpu -s`` (``-s`` prints the figures).
The FER2013 check also needs ``../shared/data`` and takes about five minutes.
"""

import json
import pickle
import time

import numpy as np
import pytest
import torch

from benchmark.__main__ import main
from fer_sklearn import CNNClassifier
from fer_sklearn._torch_utils import bf16_supported
from fer_sklearn.datasets import make_synthetic_faces

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]

# The full profile's cnn, trained on FER2013 for a few minutes instead of
# 120 epochs with a search: enough to show that the CUDA path learns.
GPU_CHECK_TOML = """
models = ["cnn"]
explain_methods = ["saliency", "gradcam"]
explain_per_class = 2

[recipes.cnn]
grid = {}
holdout = 0.05
time_budget = 240
"""


def test_the_cuda_path_trains_in_bf16_where_the_gpu_runs_it():
    faces = make_synthetic_faces(4000, random_state=1)
    X, y = faces.data, faces.target
    clf = CNNClassifier(module__width=32, module__depth=3, max_epochs=8, lr=3e-3,
                        lr_schedule="onecycle", random_state=0)  # device="auto"
    start = time.perf_counter()
    clf.fit(X[:3000], y[:3000])
    seconds = time.perf_counter() - start
    assert next(clf.module_.parameters()).device.type == "cuda"
    assert clf.amp_dtype_ == (torch.bfloat16 if bf16_supported("cuda") else None)
    accuracy = clf.score(X[3000:], y[3000:])
    print(f"\n{torch.cuda.get_device_name()}: 8 epochs on 3000 synthetic faces in "
          f"{seconds:.1f} s ({8 * 3000 / seconds:.0f} images/s, first epoch included), "
          f"held-out accuracy {accuracy:.3f}, autocast {clf.amp_dtype_}")
    assert accuracy > 0.6  # seven classes: chance is 0.14
    # A pickled model predicts as the original (bf16 kernels may differ slightly).
    copy = pickle.loads(pickle.dumps(clf))
    np.testing.assert_allclose(copy.predict_proba(X[3000:3200]),
                               clf.predict_proba(X[3000:3200]), atol=0.02)


@pytest.mark.slow
@pytest.mark.real_data
def test_the_full_profile_cnn_learns_fer2013_on_cuda_in_minutes(fer_zip, tmp_path):
    config = tmp_path / "gpu-check.toml"
    config.write_text(GPU_CHECK_TOML)
    start = time.perf_counter()
    assert main(["run", "--dataset", f"fer2013:{fer_zip}", "--profile", "full",
                 "--device", "cuda", "--config", str(config), "--out", str(tmp_path),
                 "--name", "gpu-check"]) == 0
    minutes = (time.perf_counter() - start) / 60
    results = json.loads((tmp_path / "gpu-check" / "results.json").read_text())
    search = results["stages"]["search"]["cnn"]
    accuracy = results["stages"]["evaluate"]["models"]["cnn"]["metrics"]["accuracy"]
    print(f"\nfull-profile cnn on {results['environment']['hardware']}: "
          f"{len(search['history'])} epochs in {search['refit_time']:.0f} s "
          f"({search['time_budget']['probe_images_per_s']:.0f} images/s probed); PublicTest "
          f"accuracy {accuracy['value']:.3f} [{accuracy['low']:.3f}, {accuracy['high']:.3f}] "
          f"with ten-view averaging; whole run {minutes:.1f} min")
    assert results["environment"]["device"].startswith("cuda")
    assert accuracy["value"] >= 0.60
