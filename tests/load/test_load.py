"""The load test in CI: a real server and three Chromium visitors (scripts/load_test.py).

One visitor trains and visits every page, one closes its tab while its run trains, one
only moves between pages. Asserted: no exception anywhere, the server's peak resident
memory under 1 GiB, page switches of the visitor who is not training under 2 s (median),
and the closed tab's slot freed by the server. Larger N: ``python scripts/load_test.py
--visitors 10`` (figures in RELIABILITY.md).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "load_test.py"
REPORT = ROOT / "artifacts" / "load" / "ci-load.json"
pytestmark = pytest.mark.browser
GIB = 2**30
GRACE = 5
PAGES = ("Weights", "Evaluation", "Mistakes", "Draw", "Models", "Training")  # the script's


@pytest.fixture(scope="module")
def result():
    """Run the script in its own process: its asyncio Playwright cannot share this process's
    thread with pytest-playwright's sync Playwright (the browser tests run first)."""
    chromium = os.environ.get("DIGITLAB_CHROMIUM", "/usr/bin/chromium")
    if not (os.path.isfile(chromium) or shutil.which("chromium")):
        if os.environ.get("DIGITLAB_REQUIRE_BROWSER"):
            pytest.fail(f"DIGITLAB_REQUIRE_BROWSER is set but {chromium} is missing")
        pytest.skip(f"Chromium not found at {chromium} (apt-get install -y chromium)")
    REPORT.unlink(missing_ok=True)
    args = [
        "--roles",
        "trainer,leaver,observer",
        "--epochs",
        "2",
        "--after-close-wait",
        str(GRACE + 5),
        "--env",
        f"DIGITLAB_SESSION_GRACE_SECONDS={GRACE}",
        "--json",
        str(REPORT),
    ]
    done = subprocess.run(
        [sys.executable, str(SCRIPT), *args], cwd=ROOT, capture_output=True, text=True, timeout=900
    )
    print(done.stdout[-4000:], done.stderr[-4000:])
    assert done.returncode == 0 and REPORT.exists(), done.stderr[-4000:]
    return json.loads(REPORT.read_text())


def test_no_visitor_sees_an_exception_and_the_server_logs_no_traceback(result):
    assert result["server_alive"]
    assert result["errors"] == []
    assert result["app_tracebacks"] == []  # closed-websocket noise of the web server aside


def test_peak_memory_stays_under_one_gib(result):
    assert 0 < result["peak_rss_mb"] * 2**20 < GIB


def test_pages_answer_within_two_seconds_for_a_visitor_who_is_not_training(result):
    pages = result["page_seconds_observer"]
    assert pages["n"] >= len(PAGES)
    assert pages["p50"] < 2.0, pages


def test_the_closed_tab_frees_its_slot_and_the_other_run_finishes(result):
    assert result["trainings_finished"] == result["trainings_expected"] == 1
    freed = [line for line in result["freed_lines"] if "stopped while" in line]
    assert freed, result["freed_lines"]
    assert "slot freed" in freed[0]
