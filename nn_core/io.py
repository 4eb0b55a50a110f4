"""Save and load trained networks as plain ``.npz`` files, safely.

File format ("digitlab-mlp", version 1): an ordinary NumPy ``.npz`` (a zip of ``.npy``
files) that any NumPy can read without digitlab and without pickle:

``config_json``
    1-d uint8 array: UTF-8 JSON with ``format`` ("digitlab-mlp"), ``format_version`` (1),
    ``architecture`` (``sizes`` [inputs, hidden..., classes], ``activation``, ``init``,
    ``dtype``), ``input_scale`` (inputs are multiplied by it before the first layer, 1/255
    for pixels), ``class_names``, ``image_shape`` ([H, W] or null) and ``training`` (a
    free-form summary of the run).
``W0, b0, W1, b1, ...``
    One weight matrix ``Wi`` of shape (sizes[i], sizes[i + 1]) and one bias vector ``bi``
    of shape (sizes[i + 1],) per layer, float32 or float64. Layer ``i`` computes
    ``h @ Wi + bi``, then the activation (softmax after the last layer).

Loading never unpickles (``allow_pickle=False``), checks every array's header before
reading it, and refuses anything unexpected with a ``ModelFileError`` whose message names
the problem and the fix.
"""

from __future__ import annotations

import errno
import io
import json
import math
import os
import stat
import zipfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from nn_core.activations import ACTIVATIONS
from nn_core.data.errors import DataError
from nn_core.data.validate import read_file_like
from nn_core.init import INITS
from nn_core.network import MLP

FORMAT = "digitlab-mlp"
FORMAT_VERSION = 1
MAX_BYTES = 50 * 1024**2
MAX_WIDTH = 4096
MAX_LAYERS = 16
MAX_CONFIG_BYTES = 1024**2
MAX_CLASS_NAME = 200
# Weights may take this many times the file's size once decompressed (see load_model).
COMPRESSION_SLACK = 8

Source = str | os.PathLike | bytes | bytearray | memoryview | BinaryIO


class ModelFileError(ValueError):
    """A model file that cannot be loaded; the message says why and what to do."""


@dataclass
class LoadedModel:
    """A network read from a file, with its metadata.

    Attributes
    ----------
    model : MLP
    class_names : tuple of str
        One per output unit.
    image_shape : (H, W) or None
        The image size the network was trained on, when known.
    training : dict
        The training summary stored with the model (may be empty).
    config : dict
        The whole stored JSON configuration.
    """

    model: MLP
    class_names: tuple[str, ...]
    image_shape: tuple[int, int] | None
    training: dict = field(default_factory=dict)
    config: dict = field(default_factory=dict)


# ------------------------------------------------------------------------------ save
def save_model(
    path_or_file: str | os.PathLike | BinaryIO,
    model: MLP,
    *,
    class_names: Sequence[str] | None = None,
    training: dict | None = None,
    image_shape: Sequence[int] | None = None,
) -> None:
    """Write ``model`` and its metadata as a digitlab ``.npz`` (see the module docstring).

    Parameters
    ----------
    path_or_file : path or binary file-like
        A path is written atomically and exactly as given (no ``.npz`` is appended); a
        file-like (e.g. ``io.BytesIO``) receives the bytes at its current position.
    model : MLP
    class_names : sequence of str, optional
        One per output unit; ``"0", "1", ...`` by default.
    training : dict, optional
        JSON-able summary of the run (NaN and infinities are stored as null).
    image_shape : (H, W), optional
        Must satisfy ``H * W == model.sizes[0]``.
    """
    n_classes = model.sizes[-1]
    names = [str(i) for i in range(n_classes)] if class_names is None else list(class_names)
    if len(names) != n_classes or not all(isinstance(n, str) for n in names):
        raise ValueError(f"need {n_classes} class names (strings), got {names!r}")
    shape = None
    if image_shape is not None:
        shape = [int(s) for s in image_shape]
        if len(shape) != 2 or shape[0] * shape[1] != model.sizes[0]:
            raise ValueError(
                f"image_shape {tuple(shape)} does not match the network's {model.sizes[0]} inputs"
            )
    config = model.config()
    document = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "architecture": {
            "sizes": [int(s) for s in config["sizes"]],
            "activation": config["activation"],
            "init": config["init"],
            "dtype": config["dtype"],
        },
        "input_scale": float(config["input_scale"]),
        "class_names": names,
        "image_shape": shape,
        "training": jsonable(training or {}),
    }
    text = json.dumps(document, allow_nan=False, ensure_ascii=False)
    arrays = {"config_json": np.frombuffer(text.encode("utf-8"), dtype=np.uint8)}
    for i, (weight, bias) in enumerate(zip(model.weights, model.biases)):
        arrays[f"W{i}"] = np.ascontiguousarray(weight)
        arrays[f"b{i}"] = np.ascontiguousarray(bias)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    data = buffer.getvalue()
    if hasattr(path_or_file, "write"):
        path_or_file.write(data)
        return
    path = Path(path_or_file)
    if path.exists() and not path.is_file():
        # os.replace would swap a folder's name or a device such as /dev/null (when run as
        # root) for a plain file.
        raise FileExistsError(errno.EEXIST, "it exists and is not a regular file", str(path))
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def jsonable(value: Any) -> Any:
    """``value`` as strict JSON values: numpy scalars/arrays converted, NaN/inf as None."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


# ------------------------------------------------------------------------------ load
def load_model(source: Source, *, max_bytes: int = MAX_BYTES) -> LoadedModel:
    """Read a digitlab model file safely.

    Parameters
    ----------
    source : path, bytes or binary file-like
        A file path, the file's bytes, or an open binary file (e.g. Streamlit's
        ``UploadedFile``), rewound first when it is seekable.
    max_bytes : int
        Files larger than this are refused before being read.

    Returns
    -------
    LoadedModel

    Raises
    ------
    ModelFileError
        For anything but a well-formed digitlab model: not an npz, truncated, pickled or
        object arrays, missing or bad configuration, unknown or newer format, arrays whose
        shapes or dtypes disagree with the configuration, NaN/inf weights, more than
        ``MAX_LAYERS`` layers or layers wider than ``MAX_WIDTH``, or a file over the cap.
    """
    data, label = _read_source(source, max_bytes)
    if not data.startswith(b"PK"):
        raise ModelFileError(
            f"{label} is not a digitlab model: those are .npz (zip) archives. "
            "Choose a .npz saved by digitlab (Download model, or `python -m nn_core train "
            "--out model.npz`)."
        )
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        members = {info.filename: info for info in archive.infolist()}
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        raise ModelFileError(
            f"{label} is damaged or truncated ({exc}). Download or save the model again."
        ) from exc
    with archive:
        document = _read_config(archive, members, label)
        sizes, dtype = _check_config(document, label)
        _check_declared_size(sizes, len(data), label)
        arrays = _read_layers(archive, members, sizes, label)
    return _build(document, sizes, dtype, arrays, label)


def _read_source(source: Source, max_bytes: int) -> tuple[bytes, str]:
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        label = "The model file"
    elif isinstance(source, (str, os.PathLike)):
        path = Path(source)
        label = f"The model file {path.name}"
        try:
            info = path.stat()
            if stat.S_ISDIR(info.st_mode):
                raise ModelFileError(f"{path} is a folder, not a model file.")
            if not stat.S_ISREG(info.st_mode):
                raise ModelFileError(
                    f"{label} is not a regular file (a device, pipe or socket). Choose a .npz "
                    "model file."
                )
            if info.st_size > max_bytes:
                raise ModelFileError(_too_big(label, info.st_size, max_bytes))
            with path.open("rb") as f:  # bounded: a file may grow while it is read
                data = f.read(max_bytes + 1)
        except FileNotFoundError as exc:
            raise ModelFileError(f"{label} does not exist ({path}). Check the path.") from exc
        except IsADirectoryError as exc:
            raise ModelFileError(f"{path} is a folder, not a model file.") from exc
        except OSError as exc:
            raise ModelFileError(f"{label} cannot be read: {exc.strerror or exc}.") from exc
        except ValueError as exc:  # e.g. a NUL byte in the path
            if isinstance(exc, ModelFileError):
                raise
            raise ModelFileError(f"{label} cannot be read: {exc}. Check the path.") from exc
    elif hasattr(source, "read"):
        name = getattr(source, "name", None)
        label = f"The model file {Path(str(name)).name}" if name else "The model file"
        try:
            data = read_file_like(source, label, max_bytes)
        except DataError as exc:
            raise ModelFileError(str(exc)) from exc
    else:
        raise ModelFileError(
            f"cannot read a model from a {type(source).__name__}; give a path, bytes or a "
            "binary file."
        )
    if len(data) > max_bytes:
        raise ModelFileError(_too_big(label, len(data), max_bytes))
    if not data:
        raise ModelFileError(f"{label} is empty. Save the model again.")
    return data, label


def _too_big(label: str, size: int, max_bytes: int) -> str:
    return (
        f"{label} is too big ({size / 1024**2:.1f} MiB; the limit is "
        f"{max_bytes / 1024**2:.0f} MiB). Digitlab models are far smaller: check that this "
        "is the right file."
    )


def _read_npy_header(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, label: str
) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype of an ``.npy`` member, from its header only (nothing allocated)."""
    key = info.filename.removesuffix(".npy")
    try:
        with archive.open(info) as f:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(f)
            elif version == (2, 0):
                shape, _, dtype = np.lib.format.read_array_header_2_0(f)
            else:
                raise ValueError(f"unsupported .npy version {version}")
    except (
        ValueError,
        OSError,
        EOFError,
        zipfile.BadZipFile,
        SyntaxError,
        zlib.error,
        NotImplementedError,
        RuntimeError,
    ) as exc:
        raise ModelFileError(
            f"{label}: the array {key!r} is damaged ({exc}). Save the model again."
        ) from exc
    if dtype.hasobject:
        raise ModelFileError(
            f"{label}: the array {key!r} holds Python objects (pickled data), which digitlab "
            "never loads because unpickling can run code. Save the model with digitlab."
        )
    return shape, dtype


def _load_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, label: str) -> np.ndarray:
    key = info.filename.removesuffix(".npy")
    try:
        with archive.open(info) as f:
            return np.lib.format.read_array(f, allow_pickle=False)
    except (
        ValueError,
        OSError,
        EOFError,
        zipfile.BadZipFile,
        zlib.error,
        NotImplementedError,
        RuntimeError,
    ) as exc:
        raise ModelFileError(
            f"{label}: the array {key!r} cannot be read ({exc}). The file is damaged or "
            "truncated; save the model again."
        ) from exc


def _read_config(archive: zipfile.ZipFile, members: dict[str, zipfile.ZipInfo], label: str) -> dict:
    info = members.get("config_json.npy")
    if info is None:
        raise ModelFileError(
            f"{label} has no 'config_json' entry, so it is not a digitlab model (a plain "
            "NumPy archive, perhaps). Save the model with digitlab."
        )
    if info.file_size > MAX_CONFIG_BYTES:
        raise ModelFileError(f"{label}: its configuration is implausibly large; refusing it.")
    shape, dtype = _read_npy_header(archive, info, label)
    if math.prod(shape) * dtype.itemsize > MAX_CONFIG_BYTES:
        raise ModelFileError(
            f"{label}: its configuration declares shape {shape}, implausibly large for a "
            "digitlab model; refusing it. Save the model again."
        )
    raw = _load_member(archive, info, label)
    if dtype == np.uint8 and raw.ndim == 1:
        text_bytes = raw.tobytes()
    elif dtype.kind == "S" and raw.ndim <= 1 and raw.size == 1:
        text_bytes = raw.reshape(()).item()
    elif dtype.kind == "U" and raw.ndim <= 1 and raw.size == 1:
        text_bytes = str(raw.reshape(()).item()).encode("utf-8")
    else:
        raise ModelFileError(
            f"{label}: 'config_json' should be a 1-d uint8 array of UTF-8 JSON, got "
            f"{dtype} of shape {shape}. Save the model with digitlab."
        )
    try:
        document = json.loads(text_bytes.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ModelFileError(
            f"{label}: its configuration is not valid JSON ({exc}). Save the model again."
        ) from exc
    if not isinstance(document, dict):
        raise ModelFileError(f"{label}: its configuration should be a JSON object.")
    return document


def _check_config(document: dict, label: str) -> tuple[list[int], np.dtype]:
    fmt = document.get("format")
    if fmt != FORMAT:
        raise ModelFileError(
            f"{label} is of format {fmt!r}, not {FORMAT!r}. Load a model saved by digitlab."
        )
    version = document.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ModelFileError(f"{label}: format_version {version!r} is not a positive integer.")
    if version > FORMAT_VERSION:
        raise ModelFileError(
            f"{label} was written by a newer digitlab (format version {version}); this one "
            f"reads up to version {FORMAT_VERSION}. Upgrade digitlab to load it."
        )
    arch = document.get("architecture")
    if not isinstance(arch, dict):
        raise ModelFileError(f"{label}: the configuration has no 'architecture' object.")
    sizes = arch.get("sizes")
    if (
        not isinstance(sizes, list)
        or len(sizes) < 2
        or not all(isinstance(s, int) and not isinstance(s, bool) for s in sizes)
    ):
        raise ModelFileError(
            f"{label}: architecture.sizes should be a list of at least 2 integers, got {sizes!r}."
        )
    if len(sizes) - 1 > MAX_LAYERS:
        raise ModelFileError(
            f"{label} declares {len(sizes) - 1} layers; digitlab loads at most {MAX_LAYERS}."
        )
    if any(s < 1 or s > MAX_WIDTH for s in sizes):
        raise ModelFileError(
            f"{label} declares layer sizes {sizes}; each must be between 1 and {MAX_WIDTH}."
        )
    if sizes[-1] < 2:
        raise ModelFileError(f"{label}: a classifier needs at least 2 outputs, got {sizes[-1]}.")
    if not isinstance(arch.get("activation"), str) or arch["activation"] not in ACTIVATIONS:
        raise ModelFileError(
            f"{label}: unknown activation {arch.get('activation')!r}; digitlab knows "
            f"{', '.join(ACTIVATIONS)}."
        )
    if not isinstance(arch.get("init"), str) or arch["init"] not in INITS:
        raise ModelFileError(f"{label}: unknown init {arch.get('init')!r}.")
    if not isinstance(arch.get("dtype"), str) or arch["dtype"] not in ("float32", "float64"):
        raise ModelFileError(
            f"{label}: dtype must be float32 or float64, got {arch.get('dtype')!r}."
        )
    scale = document.get("input_scale")
    if (
        not isinstance(scale, (int, float))
        or isinstance(scale, bool)
        or not math.isfinite(scale)
        or scale <= 0
    ):
        raise ModelFileError(f"{label}: input_scale must be a positive number, got {scale!r}.")
    names = document.get("class_names")
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ModelFileError(f"{label}: class_names should be a list of strings.")
    if len(names) != sizes[-1]:
        raise ModelFileError(
            f"{label} names {len(names)} classes but the network has {sizes[-1]} outputs. "
            "The file is inconsistent; save the model again."
        )
    if any(len(n) > MAX_CLASS_NAME for n in names):
        raise ModelFileError(f"{label}: a class name is longer than {MAX_CLASS_NAME} characters.")
    shape = document.get("image_shape")
    if shape is not None and (
        not isinstance(shape, list)
        or len(shape) != 2
        or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in shape)
        or shape[0] * shape[1] != sizes[0]
    ):
        raise ModelFileError(
            f"{label}: image_shape {shape!r} does not match the network's {sizes[0]} inputs."
        )
    if not isinstance(document.get("training", {}), dict):
        raise ModelFileError(f"{label}: 'training' should be a JSON object.")
    return sizes, np.dtype(arch["dtype"])


def _check_declared_size(sizes: list[int], file_size: int, label: str) -> None:
    """Refuse layer sizes whose weights would decompress to far more than the file holds.

    Trained weights hardly compress, so a small file declaring huge layers is a
    compression bomb (e.g. 16 zero-filled 4096x4096 layers in a few MB), not a model.
    """
    n_params = sum(sizes[i] * sizes[i + 1] + sizes[i + 1] for i in range(len(sizes) - 1))
    if n_params * 8 > COMPRESSION_SLACK * file_size + 2**20:
        raise ModelFileError(
            f"{label} declares layer sizes {sizes} ({n_params:,} weights), far more than its "
            f"{file_size:,} bytes can hold. The file is damaged or not a digitlab model; save "
            "the model again."
        )


def _read_layers(
    archive: zipfile.ZipFile,
    members: dict[str, zipfile.ZipInfo],
    sizes: list[int],
    label: str,
) -> list[np.ndarray]:
    expected: dict[str, tuple[int, ...]] = {}
    for i in range(len(sizes) - 1):
        expected[f"W{i}"] = (sizes[i], sizes[i + 1])
        expected[f"b{i}"] = (sizes[i + 1],)
    present = {name.removesuffix(".npy") for name in members} - {"config_json"}
    missing = [k for k in expected if k not in present]
    extra = sorted(present - set(expected))
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing {', '.join(missing)}")
        if extra:
            parts.append(f"unexpected {', '.join(extra[:5])}")
        raise ModelFileError(
            f"{label} does not match its configuration ({'; '.join(parts)} for layer sizes "
            f"{sizes}). The file is damaged or was edited; save the model again."
        )
    arrays = []
    for key, shape in expected.items():
        info = members[f"{key}.npy"]
        found_shape, dtype = _read_npy_header(archive, info, label)
        if dtype.kind != "f" or dtype.itemsize not in (4, 8):
            raise ModelFileError(
                f"{label}: {key} is {dtype}, but weights must be float32 or float64. Save the "
                "model with digitlab."
            )
        if tuple(found_shape) != shape:
            raise ModelFileError(
                f"{label}: {key} has shape {tuple(found_shape)} but the configuration (layer "
                f"sizes {sizes}) needs {shape}. The file is inconsistent; save the model again."
            )
        if info.file_size > dtype.itemsize * math.prod(shape) + 4096:
            raise ModelFileError(f"{label}: {key} holds more data than its shape says.")
        array = _load_member(archive, info, label)
        if not np.all(np.isfinite(array)):
            raise ModelFileError(
                f"{label}: {key} contains NaN or infinite values (the training diverged). "
                "Train again with a lower learning rate."
            )
        arrays.append(array)
    return arrays


def _build(
    document: dict, sizes: list[int], dtype: np.dtype, arrays: list[np.ndarray], label: str
) -> LoadedModel:
    arch = document["architecture"]
    model = MLP(
        sizes[0],
        sizes[1:-1],
        sizes[-1],
        activation=arch["activation"],
        init=arch["init"],
        dtype=dtype.name,
        seed=0,
        input_scale=float(document["input_scale"]),
    )
    with np.errstate(over="raise"):
        try:
            for i in range(len(sizes) - 1):
                model.weights[i][...] = arrays[2 * i]
                model.biases[i][...] = arrays[2 * i + 1]
        except FloatingPointError as exc:
            raise ModelFileError(
                f"{label}: its float64 weights overflow {dtype.name}. Save the model again."
            ) from exc
    shape = document.get("image_shape")
    return LoadedModel(
        model=model,
        class_names=tuple(document["class_names"]),
        image_shape=None if shape is None else (shape[0], shape[1]),
        training=dict(document.get("training") or {}),
        config=document,
    )
