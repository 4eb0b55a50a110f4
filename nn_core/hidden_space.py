"""The hidden space: where a hidden layer puts each image, drawn in 2-D, over training.

A fixed sample of test images (``SAMPLE_SIZE``, each class keeping its share) goes
through the network; one hidden layer's activations, shape (n, width), are one point per
image in ``width`` dimensions. PCA (scikit-learn) draws them in the plane of their two
largest directions of variance; t-SNE, slower, keeps neighbours together instead.

Replay over epochs needs the network as it was at the end of each epoch:
``NetworkSnapshots`` keeps a float32 copy of all weights per epoch, thinned (every other
one dropped, the first and last kept) to stay within a memory budget.

Alignment between epochs: each epoch gets the PCA of its own activations (early epochs are
not squashed into a basis fitted later), then its 2-D coordinates are turned by the
orthogonal 2x2 matrix (a rotation, or a reflection) that brings them closest to the
previous epoch's aligned coordinates of the same images: orthogonal Procrustes. So the
picture never flips or spins between frames, and distances within a frame are kept.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from nn_core.data.dataset import stratified_subset
from nn_core.network import MLP
from nn_core.training import Callbacks, Trainer
from nn_core.unit_views import layer_responses

SAMPLE_SIZE = 2000
SNAPSHOT_BUDGET_BYTES = 32 * 1024**2
TSNE_PERPLEXITY = 30.0
TSNE_STAGES = 3
TSNE_INPUT_DIMS = 50  # t-SNE runs on the first 50 principal components (the usual practice)
TSNE_STAGE_ITERATIONS = 250  # scikit-learn's least (its exaggeration phase)


# --------------------------------------------------------------------------- sample
def sample_rows(labels: np.ndarray, n: int = SAMPLE_SIZE, seed: int = 0) -> np.ndarray:
    """A fixed sample of ``n`` rows (all when fewer), each class keeping its share.

    Returns
    -------
    ndarray of shape (min(n, n_samples),), int64, sorted
    """
    labels = np.asarray(labels)
    if labels.shape[0] <= n:
        return np.arange(labels.shape[0])
    return stratified_subset(labels, n, np.random.default_rng(seed))


def hidden_representation(model: MLP, images: np.ndarray, layer: int) -> np.ndarray:
    """Activations of hidden layer ``layer`` (0 = the first) for each image.

    Parameters
    ----------
    model : MLP
    images : ndarray of shape (n, H, W) or (n, n_inputs)
        Raw, as the network receives them.
    layer : int
        ``0 .. n_layers - 2``.

    Returns
    -------
    ndarray of shape (n, sizes[layer + 1]), float64
    """
    if not 0 <= layer < model.n_layers - 1:
        raise ValueError(f"hidden layer must be in 0..{model.n_layers - 2}, got {layer}")
    return layer_responses(model, images, layer, activated=True).astype(np.float64)


# --------------------------------------------------------------------------- snapshots
class NetworkSnapshots:
    """``Trainer`` callback keeping the whole network's weights at the end of each epoch.

    Parameters
    ----------
    trainer : Trainer
        Its current weights are kept as the start (epoch ``trainer.epochs_done``).
    budget_bytes : int
        Past this, every other snapshot is dropped (the first and the last kept).

    Attributes
    ----------
    kept : dict of int to ndarray of shape (n_params,), float32
        Epoch -> the network's ``params`` at its end (0: the start). Replaced, never
        changed in place, so another thread may read it at any time.
    thinned : bool
        Whether snapshots were dropped to fit the budget.
    """

    def __init__(self, trainer: Trainer, budget_bytes: int = SNAPSHOT_BUDGET_BYTES) -> None:
        self.sizes = tuple(trainer.model.sizes)
        self.budget_bytes = int(budget_bytes)
        self.kept: dict[int, np.ndarray] = {
            trainer.epochs_done: trainer.model.params.astype(np.float32)
        }
        self.thinned = False
        self._lock = threading.Lock()

    def callbacks(self) -> Callbacks:
        return Callbacks(on_epoch=(self.on_epoch,))

    def on_epoch(self, trainer: Trainer, info: dict) -> None:
        params = trainer.model.params.astype(np.float32)
        with self._lock:
            kept = {**self.kept, int(info["epoch"]): params}
            if params.nbytes * len(kept) > self.budget_bytes and len(kept) > 2:
                epochs = sorted(kept)
                for epoch in epochs[1:-1:2]:
                    del kept[epoch]
                self.thinned = True
            self.kept = kept

    @property
    def nbytes(self) -> int:
        return sum(p.nbytes for p in self.kept.values())

    def epochs(self) -> list[int]:
        return sorted(self.kept)

    def probabilities(
        self, like: MLP, x: np.ndarray, kept: dict[int, np.ndarray] | None = None
    ) -> tuple[list[int], np.ndarray]:
        """Class probabilities of ``x`` by the network kept at each epoch.

        One network is refilled per epoch (no copy of each), which keeps a replay of a
        large network quick.

        Parameters
        ----------
        like : MLP
            A network of the kept architecture (its weights are not used or changed).
        x : ndarray of shape (n_samples, ...)
            Images as ``like`` reads them.
        kept : dict, optional
            A ``kept`` read earlier (default: the current one), so that its epochs and a
            later ``model_at`` agree while training thins the snapshots.

        Returns
        -------
        epochs : list of int
            The kept epochs, in order.
        probs : ndarray of shape (n_epochs, n_samples, n_classes)
        """
        kept = self.kept if kept is None else kept  # replaced, never changed, by training
        epochs = sorted(kept)
        model = like.copy()
        probs = np.empty((len(epochs), x.shape[0], model.sizes[-1]), model.dtype)
        for i, epoch in enumerate(epochs):
            model.params[...] = kept[epoch]
            probs[i] = model.predict_proba(x)
        return epochs, probs

    def model_at(self, epoch: int, like: MLP, kept: dict[int, np.ndarray] | None = None) -> MLP:
        """A network like ``like`` with the weights kept for ``epoch`` (in ``kept``, a
        ``kept`` read earlier, or the current one)."""
        model = like.copy()
        model.params[...] = (self.kept if kept is None else kept)[epoch]
        return model


# --------------------------------------------------------------------------- projections
@dataclass(frozen=True)
class Projection:
    """A linear map of a layer's activations to the plane: ``(h - mean) @ basis``.

    Attributes
    ----------
    mean : ndarray of shape (width,)
    basis : ndarray of shape (width, 2)
        The two principal directions, turned by the alignment.
    explained : ndarray of shape (2,)
        Share of the variance along each of the two PCA directions.
    coords : ndarray of shape (n, 2)
        The fitted points' coordinates.
    """

    mean: np.ndarray
    basis: np.ndarray
    explained: np.ndarray
    coords: np.ndarray

    def transform(self, h: np.ndarray) -> np.ndarray:
        """Coordinates of other points of the same layer, shape (m, 2) from (m, width)."""
        return (np.asarray(h, dtype=np.float64) - self.mean) @ self.basis


def pca_projection(h: np.ndarray, seed: int = 0) -> Projection:
    """PCA of ``h`` (n, width) to two dimensions (scikit-learn), not aligned."""
    from sklearn.decomposition import PCA

    h = np.asarray(h, dtype=np.float64)
    n_components = min(2, h.shape[0], h.shape[1])
    # From the width x width covariance: for 2,000 points of a few hundred units it is 20x
    # faster than an SVD of the points themselves, and as deterministic.
    pca = PCA(n_components=n_components, svd_solver="covariance_eigh", random_state=seed).fit(h)
    basis = np.zeros((h.shape[1], 2))
    basis[:, :n_components] = pca.components_.T
    explained = np.zeros(2)
    explained[:n_components] = np.nan_to_num(pca.explained_variance_ratio_)
    mean = pca.mean_
    return Projection(mean, basis, explained, (h - mean) @ basis)


def procrustes_rotation(moving: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """The orthogonal matrix ``R`` (2, 2) minimising ``||moving @ R - reference||``.

    Both are the same points' centred coordinates, shape (n, 2). ``R`` may be a rotation
    or a reflection; it never stretches.
    """
    u, _, vt = np.linalg.svd(moving.T @ reference)
    return u @ vt


def align(projection: Projection, previous: Projection | None) -> Projection:
    """``projection`` turned to match ``previous`` (the same points, aligned before)."""
    if previous is None:
        return projection
    rotation = procrustes_rotation(projection.coords, previous.coords)
    return Projection(
        projection.mean,
        projection.basis @ rotation,
        projection.explained,
        projection.coords @ rotation,
    )


def aligned_pca(frames: Sequence[np.ndarray], seed: int = 0) -> list[Projection]:
    """PCA of each frame (the same points' activations at successive epochs), each frame
    aligned to the one before it.

    Parameters
    ----------
    frames : sequence of ndarray of shape (n, width)

    Returns
    -------
    list of Projection, one per frame
    """
    out: list[Projection] = []
    for h in frames:
        out.append(align(pca_projection(h, seed), out[-1] if out else None))
    return out


def tsne_stages(
    h: np.ndarray,
    seed: int = 0,
    stages: int = TSNE_STAGES,
    perplexity: float = TSNE_PERPLEXITY,
    resume: tuple[int, np.ndarray] | None = None,
) -> Iterator[np.ndarray]:
    """t-SNE of ``h`` (n, width) to (n, 2), one stage at a time: neighbours stay neighbours.

    Wide layers are first reduced to their ``TSNE_INPUT_DIMS`` principal components.
    scikit-learn's Barnes-Hut t-SNE reports no progress, so the optimisation runs as
    ``stages`` calls of ``TSNE_STAGE_ITERATIONS`` iterations each: the first with early
    exaggeration from a PCA start (as scikit-learn's own first phase), each next one
    continuing from where the last ended, at scikit-learn's default learning rate. Yields
    the embedding after each stage, shape (n, 2); the last is the result. Deterministic for
    a seed. Seconds for 2,000 points: call it on demand.

    ``resume`` = (stages done, their embedding) continues an interrupted run: it yields the
    remaining stages, the same as an uninterrupted run would.
    """
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    h = np.asarray(h, dtype=np.float64)
    n = h.shape[0]
    if h.shape[1] > TSNE_INPUT_DIMS and n > TSNE_INPUT_DIMS:
        # Neighbours found in 50 dimensions instead of hundreds: faster, and less noisy.
        h = PCA(TSNE_INPUT_DIMS, svd_solver="covariance_eigh", random_state=seed).fit_transform(h)
    perplexity = min(perplexity, max(1.0, (n - 1) / 3))
    learning_rate = max(n / 12.0 / 4.0, 50.0)  # scikit-learn's "auto" with its exaggeration
    done, init = (0, "pca") if resume is None else (resume[0], resume[1])
    for stage in range(done, stages):
        embedding = TSNE(
            n_components=2,
            perplexity=perplexity,
            early_exaggeration=12.0 if stage == 0 else 1.0,
            learning_rate=learning_rate,
            max_iter=TSNE_STAGE_ITERATIONS,
            init=init,
            random_state=seed,
        ).fit_transform(h)
        init = embedding
        yield embedding


def tsne_embedding(h: np.ndarray, seed: int = 0, stages: int = TSNE_STAGES) -> np.ndarray:
    """The final embedding of ``tsne_stages``, shape (n, 2)."""
    embedding = np.zeros((h.shape[0], 2))
    for embedding in tsne_stages(h, seed, stages):  # noqa: B007 (the last one is the result)
        pass
    return embedding
