"""The paper's network: parameter counts, shapes, stages, determinism, the concat-free form."""

from __future__ import annotations

import pytest
import torch

from derain_deploy import DerainConfig, DerainNet


def conv(cin: int, cout: int, k: int) -> int:
    return cin * cout * k * k + cout


# Hand-computed per part for C=16, T=12, L=4 (see the model docstring).
FS = conv(3, 16, 3)  # 448
RS = conv(16, 3, 3)  # 435
DILATED = 4 * conv(16, 16, 3)  # 9,280
INNER_1X1 = conv(32, 16, 1) + conv(48, 16, 1) + conv(64, 16, 1)  # 2,352
FUSION = conv(80, 16, 1)  # 1,296
OUTER = sum(conv(3 * t, 3, 1) for t in range(2, 13))  # 726
REFINE = conv(3, 16, 3) + conv(16, 16, 3) + conv(16, 3, 1)  # 2,819
FULL = FS + RS + DILATED + INNER_1X1 + FUSION + OUTER + REFINE


def count(config: DerainConfig) -> int:
    return sum(p.numel() for p in DerainNet(config).parameters())


def test_default_parameter_count_is_17356() -> None:
    assert FULL == 17_356
    assert count(DerainConfig()) == 17_356


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("paper", FULL),
        ("no-dilation", FULL),
        ("no-inner-dense", FULL - INNER_1X1 - FUSION),
        ("no-outer-dense", FULL - OUTER),
        ("no-all-dense", FULL - INNER_1X1 - FUSION - OUTER),
        ("no-refinement", FULL - REFINE),
    ],
)
def test_ablation_parameter_counts(name: str, expected: int) -> None:
    assert count(DerainConfig.ablation(name)) == expected


def test_stage_count_and_channels_change_the_count() -> None:
    outer_6 = sum(conv(3 * t, 3, 1) for t in range(2, 7))
    assert count(DerainConfig(stages=6)) == FULL - OUTER + outer_6
    c = 8
    expected = (
        conv(3, c, 3) + conv(c, 3, 3) + 4 * conv(c, c, 3)
        + conv(2 * c, c, 1) + conv(3 * c, c, 1) + conv(4 * c, c, 1) + conv(5 * c, c, 1)
        + OUTER + conv(3, c, 3) + conv(c, c, 3) + conv(c, 3, 1)
    )
    assert count(DerainConfig(channels=c)) == expected


def test_no_dilation_really_uses_dilation_one() -> None:
    net = DerainNet(DerainConfig.ablation("no-dilation"))
    assert [c.dilation for c in net.dcdcb.convs] == [(1, 1)] * 4
    assert [c.dilation for c in DerainNet().dcdcb.convs] == [(1, 1), (2, 2), (4, 4), (8, 8)]


def test_macs_per_pixel() -> None:
    assert DerainConfig().macs_per_pixel() == 167_445
    # Independent count: weight elements of every conv, each applied once per pixel per use.
    net = DerainNet()
    shared = sum(
        m.weight.numel() for name, m in net.named_modules()
        if isinstance(m, torch.nn.Conv2d) and not name.startswith(("stage_fusion", "refine"))
    )
    outer = sum(m.weight.numel() for m in net.stage_fusion.modules() if isinstance(m, torch.nn.Conv2d))
    refine = sum(m.weight.numel() for m in net.refine.modules() if isinstance(m, torch.nn.Conv2d))
    assert DerainConfig().macs_per_pixel() == 12 * shared + outer + refine


@pytest.mark.parametrize("shape", [(1, 3, 37, 53), (3, 3, 20, 17), (1, 3, 1, 1), (2, 3, 5, 64)])
def test_output_shape(shape: tuple[int, ...]) -> None:
    net = DerainNet(DerainConfig(stages=3)).eval()
    with torch.no_grad():
        assert net(torch.rand(shape)).shape == shape


def test_return_stages_and_last_stage_feeds_refinement() -> None:
    torch.manual_seed(0)
    net = DerainNet().eval()
    x = torch.rand(1, 3, 37, 53)
    with torch.no_grad():
        out, stages = net(x, return_stages=True)
        assert len(stages) == 12
        assert all(s.shape == x.shape for s in stages)
        torch.testing.assert_close(out, net.refine(stages[-1]), rtol=0, atol=0)
        torch.testing.assert_close(out, net(x), rtol=0, atol=0)
        # early exit: fewer stages give the first stages of the full run
        _, first3 = net(x, return_stages=True, stages=3)
        for a, b in zip(first3, stages[:3]):
            torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_residual_refinement_adds_the_coarse_estimate() -> None:
    net = DerainNet(DerainConfig(stages=2, residual_refinement=True)).eval()
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        out, stages = net(x, return_stages=True)
        torch.testing.assert_close(out, stages[-1] + net.refine(stages[-1]))


def test_no_refinement_returns_last_stage() -> None:
    net = DerainNet(DerainConfig.ablation("no-refinement", stages=3)).eval()
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        out, stages = net(x, return_stages=True)
        assert torch.equal(out, stages[-1])


def test_invalid_stage_request() -> None:
    net = DerainNet(DerainConfig(stages=2))
    with pytest.raises(ValueError, match=r"stages must be in 1\.\.2"):
        net(torch.rand(1, 3, 8, 8), stages=3)


def test_eager_is_deterministic() -> None:
    torch.manual_seed(1)
    net = DerainNet().eval()
    x = torch.rand(2, 3, 33, 29)
    with torch.no_grad():
        assert torch.equal(net(x), net(x))


@pytest.mark.parametrize("name", ["paper", "no-inner-dense", "no-outer-dense", "no-all-dense"])
def test_split_dense_equals_concat_form(name: str) -> None:
    torch.manual_seed(2)
    net = DerainNet(DerainConfig.ablation(name, stages=4)).eval()
    split = net.split_dense()
    assert split.num_parameters() == net.num_parameters()
    x = torch.rand(2, 3, 21, 30)
    with torch.no_grad():
        torch.testing.assert_close(split(x), net(x), rtol=0, atol=1e-5)


def test_config_roundtrip_and_unknown_keys() -> None:
    cfg = DerainConfig(stages=5, dilations=(1, 2), residual_refinement=True)
    assert DerainConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown model config keys: colour"):
        DerainConfig.from_dict({"colour": 1})
    with pytest.raises(ValueError, match="stages must be >= 1"):
        DerainConfig(stages=0)
    with pytest.raises(ValueError, match="unknown ablation"):
        DerainConfig.ablation("no-everything")


@pytest.mark.gpu
def test_cuda_matches_cpu() -> None:
    torch.manual_seed(3)
    net = DerainNet(DerainConfig(stages=3)).eval()
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        ref = net(x)
        out = net.cuda()(x.cuda()).cpu()
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-4)
