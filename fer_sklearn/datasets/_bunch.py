"""The one ``Bunch`` layout every loader returns."""

import numpy as np
import pandas as pd
from sklearn.utils import Bunch

from ._labels import present_target_names


def make_bunch(data, target, frame, descr, return_X_y=False, **extra):
    """Assemble a loader's result.

    Parameters
    ----------
    data : ndarray of uint8, shape (n, 48, 48)
    target : array of str, shape (n,)
        Canonical labels (see ``EMOTIONS``).
    frame : pandas.DataFrame
        One row per image with at least ``split`` and ``source``.
    descr : str
        Human-readable description of the source.
    return_X_y : bool
        Return ``(data, target)`` instead of the Bunch.
    **extra
        Further entries (``report``, ``masks``, ...).
    """
    data = np.ascontiguousarray(data, dtype=np.uint8)
    target = np.asarray(target).astype(str)
    frame = pd.DataFrame(frame).reset_index(drop=True)
    if not (len(data) == len(target) == len(frame)):
        raise ValueError(
            f"internal error: {len(data)} images, {len(target)} labels and "
            f"{len(frame)} frame rows differ"
        )
    if return_X_y:
        return data, target
    return Bunch(
        data=data,
        target=target,
        target_names=present_target_names(target),
        frame=frame,
        DESCR=descr,
        **extra,
    )
