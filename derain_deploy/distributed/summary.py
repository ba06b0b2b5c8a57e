"""What a job did, per input and per worker, and the progress bar across all workers."""

from __future__ import annotations

import sys
import time
from dataclasses import asdict, dataclass, field

from tqdm import tqdm


@dataclass
class ItemResult:
    """One input of the job. ``status``: done, skipped (finished before, verified), failed."""

    input: str
    status: str = "pending"
    output: str | None = None
    frames: int = 0
    seconds: float = 0.0
    attempts: int = 0
    error: str | None = None
    workers: list[str] = field(default_factory=list)
    skipped_frames: int = 0


@dataclass
class JobSummary:
    items: list[ItemResult]
    seconds: float
    backend: str = ""
    workers: dict[str, dict[str, float]] = field(default_factory=dict)  # name -> frames, seconds, fps
    ray_address: str | None = None

    @property
    def ok(self) -> bool:
        return all(item.status in ("done", "skipped") for item in self.items)

    def count(self, status: str) -> int:
        return sum(1 for item in self.items if item.status == status)

    @property
    def frames(self) -> int:
        return sum(item.frames for item in self.items if item.status == "done")

    def to_dict(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "seconds": round(self.seconds, 3),
            "frames": self.frames,
            "fps": round(self.frames / self.seconds, 3) if self.seconds > 0 else 0.0,
            "done": self.count("done"),
            "skipped": self.count("skipped"),
            "failed": self.count("failed"),
            "backend": self.backend,
            "ray_address": self.ray_address,
            "workers": self.workers,
            "items": [asdict(item) for item in self.items],
        }

    def describe(self) -> str:
        lines = [f"{'status':8} {'frames':>7} {'time s':>8}  input -> output"]
        for item in self.items:
            where = item.output or "-"
            line = f"{item.status:8} {item.frames:7d} {item.seconds:8.1f}  {item.input} -> {where}"
            if item.error:
                line += f"  error: {item.error}"
            lines.append(line)
        fps = self.frames / self.seconds if self.seconds > 0 else 0.0
        lines.append(
            f"{len(self.items)} inputs: {self.count('done')} done, {self.count('skipped')} already done, "
            f"{self.count('failed')} failed; "
            f"{self.frames} frames in {self.seconds:.1f} s ({fps:.2f} frames/s)"
        )
        for name, w in self.workers.items():
            lines.append(f"  worker {name}: {int(w['frames'])} frames, {w['fps']:.2f} frames/s")
        return "\n".join(lines)


class Progress:
    """One bar for the whole job: frames (finished tasks plus tasks in flight), files done, and
    frames/s per worker. Frames of a task that fails are taken back off the bar."""

    def __init__(self, total_frames: int | None, files: int, enabled: bool) -> None:
        self.bar = tqdm(
            total=total_frames, unit="frame", disable=not enabled, file=sys.stderr, dynamic_ncols=True
        )
        self.files, self.files_done = files, 0
        self.committed: dict[str, int] = {}
        self.inflight: dict[str, int] = {}
        self.first_seen: dict[str, float] = {}
        self.end: float | None = None  # set by close: the rates stop there

    def update(self, worker: str, inflight: int) -> None:
        """``worker`` has done ``inflight`` frames of the task it is running."""
        self.first_seen.setdefault(worker, time.perf_counter())
        self.inflight[worker] = inflight
        self._refresh()

    def commit(self, worker: str, frames: int) -> None:
        """``worker`` finished a task of ``frames`` frames (0 for a failed one)."""
        self.first_seen.setdefault(worker, time.perf_counter())
        self.committed[worker] = self.committed.get(worker, 0) + frames
        self.inflight[worker] = 0
        self._refresh()

    def file_done(self) -> None:
        self.files_done += 1
        self._refresh()

    def worker_stats(self) -> dict[str, dict[str, float]]:
        now = self.end or time.perf_counter()
        stats = {}
        for name, start in self.first_seen.items():
            frames = self.committed.get(name, 0) + self.inflight.get(name, 0)
            seconds = max(now - start, 1e-9)
            stats[name] = {"frames": frames, "seconds": round(seconds, 3), "fps": round(frames / seconds, 3)}
        return stats

    def _refresh(self) -> None:
        total = sum(self.committed.values()) + sum(self.inflight.values())
        per_worker = " ".join(f"{w['fps']:.1f}" for w in self.worker_stats().values() if w["seconds"] >= 1)
        self.bar.set_postfix_str(
            f"files {self.files_done}/{self.files} | f/s per worker {per_worker}", refresh=False
        )
        self.bar.update(total - self.bar.n)

    def close(self) -> None:
        self.end = self.end or time.perf_counter()
        self.bar.close()
