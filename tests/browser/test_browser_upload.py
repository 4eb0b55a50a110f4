"""Bringing your own data in a real browser: Kaggle's train.csv, raw and gzipped, at the
hosted demo's default caps; a gzip bomb; a bad upload followed by a good one.

Each group of tests runs its own Streamlit server (so that the caps can differ and the
server's memory can be read from /proc), and each test its own browser context (a fresh
session). The Kaggle file is rebuilt from the shipped MNIST (tests/kaggle_train.py).
Screenshots go to artifacts/screenshots/.
"""

from __future__ import annotations

import gzip
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from playwright.sync_api import expect

from nn_core.data import load_mnist
from tests.browser.conftest import ROOT, App
from tests.kaggle_train import N_ROWS, write_kaggle_train

pytestmark = pytest.mark.browser

LOAD_TIMEOUT = 240.0  # seconds to upload and parse 73 MB on a loaded 2-core machine
TALL = {"width": 1400, "height": 2000}  # the whole sidebar in a screenshot
ERRORS = "[data-testid=stAlertContentError]"
IDX_IMAGES, IDX_LABELS = (0x803).to_bytes(4, "big"), (0x801).to_bytes(4, "big")


@dataclass
class Server:
    url: str
    pid: int
    log: Path

    def memory_mib(self, field: str = "VmHWM") -> float:
        """The server's resident memory from /proc: VmHWM is its peak so far, VmRSS now."""
        status = Path(f"/proc/{self.pid}/status").read_text()
        return int(re.search(rf"{field}:\s+(\d+) kB", status).group(1)) / 1024


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serve(tmp: Path, env: dict[str, str] | None = None, *args: str) -> Iterator[Server]:
    """Run the app on a free port with extra environment variables and options."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp / f"streamlit-{port}.log"
    cmd = [sys.executable, "-m", "streamlit", "run", "streamlit_app.py"]
    cmd += ["--server.headless", "true", "--server.port", str(port)]
    cmd += ["--server.address", "127.0.0.1", "--server.fileWatcherType", "none", *args]
    full_env = {**os.environ, "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false", **(env or {})}
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=full_env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while not _healthy(url):
            assert proc.poll() is None, f"streamlit exited: {log.read_text()[-2000:]}"
            assert time.monotonic() < deadline, "streamlit not healthy after 60 s"
            time.sleep(0.2)
        yield Server(url, proc.pid, log)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
            return response.read().strip() == b"ok"
    except OSError:
        return False


@pytest.fixture(scope="module")
def kaggle(tmp_path_factory) -> tuple[Path, Path]:
    """train.csv (42,000 rows, ~73 MB) and train.csv.gz (~9 MB)."""
    return write_kaggle_train(tmp_path_factory.mktemp("kaggle"))


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[Server]:
    """The app at the hosted demo's default caps."""
    with serve(tmp_path_factory.mktemp("server")) as running:
        yield running


@pytest.fixture
def visit(browser, browser_context_args, screenshot_dir):
    """``visit(server)``: a fresh session (browser context) on ``server``; an ``App``."""
    contexts = []

    def _visit(target: Server) -> App:
        context = browser.new_context(**{**browser_context_args, "viewport": TALL})
        contexts.append(context)
        return App(context.new_page(), target.url, screenshot_dir).open()

    yield _visit
    for context in contexts:
        context.close()


def choose_upload(app: App) -> None:
    app.widget("data_source").get_by_text("Upload a file", exact=True).click()
    expect(app.sidebar.locator("input[type=file]")).to_have_count(1)
    app.settle()


def upload(app: App, *paths: Path) -> None:
    """Pick files in the sidebar's uploader as a person does, and wait for the app."""
    app.sidebar.locator("input[type=file]").set_input_files([str(p) for p in paths])
    app.page.wait_for_timeout(500)  # the upload, then the rerun it asks for
    app.settle(timeout=LOAD_TIMEOUT, quiet=1.0)


def shot(app: App, name: str) -> None:
    """A screenshot of the window (tall enough for the whole sidebar)."""
    app.page.wait_for_timeout(300)
    app.page.screenshot(path=str(app.screenshot_dir / f"{name}.png"))


def sidebar_errors(app: App) -> list[str]:
    return [e.inner_text() for e in app.sidebar.locator(ERRORS).all()]


def held_out() -> int:
    """Test images the app holds out of train.csv: 15% of each class, rounded."""
    labels = load_mnist().y_train[:N_ROWS]
    return sum(round(n * 0.15) for n in np.bincount(labels))


def using_text(name: str) -> str:
    test = held_out()
    return f"Using {name}: {N_ROWS - test:,} training and {test:,} test images, 10 classes."


def small_csv(path: Path, n: int = 60, seed: int = 0) -> Path:
    """A valid labelled 28x28 CSV of ``n`` random images in 3 classes."""
    rng = np.random.default_rng(seed)
    rows = ["label," + ",".join(f"pixel{i}" for i in range(784))]
    rows += [f"{k % 3}," + ",".join(map(str, rng.integers(0, 256, 784))) for k in range(n)]
    path.write_text("\n".join(rows) + "\n")
    return path


# ------------------------------------------------------------------ Kaggle's train.csv
def test_the_sidebar_says_what_fits_before_the_upload(server, visit):
    app = visit(server)
    choose_upload(app)
    expect(app.sidebar).to_contain_text(
        "Kaggle's digit-recognizer train.csv (73 MB) fits: files up to 100 MB, "
        "300 MB once unzipped."
    )


@pytest.mark.parametrize("which", ["raw", "gz"])
def test_kaggle_train_csv_uploads_and_trains(server, visit, kaggle, which):
    path = kaggle[0] if which == "raw" else kaggle[1]
    app = visit(server)
    choose_upload(app)
    before = server.memory_mib("VmRSS")
    upload(app, path)
    expect(app.sidebar).to_contain_text(using_text(path.name), timeout=LOAD_TIMEOUT * 1000)
    assert sidebar_errors(app) == []
    loaded, held = server.memory_mib(), server.memory_mib("VmRSS")
    shot(app, f"upload-kaggle-{which}")

    app.button("btn_start").click()  # the Fast preset: 3 epochs on every training image
    progress = app.sidebar.locator("[data-testid=stProgress]")
    # 756 batches take about a second: the run may finish before the sidebar's next redraw
    # (once a second) shows it training
    expect(progress).to_contain_text(re.compile("training|finished"), timeout=60_000)
    expect(progress).to_contain_text("finished: epoch 3 of 3", timeout=LOAD_TIMEOUT * 1000)
    app.settle()
    expect(app.main).to_contain_text("Test accuracy")
    app.main.get_by_text("This run's settings").click()
    expect(app.main).to_contain_text(f'"{path.name}"')
    expect(app.main).to_contain_text(f"{N_ROWS - held_out()}")
    assert sidebar_errors(app) == []
    shot(app, f"upload-kaggle-{which}-trained")
    print(
        f"\n[{which}] server memory: {before:.0f} MiB before the upload, peak {loaded:.0f} MiB "
        f"while loading, {held:.0f} MiB once loaded, peak {server.memory_mib():.0f} MiB after "
        "training"
    )


def test_a_gzip_bomb_gets_one_clear_message(server, visit, tmp_path):
    bomb = tmp_path / "digits.csv.gz"
    with gzip.open(bomb, "wb", compresslevel=9) as f:
        for _ in range(200):
            f.write(b"0," * 1024**2)  # 400 MB of text in 400 KB
    app = visit(server)
    choose_upload(app)
    upload(app, bomb)
    expect(app.sidebar.locator(ERRORS)).to_have_count(1)
    message = sidebar_errors(app)[0]
    assert "digits.csv.gz" in message and "compression bomb" in message, message
    assert "max_bytes" not in message
    expect(app.sidebar).not_to_contain_text("Using digits.csv.gz")
    shot(app, "upload-gzip-bomb")


def test_one_setting_raises_both_the_app_and_streamlit_limits(visit, kaggle, tmp_path):
    """DIGITLAB_MAX_UPLOAD_MB=30 lets the 9 MB train.csv.gz (73 MB unzipped) through even
    where Streamlit's own server.maxUploadSize was left at 5 MB (as an old config.toml
    might)."""
    env = {"DIGITLAB_MAX_UPLOAD_MB": "30"}
    with serve(tmp_path, env, "--server.maxUploadSize", "5") as small:
        app = visit(small)
        choose_upload(app)
        expect(app.sidebar).to_contain_text("30MB per file")  # Streamlit's own uploader
        upload(app, kaggle[1])
        expect(app.sidebar).to_contain_text(using_text(kaggle[1].name), timeout=LOAD_TIMEOUT * 1000)
        assert sidebar_errors(app) == []
        expect(app.sidebar).to_contain_text(
            "Kaggle's digit-recognizer train.csv (73 MB) fits gzipped (8.9 MB as .csv.gz): "
            "files up to 30 MB, 90 MB once unzipped."
        )


# ------------------------------------------------------------------ stale messages
def test_a_good_upload_after_a_bad_one_is_used_alone(server, visit, tmp_path):
    broken = tmp_path / "broken.csv"
    broken.write_text("label,pixel0\n3,abc\n")
    good = small_csv(tmp_path / "three.csv")
    app = visit(server)
    choose_upload(app)
    upload(app, broken)
    expect(app.sidebar.locator(ERRORS)).to_have_count(1)
    assert "broken.csv" in sidebar_errors(app)[0]

    upload(app, good)
    expect(app.sidebar).to_contain_text("Using three.csv:")
    expect(app.sidebar.locator(ERRORS)).to_have_count(0)
    shot(app, "upload-bad-then-good")


def test_old_errors_go_when_the_data_changes(server, visit, tmp_path):
    app = visit(server)
    choose_upload(app)
    app.button("btn_start").click()  # nothing uploaded yet
    expect(app.sidebar).to_contain_text("Upload a valid data set first")

    broken = tmp_path / "broken.csv"
    broken.write_text("label,pixel0\n3,abc\n")
    upload(app, broken)
    expect(app.sidebar).not_to_contain_text("Upload a valid data set first")
    expect(app.sidebar.locator(ERRORS)).to_have_count(1)

    app.widget("data_source").get_by_text("MNIST (built in)", exact=True).click()
    app.settle()
    expect(app.sidebar.locator(ERRORS)).to_have_count(0)
    choose_upload(app)  # back to the (empty) uploader: the old file's error is gone too
    expect(app.sidebar.locator(ERRORS)).to_have_count(0)


def test_idx_files_added_one_at_a_time_wait_for_each_other(server, visit, tmp_path):
    mnist = load_mnist()
    x, y = mnist.x_train[:600], mnist.y_train[:600]
    images = tmp_path / "train-images-idx3-ubyte.gz"
    dims = b"".join(d.to_bytes(4, "big") for d in x.shape)
    images.write_bytes(gzip.compress(IDX_IMAGES + dims + x.tobytes()))
    labels = tmp_path / "train-labels-idx1-ubyte.gz"
    count = len(y).to_bytes(4, "big")
    labels.write_bytes(gzip.compress(IDX_LABELS + count + y.astype(np.uint8).tobytes()))
    app = visit(server)
    choose_upload(app)
    upload(app, images)
    expect(app.sidebar).to_contain_text("Upload both files together")  # a note, not an error
    expect(app.sidebar.locator(ERRORS)).to_have_count(0)

    upload(app, labels)  # added beside the image file, as a person picks the second file
    held_out = sum(round(n * 0.15) for n in np.bincount(y))
    expect(app.sidebar).to_contain_text(
        f"Using IDX files: {600 - held_out:,} training and {held_out:,} test images, 10 classes."
    )
    expect(app.sidebar.locator(ERRORS)).to_have_count(0)
    shot(app, "upload-idx-one-at-a-time")
