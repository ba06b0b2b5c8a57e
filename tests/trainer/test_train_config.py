"""Config files: TOML and YAML, overrides, unknown keys and bad values rejected."""

from __future__ import annotations

from pathlib import Path

import pytest

from trainer.config import ConfigError, load


def test_default_recipe_loads() -> None:
    root = Path(__file__).resolve().parents[2]
    cfg = load(root / "trainer" / "configs" / "default.toml")
    assert cfg.optim.lr == 1e-3 and cfg.train.batch == 10 and cfg.data.crop == 100
    assert cfg.optim.milestones == [0.6, 0.8] and cfg.loss.perceptual == 0.0
    assert cfg.model_config().stages == 12
    stage2 = load(root / "trainer" / "configs" / "default_finetune.toml")
    assert stage2.train.init and stage2.data.rain_mix["none"] > 0 and stage2.val == cfg.val
    assert stage2.data.exclude == cfg.data.exclude  # the same held-out images


def test_toml_yaml_and_overrides(tmp_path: Path) -> None:
    (tmp_path / "a.toml").write_text('[train]\niterations = 7\n[model]\nstages = 3\n')
    (tmp_path / "a.yaml").write_text("train:\n  iterations: 7\nmodel:\n  stages: 3\n")
    for name in ("a.toml", "a.yaml"):
        cfg = load(tmp_path / name, ["train.seed=5", "data.clean=[x, y]", "model.residual_refinement=true"])
        assert cfg.train.iterations == 7 and cfg.train.seed == 5 and cfg.data.clean == ["x", "y"]
        assert cfg.model_config().stages == 3 and cfg.model_config().residual_refinement
    assert load(None, ["optim.lr=1"]).optim.lr == 1.0  # ints are accepted for floats
    assert load(None, ["optim.lr=1e-4"]).optim.lr == 1e-4  # YAML 1.1 would read a string


@pytest.mark.parametrize(
    "text, message",
    [
        ("[train]\niteration = 5\n", r"unknown key\(s\) in \[train\]: iteration"),
        ("[trian]\niterations = 5\n", r"unknown config section\(s\): trian"),
        ("[model]\nlayers = 5\n", "unknown model config keys: layers"),
        ("[model]\nstages = 0\n", "stages must be >= 1"),
        ('[train]\niterations = "many"\n', "train.iterations: expected an integer"),
        ("[train]\nchannels_last = 1\n", "expected true/false"),
        ("[optim]\nmilestones = [60, 80]\n", "shares of the iterations"),
        ("[data]\ncrop = 4\n", "data.crop must be >= 8"),
        ("[train\n", "cannot parse"),
    ],
)
def test_bad_configs(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load(path)


def test_bad_paths_and_overrides(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load(tmp_path / "nope.toml")
    (tmp_path / "c.json").write_text("{}")
    with pytest.raises(ConfigError, match=r"expected a \.toml"):
        load(tmp_path / "c.json")
    with pytest.raises(ConfigError, match=r"section\.key=value"):
        load(None, ["iterations=5"])


def test_rain_mix() -> None:
    cfg = load(None, ["data.rain_mix={light: 0.5, none: 0.5}"])
    assert cfg.data.rain_mix == {"light": 0.5, "none": 0.5}
    with pytest.raises(ConfigError, match=r"data\.rain_mix: bad rain mix"):
        load(None, ["data.rain_mix={fog: 1}"])
    with pytest.raises(ConfigError, match="expected a table"):
        load(None, ["data.rain_mix=3"])


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("optim.lr=-1e-3", "optim.lr must be > 0"),
        ("optim.lr=.nan", "optim.lr: expected a finite number"),
        ("optim.lr=.inf", "optim.lr: expected a finite number"),
        ("optim.gamma=-5", r"optim.gamma must be in \(0, 1\]"),
        ("optim.gamma=1.5", r"optim.gamma must be in \(0, 1\]"),
        ("optim.grad_clip=-1", "optim.grad_clip must be >= 0"),
        ("loss.l1=.nan", "loss.l1: expected a finite number"),
        ("train.threads=-4", "train.threads must be >= 0"),
        ("train.checkpoint_every=0", "train.checkpoint_every must be >= 1"),
        ("data.rain=drizzle", "data.rain: unknown rain preset 'drizzle'"),
        ("val.presets=[drizzle]", "val.presets: unknown rain preset 'drizzle'"),
        ("data.crop=100000", "data.crop must be at most 4096"),
        ("model.channels=10000000", "model: channels 10000000 is out of range 1..256"),
        ("model.stages=300000", "model: stages 300000 is out of range 1..64"),
    ],
)
def test_values_are_validated_key_by_key(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as err:
        load(None, [override])
    assert "\n" not in str(err.value)


def test_out_must_not_be_a_file(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("a file")
    with pytest.raises(ConfigError, match=r"train.out .* is a file"):
        load(None, [f"train.out={tmp_path / 'f'}"])
