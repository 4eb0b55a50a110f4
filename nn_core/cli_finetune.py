"""Command line: ``python -m nn_core finetune`` (teach a saved model your own digits).

``nn_core.cli.build_parser`` registers it (``add_finetune_command``). It does what the
dashboard's "My digits" page does: keep some of your digits aside (a split per digit, or
leave-one-out when there are few), fine-tune a copy of the model with replayed MNIST
images mixed in, and print before and after on your held-out digits and on the MNIST test
set, and which predictions changed. Errors are one line, as in ``nn_core.cli`` (exit
status 2 for bad arguments, 1 for files that cannot be used or a run that diverged).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

FINETUNE_EXAMPLE = (
    "python -m nn_core finetune --model model.npz --data my_digits.npz --replay 0.5 --out tuned.npz"
)


def add_finetune_command(sub: argparse._SubParsersAction) -> None:
    """Add ``finetune`` to the command line's subcommands."""
    from nn_core.cli import finite_float
    from nn_core.finetune import FinetuneSettings

    d = FinetuneSettings()
    p = sub.add_parser(
        "finetune",
        help="teach a saved model your own digits, with MNIST replay against forgetting",
        description=(
            "Fine-tune a copy of --model on the digits in --data (a set saved from the app's "
            "My digits page, or any labelled data set), keeping some aside to test on, and "
            "print before and after: accuracy on your held-out digits, on the MNIST test set, "
            f"and the digits whose prediction changed. Example: {FINETUNE_EXAMPLE}"
        ),
    )
    p.add_argument("--model", type=Path, required=True, metavar="MODEL.npz")
    p.add_argument("--data", required=True, metavar="MY_DIGITS.npz", help="your digits")
    p.add_argument(
        "--replay",
        type=finite_float,
        default=d.replay,
        help=f"share of each batch that is MNIST training images (default {d.replay:g})",
    )
    p.add_argument(
        "--compare-replay",
        type=finite_float,
        metavar="R",
        help="also fine-tune with this replay share and print it side by side (e.g. 0)",
    )
    how_long = p.add_mutually_exclusive_group()
    how_long.add_argument("--steps", type=int, metavar="N", help=f"batches (default {d.steps})")
    how_long.add_argument(
        "--epochs", type=finite_float, metavar="E", help="passes over your training digits"
    )
    p.add_argument("--lr", type=finite_float, default=d.lr, help=f"(default {d.lr:g})")
    p.add_argument("--batch-size", type=int, default=d.batch_size, metavar="N")
    p.add_argument("--augment-shift", type=int, default=d.augment_shift, metavar="PIXELS")
    p.add_argument(
        "--augment-rotation", type=finite_float, default=d.augment_rotation, metavar="DEGREES"
    )
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument(
        "--split",
        choices=["auto", "per-digit", "leave-one-out"],
        default="auto",
        help="how to keep digits aside: auto = leave-one-out below 10 digits, else per digit",
    )
    p.add_argument(
        "--test-fraction",
        type=finite_float,
        default=0.3,
        help="share of each digit kept aside by the per-digit split (default 0.3)",
    )
    p.add_argument(
        "--replay-data",
        default="mnist",
        help="the model's original data: replayed, and its test set scored (default mnist)",
    )
    p.add_argument("--out", type=Path, metavar="TUNED.npz", help="save the fine-tuned model")
    p.add_argument(
        "--force",
        action="store_true",
        help="overwrite --out even if digitlab did not write it, or if it is --model",
    )
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    p.add_argument(
        "--blas-threads", type=int, default=1, metavar="N", help="matrix-product threads (1)"
    )
    p.set_defaults(func=cmd_finetune)


def _settings(args: argparse.Namespace, n_train: int, replay: float):
    """FinetuneSettings from the flags, ``--epochs`` turned into steps."""
    from nn_core.cli import UsageError
    from nn_core.finetune import FinetuneError, FinetuneSettings, steps_for_epochs

    steps = args.steps if args.steps is not None else FinetuneSettings().steps
    try:
        if args.epochs is not None:
            if args.epochs <= 0:
                raise FinetuneError(f"--epochs must be positive, got {args.epochs:g}")
            steps = steps_for_epochs(args.epochs, n_train, args.batch_size, replay)
        return FinetuneSettings(
            steps=steps, batch_size=args.batch_size, lr=args.lr, replay=replay,
            augment_shift=args.augment_shift, augment_rotation=args.augment_rotation,
            seed=args.seed,
        )  # fmt: skip
    except FinetuneError as exc:
        raise UsageError(str(exc)) from exc


def cmd_finetune(args: argparse.Namespace) -> int:
    """Load, check, fine-tune (once or twice), print, and save the fine-tuned model."""
    from threadpoolctl import threadpool_limits

    from nn_core.cli import UsageError, _load_dataset, _load_model, check_output
    from nn_core.finetune import check_fits, split_mode, teach
    from nn_core.personal_set import load_personal_set

    if args.blas_threads < 1:
        raise UsageError(f"--blas-threads must be at least 1, got {args.blas_threads}")
    if not 0 < args.test_fraction < 1:
        raise UsageError(f"--test-fraction must be between 0 and 1, got {args.test_fraction:g}")
    _check_out(args)
    check_output(args.out, "model", args.force)
    loaded = _load_model(args.model)
    personal = load_personal_set(Path(args.data))
    check_fits(loaded.model, personal.images, personal.labels)
    original = _load_dataset(args.replay_data, 0.15)
    mode = split_mode(len(personal)) if args.split == "auto" else args.split
    n_train = len(personal) - (1 if mode == "leave-one-out" else 0)
    ratios = [args.replay] + ([] if args.compare_replay is None else [args.compare_replay])
    settings = [_settings(args, n_train, ratio) for ratio in ratios]
    data = {
        "replay_set": (original.x_train, original.y_train),
        "test_set": (original.x_test, original.y_test),
        "mode": mode,
        "test_fraction": args.test_fraction,
    }
    with threadpool_limits(args.blas_threads, "blas"):
        outcomes = [
            teach(loaded.model, personal.images, personal.labels, s, **data) for s in settings
        ]
    if args.out is not None:
        _save(args.out, loaded, outcomes[0], args)
    if args.json:
        print(json.dumps(_document(args, personal, outcomes), indent=2))
        return 0
    _report(args, loaded, personal, original, outcomes)
    return 0


def _check_out(args: argparse.Namespace) -> None:
    """The model started from is never replaced, unless asked (--force)."""
    from nn_core.cli import InputFileError

    if args.out is None or args.force:
        return
    try:
        same = args.out.resolve() == args.model.resolve()
    except OSError:
        return
    if same:
        raise InputFileError(
            f"--out {args.out} is the model you start from, which is kept as it is: choose "
            "another name (or add --force to replace it)"
        )


def _save(path: Path, loaded, outcome, args: argparse.Namespace) -> None:
    from nn_core.cli import InputFileError
    from nn_core.io import save_model

    training = {
        **(loaded.training or {}),
        "finetuned": {**outcome.summary(), "from": str(args.model), "data": str(args.data)},
    }
    training["finetuned"].pop("changed")
    try:
        save_model(
            path,
            outcome.model,
            class_names=loaded.class_names,
            training=training,
            image_shape=loaded.image_shape,
        )
    except OSError as exc:
        raise InputFileError(f"cannot write {path}: {exc.strerror or exc}") from exc


def _document(args: argparse.Namespace, personal, outcomes: list) -> dict:
    from nn_core.io import jsonable

    return jsonable(
        {
            "model": str(args.model),
            "data": str(args.data),
            "samples": len(personal),
            "per_digit": personal.counts().tolist(),
            "runs": [o.summary() for o in outcomes],
            "out": None if args.out is None else str(args.out),
        }
    )


def _pct(value: float | None) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{100 * value:.1f}%"


def _report(args, loaded, personal, original, outcomes: list) -> None:
    from nn_core.cli import architecture

    first = outcomes[0]
    s = first.settings
    counts = personal.counts(loaded.model.sizes[-1])
    spread = ", ".join(f"{loaded.class_names[i]}: {int(c)}" for i, c in enumerate(counts) if c)
    print(f"Model {args.model.name}: {architecture(loaded.model.sizes)}")
    print(f"Your digits: {args.data}, {len(personal)} samples ({spread})")
    if first.mode == "leave-one-out":
        held = f"leave-one-out: {len(personal)} fine-tunes, each tested on the digit it did not see"
    else:
        held = f"{first.held_out.size} kept aside for testing (per digit, {args.test_fraction:g})"
    print(f"Held out: {held}")
    print(
        f"Fine-tuning: {s.steps} steps of {s.batch_size} images, lr {s.lr:g}, "
        f"shifts up to {s.augment_shift} px, rotations up to {s.augment_rotation:g} degrees; "
        f"replay from {original.name}'s training images"
    )
    print()
    columns = ["before"] + [f"after, replay {o.settings.replay:.0%}" for o in outcomes]
    width = max(len(c) for c in columns) + 2
    print(" " * 26 + "".join(c.rjust(width) for c in columns))
    personal_row = [first.before.personal_accuracy] + [o.after.personal_accuracy for o in outcomes]
    test_row = [first.before.test_accuracy] + [o.after.test_accuracy for o in outcomes]
    print("your held-out digits".ljust(26) + "".join(_pct(v).rjust(width) for v in personal_row))
    print(f"{original.name} test set".ljust(26) + "".join(_pct(v).rjust(width) for v in test_row))
    seconds = ", ".join(f"{o.seconds:.1f} s" for o in outcomes)
    print(f"(fine-tuning took {seconds})")
    for outcome in outcomes:
        _print_changes(outcome, loaded.class_names)
    if args.out is not None:
        print(f"Saved the fine-tuned model (replay {s.replay:.0%}) to {args.out}")


def _print_changes(outcome, names) -> None:
    changed = outcome.changed
    title = f"Predictions that changed (replay {outcome.settings.replay:.0%})"
    if not changed.size:
        print(f"{title}: none")
        return
    print(f"{title}:")
    for i in changed:
        label = names[int(outcome.labels[i])]
        before = names[int(outcome.before.personal_pred[i])]
        after = names[int(outcome.after.personal_pred[i])]
        mark = "now right" if after == label else ("now wrong" if before == label else "")
        print(f"  sample {int(outcome.held_out[i]) + 1} (a {label}): {before} -> {after} {mark}")
