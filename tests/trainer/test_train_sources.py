"""Training sources named in data.rain_mix (transplant, texture) and the stage curriculum."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from trainer_fixtures import tiny_overrides, write_images

from derain_deploy.model import DerainConfig, DerainNet
from trainer.config import ConfigError, load, stages_at
from trainer.datasets import DataError, RainDataset, gather_images, gather_pairs
from trainer.loop import grow_stages, train


def _pairs(tmp_path: Path) -> list:
    write_images(tmp_path / "pairs" / "rain", 2, seed=1)
    write_images(tmp_path / "pairs" / "norain", 2, seed=2)
    return gather_pairs([str(tmp_path / "pairs")])


def test_transplant_and_texture_sources(tmp_path: Path, clean_dir: Path) -> None:
    pairs = _pairs(tmp_path)
    files = gather_images([str(clean_dir)])
    only_texture = RainDataset(files, pairs, crop=16, paired_share=0.0, rain_mix={"texture": 1.0})
    for i in range(4):
        rainy, clean, rain = only_texture[i]
        assert torch.equal(rainy, clean) and not rain.any()
    only_transplant = RainDataset(files, pairs, crop=16, paired_share=0.0, rain_mix={"transplant": 1.0})
    assert len(only_transplant.layers) == 2
    for i in range(4):
        rainy, clean, rain = only_transplant[i]
        assert torch.equal(rainy - clean, rain) and rain.min() >= 0
    mixed = RainDataset(files, pairs, crop=16, rain_mix={"light_wide": 1, "heavy_dense": 1, "transplant": 1},
                        texture_share=0.5, seed=2)
    assert all(torch.equal(a, b) for a, b in zip(mixed[7], mixed[7]))
    with pytest.raises(DataError, match="no training pairs"):
        RainDataset(files, [], crop=16, rain_mix={"transplant": 1.0})


def test_rain_mix_and_schedule_are_validated(clean_dir: Path, tmp_path: Path) -> None:
    base = tiny_overrides(clean_dir, tmp_path / "run")
    cfg = load(None, [*base, "data.rain_mix={transplant: 0.5, light_wide: 0.5}", "data.texture_share=0.3"])
    assert cfg.data.rain_mix["transplant"] == 0.5
    for bad, match in (("data.rain_mix={drizzle: 1}", "drizzle"), ("data.rain_mix={texture: -1}", ">= 0"),
                       ("data.texture_share=2", "texture_share"),
                       ("train.stage_schedule=[[0, 1], [0.5, 3]]", "stages must rise"),
                       ("train.stage_schedule=[[0.2, 1], [0.5, 2]]", "start at 0"),
                       ("train.stage_schedule=[[0, 1, 2]]", "expected")):
        with pytest.raises(ConfigError, match=match):
            load(None, [*base, bad])


def test_stages_at_follows_the_schedule() -> None:
    schedule = [[0.0, 4], [0.25, 8], [0.5, 12]]
    assert [stages_at(schedule, 100, i, 12) for i in (0, 24, 25, 49, 50, 99)] == [4, 4, 8, 8, 12, 12]
    assert stages_at([], 100, 0, 12) == 12


def test_grow_stages_reads_the_newest_output() -> None:
    net = DerainNet(DerainConfig(stages=4, channels=4))
    grow_stages(net, 2, 4)
    x = torch.rand(1, 3, 8, 8)
    _, outs = net(x, return_stages=True)
    parts = [outs[1], outs[0], x]  # newest first, as stage 3 sees them
    fused = net.stage_fusion[1](parts)
    assert torch.allclose(fused, outs[1], atol=1e-6)


def test_curriculum_runs_fewer_stages_first(clean_dir: Path, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    over = tiny_overrides(clean_dir, tmp_path / "c", **{"model.stages": 3, "train.iterations": 6,
                                                        "train.stage_schedule": "[[0, 1], [0.5, 3]]"})
    ran: list[int] = []
    forward = DerainNet.forward

    def spy(self, x, return_stages=False, stages=None):  # type: ignore[no-untyped-def]
        out = forward(self, x, return_stages=return_stages, stages=stages)
        if return_stages:
            ran.append(len(out[1]))
        return out

    monkeypatch.setattr(DerainNet, "forward", spy)
    weights = train(load(None, over), progress=False)
    assert ran == [1, 1, 1, 3, 3, 3]
    rows = (tmp_path / "c" / "log.csv").read_text().splitlines()
    header = rows[0].split(",")
    stages = [int(r.split(",")[header.index("stages")]) for r in rows[1:]]
    assert stages == [1, 1, 1, 3, 3, 3]
    assert weights.is_file()
