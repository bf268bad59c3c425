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
