"""An epoch in the app against an epoch of the CLI, on the same settings, in one run.

    python scripts/app_epoch_speed.py                  # Fast preset, full MNIST, 3 epochs
    python scripts/app_epoch_speed.py --epochs 2 --blas-threads 1   # the old fixed policy

What it does, in order (``uptime`` printed before each step; the cores are shared):

1. ``python -m nn_core train --preset fast --epochs E`` (the CLI as a user runs it, OpenBLAS
   on every core), the same with ``OPENBLAS_NUM_THREADS=1``, and at the app's training
   nice level (``DIGITLAB_TRAINING_NICE``): per-epoch seconds from ``--metrics-json``.
2. A real server (``streamlit run streamlit_app.py`` on a free port) and Debian's Chromium
   (Playwright): a tab opens the app with the same settings as a share link (the Fast
   preset, every training image), presses Start, waits for "finished", and downloads the
   run from the Runs page; per-epoch seconds come from that export (the trainer's own
   clock, as the CLI's). Before that, a tab loads the app again and again for 10 s with
   nothing training, then for 10 s while another tab trains (the page time a visitor
   sees beside one training).
3. Two tabs press Start together: both runs' per-epoch seconds, against one alone.
4. The CLI again, so load drifting during the run shows up.

``--policies SECONDS`` instead compares the thread policies without server or browser:
``TrainingRun``s of the preset in this process, one alone and two at once, with the count
fixed at 1, at 2, and following the trainings, interleaved over two rounds.

``--ab ROUNDS`` instead alternates, in one run, what target 3 turns on: two servers, one
fixed at one BLAS thread and one at two (``DIGITLAB_BLAS_THREADS``), each training for
``--window`` seconds with its tab drawing the Training page, then with the browser paused
(SIGSTOP on its processes: the server trains with no page to draw and no reruns, the
nearest this two-core machine comes to a visitor's browser on another machine); then the
CLI on one thread and on two. Medians of the whole epochs of each window.

``--blas-threads N`` starts the server with ``DIGITLAB_BLAS_THREADS=N`` (default: unset,
the server follows its trainings, ``ui/blas_threads.py``); ``--training-nice N`` with
``DIGITLAB_TRAINING_NICE=N`` (0: trainings at the CLI's priority; on a shared machine the
default nice 10 yields to every other process). Prints figures
and ratios only (no pass/fail); ``--json FILE`` keeps them. Needs /usr/bin/chromium and Playwright
(requirements-dev.txt).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nn_core.config import PRESETS  # noqa: E402
from nn_core.run_record import load_run  # noqa: E402
from ui.limits import get_limits  # noqa: E402

PRESET = "fast"


def _conftest():
    """The browser tests' helpers (App, the free port, the health check)."""
    spec = importlib.util.spec_from_file_location(
        "browser_conftest", ROOT / "tests" / "browser" / "conftest.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def share_query(epochs: int) -> str:
    """The app's share link for the preset with every training image (``n=0``)."""
    from ui import share
    from ui import state as keys

    config = PRESETS[PRESET].replace(epochs=epochs)
    values = keys.widget_values(config, get_limits())
    values.update(cfg_preset=PRESET, cfg_subset=0)
    return share.query_string(values)


# ------------------------------------------------------------------------------ the CLI
def cli_epochs(epochs: int, threads: int | None = None, nice: int = 0) -> list[float]:
    """Seconds of each epoch of ``python -m nn_core train --preset fast`` (at ``nice``)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if threads:
        env["OPENBLAS_NUM_THREADS"] = str(threads)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "metrics.json"
        cmd = [sys.executable, "-m", "nn_core", "train", "--preset", PRESET]
        cmd += ["--epochs", str(epochs), "--quiet", "--metrics-json", str(out)]
        if nice:
            cmd = ["nice", "-n", str(nice), *cmd]
        subprocess.run(cmd, cwd=ROOT, env=env, check=True, capture_output=True)
        return json.loads(out.read_text())["history"]["seconds_per_epoch"]


# --------------------------------------------------------------------------- the server
class Server:
    """``streamlit run streamlit_app.py`` on a free port, until ``close``."""

    def __init__(self, blas_threads: int | None, log: Path, nice: int | None = None) -> None:
        helpers = _conftest()
        self.port = helpers._free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false"}
        env.pop("DIGITLAB_BLAS_THREADS", None)
        if blas_threads is not None:
            env["DIGITLAB_BLAS_THREADS"] = str(blas_threads)
        if nice is not None:  # 1: the trainings at about the CLI's priority
            env["DIGITLAB_TRAINING_NICE"] = str(nice)
        self._log = log.open("wb")
        cmd = [sys.executable, "-m", "streamlit", "run", "streamlit_app.py"]
        cmd += ["--server.headless", "true", "--server.port", str(self.port)]
        cmd += ["--server.address", "127.0.0.1", "--server.fileWatcherType", "none"]
        self.proc = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 60
        while not helpers._healthy(self.url):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the server did not start; log: {log}")
            time.sleep(0.2)

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=15)
        self._log.close()


class Tab:
    """One visitor: its own browser context (its own session) on the app."""

    def __init__(self, browser, url: str, shots: Path, query: str) -> None:
        helpers = _conftest()
        self.context = browser.new_context(viewport=helpers.VIEWPORT, accept_downloads=True)
        self.app = helpers.App(self.context.new_page(), url, shots)
        self.app.open(query)

    def start(self) -> None:
        self.app.button("btn_start").click()

    def status(self) -> str:
        return self.app.status_text()

    def download_run(self, folder: Path) -> list[float]:
        """The latest run, exported from the Runs page: its seconds per epoch."""
        self.app.nav("Runs")
        button = self.app.main.locator(".st-key-btn_run_download").get_by_role("button")
        with self.app.page.expect_download(timeout=60_000) as download:
            button.click()
        path = folder / f"{id(self)}-{download.value.suggested_filename}"
        download.value.save_as(path)
        return list(load_run(path).history["seconds_per_epoch"])

    def close(self) -> None:
        self.context.close()


def wait_finished(tabs: list[Tab], epochs: int, timeout: float) -> None:
    """Until every tab's run has finished its ``epochs``; progress every 10 s."""
    start = shown = time.monotonic()
    done = f"finished: epoch {epochs} of {epochs}"
    while True:
        statuses = [t.status() for t in tabs]
        if all(s.startswith(done) for s in statuses):
            return
        now = time.monotonic()
        ended = not any(s.startswith(("training", "queued")) for s in statuses)
        if ended and now - start > 60:  # a minute for the clicks to land
            raise RuntimeError(f"the runs ended early: {statuses}")
        if now - start > timeout:
            raise RuntimeError(f"not finished after {timeout:g} s: {statuses}")
        if now - shown > 10:
            print(f"  {now - start:4.0f} s: {statuses}", flush=True)
            shown = now
        time.sleep(0.5)


def wait_training(tab: Tab, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not tab.status().startswith("training"):
        if time.monotonic() > deadline:
            raise RuntimeError(f"the run did not start: {tab.status()!r}")
        time.sleep(0.1)


def page_loads(browser, url: str, shots: Path, seconds: float) -> list[float]:
    """Open the app in a fresh tab again and again for ``seconds``; each load's seconds
    (to the first settled page with its Start button)."""
    helpers = _conftest()
    context = browser.new_context(viewport=helpers.VIEWPORT)
    app = helpers.App(context.new_page(), url, shots)
    times: list[float] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        t0 = time.perf_counter()
        app.open()
        times.append(time.perf_counter() - t0)
        time.sleep(0.5)
    context.close()
    return times


def pages_while_training(browser, url: str, shots: Path, seconds: float) -> list[float]:
    """Page loads while a long run of the preset trains in another tab (then stopped)."""
    tab = Tab(browser, url, shots, share_query(500))
    tab.start()
    wait_training(tab)
    times = page_loads(browser, url, shots, seconds)
    still = tab.status().startswith("training")
    tab.app.button("btn_stop").click()
    tab.close()
    if not still:
        raise RuntimeError("the run stopped before the page loads ended")
    return times


# ------------------------------------------------------------------ threads, A/B in one run
def _browser_processes() -> list:
    """This script's Chromium processes (children of Playwright's driver)."""
    import psutil

    own = psutil.Process().children(recursive=True)
    return [p for p in own if "chrom" in p.name().lower()]


def _signal_all(processes: list, sig: int) -> None:
    import psutil

    for process in processes:
        with contextlib.suppress(psutil.Error):
            process.send_signal(sig)


def app_window(browser, server: Server, shots: Path, folder: Path, seconds: float, paused: bool):
    """Seconds of each whole epoch a run of the preset trains in ``seconds``, its tab on
    the Training page, the browser paused meanwhile when ``paused``."""
    tab = Tab(browser, server.url, shots, share_query(10_000))
    tab.start()
    wait_training(tab)
    processes = _browser_processes() if paused else []
    _signal_all(processes, signal.SIGSTOP)
    try:
        time.sleep(seconds)
    finally:
        _signal_all(processes, signal.SIGCONT)
    tab.app.button("btn_stop").click()
    deadline = time.monotonic() + 60
    while tab.status().startswith("training"):
        if time.monotonic() > deadline:
            raise RuntimeError(f"the run did not stop: {tab.status()!r}")
        time.sleep(0.2)
    epochs = tab.download_run(folder)
    tab.close()
    return epochs[1:]  # the first epoch also pays for the warm-up


def threads_ab(rounds: int, seconds: float) -> dict[str, list[float]]:
    """Median epoch of each window, by setting: see ``--ab`` in the module docstring."""
    from playwright.sync_api import sync_playwright

    shots = ROOT / "artifacts" / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    servers = {n: Server(n, ROOT / "artifacts" / f"app-epoch-speed-server-{n}.log") for n in (1, 2)}
    medians: dict[str, list[float]] = {}

    def keep(name: str, epochs: list[float]) -> None:
        medians.setdefault(name, []).append(typical(epochs))
        load = uptime().split("load average: ")[1]
        print(f"  {name:34s} {typical(epochs):.3f} s an epoch ({len(epochs)}; load {load})",
              flush=True)  # fmt: skip

    helpers = _conftest()
    try:
        with sync_playwright() as pw, tempfile.TemporaryDirectory() as tmp:
            browser = pw.chromium.launch(
                executable_path=helpers.CHROMIUM, args=["--disable-gpu", "--disable-quic"]
            )
            for _ in range(rounds):
                for n, server in servers.items():
                    for paused in (False, True):
                        epochs = app_window(browser, server, shots, Path(tmp), seconds, paused)
                        state = "browser paused" if paused else "tab drawing"
                        keep(f"app, {n} thread{'s' * (n > 1)}, {state}", epochs)
                for n in (1, 2):
                    epochs = cli_epochs(max(4, round(seconds / 0.5)), threads=n)[1:]
                    keep(f"CLI, {n} thread{'s' * (n > 1)}", epochs)
            browser.close()
    finally:
        for server in servers.values():
            server.close()
    return medians


# ------------------------------------------------------------------- the policies alone
def policies_in_process(seconds: float, rounds: int) -> dict[str, list[float]]:
    """Batches per second of the preset in ``TrainingRun``s on this process's own gate,
    one alone and two at once, under a fixed count of 1, of 2, and the policy (0),
    interleaved: the BLAS policy with no server, browser or page in the way."""
    from nn_core.data import load_mnist
    from ui.blas_threads import BlasThreads
    from ui.runner import TrainingGate, TrainingRun

    data = load_mnist()
    config = PRESETS[PRESET].replace(epochs=10_000)
    rates: dict[str, list[float]] = {}
    for _ in range(rounds):
        for fixed in (1, 2, 0):
            name = f"fixed {fixed}" if fixed else "policy"
            for n_runs in (1, 2):
                blas = BlasThreads(fixed=fixed)
                blas.configure(fixed)
                gate = TrainingGate(2, blas=blas)
                runs = [TrainingRun(config, data, gate, max_seconds=seconds) for _ in range(n_runs)]
                t0 = time.perf_counter()
                for run in runs:
                    run.start()
                for run in runs:
                    run._thread.join()
                wall = time.perf_counter() - t0
                key = f"{name}, {'alone' if n_runs == 1 else 'each of 2'}"
                batches = [len(run.trainer.history.batch_loss) / wall for run in runs]
                rates.setdefault(key, []).extend(batches)
                print(f"  {key:22s} {', '.join(f'{b:.0f}' for b in batches)} batches/s "
                      f"({uptime().split('load average: ')[1]})", flush=True)  # fmt: skip
    return rates


# ------------------------------------------------------------------------------ report
def fmt(values: list[float]) -> str:
    return "[" + ", ".join(f"{v:.2f}" for v in values) + "]"


def typical(values: list[float]) -> float:
    """The median epoch (the first epoch also pays for warm-up in both)."""
    return statistics.median(values) if values else float("nan")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--blas-threads", type=int, default=None, help="DIGITLAB_BLAS_THREADS")
    parser.add_argument(
        "--training-nice", type=int, default=None, help="DIGITLAB_TRAINING_NICE (0-19)"
    )
    parser.add_argument("--no-concurrent", action="store_true", help="skip the two-run step")
    parser.add_argument("--no-pages", action="store_true", help="skip the page-load timing")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument(
        "--policies", type=float, default=0, metavar="SECONDS",
        help="only compare the thread policies in this process, SECONDS per training",
    )  # fmt: skip
    parser.add_argument(
        "--ab", type=int, default=0, metavar="ROUNDS",
        help="only alternate one and two BLAS threads, tab drawing or browser paused, and the CLI",
    )  # fmt: skip
    parser.add_argument("--window", type=float, default=10.0, help="seconds per --ab window")
    args = parser.parse_args(argv)
    if args.ab:
        print(f"[ab] {uptime()}")
        medians = threads_ab(args.ab, args.window)
        print("\nMedian epoch (s) of each window, by setting:")
        for name, values in medians.items():
            print(f"  {name:34s} {fmt(values)}  median {typical(values):.3f}")
        if args.json:
            args.json.write_text(json.dumps(medians, indent=1))
        return medians
    if args.policies:
        print(f"[policies] {uptime()}")
        rates = policies_in_process(args.policies, rounds=2)
        print("Median batches/s: " + "; ".join(f"{k} {typical(v):.0f}" for k, v in rates.items()))
        if args.json:
            args.json.write_text(json.dumps(rates, indent=1))
        return rates
    from playwright.sync_api import sync_playwright

    out: dict = {"epochs": args.epochs, "blas_threads": args.blas_threads, "uptime": []}
    out["training_nice"] = args.training_nice

    def note(step: str) -> None:
        line = uptime()
        out["uptime"].append((step, line))
        print(f"[{step}] {line}", flush=True)

    note("cli")
    out["cli"] = cli_epochs(args.epochs)
    out["cli_1thread"] = cli_epochs(args.epochs, threads=1)
    nice = get_limits().training_nice if args.training_nice is None else args.training_nice
    out["cli_nice"] = cli_epochs(args.epochs, nice=nice)
    print(f"CLI epochs (s), all cores: {fmt(out['cli'])}; one thread: {fmt(out['cli_1thread'])}")
    print(f"CLI epochs (s), all cores at the app's nice level: {fmt(out['cli_nice'])}")

    query = share_query(args.epochs)
    shots = ROOT / "artifacts" / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    log = ROOT / "artifacts" / "app-epoch-speed-server.log"
    server = Server(args.blas_threads, log, nice=args.training_nice)
    helpers = _conftest()
    try:
        with sync_playwright() as pw, tempfile.TemporaryDirectory() as tmp:
            browser = pw.chromium.launch(
                executable_path=helpers.CHROMIUM, args=["--disable-gpu", "--disable-quic"]
            )
            if not args.no_pages:
                note("pages")
                out["pages_idle"] = page_loads(browser, server.url, shots, 10.0)
                out["pages_training"] = pages_while_training(browser, server.url, shots, 10.0)
            note("app alone")
            tab = Tab(browser, server.url, shots, query)
            tab.start()
            wait_finished([tab], args.epochs, timeout=600)
            out["app"] = tab.download_run(Path(tmp))
            tab.close()
            print(f"App epochs (s), alone: {fmt(out['app'])}", flush=True)
            if not args.no_concurrent:
                note("app x2")
                pair = [Tab(browser, server.url, shots, query) for _ in range(2)]
                for t in pair:
                    t.start()
                wait_finished(pair, args.epochs, timeout=900)
                out["app_pair"] = [t.download_run(Path(tmp)) for t in pair]
                for i, times in enumerate(out["app_pair"], 1):
                    print(f"App epochs (s), run {i} of 2 together: {fmt(times)}", flush=True)
                for t in pair:
                    t.close()
            browser.close()
    finally:
        server.close()
    note("cli again")
    out["cli_after"] = cli_epochs(args.epochs)
    print(f"CLI epochs (s), all cores, again: {fmt(out['cli_after'])}")
    report(out)
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))
    return out


def report(out: dict) -> None:
    cli = typical(out["cli"] + out["cli_after"])
    app = typical(out["app"])
    print("\nMedian epoch (s):")
    print(f"  CLI, all cores    {cli:.2f}   (one thread: {typical(out['cli_1thread']):.2f})")
    print(f"  CLI, niced        {typical(out['cli_nice']):.2f}   (the app's training nice level)")
    print(f"  app, alone        {app:.2f}   app / CLI = {app / cli:.2f}")
    for i, times in enumerate(out.get("app_pair", []), 1):
        both = typical(times)
        print(f"  app, {i} of 2       {both:.2f}   / app alone = {both / app:.2f}")
    if out.get("pages_idle") and out.get("pages_training"):
        idle, busy = typical(out["pages_idle"]), typical(out["pages_training"])
        print(
            f"Page load (median of {len(out['pages_idle'])} / {len(out['pages_training'])}): "
            f"{idle:.2f} s idle, {busy:.2f} s while one run trains ({busy / idle:.2f}x)"
        )


if __name__ == "__main__":
    main()
