"""Loaders for face-expression data; each returns an sklearn ``Bunch``.

``data`` is uint8 of shape (n, 48, 48), ``target`` holds the canonical labels
(:data:`EMOTIONS`, FER2013's order), ``frame`` a DataFrame with ``split``,
``source`` and any attributes. All accept ``return_X_y=True``.
"""

from ._cache import cache_dir
from ._labels import EMOTIONS
from .attributes import attach_attributes
from .fer2013_csv import load_fer2013_csv
from .image_folder import load_image_folder
from .labels_csv import load_labels_csv
from .synthetic import make_synthetic_faces, plot_face_grid

__all__ = [
    "EMOTIONS",
    "attach_attributes",
    "cache_dir",
    "load_fer2013_csv",
    "load_image_folder",
    "load_labels_csv",
    "make_synthetic_faces",
    "plot_face_grid",
]
