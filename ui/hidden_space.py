"""The Network page's Hidden space tab: a hidden layer's picture of 2,000 test images.

PCA frames are cached per model and layer: one per kept epoch (each aligned to the one
before, ``nn_core.hidden_space``) and one for the weights now (aligned to the last
epoch). t-SNE runs on demand, stage by stage with a progress bar; a stage done is kept, so
a rerun that interrupts it (another click) resumes where it stopped.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np

# Imported here so ui.preload loads scikit-learn once at start-up, not a session mid-page.
import sklearn.decomposition
import sklearn.manifold  # noqa: F401
import streamlit as st

from nn_core import hidden_space as hs
from nn_core.memory import mb
from ui import network_figures as nf
from ui.current_model import ModelView
from ui.views import changing_choice, clickable_chart, clicked_point, digit_image

CACHE = "_hidden_space_cache"
TSNE_CACHE = "_hidden_space_tsne"
DRAWING = "inside_image"  # the Draw page's preprocessed drawing, (28, 28) uint8 or None
NOW = "now"


@dataclass(frozen=True)
class Frame:
    """One picture of the sample: its aligned projection and what the network predicted.

    ``projection`` is None when the network's activations are not finite (it diverged).
    """

    projection: hs.Projection | None
    probs: np.ndarray  # (n, n_classes)

    @property
    def predictions(self) -> np.ndarray:
        return self.probs.argmax(axis=1)


def sample(dataset) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The fixed sample of the test set: its rows, images and labels."""
    rows = hs.sample_rows(dataset.y_test)
    return rows, dataset.x_test[rows], dataset.y_test[rows]


def compute_frame(model, images: np.ndarray, layer: int, previous: Frame | None) -> Frame:
    """PCA of ``layer``'s activations of ``images``, aligned to ``previous``."""
    prepared = model.prepare_inputs(images)
    with np.errstate(over="ignore", invalid="ignore"):
        _, post = model.forward_prepared(prepared, return_all=True)
    hidden, probs = post[layer].astype(np.float64), post[-1]
    if not (np.isfinite(hidden).all() and np.isfinite(probs).all()):
        return Frame(None, np.nan_to_num(probs))
    reference = previous.projection if previous is not None else None
    return Frame(hs.align(hs.pca_projection(hidden), reference), probs)


def _cache(model_key: tuple) -> dict:
    """Frames of one model and layer: {epoch or (NOW, batches): Frame}."""
    store = st.session_state.setdefault(CACHE, {})
    if model_key not in store:
        store.clear()  # one model at a time: the frames of 2,000 points add up
        store[model_key] = {}
    return store[model_key]


def frames_for(view: ModelView, images: np.ndarray, layer: int) -> tuple[dict, dict]:
    """Every frame the replay offers, computed (or cached) in order, and the snapshots
    they were computed from (epoch -> params; empty without a run).

    The snapshots are read once: the training thread may thin them at any time, so a
    model of a shown epoch must come from this reading, not from a later one.
    """
    run = view.run
    if run is None:
        cache = _cache(("model", id(view.model), layer))
        if NOW not in cache:
            cache[NOW] = compute_frame(view.model, images, layer, None)
        return {NOW: cache[NOW]}, {}
    cache = _cache(("run", run.id, layer))
    snapshots = run.watch.snapshots
    kept = dict(snapshots.kept)
    missing = [e for e in kept if e not in cache]
    frames, previous = {}, None
    # ~25 ms a frame: the whole replay of a long run is computed once, with a word.
    with (
        st.spinner(f"Preparing the replay ({len(missing)} epochs)…", show_time=True)
        if len(missing) > 2
        else contextlib.nullcontext()
    ):
        for epoch in sorted(kept):
            if epoch not in cache:
                model = snapshots.model_at(epoch, run.model, kept)
                cache[epoch] = compute_frame(model, images, layer, previous)
            frames[epoch] = previous = cache[epoch]
    now_key = (NOW, len(run.trainer.history.batch_loss))
    if now_key not in cache:
        for key in [k for k in cache if isinstance(k, tuple)]:
            del cache[key]
        cache[now_key] = compute_frame(run.model.copy(), images, layer, previous)
    frames[NOW] = cache[now_key]
    return frames, kept


def drawing_point(model, frame: Frame, layer: int) -> np.ndarray | None:
    """Where the Draw page's drawing falls on ``frame`` (None without a drawing that fits)."""
    image = st.session_state.get(DRAWING)
    if image is None or frame.projection is None or image.size != model.sizes[0]:
        return None
    h = hs.hidden_representation(model, image[None], layer)
    return frame.projection.transform(h)[0]


# --------------------------------------------------------------------------- render
def render_hidden_space(view: ModelView, dataset) -> None:
    """The tab: controls, the map, and the clicked image."""
    model = view.model
    if model.n_layers < 2:
        st.info("This network has no hidden layer: it maps pixels straight to classes.")
        return
    rows, images, labels = sample(dataset)
    layer, method, choice = _controls(view)
    frames, kept = frames_for(view, images, layer)
    frame_key = shown_key(choice, frames)
    frame = frames[frame_key]
    shown_model = _model_of(view, frame_key, kept)
    if frame.projection is None:
        st.warning(
            "This network's activations are not finite numbers (it diverged), so "
            "there is nothing to draw. Lower the learning rate and train again."
        )
        return
    if method == "tsne":
        coords = _tsne(view, images, layer, frame_key, shown_model)
        if coords is None:
            return
        drawing, ranges = None, None
        title = f"Hidden layer {layer + 1}: t-SNE, {_when(frame_key)}"
    else:
        coords = frame.projection.coords
        drawing = drawing_point(shown_model, frame, layer)
        shown = [f.projection.coords for f in frames.values() if f.projection is not None]
        ranges = nf.padded_ranges(shown + ([drawing[None]] if drawing is not None else []))
        explained = frame.projection.explained.sum()
        title = f"Hidden layer {layer + 1}: PCA, {_when(frame_key)} ({explained:.0%} of variance)"
    _map_and_details(view, frame, coords, images, labels, rows, title, ranges, drawing)
    if frame_key != choice:
        st.caption(
            f"The weights of epoch {choice} were dropped while this page was drawn (the "
            f"replay keeps within its memory budget): this is {_when(frame_key)} instead."
        )
    _replay_note(view, len(kept))


def _controls(view: ModelView) -> tuple[int, str, object]:
    model, ss = view.model, st.session_state
    hidden = model.n_layers - 1
    layer_col, method_col, replay_col = st.columns([1, 1, 2])
    if ss.get("hs_layer", 0) >= hidden:
        ss["hs_layer"] = 0
    layer = layer_col.selectbox(
        "Hidden layer",
        range(hidden),
        key="hs_layer",
        format_func=lambda i: f"{i + 1} ({model.sizes[i + 1]} units)",
    )
    method = method_col.radio(
        "Map",
        ["pca", "tsne"],
        key="hs_method",
        horizontal=True,
        format_func={"pca": "PCA", "tsne": "t-SNE"}.get,
        help="PCA: the plane of the two directions along which the points spread most; "
        "quick, and aligned between epochs. t-SNE: keeps each point's neighbours near it; "
        "computed on demand, a few seconds.",
    )
    choice = NOW
    run = view.run
    if run is not None and run.watch is not None:
        options = [*run.watch.snapshots.epochs(), NOW]
        if len(options) > 1:
            choice = changing_choice(
                replay_col.select_slider,
                "Replay: the network at the end of",
                options,
                key="hs_epoch",
                default=NOW,
                version=len(options),
                format_func=lambda e: "now" if e == NOW else f"epoch {e}",
                help="Watch the classes separate as the network learns (epoch 0 = at init).",
            )
    return int(layer), method, choice


def shown_key(choice: int | str, frames: dict) -> int | str:
    """The frame to show for the slider's ``choice``: itself if its frame is there, else
    the nearest kept epoch (the later of two as near), since the training thread may
    have thinned the snapshots after the slider listed them."""
    if choice in frames:
        return choice
    epochs = [key for key in frames if key != NOW]
    if choice == NOW or not epochs:
        return NOW
    return min(epochs, key=lambda epoch: (abs(epoch - choice), -epoch))


def _model_of(view: ModelView, frame_key: int | str, kept: dict):
    """The network of ``frame_key``: now, or the weights of that epoch in ``kept`` (the
    reading ``frames_for`` drew the frame from, which holds it)."""
    if frame_key == NOW or view.run is None:
        return view.model.copy() if view.run is not None else view.model
    return view.run.watch.snapshots.model_at(frame_key, view.run.model, kept)


def _when(frame_key) -> str:
    return "now" if frame_key == NOW else f"end of epoch {frame_key}"


def _map_and_details(view, frame, coords, images, labels, rows, title, ranges, drawing) -> None:
    ss = st.session_state
    point = clicked_point("hs_map", "_hs_clicked")
    if point is not None and point["customdata"]:
        ss["hs_selected"] = int(point["customdata"][0])
    selected = ss.get("hs_selected")
    if selected is not None and not 0 <= selected < len(labels):
        selected = ss["hs_selected"] = None
    figure = nf.hidden_space_figure(
        coords, labels, frame.predictions, view.class_names, title, ranges, drawing, selected
    )
    left, right = st.columns([3, 1])
    with left:
        clickable_chart(figure, "hs_map", "_hs_clicked", width="stretch")
    with right:
        _details(view, frame, images, labels, rows, selected)
    wrong = int(np.count_nonzero(frame.predictions != labels))
    st.caption(
        f"{len(labels):,} test images, the same ones at every epoch, coloured by their true "
        f"class; crosses are the {wrong} the network gets wrong. Click a point to see it."
        + (" The star is your drawing (Draw page)." if drawing is not None else "")
    )


def _details(view, frame, images, labels, rows, selected) -> None:
    if selected is None:
        st.caption("Click a point to see its image and what the network predicts.")
        return
    names = view.class_names
    probs = frame.probs[selected]
    predicted = int(probs.argmax())
    st.image(digit_image(images[selected], 5), caption=f"test image #{int(rows[selected])}")
    verdict = "right" if predicted == labels[selected] else "wrong"
    st.markdown(
        f"True **{names[labels[selected]]}**, predicted **{names[predicted]}** "
        f"({probs[predicted]:.0%}): {verdict}."
    )


def _replay_note(view: ModelView, n_kept: int) -> None:
    run = view.run
    if run is None:
        st.caption("Replay over epochs comes with a network trained in this session.")
        return
    snapshots = run.watch.snapshots
    if snapshots.thinned:
        epochs = run.trainer.epochs_done
        st.caption(
            f"Replay keeps {n_kept} of the {epochs + 1} epochs (every other one "
            f"dropped as needed) to stay within {mb(snapshots.budget_bytes)} of weights."
        )


# --------------------------------------------------------------------------- t-SNE
def _tsne(view, images, layer, frame_key, model) -> np.ndarray | None:
    """The t-SNE of the frame, computed here on request with a progress bar; None (and a
    button) until asked for. Each stage done is kept: an interrupted run resumes."""
    ss = st.session_state
    run = view.run
    if run is not None and frame_key == NOW and run.active:
        st.info(
            "t-SNE needs the network to hold still: choose an epoch on the replay "
            "slider, or wait until training stops."
        )
        return None
    owner = run.id if run is not None else id(view.model)
    batches = len(run.trainer.history.batch_loss) if run is not None else 0
    key = (owner, layer, frame_key, batches if frame_key == NOW else None)
    jobs = ss.setdefault(TSNE_CACHE, {})
    done = jobs.get(key)
    if done is not None and done[0] == hs.TSNE_STAGES:
        return done[1]
    if done is None and ss.get("_hs_tsne_asked") != key:
        st.info("t-SNE takes a few seconds for 2,000 points: it is computed on request.")
        st.button("Compute t-SNE", key="hs_tsne_go", on_click=_ask, args=(key,), type="primary")
        return None
    for other in [k for k in jobs if k != key]:  # one map at a time
        del jobs[other]
    hidden = hs.hidden_representation(model, images, layer)
    stages = hs.TSNE_STAGES
    bar = st.progress(0.0, text=f"Computing t-SNE of {len(images):,} points…")
    embedding = None
    for stage, embedding in enumerate(
        hs.tsne_stages(hidden, resume=done), start=1 + (done[0] if done else 0)
    ):
        jobs[key] = (stage, embedding)
        bar.progress(stage / stages, text=f"Computing t-SNE: stage {stage} of {stages} done")
    bar.empty()
    return embedding


def _ask(key) -> None:
    st.session_state["_hs_tsne_asked"] = key
