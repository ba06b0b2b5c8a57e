"""Run the net on images: numpy in, numpy out (the one helper the builder's checks, the stages
preview and derain-eval use; backends wrap their runtimes themselves)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .model import DerainNet


def run_net(
    net: DerainNet, batch: np.ndarray, stages: int | None = None, return_stages: bool = False
) -> np.ndarray | tuple[np.ndarray, list[np.ndarray]]:
    """``net`` on an Nx3xHxW float batch in inference mode, on the net's own device and dtype
    (a ``.half()`` net computes in FP16); float32 numpy out, with the stage outputs O_1..O_T
    when ``return_stages``. Not clipped."""
    import torch

    param = next(net.parameters())
    x = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).to(param.device, param.dtype)
    with torch.inference_mode():
        if not return_stages:
            return net(x, stages=stages).float().cpu().numpy()
        out, outs = net(x, stages=stages, return_stages=True)
    return out.float().cpu().numpy(), [s.float().cpu().numpy() for s in outs]


def image_batch(image: np.ndarray) -> np.ndarray:
    """One HxWx3 float RGB image as a 1x3xHxW float32 batch."""
    return np.ascontiguousarray(np.asarray(image, dtype=np.float32).transpose(2, 0, 1)[None])


def batch_image(batch: np.ndarray) -> np.ndarray:
    """The first image of an Nx3xHxW output batch as HxWx3 float32, clipped to [0, 1]."""
    return np.clip(batch[0].transpose(1, 2, 0), 0.0, 1.0).astype(np.float32, copy=False)


def on_image(run: Callable[[np.ndarray], np.ndarray], image: np.ndarray) -> np.ndarray:
    """One HxWx3 float RGB image through ``run`` (a backend, or ``lambda b: run_net(net, b)``),
    which takes and returns Nx3xHxW batches; HxWx3 float32 in [0, 1] out."""
    return batch_image(run(image_batch(image)))
