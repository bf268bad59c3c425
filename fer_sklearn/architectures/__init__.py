"""Architecture registry: ``create(name, **options)`` builds any registered network.

Importing this package registers every built-in family (``cnn``, ``resnet``,
``densenet``, ``torchvision``, ``seed``).
"""

from . import cnn, densenet, resnet, seed, torchvision_models  # noqa: F401  (registers)
from ._registry import (
    ArchitectureSpec,
    create,
    get_spec,
    list_architectures,
    register,
    target_layer,
)
from .torchvision_models import adapt_torchvision

__all__ = [
    "ArchitectureSpec",
    "adapt_torchvision",
    "create",
    "get_spec",
    "list_architectures",
    "register",
    "target_layer",
]
