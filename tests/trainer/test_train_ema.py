"""train.ema_decay: the average is validated beside the raw weights, saved as the run's weights,
kept in the checkpoint, and a run without one can be resumed with it."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from trainer_fixtures import interrupt_at, tiny_overrides

import trainer.loop as loop
from trainer.config import ConfigError, load
from trainer.loop import TrainingInterruptedError, train

VAL = {"val.every": 3, "val.crop": 24}


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path) as f:
        return list(csv.DictReader(f))


def test_the_average_is_validated_and_saved(clean_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    cfg = load(None, tiny_overrides(clean_dir, out, **VAL, **{
        "val.clean": f"[{clean_dir}]", "train.ema_decay": 0.5, "optim.lr": 0.01}))  # fmt: skip
    weights = train(cfg, progress=False)
    raw, avg = load_file(str(out / "derain.raw.safetensors")), load_file(str(weights))
    assert raw.keys() == avg.keys() and any(not torch.equal(raw[k], avg[k]) for k in raw)
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    assert int(state["ema"]["n_averaged"]) == 6
    assert all(torch.equal(state["ema"][f"module.{k}"], avg[k]) for k in avg)
    assert [r["iteration"] for r in _rows(out / "val.csv")] == ["3", "6"]
    assert [r["iteration"] for r in _rows(out / "val_ema.csv")] == ["3", "6"]
    assert _rows(out / "val.csv")[-1] != _rows(out / "val_ema.csv")[-1]


def test_off_by_default_and_checked(clean_dir: Path, tmp_path: Path) -> None:
    weights = train(load(None, tiny_overrides(clean_dir, tmp_path / "plain")), progress=False)
    assert weights.is_file() and not (tmp_path / "plain" / "derain.raw.safetensors").exists()
    assert torch.load(tmp_path / "plain" / "checkpoint.pt", weights_only=True)["ema"] is None
    with pytest.raises(ConfigError, match=r"train.ema_decay must be in \[0, 1\)"):
        load(None, tiny_overrides(clean_dir, tmp_path / "x", **{"train.ema_decay": 1.0}))


def test_a_run_without_an_average_resumes_with_one(clean_dir: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    """The v2 run: started without an average, resumed with ``train.ema_decay`` set. The raw
    weights follow the same path as without it (the average never feeds the training)."""
    plain = train(load(None, tiny_overrides(clean_dir, tmp_path / "a")), progress=False)
    original = loop.batch_for
    monkeypatch.setattr(loop, "batch_for", interrupt_at(3, original))
    with pytest.raises(TrainingInterruptedError):
        train(load(None, tiny_overrides(clean_dir, tmp_path / "b")), progress=False)
    monkeypatch.setattr(loop, "batch_for", original)
    resumed = load(None, tiny_overrides(clean_dir, tmp_path / "b", **{"train.ema_decay": 0.9}))
    train(resumed, resume=True, progress=False)
    assert "ema: the checkpoint has no average; it starts from the resumed weights" in capsys.readouterr().out
    a, b = load_file(str(plain)), load_file(str(tmp_path / "b" / "derain.raw.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert int(torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=True)["ema"]["n_averaged"]) == 3


def test_the_average_restarts_when_the_curriculum_grows(clean_dir: Path, tmp_path: Path) -> None:
    """Growing the stages rewires the fusion convs: an average of weights from before and after
    would mix two networks, so it starts again from the grown model."""
    out = tmp_path / "grow"
    cfg = load(None, tiny_overrides(clean_dir, out, **{
        "train.ema_decay": 0.9, "train.stage_schedule": "[[0.0, 1], [0.5, 2]]"}))  # fmt: skip
    train(cfg, progress=False)
    assert int(torch.load(out / "checkpoint.pt", weights_only=True)["ema"]["n_averaged"]) == 3  # steps 4-6


def test_a_run_with_an_average_resumes_exactly(clean_dir: Path, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """Interrupted and resumed, with validation on: the same average and the same raw weights as
    the uninterrupted run (the average is restored from the checkpoint, and validating it changes
    nothing in training)."""
    extra = {**VAL, "val.every": 2, "val.clean": f"[{clean_dir}]", "train.ema_decay": 0.5}
    full = train(load(None, tiny_overrides(clean_dir, tmp_path / "a", **extra)), progress=False)
    original = loop.batch_for
    monkeypatch.setattr(loop, "batch_for", interrupt_at(3, original))
    cfg = load(None, tiny_overrides(clean_dir, tmp_path / "b", **extra))
    with pytest.raises(TrainingInterruptedError):
        train(cfg, progress=False)
    monkeypatch.setattr(loop, "batch_for", original)
    resumed = train(cfg, resume=True, progress=False)
    for name in (full.name, "derain.raw.safetensors"):
        a, b = load_file(str(tmp_path / "a" / name)), load_file(str(tmp_path / "b" / name))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
    assert resumed.name == full.name
