"""The one rainy-test-input helper: a natural photo under synthetic rain, as one frame, a batch
or a panning clip; the builder's, the bench's, the demo's and the tiling study's inputs are it."""

from __future__ import annotations

import numpy as np
import pytest

from derain_deploy import rainy_inputs
from derain_deploy.rainy_inputs import rainy_batch, rainy_frame


def test_a_frame_is_deterministic_and_rain_only_adds_light() -> None:
    rainy, clean = rainy_frame(40, 56, seed=3)
    assert rainy.shape == clean.shape == (40, 56, 3) and rainy.dtype == clean.dtype == np.float32
    assert (
        clean.min() >= 0
        and rainy.max() <= 1
        and (rainy >= clean - 1e-6).all()
        and (rainy > clean + 0.05).any()
    )
    again = rainy_frame(40, 56, seed=3)
    assert np.array_equal(rainy, again[0]) and np.array_equal(clean, again[1])
    assert not np.array_equal(clean, rainy_frame(40, 56, seed=4)[1])  # another photo
    big, _ = rainy_frame(600, 700, seed=0, photo_name="astronaut")  # upscaled to cover
    assert big.shape == (600, 700, 3) and big.min() >= 0 and big.max() <= 1
    with pytest.raises(ValueError, match="no sample image 'nope'"):
        rainy_frame(8, 8, photo_name="nope")


def test_batches_centred_or_drawn_from_one_generator() -> None:
    rainy, clean = rainy_batch(24, 32, 3, seed=1)
    assert rainy.shape == clean.shape == (3, 3, 24, 32) and rainy.flags.c_contiguous
    assert np.array_equal(rainy[1], rainy_frame(24, 32, seed=2)[0].transpose(2, 0, 1))  # frame i: seed + i
    drawn, _ = rainy_batch(24, 32, 3, seed=1, preset="mixed", random=True)
    assert drawn.shape == (3, 3, 24, 32) and np.array_equal(
        drawn, rainy_batch(24, 32, 3, 1, "mixed", random=True)[0]
    )
    assert not np.array_equal(drawn, rainy)


def test_every_caller_uses_the_one_helper() -> None:
    from derain_deploy import bench
    from derain_deploy.build import verify
    from derain_deploy.streams import synthetic

    assert bench.rainy_frame is rainy_frame and bench.rainy_batch is rainy_batch
    assert bench.PHOTOS is rainy_inputs.PHOTOS
    rainy, clean = verify.rainy_images(2, 16, 24, seed=5)
    expected = rainy_batch(16, 24, 2, seed=5, preset="mixed", random=True)
    assert np.array_equal(rainy, expected[0]) and np.array_equal(clean, expected[1])
    _, cleans = synthetic.rainy_clip("coffee", frames=2, size=(16, 24), pan=3)
    assert np.array_equal(cleans[1][:, :-3], cleans[0][:, 3:])  # the window pans 3 pixels a frame
    assert not hasattr(verify, "_background")
