"""The shapes world's analytic detector and colour classifier, feeding the very same GenEval rules.

Why it works without learning: every object is one flat palette colour on a flat grey, so a pixel's
offset from the background, d = pixel - background, points along (colour - grey) whatever the
anti-aliasing, blur or contrast loss (all three mix a colour with the grey, which only shortens d).
Pixels are assigned to the palette colour whose direction d is closest to, grouped into 8-connected
components per colour, and each component's coverage is its projection on that direction over the
component's peak. Shape then follows from two scale-free numbers: fill = soft area / (soft width x soft
height) (circle pi/4, square 1, triangle and diamond 1/2) and the vertical centroid within the box
(1/2, except 2/3 for the upward triangle, whose mass sits low).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from miro.data.shapes import PALETTE, ShapesWorldConfig
from miro.detection import ColorClassifier, Detection, Detections, Detector
from miro.errors import unknown_name_error

# (fill, vertical centroid) of each shape drawn clean; measured fills sit a little above the continuous
# values because the soft extents miss the thin tips of curves and apexes.
PROTOTYPES: dict[str, tuple[float, float]] = {
    "circle": (0.80, 0.50),
    "square": (1.00, 0.50),
    "triangle": (0.55, 0.64),
    "diamond": (0.55, 0.50),
}
_SPREAD = np.array([0.06, 0.04])  # typical deviation of (fill, centroid) on clean 32 px shapes
_NEIGHBOURS = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)]


def border_ring(images: np.ndarray) -> np.ndarray:
    """(B, H, W, C) -> (B, P, C): the one-pixel frame, walked around the image in order."""
    top, right = images[:, 0, :-1], images[:, :-1, -1]
    bottom, left = images[:, -1, :0:-1], images[:, :0:-1, 0]
    return np.concatenate([top, right, bottom, left], axis=1)


def background_color(images: np.ndarray) -> np.ndarray:
    """(B, 3): median colour of the frame, which objects rarely touch."""
    return np.median(border_ring(images), axis=1)


def noise_level(images: np.ndarray) -> np.ndarray:
    """(B,): robust per-pixel noise std from neighbouring frame pixels (MAD of differences / (0.6745 sqrt 2))."""
    ring = border_ring(images)
    steps = np.abs(np.diff(ring, axis=1)).reshape(len(images), -1)
    return np.median(steps, axis=1) / (0.6745 * np.sqrt(2))


def median3x3(images: np.ndarray) -> np.ndarray:
    """Per-channel 3 x 3 median of (B, H, W, C) with edge replication; removes noise, keeps edges."""
    h, w = images.shape[1:3]
    padded = np.pad(images, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="edge")
    stack = np.stack([padded[:, dy : dy + h, dx : dx + w] for dy in range(3) for dx in range(3)])
    return np.median(stack, axis=0)


def _label(colors: np.ndarray) -> np.ndarray:
    """8-connected components of equal colour index in (B, H, W) (-1 = background) -> ids 0..M-1, -1."""
    b, h, w = colors.shape
    fg = colors >= 0
    labels = np.where(fg, np.arange(b * h * w).reshape(b, h, w), -1)
    padded_colors = np.pad(colors, ((0, 0), (1, 1), (1, 1)), constant_values=-1)
    while True:
        padded = np.pad(labels, ((0, 0), (1, 1), (1, 1)), constant_values=-1)
        grown = labels.copy()
        for dy, dx in _NEIGHBOURS:
            same = padded_colors[:, 1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w] == colors
            np.maximum(grown, np.where(same & fg, padded[:, 1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w], -1), out=grown)
        flat = grown.reshape(-1)
        inside = flat >= 0
        flat[inside] = np.maximum(flat[inside], flat[flat[inside]])  # pointer jumping: labels are pixel ids
        if np.array_equal(grown, labels):
            break
        labels = grown
    ids = np.full(labels.shape, -1)
    ids[fg] = np.unique(labels[fg], return_inverse=True)[1]
    return ids


@dataclass(frozen=True)
class Components:
    """Every colour component of a batch: per-pixel maps and one row per component (arrays of length M)."""

    labels: np.ndarray  # (B, H, W) component id, -1 for background
    half: np.ndarray  # (B, H, W) coverage >= 1/2 of the component's peak (the object's extent)
    image: np.ndarray  # (M,) batch index
    color: np.ndarray  # (M,) palette index
    mass: np.ndarray  # (M,) sum of coverage x strength: area in full-colour pixels, blur-invariant
    strength: np.ndarray  # (M,) peak offset as a fraction of the palette colour's offset (1 = full contrast)
    box: np.ndarray  # (M, 4) x1, y1, x2 + 1, y2 + 1 of the half-coverage pixels
    fill: np.ndarray  # (M,) soft area / (soft width x soft height)
    centroid: np.ndarray  # (M,) vertical centre of mass within the box, 0 top, 1 bottom
    touches_border: np.ndarray  # (M,) bool


def _reduce(op: np.ufunc, values: np.ndarray, keys: np.ndarray, n: int) -> np.ndarray:
    """op over values grouped by integer keys in 0..n-1 (every key present)."""
    order = np.argsort(keys, kind="stable")
    starts = np.flatnonzero(np.r_[True, np.diff(keys[order]) != 0])
    out = op.reduceat(values[order], starts)
    assert len(out) == n
    return out


def _column_max_sum(comp: np.ndarray, pos: np.ndarray, cov: np.ndarray, n: int, size: int) -> np.ndarray:
    """Sum over columns (or rows) of the max coverage in each: the soft extent of each component."""
    key = comp * size + pos
    uniq, inverse = np.unique(key, return_inverse=True)
    peaks = np.zeros(len(uniq))
    np.maximum.at(peaks, inverse, cov)
    return np.bincount(uniq // size, peaks, minlength=n)


def find_components(images: np.ndarray, colors: tuple[str, ...], background: float) -> Components:
    """Segment (B, H, W, 3) float images in [0, 1] into components of the given palette colours.

    Noisy images (estimated std > 0.02) are median-filtered first. A pixel joins colour k when its offset
    from the frame's median colour lies within ~40 degrees of (palette_k - background) and its projection
    exceeds max(0.05, 3 x the remaining noise).
    """
    b, h, w, _ = images.shape
    sigma = noise_level(images)
    noisy = sigma > 0.02
    if noisy.any():
        images = images.copy()
        images[noisy] = median3x3(images[noisy])
        sigma = noise_level(images)
    offset = images - background_color(images)[:, None, None, :]  # (B, H, W, 3)
    directions = np.array([PALETTE[c] for c in colors]) - background  # (K, 3)
    reach = np.linalg.norm(directions, axis=1)  # (K,)
    proj = offset @ (directions / reach[:, None]).T  # (B, H, W, K)
    best = proj.argmax(axis=-1)  # (B, H, W): at a fixed |offset| the largest projection is the smallest angle
    along = np.take_along_axis(proj, best[..., None], -1)[..., 0]  # (B, H, W)
    cosine = along / (np.linalg.norm(offset, axis=-1) + 1e-8)
    ok = (cosine > 0.75) & (along > np.maximum(0.05, 3 * sigma)[:, None, None])
    labels = _label(np.where(ok, best, -1))
    n = int(labels.max()) + 1
    bi, yi, xi = np.nonzero(labels >= 0)
    comp = labels[bi, yi, xi]
    value = along[bi, yi, xi]
    peak = _reduce(np.maximum, value, comp, n)
    cov = np.clip(value / peak[comp], 0.0, 1.0)
    half_px = cov >= 0.5
    area = np.bincount(comp, cov, minlength=n)
    x1 = _reduce(np.minimum, np.where(half_px, xi, w), comp, n)
    y1 = _reduce(np.minimum, np.where(half_px, yi, h), comp, n)
    x2 = _reduce(np.maximum, np.where(half_px, xi, -1), comp, n) + 1
    y2 = _reduce(np.maximum, np.where(half_px, yi, -1), comp, n) + 1
    soft_w = _column_max_sum(comp, xi, cov, n, w)
    soft_h = _column_max_sum(comp, yi, cov, n, h)
    centre_y = np.bincount(comp, cov * (yi + 0.5), minlength=n) / area
    edge = (xi == 0) | (yi == 0) | (xi == w - 1) | (yi == h - 1)
    color = _reduce(np.maximum, best[bi, yi, xi], comp, n)
    half = np.zeros((b, h, w), dtype=bool)
    half[bi, yi, xi] = half_px
    return Components(
        labels=labels,
        half=half,
        image=_reduce(np.maximum, bi, comp, n),
        color=color,
        mass=area * peak / reach[color],
        strength=peak / reach[color],
        box=np.stack([x1, y1, x2, y2], axis=1).astype(float),
        fill=area / (soft_w * soft_h),
        centroid=(centre_y - y1) / (y2 - y1),
        touches_border=_reduce(np.maximum, edge, comp, n).astype(bool),
    )
