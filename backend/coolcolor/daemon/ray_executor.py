"""The daemon's executor on Ray (``coolcolor serve --ray ADDRESS``): whole jobs, each run by the engine's
driver (``coolcolor.video.run.run_job``) with its windows on a ``RaySegmentRunner`` actor pool
(``coolcolor.scaleout.ray_cluster``). Job-level, as ``coolcolor.daemon.executor.LocalExecutor``; the
segment-level role is the runner's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from coolcolor.errors import CoolColorError
from coolcolor.scaleout.ray_cluster import RaySegmentRunner, connect_ray, require_ray

if TYPE_CHECKING:  # pragma: no cover
    from coolcolor.video.job import ColorizeJob, JobEvents, JobResult


class RayJobExecutor:
    """The daemon's executor on Ray (``coolcolor.daemon.executor.Executor``: ``load``/``run``/``close``).

    ``coolcolor serve --ray ADDRESS`` uses it: the plugins talk to the daemon as before, the job board
    journals and cancels as before, and each job's windows run on the actor pool. One job at a time
    goes through the pool (``capacity`` 1): a job already spreads over every worker.
    """

    capacity = 1

    def __init__(self, address: str, model: str | None = None, device: str | None = None,
                 dtype: str | None = None, workers: int | None = None) -> None:
        self.address, self.model, self.device, self.dtype, self.workers = address, model, device, dtype, workers
        self.pool: RaySegmentRunner | None = None
        self._started_ray = False

    def load(self) -> dict[str, Any]:
        ray = require_ray()
        self._started_ray = not ray.is_initialized()
        local_workers = connect_ray(self.address)
        self.pool = RaySegmentRunner(self.model, workers=self.workers or local_workers, device=self.device,
                                     dtype=self.dtype)
        info = self.pool.worker_info[0]
        return {"name": info.get("name"), "path": info.get("path"), "hash": self.pool.model_hash,
                "device": f"ray:{self.pool.workers}x{info.get('device')}", "dtype": info.get("dtype"),
                "resolution": self.pool.resolution, "known_words": info.get("known_words")}

    def run(self, job: ColorizeJob, events: JobEvents) -> JobResult:
        from coolcolor.video.run import run_job

        if self.pool is None:
            raise CoolColorError("RayJobExecutor.run before load()")
        return run_job(job, self.pool, events)

    def unknown_words(self, prompt: str) -> list[str]:
        """For the board's submit reply, before the job runs: the words the pool's model ignores, found
        here on the driver from the reader a worker sent (``coolcolor.video.run.unknown_words``)."""
        from coolcolor.video.run import unknown_words

        return unknown_words(self.pool.prompt_reader, prompt) if self.pool is not None else []

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()
            self.pool = None
        if self._started_ray:
            require_ray().shutdown()
