"""Datasets for the dashboard: MNIST loaded once per server, uploads per session."""

from __future__ import annotations

import streamlit as st

from nn_core.data import DataError, Dataset, load_dataset, load_mnist

SUBSET_CHOICES = (2000, 5000, 20000, 0)  # 0 = all training images


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
