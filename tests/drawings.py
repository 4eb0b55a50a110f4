"""Canvas drawings for tests and measurements: MNIST digits re-drawn with the Draw page's
brush, and things that are not digits (dots, lines, scribbles, blobs).

Every function returns what the Draw page's canvas hands to Python: a ``(280, 280, 4)``
uint8 RGBA image, a white stroke on an opaque black background, drawn with a round brush
of ``BRUSH`` pixels and anti-aliased edges.

A digit is re-drawn the way a person would trace it: the MNIST image is enlarged, thinned
to its centre line (the pen's path), and that path is stamped with the round brush at a
random size (by default 100 to 250 px; the canvas is 280) and place.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

CANVAS = 280
BRUSH = 18  # the Draw page's stroke_width
_UPSCALE = 4  # the MNIST digit is thinned at 4x (112x112), where its centre line is smooth


# --------------------------------------------------------------------------- digits
def redraw_digit(
    digit: np.ndarray, rng: np.random.Generator, sizes: tuple[float, float] = (100, 250)
) -> np.ndarray:
    """An MNIST digit traced on the canvas with the round brush.

    Parameters
    ----------
    digit : ndarray of shape (28, 28), uint8
    rng : numpy Generator
        Picks the drawing's size and its place on the canvas.
    sizes : (float, float)
        Range of the drawing's longer side in pixels (the canvas is 280).

    Returns
    -------
    ndarray of shape (280, 280, 4), uint8
    """
    big = Image.fromarray(digit).resize((28 * _UPSCALE,) * 2, Image.Resampling.BILINEAR)
    path = np.argwhere(thin(np.asarray(big) > 100)).astype(np.float64)  # (n, 2) row, col
    if len(path) == 0:
        return _rgba(np.zeros((CANVAS, CANVAS), np.uint8))
    low, high = path.min(0), path.max(0)
    size = rng.uniform(*sizes)
    scale = (size - BRUSH) / max(float((high - low).max()), 1.0)
    extent = (high - low) * scale + BRUSH
    corner = rng.uniform(0, np.maximum(CANVAS - extent, 0) + 1e-9)
    points = (path - low) * scale + corner + BRUSH / 2
    return _rgba(_stamp(points[:, ::-1]))  # (x, y) for PIL


def thin(mask: np.ndarray) -> np.ndarray:
    """Zhang-Suen thinning of a 2-D boolean mask to one-pixel-wide lines.

    Parameters
    ----------
    mask : ndarray of shape (H, W), bool

    Returns
    -------
    ndarray of shape (H, W), bool
    """
    m = np.pad(mask.astype(np.uint8), 1)
    while True:
        changed = False
        for first in (True, False):
            p = _neighbours(m)  # north, then clockwise
            count = sum(p)
            crossings = sum((p[i] == 0) & (p[(i + 1) % 8] == 1) for i in range(8))
            n, e, s, w = p[0], p[2], p[4], p[6]
            if first:
                side = (n * e * s == 0) & (e * s * w == 0)
            else:
                side = (n * e * w == 0) & (n * s * w == 0)
            drop = (m == 1) & (count >= 2) & (count <= 6) & (crossings == 1) & side
            if drop.any():
                m[drop] = 0
                changed = True
        if not changed:
            return m[1:-1, 1:-1].astype(bool)


def _neighbours(m: np.ndarray) -> list[np.ndarray]:
    """The 8 neighbours of every pixel of a zero-padded array, north first, clockwise."""
    p = np.pad(m, 1)
    h, w = m.shape
    offsets = [(0, 1), (0, 2), (1, 2), (2, 2), (2, 1), (2, 0), (1, 0), (0, 0)]
    return [p[dy : dy + h, dx : dx + w] for dy, dx in offsets]


# --------------------------------------------------------------------------- not digits
def dot(rng: np.random.Generator) -> np.ndarray:
    """One to three taps of the brush close together, anywhere on the canvas."""
    centre = rng.uniform(30, CANVAS - 30, 2)
    taps = centre + rng.uniform(-12, 12, (int(rng.integers(1, 4)), 2))
    return _rgba(_stamp(taps))


def line(rng: np.random.Generator, min_from_vertical: float = 60.0) -> np.ndarray:
    """A straight stroke 100..240 px long, at least ``min_from_vertical`` degrees from
    vertical (MNIST's own ones lean up to about 50 degrees; a steeper line is a 1)."""
    angle = np.deg2rad(rng.uniform(min_from_vertical, 180 - min_from_vertical))
    half = rng.uniform(100, 240) / 2 * np.array([np.sin(angle), np.cos(angle)])  # (x, y)
    centre = rng.uniform(125, 155, 2)
    return _rgba(_stroke([centre - half, centre + half]))


def scribble(rng: np.random.Generator, n_points: tuple[int, int] = (14, 25)) -> np.ndarray:
    """A tangle: one stroke through 14..24 random points of a squarish box 120..240 px,
    its corners rounded (one round of Chaikin corner cutting)."""
    width = rng.uniform(120, 240)
    size = np.array([width, rng.uniform(0.7 * width, 240)])
    centre = rng.uniform(size / 2 + 10, CANVAS - size / 2 - 10)
    points = centre + rng.uniform(-size / 2, size / 2, (int(rng.integers(*n_points)), 2))
    cut = np.stack([0.75 * points[:-1] + 0.25 * points[1:], 0.25 * points[:-1] + 0.75 * points[1:]])
    return _rgba(_stroke(cut.transpose(1, 0, 2).reshape(-1, 2)))


def blob(rng: np.random.Generator) -> np.ndarray:
    """A filled shape 60..220 px across, at least half as wide as long: an ellipse or a
    rounded polygon (what colouring in, or pressing a finger flat, leaves)."""
    size = rng.uniform(60, 220)
    cx, cy = rng.uniform(size / 2 + 5, CANVAS - size / 2 - 5, 2)
    image = Image.new("L", (CANVAS, CANVAS), 0)
    draw = ImageDraw.Draw(image)
    if rng.random() < 0.5:
        a, b = size / 2, size / 2 * rng.uniform(0.5, 1.0)
        draw.ellipse([cx - a, cy - b, cx + a, cy + b], fill=255)
    else:
        n = int(rng.integers(5, 9))
        angles = np.linspace(0, 2 * np.pi, n, endpoint=False) + rng.uniform(-0.3, 0.3, n)
        radii = size / 2 * rng.uniform(0.7, 1.0, n)
        draw.polygon(list(zip(cx + radii * np.cos(angles), cy + radii * np.sin(angles))), fill=255)
    return _rgba(np.asarray(image.filter(ImageFilter.GaussianBlur(0.7))))


NON_DIGITS = {"dot": dot, "line": line, "scribble": scribble, "blob": blob}


# --------------------------------------------------------------------------- drawing
def _stroke(points) -> np.ndarray:
    """One brush stroke through ``points`` ((n, 2) x, y): round joints and round ends."""
    image = Image.new("L", (CANVAS, CANVAS), 0)
    draw = ImageDraw.Draw(image)
    xy = [(float(x), float(y)) for x, y in points]
    draw.line(xy, fill=255, width=BRUSH, joint="curve")
    _discs(draw, [xy[0], xy[-1]])
    return np.asarray(image.filter(ImageFilter.GaussianBlur(0.7)))


def _stamp(points) -> np.ndarray:
    """The round brush pressed at every point of ``points`` ((n, 2) x, y)."""
    image = Image.new("L", (CANVAS, CANVAS), 0)
    _discs(ImageDraw.Draw(image), [(float(x), float(y)) for x, y in points])
    return np.asarray(image.filter(ImageFilter.GaussianBlur(0.7)))


def _discs(draw: ImageDraw.ImageDraw, centres) -> None:
    r = BRUSH / 2
    for x, y in centres:
        draw.ellipse([x - r, y - r, x + r, y + r], fill=255)


def _rgba(gray: np.ndarray) -> np.ndarray:
    """A gray stroke image as the canvas's opaque RGBA (white stroke on black)."""
    out = np.empty((*gray.shape, 4), np.uint8)
    out[..., :3] = gray[..., None]
    out[..., 3] = 255
    return out
