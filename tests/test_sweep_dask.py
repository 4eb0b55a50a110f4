"""Sweeps on a real Dask cluster: a LocalCluster of two worker processes, one thread each."""

import csv
import logging
import os
import socket
import sys

import numpy as np
import pytest

from nn_core.cli import main as cli_main
from nn_core.config import TrainConfig
from nn_core.data.dataset import build_dataset
from nn_core.sweep import SweepError, import_distributed, parse_grid, plan_sweep, run_sweep
from nn_core.sweep import train_run as real_train_run
from tests.synthetic import bar_images

distributed = pytest.importorskip("distributed")  # in requirements-dev.txt: CI has it

KILLER_LR = 7e-3


@pytest.fixture(scope="module")
def data():
    x, y = bar_images(300)
    return build_dataset(x, y, name="bars", test_fraction=0.25)


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
        silence_logs=logging.CRITICAL,
    ) as local:
        yield local


@pytest.fixture
def client(cluster):
    with distributed.Client(cluster, set_as_default=False) as c:
        c.wait_for_workers(2, timeout=60)
        yield c


def runs(spec):
    base = TrainConfig(hidden=(8,), batch_size=32, epochs=1, val_fraction=0.2)
    return plan_sweep(base, parse_grid(spec), seeds=[0])


def kill_worker_on_marked_run(run, data, **kwargs):
    """Training that kills its own worker process on the run with lr KILLER_LR."""
    if run.config.lr == KILLER_LR:
        os._exit(1)
    return real_train_run(run, data, **kwargs)


def test_a_worker_that_dies_loses_only_its_own_run(client, data):
    planned = runs(f"lr=1e-3,3e-3,{KILLER_LR},1e-2")
    scattered = []
    scatter = client.scatter

    def counting_scatter(*args, **kwargs):
        scattered.append((args, kwargs))
        return scatter(*args, **kwargs)

    client.scatter = counting_scatter
    results = list(run_sweep(planned, data, dask_client=client, train=kill_worker_on_marked_run))

    assert sorted(r.run.index for r in results) == [0, 1, 2, 3]
    by_index = {r.run.index: r for r in results}
    lost = by_index[2].record
    assert lost.status == "failed"
    assert lost.error == "the Dask worker training this run died"
    for index in (0, 1, 3):
        result = by_index[index]
        expected = real_train_run(result.run, data)
        assert result.record.status == "finished", result.record.error
        assert result.record.model.params.tobytes() == expected.model.params.tobytes()
        assert result.worker.split(":")[1] != str(os.getpid())
    # The data went out once, to every worker, not once per run.
    assert len(scattered) == 1
    assert scattered[0][1].get("broadcast") is True


def test_data_lost_with_the_only_worker_holding_it_is_sent_again(data):
    """One worker: the marked run kills it and the scattered data dies with it (the CI
    machine, under load, once had only one worker holding the data). The nanny starts a
    new worker; the data goes out again and only the marked run is lost."""
    with (
        distributed.LocalCluster(
            n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None,
            silence_logs=logging.CRITICAL,
        ) as single,
        distributed.Client(single, set_as_default=False) as c,
    ):  # fmt: skip
        c.wait_for_workers(1, timeout=60)
        planned = runs(f"lr=1e-3,3e-3,{KILLER_LR},1e-2")
        results = list(run_sweep(planned, data, dask_client=c, train=kill_worker_on_marked_run))
    by_index = {r.run.index: r.record for r in results}
    assert sorted(by_index) == [0, 1, 2, 3]
    assert by_index[2].status == "failed"
    assert by_index[2].error == "the Dask worker training this run died"
    assert [by_index[i].status for i in (0, 1, 3)] == ["finished"] * 3, [
        by_index[i].error for i in (0, 1, 3)
    ]


def test_results_arrive_as_each_run_finishes(client, data):
    planned = runs("lr=1e-3,3e-3,5e-3,1e-2")
    results = run_sweep(planned, data, dask_client=client)
    first = next(results)
    assert first.record.status == "finished"
    rest = list(results)
    assert len(rest) == 3
    assert client.status == "running"  # a client passed in is left open


def test_stopping_cancels_the_runs_not_yet_done(client, data):
    planned = runs("lr=1e-3,2e-3,3e-3,4e-3,5e-3,6e-3,8e-3,9e-3")
    got = list(run_sweep(planned, data, dask_client=client, should_stop=lambda: True))
    assert len(got) == 1
    assert got[0].record.status == "finished"


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_unreachable_scheduler_gets_one_clear_message(data):
    address = f"tcp://127.0.0.1:{closed_port()}"
    with pytest.raises(SweepError) as caught:
        run_sweep(runs("lr=1e-3"), data, dask_address=address, connect_timeout=1.0)
    message = str(caught.value)
    assert message.startswith(f"No Dask scheduler answered at {address} within 1 s")
    assert "Start one with `dask scheduler`" in message


def test_an_address_that_is_not_one_is_named(data):
    with pytest.raises(SweepError, match="'localhost' is not a Dask scheduler address"):
        run_sweep(runs("lr=1e-3"), data, dask_address="localhost")


def test_without_distributed_the_message_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)
    with pytest.raises(SweepError, match="pip install distributed"):
        import_distributed()


def test_the_command_line_sweeps_on_the_cluster(cluster, tmp_path, capsys):
    path = tmp_path / "bars.npz"
    x, y = bar_images(300, seed=5)
    np.savez(path, x_train=x, y_train=y)
    out = tmp_path / "out"
    status = cli_main(
        [
            "sweep", "lr=1e-3,1e-2", "--data", str(path), "--epochs", "1", "--hidden", "8",
            "--out-dir", str(out), "--dask", cluster.scheduler_address,
        ]
    )  # fmt: skip
    printed = capsys.readouterr().out
    assert status == 0
    assert f"on the Dask cluster at {cluster.scheduler_address}" in printed
    with open(out / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["status"] for r in rows] == ["finished", "finished"]
    assert all((out / r["model"]).is_file() for r in rows)


def test_the_command_line_reports_an_unreachable_scheduler_in_one_line(tmp_path, capsys):
    path = tmp_path / "bars.npz"
    x, y = bar_images(300, seed=5)
    np.savez(path, x_train=x, y_train=y)
    address = f"tcp://127.0.0.1:{closed_port()}"
    status = cli_main(
        [
            "sweep", "lr=1e-3", "--data", str(path), "--out-dir", str(tmp_path / "o"),
            "--dask", address, "--dask-timeout", "1",
        ]
    )  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 1
    assert len(err) == 1 and err[0].startswith(f"error: No Dask scheduler answered at {address}")


def test_a_cluster_that_cannot_import_digitlab_is_named_before_any_run():
    from types import SimpleNamespace

    from nn_core.sweep import check_cluster

    fake = SimpleNamespace(
        run_on_scheduler=lambda fn: fn(),  # this process has nn_core
        run=lambda fn: {"tcp://10.0.0.7:4001": False, "tcp://10.0.0.8:4001": fn()},
    )
    with pytest.raises(SweepError) as caught:
        check_cluster(fake)
    assert str(caught.value).startswith("worker tcp://10.0.0.7:4001 cannot import digitlab's")
    assert "PYTHONPATH" in str(caught.value)


def test_a_scheduler_without_workers_gets_one_clear_message(data):
    empty = distributed.LocalCluster(
        n_workers=0, processes=False, dashboard_address=":0", silence_logs=logging.CRITICAL
    )
    with empty, pytest.raises(SweepError) as caught:
        run_sweep(runs("lr=1e-3"), data, dask_address=empty.scheduler_address, connect_timeout=1)
    assert "has no workers (none joined within 1 s): start some with `dask worker" in str(
        caught.value
    )


def test_the_app_reads_the_scheduler_from_the_environment():
    from nn_core.sweep import scheduler_from_env

    assert scheduler_from_env({"DIGITLAB_DASK_SCHEDULER": " tcp://h:8786 "}) == "tcp://h:8786"
    assert scheduler_from_env({"DIGITLAB_DASK_SCHEDULER": ""}) is None
    assert scheduler_from_env({}) is None
