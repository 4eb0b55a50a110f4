"""AppTest helpers for the dashboard."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parents[2] / "streamlit_app.py")


@pytest.fixture
def app() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    assert not at.exception, at.exception
    return at


def tiny_settings(at: AppTest, hidden: int = 16, epochs: int = 1, subset: int = 2000) -> None:
    """Small, fast settings: one hidden layer, a 2000-image subset, one epoch."""
    at.sidebar.selectbox(key="cfg_subset").set_value(subset)
    at.sidebar.number_input(key="cfg_layers").set_value(1)
    at.run()
    at.sidebar.number_input(key="cfg_h0").set_value(hidden)
    at.sidebar.number_input(key="cfg_epochs").set_value(epochs)
    at.run()


def wait_for_run(at: AppTest, timeout: float = 60.0) -> None:
    """Rerun until the session's background training has stopped."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        at.run()
        run = at.session_state["run"]
        if run is None or not run.active:
            at.run()
            return
        time.sleep(0.2)
    raise AssertionError("training did not finish in time")


def train_tiny(at: AppTest, **kwargs) -> None:
    tiny_settings(at, **kwargs)
    at.sidebar.button(key="btn_start").click()
    at.run()
    wait_for_run(at)
    assert not at.exception, at.exception
