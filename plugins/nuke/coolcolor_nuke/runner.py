"""The worker thread of one Colorize / Preview press: submit (or re-attach), follow the job's events, show them in a
``nuke.ProgressTask``, and hand every result to the main thread.

Why a thread: the daemon needs seconds to minutes, and Nuke's UI must stay live meanwhile (Nuke dev guide,
"Threading"). Why only ``nuke.executeInMainThread`` from here: the node's knobs and the DAG belong to the main
thread; this thread never reads or writes a knob. It talks to the daemon with its own ``Client`` (a client is not
thread-safe) and survives a daemon restart: it re-reads the connection file and attaches with the frames it already
has, so only the missing ones come again (SPEC.md §4, §5.5).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import nuke

from coolcolor_nuke.frames import have_list
from coolcolor_protocol import Client, DaemonUnavailable, ProtocolError
from coolcolor_protocol.messages import TERMINAL_STATES

START_DAEMON_HINT = "the CoolColor daemon is not running: start it with `coolcolor serve` and press Check daemon"
REFERENCES_UNSUPPORTED = ("this CoolColor daemon does not take reference images: update CoolColor and restart "
                          "`coolcolor serve`, or disconnect the Reference input")
STATUS_EVERY_S = 2.0
EVENT_GRACE_S = 20.0  # after status says "ended", how long the events may take before the frames are re-fetched
RECONNECT_GIVE_UP_S = 600.0  # a daemon that stays away this long ends the wait (the job itself stays journaled)


@dataclass
class PlannedJob:
    """One daemon job the press submits (Colorize: one; Preview keyframe: one per keyframe), or attaches to."""

    spec: dict[str, Any]
    key: str
    job_id: str = ""  # set: attach instead of submit (re-opened script)
    have: set[int] = field(default_factory=set)


class Callbacks:
    """What the runner reports, each call made on the main thread via nuke.executeInMainThread."""

    def __init__(self, submitted: Callable[..., None], frame: Callable[..., None], progress: Callable[..., None],
                 finished: Callable[..., None], failed: Callable[..., None]):
        self.submitted, self.frame, self.progress, self.finished, self.failed = (
            submitted, frame, progress, finished, failed)


class JobRunner(threading.Thread):
    """Runs ``jobs`` one after the other for the node named ``node_name``."""

    def __init__(self, node_name: str, jobs: list[PlannedJob], callbacks: Callbacks, *,
                 connection: str | None = None, title: str = "CoolColor"):
        super().__init__(name=f"coolcolor-{node_name}", daemon=True)
        self.node_name = node_name
        self.jobs = jobs
        self.cb = callbacks
        self.connection = connection
        self.title = title
        self.cancel_requested = threading.Event()
        self.orphaned = threading.Event()  # the node is gone: stop listening, leave the daemon's job running
        self.delivered: list[int] = []  # every frame handed to the node, in order (tests check: each once)
        self.job_ids: list[str] = []
        self.duplicates = 0  # frames the daemon sent again although this node had them (attach must prevent it)

    # -- main-thread hand-off ----------------------------------------------------------------------------------
    def _post(self, fn: Callable[..., None], *args: Any) -> None:
        nuke.executeInMainThread(fn, args)

    def run(self) -> None:
        task = nuke.ProgressTask(self.title)
        try:
            try:
                client = Client(self.connection, name="coolcolor-nuke", timeout=10.0)
            except (ProtocolError, OSError) as exc:
                self._post(self.cb.failed, self.node_name, f"{START_DAEMON_HINT} ({exc})", None)
                return
            try:
                hello = client.hello()
            except DaemonUnavailable:
                client.close()
                self._post(self.cb.failed, self.node_name, START_DAEMON_HINT, None)
                return
            model = hello.get("model", {})
            if model.get("state") == "failed":
                client.close()
                self._post(self.cb.failed, self.node_name,
                           f"the daemon's model failed to load: {model.get('error', 'unknown error')}", None)
                return
            if any(job.spec.get("references") for job in self.jobs) and "max_references" not in (
                    hello.get("limits") or {}):
                # SPEC §10 (1.1, references): references go only to a daemon that advertises them; an older one
                # would keep the field as an unknown one and colorize without it.
                client.close()
                self._post(self.cb.failed, self.node_name, REFERENCES_UNSUPPORTED, None)
                return
            try:
                for index, job in enumerate(self.jobs):
                    if self.cancel_requested.is_set() or self.orphaned.is_set():
                        break
                    if not self._run_one(client, task, job, index, str(model.get("hash", ""))):
                        break
            finally:
                client.close()
        except Exception as exc:  # noqa: BLE001 - a clear line on the node, never a traceback in the Script Editor
            self._post(self.cb.failed, self.node_name, f"unexpected error: {type(exc).__name__}: {exc}", None)
        finally:
            del task

    def _run_one(self, client: Client, task: Any, job: PlannedJob, index: int, model_hash: str) -> bool:
        """One job to its end; False when the press should stop (error, cancel, node gone)."""
        total_jobs = len(self.jobs)
        try:
            if job.job_id:
                reply = client.attach(job.job_id, have_list(job.have))["job"]
                reply.setdefault("job_id", job.job_id)
            else:
                reply = client.submit(job.spec, key=job.key)
        except ProtocolError as exc:
            self._post(self.cb.failed, self.node_name, f"daemon error {exc.code}: {exc.message}", exc.code)
            return False
        except DaemonUnavailable:
            self._post(self.cb.failed, self.node_name, START_DAEMON_HINT, None)
            return False
        job_id = str(reply["job_id"])
        self.job_ids.append(job_id)
        if not job.spec:  # re-attached: the job's own fields (status carries them) give the provenance
            try:
                job.spec = dict(reply.get("job") or client.status(job_id).get("job") or {})
            except (ProtocolError, DaemonUnavailable):
                job.spec = {}
        self._post(self.cb.submitted, self.node_name, job_id, reply, job.spec, index, total_jobs, model_hash)
        state = str(reply.get("state", ""))
        answered_at_submit = state == "done" and not job.job_id
        if state in TERMINAL_STATES and not job.job_id:
            # Finished already (the daemon's cache or the same key): fetch the frames this node lacks.
            try:
                client.attach(job_id, have_list(job.have))
            except (ProtocolError, DaemonUnavailable) as exc:
                self._post(self.cb.failed, self.node_name, f"could not fetch the frames of job {job_id}: {exc}", None)
                return False
        cancel_sent = False
        final: dict[str, Any] | None = None
        lost_since: float | None = None
        # Events are ordered on the socket: a job's frame_done events arrive before its terminal job_state. The
        # journal (status) can list a frame whose event is still in flight, so missing frames are re-fetched only
        # after a daemon restart (a new daemon session), or when the terminal job_state came and frames are still
        # missing (events dropped), or when no job_state came long after status said the job ended.
        session = client.daemon_session
        terminal_event_seen = False
        terminal_status_since: float | None = None
        next_status = time.monotonic() + STATUS_EVERY_S
        started = time.monotonic()
        while final is None:
            if self.orphaned.is_set():
                return False
            if not cancel_sent and (self.cancel_requested.is_set() or task.isCancelled()):
                cancel_sent = self._cancel(client, job_id)
            for msg in client.poll(0.2):
                content = msg.content
                if content.get("job_id") != job_id:
                    continue
                if msg.type == "frame_done":
                    frame = int(content["frame"])
                    if frame in job.have:
                        self.duplicates += 1
                    else:
                        job.have.add(frame)
                        self.delivered.append(frame)
                        self._post(self.cb.frame, self.node_name, frame, str(content.get("path", "")))
                elif msg.type == "progress":
                    self._progress(task, content, index, total_jobs, started)
                elif msg.type == "error":
                    self._post(self.cb.progress, self.node_name,
                               f"frame {content.get('frame')}: error {content.get('code')}: {content.get('message')}")
                elif msg.type == "job_state" and content.get("state") in TERMINAL_STATES:
                    terminal_event_seen = True
                    next_status = 0.0  # confirm with status: it also lists every announced frame
            now = time.monotonic()
            if now < next_status:
                continue
            next_status = now + STATUS_EVERY_S
            try:
                status = client.status(job_id, timeout=5.0)
                lost_since = None
            except ProtocolError as exc:
                self._post(self.cb.failed, self.node_name, f"daemon error {exc.code}: {exc.message}", exc.code)
                return False
            except DaemonUnavailable:
                lost_since = lost_since or now
                if now - lost_since > RECONNECT_GIVE_UP_S:
                    self._post(self.cb.failed, self.node_name, START_DAEMON_HINT, None)
                    return False
                self._post(self.cb.progress, self.node_name,
                           "lost the daemon; waiting for it to come back (`coolcolor serve`) …")
                if client.reconnect():
                    session = client.daemon_session
                    terminal_event_seen = False
                    self._reattach(client, job_id, job)
                continue
            if client.daemon_session != session:  # the daemon restarted (the client reconnected on its own)
                session = client.daemon_session
                terminal_event_seen = False
                self._reattach(client, job_id, job)
                continue
            announced = {f for first, last in status.get("frames", []) for f in range(first, last + 1)}
            if status.get("state") not in TERMINAL_STATES:
                continue
            terminal_status_since = terminal_status_since or now
            if not announced - job.have:
                final = status
            elif terminal_event_seen or now - terminal_status_since > EVENT_GRACE_S:
                terminal_event_seen = False  # the attach sends the missing frames, then the job_state again
                terminal_status_since = None
                self._reattach(client, job_id, job)
            else:
                next_status = now + 0.5  # the frames' events are still on their way
        state = str(final.get("state"))
        if state == "done":  # the bar ends full for this job: progress events are throttled, the last may be older
            task.setProgress(int(round((index + 1) / max(total_jobs, 1) * 100)))
        if answered_at_submit and state == "done":
            final = dict(final, cached=True)  # nothing was computed for this press
        self._post(self.cb.finished, self.node_name, job_id, final, index, total_jobs)
        if state == "failed":
            return False
        return state == "done"

    def _reattach(self, client: Client, job_id: str, job: PlannedJob) -> None:
        try:
            client.hello()
            client.attach(job_id, have_list(job.have))
        except (ProtocolError, DaemonUnavailable):
            pass  # the next status round tries again

    def _cancel(self, client: Client, job_id: str) -> bool:
        try:
            client.cancel(job_id, timeout=5.0)
        except ProtocolError as exc:
            if exc.code != 409:  # 409: already done or failed — nothing to cancel
                self._post(self.cb.progress, self.node_name, f"cancel failed: {exc.code}: {exc.message}")
        except DaemonUnavailable:
            return False
        self._post(self.cb.progress, self.node_name, "cancelling …")
        return True

    def _progress(self, task: Any, content: dict[str, Any], index: int, total_jobs: int, started: float) -> None:
        done = int(content.get("frames_done") or 0)
        total = int(content.get("frames_total") or 0)
        fraction = float(content.get("fraction") or (done / total if total else 0.0))
        overall = (index + min(max(fraction, 0.0), 1.0)) / max(total_jobs, 1)
        task.setProgress(int(round(overall * 100)))
        eta = content.get("eta_s")
        eta_text = f"ETA {int(eta) // 60:d}:{int(eta) % 60:02d}" if isinstance(eta, (int, float)) else "ETA --:--"
        if content.get("state") == "queued":
            text = f"queued (position {content.get('queue_position')})"
        else:
            text = f"{done}/{total} frames · {eta_text}"
        if total_jobs > 1:
            text = f"keyframe {index + 1}/{total_jobs}: {text}"
        task.setMessage(text)
        self._post(self.cb.progress, self.node_name, text)
