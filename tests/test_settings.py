"""The settings table: what it offers TrainConfig accepts, and check() never overflows."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest

from nn_core import PRESETS, TrainConfig
from nn_core.settings import (
    BY_NAME,
    LAYER_WIDTH,
    SETTINGS,
    check,
    check_hidden,
    parse_hidden,
)


@dataclass(frozen=True)
class Caps:
    max_epochs: int = 500
    max_width: int = 512
    max_layers: int = 4


def offered(setting) -> list:
    """Every value the dashboard can offer for ``setting``: its choices, or its bounds."""
    if setting.choices:
        return list(setting.choices)
    return [setting.kind(v) for v in setting.bounds() if v is not None]


def test_the_table_is_train_config():
    assert [s.name for s in SETTINGS] == list(TrainConfig().to_dict())
    for s in SETTINGS:
        assert s.flag == "--" + s.name.replace("_", "-")


@pytest.mark.parametrize("setting", [s for s in SETTINGS if s.widget and s.kind is not tuple])
def test_train_config_accepts_every_value_the_sidebar_offers(setting):
    base = TrainConfig(val_fraction=0.1)
    for value in offered(setting):
        if setting.name == "val_fraction" and value == 0:
            continue  # valid, but early stopping (off here) would need it above 0
        config = base.replace(**{setting.name: value})
        assert getattr(config, setting.name) == value


@pytest.mark.parametrize("name", ["notebook", "fast", "accurate", "best"])
def test_every_preset_value_is_offered_as_is(name):
    for s in SETTINGS:
        if not s.widget or s.kind is tuple:
            continue
        value = getattr(PRESETS[name], s.name)
        checked = check(s, value, Caps(max_epochs=500))
        assert checked.problem is None and checked.value == value, (name, s.name)


@pytest.mark.parametrize(
    ("raw", "value", "problem"),
    [
        ("7", 7, None),
        (" 7 ", 7, None),
        ("inf", 500, "above this server's cap, 500"),
        ("-inf", 1, "below the minimum, 1"),
        ("1e400", 500, "above this server's cap, 500"),
        ("9" * 5000, 500, "above this server's cap, 500"),
        (10**400, 500, "above this server's cap, 500"),
        (-(10**400), 1, "below the minimum, 1"),
        ("3.6", 4, "not a whole number"),
        ("nan", None, "not a number"),
        ("abc", None, "not a number"),
        ("0x10", None, "not a number"),
        (None, None, "not a number"),
    ],
)
def test_check_parses_without_overflow_and_clamps(raw, value, problem):
    checked = check(BY_NAME["epochs"], raw, Caps())
    assert checked.value == value
    if problem is None:
        assert checked.problem is None
    else:
        assert problem in checked.problem
    assert checked.value is None or isinstance(checked.value, int)


def test_check_snaps_to_choices_and_slider_steps():
    assert check(BY_NAME["lr"], "0.0011").value == pytest.approx(1e-3)
    assert check(BY_NAME["lr"], "1e-9").value == pytest.approx(1e-5)
    assert check(BY_NAME["batch_size"], "100").value == 128
    dropout = check(BY_NAME["dropout"], "0.33")
    assert dropout.value == pytest.approx(0.35) and "steps of 0.05" in dropout.problem
    assert check(BY_NAME["momentum"], 0.9) == check(BY_NAME["momentum"], "0.9")
    assert check(BY_NAME["momentum"], 0.9).problem is None
    assert isinstance(check(BY_NAME["augment_rotation"], "3").value, float)
    assert check(BY_NAME["activation"], "tanh").value == "tanh"
    assert check(BY_NAME["activation"], "evil").value is None


def test_caps_lower_the_upper_bound_only_where_named():
    assert check(BY_NAME["epochs"], 100, Caps(max_epochs=20)).value == 20
    assert check(BY_NAME["epochs"], 100).value == 100  # no server caps: the table's bound
    assert check(BY_NAME["seed"], 2**40, Caps()).value == 2**31 - 1
    assert check(LAYER_WIDTH, 4000, Caps(max_width=100)).value == 100


def test_hidden_layers():
    for text in ("128,64", "128-64", " 128 64 "):
        assert parse_hidden(text) == (128, 64)
    assert parse_hidden("none") == parse_hidden("0") == parse_hidden("") == ()
    for bad in ("12,abc", "-5", "1.5", "²"):
        with pytest.raises(ValueError):
            parse_hidden(bad)
    assert check_hidden("128-64", Caps()).value == (128, 64)
    five = check_hidden("8-8-8-8-8", Caps(max_layers=3))
    assert five.value == (8, 8, 8) and "5 layers, over the 3 offered" in five.problem
    huge = check_hidden("9" * 400, Caps())
    assert huge.value == (512,) and "above this server's cap, 512" in huge.problem
    assert check_hidden("10-x", Caps()).value is None
    assert check_hidden((0, 64), Caps()).value == (1, 64)


def test_check_never_raises_on_hostile_text():
    """Every setting, with or without bounds (the CLI-only ones have none)."""
    samples = ["inf", "-inf", "nan", "1e999", "9" * 10_000, "", " ", "\x00", "1_000", "٣"]
    for s in SETTINGS:
        for raw in samples:
            checked = check_hidden(raw, Caps()) if s.kind is tuple else check(s, raw, Caps())
            if isinstance(checked.value, float):
                assert math.isfinite(checked.value), (s.name, raw)
