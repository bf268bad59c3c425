import numpy as np

from fer_sklearn.datasets import make_synthetic_faces


def test_same_seed_gives_identical_images_and_masks():
    # 300 faces: more than one rendering chunk, the last one partial
    a = make_synthetic_faces(300, random_state=7, return_masks=True)
    b = make_synthetic_faces(300, random_state=7, return_masks=True)
    np.testing.assert_array_equal(a.data, b.data)
    assert list(a.masks) == ["brows", "eyes", "nose", "mouth", "evidence", "occluder"]
    for name, mask in a.masks.items():
        assert mask.dtype == bool and mask.shape == a.data.shape
        np.testing.assert_array_equal(mask, b.masks[name])
    # masks do not change the images
    np.testing.assert_array_equal(make_synthetic_faces(300, random_state=7).data, a.data)


import pytest  # noqa: E402

from fer_sklearn.datasets import EMOTIONS, plot_face_grid  # noqa: E402
from fer_sklearn.datasets import synthetic as syn  # noqa: E402


@pytest.fixture(scope="module")
def clean():
    # difficulty 0: frontal, identical identities; faces differ by expression
    return make_synthetic_faces(700, random_state=0, difficulty=0, return_masks=True)


def _mean_row(masks):
    rows = np.arange(masks.shape[1])[None, :, None]
    return float(((masks * rows).sum((1, 2)) / np.maximum(masks.sum((1, 2)), 1)).mean())


def _corner_lift(masks):
    """Row of the mouth's outer columns minus the row of its middle column
    (negative: corners up, as in a smile)."""
    rows = np.arange(masks.shape[1])
    lifts = []
    for m in masks:
        cols = np.flatnonzero(m.any(0))
        centre = [(m[:, j] * rows).sum() / m[:, j].sum() for j in cols]
        lifts.append((centre[0] + centre[-1]) / 2 - centre[len(cols) // 2])
    return float(np.mean(lifts))


def _of(faces, cls):
    return {k: v[faces.target == cls] for k, v in faces.masks.items()}


def test_mouth_corners_go_up_for_happy_and_down_for_sad(clean):
    happy, sad, neutral = (_corner_lift(_of(clean, c)["mouth"]) for c in ("happy", "sad", "neutral"))
    assert happy < neutral - 1 and sad > neutral + 1


def test_brows_rise_in_surprise_and_fear_and_lower_in_anger_and_disgust(clean):
    row = {c: _mean_row(_of(clean, c)["brows"]) for c in EMOTIONS}
    for raised in ("surprise", "fear"):
        assert row[raised] < row["neutral"] - 1.5
    for lowered in ("angry", "disgust"):
        assert row[lowered] > row["neutral"] + 1.5


def test_eyes_widen_in_surprise_and_fear(clean):
    area = {c: _of(clean, c)["eyes"].sum((1, 2)).mean() for c in EMOTIONS}
    assert area["surprise"] > 1.15 * area["neutral"] and area["fear"] > 1.1 * area["neutral"]


def test_surprise_drops_the_jaw_and_anger_presses_the_lips(clean):
    area = {c: _of(clean, c)["mouth"].sum((1, 2)).mean() for c in EMOTIONS}
    dark = {c: np.mean([clean.data[i][clean.masks["mouth"][i]].mean()
                        for i in np.flatnonzero(clean.target == c)]) for c in EMOTIONS}
    assert area["surprise"] > 1.3 * area["neutral"] and dark["surprise"] < dark["neutral"] - 20
    assert area["angry"] < 0.7 * area["neutral"]


def test_disgust_wrinkles_the_nose(clean):
    texture = {c: np.mean([clean.data[i][clean.masks["nose"][i]].std()
                           for i in np.flatnonzero(clean.target == c)]) for c in EMOTIONS}
    assert texture["disgust"] > 1.3 * max(v for c, v in texture.items() if c != "disgust")


def test_layout_matches_the_loaders_and_groups_do_not_reveal_the_expression():
    faces = make_synthetic_faces(3500, random_state=1)
    assert faces.data.shape == (3500, 48, 48) and faces.data.dtype == np.uint8
    assert list(faces.target_names) == list(EMOTIONS)
    assert {"split", "source", "tone", "age"} <= set(faces.frame.columns)
    assert faces.attributes == ["tone", "age"]
    # each group's class shares stay near 1/7 (labels and groups are drawn independently)
    for attr in ("tone", "age"):
        shares = faces.frame.assign(y=faces.target).groupby(attr)["y"].value_counts(normalize=True)
        assert shares.between(1 / 7 - 0.05, 1 / 7 + 0.05).all()


def test_fer2013_class_weights_make_disgust_rare():
    faces = make_synthetic_faces(2000, random_state=0, class_weights="fer2013")
    share = np.mean(faces.target == "disgust")
    assert 0.01 < share < 0.02 and np.mean(faces.target == "happy") > 0.2


def test_bias_options_touch_only_the_chosen_group():
    base = make_synthetic_faces(3000, random_state=0)
    rare = make_synthetic_faces(3000, random_state=0,
                                bias={"attribute": "tone", "group": "dark", "rarity": 0.8})
    assert np.mean(base.frame.tone == "dark") > 0.28
    assert 0.06 < np.mean(rare.frame.tone == "dark") < 0.12
    noisy = make_synthetic_faces(3000, random_state=0,
                                 bias={"attribute": "age", "group": "old", "label_noise": 0.4})
    flipped = noisy.frame["label_noised"].to_numpy()
    assert not flipped[noisy.frame.age != "old"].any()
    assert 0.3 < flipped[noisy.frame.age == "old"].mean() < 0.5
    np.testing.assert_array_equal(noisy.target[flipped] == noisy.frame.true_label[flipped], False)
    faint = make_synthetic_faces(600, random_state=0, difficulty=0, return_masks=True,
                                 bias={"attribute": "tone", "group": "light", "contrast": 0.2})
    full = make_synthetic_faces(600, random_state=0, difficulty=0, return_masks=True)
    light = full.frame.tone.to_numpy() == "light"

    def mouth_contrast(f, sel):
        # how far the mouth's pixels are from the face's typical (skin) level
        return np.mean([np.abs(f.data[i][f.masks["mouth"][i]].astype(float)
                               - np.median(f.data[i][20:40, 10:38])).mean()
                        for i in np.flatnonzero(sel)])

    assert mouth_contrast(faint, light) < 0.6 * mouth_contrast(full, light)
    assert mouth_contrast(faint, ~light) == pytest.approx(mouth_contrast(full, ~light))


_EXAMPLE = ('{"attribute": "tone", "group": "dark", "rarity": 0.8, "contrast": 0.5, '
            '"label_noise": 0.2}')


@pytest.mark.parametrize("bias, message", [
    ({"attribute": "skin", "group": "dark"},
     "Unknown bias attribute 'skin'. Valid attributes: 'tone', 'age'."),
    ({"attribute": "tone"}, f"bias needs 'group': which group gets the bias, e.g. {_EXAMPLE}."),
    ({"attribute": "tone", "group": "purple"},
     "Unknown group 'purple' for attribute 'tone'. Valid groups: 'light', 'medium', 'dark'."),
    ({"attribute": "tone", "group": "dark", "rarty": 0.5},
     "Unknown bias option(s) 'rarty'. Valid options: 'attribute', 'group', 'rarity', "
     "'contrast', 'label_noise'."),
    ({"attribute": "tone", "group": "dark", "contrast": 2},
     "bias['contrast'] must be a number in [0, 1], or None to switch it off; got 2."),
    ("dark", f"bias must be None or a dict like {_EXAMPLE}; got 'dark'."),
])
def test_bad_bias_is_rejected_with_the_valid_values(bias, message):
    with pytest.raises(ValueError) as err:
        make_synthetic_faces(10, random_state=0, bias=bias)
    assert str(err.value) == message


def test_a_bad_random_state_says_what_is_accepted():
    with pytest.raises(ValueError) as err:
        make_synthetic_faces(10, random_state="x")
    assert str(err.value) == ("random_state must be None, an int, a numpy Generator or "
                              "RandomState; got 'x'.")


@pytest.mark.parametrize("kwargs, message", [
    ({"n_samples": 0}, "n_samples must be a positive integer"),
    ({"difficulty": -1}, "difficulty must be a finite number"),
    ({"image_size": 12}, "image_size must be an integer of at least 24"),
    ({"class_weights": {"contempt": 1}}, "unknown class"),
])
def test_bad_arguments_say_what_is_valid(kwargs, message):
    kwargs = {"n_samples": 10, **kwargs}
    with pytest.raises(ValueError, match=message):
        make_synthetic_faces(random_state=0, **kwargs)


def test_face_grid_draws_one_row_per_class():
    faces = make_synthetic_faces(70, random_state=0)
    fig = plot_face_grid(faces.data, faces.target, n_per_class=3)
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert len(labels) == 7 and labels[0].startswith("angry")
    assert syn.REGIONS == ("brows", "eyes", "nose", "mouth")


def _moved_off(mask, seed):
    """``mask`` shifted to where it overlaps itself least, overlap pixels
    replaced by random others: same area, elsewhere on the image."""
    shifts = [(dy, dx) for dy in range(-24, 25, 4) for dx in range(-24, 25, 4) if dy or dx]
    moved = min((np.roll(mask, s, axis=(0, 1)) for s in shifts),
                key=lambda r: int((r & mask).sum()))
    moved = moved & ~mask
    free = np.flatnonzero(~(mask | moved).ravel())
    extra = np.random.default_rng(seed).choice(free, mask.sum() - moved.sum(), replace=False)
    moved.ravel()[extra] = True
    return moved


def test_masking_the_true_evidence_hurts_a_trained_model_far_more_than_masking_elsewhere(
        synthetic_model):
    clf, faces, test = synthetic_model
    X, y = faces.data[test], faces.target[test]
    evidence = faces.masks["evidence"][test]
    elsewhere = np.array([_moved_off(m, seed) for seed, m in enumerate(evidence)])
    np.testing.assert_array_equal(elsewhere.sum((1, 2)), evidence.sum((1, 2)))
    assert not (elsewhere & evidence).any()

    def blank(masks):
        out = X.copy()
        for i in range(len(out)):
            out[i][masks[i]] = np.median(out[i])
        return out

    base = clf.score(X, y)
    drop_evidence = base - clf.score(blank(evidence), y)
    drop_elsewhere = base - clf.score(blank(elsewhere), y)
    print(f"\naccuracy {base:.3f}; masking the evidence drops it by {drop_evidence:.3f}, "
          f"an equal area elsewhere by {drop_elsewhere:.3f}")
    assert base > 0.6
    assert drop_evidence > 0.3 and drop_evidence > 2.5 * drop_elsewhere


def _group_gap(clf, X, y, in_group, seed=0):
    """Accuracy outside the group minus inside it, with a bootstrap 95% CI."""
    from fer_sklearn.stats import bootstrap_ci

    correct = clf.predict(X) == y

    def gap(c, g):
        return c[~g].mean() - c[g].mean()

    return bootstrap_ci(gap, correct, in_group, n_boot=1000, random_state=seed)


@pytest.mark.slow
@pytest.mark.parametrize("bias", [None, {"attribute": "tone", "group": "dark",
                                         "contrast": 0.35, "label_noise": 0.15}])
def test_injected_bias_shows_as_a_significant_gap_and_only_then(bias):
    from fer_sklearn import CNNClassifier

    faces = make_synthetic_faces(6000, random_state=2, bias=bias)
    train, test = np.arange(4500), np.arange(4500, 6000)
    clf = CNNClassifier(module__width=16, module__depth=3, max_epochs=8, lr=3e-3,
                        lr_schedule="onecycle", random_state=0)
    clf.fit(faces.data[train], faces.target[train])
    dark = faces.frame.tone.to_numpy()[test] == "dark"
    # scored against the true expression: the gap is the model's, not the labels'
    ci = _group_gap(clf, faces.data[test], faces.frame.true_label.to_numpy()[test], dark)
    print(f"\nbias={bias}: accuracy gap (others - dark) {ci}")
    if bias is None:
        assert ci["low"] < 0 < ci["high"]
    else:
        assert ci["low"] > 0.05


@pytest.mark.slow
def test_default_faces_separate_the_three_families_within_70_to_97_percent():
    import time

    from fer_sklearn import FERClassifier

    faces = make_synthetic_faces(6000, random_state=3)
    train, test = np.arange(4500), np.arange(4500, 6000)
    recipes = {
        "cnn": dict(module__width=16, module__depth=3),
        "resnet18": dict(module__width=16, module__stem_stride=2),
        "densenet_bc": dict(module__growth_rate=8, module__block_config=(3, 6, 6),
                            module__stem_stride=2),
    }
    scores = {}
    for name, options in recipes.items():
        clf = FERClassifier(name, max_epochs=10, lr=3e-3, lr_schedule="onecycle",
                            random_state=0, **options)
        start = time.perf_counter()
        clf.fit(faces.data[train], faces.target[train])
        seconds = time.perf_counter() - start
        scores[name] = clf.score(faces.data[test], faces.target[test])
        print(f"\n{name}: {scores[name]:.3f} test accuracy after {seconds:.0f} s of training")
    assert all(0.70 <= s <= 0.97 for s in scores.values())
    assert max(scores.values()) - min(scores.values()) > 0.01
