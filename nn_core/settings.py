"""Every training setting once: its bounds or choices, share-link key, command-line flag
and help, and the widget that edits it.

The command line (``nn_core.cli``), the dashboard's sidebar, its share links and its
session defaults all read ``SETTINGS``: adding a setting is a row here and a place in the
sidebar's layout. ``TrainConfig`` still validates what it is built from; the bounds here
are what the dashboard offers, which a shared server may lower further with its caps
(``cap`` names an attribute of ``ui.limits.Limits``). Nothing here imports Streamlit.

``check`` turns any raw value (a widget's number, a share link's text, a preset's field)
into the value the dashboard will use, and says why when that differs from what was given.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from nn_core.activations import ACTIVATIONS
from nn_core.config import MAX_LAYER_WIDTH
from nn_core.init import INITS
from nn_core.optimizers import OPTIMIZERS, SCHEDULES

MAX_HIDDEN_LAYERS = 4  # hidden layers the dashboard offers (a server may cap fewer)
LAYER_KEY = "cfg_h{}"  # session-state key of hidden layer i's width
NEW_LAYER_WIDTH = 32  # width of a layer added with the "Hidden layers" box


def general(value: object) -> str:
    """``1e-05``, ``0.001``, ``3``: numbers as people write them (other values as str)."""
    return f"{value:g}" if isinstance(value, float) else str(value)


def batch_label(size: int) -> str:
    return "full batch" if size == 0 else str(size)


def subset_label(n: int) -> str:
    return "all" if not n else f"{n:,}"


@dataclass(frozen=True)
class Setting:
    """One setting of a training run.

    Attributes
    ----------
    name : str
        The ``TrainConfig`` field (or ``train_subset``); the flag is ``--name-with-dashes``.
    label : str
        The widget's label.
    help : str
        The flag's ``--help`` text and the widget's tooltip.
    kind : type
        ``int``, ``float``, ``str``, ``bool``, or ``tuple`` for the hidden-layer widths.
    widget : str
        ``"select"``, ``"select_slider"``, ``"slider"``, ``"number"``, ``"layers"`` (the
        number of hidden layers, then one width box each), or ``""`` when only the command
        line offers the setting.
    key : str
        The widget's session-state key.
    url : str
        The key in share links ("" when links do not carry the setting).
    choices : tuple
        For ``str``, the valid values; for numbers, the values the widget offers (any
        other value is moved to the nearest of them).
    low, high : float or None
        The bounds the dashboard offers, inclusive (for ``tuple``, of each width).
    step : float or None
        The widget's increment; a slider's values stay on this grid.
    cap : str
        A ``ui.limits.Limits`` attribute that lowers ``high`` on a shared server.
    fmt : callable
        A value as the widget shows it.
    """

    name: str
    label: str
    help: str
    kind: type
    widget: str = ""
    key: str = ""
    url: str = ""
    choices: tuple = ()
    low: float | None = None
    high: float | None = None
    step: float | None = None
    cap: str = ""
    fmt: Callable[[object], str] = general

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def bounds(self, caps: object | None = None) -> tuple[float | None, float | None]:
        """``(low, high)`` of a number, ``high`` lowered by the server cap in ``caps``."""
        low, high = self.low, self.high
        if self.choices and self.kind is not str:
            low, high = min(self.choices), max(self.choices)
        if self.cap and caps is not None:
            cap = getattr(caps, self.cap)
            high = cap if high is None else min(high, cap)
        return low, high


LR_CHOICES = (1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 2e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 0.5, 1.0, 3.0)

SETTINGS: tuple[Setting, ...] = (
    Setting(
        "hidden", "Hidden layers", "hidden layer widths, e.g. 128,64; none (or 0) for "
        "softmax regression", tuple,
        widget="layers", key="cfg_layers", url="h",
    ),
    Setting(
        "activation", "Activation", "activation of the hidden layers", str,
        widget="select", key="cfg_activation", url="a", choices=tuple(ACTIVATIONS),
    ),
    Setting(
        "init", "Initialisation", "initial weights: he, glorot, or the notebook's uniform "
        "[0, 1)", str,
        widget="select", key="cfg_init", url="i", choices=tuple(INITS),
    ),
    Setting(
        "optimizer", "Optimizer", "gd: plain gradient descent (the notebook); sgd: with "
        "momentum; adam", str,
        widget="select", key="cfg_optimizer", url="o", choices=tuple(OPTIMIZERS),
    ),
    Setting(
        "lr", "Learning rate", "learning rate (step size)", float,
        widget="select_slider", key="cfg_lr", url="lr", choices=LR_CHOICES,
    ),
    Setting(
        "momentum", "Momentum (sgd)", "momentum of sgd", float,
        widget="slider", key="cfg_momentum", url="m", low=0.0, high=0.99, step=0.01,
    ),
    Setting("nesterov", "Nesterov momentum", "Nesterov momentum (sgd)", bool),
    Setting(
        "schedule", "Schedule", "learning-rate schedule", str,
        widget="select", key="cfg_schedule", url="s", choices=tuple(SCHEDULES),
    ),
    Setting("step_epochs", "Step every", "epochs between steps of the step schedule", int),
    Setting("gamma", "Step factor", "factor of the step schedule, in (0, 1]", float),
    Setting(
        "batch_size", "Batch size", "images per step; 0 = full batch", int,
        widget="select", key="cfg_batch", url="b", choices=(0, 16, 32, 64, 128, 256, 512, 1024),
        fmt=batch_label,
    ),
    Setting(
        "epochs", "Epochs", "passes over the training images", int,
        widget="number", key="cfg_epochs", url="e", low=1, high=100_000, step=1,
        cap="max_epochs",
    ),
    Setting(
        "l2", "L2", "L2 weight penalty", float,
        widget="select_slider", key="cfg_l2", url="l2", choices=(0.0, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2),
    ),
    Setting(
        "dropout", "Dropout", "dropout rate of hidden units, in [0, 1)", float,
        widget="slider", key="cfg_dropout", url="d", low=0.0, high=0.8, step=0.05,
    ),
    Setting(
        "val_fraction", "Validation fraction", "share of the training images held out for "
        "validation", float,
        widget="slider", key="cfg_val", url="v", low=0.0, high=0.5, step=0.05,
    ),
    Setting(
        "val_every", "Validate every (epochs)", "validate after every N-th epoch and after the "
        "last (with full-batch training an epoch is one step, and scoring each time can cost "
        "as much as the step)", int,
        widget="number", key="cfg_val_every", url="ve", low=1, high=100, step=1,
    ),
    Setting(
        "seed", "Seed", "seed of the initial weights, the split and the batch order", int,
        widget="number", key="cfg_seed", url="seed", low=0, high=2**31 - 1, step=1,
    ),
    Setting(
        "early_stopping", "Early stopping", "patience in epochs on the validation loss "
        "(0 = off)", int,
    ),
    Setting(
        "augment_shift", "Augment: random shift (pixels)", "move each training image by up "
        "to this many pixels, a new draw per batch", int,
        widget="slider", key="cfg_shift", url="sh", low=0, high=4, step=1,
    ),
    Setting(
        "augment_rotation", "Augment: random rotation (degrees)", "turn each training image "
        "by up to this angle, either way", float,
        widget="slider", key="cfg_rotation", url="rot", low=0.0, high=20.0, step=1.0,
    ),
    Setting(
        "augment_elastic", "Augment: elastic distortion (alpha)", "bend each training image "
        "by a smooth random displacement field of this scale in pixels (Simard et al. "
        "2003); 30-40 distorts like handwriting, 0 = off", float,
        widget="slider", key="cfg_elastic", url="el", low=0.0, high=60.0, step=2.0,
    ),
    Setting(
        "augment_elastic_sigma", "Elastic smoothness (sigma)", "smoothing of the elastic "
        "displacement fields, in pixels (1 to 20): larger is smoother", float,
    ),
    Setting(
        "dtype", "Float type", "float type of the weights and the arithmetic", str,
        choices=("float32", "float64"),
    ),
)  # fmt: skip

BY_NAME: dict[str, Setting] = {s.name: s for s in SETTINGS}

# Not a TrainConfig field: how many training images to use (0 = all).
TRAIN_SUBSET = Setting(
    "train_subset", "Training images", "train on a stratified subset of N images (0 = all)",
    int,
    widget="select", key="cfg_subset", url="n", choices=(1000, 2000, 5000, 20000, 0),
    fmt=subset_label,
)  # fmt: skip

# The two kinds of box the "layers" widget of ``hidden`` is made of.
HIDDEN_LAYERS = Setting(
    "layers", "Hidden layers", "0 is softmax regression; add layers for a deeper network",
    int,
    widget="number", key="cfg_layers", low=0, high=MAX_HIDDEN_LAYERS, step=1, cap="max_layers",
)  # fmt: skip
LAYER_WIDTH = Setting(
    "width", "Units in hidden layer", "units (neurons) in this hidden layer", int,
    widget="number", low=1, high=MAX_LAYER_WIDTH, step=8, cap="max_width",
)  # fmt: skip


# --------------------------------------------------------------------- checking values
@dataclass(frozen=True)
class Checked:
    """What ``check`` made of a raw value.

    ``value`` is None when nothing usable was given (keep the current value); ``problem``
    says, for a person, why the value used differs from the one given (None when it
    does not).
    """

    value: object
    problem: str | None = None


def check(setting: Setting, raw: object, caps: object | None = None) -> Checked:
    """The value ``setting`` takes from ``raw`` (text or number), within its bounds.

    Numbers are parsed without overflow (``inf``, ``1e400`` and 400-digit integers are
    numbers beyond the bounds), clamped to the bounds (``caps`` lowers the upper one),
    then moved to the nearest offered choice or slider step. NaN and text that is no
    number are unusable. Hidden-layer widths use ``check_hidden``.
    """
    if setting.kind is tuple:
        raise TypeError("hidden layer widths are checked by check_hidden")
    if setting.kind is str:
        text = str(raw).strip()
        if text in setting.choices:
            return Checked(text)
        return Checked(None, f"is not one of {', '.join(map(str, setting.choices))}")
    if setting.kind is bool:
        text = str(raw).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return Checked(True)
        if text in ("0", "false", "no", "off"):
            return Checked(False)
        return Checked(None, "is not true or false")
    number = _number(raw)
    if number is None or math.isnan(number):
        return Checked(None, "is not a number")
    low, high = setting.bounds(caps)
    if math.isinf(number) and (high if number > 0 else low) is None:
        return Checked(None, "is not a finite number")  # no bound to clamp it to
    value, problem = _within(setting, number, caps)
    return Checked(setting.kind(value), problem)


def check_hidden(raw: object, caps: object | None = None) -> Checked:
    """Hidden-layer widths from ``(128, 64)``, ``"128-64"`` or ``"128,64"``.

    At most ``HIDDEN_LAYERS``' bound of layers, each width within ``LAYER_WIDTH``'s.
    """
    try:
        sizes = list(raw) if isinstance(raw, tuple | list) else list(parse_hidden(str(raw)))
    except ValueError:
        return Checked(None, "is not a list of layer widths such as 128-64")
    problems = []
    most = int(HIDDEN_LAYERS.bounds(caps)[1])
    if len(sizes) > most:
        problems.append(f"has {len(sizes)} layers, over the {most} offered")
        sizes = sizes[:most]
    widths = []
    for size in sizes:
        checked = check(LAYER_WIDTH, size, caps)
        if checked.value is None:
            return Checked(None, "is not a list of layer widths such as 128-64")
        widths.append(checked.value)
        if checked.problem:
            problems.append(f"width {size} {checked.problem}")
    return Checked(tuple(widths), "; ".join(problems) or None)


def parse_hidden(text: str) -> tuple[int, ...]:
    """``"128,64"`` or ``"128-64"`` -> (128, 64); ``""``, ``"none"`` or ``"0"`` -> ().

    Raises
    ------
    ValueError
        For anything else, e.g. ``"12,abc"``.
    """
    cleaned = text.strip().lower()
    if cleaned in ("", "none", "0", "[]", "()"):
        return ()
    for sep in ("-", " ", ";"):
        cleaned = cleaned.replace(sep, ",")
    parts = [p.strip() for p in cleaned.split(",") if p.strip()]
    if cleaned.startswith(",") or not all(p.isdigit() for p in parts):
        raise ValueError(f"layer widths like 128,64 (or none), got {text!r}")
    return tuple(int(p) for p in parts)


def _number(raw: object) -> float | None:
    """``raw`` as a float without raising: huge integers become +-inf, junk None."""
    if isinstance(raw, bool):
        return float(raw)
    if isinstance(raw, int):
        try:
            return float(raw)
        except OverflowError:
            return math.inf if raw > 0 else -math.inf
    if isinstance(raw, float):
        return raw
    try:
        return float(str(raw).strip())
    except (TypeError, ValueError, OverflowError):
        return None


def _within(setting: Setting, number: float, caps: object | None) -> tuple[float, str | None]:
    """Clamp ``number`` to the setting's bounds, then snap it to a choice or a step."""
    low, high = setting.bounds(caps)
    value, problem = number, None
    if low is not None and value < low:
        value, problem = low, f"is below the minimum, {setting.fmt(low)}"
    elif high is not None and value > high:
        capped = setting.cap and caps is not None and high == getattr(caps, setting.cap)
        where = "this server's cap" if capped else "the maximum"
        value, problem = high, f"is above {where}, {setting.fmt(high)}"
    if setting.choices:
        nearest = min(setting.choices, key=lambda c: abs(c - value))
        if nearest != value and problem is None:
            problem = "is not offered; the nearest choice is used"
        value = nearest
    elif setting.widget == "slider" and setting.step:
        on_grid = round(low + round((value - low) / setting.step) * setting.step, 10)
        if not math.isclose(on_grid, value, abs_tol=1e-9) and problem is None:
            problem = f"is not on the slider's steps of {setting.fmt(setting.step)}"
        value = on_grid
    if setting.kind is int and value != round(value):
        problem = problem or "is not a whole number"
        value = round(value)
    return value, problem
