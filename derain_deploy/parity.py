"""Parity of a backend's output with eager FP32 PyTorch on the same input, per precision: the one
table both ``derain-bench --check-parity`` and the builder's FP32 export gate
(``build.verify.check_fp32_parity``) judge by, and the one :class:`ParityResult` they report.

Tolerances (outputs are RGB in [0, 1]; PSNR is over the whole batch with peak 1):

- fp32: max abs <= 1e-4. ONNX Runtime FP32 measured 7.5e-8 against eager on the tiny test
  models; the bundled model's bench rows (split graph, channels_last, OpenVINO: sums in
  another order) 8.0e-7 to 1.2e-6 at 480x640 (benchmarks/results/*.json); GPU kernels (TF32
  off) sum in other orders again. 1e-4 is 1/40 of an 8-bit level: invisible, yet a wrong
  weight, a missing stage or a layout error exceed it by orders of magnitude. The builder's
  export gate used 1e-5 before; one rule now serves both (a bias off by 1e-3 fails it).
- tf32: PSNR >= 60 dB. TF32 rounds each convolution's inputs and weights to a 10-bit mantissa.
  An emulation on the CPU (that rounding before every Conv2d of the bundled model, 2x240x320
  rainy crops) measured 76.8 dB and 2.2e-3 max abs: 20x over the fp32 rule, which is why GPU
  FP32 runs with TF32 off and a TF32 run can no longer pass as FP32; 60 dB leaves 17 dB margin.
- fp16: PSNR >= 50 dB (an error about 0.8 of an 8-bit level RMS; FP16's 11-bit mantissa
  leaves headroom; 1e-5 max abs would be a meaningless tolerance for FP16).
- bf16: PSNR >= 45 dB (8-bit mantissa; a prototype measured 57 dB).
- int8: PSNR >= 40 dB. Why 40: quantization error adds to the model's own error against the
  clean image. With a model at P dB against ground truth and an independent error at P + m dB,
  the loss is 10 log10(1 + 10^(-m/10)) dB, 0.41 dB at m = 10. Deraining models score at most
  about 30 dB on the hard benchmarks, so 40 dB keeps INT8 within the 0.5 dB budget there. The
  prototype's QDQ model measured 45 dB.

Any non-finite value fails whatever the precision.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

# precision -> (metric, threshold): "max_abs" must be <= threshold, "psnr" must be >= threshold
TOLERANCES: dict[str, tuple[str, float]] = {
    "fp32": ("max_abs", 1e-4),
    "tf32": ("psnr", 60.0),
    "fp16": ("psnr", 50.0),
    "bf16": ("psnr", 45.0),
    "int8": ("psnr", 40.0),
}


@dataclass
class ParityResult:
    label: str
    precision: str
    shape: list[int]
    max_abs: float
    psnr_db: float
    metric: str
    threshold: float
    passed: bool
    shapes: list[list[int]] = field(default_factory=list)  # all judged (the builder); shape: the worst

    @property
    def tolerance(self) -> float:
        return self.threshold

    def describe(self) -> str:
        value = f"{self.max_abs:.2e} max abs" if self.metric == "max_abs" else f"{self.psnr_db:.1f} dB"
        rule = f"<= {self.threshold:g}" if self.metric == "max_abs" else f">= {self.threshold:g} dB"
        size = "x".join(str(d) for d in self.shape)
        verdict = "ok" if self.passed else "FAIL"
        return f"parity {self.label} [{size}]: {value} vs eager fp32 (needs {rule}): {verdict}"

    def to_dict(self) -> dict[str, object]:
        d = asdict(self)
        if not self.shapes:
            del d["shapes"]
        for key in ("max_abs", "psnr_db"):  # JSON has no inf: null stands for it
            d[key] = d[key] if math.isfinite(d[key]) else None
        return d


def psnr01(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR (dB, peak 1) between two arrays in [0, 1]; inf when equal."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(1.0 / mse)


def compare(output: np.ndarray, reference: np.ndarray, precision: str, label: str) -> ParityResult:
    """Judge ``output`` against the eager FP32 ``reference`` with ``precision``'s tolerance."""
    if precision not in TOLERANCES:
        raise ValueError(f"no parity tolerance for precision {precision!r}; known: {', '.join(TOLERANCES)}")
    if output.shape != reference.shape:
        raise ValueError(
            f"{label}: output shape {output.shape} differs from the reference's {reference.shape}"
        )
    metric, threshold = TOLERANCES[precision]
    finite = bool(np.isfinite(output).all())
    max_abs = float(np.max(np.abs(output.astype(np.float64) - reference))) if finite else math.inf
    psnr_db = psnr01(output, reference) if finite else -math.inf
    ok = max_abs <= threshold if metric == "max_abs" else psnr_db >= threshold
    return ParityResult(
        label, precision, list(output.shape), max_abs, psnr_db, metric, threshold, finite and ok
    )
