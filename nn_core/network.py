"""The multilayer perceptron: parameters in one flat buffer, forward and backward.

The equations are those of the app's "How it works" panel, written beside the lines that
compute them. Layer ``l`` (1-based, as in the equations; ``L`` is the output layer) maps a
batch of ``m`` rows with ``A[l-1]`` of shape ``(m, sizes[l-1])`` to ``Z[l] = A[l-1] W[l] +
b[l]`` of shape ``(m, sizes[l])``, and ``A[l] = g(Z[l])``; ``A[0] = X`` (the scaled inputs)
and the output is ``Y_hat = softmax(Z[L])``. In the code, ``W[l]`` is ``weights[l - 1]``.

Every weight and bias is a view into the single ``params`` vector, and every gradient a
view into ``grads``, so an optimizer updates all of them with a few whole-vector
operations.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from nn_core.activations import ACTIVATIONS, Backward, check_activation
from nn_core.init import INITS, init_layer
from nn_core.losses import row_max, softmax

PREDICT_CHUNK = 4096
# Rows of a large batch pushed through the forward and backward passes at a time, so that
# a chunk of inputs is still in cache when the backward pass reads it again: 1,024 rows of
# 717 float32 pixels are 2.9 MiB (L2: 1 MiB per core, L3: 32 MiB). With 8,192 rows the two
# products of a 60,000-row MNIST batch took 0.055 s, with 512-1,024 rows 0.032 s (2 threads).
# Whole notebook iterations (products, the narrow layers' dozen NumPy calls per chunk, the
# conversion) took 15-17% less time and 12% less CPU with 1,024 rows than with 512, and
# 768 or 1,536 no less than 1,024 (36,000 and 60,000 rows, 2 lanes).
GRADIENT_CHUNK = 1024
# OpenBLAS's limit (M * N * K) for its unpacked small-matrix kernels (see _product), and
# the fewest rows a block may have before per-call overhead outweighs the gain.
SMALL_GEMM_MNK = 1_000_000
MIN_BLOCK_ROWS = 32
# A first layer at most this wide takes its weight gradient in transposed form (_backward).
NARROW_FIRST_LAYER = 16
# OpenBLAS sums a product's inner dimension in blocks, and cuts a long one differently with
# several threads than with one: products over ~448 inner terms (784 pixels, a batch of
# 500) then differ in their last bits between thread counts, and so would two trainings
# with the same seed. Up to this many terms a product is one block in every count
# (tests/test_network.py), so longer ones go in blocks this size at most (see _matmul).
INVARIANT_K = 384
SCRATCH_BYTES = 1 << 20  # _matmul's work array per thread (its output rows at a time)


class BatchGradient(NamedTuple):
    """What one training batch gives: its loss, the gradient, and how many it got right.

    ``loss`` is the mean cross-entropy (plus the L2 term); ``grads`` is the network's
    ``grads`` buffer, shape (n_params,), overwritten by the next call; ``n_correct`` counts
    the rows whose largest logit is the true class (before this batch's update).
    """

    loss: float
    grads: np.ndarray
    n_correct: int


class MLP:
    """A fully connected network: input -> hidden layers -> softmax over classes.

    Parameters
    ----------
    n_inputs : int
        Features per sample (784 for 28x28 images).
    hidden : sequence of int
        Width of each hidden layer; empty for plain softmax regression.
    n_classes : int
        Output units.
    activation : {"relu", "leaky_relu", "sigmoid", "tanh"}
        Hidden-layer activation.
    init : {"he", "glorot", "notebook"}
    dtype : {"float32", "float64"}
    seed : int
        Seed of the initialisation.
    input_scale : float
        Inputs are multiplied by this before the first layer (1/255 maps pixels to 0..1).
    """

    def __init__(
        self,
        n_inputs: int,
        hidden: Sequence[int] = (128, 64),
        n_classes: int = 10,
        activation: str = "relu",
        init: str = "he",
        dtype: str = "float32",
        seed: int = 0,
        input_scale: float = 1.0 / 255.0,
    ) -> None:
        self.sizes = _check_sizes(n_inputs, hidden, n_classes)
        self.activation = check_activation(activation)
        if init not in INITS:
            raise ValueError(f"unknown init {init!r}; choose one of {', '.join(INITS)}")
        self.init = init
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.float32, np.float64):
            raise ValueError(f"dtype must be float32 or float64, got {dtype}")
        self.input_scale = float(input_scale)
        self.params = np.zeros(n_parameters(self.sizes), dtype=self.dtype)
        self.grads = np.zeros_like(self.params)
        self.weights, self.biases = layer_views(self.params, self.sizes)
        self.weight_grads, self.bias_grads = layer_views(self.grads, self.sizes)
        rng = np.random.default_rng(seed)
        for weight, bias in zip(self.weights, self.biases):
            init_layer(init, weight, bias, rng)
        self._buffers: _Buffers | None = None
        self._lane: GradientLane | None = None

    @property
    def n_layers(self) -> int:
        """Number of weight layers (hidden layers + 1)."""
        return len(self.sizes) - 1

    @property
    def n_params(self) -> int:
        return self.params.size

    def config(self) -> dict:
        """The architecture as plain JSON-able values (enough to rebuild the network)."""
        return {
            "sizes": list(self.sizes),
            "activation": self.activation,
            "init": self.init,
            "dtype": self.dtype.name,
            "input_scale": self.input_scale,
        }

    def copy(self) -> MLP:
        """An independent network with the same architecture and weights."""
        clone = MLP.__new__(MLP)
        clone.__dict__.update(self.__dict__)
        clone.params = self.params.copy()
        clone.grads = np.zeros_like(self.params)
        clone.weights, clone.biases = layer_views(clone.params, self.sizes)
        clone.weight_grads, clone.bias_grads = layer_views(clone.grads, self.sizes)
        clone._buffers = None
        clone._lane = None
        return clone

    # ------------------------------------------------------------------ inference
    def prepare_inputs(self, x: np.ndarray) -> np.ndarray:
        """Flatten images and scale them like the training data.

        Parameters
        ----------
        x : ndarray of shape (n_samples, H, W) or (n_samples, n_inputs)

        Returns
        -------
        ndarray of shape (n_samples, n_inputs), this network's dtype
        """
        x = np.asarray(x)
        flat = x.reshape(x.shape[0], -1)
        if flat.shape[1] != self.sizes[0]:
            raise ValueError(
                f"this network takes {self.sizes[0]} inputs per sample, got {flat.shape[1]}"
            )
        return self.scale_inputs(flat, np.empty(flat.shape, self.dtype))

    def scale_inputs(self, raw: np.ndarray, out: np.ndarray) -> np.ndarray:
        """Write ``raw * input_scale`` into ``out`` (this network's dtype) and return it.

        Converting first and scaling in place is faster than one mixed-type multiply,
        which casts through a small buffer.
        """
        np.copyto(out, raw, casting="unsafe")
        if self.input_scale != 1.0:
            np.multiply(out, self.dtype.type(self.input_scale), out=out)
        return out

    def forward(
        self, x: np.ndarray, return_all: bool = False
    ) -> np.ndarray | tuple[list[np.ndarray], list[np.ndarray]]:
        """Forward pass in inference mode (no dropout), on fresh arrays.

        Parameters
        ----------
        x : ndarray of shape (n_samples, n_inputs) or (n_samples, H, W)
            Raw inputs (scaled by ``input_scale`` here).
        return_all : bool
            Also return every layer's pre-activation and activation.

        Returns
        -------
        probs : ndarray of shape (n_samples, n_classes)
            When ``return_all`` is False.
        pre_activations, activations : lists of ndarray
            When ``return_all`` is True: ``pre_activations[i]`` and ``activations[i]``
            have shape (n_samples, sizes[i + 1]); the last activation is the softmax.
        """
        return self.forward_prepared(self.prepare_inputs(x), return_all)

    def forward_prepared(
        self, h: np.ndarray, return_all: bool = False
    ) -> np.ndarray | tuple[list[np.ndarray], list[np.ndarray]]:
        """``forward`` on inputs already prepared (``prepare_inputs``: flat, scaled)."""
        pre_activations, activations = self._forward_layers(h, return_all)
        softmax(activations[-1], out=activations[-1])  # Y_hat = softmax(Z[L])
        return (pre_activations, activations) if return_all else activations[-1]

    def _forward_layers(
        self, A: np.ndarray, keep_all: bool
    ) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Every layer's Z (copies, when ``keep_all``) and A; the last A is still Z[L]."""
        g = ACTIVATIONS[self.activation][0]
        pre_activations, activations = [], []
        for layer in range(1, self.n_layers + 1):
            W = self.weights[layer - 1]
            Z = np.empty((A.shape[0], W.shape[1]), np.result_type(A, W))  # as A @ W
            _product(A, W, Z)  # Z[l] = A[l-1] W[l]
            Z += self.biases[layer - 1]  # Z[l] += b[l]
            if keep_all:
                pre_activations.append(Z.copy())
            if layer < self.n_layers:
                g(Z)  # A[l] = g(Z[l]), in place
            activations.append(Z)
            A = Z
        return pre_activations, activations

    def logits(self, x: np.ndarray) -> np.ndarray:
        """The output layer's pre-activations ``Z[L]``, computed in chunks to bound memory.

        The loss of very confident mistakes needs these: their probabilities underflow to 0.

        Parameters
        ----------
        x : ndarray of shape (n_samples, n_inputs) or (n_samples, H, W)
            Raw inputs (scaled by ``input_scale`` here).

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
        """
        n = x.shape[0]
        out = np.empty((n, self.sizes[-1]), dtype=self.dtype)
        for start in range(0, n, PREDICT_CHUNK):
            chunk = self.prepare_inputs(x[start : start + PREDICT_CHUNK])
            out[start : start + PREDICT_CHUNK] = self.logits_prepared(chunk)
        return out

    def logits_prepared(self, h: np.ndarray) -> np.ndarray:
        """``logits`` of inputs already prepared (``prepare_inputs``), in one pass."""
        return self._forward_layers(h, False)[1][-1]

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Class probabilities, computed in chunks to bound memory.

        Parameters
        ----------
        x : ndarray of shape (n_samples, n_inputs) or (n_samples, H, W)

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
        """
        n = x.shape[0]
        out = np.empty((n, self.sizes[-1]), dtype=self.dtype)
        for start in range(0, n, PREDICT_CHUNK):
            out[start : start + PREDICT_CHUNK] = self.forward(x[start : start + PREDICT_CHUNK])
        return out

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Most probable class of each sample, shape (n_samples,)."""
        return self.predict_proba(x).argmax(axis=1)

    # ------------------------------------------------------------------- training
    def loss_and_gradient(
        self,
        x: np.ndarray,
        y: np.ndarray,
        l2: float = 0.0,
        dropout: float = 0.0,
        rng: np.random.Generator | None = None,
    ) -> BatchGradient:
        """Loss of one batch and its gradient, written into ``self.grads``.

        The loss is the mean softmax cross-entropy plus ``l2 / 2 * sum(W ** 2)`` over the
        weights (not the biases). Dropout is inverted dropout on the hidden layers.
        Reuses buffers across calls; not thread-safe (``forward`` is).

        Parameters
        ----------
        x : ndarray of shape (batch, n_inputs)
            Already prepared (scaled, this network's dtype), C-contiguous.
        y : ndarray of shape (batch,)
            Integer labels.
        l2 : float
        dropout : float
            Probability of zeroing a hidden unit, in [0, 1).
        rng : numpy.random.Generator
            Needed when ``dropout > 0``.

        Returns
        -------
        BatchGradient
            ``(loss, grads, n_correct)``; ``grads`` of shape (n_params,) is ``self.grads``,
            also reachable as the ``weight_grads`` / ``bias_grads`` views.
        """
        if x.shape[0] <= GRADIENT_CHUNK:
            loss, n_correct = self._data_loss_and_gradient(x, y, dropout, rng)
        else:
            loss, n_correct = self._chunked_loss_and_gradient(x, y, dropout, rng)
        return BatchGradient(self.add_l2(loss, l2), self.grads, n_correct)

    def add_l2(self, loss: float, l2: float) -> float:
        """Add the L2 term to a data loss and its gradient to ``self.grads``; return the
        total loss."""
        if l2 > 0:
            loss += 0.5 * l2 * sum(float(np.vdot(W, W)) for W in self.weights)  # + λ/2 Σ‖W‖²
            for W, dW in zip(self.weights, self.weight_grads):
                dW += self.dtype.type(l2) * W  # dW[l] += λ W[l]
        return loss

    def _data_loss_and_gradient(
        self, x: np.ndarray, y: np.ndarray, dropout: float, rng: np.random.Generator | None
    ) -> tuple[float, int]:
        """Mean cross-entropy of the batch and its count of right answers; the gradient
        goes to ``self.grads``."""
        m = x.shape[0]
        buf = self._batch_buffers(m, dropout > 0)
        Z_out = self._forward_train(x, buf, m, dropout, rng)
        loss, dZ, n_correct = self._softmax_loss_and_delta(Z_out, y, buf)
        self._backward(x, buf, m, dZ, dropout > 0, self.weight_grads, self.bias_grads)
        return loss, n_correct

    def _chunked_loss_and_gradient(
        self, x: np.ndarray, y: np.ndarray, dropout: float, rng: np.random.Generator | None
    ) -> tuple[float, int]:
        """``_data_loss_and_gradient`` of a large batch (full-batch training), taken
        ``GRADIENT_CHUNK`` rows at a time (see ``add_chunk_gradient``): the work buffers
        stay chunk-sized instead of growing with the data set, and each chunk of inputs is
        still in cache when the backward pass reads it again."""
        n = x.shape[0]
        if self._lane is None:
            self._lane = GradientLane(self, GRADIENT_CHUNK)
        lane = self._lane
        lane.reset()
        for start in range(0, n, GRADIENT_CHUNK):
            rows = slice(start, start + GRADIENT_CHUNK)
            self.add_chunk_gradient(x[rows], y[rows], n, lane, dropout, rng)
        self.grads[...] = lane.total
        return lane.loss, lane.n_correct

    def add_chunk_gradient(
        self,
        x: np.ndarray,
        y: np.ndarray,
        n_total: int,
        lane: GradientLane,
        dropout: float = 0.0,
        rng: np.random.Generator | None = None,
    ) -> None:
        """Add one chunk's share of a large batch's loss and gradient to ``lane``.

        The batch's mean loss is ``1/n Σ_i loss_i`` over its ``n_total`` rows, so a
        chunk's share is its rows' sum divided by ``n_total``, and its gradient is that of
        ``dZ[L] = (Y_hat - Y) / n_total``: summed over the chunks, in any grouping, the
        shares give the batch's loss and gradient. Reads the weights only, writes only
        ``lane``: threads with a lane each may run this at the same time (without dropout,
        whose generator they would share).

        Parameters
        ----------
        x : ndarray of shape (m, n_inputs)
            Prepared inputs of the chunk, C-contiguous, ``m <= lane.capacity``.
        y : ndarray of shape (m,)
        n_total : int
            Rows of the whole batch.
        lane : GradientLane
        dropout : float
        rng : numpy.random.Generator
        """
        m = x.shape[0]
        buf = lane.buffers(m, dropout > 0)
        Z_out = self._forward_train(x, buf, m, dropout, rng)
        loss, dZ, n_correct = self._softmax_loss_and_delta(Z_out, y, buf, n_total)
        lane.n_correct += n_correct
        self._backward(x, buf, m, dZ, dropout > 0, lane.weight_grads, lane.bias_grads)
        lane.loss += loss
        lane.total += lane.grads

    def _softmax_loss_and_delta(
        self, logits: np.ndarray, y: np.ndarray, buf: _Buffers, n_total: int | None = None
    ) -> tuple[float, np.ndarray, int]:
        """Mean softmax cross-entropy, its gradient ``dZ[L]`` written over ``logits``, and
        the count of rows whose largest logit is the true class's (``argmax == y``).

        With ``n_total``, the rows are part of a batch of ``n_total`` rows: the sum of
        their losses and the gradient are divided by ``n_total`` instead of their count.

        The same arithmetic as ``losses.softmax_cross_entropy`` and ``_grad`` (log-sum-exp,
        then (probs - onehot) / m), fused for the training step: on a (128, 10) batch the
        cost is the count of NumPy calls, so row maxima and sums go to reused buffers and
        the true-class entries are reached by flat index instead of 2-D fancy indexing.
        NumPy reduces slowly along a short last axis (a float32 row max costs ~25 ns a
        row), so row maxima are taken column by column and row sums as a product with
        ones: 2x faster on a batch of 128, 10x on a full batch of 36,000.

        With ``c_i = max_k z_ik`` and ``s_i = sum_k exp(z_ik - c_i)``, the loss of row
        ``i`` is ``-log y_hat_iy = log s_i - (z_iy - c_i)``: finite for any finite logits.
        """
        m = logits.shape[0]
        n = m if n_total is None else n_total
        rows = buf.rows[:m]
        true = buf.class_offsets[:m] + y  # flat index of each row's true class y_i
        row_max(logits, out=rows[:, 0])  # c_i = max_k z_ik
        logits -= rows  # z_ik - c_i  (every entry <= 0: exp cannot overflow)
        flat = logits.reshape(-1)
        true_shifted = flat[true]  # z_iy - c_i
        true_logit_sum = float(true_shifted.sum(dtype=np.float64))
        n_correct = _count_correct(logits, true_shifted, y)
        np.exp(logits, out=logits)  # e^(z_ik - c_i)
        np.matmul(logits, buf.class_ones, out=rows)  # s_i = Σ_k e^(z_ik - c_i)
        # L = -1/n Σ_i log y_hat_iy = 1/n Σ_i (log s_i - (z_iy - c_i))
        loss = (float(np.log(rows).sum(dtype=np.float64)) - true_logit_sum) / n
        np.multiply(rows, n, out=rows)  # n s_i  (n = m unless the rows are part of a batch)
        np.divide(logits, rows, out=logits)  # Y_hat / n, y_hat_ik = e^(z_ik - c_i) / s_i
        flat[true] -= self.dtype.type(1.0 / n)  # dZ[L] = (Y_hat - Y) / n
        return loss, logits, n_correct

    def release_buffers(self) -> None:
        """Free the training work arrays (``loss_and_gradient`` allocates them again)."""
        self._buffers = None
        self._lane = None

    def _batch_buffers(self, batch: int, with_dropout: bool) -> _Buffers:
        buf = self._buffers
        if buf is None or buf.capacity < batch or (with_dropout and buf.masks is None):
            buf = _Buffers(self.sizes, batch, self.dtype, with_dropout)
            self._buffers = buf
        return buf

    def _forward_train(
        self,
        X: np.ndarray,
        buf: _Buffers,
        m: int,
        dropout: float,
        rng: np.random.Generator | None,
    ) -> np.ndarray:
        """``Z[L]`` of one batch of ``m`` rows; every ``A[l]`` (and dropout mask ``M[l]``)
        stays in ``buf`` for the backward pass."""
        g = ACTIVATIONS[self.activation][0]
        keep = 1.0 - dropout
        A = X  # A[0] = X
        for layer in range(1, self.n_layers):  # hidden layers l = 1 .. L-1
            Z = buf.activations[layer - 1][:m]
            _product(A, self.weights[layer - 1], Z, buf.invariant)  # Z[l] = A[l-1] W[l]
            Z += self.biases[layer - 1]  # Z[l] += b[l]
            g(Z)  # A[l] = g(Z[l]), written over Z[l]
            A = Z
            if dropout > 0:  # A[l] = A[l] ⊙ M[l], M[l] = 1/keep (kept unit) or 0
                A = buf.dropped[layer - 1][:m]
                self._dropout(Z, buf.masks[layer - 1][:m], A, keep, rng)
        Z_out = buf.activations[-1][:m]
        _product(A, self.weights[-1], Z_out, buf.invariant)  # Z[L] = A[L-1] W[L]
        Z_out += self.biases[-1]  # Z[L] += b[L]
        return Z_out

    def _dropout(
        self,
        a: np.ndarray,
        mask: np.ndarray,
        out: np.ndarray,
        keep: float,
        rng: np.random.Generator,
    ) -> None:
        """Inverted dropout: ``out = a * mask`` with ``mask`` 1/keep (kept) or 0."""
        rng.random(out=mask, dtype=mask.dtype)
        np.less(mask, keep, out=mask)
        mask *= self.dtype.type(1.0 / keep)
        np.multiply(a, mask, out=out)

    def _backward(
        self,
        X: np.ndarray,
        buf: _Buffers,
        m: int,
        dZ: np.ndarray,
        dropped: bool,
        weight_grads: list[np.ndarray],
        bias_grads: list[np.ndarray],
    ) -> None:
        """Fill the gradient views (``self.weight_grads`` / ``bias_grads``, or a lane's)
        from ``dZ[L]``, from the output layer down to layer 1."""
        g_prime = ACTIVATIONS[self.activation][1]
        ones = buf.ones[:m]
        for layer in range(self.n_layers, 0, -1):  # l = L .. 1
            if layer == 1:
                A_prev = X  # A[0] = X
            else:  # A[l-1], after dropout when it was applied
                A_prev = (buf.dropped if dropped else buf.activations)[layer - 2][:m]
            if layer == 1 and buf.input_grad_t is not None:  # narrow first layer
                # dW[1]ᵀ = dZ[1]ᵀ X: OpenBLAS takes this form 10-30% faster for 10 columns
                _matmul(dZ.T, A_prev, buf.input_grad_t, buf.invariant)
                np.copyto(weight_grads[0], buf.input_grad_t.T)
            else:
                # dW[l] = A[l-1]ᵀ dZ[l]
                _matmul(A_prev.T, dZ, weight_grads[layer - 1], buf.invariant)
            np.matmul(ones, dZ, out=bias_grads[layer - 1])  # db[l] = Σ_i dZ[l]_i
            if layer > 1:
                dZ = self._backward_to_hidden(buf, m, dZ, layer, dropped, g_prime)

    def _backward_to_hidden(
        self,
        buf: _Buffers,
        m: int,
        dZ: np.ndarray,
        layer: int,
        dropped: bool,
        g_prime: Backward,
    ) -> np.ndarray:
        """``dZ[l-1]`` from ``dZ[l]`` (``layer`` = l >= 2), in ``buf``'s work array."""
        dA = buf.deltas[layer - 2][:m]
        _matmul(dZ, self.weights[layer - 1].T, dA, buf.invariant)  # dA[l-1] = dZ[l] W[l]ᵀ
        if dropped:
            dA *= buf.masks[layer - 2][:m]  # through the dropout: dA[l-1] ⊙ M[l-1]
        g_prime(buf.activations[layer - 2][:m], dA)  # dZ[l-1] = dA[l-1] ⊙ g'(Z[l-1])
        return dA


class GradientLane:
    """What one thread needs to add chunk gradients of a large batch: work arrays for
    chunks of up to ``capacity`` rows, a gradient buffer laid out like ``MLP.grads``, and
    the running sums (``total`` gradient, ``loss``, ``n_correct``).

    Parameters
    ----------
    model : MLP
        The network whose layer sizes and dtype the arrays follow.
    capacity : int
        Largest chunk, in rows.
    """

    def __init__(self, model: MLP, capacity: int) -> None:
        self._sizes, self._dtype = model.sizes, model.dtype
        self.capacity = int(capacity)
        self.grads = np.zeros_like(model.params)
        self.weight_grads, self.bias_grads = layer_views(self.grads, model.sizes)
        self.total = np.zeros_like(model.params)
        self.loss = 0.0
        self.n_correct = 0
        self._buffers: _Buffers | None = None

    def reset(self) -> None:
        """Zero the running sums before a new batch."""
        self.total[...] = 0
        self.loss = 0.0
        self.n_correct = 0

    def buffers(self, rows: int, with_dropout: bool) -> _Buffers:
        buf = self._buffers
        if buf is None or buf.capacity < rows or (with_dropout and buf.masks is None):
            # the lanes run on one BLAS thread (full_batch), whose products are one
            # sum in every call: no need for _matmul's blocks
            capacity = max(rows, self.capacity)
            buf = _Buffers(self._sizes, capacity, self._dtype, with_dropout, invariant=False)
            self._buffers = buf
        return buf


class _Buffers:
    """Per-layer work arrays for batches of up to ``capacity`` rows, allocated once."""

    def __init__(
        self,
        sizes: tuple[int, ...],
        capacity: int,
        dtype: np.dtype,
        with_dropout: bool,
        invariant: bool = True,
    ) -> None:
        self.capacity = capacity
        self.invariant = invariant  # products in blocks that no thread count changes
        self.activations = [np.empty((capacity, n), dtype) for n in sizes[1:]]
        self.deltas = [np.empty((capacity, n), dtype) for n in sizes[1:-1]]
        self.ones = np.ones(capacity, dtype)
        self.rows = np.empty((capacity, 1), dtype)
        self.class_offsets = np.arange(capacity) * sizes[-1]
        self.class_ones = np.ones((sizes[-1], 1), dtype)
        narrow = sizes[1] <= NARROW_FIRST_LAYER
        self.input_grad_t = np.empty((sizes[1], sizes[0]), dtype) if narrow else None
        self.masks = None
        self.dropped = None
        if with_dropout:
            self.masks = [np.empty((capacity, n), dtype) for n in sizes[1:-1]]
            self.dropped = [np.empty((capacity, n), dtype) for n in sizes[1:-1]]


def _count_correct(shifted: np.ndarray, true_shifted: np.ndarray, y: np.ndarray) -> int:
    """Rows where ``argmax`` of the logits is ``y``, from the logits less their row maxima.

    A row's true class is a largest logit exactly when its shifted logit is 0 (``c - c``
    is exactly 0). That is ``argmax == y`` unless the row has several largest logits, and
    ``argmax`` picks the first of them: then (rare) the count falls back to ``argmax``.
    Along a short last axis ``argmax`` costs ~25 ns a row; these whole-array tests less.

    Parameters
    ----------
    shifted : ndarray of shape (m, n_classes)
        ``z_ik - max_k z_ik``.
    true_shifted : ndarray of shape (m,)
        ``z_iy - max_k z_ik``.
    y : ndarray of shape (m,)
    """
    if np.count_nonzero(shifted == 0) == shifted.shape[0]:  # one largest logit per row
        return int(np.count_nonzero(true_shifted == 0))
    return int(np.count_nonzero(shifted.argmax(axis=1) == y))


def _product(A: np.ndarray, W: np.ndarray, out: np.ndarray, invariant: bool = True) -> None:
    """``out = A @ W`` (see ``_matmul``); when ``W`` is narrow, a block of rows at a time.

    OpenBLAS (0.3.16+, on AVX-512 kernels) multiplies matrices of at most
    ``SMALL_GEMM_MNK`` multiply-adds without packing them into its blocked layout first.
    For the notebook's first layer (717 kept pixels x 10) that is blocks of up to 139
    rows, and they took 1.3-1.8x less time than one product of 512 rows. Wide layers
    (blocks of fewer than ``MIN_BLOCK_ROWS`` rows) take the one product.
    """
    m, k = A.shape
    block = SMALL_GEMM_MNK // max(_inner_block(k, invariant) * W.shape[1], 1)
    if block < MIN_BLOCK_ROWS or m <= block:
        _matmul(A, W, out, invariant)
        return
    n_blocks = -(-m // block)
    block = -(-m // n_blocks)  # even blocks: 128 rows go as 64 + 64, not 127 + 1
    for start in range(0, m, block):
        _matmul(A[start : start + block], W, out[start : start + block], invariant)


def _inner_block(k: int, invariant: bool = True) -> int:
    """Inner terms per product in a sum of ``k``: at most ``INVARIANT_K``. Whole blocks
    and a remainder (784 as 384 + 384 + 16) took 1.02x one product's time, even blocks
    (3 x 262) 1.05x: OpenBLAS runs long blocks faster."""
    return k if not invariant or k <= INVARIANT_K else INVARIANT_K


def _matmul(A: np.ndarray, B: np.ndarray, out: np.ndarray, invariant: bool = True) -> None:
    """``out = A @ B``, the same bits whatever the BLAS thread count (``invariant``).

    A long inner dimension goes as a sum of products of at most ``INVARIANT_K`` terms,
    added in order (784 pixels as 384 + 384 + 16), ``SCRATCH_BYTES`` of output rows at a
    time so that the work array stays small. ``invariant=False`` (one product) is for
    callers that hold the BLAS at one thread anyway (the full-batch lanes).
    """
    k = A.shape[1]
    step = _inner_block(k, invariant)
    if step == k:
        np.matmul(A, B, out=out)
        return
    m, n = out.shape
    rows = max(1, SCRATCH_BYTES // max(n * out.itemsize, 1))
    for top in range(0, m, rows):
        a, o = A[top : top + rows], out[top : top + rows]
        np.matmul(a[:, :step], B[:step], out=o)
        part = _scratch(o.shape, out.dtype)
        for start in range(step, k, step):
            np.matmul(a[:, start : start + step], B[start : start + step], out=part)
            o += part


_local = threading.local()


def _scratch(shape: tuple[int, int], dtype: np.dtype) -> np.ndarray:
    """A work array of ``shape``, a view of one kept per thread and dtype (a fresh one for
    every product would be page-faulted in every time)."""
    kept = getattr(_local, "arrays", None)
    if kept is None:
        kept = _local.arrays = {}
    dtype = np.dtype(dtype)
    size = shape[0] * shape[1]
    flat = kept.get(dtype)
    if flat is None or flat.size < size:
        flat = kept[dtype] = np.empty(max(size, SCRATCH_BYTES // dtype.itemsize), dtype)
    return flat[:size].reshape(shape)


def n_parameters(sizes: Sequence[int]) -> int:
    """Weights plus biases of a network with these layer sizes."""
    return sum(a * b + b for a, b in itertools.pairwise(sizes))


def _check_sizes(n_inputs: int, hidden: Sequence[int], n_classes: int) -> tuple[int, ...]:
    sizes = (int(n_inputs), *(int(h) for h in hidden), int(n_classes))
    if any(s < 1 for s in sizes):
        raise ValueError(f"every layer needs at least one unit, got sizes {sizes}")
    if n_classes < 2:
        raise ValueError(f"a classifier needs at least 2 classes, got {n_classes}")
    return sizes


def layer_views(
    flat: np.ndarray, sizes: Sequence[int]
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The weight matrices and bias vectors of a network of ``sizes``, as views into
    ``flat`` (its ``params`` or ``grads`` layout), one of each per layer."""
    weights, biases, start = [], [], 0
    for fan_in, fan_out in itertools.pairwise(sizes):
        weights.append(flat[start : start + fan_in * fan_out].reshape(fan_in, fan_out))
        start += fan_in * fan_out
        biases.append(flat[start : start + fan_out])
        start += fan_out
    return weights, biases
