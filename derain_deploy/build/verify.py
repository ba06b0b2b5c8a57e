"""Checks of exported models against eager PyTorch, on ONNX Runtime's CPU provider.

Tolerances, per precision (eager FP32 PyTorch is the reference):
- FP32 ONNX: max abs difference <= 1e-4 (derain_deploy/parity.py's fp32 rule, which says why) on
  synthetic rainy images at odd sizes and batch 2.
- FP16 ONNX: no NaN/Inf on hard inputs (white, black, saturated noise, a large frame) and
  RGB PSNR >= 50 dB against eager FP32 on natural rainy images (worst image counts).
  ONNX Runtime's CPU provider has no FP16 Conv kernel on x86: it casts the FP16 weights to FP32
  and convolves in FP32, so it only sees the weight rounding. The same two checks therefore also
  run on an FP16-arithmetic emulation (the eager model in ``.half()`` on the CPU: every layer's
  output rounded to FP16, as on a GPU), which is what catches activation overflow.
- INT8 ONNX: Y-channel PSNR against the clean image may drop by at most 0.5 dB relative to
  FP32 (the published deraining convention, see derain_deploy.metrics). The CPU file is measured
  on ONNX Runtime's fused CPU kernels; the TensorRT file on its unfused Q/DQ reference kernels
  (the arithmetic TensorRT runs), each against its own budget.

Test images: natural photos bundled with scikit-image with rain from derain_deploy.rain.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field

import numpy as np
import onnxruntime as ort

from derain_deploy.infer import run_net
from derain_deploy.metrics import psnr
from derain_deploy.model import DerainNet
from derain_deploy.parity import TOLERANCES, ParityResult, compare
from derain_deploy.rainy_inputs import rainy_batch

FP32_MAX_ABS = TOLERANCES["fp32"][1]  # derain_deploy/parity.py's table says why
FP16_MIN_PSNR = 50.0
INT8_MAX_LOSS_DB = 0.5
PARITY_SHAPES: tuple[tuple[int, int, int, int], ...] = ((2, 3, 37, 53), (1, 3, 61, 45))
HARD_LARGE_SHAPE = (1, 3, 720, 1280)


class ParityError(RuntimeError):
    """An exported model disagrees with eager PyTorch beyond its tolerance; one line with figures."""


def rainy_images(
    n: int, height: int, width: int, seed: int = 0, preset: str = "mixed"
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` rainy crops of natural photos and their clean versions, both float32 NCHW in [0, 1];
    deterministic for a seed (photos, zooms, crops and rain drawn from one generator)."""
    return rainy_batch(height, width, n, seed, preset, random=True)


def hard_inputs(
    large: tuple[int, int, int, int] = HARD_LARGE_SHAPE,
    seed: int = 0,
    shape: tuple[int, int, int, int] = (1, 3, 64, 96),
) -> dict[str, np.ndarray]:
    """Inputs that break FP16 arithmetic if anything does: flat white and black (of ``shape``),
    saturated salt-and-pepper noise, and a large rainy frame."""
    rng = np.random.default_rng(seed)
    return {
        "white": np.ones(shape, np.float32),
        "black": np.zeros(shape, np.float32),
        "saturated_noise": (rng.random(shape) < 0.5).astype(np.float32),
        "large_frame": rainy_images(large[0], large[2], large[3], seed=seed, preset="heavy")[0],
    }


def cpu_session(model: bytes | str, threads: int = 0, optimize: bool = True) -> ort.InferenceSession:
    """An ONNX Runtime CPU session with all graph optimizations (what deployment runs); without
    ``optimize`` every node runs on its own reference kernel (Q/DQ stay separate: fake-quant
    arithmetic in float, with no CPU integer kernel and its saturation)."""
    opts = ort.SessionOptions()
    opts.graph_optimization_level = (
        ort.GraphOptimizationLevel.ORT_ENABLE_ALL if optimize else ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    )
    opts.intra_op_num_threads = threads
    opts.log_severity_level = 3
    sess = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
    if sess.get_providers()[0] != "CPUExecutionProvider":
        raise RuntimeError(f"expected the CPU provider, got {sess.get_providers()}")
    return sess


def run_onnx(session: ort.InferenceSession, batch: np.ndarray) -> np.ndarray:
    return session.run(None, {session.get_inputs()[0].name: np.ascontiguousarray(batch, np.float32)})[0]


def run_eager(net: DerainNet, batch: np.ndarray, stages: int | None = None) -> np.ndarray:
    return run_net(net.eval(), batch, stages)  # type: ignore[return-value]


def psnr_rgb(a: np.ndarray, b: np.ndarray) -> list[float]:
    """Per-image RGB PSNR (peak 1, images clipped to [0, 1]) of two NCHW batches."""
    a, b = np.clip(a, 0, 1), np.clip(b, 0, 1)
    return [psnr(x.transpose(1, 2, 0), y.transpose(1, 2, 0), y_channel=False) for x, y in zip(a, b)]


def psnr_y(a: np.ndarray, b: np.ndarray) -> list[float]:
    """Per-image Y-channel PSNR (deraining convention) of two NCHW batches, clipped to [0, 1]."""
    a, b = np.clip(a, 0, 1), np.clip(b, 0, 1)
    return [psnr(x.transpose(1, 2, 0), y.transpose(1, 2, 0)) for x, y in zip(a, b)]


def check_fp32_parity(
    net: DerainNet,
    model: bytes | str,
    stages: int | None = None,
    shapes: tuple[tuple[int, int, int, int], ...] = PARITY_SHAPES,
) -> ParityResult:
    """ONNX Runtime against eager FP32 on rainy images at ``shapes``, judged by the fp32 rule of
    :data:`derain_deploy.parity.TOLERANCES` (the worst shape's result, with every shape listed);
    raise :class:`ParityError` with the figures when it fails."""
    session = cpu_session(model)
    results = []
    for i, shape in enumerate(shapes):
        batch, _ = rainy_images(shape[0], shape[2], shape[3], seed=100 + i)
        out, ref = run_onnx(session, batch), run_eager(net, batch, stages)
        # NaN/Inf that eager gives too come from the weights, not the export: FiniteBackend names them
        same = ~np.isfinite(out) & ~np.isfinite(ref)
        out, ref = np.where(same, 0.0, out), np.where(same, 0.0, ref)
        results.append(compare(out, ref, "fp32", "FP32 ONNX"))
    result = max(results, key=lambda r: (not r.passed, r.max_abs))
    result.shapes = [list(s) for s in shapes]
    if not result.passed:
        raise ParityError(
            f"FP32 ONNX disagrees with eager PyTorch: max abs {result.max_abs:.3g} > {result.tolerance:g} "
            f"on shapes {', '.join('x'.join(map(str, s)) for s in shapes)}"
        )
    return result


@dataclass
class Fp16Result:
    min_psnr: float  # ONNX Runtime running the FP16 file
    mean_psnr: float
    threshold: float
    hard_inputs: dict[str, bool]  # name -> output finite
    images: int
    emulated_min_psnr: float = float("nan")  # FP16 arithmetic (torch .half() on the CPU)
    emulated_mean_psnr: float = float("nan")
    emulated_hard_inputs: dict[str, bool] = field(default_factory=dict)


def run_half(net: DerainNet, batch: np.ndarray, stages: int | None = None) -> np.ndarray:
    """Eager forward with FP16 weights and activations (emulates FP16 arithmetic on the CPU)."""
    import copy

    return run_net(copy.deepcopy(net).eval().half(), batch, stages)  # type: ignore[return-value]


def check_fp16(
    net: DerainNet,
    fp16_model: bytes | str,
    stages: int | None = None,
    natural: tuple[int, int, int] = (4, 96, 128),
    large: tuple[int, int, int, int] = HARD_LARGE_SHAPE,
    min_psnr: float = FP16_MIN_PSNR,
    static: tuple[int, int, int, int] | None = None,
) -> Fp16Result:
    """No NaN/Inf on hard inputs and PSNR >= ``min_psnr`` against eager FP32 on natural rainy
    images; raise :class:`ParityError` with the figures otherwise. For a static graph every
    input has its ``static`` shape."""
    session = cpu_session(fp16_model)
    if static is not None:
        large, natural = static, (static[0], static[2], static[3])
    inputs = hard_inputs(large, shape=static or (1, 3, 64, 96))
    finite = {name: bool(np.isfinite(run_onnx(session, x)).all()) for name, x in inputs.items()}
    # The emulation is slow on a CPU: it skips the large frame (the model is convolutional:
    # overflow depends on local content, which the flat and saturated inputs cover).
    emulated = {
        name: bool(np.isfinite(run_half(net, x, stages)).all())
        for name, x in inputs.items()
        if name != "large_frame"
    }
    n, h, w = natural
    batch, _ = rainy_images(n, h, w, seed=7)
    ref = run_eager(net, batch, stages)
    values = psnr_rgb(run_onnx(session, batch), ref)
    emulated_values = psnr_rgb(run_half(net, batch, stages), ref)
    result = Fp16Result(
        min(values),
        statistics.fmean(values),
        min_psnr,
        finite,
        n,
        min(emulated_values),
        statistics.fmean(emulated_values),
        emulated,
    )
    bad = [name for name, ok in finite.items() if not ok]
    bad += [f"{name} (FP16 arithmetic)" for name, ok in emulated.items() if not ok]
    if bad:
        raise ParityError(f"FP16 produced NaN/Inf on: {', '.join(bad)}")
    for label, worst, mean in (
        ("FP16 ONNX", result.min_psnr, result.mean_psnr),
        ("FP16 arithmetic", result.emulated_min_psnr, result.emulated_mean_psnr),
    ):
        if not worst >= min_psnr:
            raise ParityError(
                f"{label} PSNR against eager FP32 is {worst:.2f} dB (worst of {n} images, "
                f"mean {mean:.2f}) < {min_psnr:g} dB"
            )
    return result


@dataclass
class QualityComparison:
    """Y-channel PSNR against the clean images, FP32 vs a lower precision, and their gap."""

    psnr_fp32: float
    psnr_low: float
    loss_db: float
    psnr_vs_fp32: float  # RGB PSNR of the low-precision output against the FP32 output
    images: int


def compare_quality(
    fp32_model: bytes | str,
    low_model: bytes | str,
    rainy: np.ndarray,
    clean: np.ndarray,
    batch: int = 1,
    low_reference_kernels: bool = False,
) -> QualityComparison:
    """Mean Y PSNR against ``clean`` of two ONNX models on ``rainy`` (ONNX Runtime CPU, ``batch``
    images a run). ``low_reference_kernels`` runs the low-precision model unoptimized: for a
    TensorRT INT8 file, whose arithmetic (int8 products, int32 sums) that emulates exactly up to
    float rounding, where the CPU's fused s8s8 kernels would add their own errors."""
    chunks = [rainy[i : i + batch] for i in range(0, len(rainy), batch)]
    ref_session = cpu_session(fp32_model)
    low_session = cpu_session(low_model, optimize=not low_reference_kernels)
    ref = np.concatenate([run_onnx(ref_session, x) for x in chunks])
    low = np.concatenate([run_onnx(low_session, x) for x in chunks])
    p32 = statistics.fmean(psnr_y(ref, clean))
    plow = statistics.fmean(psnr_y(low, clean))
    return QualityComparison(p32, plow, p32 - plow, statistics.fmean(psnr_rgb(low, ref)), len(rainy))


def time_onnx(
    model: bytes | str, shape: tuple[int, int, int, int], runs: int = 5, warmup: int = 1, threads: int = 0
) -> float:
    """Median ms per batch of ONNX Runtime CPU at ``shape`` (after ``warmup`` runs)."""
    session = cpu_session(model, threads)
    batch = rainy_images(shape[0], shape[2], shape[3], seed=3)[0]
    for _ in range(warmup):
        run_onnx(session, batch)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        run_onnx(session, batch)
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)
