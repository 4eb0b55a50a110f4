"""Caps for a shared server, read from environment variables with hosted-demo defaults.

A self-hosted user raises them, e.g. ``DIGITLAB_MAX_EPOCHS=200 streamlit run
streamlit_app.py``. Nothing here imports Streamlit.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from nn_core.data import UNZIP_FACTOR

ENV_DEFAULTS: dict[str, float] = {
    # Epochs per run. High enough for the notebook preset (500 full-batch iterations);
    # the time cap below is what really bounds the work of one run.
    "DIGITLAB_MAX_EPOCHS": 500,
    "DIGITLAB_MAX_WIDTH": 512,  # units per hidden layer
    "DIGITLAB_MAX_LAYERS": 4,  # hidden layers
    "DIGITLAB_MAX_TRAIN_SECONDS": 300,  # training time per Start / Continue
    # Each uploaded file (data set or model). 100 fits Kaggle's train.csv (73 MB); this
    # also sets Streamlit's own server.maxUploadSize (ui.data.sync_streamlit_upload_cap).
    # Unzipped content may take UNZIP_FACTOR times as much.
    "DIGITLAB_MAX_UPLOAD_MB": 100,
    "DIGITLAB_MAX_CONCURRENT": 2,  # trainings running at once on the server
    # BLAS threads per matrix product. 0: follow the trainings (ui.blas_threads): all
    # cores for one training alone, shared when more run, one when none does or a
    # training finds one faster (two-thread products slow down many times over as soon
    # as a core is busy). A positive count is used whatever runs.
    "DIGITLAB_BLAS_THREADS": 0,
    "DIGITLAB_MAX_QUEUE": 4,  # trainings waiting for a slot; more are refused politely
    # Memory: what one session may hold (its run, uploads, model), and all sessions
    # together; the server itself (Streamlit, the shared MNIST) needs ~250 MB on top.
    "DIGITLAB_MAX_SESSION_MB": 300,
    "DIGITLAB_MAX_SERVER_MB": 700,
    # A run whose tab has had no connection this long is stopped and frees its slot.
    "DIGITLAB_SESSION_GRACE_SECONDS": 15,
    # Scheduling priority of training threads (Linux nice, 1-19): the server's own threads
    # (pages, the event loop) run first, trainings take the CPU time left.
    "DIGITLAB_TRAINING_NICE": 10,
    "DIGITLAB_MAX_PERSONAL_SAMPLES": 500,  # My digits: drawings kept per session (~20 kB each)
}


@dataclass(frozen=True)
class Limits:
    max_epochs: int
    max_width: int
    max_layers: int
    max_train_seconds: float
    max_upload_mb: float
    max_concurrent: int
    blas_threads: int  # 0: follow the trainings (ui.blas_threads)
    max_queue: int = 4
    max_session_mb: float = 300
    max_server_mb: float = 700
    session_grace_seconds: float = 15
    training_nice: int = 10
    max_personal_samples: int = 500

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    @property
    def max_unzipped_bytes(self) -> int:
        """What an upload may take once decompressed (a .gz file, or an .npz's arrays)."""
        return UNZIP_FACTOR * self.max_upload_bytes

    @property
    def max_session_bytes(self) -> int:
        return int(self.max_session_mb * 1024 * 1024)

    @property
    def max_server_bytes(self) -> int:
        return int(self.max_server_mb * 1024 * 1024)


# Where 0 means something (no lower priority for trainings), not "unset".
ZERO_ALLOWED = frozenset({"DIGITLAB_TRAINING_NICE"})


def _read(name: str, environ: dict[str, str]) -> float:
    default = ENV_DEFAULTS[name]
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        return default
    return value if value > 0 or (value == 0 and name in ZERO_ALLOWED) else default


def get_limits(environ: dict[str, str] | None = None) -> Limits:
    """The caps now in force (invalid or non-positive values fall back to the default)."""
    env = dict(os.environ if environ is None else environ)
    return Limits(
        max_epochs=int(_read("DIGITLAB_MAX_EPOCHS", env)),
        max_width=int(_read("DIGITLAB_MAX_WIDTH", env)),
        max_layers=int(_read("DIGITLAB_MAX_LAYERS", env)),
        max_train_seconds=float(_read("DIGITLAB_MAX_TRAIN_SECONDS", env)),
        max_upload_mb=float(_read("DIGITLAB_MAX_UPLOAD_MB", env)),
        max_concurrent=max(1, int(_read("DIGITLAB_MAX_CONCURRENT", env))),
        blas_threads=max(0, int(_read("DIGITLAB_BLAS_THREADS", env))),
        max_queue=int(_read("DIGITLAB_MAX_QUEUE", env)),
        max_session_mb=float(_read("DIGITLAB_MAX_SESSION_MB", env)),
        max_server_mb=float(_read("DIGITLAB_MAX_SERVER_MB", env)),
        session_grace_seconds=float(_read("DIGITLAB_SESSION_GRACE_SECONDS", env)),
        training_nice=min(19, int(_read("DIGITLAB_TRAINING_NICE", env))),
        max_personal_samples=int(_read("DIGITLAB_MAX_PERSONAL_SAMPLES", env)),
    )
