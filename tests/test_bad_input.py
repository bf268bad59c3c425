"""The bad-input catalogue (README, Troubleshooting) that other test files do not cover:
each case ends in a clear error naming what is wrong, or in an explicit, reported
recovery. Loader basics (corrupt images, unknown classes, bad CSV rows, missing
files, colour and 16-bit conversion) are in ``test_datasets.py``."""

import errno
import io
import json
import os
import warnings
import zipfile
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from benchmark import store
from benchmark.__main__ import main
from benchmark.config import resolve_config
from benchmark.stages.data import load, loading_notes, loading_section
from fer_sklearn import CNNClassifier
from fer_sklearn.datasets import image_folder, load_image_folder, make_synthetic_faces

TINY = """
n_boot = 20
models = ["cnn"]
explain_per_class = 1
explain_methods = ["saliency"]
[synthetic]
n_samples = 140
[recipes.cnn.params]
max_epochs = 1
module__width = 4
module__depth = 2
"""


def _faces_folder(root, n=70, seed=0, split=None):
    faces = make_synthetic_faces(n, random_state=seed)
    for i, (img, label) in enumerate(zip(faces.data, faces.target)):
        folder = root / split / label if split else root / label
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(folder / f"{seed}-{i}.png")
    return faces


def _config(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(TINY)
    return path


def _run(tmp_path, *extra, name="r"):
    return main(["run", "--config", str(_config(tmp_path)), "--out", str(tmp_path / "runs"),
                 "--name", name, *extra])


def _loading(tmp_path, name="r"):
    results = json.loads((tmp_path / "runs" / name / "results.json").read_text())
    report = (tmp_path / "runs" / name / "report.md").read_text()
    return results["stages"]["data"]["loading"], report


@pytest.mark.parametrize("padding", [0, 2_100_000])
def test_damaged_member_of_a_zip_is_named_or_skipped_whatever_the_zip_size(tmp_path, padding):
    src = tmp_path / "src"
    _faces_folder(src, n=14)
    zpath = tmp_path / "faces.zip"
    with zipfile.ZipFile(zpath, "w", zipfile.ZIP_DEFLATED) as zf:
        for f in sorted(src.rglob("*.png")):
            zf.write(f, f.relative_to(src).as_posix())
        zf.writestr("padding.bin", os.urandom(padding), zipfile.ZIP_STORED)
    raw = bytearray(zpath.read_bytes())
    with zipfile.ZipFile(zpath) as zf:
        info = zf.infolist()[3]
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    raw[start:start + 40] = b"\x00" * 40  # damage the deflated bytes in place
    zpath.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match=rf"Cannot decode image {info.filename}: cannot read"):
        load_image_folder(zpath, cache=False)
    bunch = load_image_folder(zpath, on_error="skip", cache=False)
    assert len(bunch.data) == 13
    assert [s for s, _ in bunch.report["skipped"]] == [info.filename]


def test_damaged_members_that_are_not_loaded_are_never_read(tmp_path):
    src = tmp_path / "src"
    _faces_folder(src, n=6)
    zpath = tmp_path / "faces.zip"
    with zipfile.ZipFile(zpath, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("notes.txt", "taken on a Tuesday. " * 200)
        for f in sorted(src.rglob("*.png")):
            zf.write(f, f.relative_to(src).as_posix())
    raw = bytearray(zpath.read_bytes())
    with zipfile.ZipFile(zpath) as zf:
        info = zf.getinfo("notes.txt")
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    raw[start:start + 40] = b"\x00" * 40
    zpath.write_bytes(bytes(raw))
    with zipfile.ZipFile(zpath) as zf, pytest.raises((zipfile.BadZipFile, zlib.error)):
        zf.read("notes.txt")
    bunch = load_image_folder(zpath, cache=False)
    assert len(bunch.data) == 6 and bunch.report["skipped"] == []
    assert bunch.report["ignored_files"] == ["notes.txt"]


def test_non_image_hidden_and_empty_folders_are_reported_in_the_run(tmp_path):
    root = tmp_path / "faces"
    _faces_folder(root)
    (root / "happy" / "notes.txt").write_text("taken on a Tuesday")
    (root / "happy" / "Thumbs.db").write_bytes(b"\x00" * 10)
    (root / "sad" / ".DS_Store").write_bytes(b"\x00\x01")
    (root / "disgust").mkdir(exist_ok=True)
    for f in (root / "disgust").iterdir():
        f.unlink()
    assert _run(tmp_path, "--dataset", f"folder:{root}") == 0
    notes, report = _loading(tmp_path)
    assert notes["ignored_files"] == {"count": 2, "examples": ["happy/Thumbs.db",
                                                               "happy/notes.txt"]}
    assert notes["hidden_files"] == {"count": 1}
    assert notes["empty_folders"]["examples"] == ["disgust"]
    assert "2 non-image file(s) ignored" in report
    assert "1 empty folder(s), e.g. ['disgust']" in report


def test_other_sizes_and_colour_are_converted_and_counted_in_the_report(tmp_path):
    root = tmp_path / "faces"
    _faces_folder(root)
    rgb = np.random.RandomState(0).randint(0, 256, (64, 64, 3)).astype(np.uint8)
    Image.fromarray(rgb, "RGB").save(root / "happy" / "colour.png")
    deep = np.full((48, 48), 40000, np.uint16)
    Image.fromarray(deep).save(root / "sad" / "deep.png")
    assert _run(tmp_path, "--dataset", f"folder:{root}") == 0
    notes, report = _loading(tmp_path)
    assert notes["conversions"] == {"converted_to_gray": 1, "resized": 1, "high_bit_depth": 1}
    assert "converted to gray 1" in report and "high bit depth 1" in report


def test_test_images_duplicated_in_training_are_flagged_as_leakage(tmp_path):
    root = tmp_path / "faces"
    faces = _faces_folder(root, n=70, split="train")
    _faces_folder(root, n=35, seed=1, split="test")
    for i in range(4):  # the same pixels under another name, in the test split
        Image.fromarray(faces.data[i]).save(root / "test" / faces.target[i] / f"copy{i}.png")
    assert _run(tmp_path, "--dataset", f"folder:{root}") == 0
    notes, report = _loading(tmp_path)
    assert notes["test_duplicates_of_train"]["count"] == 4
    assert "4 test image(s) are pixel-identical to a training image (leakage" in report


@pytest.mark.parametrize("layout", ["folder", "csv"])
def test_images_in_a_split_the_protocol_does_not_use_are_reported(tmp_path, layout):
    root = tmp_path / "faces"
    _faces_folder(root, n=70, split="train")
    _faces_folder(root, n=21, seed=1, split="test")
    _faces_folder(root, n=14, seed=2, split="dev")
    if layout == "folder":
        dataset, left_out = f"folder:{root}", {"dev": 14}
    else:  # the dev images listed with a blank split cell
        rows = ["image_path,label,split"] + [
            f"{p.relative_to(root).as_posix()},{p.parent.name},"
            f"{'' if p.parts[-3] == 'dev' else p.parts[-3]}" for p in sorted(root.rglob("*.png"))]
        (root / "labels.csv").write_text("\n".join(rows) + "\n")
        dataset, left_out = f"csv:{root / 'labels.csv'}", {"unassigned": 14}
    d = load(resolve_config(dataset=dataset))
    assert len(d.y_train) == 70 and len(d.y_test) == 21
    assert d.unused_splits == left_out
    notes = loading_notes(d)
    assert notes["unused_splits"] == {"count": 14, "splits": left_out}
    (name,) = left_out
    section = loading_section({"stages": {"data": {"loading": notes}}})
    assert (f"- 14 image(s) left out, in splits the protocol does not use ({name} 14): "
            "name their split train, validation or test to use them.") in section


def test_zip_members_passed_over_for_a_later_one_of_the_same_path_are_reported(tmp_path):
    root = tmp_path / "faces"
    _faces_folder(root, n=40)
    files = sorted(root.rglob("*.png"))
    path = tmp_path / "faces.zip"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # zipfile: "Duplicate name"
        with zipfile.ZipFile(path, "w") as zf:
            for f in files:
                zf.write(f, f.relative_to(root).as_posix())
            zf.write(files[1], files[0].relative_to(root).as_posix())  # appended later
    d = load(resolve_config(dataset=f"folder:{path}"))
    assert len(d.y_train) + len(d.y_test) == 40
    notes = loading_notes(d)
    first = files[0].relative_to(root).as_posix()
    assert notes["duplicate_members"] == {"count": 1, "examples": [first]}
    section = loading_section({"stages": {"data": {"loading": notes}}})
    assert (f"- 1 zip member(s) passed over, each for a later member of the same path "
            f"(the one unzipping would leave), e.g. ['{first}']") in section


def _clear_utf8_flags(raw):
    """The zip's bytes with the UTF-8 name flag cleared in every header, as
    archivers that store UTF-8 names without saying so leave them."""
    raw = bytearray(raw)
    for signature, offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        at = raw.find(signature)
        while at != -1:
            raw[at + offset + 1] &= ~0x08 & 0xFF  # bit 11 of the little-endian flags
            at = raw.find(signature, at + 4)
    return bytes(raw)


def test_zip_names_stored_in_utf8_without_the_flag_are_read_as_utf8(tmp_path):
    faces = make_synthetic_faces(14, random_state=0)
    path = tmp_path / "faces.zip"
    with zipfile.ZipFile(path, "w") as zf:
        for i, (img, label) in enumerate(zip(faces.data, faces.target)):
            buffer = io.BytesIO()
            Image.fromarray(img).save(buffer, format="PNG")
            zf.writestr(f"visages/{label}/café-{i}.png", buffer.getvalue())
    path.write_bytes(_clear_utf8_flags(path.read_bytes()))
    with zipfile.ZipFile(path) as zf:
        assert zf.namelist()[0].startswith("visages/") and "caf├⌐" in zf.namelist()[0]
    bunch = load_image_folder(path, cache=False)
    assert len(bunch.data) == 14 and bunch.report["root_folder"] == "visages"
    assert sorted(bunch.frame["source"]) == sorted(
        f"{label}/café-{i}.png" for i, label in enumerate(faces.target))
    # a cp437 name (bytes that are not UTF-8) is still read as cp437
    info = zipfile.ZipInfo("happy/\u00e9t\u00e9.png")  # 0x82 0x74 0x82 in cp437
    assert image_folder._member_name(info) == "happy/été.png"
    info = zipfile.ZipInfo("happy/caf\u251c\u2310.png")
    assert image_folder._member_name(info) == "happy/café.png"


def test_a_class_of_one_image_is_named_before_a_stratified_split(tmp_path):
    root = tmp_path / "faces"
    _faces_folder(root, n=40)
    (root / "contempt").mkdir()
    Image.fromarray(np.zeros((48, 48), np.uint8)).save(root / "contempt" / "only.png")
    with pytest.raises(ValueError, match=r"class\(es\) \['contempt'\] have a single image, "
                                         "too few for a stratified train/test split"):
        load(resolve_config(dataset=f"folder:{root}"))


def test_attribute_csv_matching_no_image_is_an_error(tmp_path, capsys):
    csv = tmp_path / "groups.csv"
    csv.write_text("path,gender\nelsewhere/a.png,f\nelsewhere/b.png,m\n")
    root = tmp_path / "faces"
    _faces_folder(root)
    assert _run(tmp_path, "--dataset", f"folder:{root}", "--attributes", str(csv)) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith(f"error: No row of {csv} matched an image") and "elsewhere/a.png" in err


def test_missing_dataset_path_is_a_one_line_error(tmp_path, capsys):
    assert _run(tmp_path, "--dataset", f"folder:{tmp_path / 'nowhere'}") == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1].startswith("error: No such file or folder")
    assert "Traceback" not in err


def test_labels_unseen_at_fit_are_named_when_scoring():
    faces = make_synthetic_faces(70, random_state=0)
    keep = faces.target != "neutral"
    clf = CNNClassifier(max_epochs=1, module__width=4, module__depth=2, random_state=0)
    clf.fit(faces.data[keep], faces.target[keep])
    with pytest.warns(UserWarning, match=r"label\(s\) \['neutral'\] .* never seen in fit"):
        score = clf.score(faces.data, faces.target)
    assert score <= keep.mean()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        clf.score(faces.data[keep], faces.target[keep])


def test_missing_non_finite_and_unknown_labels_are_refused_by_name():
    faces = make_synthetic_faces(70, random_state=0)
    X = faces.data[:20]
    clf = CNNClassifier(max_epochs=1, module__width=4, module__depth=2, random_state=0)
    with pytest.raises(ValueError, match="CNNClassifier requires y to be passed"):
        clf.fit(X, None)
    with pytest.raises(ValueError, match="Input y contains NaN"):  # scikit-learn's check
        clf.fit(X, np.where(np.arange(20) == 3, np.nan, 1.0))
    clf = CNNClassifier(max_epochs=1, module__width=4, module__depth=2, random_state=0,
                        classes=["happy", "sad"])
    with pytest.raises(ValueError, match=r"y has label\(s\) \['angry'\] not among the classes "
                                         r"\['happy', 'sad'\]"):
        clf.fit(X[:2], ["happy", "angry"])


def test_read_only_output_folder_is_a_clear_error(tmp_path, capsys, monkeypatch):
    def refuse(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", str(tmp_path / "runs"))

    # Tests may run as root, for whom chmod does not make a folder read-only.
    monkeypatch.setattr(store.tempfile, "mkstemp", refuse)
    assert _run(tmp_path) == 1
    err = capsys.readouterr().err
    assert "cannot write" in err and "Permission denied" in err and "Traceback" not in err
    assert "--resume" in err
    assert "Free some space" not in err  # the disk is not full: no advice that it is


def test_a_failed_export_names_its_own_folder_option(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    # mkdir under a regular file fails for root too (NotADirectoryError)
    assert main(["faces", "--export", str(blocker / "faces"), "--n", "30"]) == 1
    err = capsys.readouterr().err
    assert "cannot write" in err and "--export" in err and "Traceback" not in err
    assert "--resume" not in err and "--out" not in err


def test_an_unreadable_dataset_is_not_called_a_write_error(tmp_path, capsys, monkeypatch):
    from benchmark import runner

    def refuse(config):
        raise PermissionError(errno.EACCES, "Permission denied", "/data/faces.zip")

    monkeypatch.setattr(runner, "load", refuse)
    assert _run(tmp_path) == 1
    err = capsys.readouterr().err
    assert "cannot read /data/faces.zip: Permission denied" in err
    assert "cannot write" not in err and "Traceback" not in err


def test_disk_full_while_writing_the_report_loses_nothing(tmp_path, capsys, monkeypatch):
    real = store.write_text

    def full(path, text):
        if path.name == "report.md":
            with store.atomic_path(path) as tmp:
                tmp.write_text(text[:100])
                raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(path, text)

    from benchmark import runner

    monkeypatch.setattr(runner, "write_text", full)
    assert _run(tmp_path) == 1
    err = capsys.readouterr().err
    assert "No space left on device. Free some space or pick a writable --out" in err
    assert "--resume" in err
    run_dir = tmp_path / "runs" / "r"
    assert not (run_dir / "report.md").exists()
    assert not list(run_dir.rglob("*.tmp"))
    json.loads((run_dir / "results.json").read_text())
    monkeypatch.setattr(runner, "write_text", real)
    assert _run(tmp_path, "--resume") == 0
    assert (run_dir / "report.md").read_text().startswith("# Benchmark report: r")


def test_out_of_memory_retries_with_half_the_batch_and_says_so(monkeypatch):
    faces = make_synthetic_faces(70, random_state=0)
    clf = CNNClassifier(max_epochs=1, batch_size=64, module__width=4, module__depth=2,
                        random_state=0)
    real = CNNClassifier.train_step_single

    def small_memory(self, batch, **kwargs):
        if len(batch[0]) > 16:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB")
        return real(self, batch, **kwargs)

    monkeypatch.setattr(CNNClassifier, "train_step_single", small_memory)
    with pytest.warns(ResourceWarning, match="ran out of memory at batch size 64.*batch size 32"):
        clf.fit(faces.data, faces.target)
    assert clf.oom_retries_ == [[64, 32], [32, 16]]
    assert clf.batch_size_ == 16 and clf.batch_size == 64  # the parameter is untouched
    assert len(clf.history) == 1
    # with an iterator batch size, the retry halves the batches the fit really draws
    clf = CNNClassifier(max_epochs=1, module__width=4, module__depth=2, random_state=0,
                        iterator_train__batch_size=32)
    with pytest.warns(ResourceWarning, match="at batch size 32.*batch size 16"):
        clf.fit(faces.data, faces.target)
    assert clf.oom_retries_ == [[32, 16]] and len(clf.history) == 1
    monkeypatch.setattr(CNNClassifier, "train_step_single", real)
    direct = CNNClassifier(max_epochs=1, batch_size=16, module__width=4, module__depth=2,
                           random_state=0).fit(faces.data, faces.target)
    np.testing.assert_allclose(clf.predict_proba(faces.data[:8]),
                               direct.predict_proba(faces.data[:8]), rtol=1e-5)


def test_channels_last_images_are_refused_with_the_transpose_to_use():
    faces = make_synthetic_faces(20, random_state=0)
    keras_like = faces.data[:, :, :, None]  # (n, 48, 48, 1)
    with pytest.raises(ValueError, match=r"looks channels-last.*transpose\(0, 3, 1, 2\)"):
        CNNClassifier(max_epochs=1).fit(keras_like, faces.target)
