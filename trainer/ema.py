"""An exponential moving average of the model's weights (``torch.optim.swa_utils.AveragedModel``
with its EMA update): validated beside the raw weights and saved as the run's weights.

At the first learning rate the raw weights' validation swings by 2-4 dB from one check to the
next (the v2 run, iterations 7,500-10,000); an average over the last ~1/(1 - decay) steps does not
follow each swing. The average never feeds the training: turning it on changes nothing in the
raw weights' trajectory, so a run may be resumed with it (``train.ema_decay``)."""

from __future__ import annotations

from typing import Any

import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from derain_deploy.model import DerainNet


def make_ema(model: DerainNet, decay: float) -> AveragedModel | None:
    """The average of ``model`` from its weights now (None: ``decay`` 0, no average)."""
    if not 0.0 <= decay < 1.0:
        raise ValueError(f"train.ema_decay must be in [0, 1), got {decay}")
    if decay == 0.0:
        return None
    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)


def restore_ema(ema: AveragedModel | None, state: dict[str, Any]) -> str:
    """Load a checkpoint's average into ``ema``; what happened, in words for the log."""
    if ema is None:
        return ""
    saved = state.get("ema")
    if not saved:
        return "ema: the checkpoint has no average; it starts from the resumed weights"
    ema.load_state_dict(saved)
    return f"ema: resumed ({int(ema.n_averaged)} steps averaged)"


def averaged(ema: AveragedModel) -> DerainNet:
    """The averaged model itself (a DerainNet, on the training device)."""
    module = ema.module
    assert isinstance(module, DerainNet)
    return module


def ema_state(ema: AveragedModel | None) -> dict[str, torch.Tensor] | None:
    return None if ema is None else ema.state_dict()
