"""The coarse-to-fine deraining network: one definition for trainer, export and runtime.

Reading of the paper (Sec. III, IV-A) that this module implements, with C channels and T stages:

- stage t = 1..T (weights shared across stages except the per-stage fusion conv):
  ``X_t = fs(Conv1x1_t(Cat[O_{t-1}, ..., O_0]))`` (stage 1 takes ``O_0`` directly),
  ``Y_t = DCDCB(X_t)``, ``R_t = rs(Y_t)``, ``O_t = O_0 - R_t``;
- ``fs``: 3x3 conv 3 -> C + LeakyReLU; ``rs``: 3x3 conv C -> 3 (linear, it is a rain layer);
- DCDCB: ``z_l = LReLU(Conv3x3_dil(Conv1x1(Cat[z_{l-1}, ..., z_0])))`` for l = 1..4 with
  dilations 1, 2, 4, 8 (no 1x1 for l = 1), then ``z_fusion = LReLU(Conv1x1(Cat[z_4..z_0]))``;
- refinement ``B = Conv1x1(LReLU(Conv3x3(LReLU(Conv3x3(O_T)))))``, 3 -> C -> C -> 3;
  optionally residual, ``B = O_T + refine(O_T)``.

Parameter count: 17,356 for the default config, where the paper reports 17,305. The gap of 51
equals the refinement's final 1x1 conv (16*3 + 3 = 51) and also equals the biases of the DCDCB's
three inner 1x1 convs plus the bias of ``rs`` (16*3 + 3 = 51); the text does not say which one
the paper left out of its count, so this module keeps every layer the equations name, with bias.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

NEGATIVE_SLOPE = 0.2


@dataclass(frozen=True)
class DerainConfig:
    """Architecture of :class:`DerainNet`; the paper's ablations are switches here."""

    stages: int = 12
    channels: int = 16
    dilations: tuple[int, ...] = (1, 2, 4, 8)
    inner_dense: bool = True
    outer_dense: bool = True
    refinement: bool = True
    residual_refinement: bool = False
    extra: dict = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.stages < 1:
            raise ValueError(f"stages must be >= 1, got {self.stages}")
        if self.channels < 1:
            raise ValueError(f"channels must be >= 1, got {self.channels}")
        if not self.dilations or any(d < 1 for d in self.dilations):
            raise ValueError(f"dilations must be a non-empty list of integers >= 1, got {self.dilations}")
        object.__setattr__(self, "dilations", tuple(int(d) for d in self.dilations))

    @classmethod
    def ablation(cls, name: str, **overrides: object) -> DerainConfig:
        """The paper's ablations by name: no-dilation, no-inner-dense, no-outer-dense,
        no-all-dense, no-refinement (and ``paper`` for the full model)."""
        presets: dict[str, dict[str, object]] = {
            "paper": {},
            "no-dilation": {"dilations": (1, 1, 1, 1)},
            "no-inner-dense": {"inner_dense": False},
            "no-outer-dense": {"outer_dense": False},
            "no-all-dense": {"inner_dense": False, "outer_dense": False},
            "no-refinement": {"refinement": False},
        }
        if name not in presets:
            raise ValueError(f"unknown ablation {name!r}; expected one of {', '.join(presets)}")
        return cls(**{**presets[name], **overrides})

    def to_dict(self) -> dict[str, object]:
        d = dataclasses.asdict(self)
        d.pop("extra")
        d["dilations"] = list(self.dilations)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> DerainConfig:
        known = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown model config keys: {', '.join(sorted(unknown))}")
        kwargs = dict(data)
        if "dilations" in kwargs:
            kwargs["dilations"] = tuple(kwargs["dilations"])  # type: ignore[arg-type]
        return cls(**kwargs)  # type: ignore[arg-type]

    def macs_per_pixel(self, stages: int | None = None) -> int:
        """Multiply-adds per output pixel (convolution weights only; biases and activations
        excluded). 167,445 for the default config."""
        T = self.stages if stages is None else stages
        C, L = self.channels, len(self.dilations)
        stage = 9 * 3 * C + 9 * C * C * L + 9 * C * 3  # fs, dilated convs, rs
        if self.inner_dense:
            stage += sum(l * C * C for l in range(2, L + 1)) + (L + 1) * C * C
        total = T * stage
        if self.outer_dense:
            total += sum(3 * t * 3 for t in range(2, T + 1))
        if self.refinement:
            total += 9 * 3 * C + 9 * C * C + C * 3
        return total


def _lrelu(x: Tensor) -> Tensor:
    return F.leaky_relu(x, NEGATIVE_SLOPE)


class DenseFusion(nn.Module):
    """A 1x1 conv over the channel concatenation of ``parts``.

    In ``split`` form it computes the same thing as a sum of 1x1 convs, one per part, with
    the weight slices stored as their own parameters: no Concat copies in an exported graph
    (ONNX Runtime fuses the Adds into the convolutions). :meth:`DerainNet.split_dense` makes it.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv: nn.Conv2d | None = nn.Conv2d(in_channels, out_channels, 1)
        self.split_weights: nn.ParameterList | None = None
        self.split_bias: nn.Parameter | None = None

    def make_split(self, part_channels: list[int]) -> None:
        """Replace the one conv by per-part weight slices (in place; for inference)."""
        assert self.conv is not None, "already split"
        w, b = self.conv.weight.detach(), self.conv.bias
        if sum(part_channels) != w.shape[1]:
            raise ValueError(f"parts {part_channels} do not add up to {w.shape[1]} channels")
        offsets = [sum(part_channels[:i]) for i in range(len(part_channels))]
        self.split_weights = nn.ParameterList(
            nn.Parameter(w[:, o : o + c].clone(), requires_grad=False)
            for o, c in zip(offsets, part_channels)
        )
        self.split_bias = nn.Parameter(b.detach().clone(), requires_grad=False)
        self.conv = None

    def forward(self, parts: list[Tensor]) -> Tensor:
        if self.conv is not None:
            return self.conv(torch.cat(parts, dim=1))
        assert self.split_weights is not None
        weights = list(self.split_weights)
        out = F.conv2d(parts[0], weights[0], self.split_bias)
        for part, weight in zip(parts[1:], weights[1:]):
            out = out + F.conv2d(part, weight)
        return out


class DCDCB(nn.Module):
    """Densely connected dilation convolution block (Eq. 3-4)."""

    def __init__(self, config: DerainConfig) -> None:
        super().__init__()
        C, dil = config.channels, config.dilations
        self.inner_dense = config.inner_dense
        self.convs = nn.ModuleList(nn.Conv2d(C, C, 3, padding=d, dilation=d) for d in dil)
        if self.inner_dense:
            self.squeeze = nn.ModuleList(DenseFusion(l * C, C) for l in range(2, len(dil) + 1))
            self.fusion = DenseFusion((len(dil) + 1) * C, C)

    def forward(self, z0: Tensor) -> Tensor:
        if not self.inner_dense:
            z = z0
            for conv in self.convs:
                z = _lrelu(conv(z))
            return z
        zs = [z0]  # newest first: Cat[z_{l-1}, ..., z_0]
        for l, conv in enumerate(self.convs):
            x = zs[0] if l == 0 else self.squeeze[l - 1](zs)
            zs.insert(0, _lrelu(conv(x)))
        return _lrelu(self.fusion(zs))


class DerainNet(nn.Module):
    """The paper's multi-stage network. Input and output: float NCHW RGB in [0, 1]."""

    def __init__(self, config: DerainConfig | None = None) -> None:
        super().__init__()
        self.config = config or DerainConfig()
        cfg, C = self.config, self.config.channels
        self.fs = nn.Conv2d(3, C, 3, padding=1)
        self.dcdcb = DCDCB(cfg)
        self.rs = nn.Conv2d(C, 3, 3, padding=1)
        # Conv1x1_t for t = 2..T (index t - 2); stage 1 reads O_0 directly.
        self.stage_fusion = nn.ModuleList(
            DenseFusion(3 * t, 3) for t in range(2, cfg.stages + 1) if cfg.outer_dense
        )
        if cfg.refinement:
            self.refine = nn.Sequential(
                nn.Conv2d(3, C, 3, padding=1),
                nn.LeakyReLU(NEGATIVE_SLOPE),
                nn.Conv2d(C, C, 3, padding=1),
                nn.LeakyReLU(NEGATIVE_SLOPE),
                nn.Conv2d(C, 3, 1),
            )

    def forward(
        self, x: Tensor, return_stages: bool = False, stages: int | None = None
    ) -> Tensor | tuple[Tensor, list[Tensor]]:
        """Derain ``x``. With ``return_stages`` also return O_1..O_T (coarse to fine).

        ``stages`` runs fewer stages than trained (early exit; weights are shared)."""
        T = self.config.stages if stages is None else stages
        if not 1 <= T <= self.config.stages:
            raise ValueError(f"stages must be in 1..{self.config.stages}, got {T}")
        outputs = [x]  # newest first: O_{t-1}, ..., O_0
        for t in range(1, T + 1):
            first = t == 1 or not self.config.outer_dense
            inp = outputs[0] if first else self.stage_fusion[t - 2](outputs)
            rain = self.rs(self.dcdcb(_lrelu(self.fs(inp))))
            outputs.insert(0, x - rain)
        coarse = outputs[0]
        out = coarse
        if self.config.refinement:
            refined = self.refine(coarse)
            out = coarse + refined if self.config.residual_refinement else refined
        if return_stages:
            return out, outputs[-2::-1]
        return out

    def split_dense(self) -> DerainNet:
        """A copy whose 1x1 convs over concatenations are sums of per-part convs (same maths,
        no Concat in an exported graph). For export and inference only; never saved."""
        import copy

        net = copy.deepcopy(self).eval()
        C, L = self.config.channels, len(self.config.dilations)
        if self.config.inner_dense:
            for l, squeeze in enumerate(net.dcdcb.squeeze, start=2):
                squeeze.make_split([C] * l)
            net.dcdcb.fusion.make_split([C] * (L + 1))
        for t, fusion in enumerate(net.stage_fusion, start=2):
            fusion.make_split([3] * t)
        return net

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
