"""torchvision ResNets with a stem for small grayscale faces and a width option."""

from torch import nn
from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet

from ._registry import register


class FERResNet(ResNet):
    """torchvision's :class:`~torchvision.models.ResNet`, re-stemmed for 48x48.

    The 7x7 stride-2 convolution and max-pool that suit 224x224 photos are
    replaced by a 3x3 convolution of stride ``stem_stride`` (no pool), and
    stage widths are ``width * (1, 2, 4, 8)`` instead of the fixed 64..512.
    Blocks, ``_make_layer`` and the weight initialisation are torchvision's own.
    """

    def __init__(self, block, layers, num_classes=7, in_chans=1, width=64,
                 stem_stride=1, dropout=0.0):
        nn.Module.__init__(self)
        self._norm_layer = nn.BatchNorm2d
        self.inplanes = width
        self.dilation = 1
        self.groups = 1
        self.base_width = 64
        self.conv1 = nn.Conv2d(in_chans, width, 3, stride=stem_stride, padding=1,
                               bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.Identity()
        self.layer1 = self._make_layer(block, width, layers[0])
        self.layer2 = self._make_layer(block, width * 2, layers[1], stride=2)
        self.layer3 = self._make_layer(block, width * 4, layers[2], stride=2)
        self.layer4 = self._make_layer(block, width * 8, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Sequential(nn.Dropout(dropout),
                                nn.Linear(width * 8 * block.expansion, num_classes))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)


@register("resnet18", family="resnet", target_layer="layer4",
          description="torchvision ResNet-18, 3x3 stem for 48x48x1 (width, stem_stride)")
def resnet18(num_classes=7, in_chans=1, width=64, stem_stride=1, dropout=0.0):
    """torchvision ResNet-18 with a 48x48 stem."""
    return FERResNet(BasicBlock, [2, 2, 2, 2], num_classes, in_chans, width,
                     stem_stride, dropout)


@register("resnet34", family="resnet", target_layer="layer4",
          description="torchvision ResNet-34, 3x3 stem for 48x48x1 (width, stem_stride)")
def resnet34(num_classes=7, in_chans=1, width=64, stem_stride=1, dropout=0.0):
    """torchvision ResNet-34 with a 48x48 stem."""
    return FERResNet(BasicBlock, [3, 4, 6, 3], num_classes, in_chans, width,
                     stem_stride, dropout)


@register("resnet50", family="resnet", target_layer="layer4",
          description="torchvision ResNet-50 (bottleneck), 3x3 stem for 48x48x1")
def resnet50(num_classes=7, in_chans=1, width=64, stem_stride=1, dropout=0.0):
    """torchvision ResNet-50 with a 48x48 stem."""
    return FERResNet(Bottleneck, [3, 4, 6, 3], num_classes, in_chans, width,
                     stem_stride, dropout)
