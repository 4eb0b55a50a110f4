"""Datasets for the dashboard: MNIST loaded once per server, uploads per session."""

from __future__ import annotations

import math

import streamlit as st
from streamlit import config as streamlit_config
from streamlit.runtime.memory_uploaded_file_manager import MemoryUploadedFileManager
from streamlit.runtime.scriptrunner import get_script_run_ctx

from nn_core.data import (
    UNZIP_FACTOR,
    DataError,
    Dataset,
    IncompleteFilesError,
    load_dataset,
    load_mnist,
)
from nn_core.safe_read import size_text
from ui import hosting
from ui import state as keys
from ui.limits import Limits

UPLOAD_ENV = "DIGITLAB_MAX_UPLOAD_MB"
UPLOADER_GENERATION = "data_upload_generation"  # part of the uploader's key
UPLOAD_WAITING = "data_upload_waiting"  # True while an IDX set waits for its other file
# Kaggle's digit-recognizer train.csv: 42,000 digits, 76,775,041 bytes; ~9 MB gzipped.
KAGGLE_TRAIN_BYTES = 76_775_041
KAGGLE_TRAIN_GZ_BYTES = 9_300_000


def subset_label(n: int) -> str:
    return "all" if not n else f"{n:,}"


@st.cache_resource(show_spinner="Loading MNIST…")
def mnist() -> Dataset:
    """The shipped MNIST, one read-only copy per server process shared by every session."""
    return load_mnist()


def load_upload(files, limits: Limits) -> Dataset:
    """A dataset from uploaded files: one .csv / .npz (raw or .gz), or IDX files.

    Raises
    ------
    DataError
        With a message for the person who uploaded the files; over a size limit it also
        says how a self-hoster raises the limit.
    """
    files = [f for f in (files or []) if f is not None]
    if not files:
        raise DataError("Choose a file to upload: a Kaggle-style .csv, an .npz or IDX files.")
    source = files[0] if len(files) == 1 else files
    try:
        return load_dataset(
            source, max_bytes=limits.max_upload_bytes, max_unzipped_bytes=limits.max_unzipped_bytes
        )
    except DataError as exc:
        if not exc.over_limit:
            raise
        raise type(exc)(f"{exc} {how_to_raise(limits)}", over_limit=True) from exc


def how_to_raise(limits: Limits) -> str:
    """The sentence that tells a self-hoster which setting raises the upload limits."""
    return (
        f"Self-hosting? Raise {UPLOAD_ENV} (now {limits.max_upload_mb:g}; unzipped data may "
        f"take {UNZIP_FACTOR} times as much)."
    )


def fits_note(limits: Limits) -> str:
    """What this server accepts, said with the file most people bring: Kaggle's train.csv."""
    caps = (
        f"files up to {size_text(limits.max_upload_bytes)}, "
        f"{size_text(limits.max_unzipped_bytes)} once unzipped"
    )
    name = f"Kaggle's digit-recognizer train.csv ({size_text(KAGGLE_TRAIN_BYTES)})"
    if limits.max_upload_bytes >= KAGGLE_TRAIN_BYTES:
        return f"{name} fits: {caps}."
    if (
        limits.max_upload_bytes >= KAGGLE_TRAIN_GZ_BYTES
        and limits.max_unzipped_bytes >= KAGGLE_TRAIN_BYTES
    ):
        return f"{name} fits gzipped ({size_text(KAGGLE_TRAIN_GZ_BYTES)} as .csv.gz): {caps}."
    return f"This server takes {caps}: {name} does not fit. {how_to_raise(limits)}"


def sync_streamlit_upload_cap(limits: Limits) -> None:
    """Make Streamlit's own upload limit (``server.maxUploadSize``) DIGITLAB_MAX_UPLOAD_MB.

    Streamlit refuses bigger files itself, before the app sees them, and its upload
    endpoint reads the option on every request; so one setting drives both checks, and
    ``.streamlit/config.toml`` only holds the default.
    """
    megabytes = max(1, math.ceil(limits.max_upload_mb))
    if st.get_option("server.maxUploadSize") != megabytes:
        streamlit_config.set_option("server.maxUploadSize", megabytes, where_defined=UPLOAD_ENV)


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


def uploader_key() -> str:
    """The data uploader's key; it changes to empty the uploader (see :func:`on_upload`)."""
    return f"data_upload_{st.session_state.get(UPLOADER_GENERATION, 0)}"


def _empty_the_uploader(files) -> None:
    """Start a fresh uploader, so that the next files are judged on their own, never with
    these; and free these files' bytes, which Streamlit would otherwise keep until the
    session ends (73 MB for Kaggle's train.csv). The same call Streamlit's own chat input
    makes once it has read a file."""
    ss = st.session_state
    ss[UPLOADER_GENERATION] = ss.get(UPLOADER_GENERATION, 0) + 1
    ctx = get_script_run_ctx()
    manager = getattr(ctx, "uploaded_file_mgr", None)
    if isinstance(manager, MemoryUploadedFileManager):
        for f in files:
            manager.remove_file(session_id=ctx.session_id, file_id=f.file_id)


def on_upload() -> None:
    """The uploader's on_change: load the files, keep the dataset or say what is wrong.

    A set of files that only lacks a member (an IDX image file without its labels) stays
    in the uploader, waiting for the rest; anything else leaves it empty for the next
    upload. Messages of earlier attempts are replaced, never left standing.
    """
    ss = st.session_state
    files = ss.get(uploader_key()) or []
    ss[keys.CONTROL_ERROR] = None  # e.g. "upload a valid data set first": the data changed
    ss[UPLOAD_WAITING] = False
    ss[keys.UPLOAD_ERROR] = None
    if not files:
        return
    try:
        dataset = load_upload(files, keys.get_limits())
    except IncompleteFilesError as exc:
        ss[keys.UPLOAD_ERROR], ss[UPLOAD_WAITING] = str(exc), True
        return
    except (DataError, ValueError) as exc:
        ss[keys.UPLOAD_ERROR] = str(exc)
        _empty_the_uploader(files)
        return
    except Exception as exc:  # last line of defence: an unforeseen file must not break the page
        names = ", ".join(getattr(f, "name", "?") for f in files)
        ss[keys.UPLOAD_ERROR] = (
            f"{names} could not be read ({type(exc).__name__}: {exc}). Upload a Kaggle CSV "
            "(label, pixel0, ...), an .npz with x_train and y_train, or MNIST IDX files."
        )
        _empty_the_uploader(files)
        return
    _empty_the_uploader(files)
    refusal = hosting.reserve_upload(dataset)  # images too large to train on this server
    if refusal:
        ss[keys.UPLOAD_ERROR] = refusal
        return
    ss[keys.UPLOADED_DATA] = dataset


def on_data_source() -> None:
    """The data radio's on_change: earlier messages no longer apply (a hidden uploader
    also loses its files, so nothing waits for a partner file any more)."""
    ss = st.session_state
    ss[keys.CONTROL_ERROR] = ss[keys.UPLOAD_ERROR] = None
    ss[UPLOAD_WAITING] = False


def data_section(limits: Limits) -> None:
    """The sidebar's data choice: built-in MNIST or an upload, and the training subset."""
    ss = st.session_state
    sync_streamlit_upload_cap(limits)
    st.radio(
        "Data",
        ["mnist", "upload"],
        format_func={"mnist": "MNIST (built in)", "upload": "Upload a file"}.get,
        key="data_source",
        horizontal=True,
        on_change=on_data_source,
    )
    if ss.get("data_source") == "upload":
        st.caption(fits_note(limits))
        st.file_uploader(
            "Data set: Kaggle CSV, .npz, or IDX files (each may be .gz)",
            accept_multiple_files=True,
            key=uploader_key(),
            on_change=on_upload,
            help=(
                "A Kaggle-style CSV (label, pixel0..pixel783), an .npz with x_train/y_train "
                "(and x_test/y_test), or the MNIST IDX files (train-images-idx3-ubyte[.gz] "
                "with its labels)."
            ),
        )
        message = ss.get(keys.UPLOAD_ERROR)
        if message:
            (st.info if ss.get(UPLOAD_WAITING) else st.error)(message)
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
