"""Type checks of scalar options, shared by the estimators, loaders and helpers."""

import numbers


def is_whole(value, low=1):
    """Whether ``value`` is an integer (numpy's too, not a bool) of at least ``low``."""
    return (not isinstance(value, bool) and isinstance(value, numbers.Integral)
            and value >= low)


def is_real(value):
    """Whether ``value`` is a real number (numpy's too, not a bool)."""
    return not isinstance(value, bool) and isinstance(value, numbers.Real)
