"""``--precision fastest``: the fastest (backend, precision) on this device whose quality stays
within a stated budget of FP32, chosen on a fixed check set, never an emulated precision.

The candidates come from the registry: every installed backend that runs on the device kind, in
each precision it offers that the device computes natively (:func:`native_precisions`): bf16 only
where the CPU has AVX-512 BF16, AMX or Arm BF16 (``cpu.NATIVE_BF16_FLAGS``), int8 only with VNNI
or AMX-INT8 (without them u8 x s8 products saturate in 16 bits), fp16 and tf32 only on CUDA. Each
candidate runs the check set; it is kept when its output is at least :data:`PARITY_MIN_DB` from
eager FP32 and loses at most :data:`PSNR_Y_LOSS_MAX_DB` of PSNR_Y against the clean frames; the
kept ones are timed for :data:`TIME_BUDGET_S` each and the fastest wins. The verdicts are cached
per weights, machine, runtime versions and these budgets, so the check runs once.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .backend_spec import EAGER_FP32, BackendSpec, export_specs, open_spec, parse_spec, work_cache
from .backends import registry
from .backends.base import Backend, BackendError, FiniteBackend
from .cpu import NATIVE_BF16_FLAGS, cpu_model_and_flags
from .model import DerainNet
from .parity import psnr01

# The budget (one place): what a precision may lose against FP32 to be chosen.
PARITY_MIN_DB = 45.0  # PSNR of the output against eager FP32's (parity.py's bf16 line; INT8 sits at ~40)
PSNR_Y_LOSS_MAX_DB = 0.1  # PSNR_Y against the clean frames, FP32's minus the candidate's
CHECK_SIZE = (128, 128)  # the check set: rain_batch frames 0..3 (four photos, heavy seeded rain)
CHECK_FRAMES = 4
TIME_BUDGET_S = 0.5  # timed seconds (>= 2 calls) per kept candidate, on the check set, after one warm-up call
INT8_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")
CACHE_FORMAT = 1

Log = Callable[[str], None]
Opener = Callable[[BackendSpec], Backend]


class FastestError(BackendError):
    """``fastest`` cannot choose (no candidate passed, or the model is no weights file)."""


@dataclass
class Verdict:
    label: str  # how the choice line names it: ov:bf16:split, or "openvino bf16" for derain-run
    spec: BackendSpec
    parity_db: float | None = None
    psnr_y_loss_db: float | None = None
    ms: float | None = None  # median per call on the check set (kept candidates only)
    rejected: str | None = None  # why it was not kept

    def to_dict(self) -> dict[str, object]:
        return {**dataclasses.asdict(self), "spec": self.spec.label}


@dataclass
class Choice:
    chosen: Verdict
    verdicts: list[Verdict]
    cached: bool = False
    budget: dict[str, float] = field(default_factory=dict)

    @property
    def best_fp32(self) -> Verdict:
        """The fastest kept FP32 candidate (the bench's 'best FP32' row)."""
        fp32 = [v for v in self.verdicts if v.ms is not None and v.spec.precision == "fp32"]
        return min(fp32, key=lambda v: v.ms) if fp32 else self.chosen  # type: ignore[arg-type, return-value]

    def line(self) -> str:
        """One line: what was picked and why, and what was rejected."""
        c = self.chosen
        same = [v for v in self.verdicts
                if v.ms and v.spec.backend == c.spec.backend and v.spec.precision == "fp32"]  # fmt: skip
        base = min(same, key=lambda v: v.ms) if same else self.best_fp32  # type: ignore[arg-type, return-value]
        fast = c is not base and base.ms and c.ms
        speed = f"{base.ms / c.ms:.1f}x {base.label}" if fast else "the fastest FP32"  # type: ignore[operator]
        parity = "inf" if c.parity_db is None or not np.isfinite(c.parity_db) else f"{c.parity_db:.1f}"
        loss = -(c.psnr_y_loss_db or 0.0)
        text = f"fastest: {c.label} ({parity} dB from FP32, {loss:+.2f} dB PSNR_Y, {speed})"
        rejected = [f"{v.label} ({v.rejected})" for v in self.verdicts if v.rejected]
        return text + (f"; rejected: {', '.join(rejected)}" if rejected else "") + (
            " [cached]" if self.cached else "")


def native_precisions(kind: str, flags: Iterable[str] | None = None) -> tuple[str, ...]:
    """The precisions device kind ``kind`` computes natively (never an emulated one)."""
    if kind in ("cuda", "tensorrt"):
        # bf16 on tensor cores (compute capability 8.0+); torch's default also counts emulation
        bf16 = ("bf16",) if torch.cuda.is_available() and torch.cuda.is_bf16_supported(False) else ()
        return ("fp32", "tf32", "fp16", *bf16, "int8")
    found = set(cpu_model_and_flags()[1] if flags is None else flags)
    return (
        "fp32",
        *(("bf16",) if found & set(NATIVE_BF16_FLAGS) else ()),
        *(("int8",) if found & set(INT8_FLAGS) else ()),
    )


def candidates(kind: str, flags: Iterable[str] | None = None, backends: Iterable[str] | None = None
               ) -> list[BackendSpec]:  # fmt: skip
    """Every installed backend on ``kind`` (or those in ``backends``) in each native precision it
    offers, in its faster form: the first of its bench defaults of that precision, else its first
    default rewritten to it (each descriptor lists its faster form first: ONNX Runtime's FP32
    concat graph, OpenVINO's split graph, torch's channels_last; ``derain-bench --full`` times the
    other forms)."""
    natives = native_precisions(kind, flags)
    wanted = None if backends is None else {registry.get(b).name for b in backends}
    out: list[BackendSpec] = []
    for d in registry.descriptors():
        if kind not in d.devices or (wanted is not None and d.name not in wanted) or not d.available()[0]:
            continue
        defaults = [parse_spec(t, kind) for t in d.bench_defaults.get(kind, ())]
        defaults = defaults or [BackendSpec(d.name, device=kind)]
        for precision in (p for p in d.precisions if p in natives):
            same = [s for s in defaults if s.precision == precision]
            spec = same[0] if same else dataclasses.replace(defaults[0], precision=precision)
            if spec not in out:
                out.append(spec)
    return out


def check_set() -> tuple[np.ndarray, np.ndarray]:
    """The fixed (rainy, clean) check batch."""
    from .bench.inputs import rainy_batch

    return rainy_batch(*CHECK_SIZE, CHECK_FRAMES, seed=0)


def choose(
    model: DerainNet,
    specs: list[BackendSpec],
    opener: Opener,
    *,
    label: Callable[[BackendSpec], str] = lambda s: s.label,
    log: Log | None = None,
    cache: Path | None = None,
) -> Choice:
    """Run every spec on the check set, keep those within the budget, time them, pick the fastest."""
    log = log or (lambda _m: None)
    if cache is not None and cache.is_file():
        choice = _load(cache, specs)
        if choice is not None:
            return choice
    rainy, clean = check_set()
    from .bench.inputs import psnr_y_batch

    device = _torch_kind(specs[0].device if specs else "cpu")
    reference = open_spec(EAGER_FP32.with_device(device), model, Path("."))  # torch needs no work folder
    try:
        ref = reference(rainy)
    finally:
        reference.close()
    ref_y = psnr_y_batch(ref, clean)
    log(f"fastest: checking {len(specs)} candidates on {CHECK_FRAMES} frames of "
        f"{CHECK_SIZE[0]}x{CHECK_SIZE[1]} (once; the verdicts are cached)")  # fmt: skip
    verdicts = []
    for spec in specs:
        v = Verdict(label(spec), spec)
        try:
            backend = opener(spec)
        except BackendError as e:
            v.rejected = f"did not start: {str(e).splitlines()[0]}"
            verdicts.append(v)
            continue
        try:
            out = backend(rainy)
            v.parity_db, v.psnr_y_loss_db = psnr01(out, ref), ref_y - psnr_y_batch(out, clean)
            if v.parity_db < PARITY_MIN_DB:
                v.rejected = f"{v.parity_db:.1f} dB < {PARITY_MIN_DB:g}"
            elif v.psnr_y_loss_db > PSNR_Y_LOSS_MAX_DB:
                v.rejected = f"loses {v.psnr_y_loss_db:.2f} dB PSNR_Y > {PSNR_Y_LOSS_MAX_DB:g}"
            else:
                v.ms = _time(backend, rainy)
        finally:
            backend.close()
        verdicts.append(v)
        log(f"fastest: {v.label}: {v.parity_db:.1f} dB from FP32, {-v.psnr_y_loss_db:+.2f} dB PSNR_Y, "
            + (f"{v.ms:.0f} ms a call" if v.ms is not None else f"rejected ({v.rejected})"))  # fmt: skip
    kept = [v for v in verdicts if v.ms is not None]
    if not kept:
        raise FastestError("fastest: no candidate stays within the budget: "
                           + "; ".join(f"{v.label} ({v.rejected})" for v in verdicts))  # fmt: skip
    best = min(kept, key=lambda v: v.ms)  # type: ignore[arg-type, return-value]
    choice = Choice(best, verdicts, budget=_budget())
    if cache is not None:
        from .atomic import write_atomic

        cache.parent.mkdir(parents=True, exist_ok=True)
        data = {"budget": _budget(), "chosen": best.spec.label, "verdicts": [v.to_dict() for v in verdicts]}
        write_atomic(cache, json.dumps(data, indent=2) + "\n")
    return choice


def _time(backend: Backend, batch: np.ndarray) -> float:
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < 2 or time.perf_counter() - start < TIME_BUDGET_S:
        t0 = time.perf_counter()
        backend(batch)
        times.append(time.perf_counter() - t0)
    return float(np.median(times)) * 1e3


def _torch_kind(device: str) -> str:
    kind, sep, index = device.partition(":")
    return f"cuda{sep}{index}" if kind in ("cuda", "tensorrt") else "cpu"


def _budget() -> dict[str, float]:
    return {"parity_min_db": PARITY_MIN_DB, "psnr_y_loss_max_db": PSNR_Y_LOSS_MAX_DB,
            "check_frames": CHECK_FRAMES, "check_size": CHECK_SIZE[0] * 10000 + CHECK_SIZE[1],
            "time_budget_s": TIME_BUDGET_S}  # fmt: skip


def _load(path: Path, specs: list[BackendSpec]) -> Choice | None:
    """The cached choice for the same candidates and budget (None: stale or unreadable)."""
    try:
        data = json.loads(path.read_text())
        by_label = {s.label: s for s in specs}
        verdicts = [Verdict(**{**v, "spec": by_label[v["spec"]]}) for v in data["verdicts"]]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if data.get("budget") != _budget() or [v.spec for v in verdicts] != specs:
        return None
    chosen = next((v for v in verdicts if v.spec.label == data["chosen"]), None)
    return None if chosen is None else Choice(chosen, verdicts, cached=True, budget=_budget())


def cache_file(model: DerainNet, specs: list[BackendSpec], threads: int) -> Path:
    """Where the verdicts for ``model`` on this machine with these candidates are cached."""
    from .artifacts import user_cache_dir
    from .bench.machine import machine_info, versions

    m = machine_info()
    key = {"model": model_digest(model), "format": CACHE_FORMAT, "cpu": m["cpu"], "gpu": m["gpu"],
           "flags": sorted(cpu_model_and_flags()[1]), "threads": threads, "versions": versions(),
           "specs": [s.label for s in specs], "budget": _budget()}  # fmt: skip
    digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return user_cache_dir() / "fastest" / f"{digest}.json"


def model_digest(model: DerainNet) -> str:
    """A hash of the model's configuration and weights."""
    h = hashlib.sha256(json.dumps(model.config.to_dict(), sort_keys=True).encode())
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def work_dir(model: DerainNet) -> Path:
    """A persistent folder for the files exported from ``model`` (bench and eval reuse them)."""
    from .artifacts import CACHE_FORMAT as ARTIFACT_FORMAT
    from .artifacts import user_cache_dir

    return user_cache_dir() / "bench-work" / f"{model_digest(model)[:16]}-{ARTIFACT_FORMAT}"


def choose_spec(model: DerainNet, device: str = "cpu", log: Log | None = None,
                backends: Iterable[str] | None = None, build_int8: bool = True) -> Choice:  # fmt: skip
    """``--precision fastest`` for derain-bench and derain-eval: a spec on ``device``'s kind.
    The candidates' ONNX files are exported first, graph forms side by side. ``build_int8``
    False (the quick bench): INT8 candidates whose file is not built yet are left out, said so."""
    kind = device.partition(":")[0]
    specs = [s.with_device(device) for s in candidates(kind, backends=backends)]
    work = work_dir(model)
    work.mkdir(parents=True, exist_ok=True)
    if not build_int8:
        specs = _without_unbuilt_int8(specs, model, work, log)
    cache = cache_file(model, specs, torch.get_num_threads())
    if not cache.is_file():
        try:
            export_specs(specs, model, work, log or (lambda _m: None))
        except BackendError as e:  # the candidate that cannot be built is rejected when checked
            if log:
                log(f"fastest: exporting ahead stopped ({e}); each candidate is built as it is checked")
    return choose(model, specs, lambda s: FiniteBackend(open_spec(s, model, work), model=s.label),
                  log=log, cache=cache)  # fmt: skip


def _without_unbuilt_int8(specs: list[BackendSpec], model: DerainNet, work: Path, log: Log | None
                          ) -> list[BackendSpec]:  # fmt: skip
    """``specs`` less the INT8 ones whose CPU file the work cache lacks (calibrating it and the
    first OpenVINO INT8 compile take about 25 s on a 2-core CPU: more than the quick bench has)."""
    cache, weights = work_cache(model, work)
    unbuilt = [s for s in specs if s.precision == "int8" and s.device == "cpu" and not s.file
               and not cache.onnx_path(weights, "int8", s.graph).is_file()]  # fmt: skip
    if unbuilt and log:
        log(f"fastest: {', '.join(s.label for s in unbuilt)} not checked: the INT8 file is not built yet "
            "(derain-bench --precision fastest builds and checks it once)")  # fmt: skip
    return [s for s in specs if s not in unbuilt]


def run_choice(backend: str, model: str | None, device: str, log: Log | None = None) -> dict[str, str]:
    """``derain-run --precision fastest``: the ``backend``, ``device`` and ``precision`` to open,
    chosen among ``backend``'s precisions (every backend's for auto) as derain-run opens them, and
    the ``chosen_because`` its backend line shows."""
    from .backends import resolve_model
    from .weights import load_weights

    path = resolve_model(model)
    if path.suffix != ".safetensors":
        raise FastestError(f"--precision fastest needs weights (.safetensors) to compare with eager FP32, "
                           f"not {path.name}")  # fmt: skip
    kind = device.partition(":")[0]
    if kind == "auto":
        kind = "cuda" if torch.cuda.is_available() else "cpu"
    where = kind if device.startswith("auto") else device
    seen: dict[tuple[str, str], BackendSpec] = {}
    for spec in candidates(kind, backends=None if backend == "auto" else [backend]):
        seen.setdefault((spec.backend, spec.precision), BackendSpec(spec.backend, spec.precision, where))
    specs = list(seen.values())
    if not specs:
        raise FastestError(f"--precision fastest: no installed backend runs on {where}")
    net = load_weights(path)

    def opener(spec: BackendSpec) -> Backend:
        opened = registry.get(spec.backend).open_file(path, where, spec.precision)
        return FiniteBackend(opened, model=str(path))

    choice = choose(net, specs, opener, label=lambda s: f"{s.backend} {s.precision}", log=log,
                    cache=cache_file(net, specs, torch.get_num_threads()))  # fmt: skip
    if log:
        log(choice.line())
    chosen = choice.chosen.spec
    among = "every backend" if backend == "auto" else backend
    why = f"--precision fastest chose it among {among}'s candidates"
    return {"backend": chosen.backend, "device": where, "precision": chosen.precision, "chosen_because": why}


def with_fastest(specs: list[BackendSpec], model: DerainNet, device: str, log: Log,
                 progress: Log | None = None, build_int8: bool = True
                 ) -> tuple[list[BackendSpec], Choice, Path]:  # fmt: skip
    """``specs`` plus the fastest spec among their backends (all backends if none), the choice
    (its line sent to ``log``) and the folder holding the candidates' exported files."""
    named = list(dict.fromkeys(s.backend for s in specs)) or None
    choice = choose_spec(model, device, progress, backends=named, build_int8=build_int8)
    log(choice.line())
    chosen = choice.chosen.spec
    return [*specs, *([] if chosen in specs else [chosen])], choice, work_dir(model)
