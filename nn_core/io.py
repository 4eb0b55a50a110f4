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
import functools
import io
import json
import math
import os
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from nn_core.network import MLP
from nn_core.safe_read import (
    ARCHIVE_ERRORS,
    InputFileError,
    Source,
    file_name,
    read_bounded,
    read_npy,
)

FORMAT = "digitlab-mlp"
FORMAT_VERSION = 1
MAX_BYTES = 50 * 1024**2
MAX_WIDTH = 4096
MAX_LAYERS = 16
MAX_CONFIG_BYTES = 1024**2
MAX_CLASS_NAME = 200
# Weights may take this many times the file's size once decompressed (see load_model).
COMPRESSION_SLACK = 8
SAVE_AGAIN = "Save the model again with digitlab."


class ModelFileError(InputFileError):
    """A model file that cannot be loaded; the message says why and what to do."""


_read_array = functools.partial(read_npy, error=ModelFileError, fix=SAVE_AGAIN)


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
def load_model(
    source: Source,
    *,
    max_bytes: int = MAX_BYTES,
    check_memory: Callable[[list[int], str], None] | None = None,
) -> LoadedModel:
    """Read a digitlab model file safely.

    Parameters
    ----------
    source : path, bytes or binary file-like
        A file path, the file's bytes, or an open binary file (e.g. Streamlit's
        ``UploadedFile``), rewound first when it is seekable.
    max_bytes : int
        Files larger than this are refused before being read.
    check_memory : callable, optional
        ``check_memory(sizes, dtype)`` is called with the declared layer sizes and dtype
        before any weight array is read; it raises ``ValueError`` (e.g.
        ``nn_core.memory.MemoryBudgetError``) to refuse a model too large to hold.

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
    name = file_name(source)
    label = f"The model file {name}" if name else "The model file"
    data = read_bounded(
        source, label=label, max_bytes=max_bytes, error=ModelFileError, kind="a .npz model file"
    )
    if not data:
        raise ModelFileError(f"{label} is empty. Save the model again.")
    if not data.startswith(b"PK"):
        raise ModelFileError(
            f"{label} is not a digitlab model: those are .npz (zip) archives. "
            "Choose a .npz saved by digitlab (Download model, or `python -m nn_core train "
            "--out model.npz`)."
        )
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        members = {info.filename: info for info in archive.infolist()}
    except ARCHIVE_ERRORS as exc:
        raise ModelFileError(
            f"{label} is damaged or truncated ({exc}). Download or save the model again."
        ) from exc
    with archive:
        document = _read_config(archive, members, label)
        sizes = _check_config(document, label)
        _check_declared_size(sizes, len(data), label)
        if check_memory is not None:
            try:
                check_memory(sizes, document["architecture"]["dtype"])
            except ValueError as exc:
                raise ModelFileError(str(exc)) from exc
        model = _empty_model(document, sizes, label)
        _read_layers(archive, members, model, label)
    shape = document.get("image_shape")
    return LoadedModel(
        model=model,
        class_names=tuple(document["class_names"]),
        image_shape=None if shape is None else (shape[0], shape[1]),
        training=dict(document.get("training") or {}),
        config=document,
    )


def _read_config(archive: zipfile.ZipFile, members: dict[str, zipfile.ZipInfo], label: str) -> dict:
    info = members.get("config_json.npy")
    if info is None:
        raise ModelFileError(
            f"{label} has no 'config_json' entry, so it is not a digitlab model (a plain "
            "NumPy archive, perhaps). Save the model with digitlab."
        )

    def plausible(shape: tuple[int, ...], dtype: np.dtype) -> None:
        if math.prod(shape) * dtype.itemsize > MAX_CONFIG_BYTES:
            raise ModelFileError(
                f"{label}: its configuration declares shape {shape}, implausibly large for a "
                f"digitlab model; refusing it. {SAVE_AGAIN}"
            )

    raw = _read_array(archive, info, label=label, max_bytes=MAX_CONFIG_BYTES, check=plausible)
    if raw.dtype == np.uint8 and raw.ndim == 1:
        text_bytes = raw.tobytes()
    elif raw.dtype.kind == "S" and raw.ndim <= 1 and raw.size == 1:
        text_bytes = raw.reshape(()).item()
    elif raw.dtype.kind == "U" and raw.ndim <= 1 and raw.size == 1:
        text_bytes = str(raw.reshape(()).item()).encode("utf-8")
    else:
        raise ModelFileError(
            f"{label}: 'config_json' should be a 1-d uint8 array of UTF-8 JSON, got "
            f"{raw.dtype} of shape {raw.shape}. {SAVE_AGAIN}"
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


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_config(document: dict, label: str) -> list[int]:
    """Check what ``MLP(...)`` does not: the format, the sizes' bounds and the metadata.

    Returns
    -------
    list of int
        The layer sizes [inputs, hidden..., classes].
    """

    def require(ok: bool, problem: str) -> None:
        if not ok:
            raise ModelFileError(label + problem)

    fmt, version = document.get("format"), document.get("format_version")
    require(fmt == FORMAT, f" is of format {fmt!r:.80}, not {FORMAT!r}. Load a digitlab model.")
    require(_is_int(version) and version >= 1, f": format_version {version!r:.80} is not valid.")
    require(
        version <= FORMAT_VERSION,
        f" was written by a newer digitlab (format version {version}); this one reads up to "
        f"version {FORMAT_VERSION}. Upgrade digitlab to load it.",
    )
    arch = document.get("architecture")
    require(isinstance(arch, dict), ": the configuration has no 'architecture' object.")
    sizes = arch.get("sizes")
    require(
        isinstance(sizes, list) and len(sizes) >= 2 and all(map(_is_int, sizes)),
        f": architecture.sizes should be a list of at least 2 integers, got {sizes!r:.80}.",
    )
    layers = len(sizes) - 1
    require(
        layers <= MAX_LAYERS, f" declares {layers} layers; digitlab loads at most {MAX_LAYERS}."
    )
    require(
        all(1 <= s <= MAX_WIDTH for s in sizes),
        f" declares layer sizes {sizes}; each must be between 1 and {MAX_WIDTH}.",
    )
    for key in ("activation", "init", "dtype"):  # MLP(...) checks the names themselves
        value = arch.get(key)
        require(
            isinstance(value, str), f": architecture.{key} should be a name, not {value!r:.80}."
        )
    scale = document.get("input_scale")
    require(
        isinstance(scale, (int, float)) and not isinstance(scale, bool) and 0 < scale < math.inf,
        f": input_scale must be a positive number, got {scale!r:.80}.",
    )
    names = document.get("class_names")
    require(
        isinstance(names, list) and all(isinstance(n, str) for n in names),
        ": class_names should be a list of strings.",
    )
    require(
        len(names) == sizes[-1],
        f" names {len(names)} classes but the network has {sizes[-1]} outputs. The file is "
        "inconsistent; save the model again.",
    )
    require(
        all(len(n) <= MAX_CLASS_NAME for n in names),
        f": a class name is longer than {MAX_CLASS_NAME} characters.",
    )
    shape = document.get("image_shape")
    require(
        shape is None
        or (
            isinstance(shape, list)
            and len(shape) == 2
            and all(_is_int(s) and s > 0 for s in shape)
            and shape[0] * shape[1] == sizes[0]
        ),
        f": image_shape {shape!r:.80} does not match the network's {sizes[0]} inputs.",
    )
    require(isinstance(document.get("training", {}), dict), ": 'training' should be a JSON object.")
    return sizes


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


def _empty_model(document: dict, sizes: list[int], label: str) -> MLP:
    """The network the configuration describes, before its weights are read."""
    arch = document["architecture"]
    try:
        return MLP(
            sizes[0],
            sizes[1:-1],
            sizes[-1],
            activation=arch["activation"],
            init=arch["init"],
            dtype=arch["dtype"],
            seed=0,
            input_scale=float(document["input_scale"]),
        )
    except (ValueError, TypeError) as exc:
        raise ModelFileError(f"{label}: {exc}. {SAVE_AGAIN}") from exc


def _read_layers(
    archive: zipfile.ZipFile, members: dict[str, zipfile.ZipInfo], model: MLP, label: str
) -> None:
    """Copy each stored ``Wi``, ``bi`` into ``model`` after checking its shape and values."""
    targets = {}
    for i, (weight, bias) in enumerate(zip(model.weights, model.biases)):
        targets[f"W{i}"], targets[f"b{i}"] = weight, bias
    present = {name.removesuffix(".npy") for name in members} - {"config_json"}
    missing = [k for k in targets if k not in present]
    extra = sorted(present - set(targets))
    if missing or extra:
        parts = [f"missing {', '.join(missing)}"] if missing else []
        parts += [f"unexpected {', '.join(extra[:5])}"] if extra else []
        raise ModelFileError(
            f"{label} does not match its configuration ({'; '.join(parts)} for layer sizes "
            f"{list(model.sizes)}). The file is damaged or was edited; save the model again."
        )
    for key, target in targets.items():

        def fits(shape: tuple[int, ...], dtype: np.dtype, key=key, target=target) -> None:
            if dtype.kind != "f" or dtype.itemsize not in (4, 8):
                raise ModelFileError(
                    f"{label}: {key} is {dtype}, but weights must be float32 or float64. "
                    "Save the model with digitlab."
                )
            if tuple(shape) != target.shape:
                raise ModelFileError(
                    f"{label}: {key} has shape {tuple(shape)} but the configuration (layer "
                    f"sizes {list(model.sizes)}) needs {target.shape}. The file is "
                    "inconsistent; save the model again."
                )

        info = members[f"{key}.npy"]
        array = _read_array(archive, info, label=label, max_bytes=8 * target.size, check=fits)
        if not np.all(np.isfinite(array)):
            raise ModelFileError(
                f"{label}: {key} contains NaN or infinite values (the training diverged). "
                "Train again with a lower learning rate."
            )
        with np.errstate(over="raise"):
            try:
                target[...] = array
            except FloatingPointError as exc:
                raise ModelFileError(
                    f"{label}: its float64 weights overflow {model.dtype.name}. "
                    "Save the model again."
                ) from exc
