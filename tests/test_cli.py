"""``python -m nn_core`` end to end, in subprocesses from the repository root."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
MNIST = ROOT / "nn_core" / "data" / "mnist.npz"


def run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "nn_core", *map(str, args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def assert_one_line_error(result: subprocess.CompletedProcess, status: int | None = None) -> None:
    assert result.returncode != 0
    if status is not None:
        assert result.returncode == status, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")


@pytest.fixture(scope="module")
def mnist_test() -> tuple[np.ndarray, np.ndarray]:
    with np.load(MNIST, allow_pickle=False) as npz:
        return npz["x_test"][:20], npz["y_test"][:20]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("cli")
    model, metrics = folder / "model.npz", folder / "metrics.json"
    result = run(
        "train", "--data", "mnist", "--hidden", "32", "--epochs", "3", "--lr", "0.003",
        "--train-subset", "5000", "--out", model, "--metrics-json", metrics,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return {"model": model, "metrics": metrics, "result": result, "folder": folder}


@pytest.mark.parametrize("command", [[], ["train"], ["evaluate"], ["predict"]])
def test_help(command):
    result = run(*command, "--help")
    assert result.returncode == 0
    assert "usage: python -m nn_core" in result.stdout
    if command == ["train"]:
        for flag in ("--preset", "--hidden", "--augment-rotation", "--metrics-json", "--quiet"):
            assert flag in result.stdout


def test_train_writes_model_and_metrics(trained):
    out = trained["result"].stdout
    assert "TEST accuracy" in out and "official MNIST test set" in out
    assert "Parameters:" in out and "25,450" in out
    assert "%|" in trained["result"].stderr  # the tqdm bar
    metrics = json.loads(trained["metrics"].read_text())
    for key in (
        "config", "architecture", "n_params", "test_accuracy", "val_accuracy", "test_source",
        "train_loss", "val_loss", "train_accuracy", "seconds_per_epoch", "stop_reason",
        "dataset", "confusion_matrix", "val_accuracy_per_epoch", "history",
    ):  # fmt: skip
        assert key in metrics, key
    assert metrics["architecture"] == [784, 32, 10]
    assert metrics["n_params"] == 784 * 32 + 32 + 32 * 10 + 10
    assert metrics["config"]["hidden"] == [32]
    assert metrics["config"]["lr"] == 0.003
    assert metrics["test_accuracy"] > 0.85
    assert len(metrics["train_loss"]) == 3 == len(metrics["history"]["val_accuracy"])
    assert metrics["val_accuracy"] == metrics["val_accuracy_per_epoch"][-1]
    assert metrics["stop_reason"] is None
    assert metrics["dataset"] == "MNIST"
    confusion = np.array(metrics["confusion_matrix"])
    assert confusion.shape == (10, 10) and confusion.sum() == 10_000
    assert abs(np.trace(confusion) / 10_000 - metrics["test_accuracy"]) < 1e-9


def test_evaluate(trained):
    result = run("evaluate", "--model", trained["model"], "--data", "mnist")
    assert result.returncode == 0, result.stderr
    metrics = json.loads(trained["metrics"].read_text())
    assert f"{100 * metrics['test_accuracy']:.2f}%" in result.stdout
    assert "precision" in result.stdout and "recall" in result.stdout
    as_json = run("evaluate", "--model", trained["model"], "--json")
    document = json.loads(as_json.stdout)
    assert document["accuracy"] == metrics["test_accuracy"]
    assert document["confusion_matrix"] == metrics["confusion_matrix"]
    assert len(document["per_class"]["recall"]) == 10


def test_predict_png(trained, mnist_test, tmp_path):
    x, y = mnist_test
    paths = []
    for i in range(3):
        big = np.kron(x[i], np.ones((5, 5), np.uint8))
        path = tmp_path / f"digit{i}.png"
        Image.fromarray(255 - big).save(path)  # dark ink on white, 140x140
        paths.append(path)
    empty = tmp_path / "empty.png"
    Image.fromarray(np.full((64, 64), 255, np.uint8)).save(empty)
    result = run("predict", "--model", trained["model"], *paths, empty)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    for i, line in enumerate(lines[:3]):
        assert line.startswith(f"{paths[i]}: {y[i]} "), line
    assert lines[3] == f"{empty}: no digit found"


def test_predict_csv_writes_submission(trained, mnist_test, tmp_path):
    x, _ = mnist_test
    source = tmp_path / "test.csv"
    header = ",".join(f"pixel{i}" for i in range(784))
    rows = "\n".join(",".join(map(str, image.ravel())) for image in x[:7])
    source.write_text(header + "\n" + rows + "\n")
    out = tmp_path / "submission.csv"
    result = run("predict", "--model", trained["model"], source, "--out", out)
    assert result.returncode == 0, result.stderr
    with open(out, newline="") as f:
        table = list(csv.reader(f))
    assert table[0] == ["ImageId", "Label"]
    assert [row[0] for row in table[1:]] == [str(i) for i in range(1, 8)]
    assert all(row[1] in "0123456789" for row in table[1:])


@pytest.mark.parametrize(
    ("args", "status"),
    [
        (["train", "--lr", "-1"], 2),
        (["train", "--hidden", "12,abc"], 2),
        (["train", "--epochs", "0"], 2),
        (["train", "--val-every", "0"], 2),
        (["train", "--bogus"], 2),
        (["train", "--data", "no/such/file.csv"], 1),
        (["evaluate", "--model", "no/such/model.npz"], 1),
    ],
)
def test_bad_arguments_fail_cleanly(args, status):
    assert_one_line_error(run(*args), status)


def test_corrupt_model_fails_cleanly(trained, tmp_path):
    corrupt = tmp_path / "corrupt.npz"
    corrupt.write_bytes(trained["model"].read_bytes()[:500])
    assert_one_line_error(run("evaluate", "--model", corrupt), 1)
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"definitely not a model")
    result = run("predict", "--model", junk, tmp_path / "x.png")
    assert_one_line_error(result, 1)
    assert "not a digitlab model" in result.stderr


def test_hidden_none_trains_softmax_regression(tmp_path):
    metrics = tmp_path / "m.json"
    result = run(
        "train", "--hidden", "none", "--epochs", "1", "--train-subset", "2000", "--quiet",
        "--val-fraction", "0", "--metrics-json", metrics,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    document = json.loads(metrics.read_text())
    assert document["architecture"] == [784, 10]
    assert document["val_accuracy"] is None  # no validation split: NaN becomes null


def test_preset_is_overridden_by_flags(tmp_path):
    metrics = tmp_path / "m.json"
    result = run(
        "train", "--preset", "notebook", "--epochs", "5", "--train-subset", "2000", "--quiet",
        "--metrics-json", metrics,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    config = json.loads(metrics.read_text())["config"]
    assert config["epochs"] == 5
    assert config["hidden"] == [10] and config["optimizer"] == "gd" and config["batch_size"] == 0
    assert config["val_every"] == 10  # the notebook reports every 10 iterations; 5 is last
    assert json.loads(metrics.read_text())["val_accuracy"] > 0.15  # validated, above chance
    assert "bugs fixed" in result.stdout
