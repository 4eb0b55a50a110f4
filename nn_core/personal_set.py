"""A person's own handwritten digits: a small labelled set, kept as arrays, saved as ``.npz``.

Each sample keeps the 28x28 image the network reads (``nn_core.preprocess``) and the canvas
as drawn, reduced to its brightness and downscaled to ``RAW_SIDE`` x ``RAW_SIDE`` pixels
(uint8, 19.6 kB a sample instead of the canvas's 313 kB of RGBA), so a drawing can be
shown, or preprocessed again, later.

File format: an ordinary ``.npz`` that the data loaders (``nn_core.data.load_dataset``)
and the command line (``--data my_digits.npz``) read as a data set:

``x_test``, ``y_test``
    Every sample: uint8 images (n, H, W) and int64 labels (n,). This is what
    ``python -m nn_core evaluate --data my_digits.npz`` scores.
``x_train``, ``y_train``
    The same samples again (the loaders require a training part; they are tiny).
``raw_canvas``
    uint8 (n, RAW_SIDE, RAW_SIDE): the drawings as drawn, all zero where unknown (a set
    made elsewhere). The loaders ignore it.

Reading goes through the data loaders (no pickles, sizes checked before anything is
decompressed); a file whose train and test parts differ (made elsewhere) gives all of
its samples.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass

import numpy as np
from PIL import Image

from nn_core.data import DataError, Dataset, load_dataset
from nn_core.data.validate import DEFAULT_MAX_BYTES
from nn_core.safe_read import ARCHIVE_ERRORS, read_bounded, read_npy

RAW_SIDE = 140
IMAGE_SHAPE = (28, 28)
RAW_KEY = "raw_canvas"
N_DIGITS = 10


@dataclass(frozen=True, eq=False)
class PersonalSet:
    """Labelled images of one person's handwriting, in the order they were added.

    Attributes
    ----------
    images : ndarray of shape (n, H, W), uint8
        What the network reads (H = W = 28 for drawings).
    labels : ndarray of shape (n,), int64
    raws : ndarray of shape (n, RAW_SIDE, RAW_SIDE), uint8
        The canvas as drawn (brightness, downscaled); all zero where not known.
    """

    images: np.ndarray
    labels: np.ndarray
    raws: np.ndarray

    def __post_init__(self) -> None:
        n = self.labels.shape[0]
        if self.images.shape[0] != n or self.raws.shape[0] != n:
            raise ValueError(
                f"need one label and one raw canvas per image, got {self.images.shape[0]} "
                f"images, {n} labels and {self.raws.shape[0]} canvases"
            )

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def image_shape(self) -> tuple[int, int]:
        return (int(self.images.shape[1]), int(self.images.shape[2]))

    def counts(self, n_classes: int = N_DIGITS) -> np.ndarray:
        """Samples per class, shape (max(n_classes, largest label + 1),), int64."""
        return np.bincount(self.labels, minlength=n_classes)


def empty_set(image_shape: tuple[int, int] = IMAGE_SHAPE) -> PersonalSet:
    """A set with no samples, for images of ``image_shape``."""
    return PersonalSet(
        np.zeros((0, *image_shape), np.uint8),
        np.zeros(0, np.int64),
        np.zeros((0, RAW_SIDE, RAW_SIDE), np.uint8),
    )


def add_sample(
    personal: PersonalSet, image: np.ndarray, label: int, raw: np.ndarray | None = None
) -> PersonalSet:
    """A new set with one more sample at the end.

    Parameters
    ----------
    personal : PersonalSet
    image : ndarray of shape (H, W), uint8
        Preprocessed; must have the set's image size.
    label : int
        Non-negative.
    raw : ndarray of shape (RAW_SIDE, RAW_SIDE), uint8, optional
        ``raw_from_canvas`` of the drawing; zeros when None.
    """
    image = np.asarray(image)
    if image.shape != personal.image_shape or image.dtype != np.uint8:
        raise ValueError(
            f"this set holds {_size(personal.image_shape)} uint8 images, got "
            f"{_size(image.shape)} {image.dtype}"
        )
    if int(label) < 0:
        raise ValueError(f"labels are non-negative class numbers, got {label}")
    raw = np.zeros((RAW_SIDE, RAW_SIDE), np.uint8) if raw is None else np.asarray(raw, np.uint8)
    if raw.shape != (RAW_SIDE, RAW_SIDE):
        raise ValueError(f"raw canvas must be {RAW_SIDE}x{RAW_SIDE}, got {raw.shape}")
    return PersonalSet(
        np.concatenate([personal.images, image[None]]),
        np.append(personal.labels, np.int64(label)),
        np.concatenate([personal.raws, raw[None]]),
    )


def remove_sample(personal: PersonalSet, index: int) -> PersonalSet:
    """A new set without sample ``index``."""
    _check_index(personal, index)
    return PersonalSet(
        np.delete(personal.images, index, axis=0),
        np.delete(personal.labels, index),
        np.delete(personal.raws, index, axis=0),
    )


def relabel_sample(personal: PersonalSet, index: int, label: int) -> PersonalSet:
    """A new set where sample ``index`` has the label ``label``."""
    _check_index(personal, index)
    if int(label) < 0:
        raise ValueError(f"labels are non-negative class numbers, got {label}")
    labels = personal.labels.copy()
    labels[index] = label
    return PersonalSet(personal.images, labels, personal.raws)


def _check_index(personal: PersonalSet, index: int) -> None:
    if not 0 <= index < len(personal):
        raise IndexError(f"no sample {index}: the set has {len(personal)}")


def raw_from_canvas(rgba: np.ndarray, side: int = RAW_SIDE) -> np.ndarray:
    """The canvas as drawn, kept small: its brightness, downscaled with area averaging.

    Parameters
    ----------
    rgba : ndarray of shape (H, W, 4), uint8
        A bright stroke on a dark (or transparent) background, as the Draw canvas gives.
    side : int

    Returns
    -------
    ndarray of shape (side, side), uint8
    """
    rgba = np.asarray(rgba)
    if rgba.ndim != 3 or rgba.shape[2] != 4:
        raise ValueError(f"expected an RGBA canvas of shape (H, W, 4), got {rgba.shape}")
    bright = rgba[..., :3].max(axis=2).astype(np.float32) * (rgba[..., 3] / np.float32(255))
    image = Image.fromarray(np.clip(bright, 0, 255).astype(np.uint8), "L")
    return np.asarray(image.resize((side, side), Image.Resampling.BOX), dtype=np.uint8)


def _size(shape: tuple[int, ...]) -> str:
    return "x".join(str(int(s)) for s in shape)


# ------------------------------------------------------------------------ saving
def to_npz_bytes(personal: PersonalSet) -> bytes:
    """The set as ``.npz`` bytes in the data loaders' format (see the module docstring).

    Raises
    ------
    ValueError
        When the set has fewer than two classes: the loaders refuse such a file (a data set
        with one class has nothing to learn), so it could not be read back.
    """
    if len(np.unique(personal.labels)) < 2:
        raise ValueError(
            "Add digits of at least two kinds before saving: the data loaders read a set "
            "with two classes or more."
        )
    buffer = io.BytesIO()
    np.savez_compressed(
        buffer,
        x_train=personal.images,
        y_train=personal.labels,
        x_test=personal.images,
        y_test=personal.labels,
        **{RAW_KEY: personal.raws},
    )
    return buffer.getvalue()


def load_personal_set(
    source, *, name: str | None = None, max_bytes: int = DEFAULT_MAX_BYTES
) -> PersonalSet:
    """Read a personal set (or any labelled data set) through the data loaders.

    Parameters
    ----------
    source : path, bytes or binary file-like (e.g. Streamlit's UploadedFile)
    name : str, optional
        For messages; defaults to the file name.
    max_bytes : int
        Cap on the file's size.

    Returns
    -------
    PersonalSet
        Every sample of the file (its test part when it equals its training part, else
        both), with the raw canvases when the file has them.

    Raises
    ------
    DataError
        For anything the loaders refuse, with their message.
    """
    label = name or getattr(source, "name", None) or "the uploaded set"
    data = read_bounded(
        source, label=str(label), max_bytes=max_bytes, error=DataError, kind="a .npz set"
    )
    dataset = load_dataset(data, name=str(label), max_bytes=max_bytes)
    images, labels, same = _all_samples(dataset)
    raws = _read_raws(data, len(labels)) if same else None
    if raws is None:
        raws = np.zeros((len(labels), RAW_SIDE, RAW_SIDE), np.uint8)
    return PersonalSet(np.array(images), np.array(labels, np.int64), raws)


def _all_samples(dataset: Dataset) -> tuple[np.ndarray, np.ndarray, bool]:
    """(images, labels, True) when the test part repeats the training part (a file saved
    here), else both parts together and False."""
    same = dataset.x_test.shape == dataset.x_train.shape and (
        np.array_equal(dataset.x_test, dataset.x_train)
        and np.array_equal(dataset.y_test, dataset.y_train)
    )
    if same:
        return dataset.x_test, dataset.y_test, True
    images = np.concatenate([dataset.x_train, dataset.x_test])
    return images, np.concatenate([dataset.y_train, dataset.y_test]), False


def _read_raws(data: bytes, n: int) -> np.ndarray | None:
    """The ``raw_canvas`` array of an .npz when it is (n, RAW_SIDE, RAW_SIDE) uint8, else
    None (absent or unusable raws are not an error: the images are what counts)."""
    expected = (n, RAW_SIDE, RAW_SIDE)

    def check(shape: tuple[int, ...], dtype: np.dtype) -> None:
        if shape != expected or dtype != np.uint8:
            raise DataError("raw canvases of another shape")

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            info = next((i for i in archive.infolist() if i.filename == f"{RAW_KEY}.npy"), None)
            if info is None:
                return None
            raws = read_npy(
                archive, info, label="raw canvases", max_bytes=n * RAW_SIDE**2,
                error=DataError, fix="", check=check,
            )  # fmt: skip
    except (DataError, *ARCHIVE_ERRORS):
        return None
    return np.array(raws)
