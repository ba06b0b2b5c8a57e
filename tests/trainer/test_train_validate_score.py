"""The validation rule: one score, guards on parts, rain-free change and images made worse."""

from __future__ import annotations

import copy

import pytest

from trainer.validate import score, share_worse, verdict


def _metrics(light: float, heavy: float, real: float, clean: float = 36.0, texture: float = 35.0,
             better: float = 1.0) -> dict[str, dict[str, float]]:
    rainy = {"input_psnr_y": 20.0, "input_ssim_y": 0.5, "output_ssim_y": 0.8}
    return {
        "synthetic-light": {"n": 20, **rainy, "output_psnr_y": light, "share_better": better},
        "synthetic-heavy": {"n": 20, **rainy, "output_psnr_y": heavy, "share_better": 1.0},
        "real": {"n": 4, **rainy, "output_psnr_y": real, "share_better": 1.0},
        "clean": {"n": 20, "change_psnr_y": clean, "change_psnr_y_min": 20.0, "change_ssim_y": 0.98},
        "texture": {"n": 20, "change_psnr_y": texture, "change_psnr_y_min": 20.0, "change_ssim_y": 0.98},
    }


def test_score_is_the_mean_of_the_three_parts() -> None:
    assert score(_metrics(30.0, 21.0, 27.0)) == pytest.approx(26.0)
    broken = _metrics(30.0, 21.0, 27.0)
    del broken["real"]
    with pytest.raises(ValueError, match="no real part"):
        score(broken)


def test_share_worse_counts_images() -> None:
    assert share_worse(_metrics(30, 21, 27, better=0.9)) == pytest.approx(2 / 44)


def test_verdict_accepts_a_better_candidate_and_names_each_guard() -> None:
    base = _metrics(30.0, 21.0, 27.0)
    assert verdict(_metrics(32.0, 24.0, 29.0, clean=36.5), base) == []
    # A noise-level trade on one part no longer blocks a candidate that is better overall.
    assert verdict(_metrics(32.0, 24.0, 26.8), base) == []
    reasons = verdict(_metrics(29.5, 21.0, 26.0, clean=35.0, better=0.7), base)
    text = " | ".join(reasons)
    for needle in ("score", "real is 1.00 dB worse", "rain-free part clean", "worse than their input"):
        assert needle in text, text
    same = copy.deepcopy(base)
    assert any("not above" in r for r in verdict(same, base))
