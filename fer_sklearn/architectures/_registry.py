"""A name -> factory registry of architectures (in the manner of timm's ``create_model``)."""

import inspect
from dataclasses import dataclass
from typing import Callable, Optional

from torch import nn

from .._hints import did_you_mean

UNKNOWN_ARCHITECTURE = "Unknown architecture {name!r}.{hint} Valid names: {valid}."
UNKNOWN_OPTION = (
    "Architecture {name!r} got unknown option(s) {unknown}; its options are: {valid}."
)
DUPLICATE_NAME = "An architecture named {name!r} is already registered."


@dataclass(frozen=True)
class ArchitectureSpec:
    """What the registry knows about one architecture.

    Attributes
    ----------
    name : str
        Registry name, used by configs and the command line.
    factory : callable
        ``factory(num_classes=..., in_chans=..., **options) -> nn.Module``.
    family : str
        Family the architecture belongs to (``cnn``, ``resnet``, ``densenet``,
        ``torchvision``, ``seed``).
    target_layer : str or None
        Dotted path of the last convolutional layer (for Grad-CAM); None means
        "the last ``nn.Conv2d`` of the built module" (see :func:`target_layer`).
    input_size : int or None
        Fixed spatial input size the network expects (the estimators resize each
        batch to it); None means the data's own size (from ``min_input_size``).
    in_chans : int or None
        Fixed number of input channels (grayscale batches are repeated to it);
        None means the data's own.
    min_input_size : int or None
        The smallest side the network's downsampling allows (the estimators
        refuse smaller images, or a smaller ``progressive_resize`` side, before
        building it); None: 8 pixels or less.
    description : str
        One line for ``benchmark list``.
    """

    name: str
    factory: Callable[..., nn.Module]
    family: str
    target_layer: Optional[str] = None
    input_size: Optional[int] = None
    in_chans: Optional[int] = None
    min_input_size: Optional[int] = None
    description: str = ""

    def options(self):
        """Names of the architecture options (``module__*`` parameters)."""
        params = inspect.signature(self.factory).parameters
        return [p for p in params if p not in ("num_classes", "in_chans")]


_REGISTRY = {}


def register(name, *, family, target_layer=None, input_size=None, in_chans=None,
             min_input_size=None,
             description=""):
    """Decorator registering an architecture factory under ``name``.

    Parameters
    ----------
    name : str
        Unique registry name.
    family : str
        Family name (used to group architectures in reports and tests).
    target_layer, input_size, in_chans, min_input_size, description
        See :class:`ArchitectureSpec`.

    Examples
    --------
    >>> from torch import nn
    >>> @register("tiny_mlp", family="mlp")
    ... def tiny_mlp(num_classes=7, in_chans=1):
    ...     return nn.Sequential(nn.Flatten(), nn.LazyLinear(num_classes))
    """

    def decorator(factory):
        if name in _REGISTRY:
            raise ValueError(DUPLICATE_NAME.format(name=name))
        _REGISTRY[name] = ArchitectureSpec(
            name=name,
            factory=factory,
            family=family,
            target_layer=target_layer,
            input_size=input_size,
            in_chans=in_chans,
            min_input_size=min_input_size,
            description=description or (inspect.getdoc(factory) or "").split("\n")[0],
        )
        return factory

    return decorator


def get_spec(name):
    """Return the :class:`ArchitectureSpec` registered under ``name``.

    Raises
    ------
    ValueError
        For an unknown name, listing the valid ones and the closest match.
    """
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise ValueError(
            UNKNOWN_ARCHITECTURE.format(
                name=name, hint=did_you_mean(name, _REGISTRY), valid=", ".join(sorted(_REGISTRY))
            )
        ) from None


def list_architectures(family=None):
    """Sorted registry names, optionally only those of one ``family``."""
    return sorted(n for n, s in _REGISTRY.items() if family in (None, s.family))


def check_options(name, options):
    """The :class:`ArchitectureSpec` of ``name``, once every key of ``options``
    is one of its options.

    Raises
    ------
    ValueError
        Unknown name or option, naming the valid ones.
    """
    spec = get_spec(name)
    valid = spec.options()
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ValueError(
            UNKNOWN_OPTION.format(
                name=name,
                unknown=", ".join(repr(u) for u in unknown),
                valid=", ".join(valid) or "(none)",
            )
        )
    return spec


def create(name, *, num_classes=7, in_chans=1, **options):
    """Build the architecture registered under ``name``.

    Parameters
    ----------
    name : str
        Registry name (see :func:`list_architectures`).
    num_classes : int
        Number of output logits.
    in_chans : int
        Input channels; ignored by architectures with a fixed ``in_chans``.
    **options
        Architecture options (width, depth, dropout, ...).

    Returns
    -------
    torch.nn.Module

    Raises
    ------
    ValueError
        Unknown name or option, naming the valid ones.

    Examples
    --------
    >>> net = create("cnn", num_classes=7, width=8)
    """
    spec = check_options(name, options)
    return spec.factory(
        num_classes=num_classes, in_chans=spec.in_chans or in_chans, **options
    )


def target_layer(module, name=None):
    """The layer Grad-CAM should hook for a built ``module``.

    Parameters
    ----------
    module : torch.nn.Module
        A network built by :func:`create`.
    name : str or None
        Its registry name; when the spec names no layer (or ``name`` is None),
        the last ``nn.Conv2d`` in ``module`` is used.

    Returns
    -------
    torch.nn.Module
    """
    path = get_spec(name).target_layer if name is not None else None
    if path:
        return module.get_submodule(path)
    convs = [m for m in module.modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise ValueError("the module has no nn.Conv2d layer for Grad-CAM")
    return convs[-1]
