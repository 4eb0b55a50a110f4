"""How much memory a training or a model will need, from shapes alone, before any of it exists.

A shared server refuses work that would not fit instead of finding out from the kernel's
out-of-memory killer, which takes every visitor's session down with it. The figures here
count the arrays that the work writes to (what the process's resident memory grows by);
``tests/test_memory.py`` checks them against the measured peak of real runs.

Nothing here allocates anything in proportion to the shapes it is given.
"""

from __future__ import annotations

import itertools
import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from nn_core.augment import ELASTIC_CHUNK
from nn_core.config import TrainConfig
from nn_core.full_batch import lanes_for
from nn_core.network import GRADIENT_CHUNK, PREDICT_CHUNK, n_parameters
from nn_core.training import SNAPSHOT_BUDGET_BYTES

MB = 2**20
SNAPSHOT_ITEMSIZE = 4  # first-layer snapshots are float32 (training.Trainer)
# Bytes per pixel of the temporary arrays an augmented batch goes through (padding, the
# gathered copy, the int32 gather index of a rotation).
AUGMENT_BYTES_PER_PIXEL = 8
# ... and those of an elastic distortion (noise, fields, positions, the four bilinear
# reads), reused chunk after chunk of at most ELASTIC_CHUNK images: 64 + the output.
ELASTIC_BYTES_PER_PIXEL = 72
# What a matrix product's packing buffers (OpenBLAS's, per calling thread) and the
# interpreter's small objects add to a run, measured at 2-8 MB.
WORKSPACE_BYTES = 8 * MB

PART_NAMES = {
    "data": "data copies",
    "parameters": "weights and gradients",
    "optimizer": "optimizer state",
    "activations": "activations per batch",
    "snapshots": "weight snapshots",
}


class MemoryBudgetError(ValueError):
    """The work would need more memory than the server allows; the message says what to lower."""


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes a piece of work needs, by part (each an int, bytes).

    ``data``: copies of the data the work makes (validation images, batch buffers, the
    float copy of a full batch). ``parameters``: weights, their gradients and the copies
    kept to roll back a divergence or restore the best epoch. ``optimizer``: momentum or
    Adam moments, and their copies. ``activations``: forward and backward work arrays of
    one batch plus those of an inference chunk. ``snapshots``: first-layer weights kept
    for the replay.
    """

    data: int = 0
    parameters: int = 0
    optimizer: int = 0
    activations: int = 0
    snapshots: int = 0

    @property
    def total(self) -> int:
        return self.data + self.parameters + self.optimizer + self.activations + self.snapshots

    def parts(self) -> dict[str, int]:
        """Each part's bytes, largest first."""
        values = {name: getattr(self, name) for name in PART_NAMES}
        return dict(sorted(values.items(), key=lambda kv: -kv[1]))

    def largest_part(self) -> str:
        return next(iter(self.parts()))

    def breakdown(self, n: int = 2) -> str:
        """The ``n`` largest parts in words, e.g. ``"weights and gradients 40 MB, ..."``."""
        parts = [(k, v) for k, v in self.parts().items() if v > 0][:n]
        return ", ".join(f"{PART_NAMES[k]} {mb(v)}" for k, v in parts)

    def __add__(self, other: MemoryEstimate) -> MemoryEstimate:
        return MemoryEstimate(*(getattr(self, k) + getattr(other, k) for k in PART_NAMES))


def mb(nbytes: float) -> str:
    """Bytes as a rounded figure in MB (MiB), e.g. ``"1,067 MB"``."""
    value = nbytes / MB
    return f"{value:,.0f} MB" if value >= 10 else f"{value:.1f} MB"


# --------------------------------------------------------------------------- estimates
def held_out_count(n_samples: int, val_fraction: float) -> int:
    """About how many samples a stratified split holds out (the split rounds per class)."""
    if val_fraction <= 0:
        return 0
    return min(n_samples - 1, math.ceil(n_samples * val_fraction))


def training_memory(
    config: TrainConfig,
    n_samples: int,
    n_inputs: int,
    n_classes: int,
    *,
    input_itemsize: int = 1,
    n_test: int = 0,
) -> MemoryEstimate:
    """Memory a ``Trainer`` run of ``config`` needs, plus an evaluation on ``n_test`` images.

    Parameters
    ----------
    config : TrainConfig
    n_samples : int
        Training images before the validation split.
    n_inputs : int
        Pixels per image (H * W).
    n_classes : int
    input_itemsize : int
        Bytes per stored pixel (1 for uint8 images).
    n_test : int
        Test images the finished run is scored on (0: none).

    Returns
    -------
    MemoryEstimate
        The data set itself is not included: it exists before the run (count it where it
        is held, e.g. an upload).
    """
    sizes = (n_inputs, *config.hidden, n_classes)
    itemsize = np.dtype(config.dtype).itemsize
    n_val = held_out_count(n_samples, config.val_fraction)
    n_train = n_samples - n_val
    batch = n_train if config.batch_size == 0 else min(config.batch_size, n_train)
    full_batch = batch >= n_train
    elastic = config.augment_elastic > 0
    augmenting = config.augments
    n_params = n_parameters(sizes)

    data = n_val * n_inputs * input_itemsize + 3 * n_samples * 8  # validation copy, labels
    chunked = full_batch and not augmenting
    if chunked:
        # no float copy: each lane converts a chunk of rows at a time (training, validation)
        # from a compact copy of the training rows (nn_core.full_batch)
        buffers = lanes_for(n_train) * min(n_train, GRADIENT_CHUNK)
        buffers += lanes_for(n_val) * min(n_val, GRADIENT_CHUNK)
        data += buffers * n_inputs * (input_itemsize + itemsize)
        data += n_train * n_inputs * input_itemsize
    else:
        data += batch * n_inputs * (input_itemsize + itemsize)
    if augmenting:
        data += batch * n_inputs * AUGMENT_BYTES_PER_PIXEL
    if elastic:
        data += min(batch, ELASTIC_CHUNK) * n_inputs * ELASTIC_BYTES_PER_PIXEL

    # params + grads + the copy kept to roll back a divergence (+ the best epoch's copy)
    copies = 3 + (1 if config.early_stopping else 0)
    # a large batch's chunk gradients and their sums, per lane
    lanes = lanes_for(n_train)
    lane_copies = 2 * lanes if chunked else (2 if batch > GRADIENT_CHUNK else 0)
    parameters = n_params * itemsize * (copies + lane_copies)
    optimizer = n_params * itemsize * _optimizer_slots(config) * (copies - 1)

    chunk = min(batch, GRADIENT_CHUNK)
    train_units = sum(sizes[1:]) + sum(config.hidden) * (3 if config.dropout > 0 else 1)
    activations = WORKSPACE_BYTES + chunk * train_units * itemsize * (lanes if chunked else 1)
    activations += _inference_bytes(sizes, itemsize, max(n_val, n_test))

    return MemoryEstimate(
        data=data,
        parameters=parameters + (n_params * itemsize if n_test else 0),  # evaluation copy
        optimizer=optimizer,
        activations=activations,
        snapshots=snapshot_bytes(sizes, config.epochs),
    )


def model_memory(
    sizes: Sequence[int], dtype: str | np.dtype, *, n_predict: int = 10_000
) -> MemoryEstimate:
    """Memory to load a model file of these layer sizes and predict ``n_predict`` images.

    Loading holds the arrays read from the file and the network built from them (its
    weights and its gradient buffer); predicting adds one chunk's activations.
    """
    sizes = tuple(int(s) for s in sizes)
    itemsize = np.dtype(dtype).itemsize
    n_params = n_parameters(sizes)
    return MemoryEstimate(
        data=0,
        parameters=3 * n_params * itemsize,
        activations=WORKSPACE_BYTES + _inference_bytes(sizes, itemsize, n_predict),
    )


def dataset_memory(n_images: int, n_inputs: int, itemsize: int = 1) -> int:
    """Bytes of a data set held as ``itemsize``-byte pixels, with its int64 labels."""
    return int(n_images) * (int(n_inputs) * int(itemsize) + 8)


def snapshot_bytes(sizes: Sequence[int], epochs: int) -> int:
    """The first-layer snapshots a run keeps (one per epoch, thinned past a budget)."""
    one = sizes[0] * sizes[1] * SNAPSHOT_ITEMSIZE
    kept = min(int(epochs) + 1, SNAPSHOT_BUDGET_BYTES // one + 1)
    return max(kept, 1) * one


def _optimizer_slots(config: TrainConfig) -> int:
    """Parameter-sized arrays of optimizer state (Adam: 2 moments; momentum: velocity)."""
    if config.optimizer == "adam":
        return 2
    if config.optimizer == "sgd" and config.momentum > 0:
        return 1
    return 0


def _inference_bytes(sizes: Sequence[int], itemsize: int, n_images: int) -> int:
    """Forward pass of ``n_images`` in chunks: the scaled input chunk, two layers' outputs
    alive at a time, and the probabilities of every image (plus their float32 copy)."""
    if n_images <= 0:
        return 0
    chunk = min(n_images, PREDICT_CHUNK)
    widest_pair = max(a + b for a, b in itertools.pairwise(sizes[1:])) if len(sizes) > 2 else 0
    layer_outputs = max(widest_pair, sizes[1])
    return chunk * (sizes[0] + layer_outputs) * itemsize + n_images * sizes[-1] * (itemsize + 4)


# --------------------------------------------------------------------------- refusals
def advice(estimate: MemoryEstimate, config: TrainConfig | None, n_inputs: int) -> str:
    """What to lower, by the part that needs the most."""
    part = estimate.largest_part()
    if part in ("parameters", "optimizer"):
        if config is not None and config.hidden and n_inputs > 4 * config.hidden[0] * 10:
            return "use smaller images, or fewer units in hidden layer 1"
        return "use fewer or narrower hidden layers"
    if part == "data":
        if config is not None and config.batch_size == 0:
            return "pick a batch size instead of full batch, or fewer training images"
        return "use fewer training images or smaller images"
    if part == "activations":
        return "use a smaller batch size or narrower layers"
    return "train for fewer epochs"


def session_refusal(what: str, estimate: MemoryEstimate, cap_bytes: int, lower: str) -> str:
    """One sentence refusing work larger than the per-session cap."""
    return (
        f"{what} needs about {mb(estimate.total)} ({estimate.breakdown()}), more than the "
        f"{mb(cap_bytes)} this server allows per session (DIGITLAB_MAX_SESSION_MB): {lower}."
    )


def server_refusal(what: str, estimate: MemoryEstimate, held: int, cap_bytes: int) -> str:
    """One sentence refusing work that does not fit beside what other sessions hold."""
    return (
        f"{what} needs about {mb(estimate.total)}, but the other visitors' work already holds "
        f"{mb(held)} of the server's {mb(cap_bytes)} (DIGITLAB_MAX_SERVER_MB): try again when "
        "a training ends, or choose a smaller network or fewer images."
    )


# --------------------------------------------------------------------------- ledger
class MemoryLedger:
    """What each session holds, against a per-session and a server-wide cap. Thread-safe.

    Each owner (a browser session) holds named items (``"run"``, ``"upload"``, ...);
    reserving an item again replaces its previous size.

    Parameters
    ----------
    session_cap, server_cap : int
        Bytes one owner, and all owners together, may hold.
    """

    def __init__(self, session_cap: int, server_cap: int) -> None:
        self.session_cap = int(session_cap)
        self.server_cap = int(server_cap)
        self._items: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()

    def reserve(self, owner: str, item: str, estimate: MemoryEstimate, what: str, lower: str):
        """Record ``estimate`` for ``owner``'s ``item`` if it fits, else raise.

        Raises
        ------
        MemoryBudgetError
            With one sentence naming the cap that is exceeded and what to lower.
        """
        with self._lock:
            mine = sum(v for (o, i), v in self._items.items() if o == owner and i != item)
            others = sum(v for (o, _), v in self._items.items() if o != owner)
            if mine + estimate.total > self.session_cap:
                if mine:
                    lower = f"{lower}, or free what this session holds (Reset, a smaller upload)"
                raise MemoryBudgetError(session_refusal(what, estimate, self.session_cap, lower))
            if others + mine + estimate.total > self.server_cap:
                raise MemoryBudgetError(server_refusal(what, estimate, others, self.server_cap))
            self._items[(owner, item)] = int(estimate.total)

    def set(self, owner: str, item: str, nbytes: int) -> None:
        """Record what an item holds now (e.g. less once a run has finished); no check."""
        with self._lock:
            self._items[(owner, item)] = int(nbytes)

    def release(self, owner: str, item: str | None = None) -> None:
        """Forget one item of ``owner``, or all of them."""
        with self._lock:
            for key in [k for k in self._items if k[0] == owner and item in (None, k[1])]:
                del self._items[key]

    def held(self, owner: str | None = None) -> int:
        """Bytes held by ``owner``, or by everyone."""
        with self._lock:
            return sum(v for (o, _), v in self._items.items() if owner in (None, o))

    def owners(self) -> set[str]:
        with self._lock:
            return {o for o, _ in self._items}
