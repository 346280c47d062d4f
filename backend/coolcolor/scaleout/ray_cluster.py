"""Scale-out on Ray: the windows of a planned job run as tasks on a pool of Ray actors.

``RaySegmentRunner`` is a ``coolcolor.video.run.SegmentRunner``: the driver (``run_job``) validates,
plans and writes the manifest exactly as for a local run; only the ``colorize`` step differs, and each
task gets the driver's segment context (key, keyframes, shot bounds, checked references, ignored
words). Each actor loads the model once and keeps it (``num_gpus=1`` per actor on a GPU cluster, one
CPU otherwise). The unit of work is a *window* of a
segment: once a shot's keyframe is fixed its windows are independent (see ``video/plan.py``), so the
whole pool works on one long shot. Actors read the source and write the ab EXRs straight into the
output folder (shared storage, atomic writes) and return only small records — frame numbers, paths,
timings; nothing large goes through Ray's object store.

Faults: an actor killed mid-task is restarted and the task retried (``max_task_retries``; the same
file names are rewritten atomically, so every frame is present once, never partial). A window that
keeps killing its worker fails the job with that window named, after the bounded retries. A driver
that dies takes its actors with it; re-running the job finds the finished frames by their job key
and dispatches only the missing ones.

Cancel reaches running tasks through a control method that runs beside them (a concurrency group of
its own): a cancelled run's tasks stop at the next diffusion step, finish the writes already handed
over and return what they wrote; tasks still queued return at once.

Fault injection (tests): the driver sends its ``COOLCOLOR_FAULT`` with each task and the worker arms
it (``coolcolor.faults.arm``), e.g. ``window_first_written:2`` kills a worker after the first frame of
its second window; a restarted worker counts afresh.

The daemon's job-level executor on this pool is ``coolcolor.daemon.ray_executor.RayJobExecutor``.

Security: ``local:N`` starts Ray on 127.0.0.1 only. See docs/scale-out.md.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
import uuid
from collections import deque
from dataclasses import asdict
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from coolcolor import faults
from coolcolor.errors import CoolColorError, InputError
from coolcolor.references import CheckedReference
from coolcolor.video.exr import atomic_write, read_ab_header
from coolcolor.video.ownership import require_owner
from coolcolor.video.plan import JobPlan, Segment, ShotPlan, auto_keyframe
from coolcolor.video.segment import SegmentEvents

if TYPE_CHECKING:  # pragma: no cover
    from coolcolor.video.run import JobRun
    from coolcolor.video.shots import Shot

#: Object store size for ``local:N`` clusters (bytes): frames never travel through it.
LOCAL_OBJECT_STORE_BYTES = 100 * 1024 * 1024
WORKER_START_TIMEOUT_S = 600.0
CANCEL_DRAIN_TIMEOUT_S = 600.0
PROBE_PREFIX = ".coolcolor-probe."


def require_ray() -> Any:
    """The ``ray`` module, or a one-line InputError naming what to install."""
    try:
        import ray
    except ImportError:
        raise InputError("Ray is not installed: pip install 'coolcolor[ray]'") from None
    return ray


# ----------------------------------------------------------------------------- connecting


def _check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """A TCP connect to the GCS first: ``ray.init`` on a dead address would retry for a minute."""
    hostport = address.split("://", 1)[-1]
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise InputError(f"--ray {address!r}: expected auto, local:N or HOST:PORT (e.g. 127.0.0.1:6379)")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout_s):
            pass
    except OSError as exc:
        raise InputError(f"cannot reach the Ray cluster at {hostport}: {exc.strerror or exc}; start it with "
                         "`ray start --head` or use --ray local:N") from None


def start_local_ray(num_cpus: int, num_gpus: int = 0) -> str:
    """A new single-node cluster whose every port listens on 127.0.0.1 only; returns its GCS address.

    ``_node_ip_address="127.0.0.1"`` alone is not enough: Ray 2.60 swaps a loopback address for the
    machine's routable one (``services.resolve_ip_for_localhost``) unless its multi-node support is
    off, as on macOS — so it is switched off for the start of this cluster (checked in the tests by
    the GCS address and every node's address).
    """
    ray = require_ray()
    with _loopback_stays_loopback():
        ray.init(num_cpus=num_cpus, num_gpus=num_gpus, object_store_memory=LOCAL_OBJECT_STORE_BYTES,
                 _node_ip_address="127.0.0.1", include_dashboard=False, log_to_driver=False,
                 configure_logging=False)
    return ray.get_runtime_context().gcs_address


@contextlib.contextmanager
def _loopback_stays_loopback() -> Iterator[None]:
    """Stop Ray 2.60 from replacing 127.0.0.1 by the machine's routable address (it does so when
    starting a node *and* when connecting to one, which then misses a loopback-only cluster)."""
    from ray._private import ray_constants

    saved = ray_constants.ENABLE_RAY_CLUSTER
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = saved


def _is_loopback(address: str) -> bool:
    host = address.split("://", 1)[-1].rpartition(":")[0].strip("[]")
    return host in ("127.0.0.1", "localhost", "::1")


def connect_ray(address: str) -> int | None:
    """Connect this process to Ray: ``auto`` (the cluster ``ray start`` made on this machine),
    ``HOST:PORT`` / ``ray://HOST:PORT``, or ``local:N`` (a new cluster of N CPU workers — or the
    machine's GPUs — on 127.0.0.1 only). Returns N for ``local:N``, else None. An already connected
    process (a test's cluster) is reused."""
    ray = require_ray()
    workers: int | None = None
    if address.startswith("local:"):
        count = address[len("local:"):]
        if not count.isdigit() or int(count) < 1:
            raise InputError(f"--ray {address!r}: local:N needs a worker count N ≥ 1")
        workers = int(count)
    if workers is None and address != "auto":
        _check_reachable(address)
    if ray.is_initialized():  # this process is a driver already (a test's cluster, a daemon's)
        current = ray.get_runtime_context().gcs_address
        if workers is None and address != "auto" and address.split("://", 1)[-1] != current:
            raise InputError(f"this process is already connected to the Ray cluster at {current}, not {address}")
        return workers
    common = dict(include_dashboard=False, log_to_driver=False, configure_logging=False)
    if workers is not None:
        import torch

        start_local_ray(num_cpus=workers, num_gpus=min(torch.cuda.device_count(), workers))
        return workers
    try:
        with _loopback_stays_loopback() if _is_loopback(address) else contextlib.nullcontext():
            ray.init(address=address, **common)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise InputError(f"cannot connect to the Ray cluster at {address}: {str(exc).splitlines()[0]}") from None
    return None


# ----------------------------------------------------------------------------- the actor


class _RecordingEvents(SegmentEvents):
    """A worker's SegmentEvents: collects what the driver needs, polls this run's cancel flag."""

    def __init__(self, worker: ColorizeWorker, run_id: str) -> None:
        self.worker, self.run_id = worker, run_id
        self.written: list[tuple[int, str]] = []
        self.failed: dict[int, str] = {}

    def frame_done(self, frame: int, path: str) -> None:
        self.written.append((frame, path))

    def frame_failed(self, frame: int, message: str) -> None:
        self.failed[frame] = message

    def step(self, step: int, steps_total: int) -> None:
        pass

    def check_cancel(self) -> None:
        from coolcolor.video.job import JobCancelled

        if self.run_id in self.worker.cancelled:
            raise JobCancelled("cancelled")


class ColorizeWorker:
    """One Ray actor: a loaded pipeline, the jobs it has opened, the cancelled runs."""

    def __init__(self, model: str | None, device: str | None, threads: int, dtype: str | None = None) -> None:
        import torch

        torch.set_num_threads(max(1, threads))
        self.cancelled: set[str] = set()
        self.opened: dict[str, Any] = {}
        self.error: str | None = None
        self.pipeline: Any = None
        self.resolved: Any = None
        try:
            from coolcolor.model.resolve import resolve_model

            from coolcolor.model.pipeline import KeyframeKVCache

            self.resolved = resolve_model(model, device, dtype)  # the one resolver, as colorize and serve
            self.pipeline = self.resolved.load_pipeline()
            self.keyframe_cache = KeyframeKVCache()  # a shot's keyframe denoised once per worker
        except (CoolColorError, OSError, ValueError, RuntimeError) as exc:
            self.error = f"{type(exc).__name__}: {exc}" if not isinstance(exc, CoolColorError) else str(exc)

    def info(self) -> dict[str, Any]:
        import ray

        node = ray.get_runtime_context().get_node_id()[:8]
        if self.pipeline is None:
            return {"error": self.error, "node": node, "pid": os.getpid()}
        from coolcolor.model.prompt_words import known_word_count, prompt_reader

        return {"model_hash": self.pipeline.model_hash, "resolution": int(self.pipeline.resolution),
                **self.resolved.describe(), "node": node, "pid": os.getpid(),
                "known_words": known_word_count(self.pipeline.tokenizer),
                "prompt_reader": prompt_reader(self.pipeline)}  # the driver finds a job's ignored words

    def _open(self, run_id: str, job_dict: dict[str, Any], probe: str) -> Any:
        """The job's source, opened once per worker and run; the output folder checked to be shared."""
        if run_id in self.opened:
            return self.opened[run_id]
        from coolcolor.video.encoding import InputDecoder
        from coolcolor.video.job import ColorizeJob, OpenedJob
        from coolcolor.video.sources import open_source

        job = ColorizeJob.from_dict(job_dict)
        here = f"on Ray worker {socket.gethostname()} (pid {os.getpid()})"
        if not os.path.exists(probe):
            raise InputError(f"the output folder {job.output_dir} is not the driver's folder {here}: it must be "
                             "shared storage mounted at the same path on every node")
        if not os.access(job.output_dir, os.W_OK):
            raise InputError(f"the output folder {job.output_dir} is not writable {here}")
        opened = OpenedJob(job, InputDecoder(job.encoding, job.ocio_config),
                           open_source(job.source, job.first, job.last))
        for old in list(self.opened)[:-1]:  # keep at most two runs open
            self.opened.pop(old).close()
        self.opened[run_id] = opened
        return opened

    def choose_keyframe(self, run_id: str, job_dict: dict[str, Any], probe: str, first: int, last: int,
                        failed: dict[int, str]) -> tuple[dict[str, Any], dict[int, str]]:
        from coolcolor.video.shots import Shot

        opened = self._open(run_id, job_dict, probe)
        new_failures: dict[int, str] = {}

        def fail(frame: int, message: str) -> None:
            new_failures[frame] = message

        scorer = None
        if opened.job.clip_model_dir:
            from coolcolor.video.keyframes import ClipScorer

            scorer = ClipScorer(opened.job.clip_model_dir, device=self.pipeline.device)
        plan = auto_keyframe(self.pipeline, opened.job, opened.read_gray, Shot(first, last), {**failed},
                             fail, scorer)
        return asdict(plan), new_failures

    def colorize(self, run_id: str, job_dict: dict[str, Any], probe: str, context: dict[str, Any],
                 window: dict[str, Any], fault: str = "") -> dict[str, Any]:
        """Colorize one window; return the frames written (paths), the frames failed, timings.

        ``context``: the driver's ``SegmentContext`` fields of the job (``_task_context``); ``fault``: the
        driver's ``COOLCOLOR_FAULT``, armed here (it travels with the task, retries too)."""
        from coolcolor.video.job import JobCancelled
        from coolcolor.video.segment import AbFolderSink, SegmentContext, colorize_segment

        faults.arm(fault)

        segment = Segment(int(window["keyframe"]), tuple(int(f) for f in window["frames"]))
        events = _RecordingEvents(self, run_id)
        record: dict[str, Any] = {"pid": os.getpid(), "cancelled": False}
        t = time.perf_counter()
        if run_id in self.cancelled:
            record.update(written=[], failed={}, cancelled=True, timings={})
            return record
        opened = self._open(run_id, job_dict, probe)
        key = context["key"]
        require_owner(opened.job.output_dir, key, f"Ray worker {socket.gethostname()} (pid {os.getpid()})")
        segment_context = SegmentContext(
            opened.job, key, self.pipeline.model_hash, context["keyframes"], keyframe_cache=self.keyframe_cache,
            unknown_words=context["unknown_words"], references=[CheckedReference(**r) for r in context["references"]],
            shots=[(first, last) for first, last in context["shots"]], decoder=opened.decoder)
        try:
            colorize_segment(self.pipeline, segment, opened.read_gray, AbFolderSink(opened.job), events,
                             segment_context)
        except JobCancelled:
            record["cancelled"] = True
        segment_context.timings["task_s"] = time.perf_counter() - t
        record.update(written=events.written, failed=events.failed, timings=segment_context.timings)
        return record

    def cancel(self, run_id: str) -> None:
        self.cancelled.add(run_id)

    def forget(self, run_id: str) -> None:
        self.cancelled.discard(run_id)
        opened = self.opened.pop(run_id, None)
        if opened is not None:
            opened.close()

    # What ``ray.method(concurrency_group="control")`` sets, without importing Ray here: cancel runs in
    # a thread of its own, beside a running colorize task, which polls the flag between steps.
    cancel.__ray_concurrency_group__ = "control"  # type: ignore[attr-defined]


def _actor_class() -> Any:
    ray = require_ray()
    return ray.remote(concurrency_groups={"control": 1})(ColorizeWorker)


# ----------------------------------------------------------------------------- the segment runner


def _cause(exc: BaseException) -> str:
    """One line from a Ray error: the worker's own exception when there is one."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, BaseException):
        return f"{type(cause).__name__}: {cause}" if not isinstance(cause, CoolColorError) else str(cause)
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _task_context(run: JobRun, plan: JobPlan) -> dict[str, Any]:
    """The driver's ``SegmentContext`` of the job (``JobRun.segment_context``) as plain data for a task:
    the same key, keyframes, ignored words, checked references and shot bounds as a local run's."""
    context = run.segment_context(plan)
    return {"key": context.key, "keyframes": context.keyframes, "unknown_words": context.unknown_words,
            "references": [r.to_dict() for r in context.checked_references()],
            "shots": [list(shot) for shot in context.shots or []]}


class RaySegmentRunner:
    """A ``coolcolor.video.run.SegmentRunner`` on a pool of Ray actors (see the module docstring).
    Connect first (``connect_ray``)."""

    name = "ray"

    def __init__(self, model: str | None = None, *, workers: int | None = None, device: str | None = None,
                 dtype: str | None = None, threads: int = 1, max_task_retries: int = 2,
                 in_flight_per_worker: int = 2) -> None:
        ray = require_ray()
        if not ray.is_initialized():
            raise CoolColorError("RaySegmentRunner needs a Ray connection: call connect_ray first")
        resources = ray.cluster_resources()
        gpus, cpus = float(resources.get("GPU", 0)), float(resources.get("CPU", 0))
        use_gpu = gpus >= 1 and device in (None, "cuda")
        if workers is None:
            workers = int(gpus) if use_gpu else max(1, int(cpus))
        if workers < 1:
            raise InputError(f"Ray workers must be ≥ 1, got {workers}")
        if device == "cuda" and gpus < 1:
            raise InputError("the Ray cluster has no GPU, and --device cuda asks for one per worker")
        need, have, what = (workers, gpus, "GPU") if use_gpu else (workers, cpus, "CPU")
        if have < need:
            raise InputError(f"the Ray cluster has {have:g} {what}(s); {workers} worker(s) need {need:g} "
                             f"(one {what} each): add nodes or ask for fewer workers")
        self.workers = workers
        self.max_task_retries = max_task_retries
        self.in_flight_per_worker = max(1, in_flight_per_worker)
        actor_cls = _actor_class()
        options = dict(num_gpus=1 if use_gpu else 0, num_cpus=0 if use_gpu else 1, max_restarts=-1,
                       max_task_retries=max_task_retries)
        self.actors = [actor_cls.options(**options).remote(model, "cuda" if use_gpu else (device or "cpu"), threads,
                                                           dtype)
                       for _ in range(workers)]
        try:
            infos = ray.get([a.info.remote() for a in self.actors], timeout=WORKER_START_TIMEOUT_S)
        except ray.exceptions.GetTimeoutError:
            self.close()
            raise InputError(f"the Ray workers did not start within {WORKER_START_TIMEOUT_S:.0f} s: the cluster "
                             f"has {ray.available_resources()} free") from None
        except ray.exceptions.RayError as exc:
            self.close()
            raise InputError(f"a Ray worker failed to start: {_cause(exc)}") from None
        errors = [i for i in infos if i.get("error")]
        if errors:
            self.close()
            raise InputError(f"Ray worker on node {errors[0]['node']} cannot load the model: {errors[0]['error']}")
        hashes = {i["model_hash"] for i in infos}
        if len(hashes) != 1:
            self.close()
            raise InputError(f"the Ray workers loaded different models (hashes {sorted(h[:12] for h in hashes)}): "
                             "give every node the same checkpoint")
        self.model_hash = hashes.pop()
        self.resolution = int(infos[0]["resolution"])
        self.prompt_reader = infos[0]["prompt_reader"]  # the same model everywhere (by hash): one reader
        self.worker_info = infos
        self.last_records: list[dict[str, Any]] = []  # the last run's task records (bench, tests)
        self._run_id: str | None = None
        self._probe: str | None = None

    # ---------------------------------------------------------------- per run
    def _begin(self, run: JobRun) -> tuple[str, str]:
        """A run id and the probe file that proves to each worker it sees the driver's output folder."""
        if self._run_id is None or self._probe is None or not os.path.exists(self._probe):
            self._run_id = uuid.uuid4().hex
            self._probe = os.path.join(run.job.output_dir, PROBE_PREFIX + self._run_id)

            def write(tmp: str) -> None:
                with open(tmp, "w", encoding="utf-8") as fh:
                    fh.write(self._run_id or "")

            atomic_write(self._probe, write)
        return self._run_id, self._probe

    def _end(self) -> None:
        ray = require_ray()
        if self._run_id is not None:
            for actor in self.actors:
                actor.forget.remote(self._run_id)
        if self._probe is not None:
            try:
                os.unlink(self._probe)
            except OSError:
                pass
        self._run_id = self._probe = None
        del ray

    def choose_keyframe(self, run: JobRun, shot: Shot) -> ShotPlan:
        ray = require_ray()
        run_id, probe = self._begin(run)
        ref = self.actors[0].choose_keyframe.remote(run_id, run.job.to_dict(), probe, shot.first, shot.last,
                                                    dict(run.failed))
        try:
            plan, failures = self._wait_one(run, ref)
        except ray.exceptions.RayError as exc:
            raise CoolColorError(f"choosing the keyframe of shot {shot.first}-{shot.last} on Ray failed: "
                                 f"{_cause(exc)}") from None
        for frame, message in failures.items():
            run.fail(int(frame), message)
        return ShotPlan(**plan)

    def _wait_one(self, run: JobRun, ref: Any) -> Any:
        ray = require_ray()
        while True:
            ready, _ = ray.wait([ref], timeout=0.5)
            if ready:
                return ray.get(ref)
            run.check_cancel()

    def colorize(self, run: JobRun, plan: JobPlan) -> None:
        """Every window of the plan on the pool: each actor keeps up to ``in_flight_per_worker`` windows
        queued so it never waits for the driver; records are applied as windows finish."""
        from coolcolor.video.job import JobCancelled

        ray = require_ray()
        run_id, probe = self._begin(run)
        job_dict, context = run.job.to_dict(), _task_context(run, plan)
        fault = faults.current()
        queue = deque(plan.windows(run.job.window))
        pending: dict[Any, tuple[Segment, int]] = {}
        load = [0] * len(self.actors)
        run.timings.setdefault("ray_tasks", 0)
        self.last_records = []
        t0 = time.perf_counter()
        try:
            while queue or pending:
                for depth in range(1, self.in_flight_per_worker + 1):  # round robin: spread, then queue
                    for index, actor in enumerate(self.actors):
                        if queue and load[index] < depth:
                            window = queue.popleft()
                            ref = actor.colorize.remote(run_id, job_dict, probe, context, window.to_dict(), fault)
                            pending[ref] = (window, index)
                            load[index] += 1
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=0.5)
                run.check_cancel()
                for ref in ready:
                    window, index = pending.pop(ref)
                    load[index] -= 1
                    self._apply(run, window, self._result(ref, window))
        except JobCancelled:
            self._cancel_pending(run, run_id, pending)
            raise
        except BaseException:
            self._cancel_pending(run, run_id, pending)
            raise
        finally:
            run.timings["colorize_s"] = time.perf_counter() - t0
            self._end()

    def _result(self, ref: Any, window: Segment) -> dict[str, Any]:
        ray = require_ray()
        try:
            return ray.get(ref)
        except ray.exceptions.RayTaskError as exc:
            cause = getattr(exc, "cause", None)
            if isinstance(cause, InputError):
                raise InputError(str(cause)) from None
            raise CoolColorError(f"window {_frames(window)} (keyframe {window.keyframe}) failed on a Ray "
                                 f"worker: {_cause(exc)}") from None
        except ray.exceptions.RayError as exc:
            raise CoolColorError(f"window {_frames(window)} (keyframe {window.keyframe}) failed on Ray after "
                                 f"{self.max_task_retries + 1} tries: {_cause(exc)}") from None

    def _apply(self, run: JobRun, window: Segment, record: dict[str, Any]) -> None:
        self.last_records.append(record)
        run.timings["ray_tasks"] += 1
        for name, seconds in (record.get("timings") or {}).items():
            run.timings[f"workers_{name}"] = run.timings.get(f"workers_{name}", 0.0) + seconds
        for frame, message in sorted((record.get("failed") or {}).items()):
            run.fail(int(frame), message)
        for frame, path in record.get("written") or []:
            if read_ab_header(path) is None:
                raise InputError(f"frame {frame} was written by a Ray worker to {path}, which the driver cannot "
                                 "read: the output folder must be shared storage at the same path everywhere")
            run.frame_done(int(frame), path)

    def _cancel_pending(self, run: JobRun, run_id: str, pending: dict[Any, tuple[Segment, int]]) -> None:
        """Stop this run's tasks (running ones at their next step), then report what they wrote."""
        ray = require_ray()
        for actor in self.actors:
            actor.cancel.remote(run_id)
        deadline = time.monotonic() + CANCEL_DRAIN_TIMEOUT_S
        while pending and time.monotonic() < deadline:
            ready, _ = ray.wait(list(pending), num_returns=len(pending), timeout=1.0)
            for ref in ready:
                window, _ = pending.pop(ref)
                try:
                    record = ray.get(ref)
                except ray.exceptions.RayError:
                    continue
                for frame, path in record.get("written") or []:
                    if read_ab_header(path) is not None:
                        run.frame_done(int(frame), path)

    def close(self) -> None:
        ray = require_ray()
        for actor in getattr(self, "actors", []):
            try:
                ray.kill(actor)
            except Exception:  # noqa: BLE001 - already gone
                pass
        self.actors = []


def _frames(window: Segment) -> str:
    return f"{window.frames[0]}-{window.frames[-1]}" if len(window.frames) > 1 else str(window.frames[0])
