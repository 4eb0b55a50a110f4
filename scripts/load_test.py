"""Load test: a real digitlab server and N Chromium visitors who train, browse and leave.

    python scripts/load_test.py --visitors 6             # figures for RELIABILITY.md
    python scripts/load_test.py --visitors 3 --json out.json
    python scripts/load_test.py --visitors 4 --limit-as-mb 1400 --hostile-upload

Visitors take turns at three roles: a *trainer* opens a share link with small settings,
presses Start and visits every page while its run trains, then waits for the end; a
*leaver* does the same but closes its tab a few seconds into training; an *observer*
never trains and only moves between pages (its page times are the ones a visitor who is
not training sees). With ``--hostile-upload`` one extra visitor uploads a valid 32 KB
``.npz`` of ten 1000x1000 images and presses Start.

The report: peak resident memory of the server's process tree (sampled every 0.2 s),
page-switch latency percentiles (click to the new page's heading), queue waits (Start
to "training"), trainings finished, errors (exception boxes in the pages, tracebacks in
the server log), the server's own account of freed slots (its ``digitlab.hosting`` log
lines) and the memory left a while after every tab has closed.

Linux only (reads /proc). Needs Debian's Chromium at /usr/bin/chromium and Playwright
(requirements-dev.txt); ``--limit-as-mb`` runs the server under ``prlimit --as``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(os.environ.get("DIGITLAB_APP_ROOT", Path(__file__).resolve().parents[1]))
CHROMIUM = os.environ.get("DIGITLAB_CHROMIUM", "/usr/bin/chromium")
MB = 2**20
PAGES = ("Weights", "Evaluation", "Mistakes", "Draw", "Models", "Training")
# Small runs: a 5,000-image subset, one 64-unit layer. Enough to keep the slots busy for
# a while on two cores shared by every visitor.
LEAVER_EPOCHS = 500  # the default DIGITLAB_MAX_EPOCHS
TRAIN_QUERY = "p=custom&h=64&e={epochs}&n=5000&b=64&o=adam&lr=0.001"


# ---------------------------------------------------------------------------- server
def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def healthy(url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=timeout) as response:
            return response.status == 200 and response.read().strip() == b"ok"
    except OSError:
        return False


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(children.get(current, []))
    return tree


def rss_bytes(pid: int, field: str = "VmRSS") -> int:
    """Resident memory (or ``field``, e.g. VmSize) of ``pid`` and its descendants, in
    bytes (0 once it has exited)."""
    total = 0
    for member in process_tree(pid):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{member}/status").read_text().splitlines():
                if line.startswith(f"{field}:"):
                    total += int(line.split()[1]) * 1024
    return total


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` and its descendants so far, in seconds."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for member in process_tree(pid):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


class Server:
    """``streamlit run streamlit_app.py`` on a free port, optionally under ``prlimit --as``.

    Parameters
    ----------
    env : dict
        Extra environment (the DIGITLAB_* caps).
    limit_as_mb : int, optional
        Address-space limit of the server process, in MB.
    log_path : Path
        Where the server's output goes.
    """

    def __init__(
        self,
        env: dict[str, str] | None = None,
        limit_as_mb: int | None = None,
        log_path: Path | None = None,
        port: int | None = None,
    ) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false", **(env or {})}
        self.limit_as_mb = limit_as_mb
        self.log_path = log_path or ROOT / "artifacts" / f"load-server-{self.port}.log"
        self.proc: subprocess.Popen | None = None
        self.started = 0.0

    def command(self) -> list[str]:
        cmd = [sys.executable, "-m", "streamlit", "run", "streamlit_app.py"]
        cmd += ["--server.headless", "true", "--server.port", str(self.port)]
        cmd += ["--server.address", "127.0.0.1", "--server.fileWatcherType", "none"]
        if self.limit_as_mb:
            cmd = ["prlimit", f"--as={self.limit_as_mb * MB}", "--", *cmd]
        return cmd

    def start(self, timeout: float = 60.0) -> Server:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            self.command(), cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        deadline = time.monotonic() + timeout
        while not healthy(self.url):
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited with {self.proc.returncode}: {self.log()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the server was not healthy after {timeout:g} s")
            time.sleep(0.2)
        self.started = time.monotonic()
        return self

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def rss(self) -> int:
        return rss_bytes(self.proc.pid) if self.alive else 0

    def cpu(self) -> float:
        return cpu_seconds(self.proc.pid) if self.alive else 0.0

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, kill: bool = False) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=15)

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class HealthProbe:
    """Times ``/_stcore/health`` every ``every`` seconds in a thread: how long the server's
    event loop takes to answer the simplest request."""

    def __init__(self, server: Server, every: float = 0.5) -> None:
        self.server = server
        self.every = every
        self.seconds: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            t0 = time.monotonic()
            if healthy(self.server.url, timeout=30):
                self.seconds.append(time.monotonic() - t0)
            self._stop.wait(self.every)

    def __enter__(self) -> HealthProbe:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def renice_browsers(nice: int, done: set[int]) -> None:
    """Lower the priority of this process's Chromium processes (``done``: already set).

    The visitors' browsers would run on their own machines; here they share the server's
    cores, and rendering ten pages must not count as the server being slow.
    """
    for pid in process_tree(os.getpid())[1:]:
        if pid in done:
            continue
        with contextlib.suppress(OSError):
            if "chrom" in Path(f"/proc/{pid}/comm").read_text():
                os.setpriority(os.PRIO_PROCESS, pid, nice)
                done.add(pid)


class MemorySampler:
    """Samples the server's resident memory every ``every`` seconds in a thread (and
    lowers the priority of new browser processes, when ``browser_nice`` is set)."""

    def __init__(self, server: Server, every: float = 0.2, browser_nice: int = 0) -> None:
        self.server = server
        self.every = every
        self.browser_nice = browser_nice
        self._reniced: set[int] = set()
        self.peak_virtual = 0
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        t0 = time.monotonic()
        while not self._stop.is_set():
            self.samples.append((time.monotonic() - t0, self.server.rss()))
            if self.server.alive:
                self.peak_virtual = max(
                    self.peak_virtual, rss_bytes(self.server.proc.pid, "VmSize")
                )
            if self.browser_nice:
                renice_browsers(self.browser_nice, self._reniced)
            self._stop.wait(self.every)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def peak(self) -> int:
        return max((rss for _, rss in self.samples), default=0)


# ---------------------------------------------------------------------------- visitors
@dataclass
class VisitorReport:
    name: str
    role: str
    page_seconds: list[float] = field(default_factory=list)
    first_load_seconds: float | None = None
    queue_wait_seconds: float | None = None
    train_seconds: float | None = None
    finished: bool = False
    refused: str | None = None
    errors: list[str] = field(default_factory=list)


async def wait_app_idle(page, timeout: float = 60.0) -> None:
    """Until the app is connected and no script run is in progress."""
    await page.wait_for_function(
        "() => { const a = document.querySelector('[data-testid=stApp]');"
        " return !!a && a.getAttribute('data-test-script-state') === 'notRunning'"
        " && a.getAttribute('data-test-connection-state') === 'CONNECTED'; }",
        timeout=timeout * 1000,
    )


async def exception_texts(page) -> list[str]:
    boxes = page.locator("[data-testid=stException]")
    return [text[:300] for text in await boxes.all_inner_texts()]


async def status_text(page) -> str:
    progress = page.locator("[data-testid=stSidebar] [data-testid=stProgress]")
    if await progress.count():
        return (await progress.first.inner_text()).lower()
    return ""


async def open_app(page, url: str, query: str, report: VisitorReport) -> None:
    t0 = time.monotonic()
    await page.goto(f"{url}/?{query}" if query else f"{url}/", timeout=120_000)
    start = page.locator("[data-testid=stSidebar] .st-key-btn_start button").first
    await start.wait_for(state="visible", timeout=120_000)
    report.first_load_seconds = time.monotonic() - t0
    await wait_app_idle(page, 120)


async def visit(page, title: str, report: VisitorReport) -> None:
    """Click ``title`` in the navigation; time until its heading is shown."""
    link = page.locator("[data-testid=stSidebarNav] a").filter(has_text=title).first
    t0 = time.monotonic()
    await link.click(timeout=60_000)
    heading = page.locator("[data-testid=stMain]").get_by_role("heading", name=title, exact=True)
    try:
        await heading.wait_for(state="visible", timeout=60_000)
        report.page_seconds.append(time.monotonic() - t0)
    except Exception:  # a page that never came is an error of the run, not of the script
        report.errors.append(f"{title} did not appear within 60 s")
        return
    with contextlib.suppress(Exception):
        await wait_app_idle(page, 30)
    report.errors.extend(await exception_texts(page))


async def press_start(page, report: VisitorReport, settle_timeout: float) -> bool:
    """Press Start; record the queue wait (Start to 'training'). False if it was refused."""
    button = page.locator("[data-testid=stSidebar] .st-key-btn_start button").first
    t0 = time.monotonic()
    await button.click()
    deadline = t0 + settle_timeout
    while time.monotonic() < deadline:
        status = await status_text(page)
        if "training" in status or "finished" in status:
            report.queue_wait_seconds = time.monotonic() - t0
            return True
        refusal = page.locator("[data-testid=stSidebar] [data-testid=stAlertContentError]")
        if await refusal.count():
            report.refused = (await refusal.first.inner_text())[:400]
            return False
        await asyncio.sleep(0.2)
    report.errors.append(f"the run never started within {settle_timeout:g} s")
    return False


async def wait_finished(page, report: VisitorReport, t_start: float, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if "finished" in await status_text(page):
            report.finished = True
            report.train_seconds = time.monotonic() - t_start
            return
        await asyncio.sleep(0.5)
    report.errors.append(f"the run did not finish within {timeout:g} s")


async def trainer(context, url: str, report: VisitorReport, args) -> None:
    page = await context.new_page()
    # A leaver's run is long enough to be still training when its tab has been gone for
    # the grace period, even on a quiet machine (100 small epochs ended within 9 s there).
    epochs = LEAVER_EPOCHS if report.role == "leaver" else args.epochs
    await open_app(page, url, args.train_query.format(epochs=epochs), report)
    t_start = time.monotonic()
    if not await press_start(page, report, args.run_timeout):
        await page.close()
        return
    if report.role == "leaver":
        await asyncio.sleep(args.leave_after)
        await page.close()
        return
    for title in PAGES:
        await visit(page, title, report)
    await wait_finished(page, report, t_start, args.run_timeout)
    report.errors.extend(await exception_texts(page))
    await page.close()


async def observer(context, url: str, report: VisitorReport, args, until: asyncio.Event) -> None:
    page = await context.new_page()
    await open_app(page, url, "", report)
    rounds = 0
    while not until.is_set() or rounds < 1:
        for title in PAGES:
            await visit(page, title, report)
        rounds += 1
    await page.close()


def hostile_npz() -> bytes:
    """A valid .npz of ten 1000x1000 images that compresses to ~32 KB (issue 14)."""
    buffer = io.BytesIO()
    x = np.zeros((10, 1000, 1000), np.uint8)
    x[:, 400:600, 450:550] = 255
    np.savez_compressed(buffer, x_train=x, y_train=np.arange(10) % 2)
    return buffer.getvalue()


def hostile_model(path: Path) -> Path:
    """Issue 14's model file: a valid 784-4096-4096-4096-10 float64 network (~45 MB on
    disk, 294 MB of weights), its weights drawn from 64 values so that it compresses like
    the reported file. Building it takes ~600 MB in this process, none in the server's."""
    sys.path.insert(0, str(ROOT))
    from nn_core.io import save_model
    from nn_core.network import MLP

    if path.exists():
        return path
    rng = np.random.default_rng(0)
    model = MLP(784, (4096, 4096, 4096), 10, dtype="float64")
    values = rng.standard_normal(64) * 0.05
    model.params[...] = values[rng.integers(0, 64, model.params.size)]
    with path.open("wb") as out:
        save_model(out, model, class_names=[str(i) for i in range(10)])
    return path


async def model_uploader(context, url: str, report: VisitorReport, tmp: Path) -> None:
    """Opens Models and uploads the wide float64 model file."""
    page = await context.new_page()
    await open_app(page, url, "", report)
    path = tmp / "wide_float64_model.npz"  # made by run() before the server starts
    await page.locator("[data-testid=stSidebarNav] a").filter(has_text="Models").first.click()
    main = page.locator("[data-testid=stMain]")
    await main.get_by_role("heading", name="Models", exact=True).wait_for(timeout=60_000)
    await wait_app_idle(page)
    await main.locator("input[type=file]").first.set_input_files(str(path))
    error = main.locator("[data-testid=stAlertContentError]")
    accepted = main.get_by_text("Uploaded model")
    await error.or_(accepted).first.wait_for(timeout=180_000)
    if await error.count():
        report.refused = (await error.first.inner_text())[:400]
    else:
        report.errors.append("the wide model file was accepted")
    report.errors.extend(await exception_texts(page))
    await page.close()


async def hostile_uploader(context, url: str, report: VisitorReport, tmp: Path) -> None:
    page = await context.new_page()
    await open_app(page, url, "n=0", report)
    path = tmp / "ten_megapixel_images.npz"
    path.write_bytes(hostile_npz())
    sidebar = page.locator("[data-testid=stSidebar]")
    await sidebar.get_by_text("Upload a file").click()
    await wait_app_idle(page)
    await sidebar.locator("input[type=file]").first.set_input_files(str(path))
    error = sidebar.locator("[data-testid=stAlertContentError]")
    loaded = sidebar.get_by_text(re.compile(r"Using .+ training"))
    await error.or_(loaded).first.wait_for(timeout=120_000)
    await wait_app_idle(page)
    if await error.count():
        report.refused = (await error.first.inner_text())[:400]
    else:
        await press_start(page, report, 60)
    report.errors.extend(await exception_texts(page))
    await page.close()


def role_of(i: int, n: int) -> str:
    """Visitor i's role: about half trainers, a leaver per four, the rest observers."""
    if n <= 3:
        return ("trainer", "leaver", "observer")[i]
    return ("trainer", "leaver", "observer", "trainer")[i % 4]


async def drive(url: str, args, tmp: Path) -> list[VisitorReport]:
    from playwright.async_api import async_playwright

    roles = (
        args.roles.split(",")
        if args.roles
        else [role_of(i, args.visitors) for i in range(args.visitors)]
    )
    reports = [VisitorReport(f"v{i}", role) for i, role in enumerate(roles)]
    if args.hostile_upload:
        reports.append(VisitorReport("hostile", "hostile"))
    if args.hostile_model:
        reports.append(VisitorReport("hostile-model", "hostile-model"))
    trainers_done = asyncio.Event()
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=CHROMIUM, args=["--disable-gpu", "--disable-quic"]
        )
        contexts = [
            await browser.new_context(viewport={"width": 1280, "height": 900}) for _ in reports
        ]

        async def run_one(context, report: VisitorReport, delay: float):
            await asyncio.sleep(delay)
            try:
                if report.role == "observer":
                    await observer(context, url, report, args, trainers_done)
                elif report.role == "hostile":
                    await hostile_uploader(context, url, report, tmp)
                elif report.role == "hostile-model":
                    await model_uploader(context, url, report, tmp)
                else:
                    await trainer(context, url, report, args)
            except Exception as exc:  # recorded: a visitor that broke is a finding
                report.errors.append(f"{type(exc).__name__}: {str(exc)[:300]}")

        tasks = [
            asyncio.create_task(run_one(c, r, i * args.stagger))
            for i, (c, r) in enumerate(zip(contexts, reports))
        ]
        others = [t for t, r in zip(tasks, reports) if r.role != "observer"]
        await asyncio.gather(*others)
        trainers_done.set()
        await asyncio.gather(*tasks)
        for context in contexts:
            await context.close()
        await browser.close()
    return reports


# ---------------------------------------------------------------------------- report
# A tab closed while Streamlit was writing to its websocket: the web server's noise, not
# an error of the app (Streamlit logs it with a traceback).
CLOSED_SOCKET = (
    "WebSocketDisconnected",
    "ConnectionClosed",
    "ClientDisconnected",
    "ClientDisconnect",
)


def tracebacks(log: str) -> list[str]:
    """The final line (exception type and message) of every traceback in the log."""
    finals, inside = [], False
    for line in log.splitlines():
        if line.startswith("Traceback (most recent call last)"):
            inside = True
        elif inside and line and not line.startswith((" ", "\t")):
            finals.append(line.strip())
            inside = False
    return finals


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def summarize(
    reports, sampler: MemorySampler, probe: HealthProbe, server: Server, after_close: int, args
) -> dict:
    def pages(role_filter):
        return [s for r in reports if role_filter(r.role) for s in r.page_seconds]

    observer_pages = pages(lambda role: role == "observer")
    all_pages = pages(lambda role: True)
    log = server.log()
    finals = tracebacks(log)
    app_errors = [f for f in finals if not any(n in f.split(":")[0] for n in CLOSED_SOCKET)]
    freed = re.findall(r"digitlab\.hosting.*(?:gone|freed|closed).*", log)
    waits = [r.queue_wait_seconds for r in reports if r.queue_wait_seconds is not None]
    return {
        "visitors": args.visitors,
        "cores": os.cpu_count(),
        "load_average_before": args.load_before,
        "browser_nice": args.browser_nice,
        "load_average_after": os.getloadavg()[0],
        "server_alive": server.alive,
        "server_cores_used": round(args.server_cores, 2),
        "peak_rss_mb": round(sampler.peak / MB, 1),
        "peak_virtual_mb": round(sampler.peak_virtual / MB, 1),
        "limit_as_mb": args.limit_as_mb,
        "rss_after_close_mb": round(after_close / MB, 1),
        "idle_rss_mb": round(args.idle_rss / MB, 1),
        "page_seconds_observer": _quantiles(observer_pages),
        "page_seconds_all": _quantiles(all_pages),
        "health_seconds": _quantiles(probe.seconds),
        "first_load_seconds": _quantiles(
            [r.first_load_seconds for r in reports if r.first_load_seconds is not None]
        ),
        "queue_wait_seconds": _quantiles(waits),
        "trainings_finished": sum(r.finished for r in reports),
        "trainings_expected": sum(r.role == "trainer" for r in reports),
        "refusals": [r.refused for r in reports if r.refused],
        "errors": [f"{r.name}: {e}" for r in reports for e in r.errors],
        "server_tracebacks": len(finals),
        "app_tracebacks": app_errors,
        "freed_lines": freed[-20:],
        "visitors_detail": [asdict(r) for r in reports],
    }


def _quantiles(values: list[float]) -> dict:
    if not values:
        return {"n": 0}
    return {
        "n": len(values),
        "p50": round(percentile(values, 50), 2),
        "p90": round(percentile(values, 90), 2),
        "max": round(max(values), 2),
        "mean": round(statistics.fmean(values), 2),
    }


def print_report(result: dict) -> None:
    print(
        f"visitors {result['visitors']} on {result['cores']} cores, load average before "
        f"{result['load_average_before']:.2f}, after {result['load_average_after']:.2f}"
    )
    print(
        f"server alive at the end: {result['server_alive']}; it used "
        f"{result['server_cores_used']} cores on average while the visitors were there"
    )
    print(
        f"server RSS: idle {result['idle_rss_mb']} MB, peak {result['peak_rss_mb']} MB, "
        f"{result['rss_after_close_mb']} MB after every tab closed; peak address space "
        f"{result['peak_virtual_mb']} MB (limit: {result['limit_as_mb'] or 'none'})"
    )
    for key in (
        "page_seconds_observer",
        "page_seconds_all",
        "health_seconds",
        "first_load_seconds",
        "queue_wait_seconds",
    ):
        print(f"{key}: {result[key]}")
    print(f"trainings finished: {result['trainings_finished']} of {result['trainings_expected']}")
    for refusal in result["refusals"]:
        print(f"refused: {refusal}")
    print(
        f"errors: {len(result['errors'])}, server tracebacks: {result['server_tracebacks']} "
        f"({len(result['app_tracebacks'])} from the app, the rest closed websockets)"
    )
    for final in result["app_tracebacks"][:10]:
        print(f"  app traceback: {final}")
    for error in result["errors"][:20]:
        print(f"  {error}")
    for line in result["freed_lines"]:
        print(f"  server: {line}")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--visitors", type=int, default=3)
    parser.add_argument(
        "--roles",
        default="",
        help="comma-separated roles (trainer, leaver, observer), one per visitor",
    )
    parser.add_argument(
        "--train-query",
        default=TRAIN_QUERY,
        help="share-link settings of the trainers ({epochs} is filled in)",
    )
    parser.add_argument("--epochs", type=int, default=3, help="epochs of each visitor's run")
    parser.add_argument("--stagger", type=float, default=0.5, help="seconds between arrivals")
    parser.add_argument("--leave-after", type=float, default=3.0, help="leaver's seconds")
    parser.add_argument("--run-timeout", type=float, default=240.0)
    parser.add_argument(
        "--after-close-wait",
        type=float,
        default=None,
        help="seconds to wait after the last tab closed (default: grace + 10)",
    )
    parser.add_argument("--limit-as-mb", type=int, default=None)
    parser.add_argument(
        "--browser-nice",
        type=int,
        default=10,
        help="scheduling priority of the visitors' Chromium processes (0: unchanged)",
    )
    parser.add_argument(
        "--hostile-upload", action="store_true", help="one more visitor: ten 1000x1000 images"
    )
    parser.add_argument(
        "--hostile-model",
        action="store_true",
        help="one more visitor: a 784-4096-4096-4096-10 float64 model file",
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra server environment, e.g. DIGITLAB_MAX_CONCURRENT=2",
    )
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.roles:
        args.visitors = len(args.roles.split(","))
    return args


def run(args) -> dict:
    env = dict(item.split("=", 1) for item in args.env)
    grace = float(
        env.get(
            "DIGITLAB_SESSION_GRACE_SECONDS", os.environ.get("DIGITLAB_SESSION_GRACE_SECONDS", 15)
        )
    )
    tmp = ROOT / "artifacts" / "load"
    tmp.mkdir(parents=True, exist_ok=True)
    if args.hostile_model:
        hostile_model(tmp / "wide_float64_model.npz")
    args.load_before = os.getloadavg()[0]
    server = Server(
        env=env, limit_as_mb=args.limit_as_mb, log_path=tmp / f"server-{args.visitors}.log"
    )
    if server.log_path.exists():
        server.log_path.unlink()
    sampler = MemorySampler(server, browser_nice=args.browser_nice)
    with server, sampler, HealthProbe(server) as probe:
        time.sleep(1.0)
        args.idle_rss = server.rss()
        cpu0, wall0 = server.cpu(), time.monotonic()
        reports = asyncio.run(drive(server.url, args, tmp))
        args.server_cores = (server.cpu() - cpu0) / (time.monotonic() - wall0)
        time.sleep(args.after_close_wait if args.after_close_wait is not None else grace + 10)
        after_close = server.rss()
        result = summarize(reports, sampler, probe, server, after_close, args)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))
    return result


def main(argv=None) -> int:
    args = parse_args(argv)
    result = run(args)
    print_report(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
