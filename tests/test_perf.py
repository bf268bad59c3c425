"""`benchmark perf` end to end at toy sizes (the real figures: reports/perf-cpu)."""

import json

import pytest

from benchmark import perf
from benchmark.__main__ import main
from fer_sklearn._torch_utils import bf16_supported


@pytest.mark.skipif(not bf16_supported("cpu"), reason="perf compares fp32 with bf16")
def test_perf_measures_and_reports_side_by_side(tmp_path, monkeypatch):
    monkeypatch.setattr(perf, "_N_TRAIN", 256)
    real = perf.original_pipeline_rate
    monkeypatch.setattr(perf, "original_pipeline_rate",
                        lambda X, y, device: real(X, y, device, n_batches=1, batch=8))
    out = tmp_path / "perf"
    assert main(["perf", "--models", "resnet18", "--out", str(out)]) == 0
    results = json.loads((out / "perf.json").read_text())
    fam = results["families"]["resnet18"]
    assert set(fam["combos"]) == {"fp32/contiguous", "fp32/channels_last",
                                  "bf16/contiguous", "bf16/channels_last"}
    assert fam["estimator_over_plain"] > 0 and 0 < fam["mfu"]
    assert fam["train_flops_per_image"] == pytest.approx(3 * fam["forward_flops_per_image"],
                                                         rel=0.05)
    assert results["original_pipeline"]["ratio"] > 1
    assert results["matmul_peak_flops_per_s"]["bf16"] > 0
    text = (out / "perf.md").read_text()
    assert "## The original study's pipeline vs ours" in text and "MFU" in text
    assert "convergence" not in results  # synthetic data: no FER2013 sections


def test_perf_rejects_models_without_a_quick_recipe(capsys):
    assert main(["perf", "--models", "mobilenet_v3_small"]) == 2
    assert "no recipe for ['mobilenet_v3_small']" in capsys.readouterr().err
