"""Checks on the real FER2013 copy in ../shared/data (skipped when it is absent)."""

import time

import numpy as np
import pytest

from fer_sklearn import CNNClassifier
from fer_sklearn.datasets import attach_attributes, load_image_folder

from .conftest import DEMOGRAPHICS

pytestmark = pytest.mark.real_data

TRAIN_COUNTS = {"angry": 3995, "disgust": 436, "fear": 4097, "happy": 7215,
                "neutral": 4965, "sad": 4830, "surprise": 3171}
VALIDATION_COUNTS = {"angry": 467, "disgust": 56, "fear": 496, "happy": 895,
                     "neutral": 607, "sad": 653, "surprise": 415}


@pytest.fixture(scope="module")
def fer(tmp_path_factory):
    from tests.conftest import FER_ZIP

    if not FER_ZIP.is_file():
        pytest.skip(f"real FER2013 data not found at {FER_ZIP}")
    cache = tmp_path_factory.mktemp("fer-cache")
    start = time.perf_counter()
    cold = load_image_folder(FER_ZIP, cache=cache)
    cold_s = time.perf_counter() - start
    start = time.perf_counter()
    warm = load_image_folder(FER_ZIP, cache=cache)
    warm_s = time.perf_counter() - start
    print(f"\nFER2013 zip: cold load {cold_s:.2f} s, cached load {warm_s:.2f} s")
    return cold, warm


def test_fer2013_zip_counts_match_the_data_readme(fer):
    bunch, warm = fer
    assert bunch.data.shape == (32298, 48, 48) and bunch.data.dtype == np.uint8
    for split, expected in (("train", TRAIN_COUNTS), ("validation", VALIDATION_COUNTS)):
        mask = bunch.frame["split"].to_numpy() == split
        labels, counts = np.unique(bunch.target[mask], return_counts=True)
        assert dict(zip(labels.tolist(), counts.tolist())) == expected
    assert warm.report["cache_hit"] and not bunch.report["cache_hit"]
    np.testing.assert_array_equal(warm.data, bunch.data)
    np.testing.assert_array_equal(warm.target, bunch.target)


def test_demographics_join(fer):
    bunch, _ = fer
    out = attach_attributes(bunch, DEMOGRAPHICS)
    assert out.report["attributes"]["matched"] == 32297
    assert out.report["attributes"]["unmatched_images"] == 1
    train = out.frame[out.frame["split"] == "train"]
    assert (train["race"] == "white").sum() == 24569
    assert (train["gender"] == "female").sum() == 12642


def test_brief_cnn_training_beats_the_majority_class(fer):
    bunch, _ = fer
    frame = bunch.frame
    rng = np.random.RandomState(0)
    train = rng.choice(np.flatnonzero(frame["split"] == "train"), 4000, replace=False)
    valid = np.flatnonzero(frame["split"] == "validation")
    clf = CNNClassifier(module__width=16, max_epochs=6, batch_size=64, lr=3e-3,
                        random_state=0)
    start = time.perf_counter()
    clf.fit(bunch.data[train], bunch.target[train])
    fit_s = time.perf_counter() - start
    accuracy = clf.score(bunch.data[valid], bunch.target[valid])
    majority = np.max(np.unique(bunch.target[valid], return_counts=True)[1]) / len(valid)
    print(f"\nCNN on 4,000 FER2013 training faces, 6 epochs ({fit_s:.0f} s): "
          f"validation accuracy {accuracy:.3f} vs majority class {majority:.3f}")
    assert accuracy > majority + 0.08
