"""The model a page shows (the run, an uploaded model or the starter) and its evaluation."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import streamlit as st

from nn_core.io import LoadedModel, ModelFileError, load_model
from ui import state as keys
from ui.data import current_dataset, mnist
from ui.runner import TrainingRun, evaluate_model

STARTER_PATH = Path(__file__).resolve().parent.parent / "assets" / "starter_model.npz"


@dataclass
class ModelView:
    """A network to show, where it came from, and the data to judge it on."""

    model: object  # nn_core.MLP (a live one while a run trains)
    class_names: tuple[str, ...]
    image_shape: tuple[int, int] | None
    label: str
    kind: str  # "run" | "uploaded" | "starter"
    run: TrainingRun | None = None
    loaded: LoadedModel | None = None


@st.cache_resource(show_spinner=False)
def starter_model() -> LoadedModel | None:
    """The small model shipped with the app (assets/starter_model.npz), or None."""
    try:
        return load_model(STARTER_PATH)
    except (ModelFileError, OSError):
        return None


def current_model(include_starter: bool = True) -> ModelView | None:
    """This session's trained model, else its uploaded model, else the shipped starter."""
    ss = st.session_state
    run = ss.get(keys.RUN)
    if run is not None:
        ds = run.dataset
        return ModelView(
            run.model,
            tuple(ds.class_names),
            ds.image_shape,
            f"the network trained in this session ({keys.architecture_label(run.model.sizes)})",
            "run",
            run=run,
        )
    loaded = ss.get(keys.UPLOADED_MODEL)
    if loaded is not None:
        return _from_loaded(loaded, "the uploaded model", "uploaded")
    if include_starter:
        starter = starter_model()
        if starter is not None:
            return _from_loaded(starter, "the starter model shipped with the app", "starter")
    return None


def _from_loaded(loaded: LoadedModel, label: str, kind: str) -> ModelView:
    sizes = keys.architecture_label(loaded.model.sizes)
    shape = tuple(loaded.image_shape) if loaded.image_shape else _square(loaded.model.sizes[0])
    return ModelView(
        loaded.model, tuple(loaded.class_names), shape, f"{label} ({sizes})", kind, loaded=loaded
    )


def _square(n: int) -> tuple[int, int] | None:
    side = math.isqrt(n)
    return (side, side) if side * side == n else None


def evaluation(view: ModelView) -> tuple[object, dict | None, str]:
    """The data set ``view`` is judged on, its test-set evaluation, and what to tell.

    Returns
    -------
    dataset : nn_core.data.Dataset
        The run's own data; else the data chosen in the sidebar; MNIST when the sidebar
        asks for an upload that is missing or could not be read.
    result : dict or None
        ``nn_core.metrics.evaluate``'s dict; None when the model does not fit ``dataset``.
    message : str
        Empty, a note on which data is shown instead of the chosen one (with ``result``),
        or why the model does not fit (without).
    """
    if view.run is not None:
        return view.run.dataset, view.run.evaluation(), ""
    dataset, note = current_dataset(), ""
    if dataset is None:  # "Upload a file" is chosen, with no usable upload
        dataset = mnist()
        problem = (
            "The uploaded data set could not be read"
            if st.session_state.get(keys.UPLOAD_ERROR)
            else "No data set is uploaded yet"
        )
        note = f"{problem}, so this is {view.label} on MNIST's test set."
    misfit = _misfit(view, dataset)
    if misfit:
        return dataset, None, misfit
    cache = st.session_state.setdefault("_eval_cache", {})
    key = (id(view.model), id(dataset))
    if key not in cache:
        cache.clear()
        cache[key] = evaluate_model(
            view.model, dataset.x_test, dataset.y_test, view.model.sizes[-1]
        )
    return dataset, cache[key], note


def _misfit(view: ModelView, dataset) -> str:
    """Why ``view``'s network cannot score ``dataset`` (its inputs or classes), or ""."""
    n_inputs, n_outputs = view.model.sizes[0], view.model.sizes[-1]
    if dataset.n_features == n_inputs and dataset.n_classes <= n_outputs:
        return ""
    height, width = dataset.image_shape
    return (
        f"{view.label[0].upper()}{view.label[1:]} takes {n_inputs}-pixel images and "
        f"{n_outputs} classes; {dataset.name} has {height}x{width} images "
        f"({dataset.n_features} pixels) and {dataset.n_classes} classes. Choose the data it "
        "was trained on in the sidebar, or train a network on this data (**Start**)."
    )


def evaluated_model_or_stop() -> tuple[ModelView, object, dict]:
    """The page's model, its data set and its test-set evaluation.

    Stops the page with a message when there is no model, or when the model does not fit
    the data set.
    """
    view = current_model()
    if view is None:
        no_model_message()
        st.stop()
    model_caption(view)
    dataset, result, message = evaluation(view)
    if result is None:
        st.warning(message)
        st.stop()
    if message:
        st.info(message)
    return view, dataset, result


def no_model_message() -> None:
    st.info(
        "No network yet. Press **Start** in the sidebar to train one, or upload a model file "
        "on the **Models** page."
    )


def model_caption(view: ModelView) -> None:
    if view.kind == "run":
        run = view.run
        p = run.progress()  # the sidebar's epoch count, so the two never disagree
        status = "training…" if run.active else ("finished" if run.finished else "paused")
        status = "diverged" if p["diverged"] else status
        st.caption(f"Showing {view.label}: epoch {p['epoch']} of {p['target_epochs']}, {status}")
    else:
        st.caption(f"Showing {view.label}.")
