"""NumPy ``.npz`` archives with x_train, y_train and optionally x_test, y_test.

Always read with ``allow_pickle=False``: object arrays (pickles) are refused, never loaded.
"""

from __future__ import annotations

import io
import zipfile

import numpy as np

from nn_core.data.dataset import Dataset, build_dataset
from nn_core.data.errors import DataError
from nn_core.data.validate import (
    DEFAULT_MAX_BYTES,
    Caps,
    Source,
    check_labels,
    check_pixels,
    check_same_length,
    read_source,
    to_images,
)
from nn_core.safe_read import ARCHIVE_ERRORS, NPY_MAGIC, read_npy, size_text, too_large

ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
KEYS = ("x_train", "y_train", "x_test", "y_test")
MAX_MEMBERS = 1000
HOW_TO_SAVE = "np.savez(path, x_train=x, y_train=y) with numeric arrays"


def load_npz(
    source: Source,
    *,
    name: str | None = None,
    test_fraction: float = 0.15,
    seed: int = 0,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_unzipped_bytes: int | None = None,
) -> Dataset:
    """Load an ``.npz`` with x_train, y_train and optional x_test, y_test.

    Parameters
    ----------
    source : str, PathLike, bytes or binary file-like
    name : str, optional
        Name for messages and ``Dataset.name``; defaults to the file name.
    test_fraction : float
        Held-out share when there is no x_test/y_test, in (0, 1).
    seed : int
        Seed of the held-out split.
    max_bytes : int
        Cap on the file size.
    max_unzipped_bytes : int, optional
        Cap on the arrays' total size; ``UNZIP_FACTOR * max_bytes`` by default.

    Returns
    -------
    Dataset
        x arrays may be stored as (N, H, W), (N, H, W, 1) or (N, H*W); unknown keys are
        ignored.
    """
    caps = Caps.of(max_bytes, max_unzipped_bytes)
    data, label = read_source(source, name=name, caps=caps)
    return parse_npz(data, name=label, test_fraction=test_fraction, seed=seed, caps=caps)


def parse_npz(data: bytes, *, name: str, test_fraction: float, seed: int, caps: Caps) -> Dataset:
    """Parse npz bytes into a Dataset (see :func:`load_npz`)."""
    arrays, all_keys = _read_arrays(data, name=name, max_bytes=caps.unzipped)
    for key in ("x_train", "y_train"):
        if key not in arrays:
            raise DataError(
                f"{name} has no '{key}' array (it holds: {_names(all_keys) or 'nothing'}). "
                f"Save it with {HOW_TO_SAVE}."
            )
    if ("x_test" in arrays) != ("y_test" in arrays):
        have, need = ("x_test", "y_test") if "x_test" in arrays else ("y_test", "x_test")
        raise DataError(
            f"{name} has '{have}' but no '{need}'. Save both, or neither to hold out part of "
            "the training set."
        )
    x_train, y_train = _pair(arrays, "train", name=name)
    x_test = y_test = None
    if "x_test" in arrays:
        x_test, y_test = _pair(arrays, "test", name=name)
    return build_dataset(
        x_train,
        y_train,
        x_test,
        y_test,
        name=name,
        test_fraction=test_fraction,
        seed=seed,
        official_source=f"x_test/y_test in {name}",
    )


def _pair(arrays: dict[str, np.ndarray], part: str, *, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Check and return (images (N, H, W) uint8, labels (N,)) for 'train' or 'test'."""
    x_key, y_key = f"x_{part}", f"y_{part}"
    x = to_images(arrays[x_key], name=name, key=x_key)
    x = check_pixels(x, name=f"{name} ({x_key})")
    y = check_labels(arrays[y_key], name=f"{name} ({y_key})")
    check_same_length(x, y, name=name, what=f"{x_key} vs {y_key}")
    return x, y


def _read_arrays(
    data: bytes, *, name: str, max_bytes: int
) -> tuple[dict[str, np.ndarray], list[str]]:
    """Open the archive without pickles; return the known arrays and all key names.

    Every member's ``.npy`` header is checked before any array memory is allocated, and no
    member is ever decompressed past ``max_bytes`` in all, whatever the archive's directory
    claims.
    """
    _check_magic(data, name=name)
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            infos = zf.infolist()
            if len(infos) > MAX_MEMBERS:
                raise DataError(
                    f"{name} holds {len(infos):,} entries; a data set needs only x_train, "
                    f"y_train, x_test and y_test. Save just those with {HOW_TO_SAVE}."
                )
            total = sum(info.file_size for info in infos)
            if total > max_bytes:
                raise too_large(DataError, name, f"its arrays take {size_text(total)}", max_bytes)
            members = {info.filename.removesuffix(".npy"): info for info in infos}
            arrays: dict[str, np.ndarray] = {}
            for key in KEYS:
                if key in members:
                    budget = max_bytes - sum(a.nbytes for a in arrays.values())
                    arrays[key] = read_npy(
                        zf,
                        members[key],
                        label=name,
                        max_bytes=budget,
                        error=DataError,
                        fix=f"Save plain numeric arrays with {HOW_TO_SAVE}.",
                    )
            return arrays, list(members)
    except DataError:
        raise
    except ARCHIVE_ERRORS as exc:
        raise DataError(
            f"{name} is not a readable .npz archive ({exc}). Save it again with {HOW_TO_SAVE}."
        ) from exc


def _check_magic(data: bytes, *, name: str) -> None:
    """Refuse anything that is not a zip archive, naming single .npy files."""
    if data.startswith(NPY_MAGIC):
        raise DataError(
            f"{name} is a single .npy array, not an .npz archive. Save the arrays together with "
            f"{HOW_TO_SAVE}."
        )
    if not data.startswith(ZIP_MAGIC):
        raise DataError(f"{name} is not an .npz archive. Save it with {HOW_TO_SAVE}.")


def _names(keys: list[str], show: int = 8) -> str:
    """Join up to ``show`` key names, saying how many more there are."""
    more = f" and {len(keys) - show:,} more" if len(keys) > show else ""
    return ", ".join(repr(k)[1:-1][:40] for k in keys[:show]) + more
