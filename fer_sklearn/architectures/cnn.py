"""A VGG-style network sized for 48x48 faces."""

from torch import nn

from ._registry import register

BAD_SIZE = ("width, depth and convs_per_stage must be >= 1; got width={width}, depth={depth}, "
            "convs_per_stage={convs_per_stage}.")


def _conv_bn_relu(c_in, c_out):
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class FERCNN(nn.Module):
    """Stacks of 3x3 conv-BN-ReLU, each stack ending in 2x2 max-pooling.

    Widths double per stack (``width``, ``2*width``, ...) up to ``8*width``;
    global average pooling and dropout feed the linear classifier. Pooling uses
    ``ceil_mode`` so inputs smaller than ``2**depth`` pixels still run.
    """

    def __init__(self, num_classes=7, in_chans=1, width=32, depth=4,
                 convs_per_stage=2, dropout=0.3):
        super().__init__()
        if depth < 1 or convs_per_stage < 1 or width < 1:
            raise ValueError(BAD_SIZE.format(width=width, depth=depth,
                                             convs_per_stage=convs_per_stage))
        stages = []
        c_in = in_chans
        for i in range(depth):
            c_out = width * min(2 ** i, 8)
            layers = [_conv_bn_relu(c_in if j == 0 else c_out, c_out)
                      for j in range(convs_per_stage)]
            layers.append(nn.MaxPool2d(2, ceil_mode=True))
            stages.append(nn.Sequential(*layers))
            c_in = c_out
        self.features = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(dropout),
                                  nn.Linear(c_in, num_classes))

    def forward(self, x):
        return self.head(self.pool(self.features(x)))


@register("cnn", family="cnn", description="VGG-style CNN for 48x48 (width/depth/dropout)")
def cnn(num_classes=7, in_chans=1, width=32, depth=4, convs_per_stage=2, dropout=0.3):
    """VGG-style CNN for 48x48 faces."""
    return FERCNN(num_classes, in_chans, width, depth, convs_per_stage, dropout)


# The last convolution of FERCNN depends on depth; the registry's default rule
# (the last nn.Conv2d) finds it.
