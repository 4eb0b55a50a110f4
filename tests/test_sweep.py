import csv
import json
import os
from types import SimpleNamespace

import numpy as np
import pytest

from nn_core.cli import main as cli_main
from nn_core.config import TrainConfig
from nn_core.data.dataset import build_dataset
from nn_core.run_record import import_run_files
from nn_core.sweep import (
    DEFAULT_MAX_RUNS,
    Axis,
    Grid,
    GridError,
    parse_grid,
    parse_seeds,
    plan_sweep,
    run_sweep,
    train_run,
)
from nn_core.training import Trainer
from tests.synthetic import bar_images


@pytest.fixture(scope="module")
def data():
    x, y = bar_images(360)
    return build_dataset(x, y, name="bars", test_fraction=0.25)


BASE = TrainConfig(hidden=(8,), batch_size=32, epochs=2, val_fraction=0.2)


# ----------------------------------------------------------------- grid syntax
def test_a_grid_of_two_settings():
    grid = parse_grid("lr=1e-3,3e-3,1e-2 hidden=64,128-64,none")
    assert grid.axes == (Axis("lr", (1e-3, 3e-3, 1e-2)), Axis("hidden", ((64,), (128, 64), ())))
    assert len(grid) == 9
    assert grid.combinations()[:2] == [
        {"lr": 1e-3, "hidden": (64,)},
        {"lr": 1e-3, "hidden": (128, 64)},
    ]


def test_names_flags_and_share_keys_all_name_a_setting():
    by_flag = parse_grid(["batch-size=32,64", "activation=relu,tanh"])
    by_key = parse_grid("b=32,64 a=relu,tanh")
    assert by_flag == by_key
    assert by_flag.axes[0] == Axis("batch_size", (32, 64))


def test_values_take_their_settings_kinds():
    grid = parse_grid("nesterov=true,false epochs=1,2e1")
    assert grid.axes[0].values == (True, False)
    assert grid.axes[1].values == (1, 20)
    assert all(isinstance(v, int) for v in grid.axes[1].values)


def test_the_grid_text_reads_back_as_the_same_grid():
    grid = parse_grid("dropout=0,0.25 hidden=32-16,none")
    assert grid.text() == "dropout=0,0.25 hidden=32-16,none"
    assert parse_grid(grid.text()) == grid


@pytest.mark.parametrize(
    "spec, message",
    [
        ("", "The grid is empty"),
        ("lr", "'lr' is not NAME=VALUES"),
        ("=1,2", "is not NAME=VALUES"),
        ("speed=1,2", "'speed' is not a setting; choose one of hidden, activation"),
        ("lr=", "lr=: a value is missing"),
        ("lr=1e-3,,1e-2", "a value is missing"),
        ("lr=fast", "lr=fast: not a number."),
        ("lr=5", "lr=5: learning rate must be between 1e-05 and 3."),
        ("lr=nan", "lr=nan: not a finite number."),
        ("epochs=1.5", "epochs=1.5: not a whole number."),
        ("epochs=0", "epochs=0: epochs must be between 1 and 100000."),
        ("activation=swish", "activation=swish: choose one of relu, leaky_relu, sigmoid, tanh."),
        ("nesterov=maybe", "nesterov=maybe: write true or false."),
        ("hidden=0-64", "layer widths must be between 1 and"),
        ("hidden=8-8-8-8-8", "at most 4 hidden layers"),
        ("hidden=12a", "write layer widths joined by '-'"),
        ("lr=1e-3,0.001", "lr lists 0.001 twice"),
        ("lr=1e-3 lr=1e-2", "lr is given twice"),
        ("seed=0,1", "Seeds are not part of the grid"),
        ("lr=1e-3 hidden=8 dropout=0.1", "A sweep varies at most 2 settings; this grid varies 3"),
        ("lr=" + ",".join(f"{i}e-4" for i in range(1, 200)), "a sweep takes at most 100 per"),
    ],
)
def test_each_bad_grid_gets_a_clear_message(spec, message):
    with pytest.raises(GridError) as caught:
        parse_grid(spec)
    assert len(caught.value.problems) == 1
    assert message in caught.value.problems[0]


def test_every_bad_value_gets_its_own_message():
    with pytest.raises(GridError) as caught:
        parse_grid("lr=5,fast,1e-3,-1 dropout=0.9,0.1")
    problems = caught.value.problems
    assert len(problems) == 4
    assert [p.split(":")[0] for p in problems] == ["lr=5", "lr=fast", "lr=-1", "dropout=0.9"]


def test_a_servers_caps_lower_the_ranges():
    caps = SimpleNamespace(max_width=64, max_layers=2, max_epochs=10)
    assert parse_grid("hidden=64,32-32", caps=caps).axes[0].values == ((64,), (32, 32))
    for spec, words in [
        ("hidden=128", "between 1 and 64"),
        ("hidden=8-8-8", "at most 2 hidden layers"),
        ("epochs=20", "between 1 and 10"),
    ]:
        with pytest.raises(GridError, match=words):
            parse_grid(spec, caps=caps)


def test_values_are_checked_with_the_base_settings():
    with pytest.raises(GridError, match="early stopping watches the validation loss"):
        parse_grid("early_stopping=3", base=TrainConfig(val_fraction=0.0))


# ----------------------------------------------------------------- planning
def test_each_combination_runs_once_per_seed_with_the_other_settings_from_the_base():
    grid = parse_grid("lr=1e-3,1e-2 hidden=4,6-4")
    runs = plan_sweep(BASE.replace(dropout=0.1), grid, seeds=[3, 7])
    assert len(runs) == 8
    assert [r.index for r in runs] == list(range(8))
    first = runs[0]
    assert first.config == BASE.replace(dropout=0.1, lr=1e-3, hidden=(4,), seed=3)
    assert first.name == "lr=0.001 hidden=4 seed=3"
    assert {(r.config.lr, r.config.hidden, r.seed) for r in runs} == {
        (lr, h, s) for lr in (1e-3, 1e-2) for h in ((4,), (6, 4)) for s in (3, 7)
    }
    assert len({r.slug for r in runs}) == 8
    assert all(r.slug.replace("-", "").replace("_", "").replace(".", "").isalnum() for r in runs)


def test_the_base_seed_is_the_default():
    runs = plan_sweep(BASE.replace(seed=5), parse_grid("lr=1e-3"))
    assert [r.seed for r in runs] == [5]


def test_a_huge_sweep_is_refused_with_one_message_naming_the_cap():
    grid = parse_grid(
        "lr="
        + ",".join(f"{i}e-4" for i in range(1, 51))
        + " hidden="
        + ",".join(map(str, range(1, 61)))
    )
    with pytest.raises(GridError) as caught:
        plan_sweep(BASE, grid, seeds=range(10))
    assert caught.value.problems == [
        f"This sweep would train 30,000 runs (50 lr values x 60 hidden values x 10 seeds); the "
        f"cap is {DEFAULT_MAX_RUNS:,} runs. Use fewer values or seeds."
    ]


def test_combinations_the_settings_refuse_are_named():
    grid = Grid((Axis("val_fraction", (0.0, 0.2)), Axis("early_stopping", (0, 3))))
    with pytest.raises(GridError) as caught:
        plan_sweep(BASE, grid)
    assert len(caught.value.problems) == 1
    assert caught.value.problems[0].startswith("val_fraction=0 early_stopping=3: early stopping")


@pytest.mark.parametrize("text, seeds", [("0,1,2", [0, 1, 2]), ("3-6", [3, 4, 5, 6]), (" 4 ", [4])])
def test_seeds(text, seeds):
    assert parse_seeds(text) == seeds


@pytest.mark.parametrize("text", ["a,b", "1-x"])
def test_bad_seeds(text):
    with pytest.raises(GridError, match="Seeds are whole numbers"):
        parse_seeds(text)


def test_repeated_or_negative_seeds_are_refused():
    with pytest.raises(GridError, match="twice"):
        plan_sweep(BASE, parse_grid("lr=1e-3"), seeds=[1, 1])
    with pytest.raises(GridError, match="from 0 to"):
        plan_sweep(BASE, parse_grid("lr=1e-3"), seeds=[-1])


# ----------------------------------------------------------------- running
def small_runs(spec="lr=3e-3,1e-2", seeds=(0, 1)):
    return plan_sweep(BASE, parse_grid(spec), seeds=list(seeds))


def direct(run, data):
    trainer = Trainer(run.config, data.x_train, data.y_train, n_classes=data.n_classes)
    trainer.fit()
    return trainer


def test_a_run_trains_as_the_trainer_alone_would(data):
    run = small_runs()[1]
    record = train_run(run, data)
    trainer = direct(run, data)
    assert record.status == "finished"
    assert record.model.params.tobytes() == trainer.model.params.tobytes()
    assert record.history["train_loss"] == trainer.history.train_loss
    assert record.name == run.name and record.origin == "sweep"
    accuracy = np.mean(trainer.model.predict(data.x_test) == data.y_test)
    assert record.metrics["test_accuracy"] == pytest.approx(accuracy)


def test_results_stream_one_by_one(data):
    calls = []

    def counting_train(run, data, **kwargs):
        calls.append(run.index)
        return train_run(run, data, **kwargs)

    results = run_sweep(small_runs(), data, train=counting_train)
    first = next(results)
    assert calls == [0] and first.run.index == 0
    rest = list(results)
    assert calls == [0, 1, 2, 3]
    assert [r.run.index for r in rest] == [1, 2, 3]


def test_processes_give_the_same_numbers_as_one_after_another(data):
    runs = small_runs()
    serial = {r.run.index: r for r in run_sweep(runs, data)}
    parallel = list(run_sweep(runs, data, jobs=2))
    assert sorted(r.run.index for r in parallel) == [0, 1, 2, 3]
    for result in parallel:
        expected = serial[result.run.index].record
        assert result.record.status == "finished"
        assert result.record.model.params.tobytes() == expected.model.params.tobytes()
        assert result.record.metrics["test_accuracy"] == expected.metrics["test_accuracy"]
    workers = {r.worker for r in parallel}
    assert 1 <= len(workers) <= 2  # a worker slow to start may leave all runs to the other
    assert all(w.split(":")[1] != str(os.getpid()) for w in workers)


def test_stopping_keeps_finished_runs_and_starts_no_more(data):
    done = []
    stop_after_two = lambda: len(done) >= 2  # noqa: E731
    for result in run_sweep(small_runs(), data, should_stop=stop_after_two):
        done.append(result)
    assert [r.run.index for r in done] == [0, 1]
    assert all(r.record.status == "finished" for r in done)


def test_stopping_inside_a_run_ends_it_as_stopped(data):
    runs = small_runs(seeds=[0])
    results = list(run_sweep(runs[:1], data, should_stop=lambda: True))
    assert results == []  # asked to stop before it began
    record = train_run(runs[0], data, should_stop=lambda: True)
    assert record.status == "stopped"
    assert "sweep was stopped" in record.metrics["stop_reason"]
    assert len(record.history["batch_loss"]) == 1


def test_a_run_over_its_time_cap_ends_as_stopped_and_says_why(data):
    record = train_run(small_runs(seeds=[0])[0], data, max_seconds=1e-9)
    assert record.status == "stopped"
    assert record.metrics["stop_reason"] == "Stopped at the time cap of 1e-09 s per run."
    assert record.model is not None


def test_a_run_that_raises_fails_alone(data, monkeypatch):
    import nn_core.sweep as sweep

    class Fragile(Trainer):
        def run(self, *args, **kwargs):
            if self.config.lr == 1e-2:
                raise MemoryError("no room for the batch")
            return super().run(*args, **kwargs)

    monkeypatch.setattr(sweep, "Trainer", Fragile)
    results = list(run_sweep(small_runs(seeds=[0]), data))
    assert [r.record.status for r in results] == ["finished", "failed"]
    assert results[1].record.error == "MemoryError: no room for the batch"


def exit_on_marked_run(run, data, **kwargs):
    """A training function whose process dies on the run with lr 0.01."""
    if run.config.lr == 1e-2:
        os._exit(9)
    return train_run(run, data, **kwargs)


def test_a_process_that_dies_fails_its_runs_and_the_sweep_goes_on_to_report(data):
    runs = small_runs(spec="lr=3e-3,1e-2,5e-3", seeds=[0])
    results = list(run_sweep(runs, data, jobs=2, train=exit_on_marked_run))
    assert sorted(r.run.index for r in results) == [0, 1, 2]
    by_index = {r.run.index: r.record for r in results}
    assert by_index[1].status == "failed"
    assert "worker process died" in by_index[1].error


# ----------------------------------------------------------------- command line
@pytest.fixture(scope="module")
def npz_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("sweepdata") / "bars.npz"
    x, y = bar_images(n=300, seed=4)
    np.savez(path, x_train=x, y_train=y)
    return path


def sweep_cli(npz_path, out_dir, *extra):
    return cli_main(
        [
            "sweep", "lr=3e-3,1e-2", "hidden=4,6-4", "--data", str(npz_path), "--epochs", "2",
            "--batch-size", "32", "--seeds", "0", "--out-dir", str(out_dir), *extra,
        ]
    )  # fmt: skip


def test_the_command_line_writes_a_table_and_each_runs_model_and_metrics(
    npz_path, tmp_path, capsys
):
    out = tmp_path / "sweep"
    assert sweep_cli(npz_path, out, "--jobs", "2") == 0
    printed = capsys.readouterr().out
    assert "Sweep of 4 runs (lr=0.003,0.01 hidden=4,6-4; seeds 0)" in printed
    assert printed.count("[") >= 4 and "Best by validation accuracy" in printed
    with open(out / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["index"]) for r in rows] == [0, 1, 2, 3]
    assert [(r["lr"], r["hidden"]) for r in rows] == [
        ("0.003", "4"), ("0.003", "6-4"), ("0.01", "4"), ("0.01", "6-4"),
    ]  # fmt: skip
    for row in rows:
        assert row["status"] == "finished"
        run_dir = out / os.path.dirname(row["model"])
        metrics = (run_dir / "metrics.json").read_bytes()
        model = (run_dir / "model.npz").read_bytes()
        run = import_run_files([("metrics.json", metrics), ("model.npz", model)])
        assert run.metrics["test_accuracy"] == pytest.approx(float(row["test_accuracy"]))
        assert json.loads(metrics)["config"]["lr"] == float(row["lr"])


def test_the_command_line_lists_every_bad_value_and_trains_nothing(npz_path, tmp_path, capsys):
    out = tmp_path / "never"
    status = cli_main(
        ["sweep", "lr=5,fast", "hidden=0-64", "--data", str(npz_path), "--out-dir", str(out)]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2
    assert err == [
        "error: lr=5: learning rate must be between 1e-05 and 3.",
        "error: lr=fast: not a number.",
        "error: hidden=0-64: layer widths must be between 1 and 4096.",
    ]
    assert not out.exists()


def test_the_command_line_refuses_a_huge_sweep_in_one_line(npz_path, tmp_path, capsys):
    lrs = ",".join(f"{i}e-4" for i in range(1, 101))
    widths = ",".join(map(str, range(1, 51)))
    status = cli_main(["sweep", f"lr={lrs}", f"hidden={widths}", "--data", str(npz_path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2
    assert len(err) == 1 and "the cap is 500 runs" in err[0]


def test_the_command_line_leaves_a_folder_it_did_not_write(npz_path, tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    assert sweep_cli(npz_path, out) == 1
    assert "is not empty" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
