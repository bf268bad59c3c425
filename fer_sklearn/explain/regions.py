"""Facial regions of aligned face crops, and how attribution mass falls on them."""

import numpy as np

#: Region names, in report order.
REGION_NAMES = ("brows", "eyes", "nose", "mouth", "cheeks_jaw", "background")

BAD_MAPS = "maps must have shape (n, H, W); got {shape}."
BAD_REGIONS = (
    "regions must map names to bool masks of shape (H, W) or (n, H, W) matching the "
    "maps {shape}; {name!r} has shape {got}."
)


def template_regions(size=48):
    """Fixed regions for tightly cropped, aligned faces such as FER2013's.

    Boxes in fractions of the side (rows from the top): brows 0.19-0.36 x
    0.12-0.88, eyes 0.36-0.50 x 0.12-0.88, nose 0.50-0.66 x 0.33-0.67, mouth
    0.66-0.86 x 0.25-0.75; ``cheeks_jaw`` is the rest of the face ellipse
    (centre (0.5, 0.52), half-axes 0.44 x 0.50) and ``background`` everything
    else. Faces in FER2013 are roughly aligned, not exactly: read the template's
    shares as coarse.

    Parameters
    ----------
    size : int, default=48

    Returns
    -------
    dict of str -> bool ndarray (size, size)
    """
    r, c = np.mgrid[0:size, 0:size] / size

    def box(r0, r1, c0, c1):
        return (r >= r0) & (r < r1) & (c >= c0) & (c < c1)

    regions = {
        "brows": box(0.19, 0.36, 0.12, 0.88),
        "eyes": box(0.36, 0.50, 0.12, 0.88),
        "nose": box(0.50, 0.66, 0.33, 0.67),
        "mouth": box(0.66, 0.86, 0.25, 0.75),
    }
    face = ((c - 0.5) / 0.44) ** 2 + ((r - 0.52) / 0.50) ** 2 <= 1
    taken = np.zeros_like(face)
    for m in regions.values():
        taken |= m
    regions["cheeks_jaw"] = face & ~taken
    regions["background"] = ~face & ~taken
    return regions


def masks_to_regions(masks):
    """Per-face regions from a synthetic dataset's masks (``brows``, ``eyes``,
    ``nose``, ``mouth``; the rest of the image becomes ``cheeks_jaw`` and
    ``background`` is left empty, since the generator does not separate them)."""
    regions = {}
    taken = None
    for name in ("brows", "eyes", "nose", "mouth"):
        m = np.asarray(masks[name], dtype=bool)
        if taken is not None:
            m = m & ~taken  # each pixel belongs to one region
        regions[name] = m
        taken = m.copy() if taken is None else taken | m
    regions["cheeks_jaw"] = ~taken
    regions["background"] = np.zeros_like(taken)
    return regions


def region_shares(maps, regions):
    """Share of positive attribution mass per region.

    Parameters
    ----------
    maps : ndarray (n, H, W)
    regions : dict of name -> bool mask (H, W) shared by all faces, or (n, H, W)

    Returns
    -------
    dict
        ``raw``: {region: mean share of positive mass over faces};
        ``per_area``: over faces, the mean of each face's share divided by the
        region's share of that face's image (1 = as much as its size predicts;
        > 1 = concentrated there); None where the region has no area on any face.
    """
    maps = np.asarray(maps, dtype=np.float64)
    if maps.ndim != 3:
        raise ValueError(BAD_MAPS.format(shape=maps.shape))
    pos = np.clip(maps, 0, None)
    total = pos.sum((1, 2))
    total[total == 0] = 1.0
    raw, per_area = {}, {}
    for name, mask in regions.items():
        mask = np.asarray(mask, dtype=bool)
        if mask.shape not in (maps.shape[1:], maps.shape):
            raise ValueError(BAD_REGIONS.format(shape=maps.shape, name=name, got=mask.shape))
        m = np.broadcast_to(mask, maps.shape)
        share = (pos * m).sum((1, 2)) / total
        area = m.mean((1, 2))
        raw[name] = float(share.mean())
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = np.where(area > 0, share / np.where(area > 0, area, 1), np.nan)
        per_area[name] = float(np.nanmean(ratio)) if np.isfinite(ratio).any() else None
    return {"raw": raw, "per_area": per_area}
