"""Full-batch training from the stored pixels, one cache-sized chunk of rows at a time.

A full-batch step reads every training image twice: once for ``Z[1] = X W[1]`` and once
for ``dW[1] = Xᵀ dZ[1]``. On the notebook's 784-10-10 network these two products have 10
columns, so the step is bound by reading ``X`` from memory, not by arithmetic. Here the
rows go through the network ``GRADIENT_CHUNK`` at a time: each chunk is gathered from the
stored pixels (uint8, a quarter of float32's bytes), converted and scaled into a buffer
that stays in cache (L3 at least), and pushed through the forward and the backward pass
before the next one. No float copy of the data set is made (on full MNIST that copy was
188 MB).

The chunks are dealt to ``LANES`` lanes (chunk ``i`` to lane ``i % LANES``), each with its
own work arrays and running sums. When the process's BLAS may use several threads, the
lanes run in parallel, one thread each, and every product inside them is single-threaded:
a product of 1,024 x 784 by 784 x 10 is too small for two BLAS threads to share well, and
two BLAS threads beside another busy process wait on each other (measured 3-10x slower
here). The lanes' sums are added in lane order, so the numbers do not depend on how many
threads ran them.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from nn_core.network import GRADIENT_CHUNK, MLP, BatchGradient, GradientLane, layer_views

LANES = 2

_pool_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None
_pool_pid = 0  # the process that made the pool: a forked child has no thread behind it


class FullBatch:
    """The rows ``rows`` of the stored inputs ``x``, served to a network a chunk at a time.

    Parameters
    ----------
    model : MLP
    x : ndarray of shape (n_all, n_inputs)
        The stored inputs (usually uint8 pixels), scaled by the network on the way.
    rows : ndarray of int, shape (n,)
        Which rows of ``x`` make the batch, in this order.
    y : ndarray of shape (n,), optional
        Their labels (needed for ``loss_and_gradient``).
    chunk : int
        Rows per chunk.
    """

    def __init__(
        self,
        model: MLP,
        x: np.ndarray,
        rows: np.ndarray,
        y: np.ndarray | None = None,
        chunk: int = GRADIENT_CHUNK,
        compact: bool = False,
    ) -> None:
        self.model = model
        self.rows = np.asarray(rows, dtype=np.int64)
        self.y = None if y is None else np.asarray(y, dtype=np.int64)
        self.n = self.rows.shape[0]
        self.chunk = int(chunk)
        self._net, self._param_map = model, None
        if compact:
            x, self._net, self._param_map = _compact(model, x, self.rows, self.chunk)
            self.rows = np.arange(self.n)
        self.x = x
        # rows 0 .. n-1 in order (no validation split): chunks are slices, not gathers
        self._contiguous = self.n == 0 or bool(
            self.rows[0] == 0 and self.rows[-1] == self.n - 1 and np.all(np.diff(self.rows) == 1)
        )
        n_inputs = x.shape[1]
        size = min(self.chunk, max(self.n, 1))
        # one chunk needs one lane: no second set of buffers (they are large for big images)
        self.n_lanes = lanes_for(self.n, self.chunk)
        self._raw = [np.empty((size, n_inputs), x.dtype) for _ in range(self.n_lanes)]
        self._inputs = [np.empty((size, n_inputs), model.dtype) for _ in range(self.n_lanes)]
        self._lanes: list[GradientLane] | None = None

    @property
    def n_chunks(self) -> int:
        return -(-self.n // self.chunk)

    def loss_and_gradient(
        self, l2: float = 0.0, dropout: float = 0.0, rng: np.random.Generator | None = None
    ) -> BatchGradient:
        """The batch's loss and gradient (into ``model.grads``), as
        ``MLP.loss_and_gradient`` would give them for the prepared rows at once."""
        if self.y is None:
            raise ValueError("this FullBatch has no labels: pass y to compute a gradient")
        if self._lanes is None:
            self._lanes = [GradientLane(self._net, self.chunk) for _ in range(self.n_lanes)]
        for lane in self._lanes:
            lane.reset()
        self._sync_weights()
        # dropout draws its masks from one generator, in chunk order: no threads then
        self._run_lanes(self._gradient_lane, parallel=dropout == 0, dropout=dropout, rng=rng)
        grads = self._net.grads
        grads[...] = self._lanes[0].total
        for lane in self._lanes[1:]:
            grads += lane.total
        self._scatter_gradient()
        loss = sum(lane.loss for lane in self._lanes)
        n_correct = sum(lane.n_correct for lane in self._lanes)
        return BatchGradient(self.model.add_l2(loss, l2), self.model.grads, n_correct)

    def logits(self) -> np.ndarray:
        """The output layer's pre-activations ``Z[L]`` of every row, shape (n, n_classes)."""
        out = np.empty((self.n, self.model.sizes[-1]), self.model.dtype)
        self._sync_weights()
        self._run_lanes(self._logits_lane, parallel=True, out=out)
        return out

    def release(self) -> None:
        """Drop the lanes' gradient work arrays (allocated again when needed)."""
        self._lanes = None

    # ------------------------------------------------------------------ internals
    def _sync_weights(self) -> None:
        """Copy the network's weights into the compact network (the input scale folded
        into the first layer's weights: ``(s X) W = X (s W)``, within float rounding)."""
        if self._param_map is None:
            return
        np.take(self.model.params, self._param_map, out=self._net.params)
        if self.model.input_scale != 1.0:
            self._net.weights[0] *= self.model.dtype.type(self.model.input_scale)

    def _scatter_gradient(self) -> None:
        """Put the compact network's gradient back in the network's layout: the dropped
        inputs are zero in every row, so their weights' gradient is zero."""
        if self._param_map is None:
            return
        grads = self.model.grads
        grads[...] = 0
        grads[self._param_map] = self._net.grads
        if self.model.input_scale != 1.0:
            self.model.weight_grads[0] *= self.model.dtype.type(self.model.input_scale)

    def _run_lanes(self, work, parallel: bool, **kwargs) -> None:
        """Run ``work(lane, **kwargs)`` for every lane: in threads when allowed and the
        BLAS may use several, else one after the other in chunk order."""
        threads = min(self.n_lanes, _blas.threads()) if parallel else 1
        if threads == 1:
            with _blas.single_threaded():  # the lanes' products assume one BLAS thread
                for index in range(self.n_chunks):
                    work(index % self.n_lanes, chunks=(index,), **kwargs)
            return
        errors = np.geterr()  # np.errstate is per thread: carry the caller's to the lanes

        def lane_job(lane: int) -> None:
            with np.errstate(**errors):
                work(lane, chunks=range(lane, self.n_chunks, self.n_lanes), **kwargs)

        with _blas.single_threaded():
            others = [_executor().submit(lane_job, lane) for lane in range(1, self.n_lanes)]
            try:
                lane_job(0)
            finally:
                for future in others:
                    future.result()

    def _gradient_lane(
        self, lane: int, chunks, dropout: float, rng: np.random.Generator | None
    ) -> None:
        for index in chunks:
            start, stop = self._bounds(index)
            x = self._prepared(lane, start, stop)
            self._net.add_chunk_gradient(
                x, self.y[start:stop], self.n, self._lanes[lane], dropout, rng
            )

    def _logits_lane(self, lane: int, chunks, out: np.ndarray) -> None:
        for index in chunks:
            start, stop = self._bounds(index)
            out[start:stop] = self._net.logits_prepared(self._prepared(lane, start, stop))

    def _bounds(self, index: int) -> tuple[int, int]:
        start = index * self.chunk
        return start, min(start + self.chunk, self.n)

    def _prepared(self, lane: int, start: int, stop: int) -> np.ndarray:
        """Rows ``start:stop`` of the batch, converted and scaled into ``lane``'s buffer."""
        m = stop - start
        if self._contiguous:
            raw = self.x[start:stop]
        else:
            # the indices are the caller's own, all valid: mode="clip" skips the bounds
            # check, which with ``out`` gathers through a temporary copy
            raw = np.take(
                self.x, self.rows[start:stop], axis=0, out=self._raw[lane][:m], mode="clip"
            )
        return self._net.scale_inputs(raw, self._inputs[lane][:m])


def lanes_for(n: int, chunk: int = GRADIENT_CHUNK) -> int:
    """Lanes a batch of ``n`` rows uses: ``LANES``, or fewer when it has fewer chunks."""
    return max(1, min(LANES, -(-n // chunk)))


def _compact(model: MLP, x: np.ndarray, rows: np.ndarray, chunk: int):
    """The rows ``rows`` of ``x`` in one contiguous array without the inputs that are
    zero in all of them (MNIST's border pixels: 67 of 784), in the stored dtype; a network
    of that input width that takes unscaled inputs; and where each of its parameters is in
    ``model.params``.

    Returns
    -------
    compact_x : ndarray of shape (n, n_kept), x.dtype
    net : MLP
        Sizes ``(n_kept, *hidden, n_classes)``, ``input_scale`` 1 (the scale goes into
        its first-layer weights, ``FullBatch._sync_weights``).
    param_map : ndarray of int, shape (net.n_params,)
    """
    used = np.zeros(x.shape[1], dtype=bool)
    for start in range(0, rows.shape[0], chunk):
        used |= np.take(x, rows[start : start + chunk], axis=0).any(axis=0)
    kept = np.flatnonzero(used)
    if kept.shape[0] == 0:
        kept = np.arange(1)  # an all-zero batch still needs an input layer
    compact_x = np.empty((rows.shape[0], kept.shape[0]), x.dtype)
    for start in range(0, rows.shape[0], chunk):
        block = np.take(x, rows[start : start + chunk], axis=0)
        np.take(block, kept, axis=1, out=compact_x[start : start + chunk])
    net = MLP(
        kept.shape[0],
        model.sizes[1:-1],
        model.sizes[-1],
        activation=model.activation,
        init=model.init,
        dtype=model.dtype.name,
        input_scale=1.0,
    )
    index = np.arange(model.n_params)
    weights, biases = layer_views(index, model.sizes)
    parts = []
    for layer, (weight, bias) in enumerate(zip(weights, biases)):
        parts.append((weight[kept] if layer == 0 else weight).ravel())
        parts.append(bias)
    return compact_x, net, np.concatenate(parts)


def _executor() -> ThreadPoolExecutor:
    """The threads that run lanes 1.. (lane 0 runs on the caller's), made on first use."""
    global _pool, _pool_pid
    with _pool_lock:
        if _pool is None or _pool_pid != os.getpid():
            _pool = ThreadPoolExecutor(LANES - 1, thread_name_prefix="nn_core-lane")
            _pool_pid = os.getpid()
        return _pool


class _BlasThreads:
    """Reads and sets the thread count of the BLAS libraries loaded in this process."""

    def __init__(self) -> None:
        self._libraries: list | None = None
        self._lock = threading.Lock()
        self._single_depth = 0
        self._restore: list[int] = []

    def _libs(self) -> list:
        if self._libraries is None:
            from threadpoolctl import ThreadpoolController

            self._libraries = ThreadpoolController().select(user_api="blas").lib_controllers
        return self._libraries

    def threads(self) -> int:
        """The largest thread count a loaded BLAS may use now (1 when none is found)."""
        counts = [lib.get_num_threads() for lib in self._libs()]
        return max([c for c in counts if c] or [1])

    def count(self) -> int | None:
        """The thread count of every loaded BLAS, or None when they disagree or none is."""
        counts = {lib.get_num_threads() for lib in self._libs()}
        return counts.pop() if len(counts) == 1 else None

    def set_threads(self, n: int) -> None:
        """Set every loaded BLAS to ``n`` threads, or, while lanes hold them at one, have
        ``n`` put back when they finish."""
        with self._lock:
            if self._single_depth:
                self._restore = [int(n)] * len(self._libs())
                return
            for lib in self._libs():
                if lib.get_num_threads() != n:
                    lib.set_num_threads(int(n))

    @contextlib.contextmanager
    def single_threaded(self) -> Iterator[None]:
        """One BLAS thread inside; on exit, the counts found on entry are put back (or
        the count given to ``set_threads`` meanwhile)."""
        with self._lock:
            if self._single_depth == 0:
                self._restore = [lib.get_num_threads() for lib in self._libs()]
                for lib in self._libs():
                    lib.set_num_threads(1)
            self._single_depth += 1
        try:
            yield
        finally:
            with self._lock:
                self._single_depth -= 1
                if self._single_depth == 0:
                    for lib, count in zip(self._libs(), self._restore):
                        if lib.get_num_threads() == 1:  # unless someone set a count since
                            lib.set_num_threads(count)


_blas = _BlasThreads()


def blas_thread_count() -> int | None:
    """The process's BLAS thread count (None when the loaded libraries disagree)."""
    return _blas.count()


def set_blas_threads(n: int) -> None:
    """Set the process's BLAS thread count to ``n``, safely beside full-batch lanes.

    A full-batch step holds the BLAS at one thread while its lanes run and then puts back
    the count it found. Code that sets the count for the whole process (the app's thread
    policy) should set it through here: a count set directly during a step, when the BLAS
    is at one thread anyway, cannot be told apart from the step's own and would be
    overwritten when the step ends.
    """
    _blas.set_threads(n)
