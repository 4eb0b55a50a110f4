"""One training run as a record that can be kept, exported and imported again.

A ``RunRecord`` holds a run's settings, its per-batch and per-epoch history, its final
figures and (usually) its trained network. It can be written as a *run file* and read back,
and the command line's two outputs (``--metrics-json`` and ``--out``) read as a run too, so
command-line experiments can be compared with the app's.

Run file format ("digitlab-run", version 1): a zip archive holding

``run.json``
    UTF-8 JSON: ``format``, ``format_version``, ``name``, ``status``, ``created`` (ISO 8601),
    ``origin``, ``config`` (``TrainConfig.to_dict``), ``data`` (name, sizes, test source),
    ``metrics`` (final figures), ``history`` (``History.to_dict``: per-batch and per-epoch
    lists, NaN written as null) and ``error`` (why a failed run failed, or null).
``model.npz``
    The network, a digitlab model file (``nn_core.io``); absent for a run without one.

Reading never unpickles: the archive's members are size-checked before they are read, the
JSON is checked key by key, and the model goes through ``nn_core.io.load_model``. Anything
else raises ``RunFileError`` with one sentence saying what is wrong and what to do.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import math
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from nn_core.config import TrainConfig
from nn_core.io import MAX_BYTES as MAX_MODEL_BYTES
from nn_core.io import LoadedModel, ModelFileError, jsonable, load_model, save_model
from nn_core.network import MLP
from nn_core.safe_read import ARCHIVE_ERRORS, InputFileError, Source, file_name, read_bounded
from nn_core.training import History, Trainer

FORMAT = "digitlab-run"
FORMAT_VERSION = 1
RUN_JSON = "run.json"
MODEL_NPZ = "model.npz"
MAX_JSON_BYTES = 16 * 1024**2
MAX_RUN_BYTES = MAX_MODEL_BYTES + MAX_JSON_BYTES
MAX_HISTORY = 2_000_000  # values per history list (30 epochs of MNIST at batch 16: 100,000)
MAX_NAME = 200
STATUSES = ("running", "stopped", "finished", "diverged", "failed")
BATCH_KEYS = tuple(k for k in History().to_dict() if k.startswith("batch_"))
EPOCH_KEYS = tuple(k for k in History().to_dict() if k not in BATCH_KEYS)
# The command line's metrics JSON keys its per-epoch lists like History.
CLI_EPOCH_KEYS = EPOCH_KEYS
NUMBER_METRICS = (
    "epochs", "seconds", "n_params", "n_train", "n_val", "n_test", "final_train_loss",
    "final_val_accuracy", "best_val_accuracy", "test_accuracy", "test_loss",
)  # fmt: skip
RUN_FILE_FIX = "Export the run again from digitlab."


class RunFileError(InputFileError):
    """A run file (or metrics and model files) that cannot be imported; says why and what to do."""


@dataclass
class RunRecord:
    """A training run: settings, history, final figures and the trained network.

    Attributes
    ----------
    name : str
        For people; editable.
    config : TrainConfig
    status : {"running", "stopped", "finished", "diverged", "failed"}
    history : dict of str to list of float
        ``History.to_dict()``: per batch ``batch_progress``, ``batch_loss``,
        ``batch_accuracy`` (empty when dropped or unknown) and per epoch the rest.
    metrics : dict
        Final figures: ``epochs``, ``seconds``, ``n_params``, ``n_train``, ``n_val``,
        ``n_test``, ``final_train_loss``, ``final_val_accuracy``, ``best_val_accuracy``,
        ``test_accuracy``, ``test_loss`` (float or None) and ``stop_reason`` (str or None).
    data : dict
        ``name``, ``test_source`` and ``image_shape`` of the data it was trained on.
    model : MLP or None
        None when the run has no network (failed, or imported from metrics alone).
    class_names : tuple of str
    created : str
        ISO 8601 time the run started (UTC).
    origin : str
        Where it comes from: "app", "sweep", "cli" or "import".
    error : str or None
        Why a failed run failed.
    """

    name: str
    config: TrainConfig
    status: str
    history: dict[str, list[float]] = field(default_factory=lambda: History().to_dict())
    metrics: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    model: MLP | None = None
    class_names: tuple[str, ...] = ()
    created: str = ""
    origin: str = "app"
    error: str | None = None

    @property
    def architecture(self) -> list[int]:
        """Layer sizes [inputs, hidden..., classes], or just the hidden widths without a
        model."""
        if self.model is not None:
            return list(self.model.sizes)
        return list(self.metrics.get("architecture") or self.config.hidden)

    def has_batch_history(self) -> bool:
        return bool(self.history.get("batch_loss"))

    def without_batch_history(self) -> RunRecord:
        """A copy whose per-batch lists are empty (per-epoch history and model kept)."""
        history = {k: ([] if k in BATCH_KEYS else list(v)) for k, v in self.history.items()}
        return replace(self, history=history)


# ---------------------------------------------------------------------- from a run
def now_iso() -> str:
    """The current UTC time as ISO 8601 to the second."""
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()


def status_of(trainer: Trainer) -> str:
    """The run's status: diverged, finished (target reached or stopped early) or stopped."""
    reason = trainer.stop_reason or ""
    if getattr(trainer, "divergence", None) is not None or reason.startswith("Training diverged"):
        return "diverged"
    if trainer.epochs_done >= trainer.target_epochs or reason.startswith("Early stopping"):
        return "finished"
    return "stopped"


def record_from_trainer(
    trainer: Trainer,
    dataset: Any,
    *,
    name: str,
    created: str | None = None,
    origin: str = "app",
    score_test: bool = True,
) -> RunRecord:
    """A record of ``trainer``'s run, scoring its network on ``dataset``'s test part.

    Parameters
    ----------
    trainer : Trainer
    dataset : nn_core.data.Dataset
        The data the run was trained on (``x_test``, ``y_test``, ``name``, ...).
    name : str
    created : str, optional
        ISO time the run started; now by default.
    origin : str
    score_test : bool
        Score the test part (a forward pass over it); False leaves the test figures None.

    Returns
    -------
    RunRecord
        With a copy of the network, so that training on does not change the record.
    """
    from nn_core.metrics import evaluate

    summary = trainer.summary()
    model = trainer.model.copy()
    test: dict = {}
    if score_test and len(dataset.y_test):
        scored = evaluate(model, dataset.x_test, dataset.y_test, dataset.n_classes)
        test = {"test_accuracy": scored["accuracy"], "test_loss": scored["loss"]}
    val = [v for v in trainer.history.val_accuracy if math.isfinite(v)]
    metrics = {
        "epochs": trainer.epochs_done,
        "seconds": trainer.seconds_trained,
        "n_params": int(model.n_params),
        "n_train": int(trainer.n_train),
        "n_val": int(trainer.y_val.shape[0]),
        "n_test": len(dataset.y_test),
        "final_train_loss": summary["final_train_loss"],
        "final_val_accuracy": summary["final_val_accuracy"],
        "best_val_accuracy": max(val) if val else None,
        "test_accuracy": test.get("test_accuracy"),
        "test_loss": test.get("test_loss"),
        "stop_reason": trainer.stop_reason,
    }
    return RunRecord(
        name=name,
        config=trainer.config,
        status=status_of(trainer),
        history=trainer.history.to_dict(),
        metrics=metrics,
        data=_data_summary(dataset),
        model=model,
        class_names=tuple(dataset.class_names),
        created=created or now_iso(),
        origin=origin,
    )


def failed_record(
    config: TrainConfig, *, name: str, error: str, origin: str = "sweep", dataset: Any = None
) -> RunRecord:
    """A run that produced nothing (its process died, its settings could not train)."""
    return RunRecord(
        name=name,
        config=config,
        status="failed",
        data={} if dataset is None else _data_summary(dataset),
        class_names=() if dataset is None else tuple(dataset.class_names),
        created=now_iso(),
        origin=origin,
        error=error,
    )


def _data_summary(dataset: Any) -> dict:
    return {
        "name": str(dataset.name),
        "test_source": str(dataset.test_source),
        "image_shape": list(dataset.image_shape),
    }


# ---------------------------------------------------------------------- export
def export_run(record: RunRecord) -> bytes:
    """The run file's bytes (see the module docstring)."""
    document = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "name": record.name,
        "status": record.status,
        "created": record.created,
        "origin": record.origin,
        "config": record.config.to_dict(),
        "data": record.data,
        "metrics": record.metrics,
        "history": record.history,
        "class_names": list(record.class_names),
        "error": record.error,
    }
    text = json.dumps(jsonable(document), allow_nan=False, ensure_ascii=False)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(RUN_JSON, text.encode("utf-8"))
        if record.model is not None:
            archive.writestr(MODEL_NPZ, model_bytes(record), compress_type=zipfile.ZIP_STORED)
    return buffer.getvalue()


def model_bytes(record: RunRecord) -> bytes:
    """The run's network as a digitlab model file (``nn_core.io``), metadata included."""
    if record.model is None:
        raise ValueError(f"the run {record.name!r} has no trained network")
    buffer = io.BytesIO()
    shape = record.data.get("image_shape")
    save_model(
        buffer,
        record.model,
        class_names=record.class_names or None,
        training={**record.metrics, "config": record.config.to_dict(), "run": record.name},
        image_shape=shape if shape and shape[0] * shape[1] == record.model.sizes[0] else None,
    )
    return buffer.getvalue()


def metrics_document(record: RunRecord) -> dict:
    """The run as the command line's ``--metrics-json`` writes it (importable again)."""
    m = record.metrics
    return {
        "dataset": record.data.get("name"),
        "preset": None,
        "config": record.config.to_dict(),
        "architecture": record.architecture,
        "n_params": m.get("n_params"),
        "n_train": m.get("n_train"),
        "n_val": m.get("n_val"),
        "n_test": m.get("n_test"),
        "epochs": m.get("epochs"),
        "seconds": m.get("seconds"),
        "test_accuracy": m.get("test_accuracy"),
        "test_loss": m.get("test_loss"),
        "test_source": record.data.get("test_source"),
        "val_accuracy": m.get("final_val_accuracy"),
        "stop_reason": m.get("stop_reason"),
        "status": record.status,
        "error": record.error,
        "class_names": list(record.class_names),
        "history": {key: record.history.get(key, []) for key in CLI_EPOCH_KEYS},
        "batch_history": {key: record.history.get(key, []) for key in BATCH_KEYS},
    }


# ---------------------------------------------------------------------- import
def load_run(source: Source, *, max_bytes: int = MAX_RUN_BYTES) -> RunRecord:
    """Read a run file (path, bytes or binary file-like) exported by ``export_run``.

    Raises
    ------
    RunFileError
        For anything but a well-formed run file: not a zip, damaged, foreign members,
        oversized members, JSON that is not a digitlab run or has values of the wrong kind,
        or a model that ``nn_core.io.load_model`` refuses or that disagrees with the run.
    """
    label = _label(source, "The run file")
    data = read_bounded(
        source, label=label, max_bytes=max_bytes, error=RunFileError, kind="a digitlab run file"
    )
    if not data.startswith(b"PK"):
        raise RunFileError(
            f"{label} is not a digitlab run file: those are zip archives. Export the run from "
            "digitlab's Runs page, or import a command-line run's metrics JSON with its model."
        )
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = _check_members(archive, label)
            document = _parse_json(_read_member(archive, members[RUN_JSON], label), label)
            raw_model = members.get(MODEL_NPZ)
            model_data = None if raw_model is None else _read_member(archive, raw_model, label)
    except RunFileError:
        raise
    except ARCHIVE_ERRORS as exc:
        raise RunFileError(f"{label} is damaged or truncated ({exc}). {RUN_FILE_FIX}") from exc
    if document.get("format") != FORMAT:
        raise RunFileError(
            f"{label} is of format {document.get('format')!r}, not {FORMAT!r}. {RUN_FILE_FIX}"
        )
    _check_version(document, label)
    loaded = None if model_data is None else _load_model(model_data, f"{label} (its model)")
    return _record_from_document(document, loaded, label, origin=None)


def load_cli_run(
    metrics_source: Source, model_source: Source | None = None, *, name: str | None = None
) -> RunRecord:
    """A run from the command line's ``--metrics-json`` file and, optionally, its ``--out``
    model (a run without a network otherwise).

    Raises
    ------
    RunFileError
        When the metrics file is not one the command line wrote, or the model is refused by
        ``nn_core.io.load_model`` or belongs to another run (other layer sizes).
    """
    label = _label(metrics_source, "The metrics file")
    raw = read_bounded(
        metrics_source, label=label, max_bytes=MAX_JSON_BYTES, error=RunFileError,
        kind="a metrics JSON file",
    )  # fmt: skip
    document = _parse_json(raw, label)
    if not {"config", "history"} <= document.keys():
        raise RunFileError(
            f"{label} is not a digitlab metrics file: it lacks 'config' and 'history'. Use the "
            "file that `python -m nn_core train --metrics-json FILE` wrote."
        )
    loaded = None
    if model_source is not None:
        loaded = _load_model(model_source, _label(model_source, "The model file"))
    stem = (file_name(metrics_source) or "command-line run").removesuffix(".json")
    converted = _from_cli_document(document, name or stem)
    return _record_from_document(converted, loaded, label, origin="cli")


def load_model_run(model_source: Source, *, name: str | None = None) -> RunRecord:
    """A run from a model file alone: its stored settings and final figures, no history."""
    label = _label(model_source, "The model file")
    loaded = _load_model(model_source, label)
    training = loaded.training
    if not isinstance(training.get("config"), dict):
        raise RunFileError(
            f"{label} does not say how it was trained (no settings stored with it), so it "
            "cannot be compared as a run. Load it on the Models page instead."
        )
    stem = (file_name(model_source) or "model").removesuffix(".npz")
    document = {
        "name": name or stem,
        "status": "stopped" if training.get("stop_reason") else "finished",
        "config": training["config"],
        "metrics": {k: v for k, v in training.items() if k != "config"},
        "data": {"name": training.get("dataset"), "test_source": training.get("test_source")},
        "history": {},
    }
    return _record_from_document(document, loaded, label, origin="import")


def import_run_files(files: Sequence[tuple[str, Source]]) -> RunRecord:
    """A run from what a person uploads: a run file; a metrics JSON with or without its
    model; or a model file alone.

    Parameters
    ----------
    files : sequence of (file name, source)
        One or two files.

    Raises
    ------
    RunFileError
        With one sentence on what to upload when the files are not one of those.
    """
    if not 1 <= len(files) <= 2:
        raise RunFileError(
            f"Import one run at a time: a run file, or a metrics JSON with its model file "
            f"(got {len(files)} files)."
        )
    jsons = [f for f in files if f[0].lower().endswith(".json")]
    others = [f for f in files if f not in jsons]
    if len(files) == 1 and not jsons:
        name, source = files[0]
        data = read_bounded(
            source, label=name, max_bytes=MAX_RUN_BYTES, error=RunFileError, kind="a run file"
        )
        if _is_model_file(data):
            return load_model_run(data, name=name.removesuffix(".npz"))
        return load_run(_Named(data, name))
    if len(jsons) != 1:
        raise RunFileError(
            "Two files import as one run only as a metrics JSON and its model (.npz); got "
            f"{', '.join(f[0] for f in files)}."
        )
    (json_name, json_source), model = jsons[0], (others[0] if others else None)
    return load_cli_run(
        _Named(json_source, json_name),
        None if model is None else _Named(model[1], model[0]),
        name=json_name.removesuffix(".json"),
    )


class _Named(io.BytesIO):
    """Bytes (or another source's bytes) under a file name, for messages."""

    def __init__(self, source: Source, name: str) -> None:
        if not isinstance(source, (bytes, bytearray, memoryview)):
            source = read_bounded(
                source, label=name, max_bytes=MAX_RUN_BYTES, error=RunFileError, kind="a file"
            )
        super().__init__(bytes(source))
        self.name = name


def _is_model_file(data: bytes) -> bool:
    """True for a zip whose members are .npy arrays with a config_json (a model file)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return "config_json.npy" in archive.namelist()
    except ARCHIVE_ERRORS:
        return False


def _label(source: Source, default: str) -> str:
    name = file_name(source)
    return f"{default.split(' file')[0]} file {name}" if name else default


def _check_members(archive: zipfile.ZipFile, label: str) -> dict[str, zipfile.ZipInfo]:
    infos = archive.infolist()
    names = [info.filename for info in infos]
    foreign = [n for n in names if n not in (RUN_JSON, MODEL_NPZ)]
    if foreign or len(set(names)) != len(names) or RUN_JSON not in names:
        shown = ", ".join(repr(n) for n in names[:5]) + (", ..." if len(names) > 5 else "")
        raise RunFileError(
            f"{label} is not a digitlab run file: a run file holds {RUN_JSON} and "
            f"{MODEL_NPZ}, this zip holds {shown or 'nothing'}. {RUN_FILE_FIX}"
        )
    members = {info.filename: info for info in infos}
    limits = {RUN_JSON: MAX_JSON_BYTES, MODEL_NPZ: MAX_MODEL_BYTES}
    for member, info in members.items():
        if info.file_size > limits[member]:
            raise RunFileError(
                f"{label}: its {member} declares {info.file_size:,} bytes, over the "
                f"{limits[member]:,}-byte limit. {RUN_FILE_FIX}",
                over_limit=True,
            )
    return members


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, label: str) -> bytes:
    """A member's bytes, never more than its declared (checked) size."""
    with archive.open(info) as f:
        data = f.read(info.file_size + 1)
    if len(data) != info.file_size:
        raise RunFileError(f"{label}: {info.filename} is damaged. {RUN_FILE_FIX}")
    return data


def _parse_json(raw: bytes, label: str) -> dict:
    try:
        document = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise RunFileError(f"{label} is not valid JSON ({exc}). {RUN_FILE_FIX}") from exc
    if not isinstance(document, dict):
        raise RunFileError(f"{label} should hold a JSON object, not {type(document).__name__}.")
    return document


def _check_version(document: dict, label: str) -> None:
    version = document.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise RunFileError(f"{label}: format_version {version!r} is not a positive integer.")
    if version > FORMAT_VERSION:
        raise RunFileError(
            f"{label} is of run format version {version}, newer than this digitlab reads "
            f"({FORMAT_VERSION}). Update digitlab."
        )


def _load_model(source: Source, label: str) -> LoadedModel:
    try:
        return load_model(source)
    except ModelFileError as exc:
        raise RunFileError(str(exc).replace("The model file", label, 1)) from exc


def _from_cli_document(document: dict, name: str) -> dict:
    """The command line's metrics JSON as a run document (``_record_from_document``)."""
    history = document.get("history")
    history = dict(history) if isinstance(history, dict) else {}
    batches = document.get("batch_history")
    if isinstance(batches, dict):
        history.update({k: v for k, v in batches.items() if k in BATCH_KEYS})
    numbers = {k: document.get(k) for k in NUMBER_METRICS if k in document}
    numbers["final_val_accuracy"] = document.get("val_accuracy")
    status = document.get("status")
    if status not in STATUSES:
        status = "finished" if not document.get("stop_reason") else "stopped"
    return {
        "name": name,
        "status": status,
        "config": document["config"],
        "metrics": {**numbers, "stop_reason": document.get("stop_reason")},
        "data": {"name": document.get("dataset"), "test_source": document.get("test_source")},
        "history": history,
        "class_names": document.get("class_names"),
        "architecture": document.get("architecture"),
        "error": document.get("error"),
    }


def _record_from_document(
    document: dict, loaded: LoadedModel | None, label: str, origin: str | None
) -> RunRecord:
    config = _config(document.get("config"), label)
    history = _history(document.get("history"), label)
    metrics = _metrics(document.get("metrics"), label)
    status = document.get("status")
    if status not in STATUSES:
        raise RunFileError(
            f"{label}: status {status!r} is not one of {', '.join(STATUSES)}. {RUN_FILE_FIX}"
        )
    model = None if loaded is None else loaded.model
    names = _class_names(document.get("class_names"), loaded, label)
    if model is not None:
        _check_model_matches(config, model, document.get("architecture"), label)
        metrics.setdefault("n_params", int(model.n_params))
    data = _data(document.get("data"), loaded)
    return RunRecord(
        name=_text(document.get("name"), "imported run")[:MAX_NAME],
        config=config,
        status=status,
        history=history,
        metrics=metrics,
        data=data,
        model=model,
        class_names=names,
        created=_text(document.get("created"), ""),
        origin=origin or _text(document.get("origin"), "import"),
        error=document.get("error") if isinstance(document.get("error"), str) else None,
    )


def _config(values: object, label: str) -> TrainConfig:
    if not isinstance(values, dict):
        raise RunFileError(f"{label}: its settings ('config') should be a JSON object.")
    try:
        return TrainConfig.from_dict(values)
    except (TypeError, ValueError, OverflowError) as exc:
        raise RunFileError(f"{label}: its settings are not valid ({exc}).") from exc


def _history(values: object, label: str) -> dict[str, list[float]]:
    history = History().to_dict()
    if values is None:
        return history
    if not isinstance(values, dict):
        raise RunFileError(f"{label}: its history should be a JSON object of lists.")
    for key in history:
        column = values.get(key, [])
        if not isinstance(column, list) or len(column) > MAX_HISTORY:
            raise RunFileError(
                f"{label}: history '{key}' should be a list of at most {MAX_HISTORY:,} numbers."
            )
        history[key] = [_number(v, f"history '{key}'", label) for v in column]
    for keys in (BATCH_KEYS, EPOCH_KEYS):
        lengths = {len(history[k]) for k in keys if history[k]}
        if len(lengths) > 1:
            raise RunFileError(
                f"{label}: its history lists {', '.join(keys)} have different lengths; the "
                f"file was edited or damaged. {RUN_FILE_FIX}"
            )
    return history


def _number(value: object, what: str, label: str) -> float:
    if value is None:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RunFileError(f"{label}: {what} holds {value!r}, not a number. {RUN_FILE_FIX}")
    try:
        return float(value)
    except OverflowError as exc:  # an integer with hundreds of digits
        raise RunFileError(f"{label}: {what} holds a number too large. {RUN_FILE_FIX}") from exc


def _metrics(values: object, label: str) -> dict[str, Any]:
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise RunFileError(f"{label}: its final figures ('metrics') should be a JSON object.")
    metrics: dict[str, Any] = {}
    for key in NUMBER_METRICS:
        value = values.get(key)
        metrics[key] = None if value is None else _number(value, f"metric '{key}'", label)
        if metrics[key] is not None and not math.isfinite(metrics[key]):
            metrics[key] = None
    for key in ("epochs", "n_params", "n_train", "n_val", "n_test"):
        if metrics[key] is not None:
            metrics[key] = int(metrics[key])
    reason = values.get("stop_reason")
    metrics["stop_reason"] = reason[:2000] if isinstance(reason, str) else None
    return metrics


def _class_names(values: object, loaded: LoadedModel | None, label: str) -> tuple[str, ...]:
    if loaded is not None:
        return tuple(loaded.class_names)
    if values is None:
        return ()
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise RunFileError(f"{label}: 'class_names' should be a list of strings.")
    return tuple(v[:MAX_NAME] for v in values[:10_000])


def _check_model_matches(config: TrainConfig, model: MLP, architecture: object, label: str) -> None:
    hidden = tuple(model.sizes[1:-1])
    stated = architecture if isinstance(architecture, list) else None
    if hidden != config.hidden or (stated is not None and stated != list(model.sizes)):
        raise RunFileError(
            f"{label} describes a {'-'.join(map(str, stated or config.hidden))} network but "
            f"the model is {'-'.join(map(str, model.sizes))}: they come from different runs. "
            "Choose the metrics file and the model file of the same run."
        )


def _data(values: object, loaded: LoadedModel | None) -> dict:
    values = values if isinstance(values, dict) else {}
    shape = values.get("image_shape")
    if loaded is not None and loaded.image_shape is not None:
        shape = list(loaded.image_shape)
    ok_shape = (
        isinstance(shape, list)
        and len(shape) == 2
        and all(isinstance(s, int) and not isinstance(s, bool) and 0 < s < 10_000 for s in shape)
    )
    return {
        "name": _text(values.get("name"), "unknown data")[:MAX_NAME],
        "test_source": _text(values.get("test_source"), "")[: MAX_NAME * 2],
        "image_shape": shape if ok_shape else None,
    }


def _text(value: object, default: str) -> str:
    return value if isinstance(value, str) else default


def history_arrays(record: RunRecord) -> dict[str, np.ndarray]:
    """The record's history as float64 arrays (NaN where a figure is missing)."""
    return {key: np.asarray(values, dtype=np.float64) for key, values in record.history.items()}
