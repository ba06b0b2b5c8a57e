"""trainer.checkpoint.checkpoint_weights and benchmarks/checkpoint_weights.py: the weights of a run
that has not ended, taken from its checkpoint (average or raw), as a safetensors file."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from trainer_fixtures import interrupt_at, tiny_overrides

from derain_deploy.weights import file_sha256, load_weights, read_metadata
from trainer import loop
from trainer.checkpoint import checkpoint_weights
from trainer.config import load
from trainer.errors import TrainingError, TrainingInterruptedError
from trainer.loop import train

ROOT = Path(__file__).resolve().parents[2]


def _script():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("checkpoint_weights_script",
                                                  ROOT / "benchmarks" / "checkpoint_weights.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_the_average_and_the_raw_weights_of_a_checkpoint(clean_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    weights = train(load(None, tiny_overrides(clean_dir, out, **{"train.ema_decay": 0.5, "optim.lr": 0.01})),
                    progress=False)
    avg, meta = checkpoint_weights(out / "checkpoint.pt")
    assert _same(avg.state_dict(), load_file(str(weights)))
    assert meta["iterations"] == "6" and meta["weights"] == "ema 0.5 (6 steps averaged)"
    raw, meta = checkpoint_weights(out / "checkpoint.pt", average=False)
    assert _same(raw.state_dict(), load_file(str(out / "derain.raw.safetensors")))
    assert meta["weights"] == "raw" and not _same(raw.state_dict(), avg.state_dict())


def test_a_checkpoint_without_an_average_says_so(clean_dir: Path, tmp_path: Path) -> None:
    train(load(None, tiny_overrides(clean_dir, tmp_path / "plain")), progress=False)
    with pytest.raises(TrainingError, match="holds no weight average"):
        checkpoint_weights(tmp_path / "plain" / "checkpoint.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(TrainingError, match="is not a trainer checkpoint"):
        checkpoint_weights(bad)


def test_the_script_writes_a_weights_file_and_never_overwrites(
        clean_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    train(load(None, tiny_overrides(clean_dir, out, **{"train.ema_decay": 0.5})), progress=False)
    script, target = _script(), tmp_path / "it6.safetensors"
    assert script.main([str(out / "checkpoint.pt"), str(target)]) == 0
    model = load_weights(target)
    assert _same(model.state_dict(), checkpoint_weights(out / "checkpoint.pt")[0].state_dict())
    assert read_metadata(target)["iterations"] == "6"
    card = json.loads((tmp_path / "it6.card.json").read_text())
    assert card["iterations"] == 6 and card["weights_taken"].startswith("ema 0.5")
    assert card["sha256"] == file_sha256(target) and card["recipe"]["ema_decay"] == 0.5
    before = target.read_bytes()
    assert script.main([str(out / "checkpoint.pt"), str(target), "--raw"]) == 2
    assert target.read_bytes() == before and "exists; not overwriting it" in capsys.readouterr().err
    assert script.main([str(out / "checkpoint.pt"), str(out / "checkpoint.pt")]) == 2
    assert script.main([str(tmp_path / "missing.pt"), str(tmp_path / "x.safetensors")]) == 2
    assert not (tmp_path / "x.safetensors").exists()
    (tmp_path / "y.card.json").write_text("a card of someone else's")  # the card's name is taken
    assert script.main([str(out / "checkpoint.pt"), str(tmp_path / "y.safetensors")]) == 2
    assert (tmp_path / "y.card.json").read_text() == "a card of someone else's"
    assert not (tmp_path / "y.safetensors").exists()


def test_a_checkpoint_from_before_the_curriculum_reaches_every_stage_is_refused(
        clean_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """At iteration 2 of [[0, 1], [0.5, 2]] only stage 1 has trained; a 2-stage file of it would run
    an untrained stage."""
    monkeypatch.setattr(loop, "batch_for", interrupt_at(2, loop.batch_for))
    with pytest.raises(TrainingInterruptedError):
        train(load(None, tiny_overrides(clean_dir, tmp_path / "run", **{
            "train.ema_decay": 0.5, "train.stage_schedule": "[[0.0, 1], [0.5, 2]]"})), progress=False)
    refused = r"trained 1 of its 2 stages at iteration 2; checkpoints from iteration 4 on have trained all 2"
    with pytest.raises(TrainingError, match=refused):
        checkpoint_weights(tmp_path / "run" / "checkpoint.pt")
