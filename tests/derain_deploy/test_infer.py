"""The one "run the net on images" helper: numpy NCHW in, float32 numpy out, inference mode on
the net's own device and dtype; one HxWx3 image through any batch callable."""

from __future__ import annotations

import numpy as np
import torch

from derain_deploy.infer import on_image, run_net
from derain_deploy.model import DerainConfig, DerainNet

TINY = DerainConfig(stages=2, channels=4)


def _net() -> DerainNet:
    torch.manual_seed(0)
    return DerainNet(TINY).eval()


def test_run_net_matches_the_module_and_returns_float32() -> None:
    net, batch = _net(), np.random.default_rng(0).random((2, 3, 16, 20), dtype=np.float32)
    with torch.no_grad():
        expected = net(torch.from_numpy(batch), stages=1).numpy()
    assert np.array_equal(run_net(net, batch, stages=1), expected)
    half = run_net(_net().half(), batch)  # the net's dtype: FP16 arithmetic, float32 out
    assert half.dtype == np.float32 and np.abs(half - run_net(net, batch)).max() < 0.05
    out, stages = run_net(net, batch, return_stages=True)
    assert len(stages) == TINY.stages and np.array_equal(out, run_net(net, batch))


def test_on_image_runs_one_hwc_image_through_a_batch_callable() -> None:
    net, image = _net(), np.random.default_rng(1).random((12, 14, 3), dtype=np.float32)
    out = on_image(lambda b: run_net(net, b), image)
    assert out.shape == image.shape and out.dtype == np.float32 and out.min() >= 0 and out.max() <= 1
    assert np.array_equal(
        out, np.clip(run_net(net, image.transpose(2, 0, 1)[None])[0].transpose(1, 2, 0), 0, 1)
    )


def test_the_callers_use_it() -> None:
    from derain_deploy.backends.torch_backend import TorchBackend
    from derain_deploy.build import verify
    from derain_deploy.evaluate import run_image
    from derain_deploy.streams.stages_preview import stage_outputs

    net, batch = _net(), np.random.default_rng(2).random((1, 3, 16, 16), dtype=np.float32)
    assert np.array_equal(verify.run_eager(net, batch, 1), run_net(net, batch, stages=1))
    image = batch[0].transpose(1, 2, 0)
    stages, out = stage_outputs(net, image)
    assert np.array_equal(out, on_image(lambda b: run_net(net, b), image)) and len(stages) == TINY.stages
    rainy = np.round(image * 255).astype(np.uint8)
    backend = TorchBackend(net)
    expected = np.round(on_image(backend, rainy.astype(np.float32) / 255) * 255).astype(np.uint8)
    assert np.array_equal(run_image(backend, rainy), expected)
