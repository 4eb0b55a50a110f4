"""Command line: ``python -m nn_core {train,evaluate,predict}`` (each has ``--help``).

Exit status: 0 on success, 2 for bad arguments (one ``error: ...`` line on stderr),
1 for data or model files that cannot be used (one line too), 130 when interrupted.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from nn_core.activations import ACTIVATIONS
from nn_core.config import PRESETS, TrainConfig
from nn_core.init import INITS
from nn_core.optimizers import OPTIMIZERS, SCHEDULES

PROG = "python -m nn_core"
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
    "This is the classic notebook's setup (784-10-10 with ReLU, plain "
    "gradient descent at lr 0.1, 500 full-batch iterations, 40% held out and scored every "
    "10 iterations) with its bugs fixed: pixels scaled to 0..1, He initialisation instead "
    "of uniform [0, 1), and the loop trains on its own X."
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
def parse_hidden(text: str) -> tuple[int, ...]:
    """``"128,64"`` -> (128, 64); ``""``, ``"none"`` or ``"0"`` -> () (no hidden layer)."""
    cleaned = text.strip().lower()
    if cleaned in ("", "none", "0", "[]", "()"):
        return ()
    parts = [p.strip() for p in cleaned.replace(" ", ",").split(",") if p.strip()]
    try:
        sizes = tuple(int(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--hidden takes comma-separated layer widths like 128,64 (or none), got {text!r}"
        ) from None
    if any(s < 1 for s in sizes):
        raise argparse.ArgumentTypeError(f"hidden layer widths must be positive, got {text!r}")
    return sizes


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description="Train, evaluate and use digitlab's NumPy neural network on digit images.",
    )
    sub = parser.add_subparsers(dest="command", metavar="{train,evaluate,predict}")
    sub.required = True
    _add_train(sub)
    _add_evaluate(sub)
    _add_predict(sub)
    return parser


def _add_train(sub) -> None:
    p = sub.add_parser(
        "train",
        help="train a network and report its test accuracy",
        description=(
            "Train an MLP. A --preset sets every default; explicit flags override it. "
            "Without a preset the defaults are TrainConfig's."
        ),
    )
    p.add_argument("--data", default="mnist", help="'mnist' (default) or a .csv/.npz/IDX folder")
    p.add_argument("--preset", choices=sorted(PRESETS), help="start from a named setup")
    p.add_argument(
        "--hidden", type=parse_hidden, help="hidden layer widths, e.g. 128,64; 'none' for none"
    )
    p.add_argument("--activation", choices=sorted(ACTIVATIONS))
    p.add_argument("--init", choices=list(INITS))
    p.add_argument("--optimizer", choices=list(OPTIMIZERS))
    p.add_argument("--lr", type=float, help="learning rate")
    p.add_argument("--momentum", type=float, help="momentum of sgd")
    p.add_argument("--nesterov", action=argparse.BooleanOptionalAction, help="Nesterov momentum")
    p.add_argument("--schedule", choices=list(SCHEDULES), help="learning-rate schedule")
    p.add_argument("--step-epochs", type=int, help="epochs between steps of the step schedule")
    p.add_argument("--gamma", type=float, help="factor of the step schedule")
    p.add_argument("--batch-size", type=int, help="0 = full batch")
    p.add_argument("--epochs", type=int)
    p.add_argument("--l2", type=float, help="L2 weight penalty")
    p.add_argument("--dropout", type=float, help="dropout rate of hidden units, in [0, 1)")
    p.add_argument("--val-fraction", type=float, help="share of train held out for validation")
    p.add_argument("--val-every", type=int, metavar="N", help="validate every N epochs (and last)")
    p.add_argument("--seed", type=int)
    p.add_argument("--augment-shift", type=int, help="random shifts up to this many pixels")
    p.add_argument("--augment-rotation", type=float, help="random rotations up to these degrees")
    p.add_argument(
        "--early-stopping", type=int, help="patience in epochs on the validation loss (0 = off)"
    )
    p.add_argument("--dtype", choices=["float32", "float64"])
    p.add_argument("--train-subset", type=int, metavar="N", help="train on N images (stratified)")
    p.add_argument(
        "--test-fraction",
        type=float,
        default=0.15,
        help="held-out test share for data without a test set (default 0.15)",
    )
    p.add_argument("--out", type=Path, metavar="MODEL.npz", help="save the trained model here")
    p.add_argument("--metrics-json", type=Path, metavar="FILE", help="write the run's metrics")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_train)


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
            "Classify each image (PNG/JPG/..., any size; preprocessed like MNIST). A .csv "
            "of unlabelled images (Kaggle's test.csv) is written as a submission to --out."
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
    p.add_argument("--top", type=int, default=3, help="probabilities shown per image")
    p.set_defaults(func=cmd_predict)


# ------------------------------------------------------------------------- helpers
def resolve_config(args: argparse.Namespace) -> TrainConfig:
    """The preset (or TrainConfig's defaults) with every explicit flag applied."""
    base = PRESETS[args.preset] if args.preset else TrainConfig()
    names = [
        "hidden", "activation", "init", "optimizer", "lr", "momentum", "nesterov",
        "schedule", "step_epochs", "gamma", "batch_size", "epochs", "l2", "dropout",
        "val_fraction", "val_every", "seed", "early_stopping", "augment_shift",
        "augment_rotation", "dtype",
    ]  # fmt: skip
    changes = {n: getattr(args, n) for n in names if getattr(args, n) is not None}
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


# ------------------------------------------------------------------------- train
def cmd_train(args: argparse.Namespace) -> int:
    """Train, print a summary, optionally save the model and a metrics JSON.

    The metrics JSON holds ``config``, ``architecture`` (layer sizes), ``n_params``,
    ``test_accuracy``, ``test_loss``, ``test_source``, ``val_accuracy`` (final),
    ``stop_reason``, ``dataset``, ``confusion_matrix`` (test; rows true, columns
    predicted), per-epoch lists ``epoch``, ``train_loss``, ``train_accuracy``,
    ``val_loss``, ``val_accuracy_per_epoch``, ``learning_rate``, ``seconds_per_epoch``,
    ``samples_per_second`` (also all together under ``history``), and the sizes of the
    parts. NaN (no validation split) is written as null.
    """
    from nn_core.metrics import confusion_matrix
    from nn_core.training import Callbacks, Trainer

    config = resolve_config(args)
    if args.train_subset is not None and args.train_subset < 2:
        raise UsageError(f"--train-subset must be at least 2, got {args.train_subset}")
    for path in (args.out, args.metrics_json):
        if path is not None and not path.resolve().parent.is_dir():
            raise InputFileError(f"cannot write {path}: the folder {path.parent} does not exist")
    if args.out is not None and args.out.exists() and not args.out.is_file():
        raise InputFileError(f"cannot write {args.out}: it exists and is not a regular file")
    dataset = _load_dataset(args.data, args.test_fraction)
    if args.train_subset is not None:
        dataset = dataset.subset(args.train_subset, seed=config.seed)

    bar = None
    callbacks = Callbacks()
    trainer = Trainer(
        config, dataset.x_train, dataset.y_train, n_classes=dataset.n_classes, callbacks=callbacks
    )
    model = trainer.model
    print(
        f"Training {architecture(model.sizes)} ({config.activation}, {model.n_params:,} "
        f"parameters) on {dataset.name}: {trainer.n_train:,} training, "
        f"{trainer.y_val.shape[0]:,} validation images; {config.optimizer} lr {config.lr:g}, "
        f"batch {trainer.batch_size}, {config.epochs} epochs.",
        flush=True,
    )
    if not args.quiet:
        from tqdm import tqdm

        bar = tqdm(
            total=config.epochs * trainer.batches_per_epoch,
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
            if math.isfinite(info["val_accuracy"]) and config.epochs <= 100:
                bar.write(
                    f"epoch {info['epoch']}: train loss {info['train_loss']:.4f}, "
                    f"val loss {info['val_loss']:.4f}, val acc {pct(info['val_accuracy'])}",
                    file=sys.stderr,
                )

        callbacks.on_batch = [on_batch]
        callbacks.on_epoch = [on_epoch]

    start = time.perf_counter()
    try:
        trainer.fit()
    except KeyboardInterrupt:
        trainer.stop_reason = f"Interrupted (Ctrl-C) during epoch {trainer.epochs_done + 1}."
    finally:
        if bar is not None:
            bar.close()
    wall = time.perf_counter() - start

    history = trainer.history
    probs = model.predict_proba(dataset.x_test)
    y_test = np.asarray(dataset.y_test)
    predicted = probs.argmax(axis=1)
    test_accuracy = float(np.mean(predicted == y_test)) if y_test.size else float("nan")
    test_loss, _ = trainer.evaluate(dataset.x_test, y_test)
    confusion = confusion_matrix(y_test, predicted, dataset.n_classes)
    summary = trainer.summary()
    val_accuracy = summary["final_val_accuracy"]
    val_accuracy = float("nan") if val_accuracy is None else val_accuracy
    summary.update(
        dataset=dataset.name,
        test_accuracy=test_accuracy,
        test_source=dataset.test_source,
        config=config.to_dict(),
    )
    if args.out is not None:
        from nn_core.io import save_model

        try:
            save_model(
                args.out,
                model,
                class_names=dataset.class_names,
                training=summary,
                image_shape=dataset.image_shape,
            )
        except OSError as exc:
            raise InputFileError(f"cannot write {args.out}: {exc.strerror or exc}") from exc
    if args.metrics_json is not None:
        hist = history.to_dict()
        _write_json(
            args.metrics_json,
            {
                "dataset": dataset.name,
                "preset": args.preset,
                "config": config.to_dict(),
                "architecture": list(model.sizes),
                "n_params": int(model.n_params),
                "n_train": int(trainer.n_train),
                "n_val": int(trainer.y_val.shape[0]),
                "n_test": int(y_test.size),
                "epochs": trainer.epochs_done,
                "seconds": wall,
                "test_accuracy": test_accuracy,
                "test_loss": test_loss,
                "test_source": dataset.test_source,
                "test_is_official": dataset.test_is_official,
                **{key: hist[key] for key in PER_EPOCH_KEYS},
                # "val_accuracy" is the final figure; the per-epoch list is also kept as
                # "val_accuracy_per_epoch" and, with the other lists, under "history".
                "val_accuracy": val_accuracy,
                "val_accuracy_per_epoch": hist["val_accuracy"],
                "history": {key: hist[key] for key in PER_EPOCH_KEYS},
                "stop_reason": trainer.stop_reason,
                "class_names": list(dataset.class_names),
                "confusion_matrix": confusion.tolist(),
            },
        )

    print()
    print(f"Architecture:        {architecture(model.sizes)} ({config.activation})")
    print(f"Parameters:          {model.n_params:,}")
    print(f"Epochs:              {trainer.epochs_done} in {wall:.1f} s")
    print(f"Validation accuracy: {pct(val_accuracy)}")
    print(f"TEST accuracy:       {pct(test_accuracy)} on {dataset.test_source}")
    if trainer.stop_reason:
        print(f"Stopped:             {trainer.stop_reason}")
    if args.preset == "notebook":
        print()
        print(f"The notebook preset reaches {pct(test_accuracy)} test accuracy. {NOTEBOOK_NOTE}")
    if args.out is not None:
        print(f"Model saved to {args.out}")
    else:
        print("The model was not saved (add --out model.npz to keep it).")
    if args.metrics_json is not None:
        print(f"Metrics written to {args.metrics_json}")
    return 0


# ------------------------------------------------------------------------- evaluate
def cmd_evaluate(args: argparse.Namespace) -> int:
    from nn_core.metrics import confusion_matrix, per_class_scores

    loaded = _load_model(args.model)
    dataset = _load_dataset(args.data, args.test_fraction)
    model = loaded.model
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
    n_classes = model.sizes[-1]
    names = list(loaded.class_names)
    y = np.asarray(dataset.y_test)
    probs = model.predict_proba(dataset.x_test)
    predicted = probs.argmax(axis=1)
    accuracy = float(np.mean(predicted == y)) if y.size else float("nan")
    confusion = confusion_matrix(y, predicted, n_classes)
    scores = per_class_scores(confusion)
    if args.json:
        document = {
            "model": str(args.model),
            "dataset": dataset.name,
            "test_source": dataset.test_source,
            "n_test": int(y.size),
            "accuracy": accuracy,
            "class_names": names,
            "confusion_matrix": confusion.tolist(),
            "per_class": {k: v.tolist() for k, v in scores.items()},
        }
        from nn_core.io import jsonable

        print(json.dumps(jsonable(document), indent=2))
        return 0
    print(f"Model {args.model.name}: {architecture(model.sizes)} ({model.activation})")
    print(f"Accuracy: {pct(accuracy)} on {dataset.test_source} of {dataset.name}")
    print()
    print("Confusion matrix (rows: true class, columns: predicted):")
    print(confusion_table(confusion, names))
    print()
    print(scores_table(scores, names))
    return 0


# ------------------------------------------------------------------------- predict
def read_image(path: Path) -> np.ndarray:
    """Pixels of an image file as (H, W) gray or (H, W, 4) RGBA uint8."""
    from PIL import Image, UnidentifiedImageError

    try:
        if path.exists() and not path.is_file():  # a folder, device or pipe (would block)
            raise InputFileError(f"{path}: not an image file (a folder, device or pipe)")
        with Image.open(path) as img:
            img.load()
            has_alpha = img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info
            img = img.convert("RGBA" if has_alpha else "L")
            return np.asarray(img)
    except FileNotFoundError as exc:
        raise InputFileError(f"{path}: file not found") from exc
    except (UnidentifiedImageError, Image.DecompressionBombError) as exc:
        raise InputFileError(f"{path}: not an image Pillow can read ({exc})") from exc
    except OSError as exc:
        raise InputFileError(f"{path}: cannot read the image ({exc})") from exc


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
        print("error: interrupted", file=sys.stderr)
        return 130
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
