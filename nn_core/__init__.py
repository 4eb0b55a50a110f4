"""digitlab's neural network from scratch: NumPy only, never Streamlit.

The pieces, one module each: ``activations``, ``losses``, ``init``, ``network`` (the MLP),
``optimizers`` (and learning-rate schedules), ``config`` (TrainConfig and presets),
``training`` (Trainer), ``augment``, ``metrics``, ``preprocess`` (canvas drawings),
``io`` (safe save/load), ``data`` (loaders and the shipped MNIST), ``cli``.
"""

from nn_core.config import PRESETS, TrainConfig
from nn_core.metrics import accuracy, confusion_matrix, misclassified, per_class_scores
from nn_core.network import MLP
from nn_core.training import Callbacks, History, Trainer

__all__ = [
    "MLP",
    "PRESETS",
    "Callbacks",
    "History",
    "TrainConfig",
    "Trainer",
    "accuracy",
    "confusion_matrix",
    "misclassified",
    "per_class_scores",
]
