"""The run folder's checkpoint: written atomically, read without unpickling code, checked for an
exact resume (``same_recipe``), and the model card written beside the final weights."""

from __future__ import annotations

import pickle
import subprocess
import warnings
from pathlib import Path
from typing import Any

import torch

from derain_deploy.atomic import write_atomic_with
from derain_deploy.model import DerainNet
from derain_deploy.weights import file_sha256

from .config import Config, stages_at
from .datasets import RainDataset
from .errors import TrainingError

CHECKPOINT = "checkpoint.pt"


# train.* keys a resumed run may change (a new length re-places the relative LR milestones; a new
# batch size, as when a CPU run moves to a GPU, draws its samples from iteration x batch on).
RESUME_MAY_CHANGE = ("out", "threads", "checkpoint_every", "log_every", "iterations", "bf16", "device",
                     "workers", "batch", "ema_decay")


def code_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        v = version("derain-deploy")
    except PackageNotFoundError:
        v = "unknown"
    try:
        rev = subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True, text=True,
                             cwd=Path(__file__).parent, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        rev = ""
    return f"{v}+{rev}" if rev else v


def save_checkpoint_file(obj: Any, path: Path) -> None:
    """``torch.save`` to a temporary file renamed over ``path``: never a partial checkpoint."""
    write_atomic_with(path, lambda tmp: torch.save(obj, tmp))


def same_recipe(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """Config keys that differ in ways that break an exact resume."""
    defaults = Config().to_dict()  # keys added after a checkpoint was written count as their default
    diffs = []
    for section in ("model", "data", "loss", "optim", "train"):
        for k in set(a.get(section, {})) | set(b.get(section, {})):
            if section == "train" and k in RESUME_MAY_CHANGE:
                continue
            default = defaults.get(section, {}).get(k)
            if a.get(section, {}).get(k, default) != b.get(section, {}).get(k, default):
                diffs.append(f"{section}.{k}")
    return sorted(diffs)


CHECKPOINT_KEYS = ("model", "optimizer", "scheduler", "torch_rng", "iteration", "wall_s", "config")


def read_checkpoint(path: Path, what: str, keys: tuple[str, ...] = CHECKPOINT_KEYS) -> dict:
    """A trainer checkpoint's state, read with ``weights_only`` (tensors and plain containers:
    nothing a user hands over is unpickled as code); a file that is not one, or lacks one of
    ``keys``, is a TrainingError naming ``what`` (``train.init: ...``, ``cannot resume: ...``)."""
    try:
        with warnings.catch_warnings():  # torch warns about a foreign pickle before refusing it
            warnings.simplefilter("ignore", UserWarning)
            state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError, TypeError) as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise TrainingError(f"{what}: {path} is not a trainer checkpoint ({reason[:160]})") from None
    missing = [k for k in keys if k not in state] if isinstance(state, dict) else list(keys)
    if missing:
        raise TrainingError(f"{what}: {path} is not a trainer checkpoint (missing {', '.join(missing)})")
    return state


def checkpoint_weights(path: Path, average: bool = True) -> tuple[DerainNet, dict[str, str]]:
    """The model in a trainer checkpoint, for validating or bundling a run that has not ended:
    its weight average (``train.ema_decay``) or, with ``average=False``, the raw weights; and the
    metadata a weights file of it carries (iteration, which weights)."""
    from derain_deploy.model import DerainConfig

    state = read_checkpoint(path, "checkpoint weights")
    model = DerainNet(DerainConfig.from_dict(state["config"]["model"]))
    _refuse_untrained_stages(path, state, model.config.stages)
    if average:
        ema = state.get("ema")
        if not ema:
            raise TrainingError(f"{path} holds no weight average (train.ema_decay was 0); "
                                "ask for the raw weights")
        decay = state["config"]["train"].get("ema_decay", 0.0)
        model.load_state_dict({k.removeprefix("module."): v for k, v in ema.items()
                               if k.startswith("module.")})
        which = f"ema {decay:g} ({int(ema['n_averaged'])} steps averaged)"
    else:
        model.load_state_dict(state["model"])
        which = "raw"
    meta = {"iterations": str(int(state["iteration"])), "weights": which, "checkpoint_of": str(path)}
    return model.eval(), meta


def _refuse_untrained_stages(path: Path, state: dict, stages: int) -> None:
    """A run whose ``train.stage_schedule`` has not reached every stage yet has stages that never
    trained; a weights file of it would run them."""
    t = state["config"]["train"]
    schedule, total, done = t.get("stage_schedule") or [], int(t["iterations"]), int(state["iteration"])
    trained = stages_at(schedule, total, max(done - 1, 0), stages)
    if trained < stages:
        full = next(round(float(share) * total) for share, n in schedule if int(n) == stages)
        raise TrainingError(f"{path}: the run had trained {trained} of its {stages} stages at iteration "
                            f"{done}; checkpoints from iteration {full + 1} on have trained all {stages}")


def init_from(model: DerainNet, path: Path) -> None:
    """Load model weights (not the optimizer) from a weights file or a trainer checkpoint."""
    from derain_deploy.weights import WeightsError, load_weights

    if not path.is_file():
        raise TrainingError(f"train.init: {path} not found")
    try:
        if path.suffix == ".pt":
            state = read_checkpoint(path, "train.init", keys=("model",))["model"]
        else:
            state = load_weights(path).state_dict()
        model.load_state_dict(state)
    except (WeightsError, RuntimeError, KeyError) as e:
        raise TrainingError(f"train.init: cannot use {path} ({str(e).splitlines()[0]})") from None
    print(f"initialised from {path}", flush=True)


def model_card(cfg: Config, dataset: RainDataset, iterations: int, wall_s: float,
               validation: dict[str, dict[str, float]], weights: Path, bf16: bool) -> dict[str, Any]:
    mc = cfg.model_config()
    return {
        "name": cfg.train.name,
        "weights": weights.name,
        "sha256": file_sha256(weights),
        "model": mc.to_dict(),
        "parameters": DerainNet(mc).num_parameters(),
        "data": {
            "clean_folders": cfg.data.clean, "paired_folders": cfg.data.paired, "excluded": cfg.data.exclude,
            "clean_images": len(dataset.clean_files), "real_pairs": len(dataset.pairs),
            "synthetic_rain": cfg.data.rain, "paired_share": dataset.paired_share,
            "unreadable_skipped": dataset.log.skipped,
        },
        "recipe": {"loss": vars(cfg.loss), "optim": vars(cfg.optim), "batch": cfg.train.batch,
                   "crop": cfg.data.crop, "seed": cfg.train.seed, "bf16_autocast": bf16},
        "iterations": iterations,
        "wall_time_s": round(wall_s, 1),
        "validation_during_training": validation,
        "code_version": code_version(),
        "torch": torch.__version__,
    }
