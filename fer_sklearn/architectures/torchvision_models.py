"""Adapter turning other torchvision classifiers into 1-channel 48x48 models."""

import inspect

import torchvision
from torch import nn

from ._registry import register

UNKNOWN_TORCHVISION = "torchvision has no classification model named {name!r}."


def _first_conv(module):
    for name, child in module.named_modules():
        if isinstance(child, nn.Conv2d):
            return name, child
    raise ValueError("the torchvision model has no nn.Conv2d to adapt")


def adapt_torchvision(name, num_classes=7, in_chans=1, stem_stride=None, **kwargs):
    """Build torchvision's ``name`` (random weights) for small grayscale faces.

    The first convolution is rebuilt with ``in_chans`` input channels (same
    kernel, padding and output channels); ``stem_stride`` overrides its stride,
    which matters at 48x48 where torchvision's five stride-2 stages leave a
    2x2 map. Remaining ``kwargs`` go to the torchvision builder (e.g.
    ``width_mult`` for MobileNetV3, ``dropout``).

    Parameters
    ----------
    name : str
        A torchvision classification builder, e.g. ``"mobilenet_v3_small"``.
    num_classes, in_chans : int
    stem_stride : int or None
        Stride of the first convolution; None keeps torchvision's.

    Returns
    -------
    torch.nn.Module
    """
    if name not in torchvision.models.list_models(module=torchvision.models):
        raise ValueError(UNKNOWN_TORCHVISION.format(name=name))
    net = torchvision.models.get_model(name, weights=None, num_classes=num_classes,
                                       **kwargs)
    path, conv = _first_conv(net)
    stride = conv.stride if stem_stride is None else (stem_stride, stem_stride)
    new = nn.Conv2d(in_chans, conv.out_channels, conv.kernel_size, stride=stride,
                    padding=conv.padding, dilation=conv.dilation, groups=1,
                    bias=conv.bias is not None)
    parent_path, _, attr = path.rpartition(".")
    parent = net.get_submodule(parent_path) if parent_path else net
    setattr(parent, attr, new)
    return net


def _register_torchvision(name, description, stem_stride=None, target_layer=None,
                          min_input_size=None, **options):
    """Register torchvision's ``name`` with explicit, searchable options."""

    def factory(num_classes=7, in_chans=1, stem_stride=stem_stride, **kwargs):
        return adapt_torchvision(name, num_classes, in_chans, stem_stride,
                                 **{**options, **kwargs})

    # create() checks options against the signature, and GridSearchCV sees them
    # as module__* parameters, so publish the builder options explicitly.
    kw = inspect.Parameter.KEYWORD_ONLY
    params = [inspect.Parameter("num_classes", kw, default=7),
              inspect.Parameter("in_chans", kw, default=1),
              inspect.Parameter("stem_stride", kw, default=stem_stride)]
    params += [inspect.Parameter(k, kw, default=v) for k, v in options.items()]
    factory.__signature__ = inspect.Signature(params)
    factory.__name__ = name
    register(name, family="torchvision", description=description, target_layer=target_layer,
             min_input_size=min_input_size)(factory)


# VGG's five max-pools and ConvNeXt's stride-4 stem with three downsamplings
# need 32 pixels; ConvNeXt's last stage is 1x1 at 48, so Grad-CAM takes the third.
_register_torchvision("vgg11_bn", "torchvision VGG-11 with BN, 1-channel stem",
                      min_input_size=32, dropout=0.5)
_register_torchvision("mobilenet_v3_small",
                      "torchvision MobileNetV3-Small, stride-1 stem (width_mult)",
                      stem_stride=1, width_mult=1.0, dropout=0.2)
_register_torchvision("efficientnet_b0", "torchvision EfficientNet-B0, stride-1 stem",
                      stem_stride=1, dropout=0.2, stochastic_depth_prob=0.2)
_register_torchvision("convnext_tiny", "torchvision ConvNeXt-Tiny, 1-channel patchify stem",
                      target_layer="features.5", min_input_size=32,
                      stochastic_depth_prob=0.1)
