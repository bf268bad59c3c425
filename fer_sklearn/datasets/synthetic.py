"""A procedural facial-expression benchmark with known ground truth.

:func:`make_synthetic_faces` draws grayscale faces whose expression is carried by
the facial actions that carry it in people (brows, lids, mouth, nose wrinkle),
under head pose, lighting, blur, noise and occluders, for two group attributes
(``tone``, ``age``) drawn independently of the expression. Because the generator
knows which pixels carry each face's expression (``masks``) and can inject a
known bias into one group (``bias=``), it is a test bench for accuracy, subgroup
bias and explanation methods alike. :func:`plot_face_grid` shows examples.

How a face is drawn
-------------------
Every face lives in a canonical, upright frame with normalised coordinates
(``x`` right, ``y`` down, both in [-1, 1]). Skin, hair, brows, eyes, nose, folds
and mouth are soft (anti-aliased) shapes evaluated from distance fields on the
pixel grid, with per-face parameters; each part is evaluated only in a window of
the canvas that can hold it. The canvas is composited over a background, then
resampled (bilinear) through the face's head transform (rotation, scale, shift);
lighting, blur, contrast and noise are applied in the image frame. All of it is
numpy over a chunk of faces at once: no Python loop runs per face.

Expressions
-----------
Each class has a prototype over eleven facial actions (:data:`ACTIONS`),
loosely following FACS:

============ ==================================================================
class        actions
============ ==================================================================
angry        brows lowered and knitted (inner ends down, AU4), lower lids tight
             (AU7), lips pressed thin and narrow (AU24)
disgust      nose wrinkled (AU9), upper lip raised showing teeth (AU10), brows
             lowered, lower lids up, mouth corners down a little
fear         brows raised *and* knitted, inner corners up (AU1+2+4), eyes wide
             (AU5), mouth open and stretched sideways (AU20) with teeth showing
happy        mouth corners up and mouth widened (AU12), often parted over teeth,
             cheeks raising the lower lids (AU6), smile folds and crow's feet
sad          inner brow corners up (AU1, a slanted brow), mouth corners down
             (AU15), chin raised (AU17), lids a little lowered
surprise     brows raised high and arched (AU1+2), forehead lines, eyes wide
             (AU5), jaw dropped into a rounded open mouth (AU26/27)
neutral      no action
============ ==================================================================

Neighbouring classes share actions (fear and surprise: raised brows, wide eyes,
open mouth; angry and disgust: lowered brows; sad and neutral differ only by the
mouth corners and inner brows). Each face has an ``intensity`` ``t`` that scales
its prototype; about 12 % of faces (at ``difficulty=1``) are posed weakly
(``t`` in [0.2, 0.45]) and so are close to neutral, about 15 % are blended up to
45 % toward a neighbouring class (``blend_with``, ``blend`` in ``frame``), and
every face gets small idiosyncratic action offsets. The label is still the
class whose prototype dominates.
"""

import numbers
from collections.abc import Mapping

import numpy as np
import pandas as pd

from .._checks import is_whole
from ._bunch import make_bunch
from ._labels import EMOTIONS, canonical_label, present_target_names

__all__ = [
    "ACTIONS",
    "ATTRIBUTES",
    "EVIDENCE_REGIONS",
    "FER2013_TRAIN_COUNTS",
    "REGIONS",
    "make_synthetic_faces",
    "plot_face_grid",
]

# --------------------------------------------------------------------------- #
# Public constants
# --------------------------------------------------------------------------- #

#: Group attributes recorded in ``frame`` and their levels.
ATTRIBUTES = {
    "tone": ("light", "medium", "dark"),
    "age": ("young", "adult", "old"),
}

#: Facial regions returned in ``masks`` (plus ``evidence`` and ``occluder``).
REGIONS = ("brows", "eyes", "nose", "mouth")

#: FER2013 training-set class counts (the imbalance of ``class_weights="fer2013"``).
FER2013_TRAIN_COUNTS = {
    "angry": 3995,
    "disgust": 436,
    "fear": 4097,
    "happy": 7215,
    "sad": 4830,
    "surprise": 3171,
    "neutral": 4965,
}

#: The facial actions a face's expression is made of (columns of the prototypes).
ACTIONS = (
    "brow_raise",  # + raised (AU1+2), - lowered (AU4)
    "brow_inner",  # + inner corners up (AU1), - inner corners down
    "brow_knit",  # + brows drawn together (AU4)
    "upper_lid",  # + eyes wide (AU5), - lids lowered / closed-ish
    "lower_lid",  # + lower lids raised (AU6/AU7), narrowing from below
    "mouth_curve",  # + corners up (AU12), - corners down (AU15)
    "mouth_open",  # jaw drop / lips parted (AU25-27)
    "mouth_stretch",  # + stretched sideways (AU20), - narrowed into an "O"
    "lip_press",  # lips pressed thin (AU24)
    "nose_wrinkle",  # AU9
    "upper_lip_raise",  # AU10
)

_ACTION_REGION = (
    "brows", "brows", "brows", "eyes", "eyes",
    "mouth", "mouth", "mouth", "mouth", "nose", "mouth",
)

# Prototypes, one row per class in EMOTIONS order, one column per ACTIONS entry.
_PROTOTYPES = np.array(
    [
        # raise inner  knit   upper  lower  curve  open  stretch press wrinkle lipup
        [-0.90, -0.70, 1.00, 0.15, 0.70, -0.15, 0.00, -0.20, 1.00, 0.15, 0.00],  # angry
        [-0.60, -0.30, 0.60, -0.35, 0.60, -0.45, 0.25, 0.10, 0.00, 1.00, 1.00],  # disgust
        [0.75, 0.80, 0.70, 1.00, 0.20, -0.25, 0.45, 1.00, 0.00, 0.00, 0.10],  # fear
        [0.05, 0.00, 0.00, -0.20, 0.80, 1.00, 0.35, 0.50, 0.00, 0.00, 0.00],  # happy
        [-0.15, 1.00, 0.35, -0.40, 0.00, -0.90, 0.00, -0.10, 0.25, 0.00, 0.00],  # sad
        [1.00, 0.15, -0.10, 1.00, -0.20, 0.00, 1.00, -0.45, 0.00, 0.00, 0.00],  # surprise
        [0.00, 0.00, 0.00, 0.00, 0.00, 0.00, 0.00, 0.00, 0.00, 0.00, 0.00],  # neutral
    ],
    dtype=np.float64,
)
_A = {name: i for i, name in enumerate(ACTIONS)}


def _evidence_table():
    """Regions whose actions a class's prototype moves by at least 0.5."""
    table = {}
    for k, name in enumerate(EMOTIONS):
        moved = {_ACTION_REGION[j] for j in range(len(ACTIONS)) if abs(_PROTOTYPES[k, j]) >= 0.5}
        if not moved:  # neutral: the absence of action is seen where actions happen
            moved = {"brows", "eyes", "mouth"}
        table[name] = tuple(r for r in REGIONS if r in moved)
    return table


#: ``masks["evidence"]`` is the union of these regions for the face's true class:
#: the regions whose actions the class prototype moves by at least 0.5 (for
#: neutral, which moves nothing, brows + eyes + mouth).
EVIDENCE_REGIONS = _evidence_table()

# Neighbour each class is blended toward on ambiguous faces, with probabilities.
_NEIGHBOURS = {
    "angry": {"disgust": 0.7, "sad": 0.3},
    "disgust": {"angry": 0.7, "sad": 0.3},
    "fear": {"surprise": 0.8, "sad": 0.2},
    "happy": {"neutral": 0.6, "surprise": 0.4},
    "sad": {"neutral": 0.7, "fear": 0.3},
    "surprise": {"fear": 0.8, "happy": 0.2},
    "neutral": {"sad": 0.6, "angry": 0.2, "happy": 0.2},
}

_BIAS_OPTIONS = ("attribute", "group", "rarity", "contrast", "label_noise")
_BIAS_STRENGTHS = ("rarity", "contrast", "label_noise")
_BIAS_EXAMPLE = (
    '{"attribute": "tone", "group": "dark", "rarity": 0.8, "contrast": 0.5, '
    '"label_noise": 0.2}'
)

# --------------------------------------------------------------------------- #
# Error messages
# --------------------------------------------------------------------------- #

BAD_N_SAMPLES = "n_samples must be a positive integer; got {value!r}."
BAD_IMAGE_SIZE = "image_size must be an integer of at least 24 (pixels); got {value!r}."
BAD_DIFFICULTY = "difficulty must be a finite number >= 0 (1.0 is the default benchmark); got {value!r}."
BAD_RANDOM_STATE = (
    "random_state must be None, an int, a numpy Generator or RandomState; got {value!r}."
)
BIAS_NOT_A_DICT = "bias must be None or a dict like {example}; got {value!r}."
BIAS_UNKNOWN_OPTIONS = "Unknown bias option(s) {unknown}. Valid options: {valid}."
BIAS_MISSING = "bias needs {missing}: which group gets the bias, e.g. {example}."
BIAS_UNKNOWN_ATTRIBUTE = "Unknown bias attribute {value!r}. Valid attributes: {valid}."
BIAS_UNKNOWN_GROUP = "Unknown group {value!r} for attribute {attribute!r}. Valid groups: {valid}."
BIAS_BAD_STRENGTH = (
    "bias[{key!r}] must be a number in [0, 1], or None to switch it off; got {value!r}."
)
BIAS_EMPTY_POPULATION = (
    "bias rarity=1 removes every face of {attribute}={group!r} and nothing else is left."
)
BAD_CLASS_WEIGHTS = (
    "class_weights must be None (balanced), 'fer2013', a dict {{class: weight}} or a "
    "sequence of 7 weights in the order {classes}; got {value!r}."
)
UNKNOWN_WEIGHT_CLASSES = "class_weights names unknown class(es) {unknown}. Valid classes: {classes}."
BAD_WEIGHT_VALUES = (
    "class_weights must be finite and >= 0 with a positive sum; got {value!r}."
)
BAD_GRID_INPUT = (
    "plot_face_grid needs images of shape (n, H, W) or flat square rows (n, H*W) and one "
    "label per image; got data of shape {shape} and {n_labels} label(s)."
)
BAD_N_PER_CLASS = "n_per_class must be a positive integer; got {value!r}."

# --------------------------------------------------------------------------- #
# Rendering constants
# --------------------------------------------------------------------------- #

# Faces rendered per vectorised step (at 48x48; fewer for larger images): bounds
# memory, about 20 float32 images of this many faces are alive at once. Every
# random draw is made per face before rendering, so the chunking never changes
# the output.
_CHUNK = 256
# Gaussian noise comes from one bank of normals per call, read at random offsets.
_NOISE_BANK = 1 << 18

_TONE_SKIN = {"light": (0.68, 0.78), "medium": (0.52, 0.60), "dark": (0.36, 0.44)}
_AGE_WRINKLES = {"young": 0.0, "adult": 0.45, "old": 1.0}

# Windows (y range, x range) in canonical coordinates holding each part.
_WINDOWS = {
    "hair": ((-1.0, 0.32), (-1.0, 1.0)),
    "forehead": ((-0.76, -0.30), (-0.50, 0.50)),
    "brows": ((-0.64, -0.08), (-0.64, 0.64)),
    "glabella": ((-0.52, -0.06), (-0.12, 0.12)),
    "eyes": ((-0.36, 0.14), (-0.64, 0.64)),
    "nose": ((-0.16, 0.40), (-0.24, 0.24)),
    "folds": ((0.14, 0.68), (-0.46, 0.46)),
    "mouth": ((0.16, 1.0), (-0.54, 0.54)),
    "neck": ((0.55, 1.0), (-0.5, 0.5)),
    "glasses": ((-0.40, 0.16), (-1.0, 1.0)),
}

_BIT = {"brows": 1, "eyes": 2, "nose": 4, "mouth": 8, "occluder": 16}
_OCCLUDERS = ("none", "glasses", "sunglasses", "bar")
_MASK_NAMES = REGIONS + ("evidence", "occluder")
# mask bits of each class's evidence regions, in EMOTIONS order
_EVIDENCE_BITS = np.array(
    [sum(_BIT[r] for r in EVIDENCE_REGIONS[c]) for c in EMOTIONS], dtype=np.uint8
)


# --------------------------------------------------------------------------- #
# Validation helpers
# --------------------------------------------------------------------------- #


def _check_random_state(random_state):
    """Return a ``numpy.random.Generator`` for ``random_state``."""
    if isinstance(random_state, np.random.RandomState):
        return np.random.default_rng(random_state.randint(0, 2**31 - 1))
    if random_state is None or isinstance(
        random_state, (numbers.Integral, np.random.Generator, np.random.SeedSequence)
    ):
        if isinstance(random_state, bool):
            raise ValueError(BAD_RANDOM_STATE.format(value=random_state))
        return np.random.default_rng(random_state)
    raise ValueError(BAD_RANDOM_STATE.format(value=random_state))


def _check_strength(key, value):
    if value is None:
        return None
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if not ok or not (0.0 <= float(value) <= 1.0):
        raise ValueError(BIAS_BAD_STRENGTH.format(key=key, value=value))
    return float(value)


def _validate_bias(bias):
    """Check a ``bias`` dict; return it normalised (all keys present) or None."""
    if bias is None:
        return None
    if not isinstance(bias, Mapping):
        raise ValueError(BIAS_NOT_A_DICT.format(example=_BIAS_EXAMPLE, value=bias))
    unknown = [k for k in bias if k not in _BIAS_OPTIONS]
    if unknown:
        raise ValueError(
            BIAS_UNKNOWN_OPTIONS.format(
                unknown=", ".join(repr(k) for k in unknown),
                valid=", ".join(repr(k) for k in _BIAS_OPTIONS),
            )
        )
    missing = [k for k in ("attribute", "group") if bias.get(k) is None]
    if missing:
        raise ValueError(
            BIAS_MISSING.format(
                missing=" and ".join(repr(k) for k in missing), example=_BIAS_EXAMPLE
            )
        )
    attribute = bias["attribute"]
    if attribute not in ATTRIBUTES:
        raise ValueError(
            BIAS_UNKNOWN_ATTRIBUTE.format(
                value=attribute, valid=", ".join(repr(a) for a in ATTRIBUTES)
            )
        )
    group = bias["group"]
    if group not in ATTRIBUTES[attribute]:
        raise ValueError(
            BIAS_UNKNOWN_GROUP.format(
                value=group,
                attribute=attribute,
                valid=", ".join(repr(g) for g in ATTRIBUTES[attribute]),
            )
        )
    spec = {"attribute": attribute, "group": group}
    for key in _BIAS_STRENGTHS:
        spec[key] = _check_strength(key, bias.get(key))
    return spec


def _class_probabilities(class_weights):
    """Class probabilities (EMOTIONS order) from the ``class_weights`` argument."""
    k = len(EMOTIONS)
    if class_weights is None:
        return np.full(k, 1.0 / k)
    if isinstance(class_weights, str):
        if class_weights.strip().lower() != "fer2013":
            raise ValueError(
                BAD_CLASS_WEIGHTS.format(classes=", ".join(EMOTIONS), value=class_weights)
            )
        w = np.array([FER2013_TRAIN_COUNTS[c] for c in EMOTIONS], dtype=np.float64)
    elif isinstance(class_weights, Mapping):
        w = np.zeros(k)
        unknown = []
        for name, value in class_weights.items():
            label = canonical_label(name)
            if label not in EMOTIONS:  # unknown, or a class the generator does not draw
                unknown.append(repr(name))
                continue
            w[EMOTIONS.index(label)] = _as_weight(value, class_weights)
        if unknown:
            raise ValueError(
                UNKNOWN_WEIGHT_CLASSES.format(
                    unknown=", ".join(unknown), classes=", ".join(EMOTIONS)
                )
            )
    else:
        try:
            values = list(class_weights)
        except TypeError:
            raise ValueError(
                BAD_CLASS_WEIGHTS.format(classes=", ".join(EMOTIONS), value=class_weights)
            ) from None
        if len(values) != k:
            raise ValueError(
                BAD_CLASS_WEIGHTS.format(classes=", ".join(EMOTIONS), value=class_weights)
            )
        w = np.array([_as_weight(v, class_weights) for v in values])
    if not (np.all(np.isfinite(w)) and np.all(w >= 0) and w.sum() > 0):
        raise ValueError(BAD_WEIGHT_VALUES.format(value=class_weights))
    return w / w.sum()


def _as_weight(value, class_weights):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(BAD_WEIGHT_VALUES.format(value=class_weights))
    return float(value)


def _exact_counts(n, p):
    """Split ``n`` into counts proportional to ``p`` (largest remainder)."""
    raw = n * np.asarray(p, dtype=np.float64)
    counts = np.floor(raw).astype(np.int64)
    short = n - counts.sum()
    if short:
        order = np.argsort(-(raw - counts), kind="stable")
        counts[order[:short]] += 1
    return counts


# --------------------------------------------------------------------------- #
# Per-face parameters
# --------------------------------------------------------------------------- #


def _sym(rng, n, half):
    """Uniform in [-half, half] (half may be 0)."""
    return rng.uniform(-1.0, 1.0, n) * half


def _draw_expressions(rng, labels, difficulty):
    """Actions (n, len(ACTIONS)), intensity, blend partner and weight per face."""
    n = len(labels)
    d = difficulty
    weak = rng.random(n) < min(0.12 * d, 0.6)
    u = np.where(weak, rng.uniform(0.55, 0.80, n), rng.uniform(0.0, 0.45, n))
    intensity = np.clip(1.0 - d * u, 0.05, 1.0)

    # neighbour per class, drawn from its table
    k = len(EMOTIONS)
    cum = np.zeros((k, k))
    for i, name in enumerate(EMOTIONS):
        probs = np.zeros(k)
        for other, p in _NEIGHBOURS[name].items():
            probs[EMOTIONS.index(other)] = p
        cum[i] = np.cumsum(probs / probs.sum())
    pick = rng.random(n)
    partner = np.minimum((pick[:, None] > cum[labels]).sum(axis=1), k - 1)
    blended = rng.random(n) < min(0.15 * d, 0.6)
    blend = np.where(blended, rng.uniform(0.2, 0.45, n) * min(d, 1.0), 0.0)

    proto = (1.0 - blend)[:, None] * _PROTOTYPES[labels] + blend[:, None] * _PROTOTYPES[partner]
    actions = intensity[:, None] * proto + rng.normal(0.0, 0.10 * d, (n, len(ACTIONS)))
    actions = np.clip(actions, -1.5, 1.5)
    partner_name = np.where(blend > 0, np.asarray(EMOTIONS, dtype=object)[partner], "")
    return actions, intensity, partner_name.astype(str), blend


def _draw_params(rng, labels, tone_idx, age_idx, difficulty, feature_contrast):
    """Every per-face rendering parameter, as float32 arrays of shape (n,)."""
    n = len(labels)
    d = float(difficulty)
    dc = min(d, 1.0)
    actions, intensity, partner, blend = _draw_expressions(rng, labels, d)
    a = {name: actions[:, j] for j, name in enumerate(ACTIONS)}
    pos = {name: np.maximum(v, 0.0) for name, v in a.items()}
    fc = feature_contrast

    P = {}
    # skin, face shape, hair ------------------------------------------------
    lo = np.array([_TONE_SKIN[t][0] for t in ATTRIBUTES["tone"]])[tone_idx]
    hi = np.array([_TONE_SKIN[t][1] for t in ATTRIBUTES["tone"]])[tone_idx]
    mid, half = (lo + hi) / 2, (hi - lo) / 2
    P["skin"] = mid + _sym(rng, n, half * dc)
    P["shade"] = 0.14 + _sym(rng, n, 0.05 * dc)
    P["ax"] = 0.70 * (1.0 + np.clip(rng.normal(0, 0.05 * d, n), -0.12, 0.12))
    P["ay"] = 0.92 * (1.0 + np.clip(rng.normal(0, 0.03 * d, n), -0.06, 0.06))
    P["cy"] = 0.08 + _sym(rng, n, 0.02 * dc)
    P["hair_line"] = -0.66 + _sym(rng, n, 0.06 * dc)
    P["hair_side"] = 0.9 + _sym(rng, n, 0.3 * dc)
    P["hair_volume"] = 0.07 + _sym(rng, n, 0.04 * dc)
    grey = (np.asarray(age_idx) == ATTRIBUTES["age"].index("old")) & (rng.random(n) < 0.6)
    P["hair_col"] = np.clip(0.18 + _sym(rng, n, 0.12 * dc) + 0.30 * grey, 0.02, 0.8)
    aw = np.array([_AGE_WRINKLES[g] for g in ATTRIBUTES["age"]])[age_idx]
    P["wrinkle"] = aw * (1.0 + _sym(rng, n, 0.2 * dc))
    P["fc"] = np.asarray(fc, dtype=np.float64) * (1.0 + _sym(rng, n, 0.12 * dc))

    # brows -----------------------------------------------------------------
    P["brow_y"] = -0.36 + _sym(rng, n, 0.03 * dc) - 0.10 * a["brow_raise"]
    P["brow_tilt"] = -0.08 * a["brow_inner"] + 0.04 * pos["brow_knit"]
    P["brow_in"] = np.clip(0.12 + _sym(rng, n, 0.02 * dc) - 0.05 * pos["brow_knit"], 0.04, 0.2)
    P["brow_out"] = 0.54 + _sym(rng, n, 0.03 * dc)
    P["brow_arch"] = 0.05 + _sym(rng, n, 0.02 * dc) + 0.025 * pos["brow_raise"]
    P["brow_th"] = 0.085 + _sym(rng, n, 0.015 * dc)
    P["brow_ink"] = 0.28 * (1.0 + _sym(rng, n, 0.15 * dc))
    P["knit_ink"] = 0.12 * pos["brow_knit"] * np.clip(1.0 - 0.5 * pos["brow_raise"], 0.3, 1.0)
    # Lines and folds: an age part (wrinkle texture) plus an expression part;
    # the contrast bias scales only the expression part.
    P["forehead_ink"] = 0.07 * P["wrinkle"] + 0.10 * pos["brow_raise"] * P["fc"]

    # eyes --------------------------------------------------------------------
    P["eye_x"] = np.clip(0.32 + _sym(rng, n, 0.025 * dc), 0.27, 0.37)
    P["eye_y"] = np.clip(-0.12 + _sym(rng, n, 0.03 * dc), -0.18, -0.06)
    P["eye_w"] = 0.13 + _sym(rng, n, 0.015 * dc)
    P["lid_up"] = np.clip(0.055 * (1.0 + 0.9 * a["upper_lid"]), 0.006, 0.13)
    P["lid_low"] = np.clip(0.045 * (1.0 - 0.55 * a["lower_lid"]), 0.008, 0.075)
    P["iris_r"] = 0.062 + _sym(rng, n, 0.008 * dc)
    P["gaze_x"] = _sym(rng, n, 0.03 * dc)
    P["gaze_y"] = _sym(rng, n, 0.012 * dc)
    P["cheek_ink"] = 0.05 * P["wrinkle"] + (
        0.08 * pos["lower_lid"] * (a["mouth_curve"] > 0.2) * P["fc"])
    P["crow_ink"] = 0.08 * P["wrinkle"] + 0.07 * pos["mouth_curve"] * P["fc"]

    # nose and folds ------------------------------------------------------------
    P["nostril_y"] = 0.27 + _sym(rng, n, 0.025 * dc) - 0.03 * pos["nose_wrinkle"]
    P["nostril_rx"] = 0.042 * (1.0 + 0.25 * pos["nose_wrinkle"])
    P["nose_ink"] = 0.22 * pos["nose_wrinkle"]
    P["fold_ink"] = 0.06 * P["wrinkle"] + P["fc"] * (
        0.09 * pos["mouth_curve"] + 0.10 * pos["nose_wrinkle"] + 0.04 * pos["upper_lip_raise"]
    )

    # mouth ---------------------------------------------------------------------
    mc = a["mouth_curve"]
    P["mouth_x"] = _sym(rng, n, 0.015 * dc)
    P["mouth_y"] = np.clip(0.54 + _sym(rng, n, 0.03 * dc), 0.48, 0.60)
    P["mouth_w"] = np.clip(
        (0.25 + _sym(rng, n, 0.02 * dc))
        * (1.0 + 0.28 * a["mouth_stretch"] + 0.10 * pos["mouth_curve"] - 0.15 * pos["lip_press"]),
        0.14,
        0.42,
    )
    P["mouth_curve"] = mc * np.where(mc > 0, 0.10, 0.075)
    P["open_up"] = 0.035 * pos["mouth_open"]
    P["open_low"] = 0.15 * pos["mouth_open"]
    P["lip_raise"] = 0.05 * pos["upper_lip_raise"]
    P["lip_side"] = np.where(rng.random(n) < 0.5, -1.0, 1.0)
    P["mouth_k"] = 2.0 + 2.0 * pos["mouth_stretch"]
    press = np.clip(1.0 - 0.8 * pos["lip_press"], 0.15, 1.0)
    P["lip_up"] = (0.045 + _sym(rng, n, 0.01 * dc)) * press
    P["lip_low"] = (0.06 + _sym(rng, n, 0.012 * dc)) * press
    P["lip_line"] = 0.035 + 0.02 * pos["lip_press"]
    P["lip_ink"] = 0.12 * (1.0 + _sym(rng, n, 0.25 * dc)) + 0.05 * pos["lip_press"]
    P["teeth"] = np.clip(
        0.9 * pos["mouth_curve"] + 0.8 * pos["upper_lip_raise"] + 0.6 * pos["mouth_stretch"], 0, 1
    )
    P["chin_ink"] = 0.08 * pos["lip_press"] + 0.05 * np.maximum(-mc, 0.0)

    # head transform, lighting, camera -------------------------------------------
    P["rot"] = np.deg2rad(np.clip(rng.normal(0.0, 6.0 * d, n), -15.0 * d, 15.0 * d))
    P["scale"] = 1.0 + rng.uniform(-0.10, 0.08, n) * d
    P["tx"] = _sym(rng, n, 0.08 * d)
    P["ty"] = _sym(rng, n, 0.07 * d)
    P["bg"] = 0.5 + _sym(rng, n, 0.42 * dc)
    P["bg_x"] = _sym(rng, n, 0.25 * dc)
    P["bg_y"] = _sym(rng, n, 0.25 * dc)
    angle = rng.uniform(0.0, 2 * np.pi, n)
    light = rng.uniform(0.0, 0.30, n) * d
    P["light_x"] = light * np.cos(angle)
    P["light_y"] = light * np.sin(angle)
    P["gain"] = np.clip(1.0 + rng.uniform(-0.35, 0.15, n) * d, 0.3, 1.6)
    P["offset"] = 0.5 * (1.0 - P["gain"]) + _sym(rng, n, 0.08 * d)
    P["blur"] = np.where(rng.random(n) < 0.4, 0.0, np.clip(rng.uniform(0.0, 0.25, n) * d, 0, 1 / 3))
    P["noise"] = rng.uniform(0.005, 0.045, n) * d

    # occluders ----------------------------------------------------------------
    probs = np.array([0.09, 0.04, 0.10]) * d
    if probs.sum() > 0.6:
        probs *= 0.6 / probs.sum()
    r = rng.random(n)
    occ = np.zeros(n, dtype=np.int64)
    edges = np.cumsum(probs)
    occ[r < edges[2]] = 3
    occ[r < edges[1]] = 2
    occ[r < edges[0]] = 1
    P["occluder"] = occ
    P["glass_r"] = rng.uniform(0.17, 0.21, n)
    P["glass_th"] = rng.uniform(0.025, 0.05, n)
    P["glass_col"] = rng.uniform(0.02, 0.3, n)
    P["bar_x"] = rng.uniform(-0.45, 0.45, n)
    P["bar_y"] = rng.uniform(-0.35, 0.75, n)
    P["bar_angle"] = rng.uniform(-np.pi / 2, np.pi / 2, n)
    P["bar_len"] = rng.uniform(0.30, 0.80, n)
    P["bar_th"] = rng.uniform(0.07, 0.18, n)
    P["bar_col"] = rng.uniform(0.05, 0.95, n)

    P = {k: np.asarray(np.broadcast_to(v, (n,)), dtype=np.float32) for k, v in P.items()}
    return P, intensity, partner, blend


# --------------------------------------------------------------------------- #
# Rendering
# --------------------------------------------------------------------------- #


class _Layout:
    """Pixel grid and part windows for one image size."""

    _cache = {}

    def __init__(self, size):
        self.size = size
        self.px = 2.0 / size
        self.inv_px = size / 2.0
        self.margin = 1.25 * self.px  # mask dilation around a drawn part
        g = ((np.arange(size, dtype=np.float64) + 0.5) * self.px - 1.0).astype(np.float32)
        self.g = g
        self.X = g[None, None, :]
        self.Y = g[None, :, None]
        self.windows = {}
        for name, ((y0, y1), (x0, x1)) in _WINDOWS.items():
            rows, cols = self._span(y0, y1), self._span(x0, x1)
            x = g[cols][None, None, :]
            self.windows[name] = (rows, cols, x, np.abs(x), g[rows][None, :, None])
        # flat pixel indices are computed in float32, exact below 2**24
        self.chunk = max(1, min(_CHUNK, (1 << 22) // (size * size)))
        self.base = np.arange(self.chunk, dtype=np.float32)[:, None, None] * np.float32(size * size)

    def _span(self, lo, hi):
        a = max(0, int(np.floor((lo + 1.0) * self.inv_px)))
        b = min(self.size, int(np.ceil((hi + 1.0) * self.inv_px)))
        return slice(a, b)

    @classmethod
    def get(cls, size):
        if size not in cls._cache:
            cls._cache[size] = cls(size)
        return cls._cache[size]


def _coverage(d, inv_px):
    """Signed distance (negative inside) -> anti-aliased coverage, in place."""
    d *= -inv_px
    d += 0.5
    np.clip(d, 0.0, 1.0, out=d)
    return d


def _ramp(d, inv_px):
    """Coverage of a (small) column/row array, not in place."""
    return np.clip(0.5 - d * inv_px, 0.0, 1.0)


def _set_bit(bits, where, name):
    """Set the mask bit of part ``name`` in ``bits`` (a view) where ``where``."""
    np.bitwise_or(bits, _BIT[name], out=bits, where=where)


def _signed_sqrt(v):
    return np.copysign(np.sqrt(np.abs(v)), v)


def _draw_skin(F, A, P, L):
    """Head ellipse (alpha ``A``), rounded shading and neck."""
    ip = L.inv_px
    ax, ay, cy = P["ax"], P["ay"], P["cy"]
    qx = (L.X / ax) ** 2
    qy = ((L.Y - cy) / ay) ** 2
    q = np.add(qx, qy, out=F)  # F temporarily holds q
    np.sqrt(q, out=A)
    k = ax * ip
    A *= -k
    A += k + 0.5
    np.clip(A, 0.0, 1.0, out=A)
    skin = P["skin"]
    q *= -skin * P["shade"]
    q += skin  # F = skin * (1 - shade * q)
    np.maximum(F, skin * 0.55, out=F)

    rows, cols, x, axx, y = L.windows["neck"]
    neck = _ramp(axx - 0.34 * ax / 0.7, ip) * _ramp(0.70 - y, ip)  # (B, h, w)
    sub_a = A[:, rows, cols]
    w = neck * (1.0 - sub_a)
    sub_f = F[:, rows, cols]
    sub_f += w * (skin * 0.8 - sub_f)
    sub_a += w


def _draw_hair(F, A, P, L):
    ip = L.inv_px
    rows, cols, x, axx, y = L.windows["hair"]
    hv = P["hair_volume"]
    ox = P["ax"] + hv
    oy = P["ay"] + hv
    q = (x / ox) ** 2 + ((y - (P["cy"] - 0.05)) / oy) ** 2
    r = np.sqrt(q, out=q)
    r -= 1.0
    r *= ox
    outer = _coverage(r, ip)
    line = P["hair_line"] + P["hair_side"] * x * x  # (B, 1, w)
    hair = _coverage(y - line, ip)
    hair *= outer
    sub_f = F[:, rows, cols]
    sub_a = A[:, rows, cols]
    # sub += hair * (value - sub), with one temporary (outer is free again)
    t = np.subtract(P["hair_col"], sub_f, out=outer)
    t *= hair
    sub_f += t
    t = np.subtract(1.0, sub_a, out=outer)
    t *= hair
    sub_a += t


def _draw_forehead(F, P, L):
    ip = L.inv_px
    rows, cols, x, axx, y = L.windows["forehead"]
    fade = np.clip(1.0 - (x / 0.42) ** 2, 0.0, 1.0)  # (1, 1, w)
    ink = P["forehead_ink"]
    for k in range(2):
        yk = np.maximum(P["brow_y"] - 0.13 - 0.065 * k, -0.72)
        yl = yk - 0.04 * fade  # (B, 1, w)
        d = np.abs(y - yl)
        d -= 0.016
        cov = _coverage(d, ip)
        cov *= fade * ink
        F[:, rows, cols] -= cov


def _draw_brows(F, P, L, bits):
    ip = L.inv_px
    rows, cols, x, axx, y = L.windows["brows"]
    xi, xo = P["brow_in"], P["brow_out"]
    t = (axx - xi) / (xo - xi)  # (B, 1, w)
    yb = P["brow_y"] + P["brow_tilt"] * (1.0 - t) - P["brow_arch"] * 4.0 * t * (1.0 - t)
    np.clip(yb, -0.58, -0.14, out=yb)
    half = P["brow_th"] * (0.5 - 0.22 * np.clip(t, 0.0, 1.0))
    cap = _ramp(xi - axx, ip) * _ramp(axx - xo, ip)
    d = np.abs(y - yb)
    d -= half
    if bits is not None:
        _set_bit(bits[:, rows, cols], (d < L.margin) & (cap > 0.0), "brows")
    cov = _coverage(d, ip)
    cov *= cap * (P["brow_ink"] * P["fc"])
    F[:, rows, cols] -= cov

    # vertical frown lines between knitted brows
    rows, cols, x, axx, y = L.windows["glabella"]
    yc = np.clip(P["brow_y"] + P["brow_tilt"] + 0.07, -0.45, -0.12)
    d = np.maximum(np.abs(axx - 0.045) - 0.013, np.abs(y - yc) - 0.07)
    cov = _coverage(d, ip)
    cov *= P["knit_ink"] * P["fc"]
    F[:, rows, cols] -= cov


def _draw_eyes(F, P, L, bits):
    ip = L.inv_px
    rows, cols, x, axx, y = L.windows["eyes"]
    ex, ey, ew = P["eye_x"], P["eye_y"], P["eye_w"]
    skin, fc = P["skin"], P["fc"]
    tt = (axx - ex) / ew  # (B, 1, w)
    env = _signed_sqrt(1.0 - tt * tt)
    yu = ey - P["lid_up"] * env
    yl = ey + P["lid_low"] * env
    dop = np.maximum(yu - y, y - yl)  # (B, h, w), negative inside the opening
    if bits is not None:
        _set_bit(bits[:, rows, cols], dop < L.margin, "eyes")
    opening = _coverage(dop, ip)

    dx = x - np.sign(x) * ex - P["gaze_x"]  # (B, 1, w)
    dy = y - ey - P["gaze_y"]  # (B, h, 1)
    dist = np.sqrt(dx * dx + dy * dy)
    dist -= P["iris_r"]
    iris = _coverage(dist, ip)
    # eye colour: sclera lighter than skin, iris darker, both scaled by fc
    iris *= -0.44 * fc
    iris += skin + 0.12 * fc
    sub = F[:, rows, cols]
    iris -= sub
    iris *= opening
    sub += iris

    # upper lash line, cheek crease under the eye, crow's feet
    cap = _ramp(np.abs(tt) - 1.05, ip * ew)
    d = np.abs(y - (yu - 0.012))
    d -= 0.022
    cov = _coverage(d, ip)
    cov *= cap * (0.30 * fc)
    sub -= cov

    cap2 = _ramp(np.abs(tt) - 0.85, ip * ew)
    d = np.abs(y - (yl + 0.055))
    d -= 0.014
    cov = _coverage(d, ip)
    cov *= cap2 * P["cheek_ink"]
    sub -= cov

    x0 = ex + ew + 0.015
    span = _ramp(x0 - axx, ip) * _ramp(axx - (x0 + 0.1), ip)  # (B, 1, w)
    for slope in (-0.55, 0.45):
        d = np.abs((y - ey) - slope * (axx - x0))
        d -= 0.012
        cov = _coverage(d, ip)
        cov *= span * P["crow_ink"]
        sub -= cov


def _draw_nose(F, P, L, bits):
    ip = L.inv_px
    rows, cols, x, axx, y = L.windows["nose"]
    fc = P["fc"]
    sub = F[:, rows, cols]
    ny = P["nostril_y"]
    rx = P["nostril_rx"]
    q = ((axx - 0.085) / rx) ** 2 + ((y - ny) / 0.024) ** 2
    r = np.sqrt(q, out=q)
    r -= 1.0
    r *= 0.024
    cov = _coverage(r, ip)
    cov *= 0.22 * fc
    sub -= cov
    # nose sides
    d = np.maximum(np.abs(axx - 0.095) - 0.014, np.abs(y - (ny - 0.16)) - 0.12)
    cov = _coverage(d, ip)
    cov *= 0.05 * fc
    sub -= cov
    # AU9 wrinkles across the bridge
    ink = P["nose_ink"] * fc
    for k in range(3):
        yk = ny - 0.32 + 0.05 * k + 0.05 * x * x
        d = np.maximum(np.abs(y - yk) - 0.014, axx - (0.11 - 0.01 * k))
        cov = _coverage(d, ip)
        cov *= ink
        sub -= cov
    if bits is not None:
        qm = (x / 0.2) ** 2 + ((y - (ny - 0.13)) / 0.25) ** 2
        _set_bit(bits[:, rows, cols], qm < 1.0, "nose")


def _draw_folds(F, P, L):
    ip = L.inv_px
    rows, cols, x, axx, y = L.windows["folds"]
    xf = 0.15 + 0.48 * (y - 0.2) + 0.5 * (P["mouth_w"] - 0.25)  # (B, h, 1)
    d = np.maximum(np.abs(axx - xf) - 0.014, np.abs(y - 0.41) - 0.19)
    cov = _coverage(d, ip)
    cov *= P["fold_ink"]
    F[:, rows, cols] -= cov


def _draw_mouth(F, P, L, bits):
    ip = L.inv_px
    rows, cols, x, axx, y = L.windows["mouth"]
    skin, fc = P["skin"], P["fc"]
    w = P["mouth_w"]
    t = (x - P["mouth_x"]) / w  # (B, 1, w)
    at = np.abs(t)
    yj = P["mouth_y"] - P["mouth_curve"] * t * t
    p = _signed_sqrt(1.0 - np.power(at, P["mouth_k"]))
    pl = _signed_sqrt(1.0 - t * t)
    pp = np.maximum(p, 0.0)
    yu = yj - P["open_up"] * p - P["lip_raise"] * (1.0 + 0.5 * P["lip_side"] * t) * pp
    yl = yj + P["open_low"] * p
    capx = _ramp(at - 1.0, ip * w)

    sub = F[:, rows, cols]
    # lips
    d = np.maximum((yu - P["lip_up"] * pl) - y, y - (yl + P["lip_low"] * pl))
    if bits is not None:
        _set_bit(bits[:, rows, cols], (d < L.margin) & (at < 1.1), "mouth")
    lips = _coverage(d, ip)
    lips *= capx * (P["lip_ink"] * fc)
    sub -= lips
    # opening: dark cavity with upper teeth
    d = np.maximum(yu - y, y - yl)
    d -= P["lip_line"] * 0.5
    opening = _coverage(d, ip)
    opening *= capx
    d = np.maximum(yu - y, y - (yu + 0.055 * pp))
    teeth = _coverage(d, ip)
    teeth *= P["teeth"] * (0.57 * fc)
    teeth += skin - 0.45 * fc  # cavity + teeth * (teeth colour - cavity)
    teeth -= sub
    teeth *= opening
    sub += teeth
    # chin boss under pressed / down-turned lips
    d = np.abs(y - (yl + P["lip_low"] * pl + 0.075))
    d -= 0.015
    cov = _coverage(d, ip)
    cov *= _ramp(at - 0.6, ip * w) * (P["chin_ink"] * fc)
    sub -= cov


def _draw_background(F, A, P, L, ws):
    bg = ws.get("bg", F.shape[0])
    np.add(P["bg"] + P["bg_x"] * L.X, P["bg_y"] * L.Y, out=bg)
    F -= bg
    F *= A
    F += bg


def _draw_glasses(F, P, L, bits, sel):
    ip = L.inv_px
    rows, cols, x, axx, y = L.windows["glasses"]
    Q = {k: v[sel] for k, v in P.items()}
    ex, ey, rg = Q["eye_x"], Q["eye_y"], Q["glass_r"]
    ry = rg * 0.8
    q = ((axx - ex) / rg) ** 2 + ((y - ey) / ry) ** 2
    r = np.sqrt(q, out=q)
    r -= 1.0
    inside = _coverage(r * ry, ip)
    r = np.abs(r, out=r)
    r *= ry
    r -= Q["glass_th"] * 0.5
    frame = _coverage(r, ip)
    bar_y = np.abs(y - (ey - 0.03)) - Q["glass_th"] * 0.5
    bridge = _coverage(np.maximum(bar_y, axx - (ex - 0.95 * rg)), ip)
    arms = _coverage(np.maximum(bar_y, (ex + 0.95 * rg) - axx), ip)
    np.maximum(frame, bridge, out=frame)
    np.maximum(frame, arms, out=frame)
    sub = F[sel, rows, cols]
    dark = Q["occluder"] == 2
    opacity = np.where(dark, 0.88, 0.08)
    tint = np.where(dark, 0.08, 0.95)
    sub += inside * opacity * (tint - sub)
    sub += frame * (Q["glass_col"] - sub)
    F[sel, rows, cols] = sub
    if bits is not None:
        occ = frame > 0.5
        occ |= (inside > 0.5) & dark
        bits[sel, rows, cols] |= occ.view(np.uint8) * np.uint8(_BIT["occluder"])


def _draw_bar(F, P, L, bits, sel):
    ip = L.inv_px
    Q = {k: v[sel] for k, v in P.items()}
    c, s = np.cos(Q["bar_angle"]), np.sin(Q["bar_angle"])
    dx = L.X - Q["bar_x"]
    dy = L.Y - Q["bar_y"]
    u = np.abs(c * dx + s * dy) - Q["bar_len"]
    v = np.abs(c * dy - s * dx) - Q["bar_th"]
    cov = _coverage(np.maximum(u, v), ip)
    sub = F[sel]
    sub += cov * (Q["bar_col"] - sub)
    F[sel] = sub
    if bits is not None:
        bits[sel] |= (cov > 0.5).view(np.uint8) * np.uint8(_BIT["occluder"])


class _Workspace:
    """Image-sized buffers reused by every chunk of one call.

    Allocating fresh image-sized temporaries per chunk costs page faults that
    dominate the run time; these buffers are allocated once.
    """

    def __init__(self, chunk, size):
        self.shape = (chunk, size, size)
        self._buffers = {}

    def get(self, name, B, dtype=np.float32):
        buf = self._buffers.get(name)
        if buf is None:
            buf = self._buffers[name] = np.empty(self.shape, dtype=dtype)
        return buf[:B]


def _warp(F, P, L, bits, ws):
    """Resample the canonical canvas through each face's head transform."""
    S = L.size
    B = F.shape[0]
    cos, sin = np.cos(P["rot"]), np.sin(P["rot"])
    k = L.inv_px / P["scale"]  # canonical pixels per normalised output unit
    x = L.X - P["tx"]  # (B, 1, S)
    y = L.Y - P["ty"]  # (B, S, 1)
    half = S / 2.0 - 0.5
    fx, fy = ws.get("fx", B), ws.get("fy", B)
    x0, y0 = ws.get("x0", B), ws.get("y0", B)
    np.add((cos * k) * x + half, (sin * k) * y, out=fx)
    np.subtract((cos * k) * y + half, (sin * k) * x, out=fy)
    np.clip(fx, 0.0, S - 1.001, out=fx)
    np.clip(fy, 0.0, S - 1.001, out=fy)
    np.floor(fx, out=x0)
    np.floor(fy, out=y0)
    fx -= x0  # weights
    fy -= y0
    y0 *= S
    y0 += x0
    y0 += L.base[:B]
    idx = ws.get("idx", B, np.intp)
    np.copyto(idx, y0, casting="unsafe")
    # the 4 neighbours: one index array into the canvas shifted by 0, 1, S, S+1
    # (indices are in range, so "clip" never clips)
    flat = F.reshape(-1)
    v00, v01 = ws.get("v00", B), ws.get("v01", B)
    v10, v11 = ws.get("v10", B), ws.get("v11", B)
    np.take(flat, idx, out=v00, mode="clip")
    np.take(flat[1:], idx, out=v01, mode="clip")
    v01 -= v00
    v01 *= fx
    v01 += v00  # top row
    np.take(flat[S + 1:], idx, out=v11, mode="clip")
    np.take(flat[S:], idx, out=v10, mode="clip")
    v11 -= v10
    v11 *= fx
    v11 += v10  # bottom row
    v11 -= v01
    v11 *= fy
    v11 += v01
    out_bits = None
    if bits is not None:
        # nearest neighbour: step right / down where that weight is >= 0.5;
        # done on the exact float32 index (cheaper than int64 arithmetic)
        near, step = v00, v01  # free now
        np.greater_equal(fy, 0.5, out=near)
        near *= S
        near += y0
        np.greater_equal(fx, 0.5, out=step)
        near += step
        np.copyto(idx, near, casting="unsafe")
        out_bits = np.take(bits.reshape(-1), idx, mode="clip")
    return v11, out_bits


def _blur(img, w, ws):
    """Separable [w, 1-2w, w] blur per face, edges replicated; in place."""
    B = img.shape[0]
    tmp = ws.get("blur", B)
    c = 1.0 - 2.0 * w
    for axis in (2, 1):
        a = np.moveaxis(img, axis, 2)
        t = np.moveaxis(tmp, axis, 2)
        np.add(a[:, :, :-2], a[:, :, 2:], out=t[:, :, 1:-1])
        np.add(a[:, :, :1], a[:, :, 1:2], out=t[:, :, :1])
        np.add(a[:, :, -1:], a[:, :, -2:-1], out=t[:, :, -1:])
        tmp *= w
        img *= c
        img += tmp
    return img


def _render_chunk(P, L, noise, with_masks, ws):
    """Render one chunk as float [0, 255] values (and mask bits when asked).

    ``P`` maps names to (B, 1, 1) float32 arrays.
    """
    B = P["skin"].shape[0]
    F, A = ws.get("F", B), ws.get("A", B)
    bits = None
    if with_masks:
        bits = ws.get("bits", B, np.uint8)
        bits[...] = 0

    _draw_skin(F, A, P, L)
    _draw_forehead(F, P, L)
    _draw_hair(F, A, P, L)
    _draw_brows(F, P, L, bits)
    _draw_eyes(F, P, L, bits)
    _draw_nose(F, P, L, bits)
    _draw_folds(F, P, L)
    _draw_mouth(F, P, L, bits)
    _draw_background(F, A, P, L, ws)
    occ = P["occluder"].reshape(-1)
    sel = np.flatnonzero((occ == 1) | (occ == 2))
    if sel.size:
        _draw_glasses(F, P, L, bits, sel)
    sel = np.flatnonzero(occ == 3)
    if sel.size:
        _draw_bar(F, P, L, bits, sel)

    img, out_bits = _warp(F, P, L, bits, ws)
    if np.any(P["blur"] > 0):
        img = _blur(img, P["blur"], ws)
    # lighting plane, gain and 8-bit scaling in one multiply
    g = P["gain"] * 255.0
    light = A  # the alpha buffer is free now
    np.add(g + (g * P["light_x"]) * L.X, (g * P["light_y"]) * L.Y, out=light)
    img *= light
    img += P["offset"] * 255.0 + 0.5
    if noise is not None:
        noise *= P["noise"] * 255.0
        img += noise
    np.clip(img, 0.0, 255.0, out=img)
    return img, out_bits


# --------------------------------------------------------------------------- #
# Public API
# --------------------------------------------------------------------------- #


def make_synthetic_faces(
    n_samples=2000,
    *,
    random_state=None,
    bias=None,
    return_masks=False,
    class_weights=None,
    image_size=48,
    difficulty=1.0,
    return_X_y=False,
):
    """Generate a procedural facial-expression benchmark with known ground truth.

    Faces show the seven FER2013 expressions (:data:`EMOTIONS`) through the
    facial actions that carry them in people (see the module docstring), under
    head pose, face shape, lighting, contrast, blur, noise, background and
    occluder nuisances, for two group attributes (``tone``, ``age``) drawn
    independently of the expression. The result has the layout of every loader
    of :mod:`fer_sklearn.datasets`.

    Parameters
    ----------
    n_samples : int, default=2000
        Number of faces.
    random_state : int, numpy Generator, RandomState or None, default=None
        Seed. The same seed and arguments give byte-identical images.
    bias : dict or None, default=None
        Inject a known bias into one group; unbiased when None. Keys:

        ``attribute`` : {"tone", "age"}, required
            The group attribute.
        ``group`` : str, required
            The group that gets the bias: one of ``ATTRIBUTES[attribute]``
            (tone: "light", "medium", "dark"; age: "young", "adult", "old").
        ``rarity`` : float in [0, 1] or None
            Under-sampling: each face of the group is dropped with probability
            ``rarity`` and replaced by a face of the other groups, so
            ``n_samples`` is kept and the group's expected share falls from
            ``p = 1/3`` to ``p (1 - rarity) / (1 - p rarity)`` (0.091 for
            rarity 0.8). The expression distribution inside every group is
            unchanged.
        ``contrast`` : float in [0, 1] or None
            Factor on the contrast of the expression-carrying facial features
            (brows, frown and forehead lines, eyes, lids, crow's feet, nose and nose
            wrinkles, smile folds, lips, mouth opening, teeth) of the group's
            faces: their darkening/brightening relative to the skin is
            multiplied by it (1 = no change; at 0 the features vanish but for
            a faint outline of the eye and mouth openings, up to about ten grey
            levels off the shaded skin around them, so the openings' shape
            still hints at the expression). Skin,
            hair, the age part of lines and folds, and everything after
            drawing are unchanged.
        ``label_noise`` : float in [0, 1] or None
            Probability that a face of the group gets a wrong label, drawn
            uniformly among the six other classes. The image still shows the
            true expression; ``target`` holds the noisy label,
            ``frame["true_label"]`` the true one and ``frame["label_noised"]``
            marks the flipped faces.

        A strength of None (or a missing key) switches that option off.
        Unknown keys, attributes or groups raise ``ValueError``.
    return_masks : bool, default=False
        Add ``masks`` to the result: a dict of bool arrays of shape
        ``(n, image_size, image_size)``. ``brows``, ``eyes``, ``nose`` and
        ``mouth`` are the pixels of each drawn part (brow strokes, lid
        opening, lips and mouth opening dilated by 1.25 px; for the nose, the
        ellipse from the bridge between the eyes to the nostrils) for this
        face's actual shape. ``evidence`` is the union of the regions that
        carry the face's *true* expression (:data:`EVIDENCE_REGIONS`: those
        whose actions the class prototype moves by >= 0.5; for neutral,
        brows + eyes + mouth). ``occluder`` marks the glasses frame, dark
        lenses and bar. Masks are computed in the face's canonical frame and
        resampled (nearest) through the same head transform as the image;
        they ignore occlusion (an occluded mouth is still in ``mouth``).
    class_weights : None, "fer2013", dict or sequence, default=None
        Class proportions. None: balanced. ``"fer2013"``: FER2013's training
        imbalance (:data:`FER2013_TRAIN_COUNTS`, disgust 1.5 %). A dict maps
        class names (synonyms accepted) to weights, missing classes get 0; a
        sequence gives 7 weights in :data:`EMOTIONS` order. Counts are exact
        (largest remainder) and shuffled.
    image_size : int, default=48
        Side of the square images. 48 matches FER2013.
    difficulty : float, default=1.0
        Scales every nuisance range (pose, shape, lighting, contrast, blur,
        noise, background, occluder rates, identity variation) and the share
        and depth of ambiguous faces. 0 gives clean, frontal, identical
        identities that differ only by expression, tone and age; 1 is the
        benchmark; larger is harder.
    return_X_y : bool, default=False
        Return ``(data, target)`` only.

    Returns
    -------
    sklearn.utils.Bunch or (data, target)
        ``data`` uint8 ``(n, image_size, image_size)``; ``target`` str labels
        (noisy where ``label_noise`` flipped them); ``target_names``;
        ``frame`` with columns ``split`` ("unassigned"), ``source``
        ("synthetic:<i>"), ``tone``, ``age``, ``true_label``,
        ``label_noised``, ``intensity`` (in [0.05, 1]: how strongly the
        expression is posed; for neutral it only scales a blend),
        ``blend_with`` (neighbour class blended in, "" if none), ``blend``
        (its weight, < 0.5), ``occluder`` ("none", "glasses", "sunglasses",
        "bar"); ``attributes`` (``["tone", "age"]``); ``bias`` (the validated
        bias or None); ``DESCR``; and ``masks`` when ``return_masks``.

    Raises
    ------
    ValueError
        For invalid arguments, naming the valid values.

    Examples
    --------
    >>> from fer_sklearn.datasets.synthetic import make_synthetic_faces
    >>> faces = make_synthetic_faces(500, random_state=0)
    >>> faces.data.shape, faces.data.dtype
    ((500, 48, 48), dtype('uint8'))
    >>> biased = make_synthetic_faces(
    ...     500, random_state=0,
    ...     bias={"attribute": "tone", "group": "dark", "label_noise": 0.3})
    >>> bool(biased.frame.loc[biased.frame.tone != "dark", "label_noised"].any())
    False
    """
    if not is_whole(n_samples):
        raise ValueError(BAD_N_SAMPLES.format(value=n_samples))
    if (
        isinstance(image_size, bool)
        or not isinstance(image_size, numbers.Integral)
        or image_size < 24
    ):
        raise ValueError(BAD_IMAGE_SIZE.format(value=image_size))
    if (
        isinstance(difficulty, bool)
        or not isinstance(difficulty, numbers.Real)
        or not np.isfinite(difficulty)
        or difficulty < 0
    ):
        raise ValueError(BAD_DIFFICULTY.format(value=difficulty))
    n, size, difficulty = int(n_samples), int(image_size), float(difficulty)
    spec = _validate_bias(bias)
    probs = _class_probabilities(class_weights)
    rng = _check_random_state(random_state)

    # labels: exact counts, shuffled
    labels = rng.permutation(np.repeat(np.arange(len(EMOTIONS)), _exact_counts(n, probs)))

    # groups: independent of the label; rarity re-weights the biased group
    groups = {}
    for attribute, levels in ATTRIBUTES.items():
        p = np.full(len(levels), 1.0 / len(levels))
        if spec is not None and spec["attribute"] == attribute and spec["rarity"]:
            p[levels.index(spec["group"])] *= 1.0 - spec["rarity"]
            if p.sum() <= 0:  # pragma: no cover - only with one level
                raise ValueError(BIAS_EMPTY_POPULATION.format(**spec))
            p /= p.sum()
        groups[attribute] = rng.choice(len(levels), size=n, p=p)
    in_group = np.zeros(n, dtype=bool)
    if spec is not None:
        levels = ATTRIBUTES[spec["attribute"]]
        in_group = groups[spec["attribute"]] == levels.index(spec["group"])

    # label noise: flip to one of the other classes
    flip_p = (spec["label_noise"] or 0.0) if spec is not None else 0.0
    flip = rng.random(n) < flip_p
    shift = rng.integers(1, len(EMOTIONS), n)
    noised = flip & in_group
    target_idx = np.where(noised, (labels + shift) % len(EMOTIONS), labels)

    contrast = np.ones(n)
    if spec is not None and spec["contrast"] is not None:
        contrast[in_group] = spec["contrast"]

    params, intensity, partner, blend = _draw_params(
        rng, labels, groups["tone"], groups["age"], difficulty, contrast
    )
    n_pix = size * size
    bank_size = min(_NOISE_BANK, n * n_pix) + n_pix
    bank = rng.standard_normal(bank_size, dtype=np.float32)
    offsets = rng.integers(0, bank_size - n_pix + 1, n)
    windows = np.lib.stride_tricks.sliding_window_view(bank, n_pix)
    add_noise = difficulty > 0

    L = _Layout.get(size)
    ws = _Workspace(min(L.chunk, n), size)
    data = np.empty((n, size, size), dtype=np.uint8)
    masks = None
    if return_masks:
        masks = {name: np.empty((n, size, size), dtype=bool) for name in _MASK_NAMES}
        evidence_bits = _EVIDENCE_BITS[labels]
    for start in range(0, n, L.chunk):
        sl = slice(start, min(start + L.chunk, n))
        B = sl.stop - sl.start
        P = {k: v[sl, None, None] for k, v in params.items()}
        noise = None
        if add_noise:
            # fancy indexing copies just the B windows; np.take(windows, ...)
            # would first copy the whole (virtual, GB-sized) window view
            noise = ws.get("noise", B)
            noise.reshape(B, n_pix)[...] = windows[offsets[sl]]
        img, out_bits = _render_chunk(P, L, noise, return_masks, ws)
        np.copyto(data[sl], img, casting="unsafe")
        if return_masks:
            # split the bits while the chunk is still in cache
            _split_bits(out_bits, evidence_bits[sl], masks, sl, ws)

    names = np.asarray(EMOTIONS)
    occ_names = np.asarray(_OCCLUDERS)[params["occluder"].astype(np.int64)]
    frame = {
        "split": np.full(n, "unassigned", dtype=object),
        "source": np.char.add("synthetic:", np.arange(n).astype(str)).astype(object),
        "tone": np.asarray(ATTRIBUTES["tone"], dtype=object)[groups["tone"]],
        "age": np.asarray(ATTRIBUTES["age"], dtype=object)[groups["age"]],
        "true_label": names[labels].astype(object),
        "label_noised": noised,
        "intensity": intensity.astype(np.float64),
        "blend_with": partner.astype(object),
        "blend": blend.astype(np.float64),
        "occluder": occ_names.astype(object),
    }
    frame = pd.DataFrame(frame)
    extra = {"attributes": list(ATTRIBUTES), "bias": spec}
    if return_masks:
        extra["masks"] = masks
    descr = _describe(n, size, difficulty, spec, probs, return_masks)
    return make_bunch(data, names[target_idx], frame, descr, return_X_y=return_X_y, **extra)


def _split_bits(bits, evidence_bits, masks, sl, ws):
    """Write one chunk's mask bits into the bool ``masks`` arrays at ``sl``."""
    tmp = ws.get("split", bits.shape[0], np.uint8)
    for name in _MASK_NAMES:
        bit = evidence_bits[:, None, None] if name == "evidence" else _BIT[name]
        np.bitwise_and(bits, bit, out=tmp)
        np.not_equal(tmp, 0, out=masks[name][sl])


def _describe(n, size, difficulty, spec, probs, masks):
    shares = ", ".join(f"{c} {p:.1%}" for c, p in zip(EMOTIONS, probs))
    if spec is None:
        bias_txt = "none (unbiased)"
    else:
        opts = [f"{k}={spec[k]}" for k in _BIAS_STRENGTHS if spec[k] is not None]
        bias_txt = f"{spec['attribute']}={spec['group']!r}: " + (", ".join(opts) or "no option on")
    return (
        "Synthetic facial expressions (fer_sklearn.datasets.make_synthetic_faces)\n"
        "---------------------------------------------------------------------\n"
        f"{n} procedural grayscale faces of {size}x{size} pixels, difficulty {difficulty:g}.\n"
        "Expressions are drawn as facial actions (brows, lids, mouth, nose wrinkle,\n"
        "upper-lip raise) with a per-face intensity and blends toward neighbouring\n"
        "classes; nuisances: head pose, face shape, lighting, contrast, blur, noise,\n"
        "background, glasses / sunglasses / bar occluders.\n"
        f"Class shares: {shares}.\n"
        "Group attributes (independent of the label): tone (light/medium/dark skin\n"
        "luminance), age (young/adult/old wrinkle texture, greying hair).\n"
        f"Injected bias: {bias_txt}.\n"
        + ("Masks: brows, eyes, nose, mouth, evidence, occluder.\n" if masks else "")
    )


def plot_face_grid(
    data,
    target,
    n_per_class=6,
    ax=None,
    *,
    class_names=None,
    random_state=None,
    title=None,
    cmap="gray",
):
    """Show a grid of example faces, one row per class.

    Uses matplotlib's object-oriented API with the Agg canvas (no pyplot, no
    window, no global backend change).

    Parameters
    ----------
    data : array of shape (n, H, W) or (n, H*W)
        Images (uint8 or float).
    target : array of shape (n,)
        Labels: class names, or integer ids into :data:`EMOTIONS`.
    n_per_class : int, default=6
        Columns: examples shown per class (fewer available are left blank).
    ax : matplotlib Axes or None, default=None
        Draw the grid as one mosaic into this Axes; a new Figure otherwise.
    class_names : sequence of str or None
        Rows to show, in order; default: the classes present, in
        :data:`EMOTIONS` order (others after, sorted).
    random_state : int or None, default=None
        None shows the first examples of each class; a seed samples them.
    title : str or None
        Figure title.
    cmap : str, default="gray"

    Returns
    -------
    matplotlib.figure.Figure
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    data = np.asarray(data)
    target = np.asarray(target)
    if not is_whole(n_per_class):
        raise ValueError(BAD_N_PER_CLASS.format(value=n_per_class))
    if data.ndim == 2:
        side = int(round(np.sqrt(data.shape[1])))
        if side * side != data.shape[1]:
            raise ValueError(BAD_GRID_INPUT.format(shape=data.shape, n_labels=len(target)))
        data = data.reshape(len(data), side, side)
    if data.ndim != 3 or target.ndim != 1 or len(target) != len(data):
        raise ValueError(BAD_GRID_INPUT.format(shape=data.shape, n_labels=target.size))
    if np.issubdtype(target.dtype, np.integer):
        target = np.asarray(EMOTIONS)[target]
    target = target.astype(str)
    if class_names is None:
        present = present_target_names(target)
        others = sorted(set(np.unique(target).tolist()) - set(present))
        class_names = list(present) + others
    class_names = [str(c) for c in class_names]

    h, w = data.shape[1:]
    scale = 255.0 if data.dtype == np.uint8 else 1.0
    gap = 2
    mosaic = np.full((len(class_names) * (h + gap) - gap, n_per_class * (w + gap) - gap), np.nan)
    rng = np.random.default_rng(random_state) if random_state is not None else None
    counts = []
    for r, name in enumerate(class_names):
        idx = np.flatnonzero(target == name)
        counts.append(len(idx))
        if rng is not None and len(idx) > n_per_class:
            idx = np.sort(rng.choice(idx, n_per_class, replace=False))
        for c, i in enumerate(idx[:n_per_class]):
            mosaic[r * (h + gap): r * (h + gap) + h, c * (w + gap): c * (w + gap) + w] = (
                data[i] / scale
            )

    if ax is None:
        fig = Figure(
            figsize=(1.6 + 0.9 * n_per_class, 0.5 + 0.9 * len(class_names)),
            dpi=100,
            layout="constrained",
        )
        FigureCanvasAgg(fig)
        ax = fig.add_subplot(1, 1, 1)
    fig = ax.figure
    cm = __import__("matplotlib").colormaps[cmap].with_extremes(bad="white")
    ax.imshow(np.ma.masked_invalid(mosaic), cmap=cm, vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_yticks([r * (h + gap) + h / 2 for r in range(len(class_names))])
    ax.set_yticklabels([f"{name} ({k})" for name, k in zip(class_names, counts)])
    ax.set_xticks([])
    for side in ("top", "right", "bottom", "left"):
        ax.spines[side].set_visible(False)
    ax.tick_params(left=False)
    if title is not None:
        fig.suptitle(title)
    return fig
