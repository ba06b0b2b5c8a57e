"""Many inputs, one job: manifests, a resumable journal, long videos in segments, and Ray.

``run_local`` runs a job in this process with one backend; ``run_many`` runs the same tasks on a
Ray cluster (or a local Ray) with one backend per worker. Both plan the job the same way, skip
outputs the journal proves finished, and return a :class:`JobSummary`.
"""

from __future__ import annotations

from .driver import JobSettings, run_local
from .journal import JOURNAL_NAME, Journal, Record
from .manifest import expand_inputs, read_manifest
from .ray_runner import run_many
from .run import is_job, is_ray_address, run_job
from .summary import ItemResult, JobSummary
from .work import process_input

__all__ = [
    "JOURNAL_NAME",
    "ItemResult",
    "JobSettings",
    "JobSummary",
    "Journal",
    "Record",
    "expand_inputs",
    "is_job",
    "is_ray_address",
    "process_input",
    "read_manifest",
    "run_job",
    "run_local",
    "run_many",
]
