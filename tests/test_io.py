"""Model files: exact round trips, and every hostile or broken file refused clearly."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest

from nn_core.io import FORMAT_VERSION, LoadedModel, ModelFileError, load_model, save_model
from nn_core.network import MLP

RNG = np.random.default_rng(0)
X = RNG.integers(0, 256, size=(50, 8, 8), dtype=np.uint8)


def make_model(dtype: str = "float32", hidden=(16, 12)) -> MLP:
    model = MLP(64, hidden, 3, activation="tanh", init="glorot", dtype=dtype, seed=3)
    model.params[...] = np.random.default_rng(1).normal(0, 0.3, model.params.size)
    return model


def saved_bytes(model: MLP | None = None, **kwargs) -> bytes:
    buffer = io.BytesIO()
    save_model(buffer, model or make_model(), **kwargs)
    return buffer.getvalue()


def rewrite(data: bytes, change) -> bytes:
    """Re-pack an npz after ``change(arrays: dict)`` edits its arrays."""
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    change(arrays)
    out = io.BytesIO()
    np.savez(out, **arrays)
    return out.getvalue()


def edit_config(data: bytes, change) -> bytes:
    def apply(arrays):
        document = json.loads(arrays["config_json"].tobytes())
        change(document)
        arrays["config_json"] = np.frombuffer(json.dumps(document).encode(), np.uint8)

    return rewrite(data, apply)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_round_trip_predicts_identically(tmp_path, dtype):
    model = make_model(dtype)
    path = tmp_path / "model"  # no .npz suffix: written exactly as named
    training = {"epochs": 3, "final_val_accuracy": float("nan"), "acc": np.float32(0.5)}
    save_model(path, model, class_names=["a", "b", "c"], training=training, image_shape=(8, 8))
    assert path.exists() and not (tmp_path / "model.npz").exists()
    loaded = load_model(path)
    assert isinstance(loaded, LoadedModel)
    assert loaded.model.dtype == np.dtype(dtype)
    assert loaded.model.sizes == model.sizes
    assert loaded.model.activation == "tanh"
    assert loaded.model.input_scale == model.input_scale
    np.testing.assert_array_equal(loaded.model.params, model.params)
    np.testing.assert_array_equal(loaded.model.predict_proba(X), model.predict_proba(X))
    assert loaded.class_names == ("a", "b", "c")
    assert loaded.image_shape == (8, 8)
    assert loaded.training == {"epochs": 3, "final_val_accuracy": None, "acc": 0.5}
    assert loaded.config["format"] == "digitlab-mlp"
    assert loaded.config["format_version"] == FORMAT_VERSION


def test_bytesio_and_bytes_round_trip():
    model = make_model(hidden=())
    data = saved_bytes(model)
    for source in (data, io.BytesIO(data), bytearray(data)):
        loaded = load_model(source)
        np.testing.assert_array_equal(loaded.model.predict(X), model.predict(X))
        assert loaded.class_names == ("0", "1", "2")
        assert loaded.image_shape is None


def test_file_is_plain_numpy():
    with np.load(io.BytesIO(saved_bytes()), allow_pickle=False) as npz:
        assert sorted(npz.files) == ["W0", "W1", "W2", "b0", "b1", "b2", "config_json"]
        assert npz["W1"].shape == (16, 12)
        document = json.loads(npz["config_json"].tobytes())
    assert document["architecture"]["sizes"] == [64, 16, 12, 3]


def test_save_checks_metadata():
    with pytest.raises(ValueError, match="class names"):
        saved_bytes(class_names=["a"])
    with pytest.raises(ValueError, match="image_shape"):
        saved_bytes(image_shape=(28, 28))


def refused(source, match: str) -> str:
    with pytest.raises(ModelFileError, match=match) as info:
        load_model(source)
    return str(info.value)


def test_random_bytes_and_text_refused():
    refused(np.random.default_rng(0).bytes(1000), "not a digitlab model")
    refused(b"", "empty")
    refused(b"PK\x03\x04 garbage", "damaged or truncated")


def test_missing_config_refused():
    refused(rewrite(saved_bytes(), lambda a: a.pop("config_json")), "no 'config_json'")
    plain = io.BytesIO()
    np.savez(plain, x=np.zeros(3))
    refused(plain.getvalue(), "not a digitlab model")


def test_bad_json_refused():
    def garble(arrays):
        arrays["config_json"] = np.frombuffer(b"{not json", np.uint8)

    refused(rewrite(saved_bytes(), garble), "not valid JSON")


def test_wrong_shapes_refused():
    def transpose(arrays):
        arrays["W1"] = arrays["W1"].T.copy()

    refused(rewrite(saved_bytes(), transpose), r"W1 has shape \(12, 16\)")

    def shrink(d):
        d["architecture"]["sizes"] = [64, 16, 10, 3]

    refused(edit_config(saved_bytes(), shrink), "needs")


def test_huge_array_header_is_not_allocated():
    """A header declaring a giant array is refused from the header alone."""
    header = {"descr": "<f8", "fortran_order": False, "shape": (10**6, 10**6)}
    fake = io.BytesIO()
    np.lib.format.write_array_header_1_0(fake, header)
    data = saved_bytes()
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            body = fake.getvalue() if info.filename == "W0.npy" else src.read(info)
            dst.writestr(info.filename, body)
    refused(out.getvalue(), "W0 has shape")


def test_size_cap_and_missing_path(tmp_path):
    data = saved_bytes()
    with pytest.raises(ModelFileError, match="too large") as info:
        load_model(data, max_bytes=100)
    assert f"{len(data):,} bytes" in str(info.value) and info.value.over_limit
    path = tmp_path / "m.npz"
    path.write_bytes(data)
    with pytest.raises(ModelFileError, match="too large"):
        load_model(path, max_bytes=100)
    with pytest.raises(ModelFileError, match="does not exist"):
        load_model(tmp_path / "nope.npz")
