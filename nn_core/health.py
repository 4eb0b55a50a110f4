"""Training health: how every layer of an ``MLP`` fares while it trains, and warnings.

A ``HealthRecorder`` is a pair of ``Trainer`` callbacks. Every few batches it runs a fixed
*probe batch* (``PROBE_ROWS`` training images, the same ones every time) through the
network and back, on arrays of its own (the training buffers are never touched), and keeps
a ``HealthRecord``:

- per weight layer ``l``: the norm of the probe loss's gradient ``||dL/dW[l]||``, the
  weights' norm ``||W[l]||``, and the update ratio ``||W[l] after - W[l] before|| /
  ||W[l] before||`` of the batch just trained (the optimizer's real step);
- per hidden layer: the share of *dead* units (ReLU: never active on the probe batch) and
  of *saturated* units (sigmoid, tanh: slope below ``SATURATED_SLOPE`` of its largest on
  at least ``SATURATED_SHARE`` of the probe images);
- histograms of the weights, the activations and the probe gradients of each layer.

The cadence is fixed by the shapes, not by the clock, so the same seed and settings record
the same batches: a record costs about ``(PROBE_ROWS + HISTOGRAM_ROWS) / batch_size``
training batches, and records come every ``every`` batches so that they cost
``COST_BUDGET`` of the training time (``benchmarks/health_speed.py`` measures it). The
first records come at batches 1, 2, 4, 8, ... to see the start, when most changes.

``warnings`` turns records and the run's history into sentences for people, each naming
the panel that shows the evidence; ``divergence_origin`` finds where a diverged run's
updates outgrew its weights.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from nn_core.activations import ACTIVATIONS
from nn_core.hidden_space import SNAPSHOT_BUDGET_BYTES, NetworkSnapshots, sample_rows
from nn_core.metrics import cross_entropy_from_logits
from nn_core.network import MLP
from nn_core.training import Callbacks, Trainer

PROBE_ROWS = 256
# A record's histograms and norms cost about as much as this many extra probe rows
# (measured by benchmarks/health_speed.py).
HISTOGRAM_ROWS = 64
COST_BUDGET = 0.03  # records cost this share of training time (the issue allows 5%)
MAX_RECORDS = 400  # past this, every other record is dropped (the first and last kept)
HISTOGRAM_BINS = 40
HISTOGRAM_SAMPLE = 20_000  # values per layer a histogram is taken of (a fixed sample)
SATURATED_SLOPE = 0.05  # a slope under 5% of the activation's largest slope...
SATURATED_SHARE = 0.9  # ...on at least 90% of the probe images: a saturated unit
DEAD_ACTIVATIONS = ("relu", "leaky_relu")
SATURATING_ACTIVATIONS = ("sigmoid", "tanh")
MAX_SLOPE = {"sigmoid": 0.25, "tanh": 1.0}

# Warnings
VANISHING_RATIO = 0.05  # first layer's relative gradient under 5% of the output layer's
DEAD_WARNING_SHARE = 0.5
OVERFIT_EPOCHS = 3  # validation loss up this many validated epochs in a row
OUTGREW_RATIO = 1.0  # an update as large as the weights it changes


@dataclass(frozen=True)
class Histogram:
    """Counts of values in bins.

    Attributes
    ----------
    counts : ndarray of shape (n_bins,), int64
    edges : ndarray of shape (n_bins + 1,), float64
    """

    counts: np.ndarray
    edges: np.ndarray


@dataclass(frozen=True)
class HealthRecord:
    """What the probe batch showed at one moment of training.

    Attributes
    ----------
    batch : int
        Batches trained so far in the run (1-based count).
    progress : float
        Epochs done, fractional within the epoch.
    epoch, batch_in_epoch : int
        The epoch in progress and the batch within it (both 1-based).
    loss : float
        Mean cross-entropy on the probe batch.
    grad_norm, weight_norm, update_ratio : ndarray of shape (n_layers,)
        Per weight layer: ``||dL/dW||`` on the probe batch (no L2, no dropout), ``||W||``,
        and ``||dW_step|| / ||W before the step||`` of the batch just trained (NaN when
        the weights before it were not kept).
    dead, saturated : ndarray of shape (n_hidden,)
        Per hidden layer, the share of dead (ReLU) or saturated (sigmoid, tanh) units;
        NaN when the activation cannot die or saturate.
    histograms : dict of str to list of Histogram
        ``"weights"`` and ``"gradients"``: one per weight layer; ``"activations"``: one per
        hidden layer.
    """

    batch: int
    progress: float
    epoch: int
    batch_in_epoch: int
    loss: float
    grad_norm: np.ndarray
    weight_norm: np.ndarray
    update_ratio: np.ndarray
    dead: np.ndarray
    saturated: np.ndarray
    histograms: dict[str, list[Histogram]] = field(repr=False)

    @property
    def relative_grad(self) -> np.ndarray:
        """``||dL/dW|| / ||W||`` per weight layer, shape (n_layers,): how fast each layer's
        weights would move for the same learning rate."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return self.grad_norm / np.maximum(self.weight_norm, 1e-12)


@dataclass
class ProbeStats:
    """One forward and backward pass of the probe batch.

    Attributes
    ----------
    loss : float
    activations : list of ndarray
        Hidden layers' activations, each of shape (n_probe, width).
    weight_grads : list of ndarray
        ``dL/dW[l]``, each of the weights' shape (fan_in, fan_out).
    """

    loss: float
    activations: list[np.ndarray]
    weight_grads: list[np.ndarray]


# --------------------------------------------------------------------------- probe
def probe_rows(labels: np.ndarray, n: int = PROBE_ROWS, seed: int = 0) -> np.ndarray:
    """Indices of a fixed probe batch: ``n`` rows (all when fewer), each class keeping
    its share, the same for the same labels and seed (``hidden_space.sample_rows``).

    Returns
    -------
    ndarray of shape (min(n, n_samples),), int64, sorted
    """
    return sample_rows(labels, n, seed)


def probe_statistics(model: MLP, x: np.ndarray, y: np.ndarray) -> ProbeStats:
    """Forward and backward pass of a probe batch on arrays of its own.

    The gradient is that of the mean cross-entropy, without the L2 term and without
    dropout, so records of runs with and without them compare.

    Parameters
    ----------
    model : MLP
    x : ndarray of shape (n, n_inputs)
        Prepared inputs (``model.prepare_inputs``).
    y : ndarray of shape (n,), int

    Returns
    -------
    ProbeStats
    """
    m = x.shape[0]
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        pre, post = model.forward_prepared(x, return_all=True)
        # The loss from the logits (pre[-1]): finite however confident a mistake is.
        loss = float(np.mean(cross_entropy_from_logits(pre[-1], y)))
        delta = post[-1]  # dZ[L] = (Y_hat - Y) / m, written over the probabilities
        delta[np.arange(m), y] -= 1
        delta /= m
        backward = ACTIVATIONS[model.activation][1]
        hidden = post[:-1]
        grads: list[np.ndarray] = [np.empty(0)] * model.n_layers
        for layer in range(model.n_layers - 1, -1, -1):
            below = x if layer == 0 else hidden[layer - 1]
            grads[layer] = below.T @ delta  # dW[l] = A[l-1]ᵀ dZ[l]
            if layer > 0:
                delta = delta @ model.weights[layer].T  # dA[l-1] = dZ[l] W[l]ᵀ
                backward(hidden[layer - 1], delta)  # dZ[l-1] = dA[l-1] ⊙ g'(Z[l-1])
    del pre
    return ProbeStats(loss=loss, activations=hidden, weight_grads=grads)


def dead_units(activations: np.ndarray, activation: str) -> np.ndarray:
    """Which units never fire on any row: ReLU outputs 0 (leaky ReLU: never positive).

    Parameters
    ----------
    activations : ndarray of shape (n, width)
        A hidden layer's activations on the probe batch.
    activation : str

    Returns
    -------
    ndarray of shape (width,), bool; all False for activations that cannot die
    """
    if activation not in DEAD_ACTIVATIONS:
        return np.zeros(activations.shape[1], bool)
    return ~np.any(activations > 0, axis=0)


def saturated_units(activations: np.ndarray, activation: str) -> np.ndarray:
    """Which units sit on a flat part of sigmoid or tanh for most rows.

    A unit is saturated when its slope ``g'(z)`` is under ``SATURATED_SLOPE`` of the
    activation's largest slope on at least ``SATURATED_SHARE`` of the rows: gradients
    hardly pass through it.

    Parameters
    ----------
    activations : ndarray of shape (n, width)
    activation : str

    Returns
    -------
    ndarray of shape (width,), bool; all False for activations that do not saturate
    """
    if activation not in SATURATING_ACTIVATIONS:
        return np.zeros(activations.shape[1], bool)
    a = activations.astype(np.float64)
    slope = a * (1 - a) if activation == "sigmoid" else 1 - a * a
    flat = slope < SATURATED_SLOPE * MAX_SLOPE[activation]
    return np.mean(flat, axis=0) >= SATURATED_SHARE


def unit_shares(
    activations: Sequence[np.ndarray], activation: str
) -> tuple[np.ndarray, np.ndarray]:
    """Share of dead and of saturated units in each hidden layer.

    Parameters
    ----------
    activations : sequence of ndarray of shape (n, width)
        The hidden layers' activations on the probe batch.
    activation : str

    Returns
    -------
    dead, saturated : ndarray of shape (n_hidden,)
        NaN where the activation cannot die (or saturate).
    """
    dead = [
        dead_units(a, activation).mean() if activation in DEAD_ACTIVATIONS else np.nan
        for a in activations
    ]
    saturated = [
        saturated_units(a, activation).mean() if activation in SATURATING_ACTIVATIONS else np.nan
        for a in activations
    ]
    return np.array(dead, dtype=np.float64), np.array(saturated, dtype=np.float64)


def histogram(values: np.ndarray, bins: int = HISTOGRAM_BINS) -> Histogram:
    """Histogram of the finite values over their own range (one bin around a constant)."""
    flat = np.asarray(values, dtype=np.float64).reshape(-1)
    finite = flat[np.isfinite(flat)]
    if finite.size == 0:
        return Histogram(np.zeros(bins, np.int64), np.linspace(-1.0, 1.0, bins + 1))
    low, high = float(finite.min()), float(finite.max())
    if high - low < 1e-12 * max(1.0, abs(low)):
        low, high = low - 0.5, high + 0.5
    counts, edges = np.histogram(finite, bins=bins, range=(low, high))
    return Histogram(counts.astype(np.int64), edges)


# --------------------------------------------------------------------------- recorder
class HealthRecorder:
    """``Trainer`` callbacks that keep ``HealthRecord``s of a run at a fixed cadence.

    Parameters
    ----------
    x_probe : ndarray of shape (n_probe, H, W) or (n_probe, n_inputs)
        The probe batch, raw like the training images (see ``probe_rows``).
    y_probe : ndarray of shape (n_probe,), int
    every : int, optional
        Record every ``every`` batches (after the first 1, 2, 4, ...); by default chosen
        from the batch size so that records cost ``COST_BUDGET`` of the training time.
    max_records : int

    Attributes
    ----------
    records : list of HealthRecord
        Replaced, never changed in place, so another thread may read it at any time.
    seconds : float
        Time spent recording (for the benchmark).
    """

    def __init__(
        self,
        x_probe: np.ndarray,
        y_probe: np.ndarray,
        every: int | None = None,
        max_records: int = MAX_RECORDS,
    ) -> None:
        self.x_probe = np.asarray(x_probe)
        self.y_probe = np.asarray(y_probe, dtype=np.int64)
        if self.x_probe.shape[0] != self.y_probe.shape[0] or self.y_probe.shape[0] == 0:
            raise ValueError("the probe batch needs one label per image and at least one image")
        self.every = every
        self.max_records = max(4, int(max_records))
        self.records: list[HealthRecord] = []
        self.seconds = 0.0
        self._before: list[np.ndarray] | None = None
        self._before_batch = -1
        self._prepared: np.ndarray | None = None
        self._samples: list[np.ndarray] | None = None
        self._lock = threading.Lock()

    @classmethod
    def for_trainer(cls, trainer: Trainer, **kwargs) -> HealthRecorder:
        """A recorder whose probe batch is ``PROBE_ROWS`` of the trainer's training images
        (attach it before training: it keeps the weights the first batch starts from)."""
        rows = trainer.train_idx[probe_rows(trainer.y[trainer.train_idx])]
        recorder = cls(trainer.x[rows], trainer.y[rows], **kwargs)
        batch = len(trainer.history.batch_loss)
        if recorder.due(batch + 1, recorder.cadence(trainer.batch_size)):
            recorder._keep_weights(trainer.model, batch)
        return recorder

    def callbacks(self) -> Callbacks:
        return Callbacks(on_batch=(self.on_batch,))

    def cadence(self, batch_size: int) -> int:
        """Batches between records for batches of ``batch_size`` rows."""
        if self.every is not None:
            return max(1, int(self.every))
        cost = (self.y_probe.shape[0] + HISTOGRAM_ROWS) / max(batch_size, 1)
        return max(1, math.ceil(cost / COST_BUDGET))

    def due(self, batch: int, every: int) -> bool:
        """Whether batch number ``batch`` (1-based) is recorded."""
        if batch < every:
            return batch & (batch - 1) == 0  # 1, 2, 4, 8, ...
        return batch % every == 0

    def on_batch(self, trainer: Trainer, info: dict) -> None:
        """After each batch: keep the weights before a due batch, record a due batch."""
        start = time.perf_counter()
        batch = len(trainer.history.batch_loss)
        every = self.cadence(trainer.batch_size)
        if self.due(batch, every):
            self._record(trainer, batch, info)
        if self.due(batch + 1, every):
            self._keep_weights(trainer.model, batch)
        self.seconds += time.perf_counter() - start

    def _keep_weights(self, model: MLP, batch: int) -> None:
        """The weights before batch ``batch + 1``, for its update ratio."""
        self._before = [w.copy() for w in model.weights]
        self._before_batch = batch

    @property
    def nbytes(self) -> int:
        """About the bytes held: the probe batch, the kept weights and the records."""
        held = self.x_probe.nbytes + sum(w.nbytes for w in self._before or [])
        if self._prepared is not None:
            held += self._prepared.nbytes
        records = self.records
        if records:
            one = sum(
                h.counts.nbytes + h.edges.nbytes
                for hs in records[0].histograms.values()
                for h in hs
            )
            held += len(records) * (one + 6 * records[0].grad_norm.nbytes)
        return held

    def snapshot(self) -> list[HealthRecord]:
        """The records so far (a list of its own)."""
        return list(self.records)

    def _record(self, trainer: Trainer, batch: int, info: dict) -> None:
        model = trainer.model
        if self._prepared is None or self._prepared.dtype != model.dtype:
            self._prepared = model.prepare_inputs(self.x_probe)
        stats = probe_statistics(model, self._prepared, self.y_probe)
        with np.errstate(over="ignore", invalid="ignore"):
            weight_norm = np.array([_norm(w) for w in model.weights])
            grad_norm = np.array([_norm(g) for g in stats.weight_grads])
            update_ratio = self._update_ratio(model.weights, batch)
        samples = self._sample_indices(model)
        dead, saturated = unit_shares(stats.activations, model.activation)
        record = HealthRecord(
            batch=batch,
            progress=float(trainer.progress),
            epoch=int(info["epoch"]),
            batch_in_epoch=int(info["batch"]),
            loss=stats.loss,
            grad_norm=grad_norm,
            weight_norm=weight_norm,
            update_ratio=update_ratio,
            dead=dead,
            saturated=saturated,
            histograms={
                "weights": [histogram(w.reshape(-1)[s]) for w, s in zip(model.weights, samples)],
                "gradients": [
                    histogram(g.reshape(-1)[s]) for g, s in zip(stats.weight_grads, samples)
                ],
                "activations": [histogram(_sample(a)) for a in stats.activations],
            },
        )
        self._append(record)

    def _update_ratio(self, weights: list[np.ndarray], batch: int) -> np.ndarray:
        if self._before is None or self._before_batch != batch - 1:
            return np.full(len(weights), np.nan)
        return np.array(
            [_norm(w - b) / max(_norm(b), 1e-12) for w, b in zip(weights, self._before)]
        )

    def _sample_indices(self, model: MLP) -> list[np.ndarray]:
        """A fixed sample of each layer's flat weight indices (the same every record)."""
        if self._samples is None:
            rng = np.random.default_rng(0)
            self._samples = [
                np.sort(rng.choice(w.size, HISTOGRAM_SAMPLE, replace=False))
                if w.size > HISTOGRAM_SAMPLE
                else np.arange(w.size)
                for w in model.weights
            ]
        return self._samples

    def _append(self, record: HealthRecord) -> None:
        with self._lock:
            records = [*self.records, record]
            if len(records) > self.max_records:
                records = [records[0], *records[1:-1:2], records[-1]]
            self.records = records


def _norm(a: np.ndarray) -> float:
    """Frobenius norm in float64 (inf once the squares overflow)."""
    return math.sqrt(float(np.vdot(a, a)))


def _sample(a: np.ndarray) -> np.ndarray:
    flat = a.reshape(-1)
    if flat.size <= HISTOGRAM_SAMPLE:
        return flat
    return flat[:: -(-flat.size // HISTOGRAM_SAMPLE)]


# --------------------------------------------------------------------------- series
def series(records: Sequence[HealthRecord], name: str) -> np.ndarray:
    """One per-layer figure over the records, shape (n_records, n_layers or n_hidden).

    ``name`` is a ``HealthRecord`` attribute (``grad_norm``, ``update_ratio``, ``dead``,
    ...) or ``relative_grad``.
    """
    if not records:
        return np.zeros((0, 0))
    return np.array([getattr(r, name) for r in records], dtype=np.float64)


# --------------------------------------------------------------------------- warnings
@dataclass(frozen=True)
class HealthWarning:
    """A pattern seen in a run, in plain words.

    Attributes
    ----------
    kind : {"vanishing", "dead", "overfitting", "diverged"}
    title : str
        A few words.
    text : str
        What was seen, with figures, and what to do.
    panel : {"gradients", "units", "losses", "updates"}
        The panel that shows the evidence.
    """

    kind: str
    title: str
    text: str
    panel: str


@dataclass(frozen=True)
class DivergenceOrigin:
    """Where a diverged run's updates outgrew its weights.

    Attributes
    ----------
    layer : int
        Weight layer, 1-based.
    epoch, batch : int
        Where (1-based; ``batch`` within the epoch).
    ratio : float or None
        That layer's update/weight ratio there; None when no record saw the step (the
        detector's own figures are used then).
    progress : float or None
        Epochs done at that record (for a chart's x axis); None without a record.
    """

    layer: int
    epoch: int
    batch: int
    ratio: float | None
    progress: float | None


def vanishing_warning(records: Sequence[HealthRecord], last: int = 3) -> HealthWarning | None:
    """Gradients vanish in early layers: relative to its weights, the first layer's
    gradient is under ``VANISHING_RATIO`` of the last layer's (median of the ``last``
    records), in a network with at least two hidden layers."""
    if not records or records[-1].grad_norm.shape[0] < 3:
        return None
    relative = series(records[-last:], "relative_grad")
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = float(np.nanmedian(relative[:, 0] / relative[:, -1]))
    if not math.isfinite(ratio) or ratio >= VANISHING_RATIO:
        return None
    n_layers = relative.shape[1]
    times = f"{1 / ratio:,.0f}" if ratio > 0 else "infinitely many"
    return HealthWarning(
        "vanishing",
        "Gradients vanish in the early layers",
        f"Layer 1 learns {times} times slower than layer {n_layers}: relative to its "
        f"weights, its gradient is {ratio:.2%} of the output layer's. Each layer the error "
        "goes back through shrinks it, so the first layers hardly change. Try ReLU instead "
        "of sigmoid or tanh, fewer layers, or Adam.",
        "gradients",
    )


def dead_warning(records: Sequence[HealthRecord]) -> HealthWarning | None:
    """More than half of a hidden layer's units are dead (latest record)."""
    if not records:
        return None
    last = records[-1]
    dead = last.dead
    layers = [i for i, share in enumerate(dead) if math.isfinite(share) and share > 0.5]
    if not layers:
        return None
    shares = ", ".join(f"{dead[i]:.0%} of layer {i + 1}" for i in layers)
    return HealthWarning(
        "dead",
        "More than half of the units are dead",
        f"In epoch {last.epoch}, batch {last.batch_in_epoch}, {shares}'s units gave 0 for "
        "every probe image: a dead ReLU unit passes no gradient, so it never learns again. "
        "A too large learning rate pushes units there; lower it.",
        "units",
    )


def overfitting_warning(
    epochs: Sequence[float], train_loss: Sequence[float], val_loss: Sequence[float]
) -> HealthWarning | None:
    """The validation loss has risen for ``OVERFIT_EPOCHS`` or more validated epochs since
    its lowest (by over 5%) while the training loss fell.

    Parameters
    ----------
    epochs, train_loss, val_loss : sequences of the same length
        Per epoch; epochs that did not validate have a NaN validation loss.
    """
    epochs = np.asarray(epochs, dtype=np.float64)
    train = np.asarray(train_loss, dtype=np.float64)
    val = np.asarray(val_loss, dtype=np.float64)
    validated = np.flatnonzero(np.isfinite(val))
    if validated.size <= OVERFIT_EPOCHS:
        return None
    best = validated[np.argmin(val[validated])]
    since = int(np.count_nonzero(validated > best))
    now = validated[-1]
    rose = val[now] > 1.05 * val[best]
    fell = train[now] < train[best]
    if since < OVERFIT_EPOCHS or not (rose and fell):
        return None
    return HealthWarning(
        "overfitting",
        "The network is overfitting",
        f"The validation loss has risen for {since} epochs, from {val[best]:.3f} at epoch "
        f"{epochs[best]:g} to {val[now]:.3f}, while the training loss fell from "
        f"{train[best]:.3f} to {train[now]:.3f}: the network learns the training images by "
        "heart instead of what makes a digit. Use more images, dropout or L2, augmentation, "
        "or stop at the best epoch (early stopping).",
        "losses",
    )


def divergence_origin(records: Sequence[HealthRecord], divergence) -> DivergenceOrigin:
    """Where a diverged run's updates outgrew its weights.

    The first record whose update/weight ratio reached ``OUTGREW_RATIO`` in some layer
    (that layer, that batch); without one, the record with the largest ratio from the
    batch the detector saw the loss start rising; without that, the detector's layer and
    start (``nn_core.divergence.Divergence``).
    """
    seen = [r for r in records if np.any(np.isfinite(r.update_ratio))]
    for record in seen:
        ratios = np.nan_to_num(record.update_ratio, nan=0.0, posinf=np.inf)
        if ratios.max() >= OUTGREW_RATIO:
            return _origin(record, ratios)
    start = (divergence.started_epoch, divergence.started_batch)
    later = [r for r in seen if (r.epoch, r.batch_in_epoch) >= start]
    if later:
        record = max(later, key=lambda r: np.nanmax(r.update_ratio))
        return _origin(record, np.nan_to_num(record.update_ratio, nan=0.0))
    return DivergenceOrigin(
        divergence.layer, divergence.started_epoch, divergence.started_batch, None, None
    )


def _origin(record: HealthRecord, ratios: np.ndarray) -> DivergenceOrigin:
    layer = int(np.argmax(ratios))
    return DivergenceOrigin(
        layer + 1, record.epoch, record.batch_in_epoch, float(ratios[layer]), record.progress
    )


def divergence_warning(records: Sequence[HealthRecord], divergence) -> HealthWarning:
    """The run diverged: where its updates outgrew its weights, and the fix."""
    origin = divergence_origin(records, divergence)
    where = f"layer {origin.layer} in epoch {origin.epoch}, batch {origin.batch}"
    if origin.ratio is not None:
        seen = (
            f"It started in {where}: one step changed that layer's weights by "
            f"{origin.ratio:.0%} of their size (healthy steps change them by about 0.1%)."
        )
    else:
        seen = f"It started in {where}, where the loss began to rise."
    return HealthWarning(
        "diverged",
        "Training diverged",
        f"{seen} {divergence.message}",
        "updates",
    )


def warnings(records: Sequence[HealthRecord], history=None, divergence=None) -> list[HealthWarning]:
    """Every pattern seen in a run, most serious first.

    Parameters
    ----------
    records : sequence of HealthRecord
    history : object with ``epoch``, ``train_loss``, ``val_loss``, optional
        The run's per-epoch history (``nn_core.training.History`` or a view of it).
    divergence : nn_core.divergence.Divergence, optional
    """
    found = []
    if divergence is not None:
        found.append(divergence_warning(records, divergence))
    for warning in (vanishing_warning(records), dead_warning(records)):
        if warning is not None:
            found.append(warning)
    if history is not None:
        n = min(len(history.epoch), len(history.train_loss), len(history.val_loss))
        overfit = overfitting_warning(
            history.epoch[:n], history.train_loss[:n], history.val_loss[:n]
        )
        if overfit is not None:
            found.append(overfit)
    return found


# --------------------------------------------------------------------------- a run's watch
@dataclass
class TrainingWatch:
    """What a run records about its inside: health records and per-epoch weights."""

    health: HealthRecorder
    snapshots: NetworkSnapshots

    @property
    def nbytes(self) -> int:
        """Bytes held (the weight snapshots, the records and the recorder's copies)."""
        return self.snapshots.nbytes + self.health.nbytes


def watch_training(trainer: Trainer, snapshot_budget: int = SNAPSHOT_BUDGET_BYTES) -> TrainingWatch:
    """Attach a ``HealthRecorder`` and ``NetworkSnapshots`` to ``trainer`` (after its own
    callbacks) before it trains."""
    watch = TrainingWatch(
        HealthRecorder.for_trainer(trainer), NetworkSnapshots(trainer, snapshot_budget)
    )
    old = trainer.callbacks
    trainer.callbacks = Callbacks(
        on_batch=(*old.on_batch, watch.health.on_batch),
        on_epoch=(*old.on_epoch, watch.snapshots.on_epoch),
    )
    return watch
