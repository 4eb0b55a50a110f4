"""Is a canvas drawing a digit at all? Say so when it is too small or unlike MNIST's digits.

A network trained on MNIST has to answer one of its ten classes for anything it is shown,
often with high confidence: a dot becomes a confident "8". These checks look at the
drawing itself, not at the network, and each names one way a drawing can fail to be a
digit:

- too small: the ink spans less than ``MIN_EXTENT`` of the canvas, so scaling it up to
  MNIST's 20-pixel box turns the pen's width into a blob;
- a flat line: the ink is a thin bar leaning more than ``LINE_MIN_ANGLE`` degrees from
  vertical (MNIST's steepest ones lean about 50 degrees; a steeper bar is a 1);
- filled in: ink much thicker than the pen that drew it (``MAX_EXTRA_THICKNESS``);
- a scribble: more pen travel than any digit needs, ``MAX_INK_LENGTH`` times the drawing's
  size;
- unlike the training digits: far from the nearest MNIST training digits
  (``DigitReference``: distances between principal-component coordinates), or fairly far
  with a lot of ink.

The thresholds were set on MNIST *training* digits re-drawn on the canvas and are checked
on *test* digits re-drawn the same way (``benchmarks/drawing_check.py`` measures the false
alarms and the detection of dots, lines, scribbles and blobs; tests/test_preprocess.py
bounds them).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from nn_core.preprocess import BOX, drawing_strength, ink_box

# Smallest drawing, as a share of the canvas's shorter side (70 px of the app's 280).
MIN_EXTENT = 0.25
# A bar: minor/major axis ratio of the ink below this, and its long axis more than
# LINE_MIN_ANGLE degrees from vertical.
LINE_MAX_ELONGATION = 0.2
LINE_MIN_ANGLE = 55.0
# Filled in: the ink of the 28x28 image survives more 3x3 erosions than the pen's own
# half-width (in those pixels) plus this many. Pen lines survive at most half their width.
MAX_EXTRA_THICKNESS = 2.0
# Pen travel (ink area / brush width) over the drawing's longer side: digits need at most
# about 3.6 (an 8 drawn twice over would need more).
MAX_INK_LENGTH = 3.8
# Distance to the nearest training digits: mean of the K_NEIGHBOURS nearest, in the space
# of the first N_COMPONENTS principal components (pixels scaled to 0..1). A drawing is
# unlike them when that distance is above KNN_THRESHOLD, or when both its ink and its
# distance are high: ink_length / INK_SCALE + knn_distance / KNN_SCALE > 2.
N_COMPONENTS = 40
K_NEIGHBOURS = 5
KNN_THRESHOLD = 6.3
INK_SCALE = 3.4
KNN_SCALE = 5.3

_ADVICE = "The network must still pick one of its ten digits, so its answer means little here."


@dataclass(frozen=True)
class DrawingCheck:
    """The verdict on one drawing.

    Attributes
    ----------
    reason : str or None
        None for a drawing that looks like a digit; else "too_small", "line", "filled",
        "scribble" or "unlike".
    message : str
        One sentence for the user (empty when ``reason`` is None).
    scores : dict
        The measured values behind the verdict (see ``shape_scores``, and knn_distance),
        for display and tests.
    """

    reason: str | None
    message: str = ""
    scores: dict = field(default_factory=dict)

    @property
    def looks_like_a_digit(self) -> bool:
        return self.reason is None


@dataclass(frozen=True)
class DigitReference:
    """MNIST training digits in principal-component space, for nearest-neighbour distances.

    Attributes
    ----------
    mean : ndarray of shape (784,), float32
        Mean training image (pixels in 0..1).
    components : ndarray of shape (784, N_COMPONENTS), float32
        Orthonormal principal directions.
    points : ndarray of shape (n_reference, N_COMPONENTS), float32
        The reference digits' coordinates.
    squared_norms : ndarray of shape (n_reference,), float32
        ``(points**2).sum(axis=1)``, kept for the distances.
    """

    mean: np.ndarray
    components: np.ndarray
    points: np.ndarray
    squared_norms: np.ndarray

    @classmethod
    def from_images(
        cls, images: np.ndarray, n_reference: int = 20_000, n_fit: int = 6_000
    ) -> DigitReference:
        """Build the reference from training images (deterministic: evenly spaced picks).

        Parameters
        ----------
        images : ndarray of shape (n, 28, 28) or (n, 784), uint8
            MNIST training images.
        n_reference : int
            How many of them to keep as neighbours.
        n_fit : int
            How many of them the principal components are computed from.
        """
        flat = np.asarray(images).reshape(len(images), -1)
        if flat.shape[1] != 784:
            raise ValueError(f"expected 28x28 images, got {flat.shape[1]} pixels each")
        fit = _as_unit(flat[_evenly_spaced(len(flat), n_fit)])
        mean = fit.mean(axis=0, dtype=np.float64).astype(np.float32)
        centred = fit - mean
        _, vectors = np.linalg.eigh(centred.T @ centred)
        components = np.ascontiguousarray(vectors[:, ::-1][:, :N_COMPONENTS], dtype=np.float32)
        picks = _evenly_spaced(len(flat), n_reference)
        points = np.concatenate(
            [(_as_unit(flat[chunk]) - mean) @ components for chunk in np.array_split(picks, 10)]
        )  # in chunks: a float copy of 20,000 images at once would take 63 MB
        squared_norms = (points**2).sum(axis=1)
        for array in (mean, components, points, squared_norms):
            array.setflags(write=False)
        return cls(mean, components, points, squared_norms)

    def distance(self, images: np.ndarray) -> np.ndarray:
        """Mean Euclidean distance to the ``K_NEIGHBOURS`` nearest reference digits.

        Parameters
        ----------
        images : ndarray of shape (n, 28, 28) or (n, 784), uint8 0..255

        Returns
        -------
        ndarray of shape (n,), float64
        """
        flat = np.asarray(images).reshape(len(images), -1)
        query = (_as_unit(flat) - self.mean) @ self.components  # (n, N_COMPONENTS)
        squared = (query**2).sum(axis=1)[:, None] - 2 * query @ self.points.T + self.squared_norms
        nearest = np.partition(squared, K_NEIGHBOURS - 1, axis=1)[:, :K_NEIGHBOURS]
        return np.sqrt(np.maximum(nearest, 0)).mean(axis=1).astype(np.float64)


def check_drawing(
    rgba: np.ndarray,
    image: np.ndarray,
    reference: DigitReference | None = None,
    brush: float = 18.0,
) -> DrawingCheck:
    """Say whether a canvas drawing looks like a digit, and if not, why.

    Parameters
    ----------
    rgba : ndarray of shape (H, W, 4)
        The canvas, as given to ``preprocess_drawing``.
    image : ndarray of shape (28, 28), uint8
        ``preprocess_drawing(rgba)``: what the network sees.
    reference : DigitReference, optional
        Training digits for the "unlike" check; without it that check is skipped.
    brush : float
        The canvas's stroke width in pixels.

    Returns
    -------
    DrawingCheck
    """
    strength = drawing_strength(rgba)
    box = ink_box(strength)
    if box is None:
        return DrawingCheck("too_small", "The canvas is empty: draw a digit.", {})
    scores = shape_scores(strength, box, image, brush)
    if reference is not None:
        scores["knn_distance"] = float(reference.distance(image[None])[0])
    reason = _first_failure(scores)
    if reason is None:
        return DrawingCheck(None, "", scores)
    return DrawingCheck(reason, _message(reason, scores, strength.shape), scores)


def shape_scores(
    strength: np.ndarray, box: tuple[int, int], image: np.ndarray, brush: float
) -> dict[str, float]:
    """The measurements behind ``check_drawing``, except the reference distance.

    Parameters
    ----------
    strength : ndarray of shape (H, W)
        ``drawing_strength`` of the canvas (0..255).
    box : (int, int)
        ``ink_box(strength)``: height and width of the ink.
    image : ndarray of shape (28, 28), uint8
        The preprocessed drawing.
    brush : float
        Stroke width in canvas pixels.

    Returns
    -------
    dict
        extent (longer side of the ink / the canvas's shorter side), ink_length (ink area /
        brush / longer side), elongation and angle (``_axes``), thickness (3x3 erosions
        the 28x28 ink survives) and pen_width (the brush in 28x28 pixels).
    """
    longest = max(box)
    elongation, angle = _axes(image)
    return {
        "extent": longest / min(strength.shape),
        "ink_length": float(strength.sum(dtype=np.float64)) / 255.0 / (brush * longest),
        "elongation": elongation,
        "angle": angle,
        "thickness": float(_thickness(image > 127)),
        "pen_width": brush * BOX / longest,
    }


# --------------------------------------------------------------------------- internals
def _first_failure(scores: dict[str, float]) -> str | None:
    if scores["extent"] < MIN_EXTENT:
        return "too_small"
    if scores["elongation"] < LINE_MAX_ELONGATION and scores["angle"] > LINE_MIN_ANGLE:
        return "line"
    if scores["thickness"] - scores["pen_width"] / 2 > MAX_EXTRA_THICKNESS:
        return "filled"
    if scores["ink_length"] > MAX_INK_LENGTH:
        return "scribble"
    distance = scores.get("knn_distance")
    if distance is not None and (
        distance > KNN_THRESHOLD or scores["ink_length"] / INK_SCALE + distance / KNN_SCALE > 2
    ):
        return "unlike"
    return None


def _message(reason: str, scores: dict[str, float], shape: tuple[int, ...]) -> str:
    side = min(shape[:2])
    what = {
        "too_small": (
            f"This drawing is tiny ({scores['extent'] * side:.0f} of {side} pixels across): "
            "draw the digit large, filling most of the box."
        ),
        "line": "This looks like a flat line, and no MNIST digit looks like that.",
        "filled": "This looks filled in; MNIST digits are drawn with a pen line.",
        "scribble": "This looks like a scribble: it has far more ink than any digit needs.",
        "unlike": "This looks unlike the handwritten MNIST digits the network learned from.",
    }[reason]
    return f"{what} {_ADVICE}"


def _axes(image: np.ndarray) -> tuple[float, float]:
    """Minor/major axis ratio of the ink (0 = a line, 1 = round) and the major axis's
    angle from vertical in degrees (0..90), from the intensity's second moments."""
    weight = image.astype(np.float64)
    total = weight.sum()
    if total <= 0:
        return 1.0, 0.0
    rows, cols = np.indices(image.shape)
    dy = rows - (weight * rows).sum() / total
    dx = cols - (weight * cols).sum() / total
    syy, sxx, sxy = ((weight * a * b).sum() / total for a, b in ((dy, dy), (dx, dx), (dy, dx)))
    half_gap = np.hypot((syy - sxx) / 2, sxy)
    major, minor = (syy + sxx) / 2 + half_gap, max((syy + sxx) / 2 - half_gap, 0.0)
    angle = abs(np.degrees(0.5 * np.arctan2(2 * sxy, syy - sxx)))
    return float(np.sqrt(minor / major)) if major > 0 else 1.0, float(angle)


def _thickness(mask: np.ndarray) -> int:
    """How many 3x3 erosions the ink survives (a 2-pixel pen line: 0 or 1)."""
    count = 0
    while mask.any():
        padded = np.pad(mask, 1)
        h, w = mask.shape
        eroded = np.ones_like(mask)
        for dy in range(3):
            for dx in range(3):
                eroded &= padded[dy : dy + h, dx : dx + w]
        mask = eroded
        count += int(mask.any())
    return count


def _as_unit(flat: np.ndarray) -> np.ndarray:
    return flat.astype(np.float32) * np.float32(1 / 255)


def _evenly_spaced(n: int, k: int) -> np.ndarray:
    return np.unique(np.linspace(0, n - 1, min(n, k)).astype(np.int64))
