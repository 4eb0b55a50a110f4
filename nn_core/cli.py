"""Command line: ``python -m nn_core {train,evaluate,predict}`` (each has ``--help``).

Exit status: 0 on success, 2 for bad arguments (one ``error: ...`` line on stderr),
1 for data or model files that cannot be used (one line too), 3 when ``train`` diverged
(one line with the fix; nothing is saved), 130 when interrupted (Ctrl-C): ``train`` then
stops after the current batch and saves what was trained first.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import signal
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from nn_core.config import PRESETS, TrainConfig
from nn_core.settings import SETTINGS, TRAIN_SUBSET, Setting, parse_hidden

PROG = "python -m nn_core"
INTERRUPTED = 130
DIVERGED = 3
# An image's pixels are decoded only below this: a 10000x10000 PNG takes over 1 GB.
MAX_IMAGE_PIXELS = 40_000_000
PER_EPOCH_KEYS = (
    "epoch",
    "train_loss",
    "train_accuracy",
    "val_loss",
    "val_accuracy",
    "learning_rate",
    "seconds_per_epoch",
    "samples_per_second",
)

NOTEBOOK_NOTE = (
    "This preset is the classic notebook's network and loop (784-10-10 with ReLU, plain "
    "gradient descent at lr 0.1, 500 full-batch iterations, 40% held out), not its data or "
    "its bugs. The notebook trains on Kaggle's 42,000-image train.csv split 60/40 at "
    "random, prints its training accuracy every 20 iterations and never scores the 40%; "
    "as written, its back-propagation reads an undefined W2 and cannot run. This preset "
    "trains on MNIST's 60,000 images with pixels scaled to 0..1 and He initialisation "
    "(instead of raw 0..255 pixels and uniform [0, 1) weights), scores its held-out 40% "
    "every 10 iterations, and reports the official 10,000-image test set."
)


class UsageError(Exception):
    """Bad command-line arguments: exit status 2."""


class InputFileError(Exception):
    """A data, image or model file that cannot be used: exit status 1."""


class _Parser(argparse.ArgumentParser):
    """argparse, but errors are one line on stderr and exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{message} (see `{self.prog} --help`)")


# ------------------------------------------------------------------------- parsing
def hidden_widths(text: str) -> tuple[int, ...]:
    """``--hidden``: ``"128,64"`` -> (128, 64); ``"none"`` or ``"0"`` -> ()."""
    try:
        return parse_hidden(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--hidden takes comma-separated layer widths like 128,64 (or none), got {text!r}"
        ) from None


def finite_float(text: str) -> float:
    """A float flag: ``inf`` and ``nan`` are refused here, with the flag named by argparse."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(text)
    return value


finite_float.__name__ = "finite number"  # argparse names the type in its message


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description="Train, evaluate and use digitlab's NumPy neural network on digit images.",
    )
    sub = parser.add_subparsers(
        dest="command", metavar="{train,evaluate,predict,sweep,lr-find,finetune}"
    )
    sub.required = True
    _add_train(sub)
    _add_evaluate(sub)
    _add_predict(sub)
    from nn_core.cli_experiments import add_experiment_commands  # sweep, lr-find

    add_experiment_commands(sub)
    from nn_core.cli_finetune import add_finetune_command  # finetune

    add_finetune_command(sub)
    return parser


def _add_setting(p: argparse.ArgumentParser, setting: Setting) -> None:
    """One flag from the settings table (nn_core.settings)."""
    options: dict = {"dest": setting.name, "help": setting.help}
    if setting.kind is tuple:
        options["type"] = hidden_widths
    elif setting.kind is bool:
        options["action"] = argparse.BooleanOptionalAction
    elif setting.kind is str:
        options["choices"] = list(setting.choices)
    elif setting.kind is float:
        options["type"] = finite_float
    else:
        options.update(type=int, metavar="N")
    p.add_argument(setting.flag, **options)


def add_training_flags(p: argparse.ArgumentParser) -> None:
    """The data and training-settings flags of ``train`` (shared by ``sweep`` and ``lr-find``)."""
    p.add_argument("--data", default="mnist", help="'mnist' (default) or a .csv/.npz/IDX folder")
    p.add_argument("--preset", choices=sorted(PRESETS), help="start from a named setup")
    for setting in SETTINGS:
        _add_setting(p, setting)
    p.add_argument(TRAIN_SUBSET.flag, type=int, metavar="N", help=TRAIN_SUBSET.help)
    p.add_argument(
        "--test-fraction",
        type=float,
        default=0.15,
        help="held-out test share for data without a test set (default 0.15)",
    )


def _add_train(sub) -> None:
    p = sub.add_parser(
        "train",
        help="train a network and report its test accuracy",
        description=(
            "Train an MLP. A --preset sets every default; explicit flags override it. "
            "Without a preset the defaults are TrainConfig's. Ctrl-C stops after the "
            "current batch, saves what was trained (--out) and exits with status 130."
        ),
    )
    add_training_flags(p)
    p.add_argument("--out", type=Path, metavar="MODEL.npz", help="save the trained model here")
    p.add_argument("--metrics-json", type=Path, metavar="FILE", help="write the run's metrics")
    p.add_argument("--force", action="store_true", help=FORCE_HELP)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_train)


FORCE_HELP = "overwrite --out (and --metrics-json) even if it is not a file digitlab wrote"


def _add_evaluate(sub) -> None:
    p = sub.add_parser(
        "evaluate",
        help="accuracy, confusion matrix and per-class scores of a saved model",
        description="Evaluate a saved model on the test part of a data set.",
    )
    p.add_argument("--model", type=Path, required=True, metavar="MODEL.npz")
    p.add_argument("--data", default="mnist", help="'mnist' (default) or a .csv/.npz/IDX folder")
    p.add_argument("--test-fraction", type=float, default=0.15)
    p.add_argument("--json", action="store_true", help="print JSON instead of tables")
    p.set_defaults(func=cmd_evaluate)


def _add_predict(sub) -> None:
    p = sub.add_parser(
        "predict",
        help="classify image files, or a Kaggle test.csv into a submission",
        description=(
            "Classify each image (PNG/JPG/..., any size up to "
            f"{MAX_IMAGE_PIXELS // 10**6} megapixels; preprocessed like MNIST). A .csv of "
            "unlabelled images (Kaggle's test.csv) is written as a submission to --out."
        ),
    )
    p.add_argument("--model", type=Path, required=True, metavar="MODEL.npz")
    p.add_argument("inputs", nargs="+", type=Path, metavar="IMAGE", help="images or one .csv")
    p.add_argument(
        "--out",
        type=Path,
        default=Path("predictions.csv"),
        help="submission file for a .csv input (default predictions.csv)",
    )
    p.add_argument("--force", action="store_true", help="overwrite --out whatever it holds")
    p.add_argument("--top", type=int, default=3, help="probabilities shown per image")
    p.set_defaults(func=cmd_predict)


# ------------------------------------------------------------------------- helpers
def resolve_config(args: argparse.Namespace) -> TrainConfig:
    """The preset (or TrainConfig's defaults) with every explicit flag applied."""
    base = PRESETS[args.preset] if args.preset else TrainConfig()
    changes = {s.name: getattr(args, s.name) for s in SETTINGS if getattr(args, s.name) is not None}
    try:
        return base.replace(**changes)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc


def _load_dataset(source: str, test_fraction: float, seed: int = 0):
    from nn_core.data import load_dataset

    if not 0 < test_fraction < 1:
        raise UsageError(f"--test-fraction must be between 0 and 1, got {test_fraction}")
    return load_dataset(source, test_fraction=test_fraction, seed=seed)


def _load_model(path: Path):
    from nn_core.io import load_model

    return load_model(path)


def architecture(sizes: Sequence[int]) -> str:
    return "-".join(str(s) for s in sizes)


def pct(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "n/a"
    return f"{100 * value:.2f}%"


def confusion_table(confusion: np.ndarray, names: Sequence[str]) -> str:
    """The matrix as aligned text: rows are true classes, columns predictions."""
    width = max(max(len(n) for n in names), len(str(int(confusion.max(initial=0)))), 3)
    head = "true\\pred".ljust(max(width, 9)) + " " + " ".join(n.rjust(width) for n in names)
    lines = [head]
    for name, row in zip(names, confusion):
        cells = " ".join(str(int(v)).rjust(width) for v in row)
        lines.append(name.ljust(max(width, 9)) + " " + cells)
    return "\n".join(lines)


def scores_table(scores: dict[str, np.ndarray], names: Sequence[str]) -> str:
    width = max(max(len(n) for n in names), 5)
    lines = [f"{'class'.ljust(width)}  precision  recall     f1  support"]
    for i, name in enumerate(names):
        lines.append(
            f"{name.ljust(width)}  {scores['precision'][i]:9.3f}  {scores['recall'][i]:6.3f}"
            f"  {scores['f1'][i]:5.3f}  {int(scores['support'][i]):7d}"
        )
    return "\n".join(lines)


def _write_json(path: Path, document: dict) -> None:
    from nn_core.io import jsonable

    try:
        path.write_text(json.dumps(jsonable(document), indent=2) + "\n", encoding="utf-8")
    except OSError as exc:
        raise InputFileError(f"cannot write {path}: {exc.strerror or exc}") from exc


# ------------------------------------------------------------------------- outputs
def check_output(path: Path | None, kind: str, force: bool) -> None:
    """Refuse, before any work, an output that cannot be written or would destroy a file.

    An existing file is overwritten only when digitlab wrote it (a ``kind`` of "model",
    "metrics" or "submission"), or with ``--force``.
    """
    if path is None:
        return
    if not path.resolve().parent.is_dir():
        raise InputFileError(f"cannot write {path}: the folder {path.parent} does not exist")
    if not path.exists():
        return
    if not path.is_file():
        raise InputFileError(f"cannot write {path}: it exists and is not a regular file")
    if not force and not _written_by_digitlab(path, kind):
        raise InputFileError(
            f"{path} exists and is not a digitlab {kind} file, so it was left alone: choose "
            "another name, or add --force to overwrite it"
        )


def _written_by_digitlab(path: Path, kind: str) -> bool:
    from nn_core.io import ModelFileError, load_model

    try:
        if kind == "model":
            load_model(path)
            return True
        with open(path, encoding="utf-8") as f:
            head = f.read(1 << 20) if kind == "metrics" else f.readline()
        if kind == "submission":
            return head.strip() == "ImageId,Label"
        document = json.loads(head)
        return isinstance(document, dict) and {"config", "test_accuracy"} <= document.keys()
    except (ModelFileError, OSError, UnicodeDecodeError, ValueError):
        return False


# ------------------------------------------------------------------------- train
def cmd_train(args: argparse.Namespace) -> int:
    """Train, save the model (first), score the test set, write the metrics, report.

    Ctrl-C stops after the current batch: what was trained is saved (``--out``), the
    metrics too, and the status is 130. Ctrl-C while the test set is scored keeps the
    saved model. The metrics JSON is described in ``metrics_document``.
    """
    config = resolve_config(args)
    if args.train_subset is not None and args.train_subset != 0 and args.train_subset < 2:
        raise UsageError(f"--train-subset must be 0 (all) or at least 2, got {args.train_subset}")
    check_output(args.out, "model", args.force)
    check_output(args.metrics_json, "metrics", args.force)
    dataset = _load_dataset(args.data, args.test_fraction)
    if args.train_subset:  # None or 0: all
        dataset = dataset.subset(args.train_subset, seed=config.seed)
    trainer = _new_trainer(config, dataset)
    with CtrlC(trainer) as ctrl_c:  # covers the first save: a Ctrl-C then waits for the file
        wall = _fit(trainer, quiet=args.quiet)
        if trainer.divergence is not None:
            print(f"error: {trainer.divergence.sentence}", file=sys.stderr)
            return DIVERGED
        if ctrl_c.pressed and trainer.stop_reason is None:
            trainer.stop_reason = f"Interrupted (Ctrl-C) in epoch {trainer.epochs_done + 1}."
        _save(args.out, trainer, dataset, test=None)
    if ctrl_c.pressed:
        _write_metrics(args, trainer, dataset, wall, test=None)
        print(_interrupted_line(trainer, args.out, "during training"), file=sys.stderr)
        return INTERRUPTED
    try:  # the model is saved: a Ctrl-C from here on loses nothing trained
        print(f"Scoring the network on {dataset.test_source}…", flush=True)
        test = _score_test_set(trainer.model, dataset)
        _save(args.out, trainer, dataset, test=test)  # again, with the test figures
    except KeyboardInterrupt:
        print(_interrupted_line(trainer, args.out, "while scoring the test set"), file=sys.stderr)
        return INTERRUPTED
    _write_metrics(args, trainer, dataset, wall, test=test)
    _report(args, trainer, dataset, wall, test)
    return 0


class CtrlC:
    """While active, the first Ctrl-C asks ``trainer`` to stop after the current batch (so
    the weights stay whole) and is remembered in ``pressed``; a second one interrupts at
    once (KeyboardInterrupt)."""

    def __init__(self, trainer) -> None:
        self.trainer = trainer
        self.pressed = False
        self._previous = None

    def __enter__(self) -> CtrlC:
        self._previous = signal.signal(signal.SIGINT, self._on_sigint)
        return self

    def __exit__(self, *exc_info) -> None:
        signal.signal(signal.SIGINT, self._previous)

    def _on_sigint(self, signum, frame) -> None:
        if self.pressed:
            raise KeyboardInterrupt
        self.pressed = True
        self.trainer.request_stop()


def _new_trainer(config: TrainConfig, dataset):
    from nn_core.training import Trainer

    trainer = Trainer(config, dataset.x_train, dataset.y_train, n_classes=dataset.n_classes)
    model = trainer.model
    print(
        f"Training {architecture(model.sizes)} ({config.activation}, {model.n_params:,} "
        f"parameters) on {dataset.name}: {trainer.n_train:,} training, "
        f"{trainer.y_val.shape[0]:,} validation images; {config.optimizer} lr {config.lr:g}, "
        f"batch {trainer.batch_size}, {config.epochs} epochs.",
        flush=True,
    )
    return trainer


def _fit(trainer, quiet: bool) -> float:
    """Train to the end, or until stopped (a second Ctrl-C included); return the seconds."""
    bar = None if quiet else _progress_bar(trainer)
    start = time.perf_counter()
    try:
        trainer.fit()
    except KeyboardInterrupt:
        pass  # the second Ctrl-C: keep what was trained
    finally:
        if bar is not None:
            bar.close()
    return time.perf_counter() - start


def _progress_bar(trainer):
    """A tqdm bar on stderr, fed by the trainer's callbacks."""
    from tqdm import tqdm

    from nn_core.training import Callbacks

    epochs = trainer.config.epochs
    bar = tqdm(
        total=epochs * trainer.batches_per_epoch,
        unit="batch",
        file=sys.stderr,
        dynamic_ncols=True,
        mininterval=0.2,
    )

    def on_batch(_trainer, info: dict) -> None:
        bar.update(1)
        bar.set_postfix(
            epoch=info["epoch"], loss=f"{info['loss']:.4f}", acc=f"{info['accuracy']:.3f}",
            refresh=False,
        )  # fmt: skip

    def on_epoch(_trainer, info: dict) -> None:
        if math.isfinite(info["val_accuracy"]) and epochs <= 100:
            bar.write(
                f"epoch {info['epoch']}: train loss {info['train_loss']:.4f}, "
                f"val loss {info['val_loss']:.4f}, val acc {pct(info['val_accuracy'])}",
                file=sys.stderr,
            )

    trainer.callbacks = Callbacks(on_batch=(on_batch,), on_epoch=(on_epoch,))
    return bar


def _score_test_set(model, dataset) -> dict:
    from nn_core.metrics import evaluate

    return evaluate(model, dataset.x_test, dataset.y_test, dataset.n_classes)


def _summary(trainer, dataset, test: dict | None) -> dict:
    """The run in a few figures, stored with the saved model."""
    return {
        **trainer.summary(),
        "dataset": dataset.name,
        "test_accuracy": None if test is None else test["accuracy"],
        "test_source": dataset.test_source,
        "config": trainer.config.to_dict(),
    }


def _save(path: Path | None, trainer, dataset, test: dict | None) -> None:
    if path is None:
        return
    from nn_core.io import save_model

    try:
        save_model(
            path,
            trainer.model,
            class_names=dataset.class_names,
            training=_summary(trainer, dataset, test),
            image_shape=dataset.image_shape,
        )
    except OSError as exc:
        raise InputFileError(f"cannot write {path}: {exc.strerror or exc}") from exc


def _interrupted_line(trainer, out: Path | None, when: str) -> str:
    done = f"{trainer.progress:.2f} epochs"
    if out is None:
        return (
            f"Interrupted (Ctrl-C) {when}, after {done}; the model was not saved "
            "(add --out model.npz to keep it)."
        )
    return f"Interrupted (Ctrl-C) {when}: the model trained for {done} is saved in {out}."


def metrics_document(args: argparse.Namespace, trainer, dataset, wall: float, test) -> dict:
    """The metrics JSON: settings, sizes, final figures and the per-epoch history.

    Keys: ``dataset``, ``preset``, ``config``, ``architecture`` (layer sizes),
    ``n_params``, ``n_train``, ``n_val``, ``n_test``, ``epochs``, ``seconds``,
    ``test_accuracy``, ``test_loss``, ``test_source``, ``test_is_official``,
    ``val_accuracy`` (the last validated figure), ``stop_reason``, ``class_names``,
    ``confusion_matrix`` (test; rows true, columns predicted), and ``history``: one list
    per key of ``PER_EPOCH_KEYS``. The test figures are null when the run was interrupted,
    and NaN (e.g. no validation split) is written as null.
    """
    model, hist = trainer.model, trainer.history.to_dict()
    return {
        "dataset": dataset.name,
        "preset": args.preset,
        "config": trainer.config.to_dict(),
        "architecture": list(model.sizes),
        "n_params": int(model.n_params),
        "n_train": int(trainer.n_train),
        "n_val": int(trainer.y_val.shape[0]),
        "n_test": len(dataset.y_test),
        "epochs": trainer.epochs_done,
        "seconds": wall,
        "test_accuracy": None if test is None else test["accuracy"],
        "test_loss": None if test is None else test["loss"],
        "test_source": dataset.test_source,
        "test_is_official": dataset.test_is_official,
        "val_accuracy": trainer.summary()["final_val_accuracy"],
        "stop_reason": trainer.stop_reason,
        "class_names": list(dataset.class_names),
        "confusion_matrix": None if test is None else test["confusion"].tolist(),
        "history": {key: hist[key] for key in PER_EPOCH_KEYS},
    }


def _write_metrics(args, trainer, dataset, wall: float, test: dict | None) -> None:
    if args.metrics_json is not None:
        _write_json(args.metrics_json, metrics_document(args, trainer, dataset, wall, test))


def _report(args, trainer, dataset, wall: float, test: dict) -> None:
    model, config = trainer.model, trainer.config
    print()
    print(f"Architecture:        {architecture(model.sizes)} ({config.activation})")
    print(f"Parameters:          {model.n_params:,}")
    print(f"Epochs:              {trainer.epochs_done} in {wall:.1f} s")
    print(f"Validation accuracy: {pct(trainer.summary()['final_val_accuracy'])}")
    print(f"TEST accuracy:       {pct(test['accuracy'])} on {dataset.test_source}")
    if trainer.stop_reason:
        print(f"Stopped:             {trainer.stop_reason}")
    if args.preset == "notebook":
        print()
        print(f"The notebook preset reaches {pct(test['accuracy'])} test accuracy. {NOTEBOOK_NOTE}")
    if args.out is not None:
        print(f"Model saved to {args.out}")
    else:
        print("The model was not saved (add --out model.npz to keep it).")
    if args.metrics_json is not None:
        print(f"Metrics written to {args.metrics_json}")


# ------------------------------------------------------------------------- evaluate
def cmd_evaluate(args: argparse.Namespace) -> int:
    from nn_core.metrics import evaluate

    loaded = _load_model(args.model)
    dataset = _load_dataset(args.data, args.test_fraction)
    model = loaded.model
    _check_fits(model, dataset)
    names = list(loaded.class_names)
    result = evaluate(model, dataset.x_test, dataset.y_test)
    if args.json:
        from nn_core.io import jsonable

        document = {
            "model": str(args.model),
            "dataset": dataset.name,
            "test_source": dataset.test_source,
            "n_test": result["n"],
            "accuracy": result["accuracy"],
            "loss": result["loss"],
            "class_names": names,
            "confusion_matrix": result["confusion"].tolist(),
            "per_class": {k: v.tolist() for k, v in result["scores"].items()},
        }
        print(json.dumps(jsonable(document), indent=2))
        return 0
    print(f"Model {args.model.name}: {architecture(model.sizes)} ({model.activation})")
    print(f"Accuracy: {pct(result['accuracy'])} on {dataset.test_source} of {dataset.name}")
    print()
    print("Confusion matrix (rows: true class, columns: predicted):")
    print(confusion_table(result["confusion"], names))
    print()
    print(scores_table(result["scores"], names))
    return 0


def _check_fits(model, dataset) -> None:
    if dataset.n_features != model.sizes[0]:
        raise InputFileError(
            f"{dataset.name} has {dataset.image_shape[0]}x{dataset.image_shape[1]} images "
            f"({dataset.n_features} pixels) but the model takes {model.sizes[0]} inputs. "
            "Evaluate on data of the size the model was trained on."
        )
    if dataset.n_classes > model.sizes[-1]:
        raise InputFileError(
            f"{dataset.name} has {dataset.n_classes} classes but the model only "
            f"{model.sizes[-1]}. Evaluate on data with the model's classes."
        )


# ------------------------------------------------------------------------- predict
def read_image(path: Path) -> np.ndarray:
    """Pixels of an image file as (H, W) gray or (H, W, 4) RGBA uint8.

    The size is read from the header first (``Image.open`` decodes nothing): an image over
    ``MAX_IMAGE_PIXELS`` is refused before its pixels take memory.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        if path.exists() and not path.is_file():  # a folder, device or pipe (would block)
            raise InputFileError(f"{path}: not an image file (a folder, device or pipe)")
        with warnings.catch_warnings():  # the size check below replaces Pillow's warning
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(path)
        with img:
            _check_image_size(path, *img.size)
            img.load()
            has_alpha = img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info
            img = img.convert("RGBA" if has_alpha else "L")
            return np.asarray(img)
    except FileNotFoundError as exc:
        raise InputFileError(f"{path}: file not found") from exc
    except Image.DecompressionBombError as exc:  # Pillow's own limit, far above ours
        raise InputFileError(
            f"{path}: the image is over {MAX_IMAGE_PIXELS // 10**6} megapixels, too large to "
            "read; shrink it (a digit needs no more than a few hundred pixels a side)"
        ) from exc
    except UnidentifiedImageError as exc:
        raise InputFileError(f"{path}: not an image Pillow can read ({exc})") from exc
    except OSError as exc:
        raise InputFileError(f"{path}: cannot read the image ({exc})") from exc


def _check_image_size(path: Path, width: int, height: int) -> None:
    if width * height > MAX_IMAGE_PIXELS:
        raise InputFileError(
            f"{path}: the image is {width}x{height} pixels ({width * height / 1e6:.0f} "
            f"megapixels), over the {MAX_IMAGE_PIXELS // 10**6} megapixels predict reads: "
            "shrink it first (a digit needs only a few hundred pixels a side)"
        )


def _model_image_shape(loaded) -> tuple[int, int]:
    if loaded.image_shape is not None:
        return loaded.image_shape
    side = math.isqrt(loaded.model.sizes[0])
    if side * side != loaded.model.sizes[0]:
        raise InputFileError(
            f"the model takes {loaded.model.sizes[0]} inputs, which is not a square image"
        )
    return side, side


def cmd_predict(args: argparse.Namespace) -> int:
    from nn_core.preprocess import preprocess_image

    csvs = [p for p in args.inputs if p.suffix.lower() in (".csv", ".gz")]
    if len(csvs) > 1:
        raise UsageError("give at most one .csv of images per run (it becomes one submission)")
    if csvs:
        check_output(args.out, "submission", args.force)
    loaded = _load_model(args.model)
    model, names = loaded.model, loaded.class_names
    height, width = _model_image_shape(loaded)
    if height != width:
        raise InputFileError(f"the model's images are {height}x{width}; only square ones work")
    box = max(1, round(height * 20 / 28))
    failed = 0
    for path in args.inputs:
        if path in csvs:
            _predict_csv(path, loaded, args.out)
            continue
        try:
            pixels = read_image(path)
        except InputFileError as exc:
            print(f"error: {exc}", file=sys.stderr)
            failed += 1
            continue
        image = preprocess_image(pixels, size=height, box=box)
        if image is None:
            print(f"{path}: no digit found")
            continue
        probs = model.predict_proba(image[None])[0].astype(np.float64)
        order = np.argsort(-probs, kind="stable")
        best = int(order[0])
        shown = "  ".join(f"{names[i]}: {probs[i]:.3f}" for i in order[: max(1, args.top)])
        print(f"{path}: {names[best]}  ({shown})")
    return 1 if failed else 0


def _predict_csv(path: Path, loaded, out: Path) -> None:
    from nn_core.data import load_unlabelled_csv

    images = load_unlabelled_csv(path)
    model = loaded.model
    if images.shape[1] * images.shape[2] != model.sizes[0]:
        raise InputFileError(
            f"{path.name} has {images.shape[1]}x{images.shape[2]} images but the model takes "
            f"{model.sizes[0]} inputs"
        )
    predicted = model.predict(images)
    names = loaded.class_names
    try:
        with open(out, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(["ImageId", "Label"])
            for i, label in enumerate(predicted, start=1):
                writer.writerow([i, names[int(label)]])
    except OSError as exc:
        raise InputFileError(f"cannot write {out}: {exc.strerror or exc}") from exc
    counts = np.bincount(predicted, minlength=model.sizes[-1])
    spread = ", ".join(f"{names[i]}: {int(c)}" for i, c in enumerate(counts))
    print(f"{path}: {len(predicted):,} images classified; submission written to {out}")
    print(f"  predicted classes: {spread}")


# ------------------------------------------------------------------------- main
def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    from nn_core.data import DataError
    from nn_core.io import ModelFileError

    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        return args.func(args)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (DataError, ModelFileError, InputFileError) as exc:
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # e.g. piped into `head`
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silence the flush at exit
        return 0
    except KeyboardInterrupt:
        print("error: interrupted (Ctrl-C)", file=sys.stderr)
        return INTERRUPTED
    except MemoryError:
        print("error: out of memory; try a smaller --train-subset or network", file=sys.stderr)
        return 1
    except (OSError, ValueError) as exc:
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        return 1
    except Exception as exc:  # a bug, but the promise is one line and no traceback
        print(
            f"error: unexpected {type(exc).__name__}: {_one_line(exc)} (this is a bug in "
            "digitlab; please report it with the command you ran)",
            file=sys.stderr,
        )
        return 1


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
