import io
import json
import math
import os
import pickle
import zipfile

import numpy as np
import pytest

from nn_core.cli import main as cli_main
from nn_core.config import TrainConfig
from nn_core.data.dataset import build_dataset
from nn_core.io import load_model
from nn_core.run_record import (
    MAX_JSON_BYTES,
    RunFileError,
    RunRecord,
    export_run,
    failed_record,
    import_run_files,
    load_cli_run,
    load_run,
    metrics_document,
    record_from_trainer,
    status_of,
)
from nn_core.training import Trainer
from tests.synthetic import bar_images


@pytest.fixture(scope="module")
def dataset():
    x, y = bar_images(400)
    return build_dataset(x, y, name="bars", test_fraction=0.25)


def trained(dataset, **changes):
    config = TrainConfig(hidden=(12,), batch_size=32, epochs=3, val_fraction=0.2, seed=1)
    config = config.replace(val_every=2, **changes)  # epoch 1 unvalidated: a NaN in history
    trainer = Trainer(config, dataset.x_train, dataset.y_train, n_classes=dataset.n_classes)
    trainer.fit()
    return trainer


@pytest.fixture(scope="module")
def record(dataset):
    return record_from_trainer(trained(dataset), dataset, name="bars lr 1e-3")


def same_history(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(np.asarray(a[key], float), np.asarray(b[key], float))


def assert_same_run(loaded: RunRecord, original: RunRecord) -> None:
    assert loaded.name == original.name
    assert loaded.status == original.status
    assert loaded.config == original.config
    same_history(loaded.history, original.history)
    for key, value in original.metrics.items():
        assert loaded.metrics[key] == pytest.approx(value, nan_ok=True), key
    assert loaded.class_names == original.class_names
    assert loaded.model.params.tobytes() == original.model.params.tobytes()
    assert loaded.model.sizes == original.model.sizes


# ----------------------------------------------------------------- records
def test_a_record_keeps_settings_history_figures_and_a_copy_of_the_network(dataset, record):
    assert record.status == "finished"
    assert record.metrics["epochs"] == 3
    assert len(record.history["batch_loss"]) > 0
    assert math.isnan(record.history["val_accuracy"][0])  # not validated in epoch 1
    assert record.metrics["best_val_accuracy"] == max(record.history["val_accuracy"][1:])
    predicted = record.model.predict(dataset.x_test)
    assert record.metrics["test_accuracy"] == pytest.approx(np.mean(predicted == dataset.y_test))
    assert record.data["image_shape"] == [8, 8]


def test_the_record_does_not_change_when_training_goes_on(dataset):
    trainer = trained(dataset)
    saved = record_from_trainer(trainer, dataset, name="a")
    before = saved.model.params.copy()
    trainer.fit(2)
    assert saved.model.params.tobytes() == before.tobytes()
    assert saved.metrics["epochs"] == 3


def test_status_says_diverged_stopped_or_finished(dataset):
    diverged = trained(dataset, optimizer="adam", lr=50.0)
    assert diverged.stop_reason and status_of(diverged) == "diverged"
    halted = Trainer(
        TrainConfig(hidden=(8,), epochs=3), dataset.x_train, dataset.y_train, n_classes=4
    )
    halted.run(max_batches=2)
    assert status_of(halted) == "stopped"
    assert status_of(trained(dataset)) == "finished"


def test_dropping_the_batch_history_keeps_epochs_and_model(record):
    light = record.without_batch_history()
    assert not light.has_batch_history() and record.has_batch_history()
    assert light.history["train_loss"] == record.history["train_loss"]
    assert light.model is record.model


# ----------------------------------------------------------------- run files
def test_a_run_file_round_trips(record, tmp_path):
    data = export_run(record)
    assert_same_run(load_run(data), record)
    path = tmp_path / "run.zip"
    path.write_bytes(data)
    assert_same_run(load_run(path), record)
    upload = io.BytesIO(data)
    upload.name = "my run.zip"
    upload.read()  # an upload read once already: load_run rewinds it
    assert_same_run(load_run(upload), record)


def test_a_run_file_is_a_plain_zip_with_json_and_a_digitlab_model(record):
    with zipfile.ZipFile(io.BytesIO(export_run(record))) as archive:
        assert sorted(archive.namelist()) == ["model.npz", "run.json"]
        document = json.loads(archive.read("run.json"))
        model = load_model(archive.read("model.npz"))
    assert document["format"] == "digitlab-run"
    assert document["history"]["val_accuracy"][0] is None  # NaN as null: strict JSON
    assert model.model.params.tobytes() == record.model.params.tobytes()


def test_a_failed_run_without_network_round_trips(dataset):
    failed = failed_record(
        TrainConfig(lr=0.3), name="lost", error="the worker died", dataset=dataset
    )
    loaded = load_run(export_run(failed))
    assert loaded.status == "failed"
    assert loaded.error == "the worker died"
    assert loaded.model is None
    assert loaded.config.lr == 0.3


# ----------------------------------------------------------------- command-line runs
@pytest.fixture(scope="module")
def cli_files(tmp_path_factory):
    """A real command-line run: its --metrics-json and --out files (and a second run's)."""
    folder = tmp_path_factory.mktemp("cli")
    x, y = bar_images(n=300, seed=3)
    np.savez(folder / "bars.npz", x_train=x, y_train=y)
    files = {}
    for hidden in ("10", "6"):
        model, metrics = folder / f"model{hidden}.npz", folder / f"metrics{hidden}.json"
        status = cli_main(
            [
                "train", "--data", str(folder / "bars.npz"), "--hidden", hidden, "--epochs",
                "2", "--batch-size", "32", "--quiet", "--out", str(model), "--metrics-json",
                str(metrics),
            ]
        )  # fmt: skip
        assert status == 0
        files[hidden] = (metrics, model)
    return files


def test_the_command_lines_metrics_and_model_import_as_a_run(cli_files):
    metrics_path, model_path = cli_files["10"]
    document = json.loads(metrics_path.read_text())
    run = load_cli_run(metrics_path, model_path)
    assert run.origin == "cli"
    assert run.name == "metrics10"
    assert run.config == TrainConfig.from_dict(document["config"])
    assert run.history["train_loss"] == document["history"]["train_loss"]
    assert run.metrics["test_accuracy"] == document["test_accuracy"]
    assert run.model.params.tobytes() == load_model(model_path).model.params.tobytes()
    assert run.status == "finished"


def test_uploaded_files_import_in_any_order(cli_files):
    metrics_path, model_path = cli_files["10"]
    files = [
        ("model10.npz", model_path.read_bytes()),
        ("metrics10.json", metrics_path.read_bytes()),
    ]
    run = import_run_files(files)
    assert run.model is not None and run.metrics["epochs"] == 2
    alone = import_run_files([files[1]])
    assert alone.model is None and alone.history["train_loss"] == run.history["train_loss"]


def test_a_model_file_alone_imports_with_its_stored_settings(cli_files):
    metrics_path, model_path = cli_files["6"]
    document = json.loads(metrics_path.read_text())
    run = import_run_files([("model6.npz", model_path.read_bytes())])
    assert run.config.hidden == (6,)
    assert run.metrics["test_accuracy"] == pytest.approx(document["test_accuracy"])
    assert run.history["train_loss"] == []


def test_metrics_and_model_of_different_runs_are_refused(cli_files):
    metrics_path, _ = cli_files["10"]
    _, other_model = cli_files["6"]
    with pytest.raises(RunFileError, match="different runs"):
        load_cli_run(metrics_path, other_model)


def test_a_record_written_as_metrics_json_imports_back(record, tmp_path):
    path = tmp_path / "metrics.json"
    path.write_text(json.dumps(metrics_document(record), default=str).replace("NaN", "null"))
    run = load_cli_run(path)
    same_history(run.history, record.history)
    assert run.metrics["test_accuracy"] == pytest.approx(record.metrics["test_accuracy"])


# ----------------------------------------------------------------- bad files
def zip_of(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def run_json(record: RunRecord) -> dict:
    with zipfile.ZipFile(io.BytesIO(export_run(record))) as archive:
        return json.loads(archive.read("run.json"))


def with_model(record: RunRecord, model: bytes) -> bytes:
    return zip_of({"run.json": json.dumps(run_json(record)).encode(), "model.npz": model})


def with_json(record: RunRecord, **changes) -> bytes:
    document = {**run_json(record), **changes}
    return zip_of({"run.json": json.dumps(document).encode()})


@pytest.mark.parametrize(
    "make, words",
    [
        (lambda r: b"", "empty|not a digitlab run file"),
        (lambda r: b"hello, this is text", "not a digitlab run file"),
        (lambda r: export_run(r)[:200], "damaged or truncated"),
        (lambda r: zip_of({"evil.py": b"print(1)"}), "this zip holds 'evil.py'"),
        (lambda r: zip_of({"run.json": b"{not json"}), "not valid JSON"),
        (lambda r: zip_of({"run.json": b"[1, 2]"}), "JSON object"),
        (lambda r: zip_of({"run.json": b"\xff\xfe"}), "not valid JSON"),
        (lambda r: with_json(r, format="something-else"), "not 'digitlab-run'"),
        (lambda r: with_json(r, format_version=99), "Update digitlab"),
        (lambda r: with_json(r, status="exploded"), "status 'exploded'"),
        (lambda r: with_json(r, config={"lr": "fast"}), "settings are not valid"),
        (lambda r: with_json(r, config={"lr": -1}), "learning rate must be positive"),
        (lambda r: with_json(r, history={"batch_loss": ["x"]}), "not a number"),
        (lambda r: with_json(r, history={"train_loss": [1.0, 2.0], "epoch": [1]}), "lengths"),
        (lambda r: with_json(r, metrics={"test_accuracy": "99%"}), "not a number"),
        (lambda r: zip_of({"run.json": b"[" * 100_000}), "not valid JSON"),
        (lambda r: with_model(r, b"PK not really"), "run file \\(its model\\)"),
        (lambda r: with_model(r, b"not a zip"), "not a digitlab model"),
    ],
)
def test_a_bad_run_file_gets_one_clear_message(record, make, words):
    with pytest.raises(RunFileError, match=words) as caught:
        load_run(make(record))
    assert "\n" not in str(caught.value)


def test_bit_flips_give_a_run_or_a_clear_message_never_a_crash(record):
    data = bytearray(export_run(record))
    rng = np.random.default_rng(0)
    for position in rng.integers(0, len(data), 150):
        flipped = bytearray(data)
        flipped[position] ^= 0xFF
        try:
            load_run(bytes(flipped))
        except RunFileError as exc:
            assert str(exc)


def test_a_pickle_inside_is_refused_and_never_run(record, tmp_path):
    marker = tmp_path / "pwned"

    class Boom:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    buffer = io.BytesIO()
    np.savez(buffer, config_json=np.frombuffer(b"{}", np.uint8), W0=np.array([Boom()], object))
    document = json.dumps(run_json(record)).encode()
    hostile = zip_of({"run.json": document, "model.npz": buffer.getvalue()})
    with pytest.raises(RunFileError):
        load_run(hostile)
    pickled = zip_of({"run.json": pickle.dumps(Boom())})
    with pytest.raises(RunFileError):
        load_run(pickled)
    assert not marker.exists()


def test_a_compressed_bomb_is_refused_from_its_declared_size(record):
    bomb = zip_of({"run.json": b" " * (MAX_JSON_BYTES + 10)})
    assert len(bomb) < 100_000
    with pytest.raises(RunFileError, match="limit") as caught:
        load_run(bomb)
    assert caught.value.over_limit


def test_a_file_over_the_size_cap_is_refused_before_reading(record):
    with pytest.raises(RunFileError, match="too large") as caught:
        load_run(export_run(record), max_bytes=1000)
    assert caught.value.over_limit


def test_foreign_json_is_not_a_metrics_file(tmp_path):
    path = tmp_path / "package.json"
    path.write_text('{"name": "left-pad", "version": "1.0.0"}')
    with pytest.raises(RunFileError, match="not a digitlab metrics file"):
        load_cli_run(path)
    with pytest.raises(RunFileError, match="one run at a time"):
        import_run_files([("a.json", b"{}"), ("b.json", b"{}"), ("c.npz", b"")])
    with pytest.raises(RunFileError, match="metrics JSON and its model"):
        import_run_files([("a.npz", b"PK"), ("b.npz", b"PK")])
