"""The original study's three networks, as its notebook set them up.

They take 3-channel 224x224 input (the study upscaled FER2013's 48x48 grayscale
faces); the estimators resize and repeat each batch on the device, so they train
from the same in-memory uint8 arrays as every other architecture.
"""

import torchvision
from torch import nn

from ._registry import register


class SeedCNN(nn.Module):
    """A plain three-block CNN (conv-ReLU-pool x3, then two dense layers)."""

    def __init__(self, num_classes=7, in_chans=3, width=32, dropout=0.5):
        super().__init__()
        w = width
        self.features = nn.Sequential(
            nn.Conv2d(in_chans, w, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(w, 2 * w, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(2 * w, 4 * w, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        )
        self.pool = nn.AdaptiveAvgPool2d(7)
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(4 * w * 49, 256), nn.ReLU(inplace=True),
            nn.Dropout(dropout), nn.Linear(256, num_classes),
        )

    def forward(self, x):
        return self.classifier(self.pool(self.features(x)))


@register("seed_cnn", family="seed", target_layer="features.6", input_size=224,
          in_chans=3, description="the original study's CNN (3x224x224 input)")
def seed_cnn(num_classes=7, in_chans=3, width=32, dropout=0.5):
    """The original study's CNN."""
    return SeedCNN(num_classes, in_chans, width, dropout)


@register("seed_resnet", family="seed", target_layer="layer4", input_size=224,
          in_chans=3, description="the original study's ResNet-18 (3x224x224 input)")
def seed_resnet(num_classes=7, in_chans=3):
    """torchvision ResNet-18 as the study used it (random init)."""
    return torchvision.models.resnet18(weights=None, num_classes=num_classes)


@register("seed_densenet", family="seed", target_layer="features.norm5", input_size=224,
          in_chans=3, description="the original study's DenseNet-121 (3x224x224 input)")
def seed_densenet(num_classes=7, in_chans=3):
    """torchvision DenseNet-121 as the study used it (random init)."""
    return torchvision.models.densenet121(weights=None, num_classes=num_classes)
