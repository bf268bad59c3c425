import re

import numpy as np
import pytest
from scipy.stats import spearmanr
from sklearn.base import clone

from fer_sklearn import FERClassifier
from fer_sklearn.explain import (
    METHODS,
    attribute,
    deletion_curve,
    localisation,
    masks_to_regions,
    region_shares,
    template_regions,
)
from fer_sklearn.explain.attributions import (
    NOT_FITTED,
    NOT_POSITIVE,
    SHAP_NEEDS_BACKGROUND,
    UNKNOWN_TARGET_CLASS,
)
from fer_sklearn.explain.quality import BAD_IMAGES, BAD_MAPS, BAD_MASKS

from .conftest import FAMILY_CONFIGS

FAMILIES = sorted(FAMILY_CONFIGS)


@pytest.mark.parametrize("family", FAMILIES)
def test_every_method_works_on_every_family_and_leaves_the_model_as_it_was(family, faces):
    X, y = faces
    name, options, _, _ = FAMILY_CONFIGS[family]
    est = FERClassifier(name, max_epochs=1, batch_size=16, random_state=0, **options).fit(X, y)
    before = est.predict_proba(X[:6])
    est.module_.train()  # a state the explainers must restore
    for method in METHODS:
        maps = attribute(est, X[:6], method, background=X[6:14], shap_samples=4, ig_steps=4)
        assert maps.shape == (6, 48, 48) and maps.dtype == np.float32
        assert np.isfinite(maps).all() and np.abs(maps).sum() > 0, method
    assert est.module_.training
    est.module_.eval()
    np.testing.assert_allclose(est.predict_proba(X[:6]), before, rtol=1e-5, atol=1e-6)


def test_explaining_a_given_class_differs_from_the_predicted_one(synthetic_model):
    clf, faces, test = synthetic_model
    X = faces.data[test[:8]]
    pred = clf.predict(X)
    other = np.where(pred == "happy", "sad", "happy")
    a = attribute(clf, X, "integrated_gradients", target=pred)
    b = attribute(clf, X, "integrated_gradients", target=other)
    assert np.array_equal(a, attribute(clf, X, "integrated_gradients"))
    assert not np.allclose(a, b)
    with pytest.raises(ValueError, match="does not know"):
        attribute(clf, X, "saliency", target=["joy"] * 8)


def test_occlusion_and_ig_feed_the_network_bounded_batches(synthetic_model):
    # Occlusion once ran 64 occluded copies of each of 64 faces in one pass:
    # 4,096 images whose activations took gigabytes on FER2013-sized networks.
    clf, faces, _ = synthetic_model
    X = faces.data[:64]
    sizes = []
    hook = clf.module_.register_forward_hook(lambda m, args, out: sizes.append(len(args[0])))
    try:
        for method in ("occlusion", "integrated_gradients"):
            attribute(clf, X, method)
    finally:
        hook.remove()
    assert sizes and max(sizes) <= 512


def test_bad_requests_say_how_to_fix_them(synthetic_model):
    clf, faces, _ = synthetic_model
    with pytest.raises(ValueError, match="Valid methods: saliency"):
        attribute(clf, faces.data[:2], "lime")
    with pytest.raises(ValueError, match="'gradcm'. Did you mean 'gradcam'?"):
        attribute(clf, faces.data[:2], "gradcm")
    with pytest.raises(ValueError, match=re.escape(SHAP_NEEDS_BACKGROUND[:30])):
        attribute(clf, faces.data[:2], "shap")
    with pytest.raises(ValueError, match=re.escape(NOT_FITTED)):
        attribute(FERClassifier("cnn"), faces.data[:2], "saliency")
    with pytest.raises(ValueError, match=re.escape(NOT_POSITIVE.format(name="batch_size",
                                                                      value=0))):
        attribute(clf, faces.data[:2], "saliency", batch_size=0)


@pytest.mark.parametrize("shape", [(2, 32, 32), (2, 3, 48, 48)])
def test_images_of_another_size_than_fitted_are_refused_as_predict_refuses_them(
        synthetic_model, shape):
    # 32x32 faces once came back as 32x32 maps, and three channels as a torch error
    clf, _, _ = synthetic_model
    X = np.zeros(shape, np.uint8)
    with pytest.raises(ValueError, match="is expecting 2304 features") as predicted:
        clf.predict(X)
    for method in ("saliency", "shap"):
        with pytest.raises(ValueError, match=re.escape(str(predicted.value))):
            attribute(clf, X, method, background=X)
    with pytest.raises(ValueError, match=re.escape(str(predicted.value))):
        attribute(clf, np.zeros((2, 48, 48), np.uint8), "shap", background=X)


def test_deletion_curve_refuses_what_it_cannot_score(synthetic_model):
    clf, faces, _ = synthetic_model
    X = faces.data[:4]
    maps = attribute(clf, X, "saliency")
    target = clf.predict(X)
    curve, _ = deletion_curve(clf, X, maps, target)
    # (n, 1, H, W) images, as predict takes them, score the same
    np.testing.assert_allclose(deletion_curve(clf, X[:, None], maps, target)[0], curve)
    # a label sorting before every class was once scored as the first class
    with pytest.raises(ValueError, match=re.escape(UNKNOWN_TARGET_CLASS.format(
            unknown=["aaa"], known=clf.classes_.tolist()))):
        deletion_curve(clf, X, maps, np.array(["aaa"] * 4))
    with pytest.raises(ValueError, match="target has 3 entries for 4 images"):
        deletion_curve(clf, X, maps, target[:3])
    with pytest.raises(ValueError, match=re.escape(BAD_IMAGES.format(shape=(4, 2304)))):
        deletion_curve(clf, X.reshape(4, -1), maps, target)
    with pytest.raises(ValueError, match=re.escape(BAD_MAPS.format(maps=(3, 48, 48),
                                                                  images=(4, 48, 48)))):
        deletion_curve(clf, X, maps[:3], target)
    for steps in ([0.0, -0.1], [0.5, 2], [], ["x"]):
        with pytest.raises(ValueError, match="steps must be fractions in"):
            deletion_curve(clf, X, maps, target, steps=steps)


def test_bad_attribution_options_are_named_and_numpy_state_is_left_alone(synthetic_model):
    clf, faces, _ = synthetic_model
    X = faces.data[:2]
    # a window larger than the faces was once captum's bare AssertionError
    with pytest.raises(ValueError, match="occlusion_window=100 is larger than the 48x48"):
        attribute(clf, X, "occlusion", occlusion_window=100)
    assert attribute(clf, X, "occlusion", occlusion_window=48).shape == (2, 48, 48)
    # shap seeds NumPy's global generator; the caller's stream goes on as before
    np.random.seed(123)
    expected = np.random.rand()
    np.random.seed(123)
    attribute(clf, X, "shap", background=faces.data[2:6], shap_samples=2)
    assert np.random.rand() == expected


def test_attributions_of_a_trained_model_differ_from_those_of_random_weights(synthetic_model):
    # model randomisation test (Adebayo et al., 2018): explanations that do not
    # change when the weights are re-drawn explain the input, not the model
    clf, faces, test = synthetic_model
    X = faces.data[test[:21]]
    untrained = clone(clf).set_params(max_epochs=0).fit(faces.data[:50], faces.target[:50])
    target = clf.predict(X)
    for method in ("saliency", "integrated_gradients", "gradcam"):
        trained = attribute(clf, X, method, target=target)
        random = attribute(untrained, X, method, target=target)
        rho = np.mean([spearmanr(np.abs(a).ravel(), np.abs(b).ravel())[0]
                       for a, b in zip(trained, random)])
        assert rho < 0.5, (method, rho)


def test_region_shares_add_up_and_normalise_by_area():
    regions = template_regions(48)
    stacked = np.stack(list(regions.values())).sum(0)
    np.testing.assert_array_equal(stacked, 1)  # a partition of the image
    maps = np.zeros((2, 48, 48))
    maps[:, regions["mouth"]] = 1.0
    maps[:, 0, 0] = -5.0  # negative evidence is not mass
    out = region_shares(maps, regions)
    assert out["raw"]["mouth"] == pytest.approx(1.0)
    assert sum(out["raw"].values()) == pytest.approx(1.0)
    assert out["per_area"]["mouth"] == pytest.approx(1 / regions["mouth"].mean())
    with pytest.raises(ValueError, match="shape"):
        region_shares(maps[0], regions)


def test_regions_from_masks_do_not_overlap():
    rng = np.random.default_rng(0)
    masks = {k: rng.random((3, 48, 48)) < 0.3 for k in ("brows", "eyes", "nose", "mouth")}
    regions = masks_to_regions(masks)
    total = sum(r.astype(int) for r in regions.values())
    np.testing.assert_array_equal(total, 1)


def test_localisation_scores_a_perfect_and_a_wrong_map():
    masks = np.zeros((2, 48, 48), dtype=bool)
    masks[:, 30:36, 14:34] = True
    perfect = masks.astype(float)
    wrong = np.roll(perfect, 20, axis=1)
    assert localisation(perfect, masks, tolerance=0) == {
        "inside": 1.0, "pointing": 1.0, "area": pytest.approx(masks.mean())}
    assert localisation(wrong, masks, tolerance=0)["inside"] == 0.0
    assert localisation(wrong, masks, tolerance=0)["pointing"] == 0.0
    # one (H, W) mask stands for every face, as in region_shares
    assert localisation(perfect, masks[0], tolerance=2) == localisation(perfect, masks)
    with pytest.raises(ValueError, match=re.escape(BAD_MASKS.format(masks=(2, 40, 40),
                                                                   maps=(2, 48, 48)))):
        localisation(perfect, masks[:, :40, :40])
    # a single map once got a message that contradicted itself
    with pytest.raises(ValueError, match=r"localisation\(\) needs one \(H, W\) map per face"):
        localisation(perfect[0], masks[0])
    assert localisation(perfect, masks, tolerance=2.0) == localisation(perfect, masks)
    for tolerance in (-1, 1.5):  # -1 once grew the mask over the whole image
        with pytest.raises(ValueError, match="tolerance must be a whole number"):
            localisation(perfect, masks, tolerance=tolerance)


@pytest.fixture(scope="module")
def easy_model():
    """A CNN above 90% on synthetic faces at half the default nuisance."""
    from fer_sklearn import CNNClassifier
    from fer_sklearn.datasets import make_synthetic_faces

    faces = make_synthetic_faces(3500, random_state=4, difficulty=0.5, return_masks=True)
    clf = CNNClassifier(module__width=16, module__depth=3, max_epochs=8, lr=3e-3,
                        lr_schedule="onecycle", random_state=0)
    clf.fit(faces.data[:3000], faces.target[:3000])
    return clf, faces


def test_on_a_good_model_every_method_beats_random_and_the_best_localises(easy_model):
    clf, faces = easy_model
    test = np.arange(3000, 3500)
    accuracy = clf.score(faces.data[test], faces.target[test])
    print(f"\ntest accuracy {accuracy:.3f}")
    assert accuracy >= 0.9
    pick = test[:70]
    X, evidence = faces.data[pick], faces.masks["evidence"][pick]
    pred = clf.predict(X)
    scores = {}
    for method in METHODS:
        maps = attribute(clf, X, method, background=faces.data[:32])
        _, auc = deletion_curve(clf, X, maps, pred)
        scores[method] = (auc, localisation(maps, evidence)["inside"])
        print(f"\n{method:22s} deletion AUC {auc:.3f}  inside {scores[method][1]:.3f}")
    random_auc, random_inside = scores.pop("random")
    for method, (auc, inside) in scores.items():
        assert auc < random_auc and inside > random_inside, method
    assert max(inside for _, inside in scores.values()) > 0.5


def test_region_table_shows_a_dash_where_a_class_has_no_area_for_a_region():
    import json
    from pathlib import Path

    from benchmark.stages import explain as explain_stage

    results = json.loads((Path(__file__).parents[1] / "reports" / "synthetic-quick"
                          / "results.json").read_text())
    ex = results["stages"]["explain"]
    model = next(iter(ex["models"]))
    by_class = ex["models"][model]["methods"][ex["reference_method"]]["regions_by_class"]
    first = ex["classes"][0]
    region = next(r for r, v in by_class[first]["per_area"].items() if v is not None)
    by_class[first]["per_area"][region] = None
    text = explain_stage._section(results)
    assert re.search(rf"\| {first} +\|.*\d+ \(-\)", text)


def test_localisation_explains_each_face_for_its_true_class(synthetic_model, monkeypatch):
    # a misread face's map for the predicted class was once scored against the
    # masks of its true class's evidence
    from benchmark.stages import explain as explain_stage

    clf, faces, test = synthetic_model
    idx = test[:40]
    X, y = faces.data[idx], faces.target[idx]
    pred = clf.predict(X)
    wrong = np.flatnonzero(pred != y)
    y = y.copy()
    if not len(wrong):  # make one face misread: its label is another class
        y[0] = next(c for c in clf.classes_ if c != pred[0])
        wrong = np.array([0])
    calls = []
    real = explain_stage.attribute

    def spy(est, X_, method, target=None, **kwargs):
        calls.append((len(X_), list(target)))
        return real(est, X_, method, target=target, **kwargs)

    monkeypatch.setattr(explain_stage, "attribute", spy)
    masks = {k: faces.masks[k][idx] for k in faces.masks}
    record, _ = explain_stage._explain_model(
        clf, X, y, X[:4], explain_stage.masks_to_regions(masks), masks["evidence"], 0,
        ["saliency"])
    assert calls[0] == (len(X), list(pred))
    assert calls[1] == (len(wrong), list(y[wrong]))
    assert record["methods"]["saliency"]["localisation"]["target"] == "true class"
