"""Texture negatives: detailed windows are chosen, drawn structure changes the scene, stays in range."""

from __future__ import annotations

import numpy as np

from trainer.negatives import detail, scene_structure, textured_window


def test_textured_window_picks_the_detailed_half() -> None:
    img = np.full((64, 128, 3), 0.5, np.float32)
    img[:, 64:] = np.random.default_rng(0).random((64, 64, 3))  # noise on the right half only
    picks = [textured_window(img, 32, np.random.default_rng(s), candidates=8)[1] for s in range(10)]
    assert np.mean([x >= 48 for x in picks]) >= 0.9
    assert detail(img[:, 64:]) > 10 * detail(img[:, :64]) + 1e-6


def test_scene_structure_draws_and_stays_in_range() -> None:
    img = np.full((64, 64, 3), 0.4, np.float32)
    for seed in range(12):
        out = scene_structure(img, np.random.default_rng(seed))
        assert out.shape == img.shape and out.dtype == np.float32
        assert out.min() >= 0.0 and out.max() <= 1.0
        assert np.abs(out - img).max() > 0.1, f"seed {seed} drew nothing"
    a = scene_structure(img, np.random.default_rng(3))
    assert np.array_equal(a, scene_structure(img, np.random.default_rng(3)))
