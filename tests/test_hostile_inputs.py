"""Hostile and malformed inputs: each loader fails with its own error type or works; none hangs.

Deterministic fuzzing (seeded generators, plain loops): valid files cut at many offsets and
with bytes flipped at many positions, random bytes, compression bombs, gigantic declared
shapes, pickles that would write a marker file, and the common CSV / .npz variants real
users produce. No case may hang.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import threading
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from nn_core.cli import main
from nn_core.data import (
    DataError,
    load_dataset,
    load_idx_images,
    load_idx_labels,
    load_kaggle_csv,
    load_npz,
    load_unlabelled_csv,
)
from nn_core.io import ModelFileError, load_model, save_model
from nn_core.network import MLP
from nn_core.preprocess import preprocess_drawing, preprocess_image

HANG_SECONDS = 120.0  # a case still running after this has hung
MARKER_NAME = "unpickled-marker"


# --------------------------------------------------------------------------- builders
def images(n: int = 30, side: int = 4, n_classes: int = 3, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, size=(n, side, side), dtype=np.uint8)
    return x, np.arange(n, dtype=np.int64) % n_classes


def csv_bytes(x: np.ndarray, y: np.ndarray | None = None) -> bytes:
    flat = x.reshape(len(x), -1)
    cols = [f"pixel{i}" for i in range(flat.shape[1])]
    rows = flat if y is None else np.column_stack([y, flat])
    header = ",".join(cols if y is None else ["label", *cols])
    lines = [header, *(",".join(str(int(v)) for v in row) for row in rows)]
    return ("\n".join(lines) + "\n").encode()


def idx_images(x: np.ndarray) -> bytes:
    head = (0x803).to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in x.shape)
    return head + x.astype(np.uint8).tobytes()


def idx_labels(y: np.ndarray) -> bytes:
    return (0x801).to_bytes(4, "big") + len(y).to_bytes(4, "big") + y.astype(np.uint8).tobytes()


def npz_bytes(compressed: bool = False, **arrays) -> bytes:
    buf = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buf, **arrays)
    return buf.getvalue()


def npy_bytes(array: np.ndarray, allow_pickle: bool = False) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=allow_pickle)
    return buf.getvalue()


def npy_header(shape: tuple, descr: str = "|u1") -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {"descr": descr, "fortran_order": False, "shape": shape}
    )
    return buf.getvalue()


def zip_members(members: dict[str, bytes], method: int = zipfile.ZIP_STORED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as zf:
        for name, content in members.items():
            zf.writestr(name, content)
    return buf.getvalue()


def model_bytes(compressed: bool = True) -> bytes:
    buf = io.BytesIO()
    save_model(buf, MLP(16, [8], 3, seed=0), image_shape=(4, 4))
    if compressed:
        return buf.getvalue()
    with np.load(io.BytesIO(buf.getvalue())) as npz:
        return npz_bytes(**{k: npz[k] for k in npz.files})


def model_arrays() -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(model_bytes())) as npz:
        return {k: npz[k] for k in npz.files}


def config_of(arrays: dict[str, np.ndarray]) -> dict:
    return json.loads(arrays["config_json"].tobytes())


def with_config(arrays: dict[str, np.ndarray], document) -> dict[str, np.ndarray]:
    text = json.dumps(document).encode()
    return {**arrays, "config_json": np.frombuffer(text, dtype=np.uint8)}


class WritesMarker:
    """Unpickling this writes a marker file: it must never happen."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def pickled_member(marker: Path) -> bytes:
    return npy_bytes(np.array([WritesMarker(marker), 1], dtype=object), allow_pickle=True)


def outcome(fn: Callable, data, allowed: type[Exception]):
    """Call ``fn(data)``; return the result or the allowed exception (never a hang)."""
    try:
        result = finishes(fn, data)
    except allowed as exc:
        result = exc
        assert str(exc).strip(), "an error needs a message"
    return result


def finishes(fn: Callable, *args):
    """``fn(*args)``, failing the test if it hangs (a blocked read, an endless loop).

    The guard is generous on purpose: it tells a hang from slowness, not fast from slow.
    """
    box: dict = {}

    def call() -> None:
        try:
            box["result"] = fn(*args)
        except BaseException as exc:  # re-raised in the test's thread
            box["error"] = exc

    worker = threading.Thread(target=call, daemon=True)
    worker.start()
    worker.join(HANG_SECONDS)
    assert not worker.is_alive(), f"{getattr(fn, '__name__', fn)} hung for {HANG_SECONDS:g} s"
    if "error" in box:
        raise box["error"]
    return box.get("result")


def refused(fn: Callable, data, allowed: type[Exception], *fragments: str) -> str:
    """Assert ``fn(data)`` raises ``allowed`` with every fragment in its message."""
    result = outcome(fn, data, allowed)
    assert isinstance(result, allowed), f"accepted: {result!r}"
    message = str(result)
    for fragment in fragments:
        assert fragment.lower() in message.lower(), message
    return message


def variants(data: bytes, seed: int, n_cuts: int = 60, n_flips: int = 120) -> list[bytes]:
    """Truncations at many offsets and copies with 1-3 bits flipped at random positions."""
    rng = np.random.default_rng(seed)
    cuts = sorted(set(np.linspace(0, len(data) - 1, n_cuts).astype(int)) | set(range(12)))
    out = [data[:c] for c in cuts]
    for _ in range(n_flips):
        flipped = bytearray(data)
        for pos in rng.integers(0, len(data), rng.integers(1, 4)):
            flipped[pos] ^= 1 << int(rng.integers(0, 8))
        out.append(bytes(flipped))
    return out


X, Y = images()
CSV = csv_bytes(X, Y)
HEADER = CSV.split(b"\n", 1)[0].decode()
ROWS = [line.split(",") for line in CSV.decode().splitlines()[1:]]

FUZZ_TARGETS = {
    "csv": (CSV, lambda d: load_dataset(d, name="f.csv"), DataError),
    "csv.gz": (gzip.compress(CSV), lambda d: load_dataset(d, name="f.csv.gz"), DataError),
    "csv, no name": (CSV, load_dataset, DataError),
    "unlabelled csv": (csv_bytes(X), load_unlabelled_csv, DataError),
    "idx images": (idx_images(X), load_idx_images, DataError),
    "idx images.gz": (gzip.compress(idx_images(X)), load_idx_images, DataError),
    "idx labels": (idx_labels(Y), load_idx_labels, DataError),
    "idx labels.gz": (gzip.compress(idx_labels(Y)), load_idx_labels, DataError),
    "idx pair": (
        idx_images(X),
        lambda d: load_dataset(
            {
                "train-images-idx3-ubyte": d,
                "train-labels-idx1-ubyte.gz": gzip.compress(idx_labels(Y)),
            }
        ),
        DataError,
    ),
    "npz": (npz_bytes(x_train=X, y_train=Y, x_test=X, y_test=Y), load_npz, DataError),
    "npz compressed": (
        npz_bytes(compressed=True, x_train=X, y_train=Y),
        lambda d: load_dataset(d, name="f.npz"),
        DataError,
    ),
    "model": (model_bytes(), load_model, ModelFileError),
    "model uncompressed": (model_bytes(compressed=False), load_model, ModelFileError),
}


# --------------------------------------------------------------------------- fuzzing
@pytest.mark.parametrize("target", list(FUZZ_TARGETS))
def test_truncated_and_bit_flipped_files(target: str) -> None:
    data, fn, allowed = FUZZ_TARGETS[target]
    assert not isinstance(outcome(fn, data, allowed), Exception), "the valid file must load"
    for i, variant in enumerate(variants(data, seed=len(target))):
        try:
            outcome(fn, variant, allowed)
        except AssertionError:
            raise
        except Exception as exc:  # pragma: no cover - the failure report
            raise AssertionError(f"variant {i}: {type(exc).__name__}: {exc}") from exc


@pytest.mark.parametrize("target", list(FUZZ_TARGETS))
def test_random_bytes(target: str) -> None:
    _, fn, allowed = FUZZ_TARGETS[target]
    rng = np.random.default_rng(7)
    blobs = [rng.bytes(n) for n in (0, 1, 3, 4, 8, 16, 100, 1000, 10000)]
    blobs += [b"PK\x03\x04" + rng.bytes(200), b"\x1f\x8b" + rng.bytes(200), b"\x93NUMPY" + b"x"]
    blobs += [b"\x00\x00\x08\x03" + rng.bytes(40), b"\x00" * 100, b"\xff\xfe" + b"a,b"]
    for blob in blobs:
        outcome(fn, blob, allowed)


# --------------------------------------------------------------------------- bombs and sizes
def test_zip_bomb_in_npz_is_refused_without_inflating_it() -> None:
    zeros = npy_header((20 * 1024**2 // 16, 4, 4)) + b"\0" * (20 * 1024**2)
    bomb = zip_members(
        {"x_train.npy": zeros, "y_train.npy": npy_bytes(Y)}, method=zipfile.ZIP_DEFLATED
    )
    assert len(bomb) < 100_000
    refused(lambda d: load_npz(d, max_bytes=1024**2), bomb, DataError, "too large")


def test_npz_directory_lying_about_sizes_does_not_inflate_past_the_cap() -> None:
    big = npy_header((200_000, 4, 4)) + b"\0" * (200_000 * 16)
    data = bytearray(zip_members({"x_train.npy": big, "y_train.npy": npy_bytes(Y)}, 8))
    for sig, offset in ((b"PK\x01\x02", 24), (b"PK\x03\x04", 22)):  # claim 100 bytes each
        i = 0
        while (i := data.find(sig, i)) >= 0:
            data[i + offset : i + offset + 4] = (100).to_bytes(4, "little")
            i += 4
    refused(lambda d: load_npz(d, max_bytes=1024**2), bytes(data), DataError)


@pytest.mark.parametrize(
    "fn",
    [
        lambda d: load_dataset(d, name="g.csv.gz", max_bytes=1024**2),
        lambda d: load_idx_images(d, max_bytes=1024**2),
        lambda d: load_dataset({"train-images-idx3-ubyte.gz": d}, max_bytes=1024**2),
    ],
    ids=["csv", "idx", "idx-files"],
)
def test_gzip_bomb(fn) -> None:
    bomb = gzip.compress(b"\0" * (8 * 1024**2))
    assert len(bomb) < 20_000
    outcome(fn, bomb, DataError)
    refused(fn, bomb, DataError)


def test_gzip_bomb_at_the_default_cap_is_refused_quickly() -> None:
    refused(load_idx_images, gzip.compress(b"\0" * (201 * 1024**2)), DataError, "decompresses")


@pytest.mark.parametrize(
    ("key", "header"),
    [
        ("x_train", npy_header((10**12, 28, 28))),
        ("x_train", npy_header((2**40, 28, 28), "<f8")),
        ("y_train", npy_header((2**62,), "<i8")),
    ],
)
def test_npy_header_declaring_a_gigantic_shape(key: str, header: bytes) -> None:
    members = {"x_train.npy": npy_bytes(X), "y_train.npy": npy_bytes(Y)}
    members[f"{key}.npy"] = header + b"\0" * 64
    refused(load_npz, zip_members(members), DataError, key, "too large")


def test_npy_header_with_negative_or_inconsistent_shape() -> None:
    bad = npy_header((30, 4, 4)).replace(b"(30, 4, 4)", b"(-3, 4, 4)")
    refused(load_npz, zip_members({"x_train.npy": bad, "y_train.npy": npy_bytes(Y)}), DataError)
    short = npy_header((30, 4, 4)) + b"\0" * 10
    message = refused(
        load_npz, zip_members({"x_train.npy": short, "y_train.npy": npy_bytes(Y)}), DataError
    )
    assert "damaged" in message


def test_npz_member_that_is_not_an_npy_array() -> None:
    data = zip_members({"x_train.npy": b"\x80\x04K\x01.", "y_train.npy": npy_bytes(Y)})
    refused(load_npz, data, DataError, "x_train", "not a NumPy array")


def test_npz_with_thousands_of_members() -> None:
    data = zip_members({f"m{i}.npy": b"" for i in range(3000)})
    message = refused(load_npz, data, DataError, "entries")
    assert len(message) < 400


# --------------------------------------------------------------------------- pickles
@pytest.mark.parametrize("key", ["x_train", "y_train", "x_test", "unrelated"])
def test_npz_object_arrays_are_never_unpickled(tmp_path: Path, key: str) -> None:
    marker = tmp_path / MARKER_NAME
    members = {
        "x_train.npy": npy_bytes(X),
        "y_train.npy": npy_bytes(Y),
        "x_test.npy": npy_bytes(X),
        "y_test.npy": npy_bytes(Y),
    }
    members[f"{key}.npy"] = pickled_member(marker)
    result = outcome(lambda d: load_npz(d, name="evil.npz"), zip_members(members), DataError)
    if key == "unrelated":
        assert not isinstance(result, Exception)  # unknown keys are not even read
    else:
        assert isinstance(result, DataError) and "pickle" in str(result)
        assert key in str(result) and "evil.npz" in str(result)
    assert not marker.exists()


@pytest.mark.parametrize("key", ["config_json", "W0", "b1"])
def test_model_object_arrays_are_never_unpickled(tmp_path: Path, key: str) -> None:
    marker = tmp_path / MARKER_NAME
    members = {f"{k}.npy": npy_bytes(v) for k, v in model_arrays().items()}
    members[f"{key}.npy"] = pickled_member(marker)
    refused(load_model, zip_members(members), ModelFileError, "pickle", key)
    assert not marker.exists()


def test_a_raw_pickle_file_is_never_unpickled(tmp_path: Path) -> None:
    import pickle

    marker = tmp_path / MARKER_NAME
    raw = pickle.dumps(WritesMarker(marker))
    refused(load_model, raw, ModelFileError)
    refused(lambda d: load_dataset(d, name="data.pkl"), raw, DataError)
    refused(load_npz, raw, DataError)
    assert not marker.exists()


# --------------------------------------------------------------------------- CSV variants
def rows_text(rows: list[list[str]], sep: str = ",", end: str = "\n") -> str:
    return end.join(sep.join(r) for r in rows)


ACCEPTED_CSV = {
    "utf-8 BOM": "\ufeff" + CSV.decode(),
    "CRLF": CSV.decode().replace("\n", "\r\n"),
    "CR only": CSV.decode().replace("\n", "\r"),
    "BOM + CRLF": "\ufeff" + CSV.decode().replace("\n", "\r\n"),
    "quoted numbers": HEADER + "\n" + rows_text([[f'"{c}"' for c in r] for r in ROWS]),
    "quoted header": ",".join(f'"{h}"' for h in HEADER.split(",")) + "\n" + rows_text(ROWS),
    "trailing empty lines": CSV.decode() + "\n\n\n",
    "leading blank lines": "\n\n" + CSV.decode(),
    "spaces around values": HEADER.replace(",", ", ") + "\n" + rows_text(ROWS, sep=" , "),
    "no final newline": CSV.decode().rstrip("\n"),
    "'Label' capitalised": HEADER.replace("label", "Label") + "\n" + rows_text(ROWS),
    "'LABEL' upper case": HEADER.replace("label", "LABEL") + "\n" + rows_text(ROWS),
    "label column last": ",".join([*HEADER.split(",")[1:], "label"])
    + "\n"
    + rows_text([[*r[1:], r[0]] for r in ROWS]),
    "no header, label first": rows_text(ROWS),
    "float pixels": HEADER + "\n" + rows_text([[r[0]] + [f"{c}.0" for c in r[1:]] for r in ROWS]),
}


@pytest.mark.parametrize("variant", list(ACCEPTED_CSV))
def test_common_csv_variants_are_accepted(variant: str) -> None:
    ds = outcome(
        lambda d: load_kaggle_csv(d, name="v.csv"), ACCEPTED_CSV[variant].encode(), DataError
    )
    assert not isinstance(ds, Exception), ds
    got = np.concatenate([ds.x_train, ds.x_test])
    assert len(got) == len(X) and ds.image_shape == (4, 4)
    assert sorted(map(bytes, got)) == sorted(map(bytes, X))


def with_cell(row: int, col: int, value: str) -> str:
    rows = [list(r) for r in ROWS]
    rows[row][col] = value
    return HEADER + "\n" + rows_text(rows)


REFUSED_CSV = {
    "semicolons": (CSV.decode().replace(",", ";"), ["semicolons", "commas"]),
    "tabs": (CSV.decode().replace(",", "\t"), ["tabs", "commas"]),
    "header only": (HEADER + "\n", ["no data rows"]),
    "header only, no newline": (HEADER, ["no data rows"]),
    "empty": ("", ["empty"]),
    "only whitespace": ("  \n \r\n", ["empty"]),
    "'class' instead of 'label'": (
        HEADER.replace("label", "class") + "\n" + rows_text(ROWS),
        ["'class'", "rename"],
    ),
    "'target' instead of 'label'": (
        HEADER.replace("label", "target") + "\n" + rows_text(ROWS),
        ["'target'", "rename"],
    ),
    "no label column at all": (
        ",".join(HEADER.split(",")[1:]) + "\n1\n",
        ["no 'label'", "load_unlabelled_csv"],
    ),
    "1 column": ("label\n1\n0\n", ["no pixel columns"]),
    "two label columns": ("label,label,pixel0\n1,1,0\n0,0,0\n", ["label"]),
    "negative pixel": (with_cell(3, 5, "-1"), ["0..255", "-1"]),
    "pixel 256": (with_cell(3, 5, "256"), ["0..255", "256"]),
    "pixel 1e9": (with_cell(3, 5, "1e9"), ["0..255"]),
    "pixel nan": (with_cell(3, 5, "nan"), ["nan", "pixel4"]),
    "pixel inf": (with_cell(3, 5, "inf"), ["infinite", "pixel4"]),
    "pixel -inf": (with_cell(3, 5, "-inf"), ["infinite", "pixel4"]),
    "empty cell": (with_cell(3, 5, ""), ["empty cell", "line 5"]),
    "word in a cell": (with_cell(3, 5, "abc"), ["'abc'", "pixel4", "data row 4"]),
    "ragged row": (
        HEADER + "\n" + rows_text([*ROWS[:3], ROWS[3][:-2], *ROWS[4:]]),
        ["data row 4", "15 values", "17 columns"],
    ),
    "label -1": (with_cell(2, 0, "-1"), ["0 or more"]),
    "label 1.5": (with_cell(2, 0, "1.5"), ["whole numbers"]),
    "label nan": (with_cell(2, 0, "nan"), ["nan"]),
    "label 1e9": (with_cell(2, 0, "1e9"), ["classes"]),
    "utf-16": (None, ["utf-16", "utf-8"]),
    "latin-1 bytes": (None, ["not a text csv"]),
    "NUL bytes": (None, ["not a text csv"]),
    "pixels scaled 0..1": (
        HEADER + "\n" + rows_text([[r[0]] + [f"{int(c) / 255:.4f}" for c in r[1:]] for r in ROWS]),
        ["scaled", "255"],
    ),
    "one class only": (
        HEADER + "\n" + rows_text([["1", *r[1:]] for r in ROWS]),
        ["at least two classes"],
    ),
    "pixel columns not a square": ("label,pixel0,pixel1\n0,1,2\n1,2,3\n", ["perfect square"]),
    "unknown column": (HEADER + ",comment\n" + rows_text([[*r, "1"] for r in ROWS]), ["comment"]),
}
RAW_CSV = {
    "utf-16": CSV.decode().encode("utf-16"),
    "latin-1 bytes": CSV.replace(b"pixel3,", b"pix\xe9l3,", 1),
    "NUL bytes": CSV[:50] + b"\x00" + CSV[50:],
}


@pytest.mark.parametrize("variant", list(REFUSED_CSV))
def test_bad_csv_variants_are_refused_with_a_fix(variant: str) -> None:
    text, fragments = REFUSED_CSV[variant]
    data = RAW_CSV[variant] if text is None else text.encode()
    message = refused(lambda d: load_kaggle_csv(d, name="v.csv"), data, DataError, *fragments)
    assert message.startswith("v.csv"), message
    # the same file through the generic entry point, too
    outcome(lambda d: load_dataset(d, name="v.csv"), data, DataError)


def test_csv_with_100000_columns_is_quick() -> None:
    n = 100_000
    header = "label," + ",".join(f"pixel{i}" for i in range(n))
    body = "\n".join(f"{k}," + ",".join(["0"] * n) for k in (0, 1))
    refused(load_kaggle_csv, (header + "\n" + body + "\n").encode(), DataError, "square")
    side = 316  # 99,856 pixels: a square that large still loads
    header = "label," + ",".join(f"pixel{i}" for i in range(side * side))
    body = "\n".join(f"{k % 2}," + ",".join(["7"] * side * side) for k in range(4))
    ds = outcome(load_kaggle_csv, (header + "\n" + body + "\n").encode(), DataError)
    assert ds.image_shape == (side, side)


def test_unlabelled_csv_variants() -> None:
    plain = csv_bytes(X)
    assert load_unlabelled_csv(b"\xef\xbb\xbf" + plain.replace(b"\n", b"\r\n")).shape == X.shape
    refused(load_unlabelled_csv, CSV, DataError, "'label' column", "load_kaggle_csv")
    refused(load_unlabelled_csv, plain.replace(b",", b";"), DataError, "semicolons")
    refused(load_unlabelled_csv, plain.split(b"\n", 1)[0], DataError, "no data rows")


# --------------------------------------------------------------------------- IDX
def idx_header(magic: int, *dims: int) -> bytes:
    return magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in dims)


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b"\x00\x00\x08\x04" + b"\0" * 40, "magic"),
        (b"\x12\x34\x56\x78" + b"\0" * 40, "magic"),
        (idx_header(0x801, 30) + bytes(30), "swapped"),
        (idx_header(0x803, 0, 28, 28), "zero images"),
        (idx_header(0x803, 5, 0, 0), "square"),
        (idx_header(0x803, 5, 28, 27) + bytes(5 * 28 * 27), "square"),
        (idx_header(0x803, 2**31, 1, 1), "truncated"),
        (idx_header(0x803, 2**31 - 1, 2**16 - 1, 2**16 - 1), "truncated"),
        (idx_header(0x803, 2**32 - 1, 2**32 - 1, 2**32 - 1) + bytes(100), "truncated"),
        (idx_header(0x803, 1, 2, 2) + bytes(5), "more than"),
        (idx_header(0x803, 1), "truncated"),
        (b"\x00\x00\x08", "too short"),
    ],
)
def test_bad_idx_images(data: bytes, fragment: str) -> None:
    refused(load_idx_images, data, DataError, fragment)
    refused(load_idx_images, gzip.compress(data), DataError, fragment)


def test_bad_idx_labels() -> None:
    refused(load_idx_labels, idx_header(0x801, 2**31), DataError, "truncated")
    refused(load_idx_labels, idx_header(0x801, 0), DataError, "zero labels")
    refused(load_idx_labels, idx_header(0x803, 1, 1, 1) + b"\0", DataError, "swapped")


# --------------------------------------------------------------------------- NPZ variants
def load_arrays(**arrays) -> object:
    return outcome(lambda d: load_npz(d, name="v.npz"), npz_bytes(**arrays), DataError)


def test_npz_float_pixels_in_0_1_say_scaled() -> None:
    message = str(load_arrays(x_train=X / 255.0, y_train=Y))
    assert "scaled" in message and "255" in message


def test_npz_colour_images_are_refused_with_a_fix() -> None:
    message = str(load_arrays(x_train=np.stack([X] * 3, axis=-1), y_train=Y))
    assert "3 channels" in message and "grayscale" in message


def test_npz_one_hot_labels_are_refused_with_argmax_fix() -> None:
    message = str(load_arrays(x_train=X, y_train=np.eye(3)[Y]))
    assert "one-hot" in message and "argmax" in message
    message = str(load_arrays(x_train=X, y_train=np.ones((30, 3))))
    assert "one class index per image" in message


def test_npz_text_labels() -> None:
    ds = load_arrays(x_train=X, y_train=Y.astype(str))
    assert not isinstance(ds, Exception) and ds.n_classes == 3
    ds = load_arrays(x_train=X, y_train=Y.astype("S"), x_test=X, y_test=Y.astype(str))
    assert not isinstance(ds, Exception)
    names = np.array(["cat", "dog", "eel"])[Y]
    message = str(load_arrays(x_train=X, y_train=names))
    assert "text" in message and "'cat'" in message


def test_npz_bool_images_become_black_and_white() -> None:
    ds = load_arrays(x_train=X > 128, y_train=Y)
    assert not isinstance(ds, Exception)
    assert set(np.unique(ds.x_train)) <= {0, 255}


@pytest.mark.parametrize(
    ("arrays", "fragment"),
    [
        ({"x_train": X, "y_train": np.array(2)}, "shape ()"),
        ({"x_train": np.array(3), "y_train": Y}, "shape ()"),
        ({"x_train": X.astype(complex), "y_train": Y}, "complex"),
        ({"x_train": X, "y_train": Y.astype("datetime64[D]")}, "datetime"),
        ({"x_train": np.zeros(30, dtype=[("a", "u1", (4, 4))]), "y_train": Y}, "compound"),
        ({"x_train": np.full(X.shape, np.nan), "y_train": Y}, "nan"),
        ({"x_train": X, "y_train": Y * np.nan}, "nan"),
        ({"x_train": X.astype(np.int16) - 1, "y_train": Y}, "0..255"),
        ({"x_train": X.astype(np.uint64) + 2**63, "y_train": Y}, "0..255"),
        ({"x_train": np.zeros((0, 4, 4), np.uint8), "y_train": Y[:0]}, "zero images"),
        ({"x_train": np.zeros((30, 0), np.uint8), "y_train": Y}, "square"),
        ({"x_train": np.zeros((30, 1, 4, 4, 1), np.uint8), "y_train": Y}, "shape"),
        ({"x_train": X, "y_train": Y, "x_test": X[:, :2, :2], "y_test": Y}, "same size"),
    ],
)
def test_bad_npz_arrays(arrays: dict, fragment: str) -> None:
    result = load_arrays(**arrays)
    assert isinstance(result, DataError), result
    assert fragment.lower() in str(result).lower(), str(result)


def test_npz_layout_variants_accepted() -> None:
    for x in (X[..., None], X[:, None], X.reshape(30, 16), np.asfortranarray(X), X.astype(">u2")):
        ds = load_arrays(x_train=x, y_train=Y.astype(">i8"))
        assert not isinstance(ds, Exception), ds
        assert ds.image_shape == (4, 4)


# --------------------------------------------------------------------------- paths and readers
class _BadReader:
    def __init__(self, result=None, error: Exception | None = None) -> None:
        self.result, self.error = result, error

    def read(self, n: int = -1):
        if self.error is not None:
            raise self.error
        return self.result


@pytest.mark.parametrize(
    "source",
    [
        "/dev/zero",
        "a\0b.csv",
        "x" * 5000 + ".csv",
        "/nonexistent/file.csv",
        _BadReader(None),
        _BadReader(error=OSError("connection reset")),
        _BadReader("text, not bytes"),
        12345,
        None,
    ],
    ids=["dev-zero", "nul", "long-name", "missing", "none-read", "oserror", "text", "int", "none"],
)
def test_unusable_sources(source) -> None:
    outcome_data = outcome(load_dataset, source, DataError)
    assert isinstance(outcome_data, DataError)
    if not isinstance(source, int) and source is not None:
        assert isinstance(outcome(load_model, source, ModelFileError), ModelFileError)


def test_fifo_is_refused_not_waited_on(tmp_path: Path) -> None:
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs here")
    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)
    refused(load_dataset, fifo, DataError, "regular file")
    refused(load_model, fifo, ModelFileError, "regular file")


# --------------------------------------------------------------------------- model files
def model_from(arrays: dict[str, np.ndarray]) -> object:
    return outcome(load_model, npz_bytes(**arrays), ModelFileError)


def test_model_with_extra_or_missing_arrays() -> None:
    arrays = model_arrays()
    assert "unexpected extra" in str(model_from({**arrays, "extra": np.zeros(3)}))
    del arrays["W1"]
    assert "missing W1" in str(model_from(arrays))


def test_model_with_nan_weights() -> None:
    arrays = model_arrays()
    arrays["b1"] = arrays["b1"].copy()
    arrays["b1"][1] = np.nan
    assert "b1 contains NaN" in str(model_from(arrays))


@pytest.mark.parametrize("document", [[1, 2], "text", 5, None, True])
def test_model_config_that_is_not_an_object(document) -> None:
    assert "JSON object" in str(model_from(with_config(model_arrays(), document)))


@pytest.mark.parametrize(
    ("path", "value", "fragment"),
    [
        (("architecture", "sizes"), [10**9, 10**9], "between 1 and"),
        (("architecture", "sizes"), [16] * 100, "at most 16"),
        (("architecture", "sizes"), [16.0, 8, 3], "integers"),
        (("architecture", "sizes"), "16,8,3", "integers"),
        (("architecture", "activation"), ["relu"], "activation"),
        (("architecture", "init"), {"a": 1}, "init"),
        (("architecture", "dtype"), ["float32"], "dtype"),
        (("input_scale",), 1e309, "input_scale"),
        (("input_scale",), "0.5", "input_scale"),
        (("format",), ["digitlab-mlp"], "format"),
        (("format_version",), 99, "upgrade digitlab"),
        (("class_names",), ["a"], "names 1 classes but the network has 3"),
        (("image_shape",), [4.0, 4], "image_shape"),
        (("training",), None, "training"),
    ],
)
def test_model_config_fields(path: tuple, value, fragment: str) -> None:
    arrays = model_arrays()
    document = config_of(arrays)
    target = document
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    result = model_from(with_config(arrays, document))
    assert isinstance(result, ModelFileError), result
    assert fragment.lower() in str(result).lower(), str(result)


def test_model_config_deeply_nested_or_huge() -> None:
    arrays = model_arrays()
    deep = np.frombuffer(b"[" * 100_000 + b"]" * 100_000, dtype=np.uint8)
    assert "JSON" in str(model_from({**arrays, "config_json": deep}))
    members = {f"{k}.npy": npy_bytes(v) for k, v in arrays.items()}
    members["config_json.npy"] = npy_header((10**12,)) + b"{}"
    refused(load_model, zip_members(members), ModelFileError, "configuration")


def test_model_compression_bomb_of_declared_layers() -> None:
    sizes = [4096] * 5
    arrays = model_arrays()
    document = config_of(arrays)
    document["architecture"]["sizes"] = sizes
    document["class_names"] = [str(i) for i in range(4096)]
    document["image_shape"] = [64, 64]
    bomb = {"config_json": with_config(arrays, document)["config_json"]}
    zeros = np.zeros((4096, 4096), dtype=np.float32)
    for i in range(len(sizes) - 1):
        bomb[f"W{i}"], bomb[f"b{i}"] = zeros, zeros[0]
    data = npz_bytes(compressed=True, **bomb)
    assert len(data) < 1024**2
    refused(load_model, data, ModelFileError, "declares layer sizes")


def test_model_weights_of_the_wrong_kind() -> None:
    arrays = model_arrays()
    for bad in (arrays["W0"].astype(int), arrays["W0"].astype(np.float16)):
        assert "float32 or float64" in str(model_from({**arrays, "W0": bad}))
    assert "W0 has shape (1, 16, 8)" in str(model_from({**arrays, "W0": arrays["W0"][None]}))
    huge = arrays["W0"].astype(np.float64) * 1e300
    assert "overflow" in str(model_from({**arrays, "W0": huge}))


# --------------------------------------------------------------------------- preprocessing
RNG = np.random.default_rng(3)
EYE = (np.eye(28) * 200).astype(np.uint8)
ODD_IMAGES = {
    "empty 0x0": np.zeros((0, 0), np.uint8),
    "empty 0x5": np.zeros((0, 5), np.uint8),
    "empty rgba": np.zeros((0, 0, 4), np.uint8),
    "1x1 white": np.full((1, 1), 255, np.uint8),
    "1x1 black": np.zeros((1, 1), np.uint8),
    "1x1 rgba": np.full((1, 1, 4), 255, np.uint8),
    "all NaN": np.full((28, 28), np.nan),
    "some NaN": np.where(RNG.random((28, 28)) > 0.5, np.nan, 0.9),
    "+inf": np.full((28, 28), np.inf),
    "-inf": np.full((28, 28), -np.inf),
    "1e300": RNG.random((28, 28)) * 1e300,
    "negative floats": -RNG.random((28, 28)),
    "float16": RNG.random((28, 28)).astype(np.float16),
    "bool": RNG.random((28, 28)) > 0.9,
    "bool rgba": RNG.random((28, 28, 4)) > 0.5,
    "int16 noise": RNG.integers(-32768, 32767, (28, 28)).astype(np.int16),
    "int16 0..255": EYE.astype(np.int16),
    "int64 0..255": EYE.astype(np.int64),
    "uint16 16-bit": (np.eye(28) * 60000).astype(np.uint16),
    "big-endian": EYE.astype(">u2"),
    "(H, W, 1)": EYE[..., None],
    "(H, W, 2) gray+alpha": np.stack([EYE, np.full_like(EYE, 255)], axis=-1),
    "rgb NaN": np.full((28, 28, 3), np.nan, np.float32),
    "rgba float": RNG.random((28, 28, 4)).astype(np.float32),
    "non-contiguous": (np.eye(56) * 255).astype(np.uint8)[::2, ::2],
    "nested list": [[0, 255], [255, 0]],
    "tall 1x10000": np.full((1, 10_000), 255, np.uint8),
    "thin 20000x1": (np.arange(20_000) % 2 * 255).astype(np.uint8)[:, None],
    "huge 6000x6000": np.pad(np.full((600, 60), 255, np.uint8), 2700),
}
WRONG_IMAGES = {
    "5 channels": np.zeros((28, 28, 5), np.uint8),
    "1-d": np.zeros(784, np.uint8),
    "4-d batch": np.zeros((1, 28, 28, 1), np.uint8),
    "0-d": np.array(5),
    "None": None,
    "complex": np.eye(28, dtype=complex),
    "object": np.array([[1, 2], [3, 4]], dtype=object),
    "strings": np.array([["a", "b"]]),
    "datetime": np.zeros((28, 28), "datetime64[s]"),
}


def _check_image_result(result) -> None:
    assert result is None or (result.shape == (28, 28) and result.dtype == np.uint8), result


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("name", list(ODD_IMAGES))
def test_preprocess_image_odd_arrays(name: str) -> None:
    _check_image_result(finishes(preprocess_image, ODD_IMAGES[name]))


def test_preprocess_integer_images_in_0_255_are_not_darkened() -> None:
    reference = preprocess_image(EYE)
    for dtype in (np.int16, np.int32, np.int64, np.uint16, ">u2"):
        np.testing.assert_array_equal(preprocess_image(EYE.astype(dtype)), reference)
    assert preprocess_image(EYE[..., None]) is not None


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("name", list(WRONG_IMAGES))
def test_preprocess_image_refuses_clearly(name: str) -> None:
    with pytest.raises(ValueError, match=r"expected an image of shape|cannot read an image"):
        preprocess_image(WRONG_IMAGES[name])


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("name", list(ODD_IMAGES) + list(WRONG_IMAGES))
def test_preprocess_drawing_odd_arrays(name: str) -> None:
    image = {**ODD_IMAGES, **WRONG_IMAGES}[name]
    try:
        result = preprocess_drawing(image)
    except ValueError as exc:
        assert "RGBA" in str(exc) or "cannot read an image" in str(exc)
    else:
        _check_image_result(result)


@pytest.mark.parametrize(("size", "box"), [(0, 20), (28, 0), (-1, -2), (10**5, 10), (28, 29)])
def test_preprocess_bad_sizes(size: int, box: int) -> None:
    with pytest.raises(ValueError, match=r"size|box"):
        preprocess_image(EYE, size=size, box=box)
    with pytest.raises(ValueError, match=r"size|box"):
        preprocess_drawing(np.zeros((28, 28, 4), np.uint8), size=size, box=box)


# --------------------------------------------------------------------------- CLI
def run_cli(capsys, *args) -> tuple[int, str]:
    status = main([str(a) for a in args])
    err = capsys.readouterr().err
    return status, err


def assert_one_line_error(status: int, err: str) -> None:
    assert status != 0
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) >= 1 and all(line.startswith("error: ") for line in lines), err


@pytest.fixture
def model_file(tmp_path: Path) -> Path:
    path = tmp_path / "model.npz"
    path.write_bytes(model_bytes())
    return path


def test_cli_bad_files(capsys, tmp_path: Path, model_file: Path) -> None:
    junk = tmp_path / "junk.bin"
    junk.write_bytes(np.random.default_rng(0).bytes(3000))
    semicolons = tmp_path / "semi.csv"
    semicolons.write_bytes(CSV.replace(b",", b";"))
    bomb = tmp_path / "bomb.npz"
    members = {"x_train.npy": npy_header((10**12, 28, 28)), "y_train.npy": npy_bytes(Y)}
    bomb.write_bytes(zip_members(members))
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(model_bytes()[:500])
    cases = [
        ("evaluate", "--model", junk, "--data", "mnist"),
        ("evaluate", "--model", truncated, "--data", "mnist"),
        ("evaluate", "--model", "/dev/zero", "--data", "mnist"),
        ("evaluate", "--model", tmp_path, "--data", "mnist"),
        ("evaluate", "--model", model_file, "--data", junk),
        ("evaluate", "--model", model_file, "--data", semicolons),
        ("evaluate", "--model", model_file, "--data", bomb),
        ("evaluate", "--model", model_file, "--data", "/dev/zero"),
        ("predict", "--model", model_file, semicolons),
        ("predict", "--model", model_file, junk),
    ]
    for args in cases:
        status, err = run_cli(capsys, *args)
        assert_one_line_error(status, err)


def test_cli_predict_refuses_pipes_and_folders(capsys, tmp_path: Path, model_file: Path) -> None:
    targets = [tmp_path]
    if hasattr(os, "mkfifo"):
        os.mkfifo(tmp_path / "pipe.png")
        targets.append(tmp_path / "pipe.png")
    for target in targets:
        status, err = finishes(run_cli, capsys, "predict", "--model", model_file, target)
        assert_one_line_error(status, err)


def test_save_model_never_replaces_a_non_regular_file(tmp_path: Path) -> None:
    folder = tmp_path / "folder.npz"
    folder.mkdir()
    with pytest.raises(OSError, match="not a regular file"):
        save_model(folder, MLP(4, [], 2, seed=0))
    assert folder.is_dir()
