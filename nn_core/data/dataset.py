"""The immutable labelled image data set every loader returns."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from nn_core.data.errors import DataError
from nn_core.data.split import stratified_split
from nn_core.data.validate import check_labels, check_same_length


def _read_only(a: np.ndarray, dtype: type) -> np.ndarray:
    """Return a read-only view of ``a`` as ``dtype`` (copying only to convert)."""
    if a.dtype == dtype and not a.flags.writeable:
        return a
    view = np.asarray(a, dtype=dtype).view()
    view.flags.writeable = False
    return view


@dataclass(frozen=True, eq=False)
class Dataset:
    """A labelled set of square grayscale images split into train and test.

    Attributes
    ----------
    x_train : ndarray of shape (n_train, H, W), uint8, read-only
    y_train : ndarray of shape (n_train,), int64 in 0..n_classes-1, read-only
    x_test : ndarray of shape (n_test, H, W), uint8, read-only
    y_test : ndarray of shape (n_test,), int64, read-only
    n_classes : int
    class_names : tuple of str
        One name per class; ``str(label)`` by default.
    name : str
        "MNIST" or the file/folder name.
    test_source : str
        Where the test part comes from, for people, e.g.
        "the official MNIST test set (10,000 images)".
    test_is_official : bool
        True when the test part is a separate official test set, False when held out.
    """

    x_train: np.ndarray = field(repr=False)
    y_train: np.ndarray = field(repr=False)
    x_test: np.ndarray = field(repr=False)
    y_test: np.ndarray = field(repr=False)
    n_classes: int
    class_names: tuple[str, ...] = field(default=())
    name: str = "dataset"
    test_source: str = ""
    test_is_official: bool = False

    def __post_init__(self) -> None:
        """Check shapes and dtypes, and freeze the arrays."""
        for key in ("x_train", "x_test"):
            x = np.asarray(getattr(self, key))
            if x.ndim != 3 or x.shape[1] != x.shape[2] or x.dtype != np.uint8:
                raise DataError(
                    f"{self.name}: {key} must be (N, H, W) uint8 with H == W, got {x.shape} "
                    f"{x.dtype}. Build data sets with the nn_core.data loaders."
                )
            object.__setattr__(self, key, _read_only(x, np.uint8))
        if self.x_train.shape[1:] != self.x_test.shape[1:]:
            raise DataError(
                f"{self.name}: train images are {self.x_train.shape[1:]} but test images are "
                f"{self.x_test.shape[1:]}. Both parts must have the same image size."
            )
        for key in ("y_train", "y_test"):
            y = _read_only(np.asarray(getattr(self, key)), np.int64)
            object.__setattr__(self, key, y)
        check_same_length(self.x_train, self.y_train, name=self.name, what="train")
        check_same_length(self.x_test, self.y_test, name=self.name, what="test")
        self._check_classes()

    def _check_classes(self) -> None:
        """Check labels against ``n_classes`` and fill the default class names."""
        for key in ("y_train", "y_test"):
            y = getattr(self, key)
            if y.size and (y.min() < 0 or y.max() >= self.n_classes):
                raise DataError(
                    f"{self.name}: {key} has labels outside 0..{self.n_classes - 1}. "
                    "Number the classes 0..n_classes-1."
                )
        if not self.class_names:
            object.__setattr__(self, "class_names", tuple(str(i) for i in range(self.n_classes)))
        elif len(self.class_names) != self.n_classes:
            raise DataError(
                f"{self.name}: {len(self.class_names)} class names for {self.n_classes} classes. "
                "Give one name per class."
            )

    @property
    def image_shape(self) -> tuple[int, int]:
        """(H, W) of every image."""
        return (int(self.x_train.shape[1]), int(self.x_train.shape[2]))

    @property
    def n_features(self) -> int:
        """Pixels per image, H * W."""
        return self.image_shape[0] * self.image_shape[1]

    def subset(self, n_train: int | None, seed: int = 0) -> Dataset:
        """Return a copy with a stratified subset of ``n_train`` training images.

        Parameters
        ----------
        n_train : int or None
            Training images to keep; None or ``>= len(y_train)`` returns ``self``.
        seed : int
            The same seed gives the same subset.

        Returns
        -------
        Dataset
            Exactly ``n_train`` training images, each class keeping its share (largest
            remainder rounding), in their original order; the test part is unchanged.
        """
        n = len(self.y_train)
        if n_train is None or n_train >= n:
            return self
        if n_train < 1:
            raise DataError(f"subset needs at least 1 training image, got n_train={n_train}.")
        idx = stratified_subset(self.y_train, n_train, np.random.default_rng(seed))
        return replace(self, x_train=self.x_train[idx], y_train=self.y_train[idx])


def stratified_subset(labels: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Pick exactly ``n`` indices so each class keeps its share.

    Parameters
    ----------
    labels : ndarray of shape (n_samples,), int
    n : int
        Number of indices, ``0 < n <= n_samples``.
    rng : numpy.random.Generator

    Returns
    -------
    ndarray of shape (n,), int64
        Sorted indices into ``labels``.
    """
    classes, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    exact = counts * (n / len(labels))
    quota = np.floor(exact).astype(np.int64)
    order = np.argsort(-(exact - quota), kind="stable")
    quota[order[: n - int(quota.sum())]] += 1
    picked = [
        rng.permutation(np.flatnonzero(inverse == c))[: quota[c]] for c in range(len(classes))
    ]
    return np.sort(np.concatenate(picked)).astype(np.int64)


def percent(fraction: float) -> str:
    """Format 0.15 as '15%'."""
    return f"{fraction * 100:g}%"


def build_dataset(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray | None = None,
    y_test: np.ndarray | None = None,
    *,
    name: str,
    test_fraction: float = 0.15,
    seed: int = 0,
    official_source: str = "",
) -> Dataset:
    """Assemble a Dataset from checked arrays, holding out a test part when none is given.

    Parameters
    ----------
    x_train : ndarray of shape (n, H, W), uint8
    y_train : ndarray of shape (n,), int64 (already checked by ``check_labels``)
    x_test, y_test : ndarray of shape (m, H, W) and (m,), optional
        An official test set; when None, a stratified ``test_fraction`` of train is held out.
    name : str
        For messages and ``Dataset.name``.
    test_fraction : float
        In (0, 1); only used without an official test set.
    seed : int
        Seed of the held-out split.
    official_source : str
        Where the official test set comes from, e.g. "t10k-images-idx3-ubyte".

    Returns
    -------
    Dataset
    """
    y_train = check_labels(y_train, name=name)
    n_classes = int(y_train.max()) + 1
    if len(np.unique(y_train)) < 2:
        raise DataError(
            f"{name}: every training label is {int(y_train[0])}, so there is nothing to learn. "
            "A classifier needs images of at least two classes."
        )
    if x_test is not None and y_test is not None:
        return _with_test(x_train, y_train, x_test, y_test, n_classes, name, official_source)
    return _with_held_out(x_train, y_train, n_classes, name, test_fraction, seed)


def _with_test(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    n_classes: int,
    name: str,
    official_source: str,
) -> Dataset:
    """Dataset with an official test part, checking its image size and its labels against
    train's."""
    if x_test.shape[1:] != x_train.shape[1:]:
        raise DataError(
            f"{name}: training images are {_size(x_train)} but test images are "
            f"{_size(x_test)}. Both must have the same size."
        )
    y_test = check_labels(y_test, name=f"{name} (test labels)")
    if y_test.size and y_test.max() >= n_classes:
        raise DataError(
            f"{name}: the test labels include class {int(y_test.max())}, but the training labels "
            f"only go up to {n_classes - 1}. Train and test must use the same classes; check that "
            "the files belong together."
        )
    source = official_source or f"the test set in {name}"
    return Dataset(
        x_train,
        y_train,
        x_test,
        y_test,
        n_classes,
        name=name,
        test_source=f"{source} ({len(y_test):,} images)",
        test_is_official=True,
    )


def _size(images: np.ndarray) -> str:
    """An image array's image size as text, e.g. "28x28"."""
    return "x".join(str(side) for side in images.shape[1:])


def _with_held_out(
    x: np.ndarray, y: np.ndarray, n_classes: int, name: str, fraction: float, seed: int
) -> Dataset:
    """Dataset whose test part is a stratified held-out share of the training data."""
    if not 0.0 < fraction < 1.0:
        raise DataError(
            f"test_fraction must be between 0 and 1 (e.g. 0.15), got {fraction}; {name} has no "
            "separate test set, so part of it must be held out."
        )
    kept, held = stratified_split(y, fraction, np.random.default_rng(seed))
    if held.size == 0 or kept.size == 0:
        raise DataError(
            f"{name} has too few images ({len(y)}) to hold out {percent(fraction)} as a test set. "
            "Use a larger file, or give a separate test set."
        )
    return Dataset(
        x[kept],
        y[kept],
        x[held],
        y[held],
        n_classes,
        name=name,
        test_source=f"a stratified {percent(fraction)} held out from {name} ({len(held):,} images)",
        test_is_official=False,
    )
