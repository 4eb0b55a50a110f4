"""How many threads the server's matrix products use, following the trainings that run.

OpenBLAS keeps one thread count for the whole process (``openblas_set_num_threads``; its
"local" variant is process-wide too in pthreads builds). Changing it while another thread
is inside a product is safe: a call reads the count once, when it starts, and splits its
work for that many threads; the thread pool itself never grows past its size at load.

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
from collections.abc import Callable, Iterable

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


def _openblas_setter() -> Callable[[int], None]:
    """Set the thread count of every BLAS library loaded in this process (threadpoolctl)."""
    from threadpoolctl import ThreadpoolController

    libraries = ThreadpoolController().select(user_api="blas").lib_controllers

    def set_threads(n: int) -> None:
        for library in libraries:
            if library.get_num_threads() != n:
                library.set_num_threads(n)

    return set_threads


class BlasThreads:
    """The process's BLAS thread count, kept in step with the trainings that run.

    Parameters
    ----------
    cores : int, optional
        Cores to share (default ``available_cores()``).
    fixed : int
        A count to keep whatever runs (``DIGITLAB_BLAS_THREADS``); 0 follows the policy.
    setter : callable, optional
        ``setter(n)`` applies a count (default: every loaded BLAS, via threadpoolctl).
    """

    def __init__(
        self, cores: int | None = None, fixed: int = 0, setter: Callable[[int], None] | None = None
    ) -> None:
        self.cores = max(1, int(cores if cores is not None else available_cores()))
        self.fixed = max(0, int(fixed))
        self._setter = setter
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
        if n == self.current:
            return
        if self._setter is None:
            self._setter = _openblas_setter()
        self._setter(n)
        self.current = n


class ThreadProbe:
    """Times one training on one thread and on the shared count; keeps the faster.

    Several threads only pay while the cores are free of other work: beside another busy
    process, OpenBLAS's threads wait on each other and a training ran 5-20 times slower
    on two threads than on one (measured on the 2-core machines). Each count's speed is
    re-timed once it is ``refresh`` seconds old, so the choice follows the load.

    Parameters
    ----------
    refresh : float
        Seconds after which a count's measured speed is timed again.
    margin : float
        Several threads are kept only when at least this much faster than one.
    """

    def __init__(self, refresh: float = 5.0, margin: float = 1.05) -> None:
        self.refresh = float(refresh)
        self.margin = float(margin)
        self._rates: dict[bool, tuple[float, float]] = {}  # several? -> (rate, when)

    def _fresh(self, several: bool, now: float) -> float | None:
        measured = self._rates.get(several)
        if measured is None or now - measured[1] > self.refresh:
            return None
        return measured[0]

    def want_single(self, now: float) -> bool:
        """True when the next chunk should train on one thread."""
        single, several = self._fresh(False, now), self._fresh(True, now)
        if single is None:
            return True
        if several is None:
            return False
        return several < single * self.margin

    def record(self, several: bool, batches: int, seconds: float, now: float) -> None:
        """A chunk trained ``batches`` batches in ``seconds`` on one thread or several."""
        if batches > 0 and seconds > 0:
            self._rates[several] = (batches / seconds, now)
