"""How many threads the server's matrix products use, following the trainings that run.

OpenBLAS keeps one thread count for the whole process (``openblas_set_num_threads``; its
"local" variant is process-wide too in pthreads builds). Changing it while another thread
is inside a product is safe: a call reads the count once, when it starts, and splits its
work for that many threads, and within the pool's size (never exceeded here) setting it
only writes one integer (OpenBLAS ``driver/others/blas_server.c``, ``goto_set_num_threads``;
tests/app/test_blas_threads.py flips it under two multiplying threads). One catch, measured
with OpenBLAS 0.3.31: once the process's main thread has set a count, counts set from other
threads are ignored. In the server only threads set it (Streamlit's main thread runs the
event loop); code that embeds the policy must keep its main thread off the count too.
Whatever the count, a run's numbers are the same (``nn_core.network._matmul``).

The policy (``DIGITLAB_BLAS_THREADS`` unset or 0):

- no training: one thread, so a page's product never waits on a busy core;
- ``k`` trainings: up to ``max(1, cores // k)`` threads, so one training alone may have
  every core and two on two cores get one each (two-thread products beside another busy
  thread slow down many times over: the threads wait on each other);
- more than one thread only while every running training asks for them: a run times
  itself on one thread and on several (``ThreadProbe``) and asks for several while they
  are faster. Work through the gate that does not time itself (a sweep, the learning-rate
  finder) never asks, so it runs on one thread, safe on a busy machine.

A positive ``DIGITLAB_BLAS_THREADS`` fixes the count instead (the policy then does nothing
else). Nothing here imports Streamlit.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable

from nn_core.full_batch import blas_thread_count, set_blas_threads

# OpenBLAS reads these at load; a user who set one has chosen the pool's size.
_POOL_ENV = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")


def available_cores(environ: dict[str, str] | None = None) -> int:
    """Cores this process may run on, capped by an explicit OpenBLAS/OpenMP thread count."""
    env = os.environ if environ is None else environ
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        cores = os.cpu_count() or 1
    for name in _POOL_ENV:
        raw = env.get(name, "").split(",")[0].strip()
        if raw.isdigit() and int(raw) > 0:
            cores = min(cores, int(raw))
            break
    return max(1, cores)


def threads_for(active: int, cores: int, fixed: int = 0) -> int:
    """Threads per product when ``active`` trainings run on ``cores`` cores.

    ``fixed`` > 0 wins (the self-hosted override); without a training the count is one.
    """
    if fixed > 0:
        return int(fixed)
    if active <= 0:
        return 1
    return max(1, cores // active)


class OpenBlasCount:
    """The process's BLAS thread count, read and set through ``nn_core.full_batch``, so
    that a count set while a full-batch step holds the BLAS at one thread is the one put
    back after it."""

    def get(self) -> int | None:
        """The count, or None when the libraries disagree (or none is loaded)."""
        return blas_thread_count()

    def set(self, n: int) -> None:
        set_blas_threads(n)


class BlasThreads:
    """The process's BLAS thread count, kept in step with the trainings that run.

    Parameters
    ----------
    cores : int, optional
        Cores to share (default ``available_cores()``).
    fixed : int
        A count to keep whatever runs (``DIGITLAB_BLAS_THREADS``); 0 follows the policy.
    count : object, optional
        What reads (``get()``) and sets (``set(n)``) the count; default ``OpenBlasCount``.
        The count is read before each change is applied, so a count that other code
        changed meanwhile (``threadpool_limits`` elsewhere) is put right at the next one.
    """

    def __init__(self, cores: int | None = None, fixed: int = 0, count=None) -> None:
        self.cores = max(1, int(cores if cores is not None else available_cores()))
        self.fixed = max(0, int(fixed))
        self._count = count
        self._lock = threading.Lock()
        self._active: frozenset[int] = frozenset()
        self._several: set[int] = set()  # trainings that asked for several threads
        self.current: int | None = None  # the count last applied

    def configure(self, fixed: int) -> None:
        """Fix the count (> 0) or follow the trainings (0); applied at once."""
        with self._lock:
            self.fixed = max(0, int(fixed))
            self._apply()

    def follow(self, active: Iterable[int]) -> None:
        """The trainings now running changed (called by the gate on acquire and release)."""
        with self._lock:
            self._active = frozenset(active)
            self._several &= self._active
            self._apply()

    def ask_several(self, token: int, several: bool) -> int:
        """Training ``token`` asks for its share of the cores (True) or one thread (False);
        returns the count now in force."""
        with self._lock:
            if several and token in self._active:
                self._several.add(token)
            else:
                self._several.discard(token)
            self._apply()
            return self.current

    def shared(self) -> int:
        """The running trainings' share of the cores (what asking for several gives)."""
        with self._lock:
            return threads_for(len(self._active), self.cores, self.fixed)

    def wanted(self) -> int:
        """The count the process should use now."""
        with self._lock:
            return self._wanted()

    def _wanted(self) -> int:
        if not self.fixed and self._several != self._active:
            return 1
        return threads_for(len(self._active), self.cores, self.fixed)

    def _apply(self) -> None:
        n = self._wanted()
        if self._count is None:
            self._count = OpenBlasCount()
        if self._count.get() != n:
            self._count.set(n)
        self.current = n


class ThreadProbe:
    """Times one training on one thread and on the shared count; keeps the faster.

    Several threads only pay while the cores are free of other work: beside another busy
    process, OpenBLAS's threads wait on each other and a training ran 5-20 times slower
    on two threads than on one (measured on the 2-core machines). One thread's speed is
    re-timed once it is ``refresh`` seconds old, so the choice follows the load.

    A chunk timed on several threads is a chunk lost when they stall, and beside a local
    browser that draws the live page they always did: several threads are first tried
    after ``warmup`` seconds (past the page's redraw after Start), and while they keep
    losing, each retry waits twice as long as the last, up to ``max_wait`` seconds.
    A retry that wins starts the waits over from ``refresh``.

    Parameters
    ----------
    refresh : float
        Seconds after which a count's measured speed is timed again.
    margin : float
        Several threads are kept only when at least this much faster than one.
    warmup : float
        Seconds of one-thread training before several threads are first timed.
    max_wait : float
        The longest wait before several threads, slower so far, are timed again.
    """

    def __init__(
        self,
        refresh: float = 5.0,
        margin: float = 1.05,
        warmup: float = 2.0,
        max_wait: float = 60.0,
    ) -> None:
        self.refresh = float(refresh)
        self.margin = float(margin)
        self.warmup = float(warmup)
        self.max_wait = float(max_wait)
        self._rates: dict[bool, tuple[float, float]] = {}  # several? -> (rate, when)
        self._first_single: float | None = None
        self._several_wait = self.refresh

    def _fresh(self, several: bool, now: float) -> float | None:
        measured = self._rates.get(several)
        wait = self._several_wait if several else self.refresh
        if measured is None or now - measured[1] > wait:
            return None
        return measured[0]

    def want_single(self, now: float) -> bool:
        """True when the next chunk should train on one thread."""
        single = self._fresh(False, now)
        if single is None:
            return True
        if True not in self._rates and now - self._first_single < self.warmup:
            return True
        several = self._fresh(True, now)
        if several is None:
            return False
        return several < single * self.margin

    def record(self, several: bool, batches: int, seconds: float, now: float) -> None:
        """A chunk trained ``batches`` batches in ``seconds`` on one thread or several."""
        if batches <= 0 or seconds <= 0:
            return
        rate = batches / seconds
        self._rates[several] = (rate, now)
        if not several:
            if self._first_single is None:
                self._first_single = now
            return
        single = self._rates.get(False)
        if single is not None and rate < single[0] * self.margin:  # lost: wait longer
            self._several_wait = min(self.max_wait, 2 * self._several_wait)
        else:
            self._several_wait = self.refresh
