"""Explanations: attribution maps, facial-region importance, explanation quality.

- :func:`attribute`: SHAP, saliency, Integrated Gradients, Grad-CAM, occlusion
  (and a random baseline) for a fitted estimator and a batch of faces;
- :func:`template_regions`, :func:`masks_to_regions`, :func:`region_shares`:
  how attribution mass falls on brows, eyes, nose, mouth, cheeks/jaw, background;
- :func:`deletion_curve`, :func:`localisation`: how faithful and how well placed
  an attribution is.
"""

from .attributions import METHODS, attribute
from .quality import DELETION_STEPS, deletion_curve, localisation
from .regions import REGION_NAMES, masks_to_regions, region_shares, template_regions

__all__ = [
    "DELETION_STEPS",
    "METHODS",
    "REGION_NAMES",
    "attribute",
    "deletion_curve",
    "localisation",
    "masks_to_regions",
    "region_shares",
    "template_regions",
]
