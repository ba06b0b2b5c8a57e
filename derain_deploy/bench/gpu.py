"""The H2D / compute / D2H split of a GPU row, from CUDA events on the backend's own stream."""

from __future__ import annotations

import itertools

import numpy as np
import torch

from ..backends.base import Backend


def gpu_split(
    backend: Backend, batch: np.ndarray, device: torch.device, repeats: int = 7
) -> dict[str, object]:
    """Median H2D, compute and D2H times (ms) from CUDA events on the backend's stream (its
    ``stream`` attribute, else the current one), copying from and to pinned host buffers."""
    stream = getattr(backend, "stream", None) or torch.cuda.current_stream(device)
    host_in = torch.from_numpy(np.ascontiguousarray(batch, np.float32)).pin_memory()
    dev_in = torch.empty(host_in.shape, dtype=torch.float32, device=device)
    run_device = getattr(backend, "run_device", None)
    times: dict[str, list[float]] = {"h2d_ms": [], "compute_ms": [], "d2h_ms": []}
    with torch.cuda.stream(stream):
        dev_in.copy_(host_in)
        first = run_device(dev_in) if run_device else dev_in  # output shape and type; warms up
        host_out = torch.empty(first.shape, dtype=first.dtype, pin_memory=True)  # outside the timed spans
        for _ in range(repeats):
            events = [torch.cuda.Event(enable_timing=True) for _ in range(4)]
            events[0].record(stream)
            dev_in.copy_(host_in, non_blocking=True)
            events[1].record(stream)
            dev_out = run_device(dev_in) if run_device else dev_in
            events[2].record(stream)
            host_out.copy_(dev_out, non_blocking=True)
            events[3].record(stream)
            stream.synchronize()
            for key, (a, b) in zip(times, itertools.pairwise(events)):
                times[key].append(a.elapsed_time(b))
    split: dict[str, object] = {k: float(np.median(v)) for k, v in times.items()}
    split["gpu_split"] = "cuda_events" if run_device else "cuda_events_copies"
    if not run_device:
        split["compute_ms"] = None  # the caller derives it from the p50
    return split
