"""The FER2013 recipe's machinery on tiny data: saved models, the ensemble, ten-view
averaging, and scoring saved models on another dataset."""

import csv
import json
import shutil
from pathlib import Path

import joblib
import numpy as np
import pytest

from benchmark.__main__ import main
from benchmark.config import PROFILES, resolve_config
from benchmark.crossdata import cross_dataset_section, on_shared
from benchmark.stages.data import load_bunch
from benchmark.stages.evaluate import _views
from fer_sklearn import FERClassifier
from fer_sklearn.datasets._labels import map_labels

TINY_FER_TOML = """
n_boot = 30
models = ["cnn", "resnet18"]
explain_per_class = 1
explain_methods = ["saliency"]
[synthetic]
n_samples = 210
[recipes.cnn.params]
max_epochs = 2
batch_size = 32
module__width = 4
module__depth = 2
[recipes.resnet18.params]
max_epochs = 1
batch_size = 32
module__width = 4
"""


TINY_TOML_64 = """
n_boot = 20
models = ["cnn"]
explain_methods = ["saliency"]
explain_per_class = 1
[synthetic]
n_samples = 140
image_size = 64
[recipes.cnn.params]
max_epochs = 1
module__width = 4
module__depth = 2
[recipes.cnn.grid]
"""


@pytest.fixture(scope="module")
def fer_run(tmp_path_factory):
    """A tiny run of the fer2013-cpu profile with --save-models."""
    root = tmp_path_factory.mktemp("fer")
    toml = root / "tiny.toml"
    toml.write_text(TINY_FER_TOML)
    assert main(["run", "--config", str(toml), "--profile", "fer2013-cpu", "--save-models",
                 "--out", str(root), "--name", "t"]) == 0
    return root / "t"


def _results(run_dir):
    return json.loads((run_dir / "results.json").read_text())


def test_saved_models_reload_both_ways(fer_run):
    results = _results(fer_run)
    X = np.zeros((4, 48, 48), dtype=np.uint8) + np.arange(4, dtype=np.uint8)[:, None, None] * 50
    for model in results["config"]["models"]:
        folder = fer_run / "models"
        est = joblib.load(folder / f"{model}.joblib")
        expected = est.predict_proba(X)
        # skorch's save_params files: into an estimator of the same parameters,
        # initialised by a zero-epoch fit on one face per class.
        fresh = FERClassifier(**{**est.get_params(), "max_epochs": 0, "train_split": None})
        fresh.fit(np.zeros((len(est.classes_), 48, 48), dtype=np.uint8), est.classes_)
        fresh.load_params(f_params=folder / f"{model}.params.pt",
                          f_history=folder / f"{model}.history.json")
        np.testing.assert_allclose(fresh.predict_proba(X), expected, rtol=1e-4, atol=1e-6)
        assert len(fresh.history) == len(est.history)


def test_profile_holds_out_part_of_training_for_learning_curves(fer_run):
    search = _results(fer_run)["stages"]["search"]
    for record in search.values():
        assert record["holdout"] == PROFILES["fer2013-cpu"]["recipes"]["cnn"]["holdout"]
        assert all("valid_acc" in h for h in record["history"])
    report = (fer_run / "report.md").read_text()
    assert "only draw the learning curve" in report
    assert "Time budget 20 min; one epoch estimated at" in report
    assert "all 2 epochs of the recipe fit" in report  # the tiny cnn's
    assert search["cnn"]["time_budget"]["epochs"] == 2
    assert search["cnn"]["time_budget"]["epochs_trained"] == 2  # the fit re-planned, kept 2
    assert "Model selection: none" in report
    assert "eighteen views" in report and "costs eighteen forward passes" in report
    # the profile's progressive resizing: the probe times the 32x32 epochs too
    assert "at 32x32 pixels" in report
    assert search["cnn"]["time_budget"]["small_side"] == 32


def test_ensemble_row_is_the_soft_vote_of_the_models(fer_run):
    results = _results(fer_run)
    evaluate = results["stages"]["evaluate"]
    ens = evaluate["ensemble"]
    assert ens["members"] == ["cnn", "resnet18"]
    probas = [np.load(fer_run / "state" / f"pred-{m}.npz")["proba"] for m in ens["members"]]
    mean = np.mean(probas, axis=0)
    cm = np.asarray(ens["confusion_matrix"])
    assert cm.sum() == results["stages"]["data"]["n_test"] == len(mean)
    predicted = np.bincount(mean.argmax(1), minlength=len(evaluate["classes"]))
    np.testing.assert_array_equal(cm.sum(0), predicted)
    assert "**ensemble** (soft vote of 2)" in (fer_run / "report.md").read_text()


def _posed_set(folder, tmp_path):
    """Synthetic faces exported without `neutral`, plus five `contempt` images."""
    assert main(["faces", "--export", str(folder), "--n", "300", "--drop", "neutral"]) == 0
    first = next((folder / "images").iterdir())
    with open(folder / "labels.csv", "a", newline="") as fh:
        writer = csv.writer(fh)
        for i in range(5):
            shutil.copy(first, folder / "images" / f"contempt{i}.png")
            writer.writerow([f"images/contempt{i}.png", "contemptuous"])
    return folder


def test_a_labels_csv_recorded_on_another_machine_is_rerooted_by_dataset_root(
        fer_run, tmp_path, capsys):
    posed = _posed_set(tmp_path / "posed", tmp_path)
    with open(posed / "labels.csv", newline="") as fh:
        header, *rows = list(csv.reader(fh))
    moved = tmp_path / "moved.csv"
    with open(moved, "w", newline="") as fh:
        csv.writer(fh).writerows([header] + [["/content/drive/MyDrive/posed/" + path, *rest]
                                             for path, *rest in rows])
    args = ["evaluate", str(fer_run), "--dataset", f"csv:{moved}", "--label", "moved"]
    assert main(args) == 2
    assert "--dataset-root" in capsys.readouterr().err
    assert main(args + ["--tta", "afine"]) == 2
    assert "Unknown tta 'afine'. Did you mean 'affine'?" in capsys.readouterr().err
    assert main(args + ["--dataset-root", str(tmp_path / "nowhere")]) == 2
    assert "nowhere (the folder the image paths of" in capsys.readouterr().err
    assert main(args + ["--dataset-root", str(posed / "images")]) == 0
    entry = _results(fer_run)["cross_dataset"]["moved"]
    assert entry["dropped_classes"] == {"contempt": 5} and entry["n"] == len(rows) - 5
    # the run's own dataset re-roots the same way
    config = resolve_config(dataset=f"csv:{moved}", dataset_root=str(posed / "images"),
                            models=["cnn"])
    assert len(load_bunch(config).target) == len(rows)
    # and only a labels CSV takes a root
    with pytest.raises(ValueError, match="dataset_root .* only applies to a labels CSV"):
        resolve_config(dataset="synthetic", dataset_root=str(posed))
    assert main(["run", "--dataset", f"folder:{posed}", "--dataset-root", str(posed)]) == 2
    assert "not to a folder dataset" in capsys.readouterr().err


def test_export_refuses_to_drop_a_class_it_does_not_know(tmp_path, capsys):
    assert main(["faces", "--export", str(tmp_path / "x"), "--drop", "nuetral"]) == 2
    assert "--drop names nuetral, not among the classes" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("args, message", [
    # an empty export once "succeeded"; --drop without --export was silently ignored;
    # a folder as --grid once left a stray temporary file and blamed a read
    (["--export", "{tmp}/x", "--drop", "angry,disgust,fear,happy,sad,surprise,neutral"],
     "--drop leaves no class to export; keep at least one of angry,"),
    (["--drop", "happy"], "--drop leaves classes out of an --export; without --export"),
    (["--grid", "{tmp}"], "--grid {tmp} is a folder; give the PNG file to write"),
    # one face drawn, of a dropped class: the export once wrote a header alone
    (["--n", "1", "--export", "{tmp}/x", "--drop", "angry,disgust,fear,happy,sad,surprise"],
     "none of the 1 faces drawn is of a class --drop keeps"),
])
def test_faces_refuses_what_it_cannot_do_and_leaves_nothing_behind(tmp_path, capsys, args,
                                                                  message):
    before = sorted(tmp_path.parent.iterdir())
    args = [a.format(tmp=tmp_path) for a in args]
    assert main(["faces", "--n", "20", *args]) == 2
    assert message.format(tmp=tmp_path) in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == [] and sorted(tmp_path.parent.iterdir()) == before


def test_an_export_that_fails_leaves_nothing_behind(tmp_path, monkeypatch, capsys):
    # a half-written export once stayed, looking whole, and blocked the retry
    from PIL import Image

    saved = []
    real = Image.Image.save

    def disk_full(self, fp, *args, **kwargs):
        if len(saved) == 3:
            raise OSError(28, "No space left on device")
        saved.append(fp)
        return real(self, fp, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "save", disk_full)
    assert main(["faces", "--export", str(tmp_path / "x"), "--n", "20"]) != 0
    assert "No space left on device" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setattr(Image.Image, "save", real)
    assert main(["faces", "--export", str(tmp_path / "x"), "--n", "20"]) == 0
    assert len(list((tmp_path / "x" / "images").iterdir())) == 20
    assert [p.name for p in tmp_path.iterdir()] == ["x"]


@pytest.mark.parametrize("target", ["empty", "link", "cwd"])
def test_an_export_into_an_existing_empty_folder_fills_it(tmp_path, monkeypatch, target):
    # removing the folder to rename the temporary one into its place once failed
    # on a link to an empty folder and on `--export .`
    empty = tmp_path / "empty"
    empty.mkdir()
    where = {"empty": str(empty), "link": str(tmp_path / "link"), "cwd": "."}[target]
    (tmp_path / "link").symlink_to(empty)
    monkeypatch.chdir(empty)
    assert main(["faces", "--export", where, "--n", "20"]) == 0
    assert sorted(p.name for p in empty.iterdir()) == ["attributes.csv", "images", "labels.csv"]
    assert len(list((empty / "images").iterdir())) == 20
    assert (tmp_path / "link").is_symlink()


def test_faces_grid_goes_into_a_new_folder(tmp_path):
    grid = tmp_path / "new" / "grid.png"
    assert main(["faces", "--n", "20", "--grid", str(grid)]) == 0
    assert grid.is_file() and [p.name for p in grid.parent.iterdir()] == ["grid.png"]


def test_evaluate_scores_saved_models_on_another_dataset(fer_run, tmp_path):
    posed = _posed_set(tmp_path / "posed", tmp_path)
    assert main(["evaluate", str(fer_run), "--dataset", f"csv:{posed}/labels.csv",
                 "--attributes", str(posed / "attributes.csv")]) == 0
    results = _results(fer_run)
    entry = results["cross_dataset"]["posed"]
    assert entry["dropped_classes"] == {"contempt": 5}
    assert entry["missing_classes"] == ["neutral"]
    assert "neutral" not in entry["shared_classes"]
    assert entry["n"] == sum(entry["class_counts"].values())
    assert set(entry["models"]) == {"cnn", "resnet18", "ensemble"}
    assert set(entry["attributes"]) == {"tone", "age"}
    report = (fer_run / "report.md").read_text()
    assert "## Other dataset: posed" in report
    assert "contempt (5 images)" in report and "lacks: neutral" in report
    # rows and columns in the run's model order, the ensemble last (not sorted by name)
    section = report[report.index("## Other dataset: posed"):]
    assert section.index("| cnn ") < section.index("| resnet18 ") < section.index("| ensemble ")
    header = next(line for line in section.splitlines() if line.startswith("| class "))
    assert [c.strip() for c in header.split("|")[3:6]] == ["cnn", "resnet18", "ensemble"]
    (fer_run / "report.md").unlink()
    assert main(["report", str(fer_run)]) == 0
    assert (fer_run / "report.md").read_text() == report
    # resuming the finished run reuses its models, and keeps their other-dataset section
    assert main(["run", "--config", str(fer_run.parent / "tiny.toml"), "--profile",
                 "fer2013-cpu", "--save-models", "--out", str(fer_run.parent), "--name", "t",
                 "--resume"]) == 0
    assert _results(fer_run)["cross_dataset"]["posed"] == entry
    assert "## Other dataset: posed" in (fer_run / "report.md").read_text()
    # ...but not those of other models: here the folder's results.json is made to
    # record another run's search, as when a fresh run into it was cut short
    earlier = _results(fer_run)
    earlier["stages"]["search"]["cnn"] = {"other": "run"}
    (fer_run / "results.json").write_text(json.dumps(earlier))
    assert main(["run", "--config", str(fer_run.parent / "tiny.toml"), "--profile",
                 "fer2013-cpu", "--save-models", "--out", str(fer_run.parent), "--name", "t",
                 "--resume"]) == 0
    assert "cross_dataset" not in _results(fer_run)


def test_evaluate_explains_what_is_missing(fer_run, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["evaluate", str(empty), "--dataset", "synthetic"]) == 2
    assert "no results.json" in capsys.readouterr().err
    copy = tmp_path / "copy"
    shutil.copytree(fer_run, copy, ignore=shutil.ignore_patterns("*.joblib"))
    assert main(["evaluate", str(copy), "--dataset", "synthetic"]) == 2
    assert "--save-models" in capsys.readouterr().err
    assert main(["evaluate", str(fer_run), "--dataset", "folder"]) == 2
    assert "folder:PATH" in capsys.readouterr().err


@pytest.mark.parametrize("labels, message", [
    (["contempt"] * 25, "shares 0 class(es) with the models (dataset: contempt; models: "),
    # one shared class once scored 100.0 [100.0, 100.0]: a choice among one is always right
    (["happy"] * 25 + ["contempt"] * 5, "shares 1 class(es) with the models (dataset: "
                                        "happy, contempt; models: "),
    (["happy"] * 6 + ["sad"] * 6 + ["contempt"] * 13,
     "has only 12 images of the models' classes in all its images; at least 20 are needed."),
])
def test_evaluate_says_when_too_little_can_be_scored(fer_run, tmp_path, capsys, labels,
                                                     message):
    from PIL import Image

    (tmp_path / "images").mkdir()
    rows = ["image_path,label"]
    for i, label in enumerate(labels):
        Image.fromarray(np.full((48, 48), 7 * i % 256, np.uint8)).save(tmp_path / "images" / f"{i}.png")
        rows.append(f"images/{i}.png,{label}")
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    before = (fer_run / "results.json").read_bytes()
    assert main(["evaluate", str(fer_run), "--dataset", f"csv:{tmp_path / 'labels.csv'}"]) == 2
    assert message in capsys.readouterr().err
    assert (fer_run / "results.json").read_bytes() == before


def test_evaluate_names_a_damaged_saved_model(fer_run, tmp_path, capsys):
    copy = tmp_path / "copy"
    shutil.copytree(fer_run, copy)
    model = copy / "models" / "cnn.joblib"
    whole = model.read_bytes()
    # the second once raised struct.error: a traceback
    for damaged in (whole[:100], whole[:10]):
        model.write_bytes(damaged)
        assert main(["evaluate", str(copy), "--dataset", "synthetic"]) == 2
        err = capsys.readouterr().err
        assert f"Cannot load the saved model {model}" in err and "Traceback" not in err


def test_evaluate_decodes_image_files_at_the_models_size(tmp_path, capsys):
    # a run on 64-pixel faces once failed on every other dataset: its files
    # were decoded at 48 pixels, and the error spoke of features
    toml = tmp_path / "big.toml"
    toml.write_text(TINY_TOML_64)
    assert main(["run", "--config", str(toml), "--save-models", "--out", str(tmp_path),
                 "--name", "t"]) == 0
    exported = tmp_path / "exp"
    assert main(["faces", "--export", str(exported), "--n", "60"]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(tmp_path / "t"), "--dataset",
                 f"csv:{exported / 'labels.csv'}"]) == 0
    entry = _results(tmp_path / "t")["cross_dataset"]["exp"]
    assert entry["n"] == 60 and "cnn" in entry["models"]
    capsys.readouterr()
    assert main(["evaluate", str(tmp_path / "t"), "--dataset",
                 f"csv:{exported / 'labels.csv'}"]) == 0
    assert "replaces the earlier section 'exp' (pass --label" in capsys.readouterr().err


def test_evaluate_scores_state_models_only_of_the_run_its_results_describe(fer_run, tmp_path,
                                                                            capsys):
    # A run without --save-models leaves its models in state/. A later fresh run
    # into the folder, stopped after its search, once had its models scored and
    # filed under the earlier run's results.
    from benchmark.crossdata import NO_MODELS, STATE_OF_ANOTHER_RUN

    copy = tmp_path / "copy"
    shutil.copytree(fer_run, copy, ignore=shutil.ignore_patterns("models"))
    assert main(["evaluate", str(copy), "--dataset", "synthetic", "--label", "again"]) == 0
    assert "again" in _results(copy)["cross_dataset"]
    search = copy / "state" / "stage-search.json"
    unit = json.loads(search.read_text())
    unit["result"]["cnn"]["refit_time"] += 1.0  # another run's search
    search.write_text(json.dumps(unit))
    capsys.readouterr()
    assert main(["evaluate", str(copy), "--dataset", "synthetic", "--label", "later"]) == 2
    err = capsys.readouterr().err
    missing = ", ".join(_results(copy)["config"]["models"])
    assert NO_MODELS.format(path=copy, missing=missing) + STATE_OF_ANOTHER_RUN in err
    assert "later" not in _results(copy)["cross_dataset"]


def test_evaluate_on_synthetic_scores_faces_the_run_did_not_train_on(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from benchmark import crossdata, runner
    from benchmark.stages.data import duplicates_across, load
    from fer_sklearn.datasets import EMOTIONS

    config = resolve_config(models=["cnn"], n_boot=10)  # the default synthetic faces
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "results.json").write_text(json.dumps({"config": config.to_dict()}))
    scored = []

    def uniform(est, X, tta, classes):
        scored.append(X)
        return np.full((len(X), len(classes)), 1 / len(classes))

    monkeypatch.setattr(crossdata, "_models", lambda run_dir, names, results: {
        "cnn": SimpleNamespace(classes_=np.array(EMOTIONS))})
    monkeypatch.setattr(crossdata, "predict_proba", uniform)
    monkeypatch.setattr(runner, "write_report", lambda run_dir, results: None)
    entry = crossdata.evaluate_run(run_dir, "synthetic")
    (X,) = scored
    assert len(X) == entry["n"] == config.synthetic["n_samples"]
    assert duplicates_across(load(config).X_train, X) == []
    assert entry["synthetic_seed"] == config.seed + 1
    section = crossdata.cross_dataset_section({"config": config.to_dict(),
                                               "cross_dataset": {"synthetic": entry}})
    assert f"drawn with seed {config.seed + 1}, not the seed of the run's own faces" in section


def test_ten_views_are_the_face_and_its_shifts_each_mirrored():
    X = np.arange(2 * 48 * 48, dtype=np.uint8).reshape(2, 48, 48)
    views = _views(X, "crops")
    assert len(views) == 10 and all(v.shape == X.shape for v in views)
    np.testing.assert_array_equal(views[0], X)
    np.testing.assert_array_equal(views[5], X[..., ::-1])
    # shifted up-left by 2 pixels: the interior moves, the border repeats the edge
    np.testing.assert_array_equal(views[1][:, 2:, 2:], X[:, :-2, :-2])
    assert len({v.tobytes() for v in views}) == 10
    assert len(_views(X, "flip")) == 2 and len(_views(X, "none")) == 1


def test_eighteen_views_add_zooms_and_rotations_each_mirrored():
    X = np.zeros((2, 48, 48), dtype=np.uint8)
    X[:, 14:34, 14:34] = 200  # a bright centred square
    X[1, 14:34, 14:20] = 90  # ...darker on one side, so that its mirror differs
    views = _views(X, "affine")
    assert len(views) == 18 and all(v.shape == X.shape and v.dtype == np.uint8 for v in views)
    for view, crop in zip(views[:10], _views(X, "crops")):
        np.testing.assert_array_equal(view, crop)
    zoom_out, zoom_in, rot_a, rot_b = views[10:14]
    bright = [int((v > 100).sum()) for v in (X, zoom_out, zoom_in)]
    assert bright[1] < bright[0] < bright[2]
    assert not np.array_equal(rot_a, rot_b) and not np.array_equal(rot_a, X)
    # the second four warp the mirrored face: a zoom commutes with the mirror
    np.testing.assert_allclose(views[14], zoom_out[..., ::-1], atol=1)
    # float pixels are warped the same way, without rounding
    float_views = _views(X.astype(np.float32) / 255, "affine")
    assert float_views[12].dtype == np.float32
    np.testing.assert_allclose(float_views[12] * 255, rot_a, atol=0.51)
    assert len({v.tobytes() for v in views}) == 18


def test_tta_and_holdout_are_validated(tmp_path):
    assert resolve_config(tta=True).tta == "flip"
    assert resolve_config(tta=False).tta == "none"
    with pytest.raises(ValueError, match="Unknown tta 'crop'.*Did you mean 'crops'"):
        resolve_config(tta="crop")
    toml = tmp_path / "c.toml"
    toml.write_text("[recipes.cnn]\nholdout = 0.7\n")
    with pytest.raises(ValueError, match="recipes.cnn.holdout must be"):
        resolve_config(toml)
    # 0 or false turns it off (TOML has no null); a grid has its folds instead
    for off in ("0", "false"):
        toml.write_text(f"[recipes.cnn]\nholdout = {off}\n")
        assert resolve_config(toml, profile="fer2013-cpu").recipe("cnn")["holdout"] is None
    toml.write_text("[recipes.cnn]\nholdout = 0.2\n")
    with pytest.raises(ValueError, match="recipes.cnn: holdout draws the learning curves"):
        resolve_config(toml)  # the quick profile's cnn has a grid


def test_perf_times_image_loading_only_for_image_files(tmp_path):
    # a zipped FER2013 CSV was once timed as an image folder, failing at the end
    import zipfile

    from benchmark.stages.data import fer2013_is_csv

    path = tmp_path / "fer2013.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("fer2013.csv", "emotion,pixels,Usage\n")
    assert fer2013_is_csv(path) and fer2013_is_csv(tmp_path / "fer2013.csv.gz")
    images = tmp_path / "faces.zip"
    with zipfile.ZipFile(images, "w") as zf:
        zf.writestr("train/happy/a.png", b"")
    assert not fer2013_is_csv(images) and not fer2013_is_csv(tmp_path)


def test_time_budget_is_validated(tmp_path):
    toml = tmp_path / "c.toml"
    for bad in ("-5", "true", "'long'", "inf"):
        toml.write_text(f"[recipes.cnn]\ntime_budget = {bad}\n")
        with pytest.raises(ValueError, match="recipes.cnn.time_budget must be"):
            resolve_config(toml)
    toml.write_text("[recipes.cnn]\ntime_budget = 60\n[recipes.cnn.grid]\nlr = [1e-3, 3e-3]\n")
    with pytest.raises(ValueError, match="time_budget applies to one fit"):
        resolve_config(toml)
    # A profile's budget (and held-out part) can be turned off, and then a grid
    # is allowed; the held-out part was once ignored beside a grid without a word.
    toml.write_text("[recipes.cnn]\ntime_budget = 0\n[recipes.cnn.grid]\nlr = [1e-3, 3e-3]\n")
    with pytest.raises(ValueError, match="holdout draws the learning curves of one fit"):
        resolve_config(toml, dataset="fer2013:x.zip", profile="fer2013-cpu")
    toml.write_text("[recipes.cnn]\ntime_budget = 0\nholdout = 0\n"
                    "[recipes.cnn.grid]\nlr = [1e-3, 3e-3]\n")
    config = resolve_config(toml, dataset="fer2013:x.zip", profile="fer2013-cpu")
    assert config.recipe("cnn")["grid"] == {"lr": [1e-3, 3e-3]}
    # Only an empty grid replaces; other empty tables leave the profile's values.
    toml.write_text("[recipes.cnn.params]\n[recipes.cnn.grid]\n")
    config = resolve_config(toml, dataset="fer2013:x.zip", profile="fer2013-cpu")
    profile_cnn = PROFILES["fer2013-cpu"]["recipes"]["cnn"]["params"]
    assert config.recipe("cnn")["params"]["max_epochs"] == profile_cnn["max_epochs"]
    assert config.recipe("cnn")["grid"] == {}
    assert resolve_config(dataset="fer2013:x.zip", profile="fer2013-cpu").recipe(
        "cnn")["time_budget"] == 20 * 60


def _tiny_budget_config(budget):
    recipe = {"params": {"max_epochs": 3, "batch_size": 16, "module__width": 4,
                         "module__depth": 2, "lr": 3e-3},
              "grid": {}, "holdout": 0.1, "time_budget": budget}
    return resolve_config(models=["cnn"], recipes={"cnn": recipe})


def test_time_budget_shortens_the_schedule_and_leaves_the_fit_unchanged():
    from benchmark.stages.search import search_one
    from fer_sklearn.datasets import make_synthetic_faces

    X, y = make_synthetic_faces(n_samples=160, random_state=0, return_X_y=True)
    assert _tiny_budget_config(1).recipe("cnn")["grid"] == {}  # `grid = {}` clears the profile's
    short, record = search_one(_tiny_budget_config(1e-6), "cnn", X, y)
    plan = record["time_budget"]
    assert plan["max_epochs"] == 3 and plan["epochs"] == 1 and len(short.history) == 1
    assert plan["probe_images"] == len(y) and plan["probe_images_per_s"] > 0
    assert plan["epoch_s"] > 0

    roomy, record = search_one(_tiny_budget_config(3600), "cnn", X, y)
    assert record["time_budget"]["epochs"] == 3 and len(roomy.history) == 3
    # The probe draws no random numbers the fit would see: same fit as without it.
    plain, _ = search_one(_tiny_budget_config(None), "cnn", X, y)
    np.testing.assert_array_equal(roomy.predict_proba(X), plain.predict_proba(X))


def test_time_budget_arithmetic(monkeypatch):
    from benchmark.stages import search as search_module

    class Probe:
        """Stands in for the probe's clone: every epoch takes 2 s."""
        def set_params(self, **params):
            self.params = params
            return self

        def fit(self, X, y):
            self.seen = y
            self.history = {(-1, "dur"): 2.0}

    probe = Probe()
    monkeypatch.setattr(search_module, "clone", lambda est: probe)
    est = FERClassifier(max_epochs=30, batch_size=10, class_weight={"disgust": 3.0})
    y = np.array(["disgust"] + ["happy"] * 999)  # one disgust: too rare to stratify
    X = np.zeros((len(y), 48, 48), dtype=np.uint8)
    plan = search_module.epochs_within(est, X, y, budget=100, holdout=0.1)
    n = 10 * search_module._PROBE_BATCHES
    assert plan["probe_images"] == n == len(probe.seen)
    assert plan["probe_images_per_s"] == n / 2
    # 900 images trained and 100 only scored (a third of the cost), at n/2 images/s.
    assert plan["epoch_s"] == pytest.approx((900 + 100 / 3) / (n / 2))
    assert plan["epochs"] == int(100 // plan["epoch_s"]) and plan["epochs"] < 30
    # The rare class may be missing from the sample: the probe drops class weights.
    assert probe.params["class_weight"] is None and probe.params["max_epochs"] == 2


def test_time_budget_counts_the_small_epochs_of_progressive_resizing(monkeypatch):
    from benchmark.stages import search as search_module
    from fer_sklearn.reporting.markdown import budget_text

    class Probe:
        """Stands in for the probe's clones: an epoch takes 2 s at full size, 1 s small."""
        def set_params(self, **params):
            self.small = params["progressive_resize"] is not None
            return self

        def fit(self, X, y):
            self.history = {(-1, "dur"): 1.0 if self.small else 2.0}

    monkeypatch.setattr(search_module, "clone", lambda est: Probe())
    est = FERClassifier(max_epochs=30, batch_size=10, progressive_resize=(32, 0.5))
    y = np.array(["happy", "sad"] * 500)
    X = np.zeros((len(y), 48, 48), dtype=np.uint8)
    plan = search_module.epochs_within(est, X, y, budget=90)
    n = 10 * search_module._PROBE_BATCHES
    full, small = 1000 / (n / 2), 1000 / n
    assert plan["epoch_s"] == pytest.approx(full)
    assert plan["small_epoch_s"] == pytest.approx(small) and plan["small_side"] == 32

    def cost(epochs):  # the first half of the epochs at the small size
        k = round(0.5 * epochs)
        return k * small + (epochs - k) * full

    assert cost(plan["epochs"]) <= 90 < cost(plan["epochs"] + 1)
    assert plan["epochs"] > 90 // full  # more epochs fit than at full size alone
    assert "at 32x32 pixels" in budget_text(plan)


def test_a_budget_that_leaves_few_epochs_says_so_and_why(monkeypatch):
    from benchmark.stages import search as search_module

    est = FERClassifier(max_epochs=40, device="cpu")
    short, enough = {"epochs": 8, "max_epochs": 40}, {"epochs": 20, "max_epochs": 40}
    assert search_module.short_schedule_note("cnn", enough, est) is None
    monkeypatch.setattr(search_module, "bf16_supported", lambda device: True)
    note = search_module.short_schedule_note("cnn", short, est)
    assert note == ("search cnn: only 8 of the recipe's 40 epochs fit its time budget here, "
                    "so expect lower accuracy than where more fit")
    monkeypatch.setattr(search_module, "bf16_supported", lambda device: False)
    note = search_module.short_schedule_note("cnn", short, est)
    assert note.endswith("this CPU has no fast bfloat16 (AVX512-BF16 or AMX), so the fit "
                         "runs in fp32: a GPU, or a CPU with either, fits up to four times as "
                         "many epochs")
    # fp32 asked for: no hint to go and find bf16
    est.set_params(precision="fp32")
    assert search_module.short_schedule_note("cnn", short, est).endswith("where more fit")


def test_fit_progress_counts_the_epochs_of_a_shortened_schedule(monkeypatch, capsys):
    from benchmark.progress import FitProgress
    from fer_sklearn import CNNClassifier
    from fer_sklearn._training import TimeBudget

    from .conftest import FakeClock, make_faces

    X, y = make_faces()
    clock = FakeClock(unit=60.0)  # a minute per 48x48 batch, 15 s per 24x24 one
    monkeypatch.setattr(TimeBudget, "clock", clock)
    # 8 epochs planned, 7 fit the budget (see test_estimators' time-budget test):
    # 4 small epochs of 3 batches (45 s each), then 3 full ones (3 min each)
    CNNClassifier(max_epochs=8, batch_size=16, module__width=4, module__depth=2,
                  random_state=0, progressive_resize=(24, 0.5), time_budget=12.0 * 60,
                  callbacks=[("clock", clock), ("progress", FitProgress("cnn", every=0))]
                  ).fit(X, y)
    err = capsys.readouterr().err
    assert "cnn: epoch 1/7," in err and "cnn: epoch 6/7," in err and "/8" not in err
    assert "7 epochs" in err
    # time left is the plan's, full-size epochs included, not the small epochs' pace
    lines = {line.split("epoch ")[1].split(",")[0]: line for line in err.splitlines()
             if ": epoch " in line}
    assert lines["1/7"].endswith("about 11 min left")  # 3 x 45 s + 3 x 3 min
    assert lines["4/7"].endswith("about 9 min left")
    assert lines["6/7"].endswith("about 3 min left")


def test_models_section_says_when_a_fit_overran_its_budget():
    from fer_sklearn.reporting.markdown import _models

    plan = {"budget_s": 100, "probe_images": 64, "probe_images_per_s": 10.0,
            "epoch_s": 10.0, "max_epochs": 20, "epochs": 10}
    record = {"params": {}, "n_train": 1000, "grid": {}, "holdout": 0.05, "time_budget": plan,
              "refit_time": 101.0}
    results = {"config": {"models": ["cnn"]}, "stages": {"search": {"cnn": record}}}
    assert "longer than its budget" not in _models(results)
    record["refit_time"] = 121.0
    assert "The fit took 21% longer than its budget: the probe" in _models(results)
    # a fit that re-planned as it went (epochs_trained recorded)
    plan["epochs_trained"] = 10
    assert "longer than its budget: it re-plans after every epoch" in _models(results)
    assert "shortened its schedule" not in _models(results)
    plan["epochs_trained"] = 8
    record["refit_time"] = 99.0
    assert ("the fit shortened its schedule to 8 epochs to end within the budget"
            in _models(results))
    plan["epochs_trained"] = 12
    assert ("the fit lengthened its schedule to 12 epochs to use the budget"
            in _models(results))
    plan["epochs_trained"] = 8
    assert "longer than its budget" not in _models(results)


def test_a_class_without_test_images_has_no_recall_or_f1_in_the_report():
    from fer_sklearn.reporting.markdown import _models

    record = {"params": {}, "n_train": 100, "grid": {}, "refit_time": 1.0}
    per_class = {"happy": {"precision": 0.8, "recall": 0.9, "f1": 0.85, "support": 10},
                 "disgust": {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}}
    results = {"config": {"models": ["cnn"]},
               "stages": {"search": {"cnn": record},
                          "evaluate": {"models": {"cnn": {"per_class": per_class}}}}}
    text = _models(results)
    row = next(line for line in text.splitlines() if line.startswith("| disgust"))
    assert [c.strip() for c in row.split("|")[2:5]] == ["0.0", "-", "-"]
    assert "No test image of disgust: its recall and F1 are undefined (shown as -)." in text


def test_fer2013_cpu_run_folder_is_named_after_the_profile():
    config = resolve_config(dataset="fer2013:x.zip", profile="fer2013-cpu")
    assert config.run_name == "fer2013-cpu"
    assert resolve_config(dataset="fer2013:x.zip").run_name == "fer2013-quick"


def test_contempt_is_a_known_class():
    assert map_labels(["contemptuous", "happiness"], "x").tolist() == ["contempt", "happy"]


REPORTS = Path(__file__).resolve().parents[1] / "reports"


@pytest.mark.parametrize("name", sorted(p.parent.name for p in REPORTS.glob("*/results.json")))
def test_committed_reports_rerender_byte_identically(name):
    from benchmark import crossdata  # noqa: F401  (its section)
    from benchmark.stages import ordered_stages
    from fer_sklearn.reporting import render_report

    ordered_stages()
    results = json.loads((REPORTS / name / "results.json").read_text(encoding="utf-8"))
    assert render_report(results) == (REPORTS / name / "report.md").read_text(encoding="utf-8")


def test_faces_with_no_probability_on_the_shared_classes_are_counted_and_said():
    # Such a face once kept a row of zeros (argmax: the first shared class,
    # log loss at its clip), and one with 1e-20 there a row summing to 1e-8.
    proba = np.array([[0.2, 0.3, 0.5], [0.0, 0.0, 1.0], [1e-20, 3e-20, 1.0]])
    out, none = on_shared(proba, [0, 1])
    np.testing.assert_allclose(out, [[0.4, 0.6], [0.5, 0.5], [0.25, 0.75]])
    assert none == 1
    results = json.loads((Path(__file__).parents[1] / "reports" / "fer2013-cpu"
                          / "results.json").read_text())
    (entry,) = results["cross_dataset"].values()
    entry["no_shared_mass"] = {"cnn": 3}
    assert ("- Faces a model gave no probability on any shared class (all of it on classes "
            "this dataset lacks): cnn 3. They get equal probabilities over the shared classes, "
            f"so they count as predicted `{entry['shared_classes'][0]}` and their log loss is a "
            "uniform guess's.") in cross_dataset_section(results)
    del entry["no_shared_mass"]
    assert "no probability on any shared class" not in cross_dataset_section(results)
