"""The hosted demo under faults, in a real Chromium (issue 14): deep links and restarts,
tabs that close while training, the queue and its cap, Step through the queue, memory
refusals before anything is allocated, and a model download while a run trains.

Each test starts its own server with the caps it needs (one training slot, a grace
period of a few seconds) instead of the suite's shared one.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import re
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from playwright.sync_api import expect

from nn_core.io import load_model

pytestmark = pytest.mark.browser
expect.set_options(timeout=30_000)  # a busy shared machine; each wait ends at its condition

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("load_test", ROOT / "scripts" / "load_test.py")
load_test = sys.modules.setdefault("load_test", importlib.util.module_from_spec(_spec))
if not hasattr(load_test, "Server"):
    _spec.loader.exec_module(load_test)

GRACE = 3
# One training slot, a queue of one, a short grace period, and a session cap that a tiny
# network fits in easily while ten 1000x1000 images with the default network do not.
HOSTED = {
    "DIGITLAB_MAX_CONCURRENT": "1",
    "DIGITLAB_MAX_QUEUE": "1",
    "DIGITLAB_SESSION_GRACE_SECONDS": str(GRACE),
    "DIGITLAB_MAX_SESSION_MB": "200",
}
LONG_RUN = "p=custom&h=64&e=500&n=5000&b=64"
TINY_RUN = "p=custom&h=16&e=1&n=2000"
SHOTS = ROOT / "artifacts" / "screenshots"


@pytest.fixture
def server(request):
    """A fresh server with the ``HOSTED`` caps."""
    log = ROOT / "artifacts" / f"hosting-{request.node.name}.log"
    log.unlink(missing_ok=True)
    srv = load_test.Server(env=HOSTED, log_path=log).start()
    yield srv
    srv.stop()


@pytest.fixture
def tab(browser, browser_context_args):
    """``tab()``: a page in a fresh browser context (its own Streamlit session)."""
    contexts = []

    def _new():
        context = browser.new_context(**browser_context_args)
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(30_000)
        return page

    yield _new
    for context in contexts:
        context.close()


def sidebar(page):
    return page.locator("[data-testid=stSidebar]")


def button(page, key: str):
    return sidebar(page).locator(f".st-key-{key}").get_by_role("button").first


def open_app(page, url: str, path: str = "", query: str = "") -> None:
    page.goto(f"{url}/{path}" + (f"?{query}" if query else ""))
    expect(button(page, "btn_start")).to_be_visible(timeout=60_000)
    settle(page)


def settle(page, timeout: float = 30.0) -> None:
    """Until the app is connected and no script run is in progress."""
    page.wait_for_function(
        "() => { const a = document.querySelector('[data-testid=stApp]');"
        " return !!a && a.getAttribute('data-test-script-state') === 'notRunning'"
        " && a.getAttribute('data-test-connection-state') === 'CONNECTED'; }",
        timeout=timeout * 1000,
    )


def status(page) -> str:
    bars = sidebar(page).locator("[data-testid=stProgress]")
    return bars.first.inner_text().lower() if bars.count() else ""


def wait_status(page, word: str, timeout: float, *others: str) -> float:
    """Seconds until the sidebar's run status contains ``word`` (or one of ``others``)."""
    t0 = time.monotonic()
    while not any(w in status(page) for w in (word, *others)):
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"status never said {word!r} in {timeout:g} s: {status(page)!r}")
        time.sleep(0.2)
    return time.monotonic() - t0


def nav_labels(page) -> list[str]:
    links = sidebar(page).locator("[data-testid=stSidebarNav] a")
    return [re.sub(r"^\w+\n+", "", text).strip() for text in links.all_inner_texts()]


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.wait_for_timeout(500)
    page.screenshot(path=str(SHOTS / f"{name}.png"))


# ------------------------------------------------------------------ deep links, restarts
@pytest.mark.parametrize("path", ["weights", "draw", "models"])
def test_a_deep_link_as_the_first_request_shows_the_whole_app(server, tab, path):
    """Issue 14: /weights as a fresh server's first request ran the page file alone (no
    Start or Stop, the navigation listing raw file names) until someone opened /."""
    page = tab()
    open_app(page, server.url, path)
    assert nav_labels(page)[:2] == ["Training", "Weights"], nav_labels(page)
    expect(
        page.locator("[data-testid=stMain]").get_by_role("heading", level=2).first
    ).to_be_visible()
    expect(sidebar(page)).not_to_contain_text("streamlit app")
    assert page.url.split("?")[0].endswith(f"/{path}")
    if path == "weights":
        shot(page, "hosting-deep-link-weights")


def test_after_a_restart_the_tab_works_says_the_run_was_lost_and_keeps_its_settings(tab):
    """Issue 14: after a restart mid-training the tab came back with no Start or Stop,
    raw file names in the navigation, and nothing saying the run was gone."""
    port = load_test.free_port()
    log = ROOT / "artifacts" / "hosting-restart.log"
    first = load_test.Server(env=HOSTED, port=port, log_path=log).start()
    page = tab()
    try:
        open_app(page, first.url, query=LONG_RUN.replace("h=64", "h=48"))
        button(page, "btn_start").click()
        wait_status(page, "training", 30)
        sidebar(page).locator("[data-testid=stSidebarNav] a").filter(has_text="Weights").click()
        page.wait_for_url(re.compile(r"/weights\?.*h=48"))  # the address holds the settings
        first.stop(kill=True)
    finally:
        first.stop(kill=True)
    second = load_test.Server(env=HOSTED, port=port, log_path=log).start()
    try:
        notice = page.get_by_text("The server restarted")
        expect(notice).to_be_visible(timeout=60_000)
        expect(page.get_by_text("training run that was here")).to_be_visible()
        expect(button(page, "btn_start")).to_be_enabled()
        assert nav_labels(page)[:2] == ["Training", "Weights"], nav_labels(page)
        assert "/weights" in page.url
        units = sidebar(page).locator(".st-key-cfg_h0 input")
        expect(units).to_have_value("48")  # the settings came back from the address bar
        expect(sidebar(page)).to_contain_text("No training yet")
        shot(page, "hosting-after-restart")
        # The notice stays until the visitor trains again.
        button(page, "btn_start").click()
        wait_status(page, "training", 30)
        expect(notice).to_have_count(0)
    finally:
        second.stop()


# --------------------------------------------------------------- tabs that go away
def test_closing_a_training_tab_frees_its_slot_for_the_next_visitor(server, tab):
    """Issue 14: a closed tab kept its slot until the 300 s cap; the next visitor waited."""
    leaver, waiter = tab(), tab()
    open_app(leaver, server.url, query=LONG_RUN)
    button(leaver, "btn_start").click()
    wait_status(leaver, "training", 30)
    open_app(waiter, server.url, query=TINY_RUN)
    button(waiter, "btn_start").click()
    wait_status(waiter, "queued", 30)
    shot(waiter, "hosting-queued")
    leaver.close()
    waited = wait_status(waiter, "training", GRACE + 20, "finished")
    print(f"the slot went to the next visitor {waited:.1f} s after the tab closed")
    assert re.search(r"session \w+ gone for \d+ s: run \d+ stopped while running", server.log())


def test_a_full_queue_refuses_politely(server, tab):
    running, queued, third = tab(), tab(), tab()
    for page in (running, queued, third):
        open_app(page, server.url, query=LONG_RUN)
    button(running, "btn_start").click()
    wait_status(running, "training", 30)
    button(queued, "btn_start").click()
    wait_status(queued, "queued", 30)
    button(third, "btn_start").click()
    refusal = sidebar(third).locator("[data-testid=stAlertContentError]")
    expect(refusal).to_contain_text("The server is busy: 1 trainings are running and 1 are")
    expect(refusal).to_contain_text("DIGITLAB_MAX_QUEUE")
    assert status(third) == ""  # nothing was queued or trained for the third visitor
    shot(third, "hosting-queue-full")
    button(running, "btn_stop").click()
    wait_status(queued, "training", 30, "finished")


def test_step_waits_for_a_slot_like_start(server, tab):
    """Issue 14: Step trained at once beside the running trainings (six Step tabs held
    128 MiB each)."""
    running, stepper = tab(), tab()
    open_app(running, server.url, query=LONG_RUN)
    button(running, "btn_start").click()
    wait_status(running, "training", 30)
    open_app(stepper, server.url, query=TINY_RUN)
    button(stepper, "btn_step").click()
    expect(sidebar(stepper).get_by_text("Queued: number 1 of 1")).to_be_visible()
    time.sleep(2)
    wait_status(stepper, "queued", 10)  # still waiting: no batch trained beside the run
    expect(sidebar(stepper).get_by_text("Queued: number 1 of 1")).to_be_visible()
    shot(stepper, "hosting-step-queued")
    button(running, "btn_stop").click()
    wait_status(stepper, "stopped", 30)  # its one batch done, in its turn


# ------------------------------------------------------------------------- memory
def ten_megapixel_npz(path: Path) -> Path:
    """The issue's file: a valid 32 KB .npz of ten 1000x1000 images."""
    x = np.zeros((10, 1000, 1000), np.uint8)
    x[:, 300:700, 450:550] = 255
    buffer = io.BytesIO()
    np.savez_compressed(buffer, x_train=x, y_train=np.arange(10) % 2)
    path.write_bytes(buffer.getvalue())
    return path


def test_ten_megapixel_images_are_refused_before_training_allocates_anything(server, tab, tmp_path):
    """Issue 14: pressing Start on this upload took the server from 248 to 1,067 MiB."""
    page = tab()
    open_app(page, server.url)
    sidebar(page).get_by_text("Upload a file").click()
    upload = sidebar(page).locator("input[type=file]").first
    upload.set_input_files(str(ten_megapixel_npz(tmp_path / "big_images.npz")))
    expect(sidebar(page)).to_contain_text("Using big_images.npz", timeout=60_000)
    settle(page)
    expect(sidebar(page).locator("[data-testid=stAlertContentError]")).to_have_count(0)
    before = server.rss()
    button(page, "btn_start").click()
    refusal = sidebar(page).locator("[data-testid=stAlertContentError]")
    expect(refusal).to_contain_text("This training needs about", timeout=30_000)
    expect(refusal).to_contain_text("DIGITLAB_MAX_SESSION_MB")
    expect(refusal).to_contain_text("smaller images")
    assert server.rss() - before < 50 * 2**20
    assert status(page) == ""
    shot(page, "hosting-memory-refusal")
    # Lowering the setting the sentence names is enough (one unit: the full batch's chunk
    # buffers and gradient sums need the rest of the 200 MB).
    sidebar(page).locator(".st-key-cfg_h0 input").fill("1")
    sidebar(page).locator(".st-key-cfg_h0 input").press("Enter")
    settle(page)
    # A click that lands while the width's rerun is still drawing can be lost: press again
    # until the run shows a status (it may queue behind runs of tabs earlier tests closed).
    for _ in range(3):
        button(page, "btn_start").click()
        with contextlib.suppress(AssertionError):
            wait_status(page, "queued", 20, "training", "finished")
            break
    wait_status(page, "finished", 180)


# ----------------------------------------------------------------------- download
def test_the_model_can_be_downloaded_while_it_trains(server, tab):
    page = tab()
    open_app(page, server.url, query=LONG_RUN)
    button(page, "btn_start").click()
    wait_status(page, "training", 30)
    download_button = sidebar(page).get_by_role("button", name="Download model")
    expect(download_button).to_be_visible()
    with page.expect_download() as info:
        download_button.click()
    path = info.value.path()
    loaded = load_model(path)
    assert loaded.model.sizes == (784, 64, 10)
    assert "training" in status(page)  # the click did not stop or rerun the training


def test_a_model_file_too_large_to_hold_is_refused_before_its_weights_are_read(
    server, tab, tmp_path
):
    """Issue 14: a valid 42.7 MB 784-4096-4096-4096-10 float64 model took the server to
    1,243 MiB on upload. Here, at a 200 MB session cap, a 784-2048-2048-10 float64 file
    (about 300 MB to load and predict with) is refused from its declared sizes."""
    from nn_core.io import save_model
    from nn_core.network import MLP

    path = tmp_path / "wide_float64.npz"
    with path.open("wb") as out:
        save_model(out, MLP(784, (2048, 2048), 10, dtype="float64"), class_names=list("0123456789"))
    page = tab()
    open_app(page, server.url)
    sidebar(page).locator("[data-testid=stSidebarNav] a").filter(has_text="Models").click()
    expect(page.get_by_role("heading", name="Models")).to_be_visible()
    settle(page)
    before = server.rss()
    page.locator("[data-testid=stMain] input[type=file]").first.set_input_files(str(path))
    refusal = page.locator("[data-testid=stMain] [data-testid=stAlertContentError]")
    expect(refusal).to_contain_text("This model needs about", timeout=60_000)
    expect(refusal).to_contain_text("DIGITLAB_MAX_SESSION_MB")
    grown = server.rss() - before
    print(f"server grew by {grown / 2**20:.0f} MB for a {path.stat().st_size / 2**20:.0f} MB file")
    assert grown < 2.5 * path.stat().st_size  # the upload and one read of it, no weights
    shot(page, "hosting-model-refusal")
