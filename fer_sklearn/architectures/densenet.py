"""torchvision DenseNets with a stem for small grayscale faces."""

from torch import nn
from torchvision.models.densenet import DenseNet

from ._registry import register


def _adapt_stem(net, in_chans, num_init_features, stem_stride):
    # 7x7/2 conv + 3x3/2 pool shrink 48x48 to 12x12 before the first block;
    # a 3x3 conv keeps the face's detail.
    net.features.conv0 = nn.Conv2d(in_chans, num_init_features, 3, stride=stem_stride,
                                   padding=1, bias=False)
    nn.init.kaiming_normal_(net.features.conv0.weight)
    net.features.pool0 = nn.Identity()
    return net


@register("densenet121", family="densenet", target_layer="features.norm5",
          description="torchvision DenseNet-121, 3x3 stem for 48x48x1")
def densenet121(num_classes=7, in_chans=1, growth_rate=32, drop_rate=0.0,
                stem_stride=1, memory_efficient=False):
    """torchvision DenseNet-121 with a 48x48 stem."""
    net = DenseNet(growth_rate=growth_rate, block_config=(6, 12, 24, 16),
                   num_init_features=2 * growth_rate, drop_rate=drop_rate,
                   num_classes=num_classes, memory_efficient=memory_efficient)
    return _adapt_stem(net, in_chans, 2 * growth_rate, stem_stride)


@register("densenet_bc", family="densenet", target_layer="features.norm5",
          description="compact DenseNet-BC for 48x48 (growth_rate, block_config)")
def densenet_bc(num_classes=7, in_chans=1, growth_rate=12, block_config=(6, 12, 24),
                bn_size=4, drop_rate=0.0, stem_stride=1):
    """Compact DenseNet-BC (bottleneck + compression 0.5) for 48x48 faces."""
    block_config = tuple(int(b) for b in block_config)
    net = DenseNet(growth_rate=growth_rate, block_config=block_config,
                   num_init_features=2 * growth_rate, bn_size=bn_size,
                   drop_rate=drop_rate, num_classes=num_classes)
    return _adapt_stem(net, in_chans, 2 * growth_rate, stem_stride)
