"""Run a job on Ray: one actor per GPU (or per CPU slot), each opening the backend once.

The driver (this process) plans the job, hands tasks to idle actors, polls their progress,
retries failed tasks a bounded number of times (a worker that dies is replaced), joins the
segments of cut videos, and keeps the journal. Outputs go straight from the workers to their
final paths, so on a cluster they must be on storage every node sees at the same path.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from ..backends import registry
from ..backends.base import BackendError
from ..job import JobOptions, prepare_backend
from .driver import JobRun, JobSettings
from .outputs import describe_error
from .summary import JobSummary
from .work import Task, TaskResult, run_task, worker_name

POLL_SECONDS = 0.5


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise BackendError("--ray needs Ray: pip install 'derain-deploy[ray]'") from None
    return ray


class DerainWorker:
    """The actor: opens the backend once in ``__init__``, then runs tasks one at a time.

    It runs with two threads (``max_concurrency=2``) so that :meth:`progress` answers while
    :meth:`run` works."""

    def __init__(self, options: JobOptions, threads: int | None) -> None:
        if threads:
            import torch

            torch.set_num_threads(threads)
        self.options = options
        self.name = worker_name()
        self.frames = 0
        self.backend = None
        self.error: str | None = None  # why the backend did not open (reported by describe)
        try:
            self.backend = prepare_backend(options)
        except Exception as e:  # handed to the driver as one line
            self.error = describe_error(e)

    def describe(self) -> tuple[str, str | None, str | None]:
        """(worker name, backend, error opening the backend)."""
        return self.name, self.backend.info.describe() if self.backend else None, self.error

    def progress(self) -> tuple[str, int]:
        return self.name, self.frames

    def run(self, task: Task) -> TaskResult:
        self.frames = 0

        def on_frame(n: int) -> None:
            self.frames += n

        if self.backend is None:
            raise BackendError(self.error or "the backend is not open")
        return run_task(task, self.options, self.backend, on_frame=on_frame, allow_exit=True)


def _wants_gpu(options: JobOptions, gpus: float) -> bool:
    device = options.device
    gpu_only = options.backend != "auto" and registry.get(options.backend).gpu_only  # unknown: an error
    if device.startswith(("cuda", "tensorrt")) or gpu_only:
        if gpus < 1:
            raise BackendError(
                f"--device {device} / --backend {options.backend} need GPUs; the Ray cluster has none"
            )
        return True
    return device == "auto" and gpus >= 1


def _worker_options(options: JobOptions, gpu: bool, threads: int) -> JobOptions:
    """The options an actor opens its backend with: Ray shows each GPU actor one GPU, so
    ``cuda:N`` becomes ``cuda``; CPU actors share the node's cores (ONNX Runtime threads)."""
    import dataclasses

    opts = dataclasses.replace(options, backend_options=dict(options.backend_options), progress=False)
    if gpu and ":" in opts.device:
        opts.device = opts.device.split(":")[0]
    engine = str(opts.model or "").endswith(".engine")
    # the CPU runtimes (auto picks one of them for weights and ONNX files)
    takes_threads = (opts.backend == "auto" or registry.get(opts.backend).cpu_threads) and not engine
    if not gpu and takes_threads and "threads" not in opts.backend_options:
        opts.backend_options["threads"] = threads
    return opts


def run_many(
    inputs: Sequence[str],
    options: JobOptions,
    ray_address: str | None = None,
    workers: int | None = None,
    retries: int = 2,
    *,
    settings: JobSettings | None = None,
    log: Callable[[str], None] = print,
) -> JobSummary:
    """Derain ``inputs`` on Ray: the cluster at ``ray_address`` ("HOST:6379", "auto"), or a
    local Ray started here (and stopped at the end) when None, or the Ray this process already
    joined. ``workers`` actors (default: one per GPU, or one per CPU on CPU clusters)."""
    ray = import_ray()
    settings = settings or JobSettings(retries=retries)
    settings.retries = retries
    job = JobRun(inputs, options, settings, log)
    tasks = deque(job.plan())
    if not tasks:
        return job.summary(ray_address)
    started = False
    if not ray.is_initialized():
        if ray_address:
            ray.init(address=ray_address, log_to_driver=False)
        else:
            ray.init(address="local", include_dashboard=False, log_to_driver=False)
            started = True
    try:
        return _run(ray, job, tasks, options, workers, ray_address)
    finally:
        if started:
            ray.shutdown()


def _run(
    ray: Any, job: JobRun, tasks: deque[Task], options: JobOptions, workers: int | None, address: str | None
) -> JobSummary:
    resources = ray.cluster_resources()
    gpus, cpus = float(resources.get("GPU", 0)), float(resources.get("CPU", 1))
    gpu = _wants_gpu(options, gpus)
    slots = int(gpus) if gpu else max(int(cpus), 1)
    if gpu and workers and workers > slots:
        # each GPU actor holds one GPU: the rest would wait unscheduled, and the driver with them
        job.log(f"warning: --workers {workers} is more than the cluster's {slots} GPUs; using {slots}")
        workers = slots
    count = max(1, min(workers or slots, len(tasks)))
    threads = max(1, int(cpus) // count) if not gpu else 1
    actor_options = {"num_gpus": 1, "num_cpus": 1} if gpu else {"num_cpus": min(threads, max(int(cpus), 1))}
    Actor = ray.remote(max_concurrency=2, max_restarts=0, **actor_options)(DerainWorker)
    worker_opts = _worker_options(options, gpu, threads)

    def start_actor() -> Any:
        return Actor.remote(worker_opts, None if gpu else threads)

    actors = [start_actor() for _ in range(count)]
    try:
        described = ray.get([a.describe.remote() for a in actors])
    except ray.exceptions.RayActorError as e:
        raise BackendError(f"a Ray worker did not start: {str(e).strip().splitlines()[-1]}") from None
    errors = [error for _, _, error in described if error]
    if errors:
        for actor in actors:
            ray.kill(actor, no_restart=True)
        raise BackendError(f"a Ray worker could not open the backend: {errors[0]}")
    job.log(f"ray: {count} {'GPU' if gpu else 'CPU'} workers, backend {described[0][1]}")
    names = {a: name for a, (name, _, _) in zip(actors, described)}
    idle = list(actors)
    running: dict[Any, tuple[Any, Task]] = {}
    try:
        while tasks or running:
            while idle and tasks:
                task = tasks.popleft()
                if job.wanted(task):
                    actor = idle.pop()
                    running[actor.run.remote(task)] = (actor, task)
                    if job.progress and actor in names:
                        job.progress.update(names[actor], 0)
            if not running:
                continue
            ready, _ = ray.wait(list(running), num_returns=1, timeout=POLL_SECONDS)
            for ref in ready:
                actor, task = running.pop(ref)
                try:
                    result = ray.get(ref)
                except ray.exceptions.RayActorError as e:  # the worker process died: replace it
                    dead = names.pop(actor, "")
                    ray.kill(actor, no_restart=True)
                    actor = start_actor()
                    if job.retry(task, f"worker {dead} died ({type(e).__name__})", dead):
                        tasks.appendleft(task)
                except ray.exceptions.RayTaskError as e:
                    cause = e.cause if isinstance(getattr(e, "cause", None), BaseException) else e
                    if job.retry(task, describe_error(cause), names.get(actor)):
                        tasks.appendleft(task)
                except ray.exceptions.RayError as e:  # lost object, system error: a fresh worker, retry
                    old = names.pop(actor, None)
                    ray.kill(actor, no_restart=True)
                    actor = start_actor()
                    message = f"{type(e).__name__}: {str(e).strip().splitlines()[-1]}"
                    if job.retry(task, message, old):
                        tasks.appendleft(task)
                else:
                    names[actor] = result.worker
                    job.done(task, result)
                idle.append(actor)
            _poll_progress(ray, job, running, names)
    except KeyboardInterrupt:
        for ref in running:
            ray.cancel(ref, force=True)
        raise
    finally:
        for actor in [*idle, *(a for a, _ in running.values())]:
            ray.kill(actor, no_restart=True)
        job.close_progress()
    return job.summary(address or "local")


def _poll_progress(
    ray: Any, job: JobRun, running: dict[Any, tuple[Any, Task]], names: dict[Any, str]
) -> None:
    if job.progress is None or not running:
        return
    actors = [actor for actor, _ in running.values()]
    refs = {actor.progress.remote(): actor for actor in actors}
    ready, _ = ray.wait(list(refs), num_returns=len(refs), timeout=POLL_SECONDS)
    for ref in ready:
        try:
            name, frames = ray.get(ref)
        except ray.exceptions.RayError:
            continue  # a dead worker: its task reports it
        names[refs[ref]] = name
        job.progress.update(name, frames)


__all__ = ["DerainWorker", "import_ray", "run_many"]
