"""Weights files: bit-exact round trip, and a one-line error for every bad file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from derain_deploy import DerainConfig, DerainNet, WeightsError, load_weights, save_weights
from derain_deploy.weights import FORMAT_NAME, read_metadata


@pytest.fixture
def tiny() -> DerainNet:
    torch.manual_seed(0)
    return DerainNet(DerainConfig(stages=3, channels=4, residual_refinement=True))


def test_round_trip_is_bit_exact(tiny: DerainNet, tmp_path: Path) -> None:
    path = save_weights(tiny, tmp_path / "w.safetensors")
    loaded = load_weights(path)
    assert loaded.config == tiny.config
    for (k1, v1), (k2, v2) in zip(tiny.state_dict().items(), loaded.state_dict().items()):
        assert k1 == k2 and torch.equal(v1, v2)
    meta = read_metadata(path)
    assert meta["format"] == FORMAT_NAME and json.loads(meta["config"])["stages"] == 3
    assert not list(tmp_path.glob("*.tmp")), "no temporary file is left behind"


def test_same_weights_give_identical_files(tiny: DerainNet, tmp_path: Path) -> None:
    a = save_weights(tiny, tmp_path / "a.safetensors", extra={"b": "1", "a": "2", "c": "3"})
    b = save_weights(load_weights(a), tmp_path / "b.safetensors", extra={"c": "3", "a": "2", "b": "1"})
    assert a.read_bytes() == b.read_bytes()


def test_file_is_plain_safetensors_without_pickle(tiny: DerainNet, tmp_path: Path) -> None:
    path = save_weights(tiny, tmp_path / "w.safetensors")
    data = path.read_bytes()
    n = int.from_bytes(data[:8], "little")
    json.loads(data[8 : 8 + n])  # a JSON header, then raw tensor bytes
    assert b"\x80\x04" not in data[:2]


def one_line(exc: pytest.ExceptionInfo[WeightsError]) -> str:
    msg = str(exc.value)
    assert "\n" not in msg
    return msg


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(WeightsError) as e:
        load_weights(tmp_path / "nope.safetensors")
    assert "not found" in one_line(e)


def test_not_safetensors(tmp_path: Path) -> None:
    bad = tmp_path / "w.safetensors"
    bad.write_bytes(b"PK\x03\x04 this is a zip or a pickle, not safetensors" * 10)
    with pytest.raises(WeightsError) as e:
        load_weights(bad)
    assert "not a safetensors file" in one_line(e)


def test_empty_file(tmp_path: Path) -> None:
    bad = tmp_path / "w.safetensors"
    bad.write_bytes(b"")
    with pytest.raises(WeightsError) as e:
        load_weights(bad)
    assert "not a safetensors file" in one_line(e)


def test_truncated_file(tiny: DerainNet, tmp_path: Path) -> None:
    path = save_weights(tiny, tmp_path / "w.safetensors")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 100])
    with pytest.raises(WeightsError) as e:
        load_weights(path)
    assert str(path) in one_line(e)


def test_foreign_safetensors_file(tmp_path: Path) -> None:
    path = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(3)}, str(path), metadata={"format": "pt"})
    with pytest.raises(WeightsError) as e:
        load_weights(path)
    assert f"expected a {FORMAT_NAME} file, found metadata format 'pt'" in one_line(e)


def test_other_architecture(tiny: DerainNet, tmp_path: Path) -> None:
    path = tmp_path / "w.safetensors"
    tensors = {k: v.contiguous() for k, v in tiny.state_dict().items()}
    tensors["extra.weight"] = torch.zeros(2)
    del tensors["fs.weight"]
    config = json.dumps(tiny.config.to_dict())
    save_file(tensors, str(path), metadata={"format": FORMAT_NAME, "format_version": "1", "config": config})
    with pytest.raises(WeightsError) as e:
        load_weights(path)
    msg = one_line(e)
    assert "do not match the architecture" in msg and "fs.weight" in msg and "extra.weight" in msg


def test_shape_mismatch(tiny: DerainNet, tmp_path: Path) -> None:
    path = tmp_path / "w.safetensors"
    tensors = {k: v.contiguous() for k, v in tiny.state_dict().items()}
    tensors["fs.weight"] = torch.zeros(5, 3, 3, 3)
    config = json.dumps(tiny.config.to_dict())
    save_file(tensors, str(path), metadata={"format": FORMAT_NAME, "format_version": "1", "config": config})
    with pytest.raises(WeightsError) as e:
        load_weights(path)
    assert "fs.weight has shape (5, 3, 3, 3), expected (4, 3, 3, 3)" in one_line(e)


def test_newer_format_version(tiny: DerainNet, tmp_path: Path) -> None:
    path = save_weights(tiny, tmp_path / "w.safetensors", extra={"format_version": "99"})
    with pytest.raises(WeightsError) as e:
        load_weights(path)
    assert "version 99 is newer" in one_line(e)


def test_unknown_config_key(tiny: DerainNet, tmp_path: Path) -> None:
    config = json.dumps({**tiny.config.to_dict(), "attention": True})
    path = save_weights(tiny, tmp_path / "w.safetensors", extra={"config": config})
    with pytest.raises(WeightsError) as e:
        load_weights(path)
    assert "unknown model config keys: attention" in one_line(e)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"stages": 65}, "stages 65 is out of range 1..64"),
        ({"stages": 300000}, "stages 300000 is out of range 1..64"),
        ({"channels": 257}, "channels 257 is out of range 1..256"),
        ({"channels": 10**7}, "channels 10000000 is out of range 1..256"),
        ({"dilations": [1] * 17}, "17 dilations, at most 16"),
        ({"dilations": [1, 10**9]}, "dilation 1000000000 is out of range 1..1024"),
    ],
)
def test_config_sizes_are_bounded_before_the_model_is_built(
    tiny: DerainNet, tmp_path: Path, override: dict[str, object], message: str
) -> None:
    config = json.dumps({**tiny.config.to_dict(), **override})
    path = save_weights(tiny, tmp_path / "w.safetensors", extra={"config": config})
    with pytest.raises(WeightsError) as e:
        load_weights(path)
    assert message in one_line(e)


def test_the_card_of_a_weights_file_is_named_beside_it(tmp_path: Path) -> None:
    from derain_deploy.weights import card_path

    assert card_path(tmp_path / "v2.safetensors") == tmp_path / "v2.card.json"
    assert card_path("a.safetensors.b.safetensors").name == "a.safetensors.b.card.json"
