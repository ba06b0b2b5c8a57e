"""Ray worker count against the cluster's GPUs, with a stand-in for ``ray`` (no Ray needed)."""

from __future__ import annotations

from collections import deque
from typing import Any

import pytest

from derain_deploy.backends.base import BackendError
from derain_deploy.distributed import ray_runner
from derain_deploy.job import JobOptions


class FakeRay:
    """Just enough of ``ray`` for ray_runner._run to start its actors: every actor reports that
    its backend did not open, which stops the run right after the actors started."""

    class exceptions:  # noqa: N801 - mirrors ray.exceptions
        class RayActorError(Exception):
            pass

    def __init__(self, resources: dict[str, float]) -> None:
        self.resources = resources
        self.started: list[dict[str, Any]] = []
        self.killed = 0

    def cluster_resources(self) -> dict[str, float]:
        return self.resources

    def remote(self, **options: Any) -> Any:
        fake = self

        class Ref:
            pass

        class Actor:
            def __init__(self) -> None:
                self.describe = type("M", (), {"remote": lambda _self: Ref()})()

        class ActorClass:
            @staticmethod
            def remote(*args: Any) -> Actor:
                fake.started.append(options)
                return Actor()

        return lambda cls: ActorClass

    def get(self, refs: list[Any]) -> list[tuple[str, None, str]]:
        return [("w", None, "stop here") for _ in refs]

    def kill(self, actor: Any, no_restart: bool = True) -> None:
        self.killed += 1


class Job:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def log(self, text: str) -> None:
        self.lines.append(text)


def test_more_workers_than_gpus_are_clamped_with_one_warning() -> None:
    ray, job = FakeRay({"GPU": 2.0, "CPU": 32.0}), Job()
    tasks = deque(range(10))
    with pytest.raises(BackendError, match="stop here"):
        ray_runner._run(ray, job, tasks, JobOptions(device="cuda"), 4, None)  # type: ignore[arg-type]
    assert len(ray.started) == 2 and all(o["num_gpus"] == 1 for o in ray.started)
    warnings = [line for line in job.lines if "--workers" in line]
    assert len(warnings) == 1 and "\n" not in warnings[0]
    assert "4" in warnings[0] and "2 GPU" in warnings[0]


def test_workers_within_the_gpus_are_kept() -> None:
    ray, job = FakeRay({"GPU": 4.0, "CPU": 32.0}), Job()
    with pytest.raises(BackendError, match="stop here"):
        ray_runner._run(ray, job, deque(range(10)), JobOptions(device="cuda"), 3, None)  # type: ignore[arg-type]
    assert len(ray.started) == 3 and not [line for line in job.lines if "--workers" in line]
