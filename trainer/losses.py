"""The paper's objective: per-stage rain MSE + L1 on the refined output + VGG16 perceptual L1.

VGG16 weights cannot be downloaded here. The feature layers are defined below (torchvision's
``vgg16().features`` indices, up to relu3_3) and loaded from a local file: a safetensors file or
torchvision's own ``vgg16-397923af.pth`` state dict, read with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

VGG16_FILE = "vgg16-397923af.pth"  # torchvision's file name for the ImageNet VGG16 weights
# torchvision vgg16().features up to relu3_3: (index, in, out) of each conv; "M" is a max pool.
_VGG16_LAYERS: list[tuple[int, int, int] | str] = [
    (0, 3, 64), (2, 64, 64), "M", (5, 64, 128), (7, 128, 128), "M",
    (10, 128, 256), (12, 256, 256), (14, 256, 256),
]
_MEAN = (0.485, 0.456, 0.406)
_STD = (0.229, 0.224, 0.225)


class LossError(ValueError):
    """A loss that cannot be built (e.g. VGG16 weights missing); one line."""


def vgg_search_paths(explicit: str = "") -> list[Path]:
    if explicit:
        return [Path(explicit).expanduser()]
    hub = Path(torch.hub.get_dir()) / "checkpoints"
    return [hub / VGG16_FILE, hub / "vgg16.safetensors"]


class VGG16Features(nn.Module):
    """torchvision's VGG16 ``features[:16]`` (relu3_3), frozen, on [0, 1] RGB input."""

    def __init__(self) -> None:
        super().__init__()
        layers: dict[str, nn.Module] = {}
        i = 0
        for spec in _VGG16_LAYERS:
            if spec == "M":
                layers[str(i)] = nn.MaxPool2d(2, 2)
                i += 1
            else:
                idx, cin, cout = spec  # type: ignore[misc]
                layers[str(idx)] = nn.Conv2d(cin, cout, 3, padding=1)
                layers[str(idx + 1)] = nn.ReLU(inplace=False)
                i = idx + 2
        self.features = nn.Sequential()
        for k, m in layers.items():
            self.features.add_module(k, m)
        self.register_buffer("mean", torch.tensor(_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_STD).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)

    def load(self, path: Path) -> None:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
        wanted = {k: v for k, v in state.items() if k.startswith("features.") and
                  k.split(".")[1] in dict(self.features.named_children())}
        missing = set(self.state_dict()) - set(wanted)
        if missing:
            raise LossError(f"{path}: not VGG16 weights (missing {sorted(missing)[:3]})")
        self.load_state_dict(wanted)

    def forward(self, x: Tensor) -> Tensor:
        return self.features((x - self.mean) / self.std)


def load_vgg16(explicit: str = "") -> VGG16Features:
    for path in vgg_search_paths(explicit):
        if path.is_file():
            net = VGG16Features()
            net.load(path)
            return net.eval()
    where = " or ".join(str(p) for p in vgg_search_paths(explicit))
    raise LossError(
        f"the perceptual loss needs ImageNet VGG16 weights: put torchvision's {VGG16_FILE} at {where} "
        "(or set loss.vgg_weights), or set loss.perceptual=0"
    )


@dataclass
class LossTerms:
    total: Tensor
    stage_mse: float
    l1: float
    perceptual: float


class DerainLoss(nn.Module):
    """``w_mse * sum_t MSE(O_0 - O_t, R) + w_l1 * L1(B_hat, B) + w_p * L1(VGG(B_hat), VGG(B))``."""

    def __init__(self, stage_mse: float = 1.0, l1: float = 1.0, perceptual: float = 0.0,
                 vgg_weights: str = "") -> None:
        super().__init__()
        self.w_mse, self.w_l1, self.w_p = stage_mse, l1, perceptual
        self.vgg = load_vgg16(vgg_weights) if perceptual > 0 else None

    def forward(self, rainy: Tensor, clean: Tensor, rain: Tensor, out: Tensor,
                stages: list[Tensor]) -> LossTerms:
        mse = sum((F.mse_loss(rainy - o, rain) for o in stages), torch.zeros((), device=rainy.device))
        l1 = F.l1_loss(out, clean)
        total = self.w_mse * mse + self.w_l1 * l1
        perc = torch.zeros((), device=rainy.device)
        if self.vgg is not None:
            perc = F.l1_loss(self.vgg(out), self.vgg(clean))
            total = total + self.w_p * perc
        return LossTerms(total, float(mse.detach()), float(l1.detach()), float(perc.detach()))
