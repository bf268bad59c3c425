"""`benchmark perf` end to end at toy sizes (the real figures: reports/perf-cpu)."""

import json
from pathlib import Path

import pytest
import torch

from benchmark import perf
from benchmark.__main__ import main
from fer_sklearn._torch_utils import bf16_supported

REPORTS = Path(__file__).resolve().parents[1] / "reports"


def test_perf_measures_and_reports_side_by_side(tmp_path, monkeypatch):
    monkeypatch.setattr(perf, "_N_TRAIN", 256)
    monkeypatch.setattr(perf, "_ROUNDS", 2)
    monkeypatch.setattr(perf, "_PAIR_N", 128)
    monkeypatch.setattr(perf, "_PAIR_ROUNDS", 3)
    real = perf.original_pipeline_rate
    monkeypatch.setattr(perf, "original_pipeline_rate",
                        lambda X, y, device: real(X, y, device, n_batches=1, batch=8))
    out = tmp_path / "perf"
    assert main(["perf", "--models", "resnet18", "--out", str(out)]) == 0
    results = json.loads((out / "perf.json").read_text())
    fam = results["families"]["resnet18"]
    bf16 = bf16_supported("cpu")
    expected = {"fp32/contiguous", "fp32/channels_last"}
    if bf16:
        expected |= {"bf16/contiguous", "bf16/channels_last"}
    assert set(fam["combos"]) == expected
    assert results["precisions"][-1] == ("bf16" if bf16 else "fp32")
    assert (fam["bf16_over_fp32_train"] is not None) == bf16
    assert fam["estimator_over_plain"] > 0 and 0 < fam["mfu"]
    # estimator vs plain loop: 3 alternated rounds on 128 images; the round robin of
    # precisions and layouts: 2 rounds on all 256
    assert len(fam["rounds"]["estimator"]) == len(fam["rounds"]["plain"]) == 3
    assert results["pair_images"] == 128 and results["n_train_timed"] == 256
    assert {k: len(v) for k, v in fam["rounds"]["combos"].items()} == dict.fromkeys(expected, 2)
    assert (fam["bf16_over_fp32_same_layout"] is not None) == bf16
    assert fam["train_flops_per_image"] == pytest.approx(3 * fam["forward_flops_per_image"],
                                                         rel=0.05)
    assert results["original_pipeline"]["ratio"] > 1
    assert results["matmul_peak_flops_per_s"]["fp32"] > 0
    assert (results["matmul_peak_flops_per_s"]["bf16"] is not None) == bf16
    text = (out / "perf.md").read_text()
    assert "## The original study's pipeline vs ours" in text and "MFU" in text
    assert text == perf.render(results)
    if not bf16:
        assert "no fast bfloat16" in text and "| n/a" in text
    assert "convergence" not in results  # synthetic data: no FER2013 sections
    assert results["fp32_peak_tf32"] is False and "TF32" not in text


def test_the_fp32_peak_is_taken_on_tf32_where_the_convolutions_run_on_it(monkeypatch):
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (8, 0))
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", True)
    assert perf.fp32_convolutions_use_tf32("cuda") and perf.fp32_convolutions_use_tf32("cuda:1")
    assert not perf.fp32_convolutions_use_tf32("cpu")
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    assert not perf.fp32_convolutions_use_tf32("cuda")
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (7, 5))
    assert not perf.fp32_convolutions_use_tf32("cuda")  # Turing: no TF32
    # a caller who lets matmuls run on TF32 gets a TF32 peak, and it is recorded so
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", True)
    assert perf.fp32_peak_on_tf32("cuda") and not perf.fp32_peak_on_tf32("cpu")
    monkeypatch.setattr(torch.version, "hip", "6.2")  # ROCm: no cuDNN TF32
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (9, 4))
    assert not perf.fp32_convolutions_use_tf32("cuda") and not perf.fp32_peak_on_tf32("cuda")
    # the matmul setting is the caller's again afterwards
    seen = []
    monkeypatch.setattr(perf, "fp32_peak_on_tf32", lambda device: True)
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    monkeypatch.setattr(perf, "_sync", lambda device: seen.append(
        torch.backends.cuda.matmul.allow_tf32))
    assert perf.matmul_peak(torch.float32, sizes=(8,), repeats=1) > 0
    assert seen == [True, True] and torch.backends.cuda.matmul.allow_tf32 is False
    seen.clear()
    perf.matmul_peak(torch.bfloat16, sizes=(8,), repeats=1)
    assert seen == [False, False]


def test_a_tf32_fp32_peak_says_so_in_the_report():
    results = json.loads((REPORTS / "perf-cpu" / "perf.json").read_text())
    assert "TF32" not in perf.render(results)
    results["fp32_peak_tf32"] = True
    assert "(on TF32 tensor cores, which fp32 work runs on here)" in perf.render(results)


def test_perf_writes_by_default_to_the_folder_of_its_device(monkeypatch):
    # A CUDA measurement must not overwrite the committed CPU figures.
    assert perf.default_out("cpu") == "reports/perf-cpu"
    assert perf.default_out("cuda:1") == "reports/perf-cuda"
    seen = {}
    monkeypatch.setattr(perf, "run", lambda **kwargs: seen.update(kwargs))
    assert main(["perf", "--models", "cnn"]) == 0
    assert seen["out"] is None and seen["device"] == "cpu"


def test_perf_rejects_models_without_a_quick_recipe(capsys):
    assert main(["perf", "--models", "mobilenet_v3_small"]) == 2
    assert ("there is none for mobilenet_v3_small. Choose from cnn, resnet18, densenet_bc"
            in capsys.readouterr().err)


@pytest.mark.parametrize("args, message", [
    # each once a torch traceback, or an IndexError at the end of a long run
    (["--device", "bogus"], "device='bogus' is not a torch device string"),
    (["--epochs", "0"], "--epochs must be a whole number >= 1; got 0."),
])
def test_perf_checks_its_options_before_any_work(tmp_path, capsys, args, message):
    assert main(["perf", *args, "--out", str(tmp_path / "perf")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "perf").exists()


@pytest.mark.parametrize("folder", sorted(p.name for p in REPORTS.glob("perf-*")
                                          if (p / "perf.json").exists()))
def test_committed_perf_reports_rerender_identically(folder):
    results = json.loads((REPORTS / folder / "perf.json").read_text())
    assert perf.render(results) == (REPORTS / folder / "perf.md").read_text()


@pytest.mark.parametrize("model", ["cnn", "resnet18", "densenet_bc"])
def test_quick_models_are_wide_enough_to_run_at_the_hardware_rate(model):
    # Thinner convolutions are memory-bound on CPU: every convolution of the
    # quick models has 32 output channels or more.
    from torch import nn

    module = perf._estimator(model, "cpu", "fp32", False).initialize().module_
    convs = [m for m in module.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) > 3 and min(c.out_channels for c in convs) >= 32


def test_inference_rate_predicts_in_the_batches_it_is_given(faces):
    from fer_sklearn import CNNClassifier
    from fer_sklearn.cost import inference_rate

    X, y = faces
    clf = CNNClassifier(module__width=4, module__depth=2, max_epochs=1, batch_size=8,
                        random_state=0).fit(X, y)
    sizes = []
    hook = clf.module_.register_forward_hook(lambda m, i, o: sizes.append(len(i[0])))
    inference_rate(clf, X)
    assert sizes[-1] == 8
    inference_rate(clf.set_params(iterator_valid__batch_size=48), X)
    assert sizes[-1] == 48  # one batch of 48, not six of 8
    hook.remove()
