"""``python -m nn_core`` end to end, in subprocesses from the repository root."""

from __future__ import annotations

import csv
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nn_core.io import load_model
from nn_core.settings import SETTINGS

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


class Running:
    """``python -m nn_core`` in the background, its stdout read line by line.

    The child starts with the default SIGINT handling (a shell or CI runner may have
    started this test with SIGINT ignored, which the child would inherit).
    """

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "nn_core", *map(str, args)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.stdout: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.stdout.append(line)
            self.lines.put(line)

    def wait_for_line(self, prefix: str, timeout: float = 120) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.1)
            except queue.Empty:
                assert self.proc.poll() is None, self.proc.stderr.read()
                continue
            if line.startswith(prefix):
                return line
        raise AssertionError(f"no line starting {prefix!r}; stdout so far: {self.stdout}")

    def cpu_seconds(self) -> float:
        """User + system CPU time the child has used (Linux: /proc/PID/stat)."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def wait_for_cpu_seconds(self, seconds: float, timeout: float = 300) -> None:
        """Wait until the child has used ``seconds`` more CPU time than now."""
        start, deadline = self.cpu_seconds(), time.monotonic() + timeout
        while self.cpu_seconds() - start < seconds:
            assert self.proc.poll() is None and time.monotonic() < deadline, self.stdout
            time.sleep(0.05)

    def ctrl_c(self) -> tuple[int, str]:
        """Send SIGINT; return (exit status, stderr)."""
        self.proc.send_signal(signal.SIGINT)
        stderr = self.proc.stderr.read()
        self.proc.wait(timeout=120)
        self.reader.join(10)
        return self.proc.returncode, stderr


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
        for flag in ("--preset", "--metrics-json", "--quiet", "--force", "--train-subset"):
            assert flag in result.stdout
        for setting in SETTINGS:  # every setting of the table has its flag and help
            assert setting.flag in result.stdout, setting.flag


def test_train_writes_model_and_metrics(trained):
    out = trained["result"].stdout
    assert "TEST accuracy" in out and "official MNIST test set" in out
    assert "Parameters:" in out and "25,450" in out
    assert "%|" in trained["result"].stderr  # the tqdm bar
    metrics = json.loads(trained["metrics"].read_text())
    for key in (
        "config", "architecture", "n_params", "test_accuracy", "test_loss", "val_accuracy",
        "test_source", "stop_reason", "dataset", "confusion_matrix", "history",
    ):  # fmt: skip
        assert key in metrics, key
    history = metrics["history"]
    for key in ("epoch", "train_loss", "val_loss", "train_accuracy", "val_accuracy"):
        assert len(history[key]) == 3, key
        assert key == "val_accuracy" or key not in metrics  # one copy of each list
    assert "val_accuracy_per_epoch" not in metrics
    assert metrics["val_accuracy"] == history["val_accuracy"][-1]
    assert metrics["architecture"] == [784, 32, 10]
    assert metrics["n_params"] == 784 * 32 + 32 + 32 * 10 + 10
    assert metrics["config"]["hidden"] == [32]
    assert metrics["config"]["lr"] == 0.003
    assert metrics["test_accuracy"] > 0.85
    assert 0 < metrics["test_loss"] < 1
    assert metrics["stop_reason"] is None
    assert metrics["dataset"] == "MNIST"
    confusion = np.array(metrics["confusion_matrix"])
    assert confusion.shape == (10, 10) and confusion.sum() == 10_000
    assert abs(np.trace(confusion) / 10_000 - metrics["test_accuracy"]) < 1e-9
    training = load_model(trained["model"]).training
    assert training["test_accuracy"] == metrics["test_accuracy"]  # saved again after scoring


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
        (["train", "--l2", "inf"], 2),
        (["train", "--augment-rotation", "nan"], 2),
        (["train", "--lr", "1e400"], 2),
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


def test_train_subset_zero_means_all_images_as_the_help_says(tmp_path):
    metrics = tmp_path / "m.json"
    result = run(
        "train", "--hidden", "none", "--epochs", "1", "--train-subset", "0", "--quiet",
        "--metrics-json", metrics,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    document = json.loads(metrics.read_text())
    assert document["n_train"] + document["n_val"] == 60_000
    refused = run("train", "--train-subset", "1", "--quiet")
    assert_one_line_error(refused, 2)
    assert "0 (all) or at least 2" in refused.stderr


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
    assert config["val_every"] == 10  # the preset scores its held-out 40% every 10; 5 is last
    assert json.loads(metrics.read_text())["val_accuracy"] > 0.15  # validated, above chance
    assert "training accuracy every 20 iterations" in result.stdout
    assert "undefined W2" in result.stdout


def test_ctrl_c_while_training_saves_the_model_and_exits_130(tmp_path):
    model, metrics = tmp_path / "model.npz", tmp_path / "metrics.json"
    running = Running(
        "train", "--hidden", "64", "--epochs", "2000", "--train-subset", "5000", "--quiet",
        "--out", model, "--metrics-json", metrics,
    )  # fmt: skip
    running.wait_for_line("Training ")
    # ~15 ms of CPU an epoch here, 30 s in all: after 1 s of the child's CPU time some epochs
    # are done and many are not, however busy the machine (wall time would not say).
    running.wait_for_cpu_seconds(1.0)
    status, stderr = running.ctrl_c()
    assert status == 130, stderr
    assert "Traceback" not in stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("Interrupted (Ctrl-C) during training: the model trained for ")
    assert lines[0].endswith(f"is saved in {model}.")
    training = load_model(model).training
    assert 0 < training["epochs"] < 2000
    assert training["stop_reason"].startswith("Interrupted (Ctrl-C)")
    document = json.loads(metrics.read_text())
    assert document["test_accuracy"] is None  # not scored: Ctrl-C means stop now
    assert len(document["history"]["train_loss"]) == training["epochs"]


def test_ctrl_c_while_scoring_keeps_the_finished_training(tmp_path):
    model = tmp_path / "model.npz"
    # A wide network on 20 images: training is instant, scoring 10,000 images takes seconds.
    running = Running(
        "train", "--hidden", "4096", "--epochs", "1", "--train-subset", "20", "--quiet",
        "--val-fraction", "0", "--batch-size", "0", "--out", model,
    )  # fmt: skip
    running.wait_for_line("Scoring the network on")
    status, stderr = running.ctrl_c()
    assert status == 130, stderr
    assert "Traceback" not in stderr
    assert "Interrupted (Ctrl-C) while scoring the test set" in stderr
    loaded = load_model(model)
    assert loaded.model.sizes == (784, 4096, 10)
    assert loaded.training["epochs"] == 1


def test_out_never_overwrites_a_file_digitlab_did_not_write(tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\n")
    tiny = ["train", "--hidden", "none", "--epochs", "1", "--train-subset", "2000", "--quiet"]
    for flag in ("--out", "--metrics-json"):
        result = run(*tiny, flag, notes)
        assert_one_line_error(result, 1)
        assert "notes.txt exists and is not a digitlab" in result.stderr
        assert "--force" in result.stderr
        assert notes.read_text() == "my notes\n"
    assert run(*tiny, "--out", notes, "--force").returncode == 0
    assert load_model(notes).model.sizes == (784, 10)
    again = run(*tiny, "--seed", "1", "--out", notes)  # a digitlab model: replaced
    assert again.returncode == 0, again.stderr
    assert load_model(notes).training["config"]["seed"] == 1


def test_predict_never_overwrites_a_file_that_is_not_a_submission(trained, mnist_test, tmp_path):
    x, _ = mnist_test
    source = tmp_path / "test.csv"
    header = ",".join(f"pixel{i}" for i in range(784))
    source.write_text(header + "\n" + ",".join(map(str, x[0].ravel())) + "\n")
    out = tmp_path / "results.txt"
    out.write_text("precious\n")
    result = run("predict", "--model", trained["model"], source, "--out", out)
    assert_one_line_error(result, 1)
    assert out.read_text() == "precious\n"
    assert (
        run("predict", "--model", trained["model"], source, "--out", out, "--force").returncode == 0
    )
    assert out.read_text().startswith("ImageId,Label")
    assert run("predict", "--model", trained["model"], source, "--out", out).returncode == 0


def test_predict_refuses_a_huge_image_from_its_header(trained, tmp_path):
    huge = tmp_path / "huge.png"
    Image.new("1", (10_000, 10_000), 1).save(huge)  # 100 megapixels, a small file
    peak = tmp_path / "peak_kib.txt"
    # The child writes its own peak memory (VmHWM, which an exec starts afresh; the rusage
    # of a child also counts the forked test process).
    probe = (
        "import atexit, runpy, sys\n"
        "def peak():\n"
        "    status = open('/proc/self/status').read()\n"
        f"    open({str(peak)!r}, 'w').write(status.split('VmHWM:')[1].split()[0])\n"
        "atexit.register(peak)\n"
        "sys.argv[0] = 'nn_core'\n"
        "runpy.run_module('nn_core', run_name='__main__')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe, "predict", "--model", str(trained["model"]), str(huge)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert_one_line_error(result, 1)
    assert "10000x10000" in result.stderr and "megapixels" in result.stderr
    assert "DecompressionBomb" not in result.stderr and "Warning" not in result.stderr
    peak_mib = int(peak.read_text()) / 1024
    assert peak_mib < 300, f"the refusal took {peak_mib:.0f} MiB: the pixels were decoded"
