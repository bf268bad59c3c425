"""fer-sklearn: facial-expression classifiers as scikit-learn estimators.

Compare architectures on accuracy, subgroup bias and explanations. The public
API is what ``__all__`` lists; see the README for a tour.
"""

from . import (
    architectures,
    datasets,
    explain,
    fairness,
    preprocessing,
    reporting,
    stats,
)
from .architectures import create, list_architectures, register
from .datasets import (
    EMOTIONS,
    attach_attributes,
    load_fer2013_csv,
    load_image_folder,
    load_labels_csv,
    make_synthetic_faces,
)
from .estimators import (
    CNNClassifier,
    DenseNetClassifier,
    FERClassifier,
    ResNetClassifier,
)
from .explain import attribute
from .fairness import audit_fairness

__version__ = "0.1.0"

__all__ = [
    "CNNClassifier",
    "DenseNetClassifier",
    "EMOTIONS",
    "FERClassifier",
    "ResNetClassifier",
    "architectures",
    "attach_attributes",
    "attribute",
    "audit_fairness",
    "create",
    "datasets",
    "explain",
    "fairness",
    "list_architectures",
    "load_fer2013_csv",
    "load_image_folder",
    "load_labels_csv",
    "make_synthetic_faces",
    "preprocessing",
    "register",
    "reporting",
    "stats",
]
