import numpy as np
import pytest
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from fer_sklearn import ResNetClassifier
from fer_sklearn.preprocessing import (
    Flatten,
    PixelScaler,
    PixelStandardizer,
    Resize,
    ToChannels,
    Unflatten,
)

from .conftest import make_faces


def test_pixel_scaler_maps_uint8_to_unit_range(faces):
    X, _ = faces
    out = PixelScaler().fit_transform(X)
    assert out.dtype == np.float32 and out.shape == (48, 1, 48, 48)
    np.testing.assert_allclose(out[:, 0], X / 255.0, rtol=1e-6)


@pytest.mark.parametrize("per_pixel", [False, True])
def test_standardizer_centres_training_data(per_pixel, faces):
    X, _ = faces
    out = PixelStandardizer(per_pixel=per_pixel).fit_transform(X)
    if per_pixel:
        np.testing.assert_allclose(out.mean(0), 0, atol=1e-4)
        np.testing.assert_allclose(out.std(0), 1, atol=1e-3)
    else:
        assert abs(out.mean()) < 1e-4 and abs(out.std() - 1) < 1e-3


def test_resize_to_channels_flatten_unflatten(faces):
    X, _ = faces
    small = Resize(24).fit_transform(X)
    assert small.shape == (48, 1, 24, 24) and small.dtype == np.uint8
    # a constant image stays constant through antialiased resizing
    const = Resize(24).fit_transform(np.full((1, 48, 48), 77, np.uint8))
    assert (const == 77).all()
    rgb = ToChannels(3).fit_transform(X)
    assert rgb.shape == (48, 3, 48, 48) and (rgb[:, 0] == rgb[:, 2]).all()
    flat = Flatten().fit_transform(X)
    assert flat.shape == (48, 2304)
    back = Unflatten((1, 48, 48)).fit_transform(flat)
    np.testing.assert_array_equal(back[:, 0], X)
    with pytest.raises(ValueError, match="shape=.*holds 100 values"):
        Unflatten((1, 10, 10)).fit_transform(flat)
    # colour images, whose rows are no square, and rows of any length round-trip
    colour = np.random.RandomState(0).randint(0, 256, (4, 3, 48, 48)).astype(np.uint8)
    rows = Flatten().fit_transform(colour)
    assert rows.shape == (4, 6912)
    np.testing.assert_array_equal(Unflatten((3, 48, 48)).fit_transform(rows), colour)
    assert Flatten().fit_transform(rows[:, :2300]).shape == (4, 2300)


def test_transform_rejects_another_image_size(faces):
    X, _ = faces
    scaler = PixelScaler().fit(X)
    with pytest.raises(ValueError, match="X has 1024 features, but PixelScaler is expecting 2304"):
        scaler.transform(X[:, :32, :32])


def test_pipelines_with_sklearn_and_fer_estimators():
    X, y = make_faces(n=30)
    tabular = make_pipeline(PixelScaler(), Flatten(), LogisticRegression(max_iter=200))
    assert tabular.fit(X, y).score(X, y) > 0.9
    deep = make_pipeline(PixelStandardizer(), ResNetClassifier(module__width=4, max_epochs=1,
                                                               random_state=0))
    clone(deep).fit(X, y)
    assert deep.fit(X, y).predict(X).shape == (30,)


def test_flat_rows_of_a_non_square_count_keep_their_count(faces):
    X, _ = faces
    flat = X.reshape(len(X), -1)[:, :2000]
    scaler = PixelScaler().fit(flat)
    assert scaler.n_features_in_ == 2000
    assert scaler.transform(flat).shape == (len(X), 1, 45, 45)
    with pytest.raises(ValueError, match="X has 1999 features, but PixelScaler is expecting 2000"):
        scaler.transform(flat[:, :1999])
