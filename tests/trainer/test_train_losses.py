"""The objective: its terms, and VGG16 weights from a local file or a clear error."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from trainer.losses import DerainLoss, LossError, VGG16Features


def test_perfect_prediction_has_zero_loss() -> None:
    clean = torch.rand(2, 3, 8, 8)
    rain = torch.rand(2, 3, 8, 8) * 0.2
    rainy = clean + rain
    terms = DerainLoss()(rainy, clean, rain, clean, [clean, clean])
    assert float(terms.total) == pytest.approx(0.0, abs=1e-7)
    bad = DerainLoss(stage_mse=1.0, l1=0.0)(rainy, clean, rain, clean, [rainy, clean])
    assert bad.stage_mse == pytest.approx(float((rain**2).mean()), rel=1e-5) and bad.l1 == 0.0


def test_missing_vgg_weights_say_where_to_put_them(tmp_path: Path) -> None:
    with pytest.raises(LossError, match=r"vgg16-397923af\.pth at .*missing\.pth"):
        DerainLoss(perceptual=0.1, vgg_weights=str(tmp_path / "missing.pth"))


def test_vgg_weights_from_safetensors_and_torch_file(tmp_path: Path) -> None:
    ref = VGG16Features()
    state = {f"features.{k.split('.', 1)[1]}": v for k, v in ref.state_dict().items()}
    state["classifier.0.weight"] = torch.zeros(2, 2)  # the rest of torchvision's file is ignored
    save_file(state, str(tmp_path / "vgg16.safetensors"))
    torch.save(state, tmp_path / "vgg16.pth")
    for name in ("vgg16.safetensors", "vgg16.pth"):
        loss = DerainLoss(perceptual=1.0, vgg_weights=str(tmp_path / name))
        assert torch.equal(loss.vgg.features[14].weight, ref.features[14].weight)
        x = torch.rand(1, 3, 16, 16)
        terms = loss(x, x, torch.zeros_like(x), x * 0.5, [x])
        assert terms.perceptual > 0 and not loss.vgg.features[0].weight.requires_grad
    save_file({"features.0.weight": torch.zeros(64, 3, 3, 3)}, str(tmp_path / "partial.safetensors"))
    with pytest.raises(LossError, match="not VGG16 weights"):
        DerainLoss(perceptual=1.0, vgg_weights=str(tmp_path / "partial.safetensors"))
