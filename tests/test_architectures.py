import pytest
import torch
from torch import nn

from fer_sklearn.architectures import (
    create,
    get_spec,
    list_architectures,
    register,
    target_layer,
)

from .conftest import FAMILY_CONFIGS

LIGHT = {  # small options so every architecture builds and runs quickly
    "cnn": {"width": 4}, "resnet18": {"width": 4}, "resnet34": {"width": 4},
    "resnet50": {"width": 4}, "densenet121": {"growth_rate": 4},
    "densenet_bc": {"growth_rate": 4, "block_config": (1, 1)},
    "mobilenet_v3_small": {"width_mult": 0.25}, "seed_cnn": {"width": 2},
}


@pytest.mark.parametrize("name", list_architectures())
def test_every_architecture_builds_runs_and_names_a_spatial_target_layer(name):
    spec = get_spec(name)
    net = create(name, num_classes=5, in_chans=1, **LIGHT.get(name, {})).eval()
    size = spec.input_size or 48
    x = torch.rand(2, spec.in_chans or 1, size, size)
    captured = {}
    layer = target_layer(net, name)
    handle = layer.register_forward_hook(lambda m, i, o: captured.setdefault("out", o))
    with torch.no_grad():
        out = net(x)
    handle.remove()
    assert out.shape == (2, 5)
    # Grad-CAM needs a spatial map from the hooked layer.
    assert captured["out"].ndim == 4 and captured["out"].shape[-1] >= 1


def test_families_are_all_covered_by_the_estimator_tests():
    families = {get_spec(n).family for n in list_architectures()}
    assert families == set(FAMILY_CONFIGS)


def test_48x48_models_take_one_channel_and_seed_models_take_rgb_224():
    assert create("resnet18", width=4).conv1.in_channels == 1
    assert get_spec("seed_resnet").input_size == 224
    assert get_spec("seed_resnet").in_chans == 3
    assert create("seed_resnet", in_chans=1).conv1.in_channels == 3


def test_width_option_changes_the_network():
    small = sum(p.numel() for p in create("resnet18", width=8).parameters())
    large = sum(p.numel() for p in create("resnet18", width=16).parameters())
    assert large > 3 * small


def test_a_cnn_of_no_width_or_depth_is_refused_with_its_values():
    with pytest.raises(ValueError, match="got width=0, depth=4, convs_per_stage=2"):
        create("cnn", width=0)


def test_unknown_name_lists_valid_names_and_suggests_the_closest():
    with pytest.raises(ValueError, match="Did you mean 'resnet18'") as err:
        create("resnt18")
    assert "densenet_bc" in str(err.value) and "cnn" in str(err.value)


def test_unknown_option_names_the_valid_options():
    with pytest.raises(ValueError, match="'widht'.*width, depth"):
        create("cnn", widht=3)


def test_register_adds_a_name_and_rejects_duplicates():
    @register("_test_tiny", family="test")
    def tiny(num_classes=7, in_chans=1):
        return nn.Sequential(nn.Conv2d(in_chans, 2, 3), nn.Flatten(), nn.LazyLinear(num_classes))

    try:
        assert "_test_tiny" in list_architectures()
        assert list_architectures("test") == ["_test_tiny"]
        with pytest.raises(ValueError, match="already registered"):
            register("_test_tiny", family="test")(tiny)
    finally:
        from fer_sklearn.architectures import _registry

        _registry._REGISTRY.pop("_test_tiny")


def test_networks_that_need_larger_images_refuse_smaller_ones_before_training():
    from fer_sklearn import FERClassifier
    from fer_sklearn.datasets import make_synthetic_faces

    small = make_synthetic_faces(20, random_state=0, image_size=24)
    with pytest.raises(ValueError, match=r"vgg11_bn needs images of at least 32x32.*24x24"):
        FERClassifier(architecture="vgg11_bn", max_epochs=1).fit(small.data, small.target)
    faces = make_synthetic_faces(20, random_state=0)
    with pytest.raises(ValueError, match=r"convnext_tiny needs .* 32x32.*16x16"):
        FERClassifier(architecture="convnext_tiny", max_epochs=1,
                      progressive_resize=(16, 0.5)).fit(faces.data, faces.target)


def test_every_grad_cam_layer_keeps_a_spatial_map_at_48_pixels():
    from fer_sklearn.architectures import create, get_spec, list_architectures
    from fer_sklearn.architectures._registry import target_layer

    for name in list_architectures():
        spec = get_spec(name)
        side = spec.input_size or 48
        net = create(name, num_classes=7).eval()
        shapes = []
        target_layer(net, name).register_forward_hook(
            lambda m, i, o, shapes=shapes: shapes.append(o.shape))
        with torch.no_grad():
            net(torch.zeros(1, spec.in_chans or 1, side, side))
        assert min(shapes[0][-2:]) >= 2, (name, shapes[0])
