"""Model files: the bytes to download, and the upload widget (shared by Models and Draw)."""

from __future__ import annotations

import io
import json

import streamlit as st

from nn_core.io import ModelFileError, jsonable, load_model, save_model
from ui import hosting
from ui import state as keys
from ui.limits import get_limits


def model_bytes(run) -> bytes:
    """The run's current network as a digitlab ``.npz`` (saved from a copy)."""
    buffer = io.BytesIO()
    training = {
        **run.trainer.summary(),
        "config": run.config.to_dict(),
        "data": run.settings.get("data"),
    }
    save_model(
        buffer,
        run.model.copy(),
        class_names=list(run.dataset.class_names),
        training=training,
        image_shape=run.dataset.image_shape,
    )
    return buffer.getvalue()


def metrics_json(run) -> str:
    """Settings, history and the test-set results of a run, as JSON."""
    result = run.evaluation()
    document = {
        "settings": run.settings,
        "summary": run.trainer.summary(),
        "history": run.trainer.history.to_dict(),
        "test": {
            "source": run.dataset.test_source,
            "accuracy": result["accuracy"],
            "confusion_matrix": result["confusion"],
            "per_class": {k: v for k, v in result["scores"].items()},
            "class_names": list(run.dataset.class_names),
        },
    }
    return json.dumps(jsonable(document), indent=2)


MODEL_NAME = "uploaded_model_name"  # the file the uploaded model came from


def _on_model_upload(key: str) -> None:
    """Load the file now in the uploader ``key``; a message only ever names that file."""
    ss = st.session_state
    file = ss.get(key)
    ss[keys.MODEL_ERROR] = None  # whatever was said was about the file that has just gone
    if file is None:
        return
    try:
        loaded = load_model(  # refused from its declared sizes if it would not fit the caps
            file, max_bytes=get_limits().max_upload_bytes, check_memory=hosting.check_model_memory
        )
    except ModelFileError as exc:
        ss[keys.MODEL_ERROR] = (key, str(exc))
        return
    except Exception as exc:  # last line of defence: an unforeseen file must not break the page
        ss[keys.MODEL_ERROR] = (
            key,
            f"{getattr(file, 'name', 'This file')} could not be read as a model "
            f"({type(exc).__name__}: {exc}). Upload a .npz saved by digitlab.",
        )
        return
    ss[keys.UPLOADED_MODEL] = loaded
    ss[MODEL_NAME] = getattr(file, "name", "the uploaded file")


def upload_model_widget(key: str = "model_upload") -> None:
    """A model-file uploader; a bad file shows its message and changes nothing else.

    The error shows beside the uploader that holds the bad file, and only while it does
    (``keys.MODEL_ERROR`` is ``(uploader key, message)`` or None).
    """
    st.file_uploader(
        "Model file (.npz saved by digitlab)",
        type=["npz"],
        key=key,
        on_change=_on_model_upload,
        args=(key,),
    )
    ss = st.session_state
    error = ss.get(keys.MODEL_ERROR)
    failed = bool(error) and error[0] == key and ss.get(key) is not None
    if failed:
        st.error(error[1])
    loaded = ss.get(keys.UPLOADED_MODEL)
    if loaded is not None:
        sizes = keys.architecture_label(loaded.model.sizes)
        name = ss.get(MODEL_NAME, "the uploaded file")
        st.caption(
            f"{'Still using' if failed else 'Using'} the model from {name}: {sizes}, "
            f"classes {', '.join(loaded.class_names)}."
        )
