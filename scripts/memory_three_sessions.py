"""Measure the server's memory with three browser sessions training on full MNIST.

Starts ``streamlit run streamlit_app.py`` on a free port, opens three independent sessions
in headless Chromium (Playwright), presses Start in each (the default settings: the Fast
preset, 784-128-64-10, all 54,000 training images), and samples the server process's
resident memory (VmRSS from /proc, every 0.2 s) until the three runs finish or the time
budget ends. Prints the idle, peak and final figures.

    python scripts/memory_three_sessions.py [--seconds 120] [--preset fast|accurate|notebook]

Needs Linux (/proc), Playwright for Python and Chromium at /usr/bin/chromium.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PRESETS = ("fast", "accurate", "notebook")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=150)
    parser.add_argument("--preset", choices=PRESETS, default="fast")
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    port = free_port()
    env = dict(os.environ, STREAMLIT_BROWSER_GATHER_USAGE_STATS="false")
    env["DIGITLAB_MAX_CONCURRENT"] = "3"  # all three train at once (the worst case)
    server = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "streamlit_app.py",
         "--server.headless", "true", "--server.port", str(port),
         "--server.address", "127.0.0.1", "--server.fileWatcherType", "none"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    samples: list[tuple[float, float]] = []
    stop = threading.Event()

    def sample() -> None:
        t0 = time.monotonic()
        while not stop.is_set():
            samples.append((time.monotonic() - t0, rss_mib(server.pid)))
            time.sleep(0.2)

    try:
        url = f"http://127.0.0.1:{port}/"
        for _ in range(100):
            try:
                if urllib.request.urlopen(url + "_stcore/health", timeout=1).read() == b"ok":
                    break
            except OSError:
                time.sleep(0.1)
        threading.Thread(target=sample, daemon=True).start()
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path="/usr/bin/chromium", args=["--disable-gpu", "--disable-quic"]
            )
            pages = []
            for _ in range(3):
                context = browser.new_context()  # separate cookies: separate sessions
                page = context.new_page()
                page.goto(f"{url}?p={args.preset}")  # a share link sets the preset
                page.get_by_role("heading", name="Training").wait_for()
                pages.append(page)
            time.sleep(1.0)
            idle = samples[-1][1]
            for page in pages:
                page.locator("[data-testid=stSidebar]").get_by_role("button", name="Start").click()
            started = time.monotonic()
            finished = False
            while time.monotonic() - started < args.seconds:
                time.sleep(2)
                done = [p.get_by_text("Test accuracy").count() > 0 for p in pages]
                if all(done):
                    finished = True
                    break
            elapsed = time.monotonic() - started
            browser.close()
        stop.set()
        peak = max(r for _, r in samples)
        print(f"preset: {args.preset}, 3 sessions, all MNIST training images")
        print(f"server RSS idle with 3 sessions open: {idle:.0f} MiB")
        print(f"server RSS peak while the 3 trained: {peak:.0f} MiB")
        print(f"server RSS at the end: {samples[-1][1]:.0f} MiB")
        print(f"all three finished: {finished} ({elapsed:.0f} s)")
        return 0 if peak < 1024 else 1
    finally:
        stop.set()
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    raise SystemExit(main())
