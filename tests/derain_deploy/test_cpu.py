"""derain_deploy.cpu: the one usable-cores function every user of the core count reads."""

from __future__ import annotations

import os

import pytest

from derain_deploy import cpu, cpu_peak
from derain_deploy.backends import ort_backend
from derain_deploy.bench import machine


def test_usable_cores_reads_the_affinity_mask(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 2, 5}, raising=False)
    assert cpu.usable_cores() == 3
    monkeypatch.delattr(os, "sched_getaffinity")
    monkeypatch.setattr(os, "cpu_count", lambda: 7)
    assert cpu.usable_cores() == 7


def test_one_function_for_the_bench_the_backends_and_the_peak() -> None:
    assert machine.usable_cores is cpu.usable_cores
    assert ort_backend.usable_cores is cpu.usable_cores
    assert cpu_peak.usable_cores is cpu.usable_cores
