"""Training configuration: nested dataclasses read from TOML or YAML, unknown keys rejected.

Command-line overrides are ``section.key=value`` strings (the value is parsed as YAML, so
``train.iterations=2000``, ``data.clean=[a, b]`` and ``model.residual_refinement=true`` work).
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from derain_deploy.model import DerainConfig
from derain_deploy.rain import sample_params
from derain_deploy.weights import check_config_bounds


class ConfigError(ValueError):
    """A configuration that cannot be used; the message is one line."""


@dataclass
class DataConfig:
    clean: list[str] = field(default_factory=list)  # folders of clean images (synthetic rain)
    paired: list[str] = field(default_factory=list)  # folders in a published paired layout
    exclude: list[str] = field(default_factory=list)  # file stems / pair names kept out of training
    paired_share: float = 0.15  # share of samples drawn from paired data when both kinds exist
    rain: str = "mixed"  # synthetic rain preset: light, medium, heavy, none, mixed
    # shares for "mixed" (empty: the default); besides the presets: transplant, texture (trainer.datasets)
    rain_mix: dict[str, float] = field(default_factory=dict)
    texture_share: float = 0.0  # share of rainy synthetic crops taken from detailed windows
    crop: int = 100
    flip: bool = True


@dataclass
class LossConfig:
    stage_mse: float = 1.0  # sum over stages of MSE(O_0 - O_t, R)
    l1: float = 1.0  # L1(B_hat, B) on the refined output
    perceptual: float = 0.0  # L1 on VGG16 features (needs local VGG16 weights)
    vgg_weights: str = ""  # a file; empty: torchvision's cache (~/.cache/torch/hub/checkpoints)


@dataclass
class OptimConfig:
    lr: float = 1e-3
    milestones: list[float] = field(default_factory=lambda: [0.6, 0.8])  # shares of iterations
    gamma: float = 0.1
    grad_clip: float = 0.0  # 0: off


@dataclass
class TrainConfig:
    iterations: int = 400_000
    batch: int = 10
    seed: int = 0
    threads: int = 0  # 0: torch's default
    device: str = "cpu"  # cpu, cuda or cuda:N (a GPU that is missing stops the run)
    workers: int = 0  # data-loading processes (0: in the training process; a GPU needs several)
    channels_last: bool = True
    # bfloat16 autocast for forward/backward on the CPU: true, false, or "auto" (on where the CPU has
    # native bf16: AMX/AVX512-BF16 ran a step 1.3x faster; AVX2 emulates it, 10x slower than FP32)
    bf16: bool | str = False
    identity_init: bool = True  # rain head scaled down, residual refinement zeroed: starts near identity
    checkpoint_every: int = 500
    log_every: int = 10
    init: str = ""  # start from these weights (a .safetensors file or a trainer checkpoint.pt)
    # curriculum: [[share, stages], ...] trains with `stages` stages from `share` of the iterations on
    # (shares rising from 0, stages rising to the model's); empty: all stages throughout
    stage_schedule: list[list[float]] = field(default_factory=list)
    out: str = "runs/derain"
    name: str = "derain"
    # weights averaged over ~1/(1 - decay) steps (trainer/ema.py), validated beside the raw ones and
    # saved as the run's weights; 0: none. It does not change training, so a resumed run may set it
    ema_decay: float = 0.0


@dataclass
class ValConfig:
    every: int = 500  # 0: no periodic validation
    clean: list[str] = field(default_factory=list)  # clean images (files or folders): synthetic rain
    texture: list[str] = field(default_factory=list)  # detailed rain-free images: part "texture"
    paired: list[str] = field(default_factory=list)  # paired folders
    paired_names: list[str] = field(default_factory=list)  # pick these pairs only (empty: all)
    presets: list[str] = field(default_factory=lambda: ["light", "heavy"])
    crop: int = 160  # centre crop for periodic validation (0: full images)
    seed: int = 1234
    max_images: int = 8  # per part


@dataclass
class Config:
    model: dict[str, Any] = field(default_factory=dict)
    data: DataConfig = field(default_factory=DataConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    val: ValConfig = field(default_factory=ValConfig)

    def model_config(self) -> DerainConfig:
        try:
            config = DerainConfig.from_dict(self.model)
            check_config_bounds(config)  # sizes a file may claim: 10^7 channels fail at once
            return config
        except (TypeError, ValueError) as e:
            raise ConfigError(f"model: {e}") from None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


SECTIONS = {
    "data": DataConfig, "loss": LossConfig, "optim": OptimConfig, "train": TrainConfig, "val": ValConfig,
}


AUTO_OR_BOOL = {("train", "bf16")}  # keys that take true, false or "auto"


def _check_type(where: str, value: Any, default: Any) -> Any:
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true/false, got {value!r}")
    elif isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
    elif isinstance(default, float):
        if isinstance(value, str):  # YAML 1.1 reads 1e-4 (no dot) as a string
            with contextlib.suppress(ValueError):
                value = float(value)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        value = float(value)
        if not math.isfinite(value):
            raise ConfigError(f"{where}: expected a finite number, got {value!r}")
    elif isinstance(default, str) and not isinstance(value, str):
        raise ConfigError(f"{where}: expected a string, got {value!r}")
    elif isinstance(default, list) and not isinstance(value, list):
        raise ConfigError(f"{where}: expected a list, got {value!r}")
    elif isinstance(default, dict) and not isinstance(value, dict):
        raise ConfigError(f"{where}: expected a table, got {value!r}")
    return value


def from_dict(data: dict[str, Any]) -> Config:
    """Build a :class:`Config`; every key must be known and of the right type."""
    if not isinstance(data, dict):
        raise ConfigError("config must be a mapping of sections")
    unknown = set(data) - set(SECTIONS) - {"model"}
    if unknown:
        raise ConfigError(f"unknown config section(s): {', '.join(sorted(unknown))}")
    cfg = Config()
    model = data.get("model", {})
    if not isinstance(model, dict):
        raise ConfigError("model: expected a table of DerainConfig fields")
    cfg.model = dict(model)
    cfg.model_config()  # validates the keys
    for name, cls in SECTIONS.items():
        section = data.get(name, {})
        if not isinstance(section, dict):
            raise ConfigError(f"{name}: expected a table")
        obj = getattr(cfg, name)
        known = {f.name for f in dataclasses.fields(cls)}
        bad = set(section) - known
        if bad:
            raise ConfigError(
                f"unknown key(s) in [{name}]: {', '.join(sorted(bad))} (known: {', '.join(sorted(known))})"
            )
        for key, value in section.items():
            if (name, key) in AUTO_OR_BOOL and value == "auto":
                setattr(obj, key, value)
                continue
            setattr(obj, key, _check_type(f"{name}.{key}", value, getattr(obj, key)))
    _validate(cfg)
    return cfg


def _validate(cfg: Config) -> None:
    t, d = cfg.train, cfg.data
    if t.iterations < 1 or t.batch < 1:
        raise ConfigError("train.iterations and train.batch must be >= 1")
    if d.crop < 8:
        raise ConfigError(f"data.crop must be >= 8, got {d.crop}")
    if not 0.0 <= d.paired_share <= 1.0:
        raise ConfigError(f"data.paired_share must be in [0, 1], got {d.paired_share}")
    if any(not 0.0 < m < 1.0 for m in cfg.optim.milestones):
        raise ConfigError(
            f"optim.milestones are shares of the iterations in (0, 1), got {cfg.optim.milestones}"
        )
    if d.rain_mix:
        from .datasets import TEXTURE, TRANSPLANT

        presets = {k: v for k, v in d.rain_mix.items() if k not in (TRANSPLANT, TEXTURE)}
        own = {k: v for k, v in d.rain_mix.items() if k in (TRANSPLANT, TEXTURE)}
        if any(not isinstance(v, (int, float)) or not 0 <= v < float("inf") for v in own.values()):
            raise ConfigError(f"data.rain_mix: shares must be numbers >= 0, got {own}")
        try:
            if presets or not own:
                sample_params("mixed", np.random.default_rng(0), presets)
        except ValueError as e:
            raise ConfigError(f"data.rain_mix: {e}") from None
        if sum(d.rain_mix.values()) <= 0:
            raise ConfigError("data.rain_mix: the shares add up to 0")
    _validate_schedule(t.stage_schedule, cfg.model_config().stages)
    gpu = t.device == "cuda" or (t.device.startswith("cuda:") and t.device[5:].isdigit())
    if t.device != "cpu" and not gpu:
        raise ConfigError(f"train.device: expected cpu, cuda or cuda:N, got {t.device!r}")
    if t.workers < 0:
        raise ConfigError(f"train.workers must be >= 0, got {t.workers}")
    if not 0.0 <= t.ema_decay < 1.0:
        raise ConfigError(f"train.ema_decay must be in [0, 1) (0: no average), got {t.ema_decay}")
    if not 0.0 <= d.texture_share <= 1.0:
        raise ConfigError(f"data.texture_share must be in [0, 1], got {d.texture_share}")
    if min(cfg.loss.stage_mse, cfg.loss.l1, cfg.loss.perceptual) < 0:
        raise ConfigError("loss weights must be >= 0")
    _validate_ranges(cfg)


MAX_CROP = 4096


def _validate_ranges(cfg: Config) -> None:
    """Ranges, preset names and paths, key by key (non-finite numbers are refused on reading)."""
    o, t, d, v = cfg.optim, cfg.train, cfg.data, cfg.val
    if o.lr <= 0:
        raise ConfigError(f"optim.lr must be > 0, got {o.lr}")
    if not 0 < o.gamma <= 1:
        raise ConfigError(f"optim.gamma must be in (0, 1] (it multiplies the learning rate), got {o.gamma}")
    if o.grad_clip < 0:
        raise ConfigError(f"optim.grad_clip must be >= 0 (0: off), got {o.grad_clip}")
    if d.crop > MAX_CROP:
        raise ConfigError(f"data.crop must be at most {MAX_CROP}, got {d.crop}")
    for key, low in (("threads", 0), ("checkpoint_every", 1), ("log_every", 1)):
        if getattr(t, key) < low:
            raise ConfigError(f"train.{key} must be >= {low}, got {getattr(t, key)}")
    for key, low in (("every", 0), ("crop", 0), ("max_images", 1)):
        if getattr(v, key) < low:
            raise ConfigError(f"val.{key} must be >= {low}, got {getattr(v, key)}")
    for where, names in (("data.rain", [d.rain]), ("val.presets", v.presets)):
        for name in names:
            if name == "mixed" and where == "data.rain":
                continue  # its shares, data.rain_mix, are checked above
            try:
                sample_params(name, np.random.default_rng(0))
            except (ValueError, TypeError) as e:
                raise ConfigError(f"{where}: {e}") from None
    if Path(t.out).is_file():
        raise ConfigError(f"train.out {t.out} is a file; it must be a folder (the run folder)")


def _validate_schedule(schedule: list[list[float]], stages: int) -> None:
    if not schedule:
        return
    where = "train.stage_schedule"
    try:
        shares = [float(e[0]) for e in schedule]
        counts = [e[1] for e in schedule]
        ok = all(len(e) == 2 for e in schedule) and all(isinstance(c, int) and not isinstance(c, bool)
                                                         for c in counts)
    except (TypeError, ValueError, IndexError):
        ok = False
    if not ok:
        raise ConfigError(f"{where}: expected [[share, stages], ...], got {schedule!r}")
    if shares[0] != 0.0 or any(not 0.0 <= a < b < 1.0 for a, b in itertools.pairwise(shares)):
        raise ConfigError(f"{where}: shares must start at 0 and rise below 1, got {shares}")
    if any(not 1 <= a < b for a, b in itertools.pairwise(counts)) or counts[-1] != stages or counts[0] < 1:
        raise ConfigError(f"{where}: stages must rise from >= 1 to the model's {stages}, got {counts}")


def stages_at(schedule: list[list[float]], iterations: int, iteration: int, stages: int) -> int:
    """Stages trained at 0-based ``iteration`` under a ``train.stage_schedule``."""
    n = stages
    for share, count in schedule:
        if iteration >= round(float(share) * iterations):
            n = int(count)
    return n


def load(path: str | Path | None, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Read a TOML (.toml) or YAML (.yaml/.yml) file, apply ``section.key=value`` overrides."""
    data: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        text = path.read_text()
        try:
            if path.suffix.lower() == ".toml":
                import tomllib

                data = tomllib.loads(text)
            elif path.suffix.lower() in (".yaml", ".yml"):
                data = yaml.safe_load(text) or {}
            else:
                raise ConfigError(f"{path}: expected a .toml, .yaml or .yml file")
        except (ValueError, yaml.YAMLError) as e:
            if isinstance(e, ConfigError):
                raise
            raise ConfigError(f"{path}: cannot parse ({str(e).splitlines()[0]})") from None
    for item in overrides:
        key, sep, raw = item.partition("=")
        parts = key.strip().split(".")
        if not sep or len(parts) != 2 or not all(parts):
            raise ConfigError(f"override {item!r}: expected section.key=value")
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError:
            value = raw
        if value is None:
            value = ""
        section = data.setdefault(parts[0], {})
        if not isinstance(section, dict):
            raise ConfigError(f"override {item!r}: {parts[0]} is not a table")
        section[parts[1]] = value
    return from_dict(data)
