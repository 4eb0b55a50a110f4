"""Server-wide guards of the hosted demo: who is still there, memory, and restarts.

- ``SessionWatch``: a daemon thread that looks, every second, at each session that owns a
  run and asks Streamlit whether its browser tab is still connected. A run whose tab has
  been gone for the grace period (``DIGITLAB_SESSION_GRACE_SECONDS``) is stopped: a
  running one frees its slot after the current batch, a queued one never trains, and its
  training buffers are released. Once Streamlit can no longer resume the session (its
  ``server.disconnectedSessionTTL`` has passed), the run's large objects are dropped and
  the session's memory reservations are returned.
- ``get_ledger()``: the server's ``nn_core.memory.MemoryLedger``, with the per-session and
  server caps of ``ui.limits``; work is reserved there before it allocates anything.
- ``restart_notice()``: a tab that reconnects to a server that no longer knows its
  session (the server restarted, or the tab was away too long) is told that its run and
  uploads were lost.

Under ``AppTest`` there is no Streamlit runtime: every session counts as connected.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import logging
import os
import sys
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field

import streamlit as st
from streamlit.runtime.scriptrunner import get_script_run_ctx

from nn_core.config import TrainConfig
from nn_core.memory import (
    MemoryBudgetError,
    MemoryEstimate,
    MemoryLedger,
    mb,
    model_memory,
    session_refusal,
    training_memory,
)
from ui.limits import get_limits

LOG = logging.getLogger("digitlab.hosting")
CHECK_EVERY = 1.0  # seconds between two looks at the sessions
LOST_SESSION = "_lost_session"  # session-state key: this tab lost its earlier session
CHECKED_RECONNECT = "_checked_reconnect"


def _configure_logging() -> None:
    """Hosting events go to stderr (the server log) at INFO, once per process."""
    if not LOG.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s: %(message)s"))
        LOG.addHandler(handler)
        LOG.setLevel(logging.INFO)
        LOG.propagate = False


# ------------------------------------------------------------------------------ sessions
def session_id() -> str:
    """This browser session's id (``"local"`` outside a script run)."""
    ctx = get_script_run_ctx()
    return ctx.session_id if ctx is not None else "local"


def is_connected(owner: str) -> bool:
    """True while ``owner``'s tab has a live websocket (always True without a runtime)."""
    if not st.runtime.exists():
        return True
    return st.runtime.get_instance().is_active_session(owner)


def resumable_seconds() -> float:
    """How long Streamlit keeps a disconnected session that its tab can resume."""
    try:
        return float(st.get_option("server.disconnectedSessionTTL"))
    except (RuntimeError, TypeError, ValueError):
        return 120.0


@dataclass
class _Owner:
    runs: weakref.WeakSet = field(default_factory=weakref.WeakSet)
    gone_since: float | None = None
    stopped: bool = False


class SessionWatch:
    """Stops the runs of sessions whose tab has gone, and forgets sessions that cannot return.

    Parameters
    ----------
    grace : float
        Seconds without a connection before a session's queued or running runs stop.
    forget_after : float
        Seconds without a connection after which the session cannot come back: its runs
        drop their large objects and ``on_forget(owner)`` is called.
    connected : callable
        ``connected(owner) -> bool``.
    on_forget : callable, optional
        Called with the owner when it is forgotten (e.g. to release its memory).
    clock : callable
        Monotonic seconds (a fake one in tests).
    """

    def __init__(
        self,
        grace: float,
        forget_after: float,
        connected: Callable[[str], bool],
        on_forget: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.grace = float(grace)
        self.forget_after = max(float(forget_after), self.grace)
        self._connected = connected
        self._on_forget = on_forget
        self._clock = clock
        self._owners: dict[str, _Owner] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def track(self, owner: str, run=None) -> None:
        """Watch ``owner`` (and ``run``, held weakly: a replaced run is simply dropped)."""
        with self._lock:
            state = self._owners.setdefault(owner, _Owner())
            if run is not None:
                state.runs.add(run)

    def owners(self) -> set[str]:
        with self._lock:
            return set(self._owners)

    def check(self) -> list[str]:
        """One look at every watched session; return what was done, in words."""
        now = self._clock()
        events = []
        with self._lock:
            owners = list(self._owners.items())
        for owner, state in owners:
            if self._connected(owner):
                state.gone_since, state.stopped = None, False
                continue
            if state.gone_since is None:
                state.gone_since = now
            away = now - state.gone_since
            if away >= self.forget_after:
                events.append(self._forget(owner, state, away))
            elif away >= self.grace and not state.stopped:
                state.stopped = True
                events.extend(self._stop_runs(owner, state, away))
        return events

    def _stop_runs(self, owner: str, state: _Owner, away: float) -> list[str]:
        events = []
        for run in list(state.runs):
            if run.active:
                was = run.state
                run.abandon(
                    f"Stopped: this tab had no connection to the server for {away:.0f} s, so "
                    "its training slot went to other visitors. Press Continue to train on."
                )
                events.append(
                    f"session {owner[:8]} gone for {away:.0f} s: run {run.id} "
                    f"stopped while {was}, slot freed"
                )
                deadline = time.monotonic() + 5.0
                while run.active and time.monotonic() < deadline:
                    time.sleep(0.02)  # the batch in progress ends
            freed = run.compact()
            if freed:
                events.append(f"session {owner[:8]}: run {run.id} compacted, {mb(freed)} freed")
        return events

    def _forget(self, owner: str, state: _Owner, away: float) -> str:
        released = sum(run.dispose() for run in list(state.runs))
        with self._lock:
            self._owners.pop(owner, None)
        if self._on_forget is not None:
            self._on_forget(owner)
        return (
            f"session {owner[:8]} closed ({away:.0f} s without a connection): "
            f"{mb(released)} of runs released"
        )

    def start(self) -> SessionWatch:
        """Check every ``CHECK_EVERY`` seconds in a daemon thread (once)."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._loop, name="digitlab-session-watch", daemon=True
            )
            self._thread.start()
        return self

    def _loop(self) -> None:
        while True:
            time.sleep(CHECK_EVERY)
            try:
                events = self.check()
            except Exception:  # the watch must outlive any one bad run
                LOG.exception("session watch failed")
                continue
            for event in events:
                LOG.info(event)
            if any("released" in e or "freed" in e for e in events):
                return_memory_to_os()


def lower_thread_priority(nice: int) -> bool:
    """Give the calling thread a lower scheduling priority (Linux: each thread has its own
    nice value); False where that is not possible. A training thread calls it so that the
    server's own threads always get the CPU first."""
    if not sys.platform.startswith("linux") or nice <= 0:
        return False
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), int(nice))
    except (OSError, AttributeError):
        return False
    return True


def return_memory_to_os() -> None:
    """Ask glibc to hand freed heap pages back to the kernel (no-op elsewhere)."""
    name = ctypes.util.find_library("c")
    if not name:
        return
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(name).malloc_trim(0)


# ---------------------------------------------------------------------- shared objects
@st.cache_resource(show_spinner=False)
def get_ledger(session_cap: int, server_cap: int) -> MemoryLedger:
    """The server's memory ledger (one per process and pair of caps)."""
    return MemoryLedger(session_cap, server_cap)


def ledger() -> MemoryLedger:
    limits = get_limits()
    return get_ledger(limits.max_session_bytes, limits.max_server_bytes)


@st.cache_resource(show_spinner=False)
def get_watch(grace: float) -> SessionWatch:
    """The server's session watch, started (one per process and grace period)."""
    _configure_logging()
    forget_after = resumable_seconds() + grace

    def forget(owner: str) -> None:
        ledger().release(owner)

    return SessionWatch(grace, forget_after, is_connected, on_forget=forget).start()


def watch() -> SessionWatch:
    return get_watch(get_limits().session_grace_seconds)


def register_session() -> str:
    """Watch this session from now on; return its id. Call on every script run."""
    owner = session_id()
    watch().track(owner)
    return owner


# ------------------------------------------------------------------- live redraws
QUEUED_EVERY = 3.0  # seconds between redraws of a page whose run only waits in the queue


def live_every(base: float, run) -> float:
    """How often a live area redraws for ``run``: ``base`` seconds, slower while the run
    only waits in the queue, and slower when more runs are live than there are slots
    (each redraw costs server CPU time that every visitor shares)."""
    if run.state == "queued":
        return max(base, QUEUED_EVERY)
    gate = run.gate
    return base * max(1.0, (gate.active + gate.waiting) / gate.capacity)


# ------------------------------------------------------------------------ uploads
# The smallest network anything can train: softmax regression, plain gradient descent.
SMALLEST = TrainConfig(hidden=(), optimizer="gd", epochs=1)


def reserve_upload(dataset) -> str:
    """Reserve an uploaded data set's memory for this session; the refusal sentence, or "".

    Refused when the images are so large that even the smallest network could not train
    on them within the per-session cap, or when the data does not fit beside the rest.
    """
    n_inputs = int(dataset.x_train[0].size)
    held = sum(a.nbytes for a in (dataset.x_train, dataset.y_train, dataset.x_test, dataset.y_test))
    data = MemoryEstimate(data=held)
    smallest = data + training_memory(
        SMALLEST,
        len(dataset.y_train),
        n_inputs,
        dataset.n_classes,
        input_itemsize=dataset.x_train.itemsize,
        n_test=len(dataset.y_test),
    )
    book = ledger()
    if smallest.total > book.session_cap:
        side = " x ".join(str(s) for s in dataset.x_train.shape[1:])
        what = (
            f"Training on {len(dataset.y_train):,} images of {side} pixels, even with softmax "
            "regression,"
        )
        return session_refusal(
            what, smallest, book.session_cap, "use smaller images or fewer of them"
        )
    try:
        book.reserve(
            session_id(), "upload", data, "This data set", "upload fewer or smaller images"
        )
    except MemoryBudgetError as exc:
        return str(exc)
    return ""


def check_model_memory(sizes, dtype) -> None:
    """``nn_core.io.load_model``'s ``check_memory``: reserve what loading and using a model of
    these layer sizes needs, before any of its arrays is read.

    Raises
    ------
    MemoryBudgetError
        When it does not fit this session's or the server's cap.
    """
    if dtype not in ("float32", "float64"):
        return  # not a model digitlab can build; the loader says so
    estimate = model_memory(sizes, dtype)
    ledger().reserve(
        session_id(), "model", estimate, "This model", "save a smaller network, or in float32"
    )


# ---------------------------------------------------------------------------- restarts
def previous_session_id() -> str | None:
    """The session id this tab had before its websocket (re)connected, if it sent one.

    A tab that reconnects names its earlier session in the third entry of the websocket's
    ``Sec-WebSocket-Protocol`` header; Streamlit resumes that session when it still has
    it, and the id then equals the current one.
    """
    try:
        header = st.context.headers.get("Sec-Websocket-Protocol") or ""
    except (AttributeError, RuntimeError):
        return None
    entries = [entry.strip() for entry in header.split(",")]
    return entries[2] if len(entries) >= 3 and entries[2] else None


def lost_earlier_session() -> bool:
    """True (for the rest of this session) if this tab came back to a server that had
    forgotten its session: a restart, or a tab away for longer than Streamlit keeps it."""
    ss = st.session_state
    if not ss.get(CHECKED_RECONNECT):
        ss[CHECKED_RECONNECT] = True
        previous = previous_session_id()
        ss[LOST_SESSION] = previous is not None and previous != session_id()
        if ss[LOST_SESSION]:
            LOG.info("session %s came back as a new session: earlier state lost", previous[:8])
    return bool(ss.get(LOST_SESSION))


def restart_notice() -> None:
    """Tell a tab that lost its earlier session what was lost and what came back."""
    if not lost_earlier_session():
        return
    st.warning(
        "The server restarted (or this tab was away too long), so the training run that was "
        "here, its model and any uploaded files are gone. The settings in the address bar "
        "are back in the sidebar; press Start to train again. To keep a model, download it "
        "from the sidebar (Download model) at any time, even while it trains.",
        icon=":material/restart_alt:",
    )


def forget_lost_session() -> None:
    """The visitor has moved on (a new run): stop showing the restart notice."""
    st.session_state[LOST_SESSION] = False
