"""Fixtures for the browser tests: a real Streamlit server and Debian's Chromium.

The server runs ``streamlit_app.py`` from the repo root on a free port for the whole
session. Chromium is Debian's ``/usr/bin/chromium`` (never ``playwright install``). When it
is missing the tests are skipped, unless ``DIGITLAB_REQUIRE_BROWSER`` is set (CI's
``.ci/run`` sets it): then they fail with a message saying how to install it.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError
from playwright.sync_api import expect

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("DIGITLAB_CHROMIUM", "/usr/bin/chromium")
SCREENSHOTS = ROOT / "artifacts" / "screenshots"
SERVER_LOG = ROOT / "artifacts" / "streamlit-server.log"
STARTUP_TIMEOUT = 60.0
VIEWPORT = {"width": 1400, "height": 1000}
PHONE = {"width": 390, "height": 844}  # a phone's screen in CSS pixels


def _chromium_or_skip() -> str:
    """The Chromium path; skip (locally) or fail (CI) when it is not installed."""
    path = CHROMIUM if os.path.isfile(CHROMIUM) else shutil.which("chromium")
    if path and os.access(path, os.X_OK):
        return path
    message = (
        f"Chromium not found at {CHROMIUM} (install it: "
        "apt-get install -y chromium; never `playwright install`)."
    )
    if os.environ.get("DIGITLAB_REQUIRE_BROWSER"):
        pytest.fail(f"DIGITLAB_REQUIRE_BROWSER is set but {message}", pytrace=False)
    pytest.skip(message)


def pytest_configure(config):
    # pytest-playwright's own base_url fixture triggers this pytest deprecation warning.
    config.addinivalue_line(
        "filterwarnings", "ignore:Session-scoped fixtures defined as instance methods"
    )


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    """pytest-playwright's launch args, pointed at Debian's Chromium."""
    return {
        **browser_type_launch_args,
        "executable_path": _chromium_or_skip(),
        "args": ["--disable-gpu", "--disable-quic"],
    }


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args):
    return {**browser_context_args, "viewport": VIEWPORT}


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
            return response.status == 200 and response.read().strip() == b"ok"
    except OSError:
        return False


@pytest.fixture(scope="session")
def app_url(browser_type_launch_args) -> str:
    """Serve the app for the whole session; its base URL (no trailing slash)."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false"}
    SERVER_LOG.parent.mkdir(parents=True, exist_ok=True)
    log = SERVER_LOG.open("wb")
    cmd = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        "streamlit_app.py",
        "--server.headless",
        "true",
        "--server.port",
        str(port),
        "--server.address",
        "127.0.0.1",
        "--server.fileWatcherType",
        "none",
    ]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not _healthy(url):
            if proc.poll() is not None:
                pytest.fail(
                    f"streamlit exited with code {proc.returncode}; log: {SERVER_LOG}",
                    pytrace=False,
                )
            if time.monotonic() > deadline:
                pytest.fail(f"streamlit not healthy after {STARTUP_TIMEOUT:g} s", pytrace=False)
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)
        log.close()


@pytest.fixture(scope="session")
def screenshot_dir() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS


# ------------------------------------------------------------------------ page helpers
# JavaScript: a summary of every visible Plotly chart under `root` (the main area by default).
# plotly.py 6+ sends arrays base64-encoded ({dtype, bdata}) in `el.data`, so lengths and
# shapes are read from `el._fullData`, which Plotly.js fills with the decoded arrays.
_PLOTS_JS = """
([selector, key]) => {
  const root = document.querySelector(selector) || document;
  const scope = key ? `.st-key-${key} .js-plotly-plot` : '.js-plotly-plot';
  const len = (a) => (a == null ? 0 : a.length || 0);
  return Array.from(root.querySelectorAll(scope))
    .filter((el) => el.offsetParent !== null && el._fullData)
    .map((el) => {
      const box = el.closest('[class*="st-key-"]');
      const m = box ? box.className.match(/st-key-([\\w-]+)/) : null;
      return {
        key: m ? m[1] : null,
        traces: el._fullData.map((t) => ({
          type: t.type,
          x: Array.from(t.x || []).map(String),
          y: Array.from(t.y || []).map(Number),
          z_rows: len(t.z),
          z_cols: t.z && t.z.length ? len(t.z[0]) : 0,
        })),
      };
    });
}
"""


class App:
    """One browser page on the served app, with helpers that scope to the sidebar or main."""

    def __init__(self, page, url: str, screenshot_dir: Path) -> None:
        self.page = page
        self.url = url
        self.screenshot_dir = screenshot_dir
        page.set_default_timeout(30_000)
        self.sidebar = page.locator("[data-testid=stSidebar]")
        self.main = page.locator("[data-testid=stMain]")

    # -- loading and waiting
    def open(self, query: str = "", path: str = "", sidebar: bool = True) -> App:
        """Load the app (at page ``path``, e.g. "weights"); wait for its first run.

        ``sidebar=False`` for narrow windows, where Streamlit starts with the sidebar
        collapsed: then wait for the main area instead of the sidebar's Start button.
        """
        self.page.goto(f"{self.url}/{path}" + (f"?{query}" if query else ""))
        if sidebar:
            self.button("btn_start").wait_for(state="visible")
        else:
            self.main.get_by_role("heading").first.wait_for(state="visible")
        self.settle()
        return self

    def settle(self, timeout: float = 30.0, quiet: float = 0.4) -> None:
        """Wait until no script run has been in progress for ``quiet`` seconds.

        The quiet period covers the moment between a widget change and the rerun it asks
        for (longer on a loaded machine). Fragments that redraw on a timer may start new
        runs later; wait for their content, not for silence.
        """
        deadline = time.monotonic() + timeout
        calm_since = None
        while True:
            idle = self.page.evaluate(
                "() => { const a = document.querySelector('[data-testid=stApp]');"
                " return !!a && a.getAttribute('data-test-script-state') === 'notRunning'"
                " && a.getAttribute('data-test-connection-state') === 'CONNECTED'; }"
            )
            now = time.monotonic()
            if not idle:
                calm_since = None
            elif calm_since is None:
                calm_since = now
            elif now - calm_since >= quiet:
                return
            if now > deadline:
                raise AssertionError(f"the app kept running for {timeout:g} s")
            time.sleep(0.1)

    # -- sidebar widgets (every widget has a stable key: .st-key-<key>)
    def widget(self, key: str):
        return self.sidebar.locator(f".st-key-{key}")

    def button(self, key: str):
        """A sidebar button by key (a button with help text is rendered twice; the
        accessible one is the real one)."""
        return self.widget(key).get_by_role("button").first

    def status_text(self) -> str:
        progress = self.sidebar.locator("[data-testid=stProgress]")
        return progress.first.inner_text() if progress.count() else ""

    def select(self, key: str, option: str) -> None:
        """Pick ``option`` in the sidebar select box ``key`` (retried: a rerun that lands
        while the list is opening can close it)."""
        box = self.widget(key).locator("input[role=combobox]")
        for attempt in range(3):
            box.click()
            choice = self.page.get_by_role("option", name=option, exact=True)
            try:
                choice.click(timeout=5_000)
                expect(box).to_have_value(option, timeout=5_000)
                break
            except (AssertionError, PlaywrightTimeoutError):
                if attempt == 2:
                    raise
                self.page.keyboard.press("Escape")
                self.settle()
        self.settle()

    def number(self, key: str, value: int) -> None:
        field = self.widget(key).locator("input")
        field.fill(str(value))
        field.press("Enter")
        expect(field).to_have_value(str(value))
        self.settle()

    def expand(self, key: str) -> None:
        """Open the sidebar expander holding the widget ``key``."""
        if self.widget(key).locator("input").first.is_visible():
            return
        expander = self.sidebar.locator("[data-testid=stExpander]").filter(
            has=self.page.locator(f".st-key-{key}")
        )
        expander.locator("summary").click()
        expect(self.widget(key).locator("input").first).to_be_visible()

    # -- pages
    def nav(self, title: str, slug: str | None = None) -> None:
        link = self.sidebar.locator("[data-testid=stSidebarNav] a").filter(has_text=title)
        link.click()
        # Share links may follow the path as a query string.
        self.page.wait_for_url(re.compile(rf"/{slug or title.lower()}(\?.*)?$"))
        expect(self.main.get_by_role("heading", name=title, exact=True)).to_be_visible()
        self.settle()

    def plots(self, key: str | None = None, where: str = "[data-testid=stMain]") -> list[dict]:
        return self.page.evaluate(_PLOTS_JS, [where, key])

    def wait_plots(self, predicate, timeout: float = 30.0, key: str | None = None) -> list[dict]:
        """Poll the visible charts until ``predicate(plots)`` holds; return them."""
        deadline = time.monotonic() + timeout
        plots = []
        while time.monotonic() < deadline:
            plots = self.plots(key)
            if predicate(plots):
                return plots
            time.sleep(0.25)
        raise AssertionError(f"charts never matched within {timeout:g} s; last seen: {plots}")

    # -- clicking and dragging on charts (Plotly maps data to pixels: axis.d2p)
    def plot(self, key: str):
        """The Plotly element of the main-area chart with key ``key``, once visible
        (Plotly's script loads lazily, seconds after the page on a busy machine)."""
        plot = self.main.locator(f".st-key-{key} .js-plotly-plot").first
        expect(plot).to_be_visible(timeout=45_000)
        return plot

    def _drawn_plot_eval(self, key: str, body: str, arg=None, timeout: float = 45.0):
        """Run ``body`` (JS with ``el``, ``fl`` = its _fullLayout, ``r`` = its box, ``arg``)
        on chart ``key`` once Plotly has laid it out. A live chart is redrawn (sometimes a
        new element) while a run trains: the wait and the reading happen in one call, and a
        chart that does not lay out within a second is looked up again."""
        script = (
            "(el, arg) => new Promise((ok) => { const t0 = Date.now(); const t = () => {"
            " const fl = el._fullLayout;"
            " if (!fl || !fl.xaxis || !fl.yaxis || !el.isConnected)"
            "   return Date.now() - t0 > 1000 ? ok(null) : setTimeout(t, 50);"
            " const r = el.getBoundingClientRect();"
            f" ok({{value: (() => {{ {body} }})()}}); }}; t(); }})"
        )
        deadline = time.monotonic() + timeout
        while True:
            result = self.plot(key).evaluate(script, arg)
            if result is not None:
                return result["value"]
            if time.monotonic() > deadline:
                raise AssertionError(f"chart {key} was never laid out within {timeout:g} s")

    def plot_geometry(self, key: str) -> dict:
        """Where chart ``key``'s plot area is on the page and what its axes show.

        Returns ``{"left", "top", "width", "height"}`` of the plot area in page pixels and
        ``x_range``, ``y_range``: the axes' ranges (data units).
        """
        return self._drawn_plot_eval(
            key,
            "return {left: r.left + fl.xaxis._offset, top: r.top + fl.yaxis._offset,"
            " width: fl.xaxis._length, height: fl.yaxis._length,"
            " x_range: fl.xaxis.range.slice(), y_range: fl.yaxis.range.slice()};",
        )

    def plot_position(self, key: str, x, y) -> tuple[float, float]:
        """Page pixels of the data point (x, y) on chart ``key`` (numbers or categories)."""
        return tuple(
            self._drawn_plot_eval(
                key,
                "return [r.left + fl.xaxis._offset + fl.xaxis.d2p(arg[0]),"
                " r.top + fl.yaxis._offset + fl.yaxis.d2p(arg[1])];",
                [x, y],
            )
        )

    def click_plot(self, key: str, x, y) -> None:
        """Click chart ``key`` where it draws the data point (x, y), as a person would."""
        px, py = self.plot_position(key, x, y)
        self.page.mouse.move(px, py)
        self.page.wait_for_timeout(150)  # let Plotly's hover find the point first
        self.page.mouse.click(px, py)
        self.settle()

    def drag_plot(self, key: str, start, end, steps: int = 15) -> None:
        """Press at data point ``start`` on chart ``key``, move to ``end``, release."""
        (x0, y0), (x1, y1) = self.plot_position(key, *start), self.plot_position(key, *end)
        self.page.mouse.move(x0, y0)
        self.page.mouse.down()
        for i in range(1, steps + 1):
            self.page.mouse.move(x0 + (x1 - x0) * i / steps, y0 + (y1 - y0) * i / steps)
        self.page.mouse.up()
        self.settle()

    # -- the drawing canvas (in a shadow root: Playwright locators reach it)
    def draw_vertical_stroke(self) -> None:
        """A vertical stroke down the middle of the canvas, in 20 mouse moves."""
        canvas = self.page.locator("canvas.upper-canvas")
        expect(canvas).to_be_visible()
        box = canvas.bounding_box()
        assert box and box["width"] > 50 and box["height"] > 50, box
        x = box["x"] + box["width"] / 2
        top, bottom = box["y"] + box["height"] * 0.2, box["y"] + box["height"] * 0.8
        self.page.mouse.move(x, top)
        self.page.mouse.down()
        for i in range(1, 21):
            self.page.mouse.move(x, top + (bottom - top) * i / 20)
        self.page.mouse.up()

    def prediction(self) -> int:
        """After a stroke: the predicted class shown, checked against the ten probability
        bars (they sum to 1 and the largest is that class)."""
        heading = self.main.get_by_text(re.compile(r"Prediction: \d"))
        expect(heading).to_be_visible(timeout=20_000)
        predicted = int(re.search(r"Prediction: (\d)", heading.inner_text()).group(1))

        def drawn(plots):
            bars = [p for p in plots if p["key"] == "draw_probs" and p["traces"]]
            return bool(bars) and sum(bars[0]["traces"][0]["y"]) > 0.5

        plots = self.wait_plots(drawn)
        bar = next(p for p in plots if p["key"] == "draw_probs")["traces"][0]
        assert bar["type"] == "bar", bar
        assert bar["x"] == [str(d) for d in range(10)], bar["x"]
        probs = bar["y"]
        assert len(probs) == 10 and abs(sum(probs) - 1) < 1e-3, probs
        assert all(0 <= p <= 1 for p in probs), probs
        assert probs.index(max(probs)) == predicted, (predicted, probs)
        return predicted

    def screenshot(self, name: str) -> Path:
        """A screenshot of the whole main area: the viewport is stretched to its height
        (Streamlit scrolls the main area inside the window, so full_page alone is short)."""
        self.page.wait_for_timeout(300)
        height = self.page.evaluate(
            "() => Math.max(...['[data-testid=stMain]', '[data-testid=stMainBlockContainer]']"
            ".map((s) => document.querySelector(s)).filter(Boolean).map((e) => e.scrollHeight))"
        )
        path = self.screenshot_dir / f"{name}.png"
        self.page.set_viewport_size(
            {"width": VIEWPORT["width"], "height": max(VIEWPORT["height"], min(int(height), 4000))}
        )
        try:
            self.page.wait_for_timeout(700)  # Plotly re-lays out on resize
            self.page.screenshot(path=str(path), full_page=True)
        finally:
            self.page.set_viewport_size(VIEWPORT)
        return path


@pytest.fixture(scope="session")
def open_app(app_url, screenshot_dir):
    """``open_app(page, query="", path="", sidebar=True)``: load the app in ``page``; an
    ``App`` helper (see ``App.open``)."""

    def _open(page, query: str = "", **options) -> App:
        return App(page, app_url, screenshot_dir).open(query, **options)

    return _open
