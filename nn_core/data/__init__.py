"""Loading labelled digit images: the shipped MNIST, Kaggle CSV, IDX and .npz files.

Every loader returns arrays of uint8 images (N, H, W) with H == W, or a read-only
:class:`Dataset`, and raises :class:`DataError` with a message for a person on bad input.
"""

from nn_core.data.dataset import Dataset
from nn_core.data.errors import DataError, IncompleteFilesError
from nn_core.data.idx import load_idx_files, load_idx_folder, load_idx_images, load_idx_labels
from nn_core.data.kaggle_csv import load_kaggle_csv, load_unlabelled_csv
from nn_core.data.load import load_dataset
from nn_core.data.mnist import MNIST_PATH, MNIST_SHA256, load_mnist
from nn_core.data.npz import load_npz
from nn_core.data.split import stratified_split
from nn_core.data.validate import DEFAULT_MAX_BYTES, UNZIP_FACTOR

__all__ = [
    "DEFAULT_MAX_BYTES",
    "MNIST_PATH",
    "MNIST_SHA256",
    "UNZIP_FACTOR",
    "DataError",
    "Dataset",
    "IncompleteFilesError",
    "load_dataset",
    "load_idx_files",
    "load_idx_folder",
    "load_idx_images",
    "load_idx_labels",
    "load_kaggle_csv",
    "load_mnist",
    "load_npz",
    "load_unlabelled_csv",
    "stratified_split",
]
