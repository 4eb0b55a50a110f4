"""Datasets for the dashboard: MNIST loaded once per server, uploads per session."""

from __future__ import annotations

import streamlit as st

from nn_core.data import DataError, Dataset, load_dataset, load_mnist
from ui import hosting
from ui import state as keys
from ui.limits import Limits


def subset_label(n: int) -> str:
    return "all" if not n else f"{n:,}"


@st.cache_resource(show_spinner="Loading MNIST…")
def mnist() -> Dataset:
    """The shipped MNIST, one read-only copy per server process shared by every session."""
    return load_mnist()


def load_upload(files, max_bytes: int) -> Dataset:
    """A dataset from uploaded files: one .csv / .npz, or an IDX pair (or four files).

    Raises
    ------
    DataError
        With a message for the person who uploaded the files.
    """
    files = [f for f in (files or []) if f is not None]
    if not files:
        raise DataError("Choose a file to upload: a Kaggle-style .csv, an .npz or IDX files.")
    for f in files:
        size = getattr(f, "size", None)
        if size is not None and size > max_bytes:
            raise DataError(
                f"{f.name} is {size / 2**20:.1f} MB; this server accepts files up to "
                f"{max_bytes / 2**20:.0f} MB (DIGITLAB_MAX_UPLOAD_MB)."
            )
    source = files[0] if len(files) == 1 else files
    return load_dataset(source, max_bytes=max_bytes)


def training_subset(dataset: Dataset, n: int, seed: int) -> Dataset:
    """The first ``n`` (stratified) training images; 0 or too many means all of them."""
    if not n or n >= len(dataset.y_train):
        return dataset
    return dataset.subset(int(n), seed=int(seed))


def current_dataset():
    """The dataset chosen in the sidebar (MNIST, or this session's upload), or None."""
    ss = st.session_state
    if ss.get("data_source") == "upload":
        return ss.get(keys.UPLOADED_DATA)
    return mnist()


def on_upload() -> None:
    ss = st.session_state
    files = ss.get("data_upload") or []
    if not files:
        ss[keys.UPLOAD_ERROR] = None
        return
    try:
        dataset = load_upload(files, keys.get_limits().max_upload_bytes)
    except (DataError, ValueError) as exc:
        ss[keys.UPLOAD_ERROR] = str(exc)
        return
    except Exception as exc:  # last line of defence: an unforeseen file must not break the page
        names = ", ".join(getattr(f, "name", "?") for f in files)
        ss[keys.UPLOAD_ERROR] = (
            f"{names} could not be read ({type(exc).__name__}: {exc}). Upload a Kaggle CSV "
            "(label, pixel0, ...), an .npz with x_train and y_train, or MNIST IDX files."
        )
        return
    refusal = hosting.reserve_upload(dataset)  # images too large to train on this server
    if refusal:
        ss[keys.UPLOAD_ERROR] = refusal
        return
    ss[keys.UPLOADED_DATA] = dataset
    ss[keys.UPLOAD_ERROR] = None


def data_section(limits: Limits) -> None:
    """The sidebar's data choice: built-in MNIST or an upload, and the training subset."""
    ss = st.session_state
    st.radio(
        "Data",
        ["mnist", "upload"],
        format_func={"mnist": "MNIST (built in)", "upload": "Upload a file"}.get,
        key="data_source",
        horizontal=True,
    )
    if ss.get("data_source") == "upload":
        st.file_uploader(
            "Data set: Kaggle CSV, .npz, or IDX files",
            accept_multiple_files=True,
            key="data_upload",
            on_change=on_upload,
            help=(
                "A Kaggle-style CSV (label, pixel0..pixel783), an .npz with x_train/y_train "
                "(and x_test/y_test), or the MNIST IDX files (train-images-idx3-ubyte[.gz] "
                f"with its labels). Up to {limits.max_upload_mb:g} MB."
            ),
        )
        if ss.get(keys.UPLOAD_ERROR):
            st.error(ss[keys.UPLOAD_ERROR])
        dataset = ss.get(keys.UPLOADED_DATA)
        if dataset is not None:
            st.caption(
                f"Using **{dataset.name}**: {len(dataset.y_train):,} training and "
                f"{len(dataset.y_test):,} test images, {dataset.n_classes} classes."
            )
    st.selectbox(
        "Training images",
        keys.SUBSET_CHOICES,
        key="cfg_subset",
        format_func=subset_label,
        help="A stratified subset for quick experiments; 'all' uses the whole training set.",
    )
