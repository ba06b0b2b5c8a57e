"""A job over many inputs: plan it, skip what the journal proves finished, collect task results,
finish each output (join segments, record it in the journal), and summarize.

The plan and the bookkeeping are the same whether the tasks run here (:func:`run_local`) or on
Ray (:func:`~derain_deploy.distributed.ray_runner.run_many`).
"""

from __future__ import annotations

import shutil
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..backends import resolve_model
from ..job import JobOptions, check_inputs, prepare_backend, skip_own_outputs
from ..output_guard import check_writes
from ..streams import default_output_path, open_source
from ..streams.base import StreamError
from ..streams.files import one_line
from ..streams.images import ImageSource
from ..streams.video_source import is_stream_url
from .journal import Journal, Record, digest, file_key, input_key
from .manifest import expand_inputs
from .outputs import describe_error, input_id, remove_output, remove_stale_temps
from .segments import join_segments, plan_segments
from .summary import ItemResult, JobSummary, Progress
from .work import Task, TaskResult, run_task, settings_key, worker_name


@dataclass
class JobSettings:
    """How a job is cut into tasks and run. ``segment_seconds`` None: videos are never cut."""

    retries: int = 2
    segment_seconds: float | None = None
    chunk_images: int = 64
    progress: bool = True


@dataclass
class _Item:
    result: ItemResult
    kind: str = ""  # image, folder, video, stream
    output: Path | None = None
    has_audio: bool = False
    tasks: list[Task] = field(default_factory=list)
    results: dict[int, TaskResult] = field(default_factory=dict)
    workdir: Path | None = None  # segments of a video being cut
    source_key: str = ""  # input_key() of the input as planned
    sources: dict[str, str] = field(default_factory=dict)  # folder: file_key() of each image, by name
    kept: list[str] = field(default_factory=list)  # folder: finished images not done again
    reads: list[str] = field(default_factory=list)  # the input's files
    writes: list[Path] = field(default_factory=list)  # the files its tasks write


class JobRun:
    """The state of one job; the executor calls :meth:`plan`, then :meth:`done` or :meth:`retry`
    for each task it ran, then :meth:`summary`."""

    def __init__(
        self,
        inputs: Sequence[str],
        options: JobOptions,
        settings: JobSettings,
        log: Callable[[str], None] = print,
    ) -> None:
        if options.camera is not None:
            raise StreamError("--camera runs alone: it cannot be part of a job over many inputs")
        inputs = expand_inputs(inputs)
        check_inputs(inputs, options)
        self.options, self.settings, self.log = options, settings, log
        self.items = [_Item(ItemResult(input=spec)) for spec in inputs]
        self.key = settings_key(options)
        self.journals: dict[Path, Journal] = {}
        self.start = time.perf_counter()
        self.backend = ""
        self.progress: Progress | None = None

    def journal(self, output: Path) -> Journal:
        folder = output.parent.resolve()
        if folder not in self.journals:
            self.journals[folder] = Journal(folder)
        return self.journals[folder]

    # planning

    def plan(self) -> list[Task]:
        """All the tasks to run; inputs that cannot be opened are failed, finished ones skipped."""
        outputs: dict[Path, str] = {}
        tasks: list[Task] = []
        for index, item in enumerate(self.items):
            try:
                item_tasks = self._plan_item(index, item, outputs)
            except (StreamError, OSError, ValueError) as e:
                self._fail(item, one_line(e))
                continue
            tasks.extend(item_tasks)
        self._check_writes()
        total = sum(t.frames or 0 for t in tasks)
        pending = sum(1 for item in self.items if item.result.status == "pending")
        self.progress = Progress(total or None, pending, self.settings.progress)
        return tasks

    def _check_writes(self) -> None:
        """Before any work: no file the job writes is an input of it (``derain-run a.png
        a.derained.png``: the first input's output is the second input)."""
        reads = [resolve_model(self.options.model), *(r for item in self.items for r in item.reads)]
        writes = [
            (f"the output of {item.result.input}:", path)
            for item in self.items
            if item.tasks
            for path in item.writes
        ]
        check_writes(writes, reads)

    def _plan_item(self, index: int, item: _Item, outputs: dict[Path, str]) -> list[Task]:
        spec = item.result.input
        options = self.options
        if not is_stream_url(spec):
            item.reads = [spec]
        source = open_source(spec, skip_bad_frames=options.skip_bad_frames, max_pixels=options.max_pixels)
        try:
            info = source.info
            output = default_output_path(info, self.options.output)
            skip_own_outputs(source, output, options)
            files = [str(f) for f in source.files] if isinstance(source, ImageSource) else []
        finally:
            source.close()
        item.reads += files
        folder = info.kind == "folder"
        item.writes = [output / Path(f).relative_to(info.path) for f in files] if folder else [output]
        item.source_key = input_key(spec, files)
        if folder:
            item.sources = {Path(f).relative_to(info.path).as_posix(): file_key(f) for f in files}
        key = output.resolve()
        if key in outputs:
            raise StreamError(f"its output {output} is also the output of {outputs[key]}")
        outputs[key] = spec
        item.kind, item.output, item.has_audio = info.kind, output, info.has_audio
        item.result.output = str(output)
        journal = self.journal(output)
        record = journal.get(output)
        if record is not None and record.settings == self.key and record.input == input_id(spec):
            problem = journal.verify(record)
            if problem is None and record.source == item.source_key:
                item.result.status, item.result.frames = "skipped", record.frames
                return []
            if problem is None and folder and record.sources and not options.stages_preview:
                return self._cut_changed(index, item, record, files)
            self.log(f"{spec}: doing it again: {problem or 'the input has changed since'}")
        if info.kind != "folder":
            remove_stale_temps(output)
        item.tasks = self._cut(index, spec, info.kind, info.frames, output, files)
        return item.tasks

    def _cut_changed(self, index: int, item: _Item, record: Record, files: list[str]) -> list[Task]:
        """A folder whose finished outputs are intact: chunks of its new and changed images only."""
        names = list(item.sources)  # in the order of files
        redo = {name for name in names if record.sources.get(name) != item.sources[name]}
        todo = [f for f, name in zip(files, names) if name in redo]
        item.kept = [name for name in record.names if name in item.sources and name not in redo]
        if not todo:  # images removed from the input only: its other outputs stand
            item.result.status, item.result.frames = "skipped", len(item.kept)
            return []
        self.log(f"{item.result.input}: {len(todo)} new or changed image(s) to do")
        n = self.settings.chunk_images or len(todo)
        spec, output = item.result.input, str(item.output)
        chunks = [todo[i : i + n] for i in range(0, len(todo), n)]
        item.tasks = [
            Task(index, spec, "chunk", output, part, len(c), files=c) for part, c in enumerate(chunks)
        ]
        return item.tasks

    def _cut(
        self, index: int, spec: str, kind: str, frames: int | None, output: Path, files: list[str]
    ) -> list[Task]:
        opts, settings = self.options, self.settings
        whole = [Task(index, spec, "whole", str(output), frames=frames)]
        if kind == "video" and settings.segment_seconds and not (opts.compare or opts.stages_preview):
            segments = plan_segments(spec, settings.segment_seconds)
            if len(segments) < 2:
                return whole
            workdir = output.parent / f".{output.name}.segments"
            shutil.rmtree(workdir, ignore_errors=True)  # left by an interrupted run
            workdir.mkdir(parents=True)
            self.items[index].workdir = workdir
            return [
                Task(
                    index,
                    spec,
                    "segment",
                    str(workdir / f"seg-{s.index:05d}{output.suffix}"),
                    s.index,
                    s.frames,
                    s,
                )
                for s in segments
            ]
        n = settings.chunk_images
        if kind == "folder" and n and len(files) > n and not opts.stages_preview:
            return [
                Task(index, spec, "chunk", str(output), part, len(files[i : i + n]), files=files[i : i + n])
                for part, i in enumerate(range(0, len(files), n))
            ]
        return whole

    # results

    def wanted(self, task: Task) -> bool:
        return self.items[task.item].result.status == "pending"

    def done(self, task: Task, result: TaskResult) -> None:
        item = self.items[task.item]
        if item.result.status != "pending":
            return
        self.backend = self.backend or result.backend
        item.results[task.part] = result
        item.result.attempts = max(item.result.attempts, task.attempts + 1)
        if result.worker not in item.result.workers:
            item.result.workers.append(result.worker)
        if self.progress:
            self.progress.commit(result.worker, result.frames)
        if len(item.results) == len(item.tasks):
            try:
                self._finish(item)
            except (StreamError, OSError, ValueError) as e:
                self._fail(item, one_line(e))

    def retry(self, task: Task, error: BaseException | str, worker: str | None = None) -> bool:
        """Count a failed attempt; True when the task should run again, else the input fails."""
        message = error if isinstance(error, str) else describe_error(error)
        if self.progress and worker:
            self.progress.commit(worker, 0)
        task.attempts += 1
        item = self.items[task.item]
        item.result.attempts = max(item.result.attempts, task.attempts)
        if item.result.status != "pending":
            return False
        if task.attempts <= self.settings.retries:
            self.log(f"{task.label}: attempt {task.attempts} failed ({message}); retrying")
            return True
        self._fail(item, message)
        return False

    def _fail(self, item: _Item, message: str) -> None:
        item.result.status, item.result.error = "failed", message
        if item.workdir is not None:
            shutil.rmtree(item.workdir, ignore_errors=True)
        if self.progress and item.tasks:
            self.progress.file_done()

    def _finish(self, item: _Item) -> None:
        assert item.output is not None
        results = [item.results[t.part] for t in item.tasks]
        written = sum(r.frames for r in results)
        names: list[str] = []
        kind = item.kind if item.kind in ("image", "folder") else "video"
        if item.tasks[0].kind == "segment":
            parts = [Path(t.output) for t in item.tasks]
            if any(r.first_time is None for r in results):
                raise StreamError("a segment of the video has no frames or no timestamps")
            starts = [r.first_time for r in results]
            audio = item.result.input if item.has_audio else None
            joined = join_segments(parts, starts, item.output, audio)  # type: ignore[arg-type]
            assert item.workdir is not None
            shutil.rmtree(item.workdir, ignore_errors=True)
            if joined != written:
                raise StreamError(f"joined {joined} frames into {item.output}, the segments hold {written}")
        new_names = sorted({name for r in results for name in r.names})
        if kind == "folder":
            names = sorted({*new_names, *item.kept})
        frames, sha = digest(item.output, kind, names)
        if frames != written + len(item.kept):
            raise StreamError(f"{item.output} holds {frames} frames, {written + len(item.kept)} were written")
        seconds = sum(r.seconds for r in results)
        record = Record(
            input=input_id(item.result.input),
            output=item.output.name,
            kind=kind,
            frames=frames,
            sha256=sha,
            settings=self.key,
            seconds=round(seconds, 3),
            worker=",".join(item.result.workers),
            backend=results[0].backend,
            names=names,
            source=item.source_key,
            sources={name: item.sources[name] for name in names if name in item.sources},
        )
        try:
            self.journal(item.output).append(record)
        except OSError as e:  # e.g. a full disk: an output the journal does not hold is not finished
            remove_output(item.output, kind, new_names)
            raise StreamError(
                f"cannot record {item.output} in the journal ({one_line(e)}); the output was removed"
            ) from None
        item.result.status, item.result.frames, item.result.seconds = "done", frames, seconds
        item.result.skipped_frames = sum(r.skipped_frames for r in results)
        if self.progress:
            self.progress.file_done()

    def close_progress(self) -> None:
        if self.progress is not None:
            self.progress.close()

    def summary(self, ray_address: str | None = None) -> JobSummary:
        for journal in self.journals.values():
            journal.compact()
        workers = self.progress.worker_stats() if self.progress else {}
        if self.progress:
            self.progress.close()
        for item in self.items:
            if item.result.status == "pending":  # interrupted before it finished
                item.result.status, item.result.error = "failed", "not finished"
        return JobSummary(
            items=[item.result for item in self.items],
            seconds=time.perf_counter() - self.start,
            backend=self.backend,
            workers=workers,
            ray_address=ray_address,
        )


def run_local(
    inputs: Sequence[str],
    options: JobOptions,
    settings: JobSettings | None = None,
    log: Callable[[str], None] = print,
) -> JobSummary:
    """Run a job in this process with one backend: the tasks one after another, each failed
    task retried up to ``settings.retries`` times, the journal kept as with Ray."""
    job = JobRun(inputs, options, settings or JobSettings(), log)
    tasks = deque(job.plan())
    if tasks:
        backend = prepare_backend(options)
        log(f"backend: {backend.info.describe()} ({backend.info.details.get('chosen_because', '')})")
        name = worker_name()
        try:
            while tasks:
                task = tasks.popleft()
                if not job.wanted(task):
                    continue
                count = [0]

                def on_frame(n: int, count: list[int] = count) -> None:
                    count[0] += n
                    if job.progress:
                        job.progress.update(name, count[0])

                if job.progress:
                    job.progress.update(name, 0)
                try:
                    result = run_task(task, options, backend, on_frame=on_frame)
                except Exception as e:
                    if job.retry(task, e, name):
                        tasks.appendleft(task)
                    continue
                job.done(task, result)
        finally:
            backend.close()
            job.close_progress()
    return job.summary()
