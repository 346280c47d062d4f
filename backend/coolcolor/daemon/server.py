"""The daemon (DESIGN §4): one ROUTER socket on its own thread, a sqlite journal, a worker thread.

Threads and who owns what:
* socket thread — the only user of the ROUTER socket and of the signing session. It answers cheap
  requests itself (hello, ping, status, list_jobs, cancel, attach, shutdown) and never waits on the
  model, so ``ping`` stays fast while a job runs.
* aux thread — requests that touch the file system (submit: open the source, check paths; inline
  frame reads). It posts its replies to the outbox.
* worker thread — the model (``worker.Worker``).
Everything the other threads want sent goes through ``_outbox``; progress is coalesced per job and
sent at most ``PROGRESS_MAX_HZ`` times a second.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import queue
import secrets
import threading
import time
import traceback
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import zmq

from coolcolor import __version__
from coolcolor.daemon.journal import JobRecord, Journal
from coolcolor.daemon.validation import cache_key, canonical_hash, check_job
from coolcolor.errors import CoolColorError
from coolcolor_protocol import (
    BAD_REQUEST,
    CONFLICT,
    DELIMITER,
    INTERNAL,
    LIMITS,
    NOT_FOUND,
    PROTOCOL_MAJOR,
    PROTOCOL_MINOR,
    REQUEST_TYPES,
    SIGNATURE_SCHEME,
    TERMINAL_STATES,
    UNAVAILABLE,
    ProtocolError,
    Session,
    new_id,
    split_identities,
    validate_request,
    write_connection_file,
)
from coolcolor_protocol.abfiles import job_output
from coolcolor_protocol.messages import PROGRESS_MAX_HZ

log = logging.getLogger("coolcolor.daemon")

# Requests are small (jobs name files); a bigger frame makes libzmq drop the peer (ZMQ_MAXMSGSIZE).
MAX_REQUEST_FRAME_BYTES = 4 * 1024 * 1024


@dataclass
class DaemonConfig:
    state_dir: str
    connection_file: str
    ip: str = "127.0.0.1"
    port: int = 0
    model: str | None = None  # a spec for coolcolor.model.resolve.resolve_model (None: the default model)
    device: str | None = None  # None: cuda when present, else cpu
    dtype: str | None = None  # None: fp16 on CUDA, fp32 on CPU
    roots: list[str] = field(default_factory=list)
    curve_secret_file: str | None = None  # zmq certificate (``zmq.auth.create_certificates``) of the server
    curve_clients_dir: str | None = None  # folder of authorized client public certificates
    max_queued_jobs: int = 1000
    debug: bool = False


def is_loopback(ip: str) -> bool:
    if ip == "localhost":
        return True
    try:
        return ipaddress.ip_address(ip).is_loopback
    except ValueError:
        return False


def _ranges(frames: list[int]) -> list[list[int]]:
    runs: list[list[int]] = []
    for f in sorted(frames):
        if runs and f == runs[-1][1] + 1:
            runs[-1][1] = f
        else:
            runs.append([f, f])
    return runs


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Daemon:
    def __init__(self, config: DaemonConfig):
        if not is_loopback(config.ip) and not (config.curve_secret_file and config.curve_clients_dir):
            raise CoolColorError(
                f"refusing to listen on {config.ip}: only loopback (127.0.0.1) is allowed without CURVE "
                "encryption; pass --curve-secret FILE and --curve-clients DIR to listen on other addresses"
            )
        self.config = config
        self.session_id = new_id()
        self.key = secrets.token_hex(32)
        self.session = Session(self.key.encode("ascii"), self.session_id, require_to=True,
                               max_buffer_bytes=MAX_REQUEST_FRAME_BYTES)
        os.makedirs(config.state_dir, mode=0o700, exist_ok=True)
        self.journal = Journal(os.path.join(config.state_dir, "journal.sqlite3"))
        self.stats: Counter[str] = Counter()
        self.stopping = False
        self.stopped = threading.Event()
        self.model_info: dict[str, Any] = {"state": "loading"}
        self.port = config.port
        self._outbox: queue.SimpleQueue[tuple] = queue.SimpleQueue()
        self._progress_lock = threading.Lock()
        self._progress: dict[str, dict[str, Any]] = {}  # latest unsent progress per job
        self._progress_last: dict[str, float] = {}
        self._last_progress: dict[str, dict[str, Any]] = {}  # latest progress per job, for status
        self._subscribers: dict[str, dict[bytes, str]] = {}  # job -> routing id -> deliver mode
        self._sent: dict[tuple[bytes, str], set[int]] = {}  # frames already sent to a subscriber
        self._peer_session: dict[bytes, str] = {}
        self._cancel: set[str] = set()
        self._cancel_lock = threading.Lock()
        self._queue_cv = threading.Condition()
        self._state_lock = threading.Lock()
        self.running_job: str | None = None
        self._aux = ThreadPoolExecutor(1, thread_name_prefix="coolcolor-aux")
        self._ctx: zmq.Context | None = None
        self._socket: zmq.Socket | None = None
        self._auth: Any = None
        self._io_thread: threading.Thread | None = None
        self.worker: Any = None

    # ================================================================================ life cycle
    def start(self) -> None:
        cfg = self.config
        self._claim_connection_file()
        requeued = self.journal.requeue_interrupted()
        if requeued:
            log.info("resuming %d interrupted job(s): %s", len(requeued), ", ".join(requeued))
        self._ctx = zmq.Context()
        sock = self._ctx.socket(zmq.ROUTER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
        sock.setsockopt(zmq.ROUTER_HANDOVER, 1)
        sock.setsockopt(zmq.SNDHWM, 1000)
        sock.setsockopt(zmq.RCVHWM, 1000)
        sock.setsockopt(zmq.MAXMSGSIZE, MAX_REQUEST_FRAME_BYTES)
        sock.setsockopt(zmq.HANDSHAKE_IVL, 5000)
        sock.setsockopt(zmq.HEARTBEAT_IVL, int(LIMITS["heartbeat_interval_s"] * 1000))
        sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, int(LIMITS["heartbeat_interval_s"] * LIMITS["heartbeat_liveness"] * 1000))
        curve_public = None
        if cfg.curve_secret_file:
            from zmq.auth import load_certificate
            from zmq.auth.thread import ThreadAuthenticator

            curve_public, curve_secret = load_certificate(cfg.curve_secret_file)
            if not curve_secret:
                raise CoolColorError(f"{cfg.curve_secret_file} holds no secret key (use the .key_secret file)")
            self._auth = ThreadAuthenticator(self._ctx)
            self._auth.start()
            self._auth.configure_curve(domain="*", location=cfg.curve_clients_dir)
            sock.curve_server = True
            sock.curve_publickey = curve_public
            sock.curve_secretkey = curve_secret
        try:
            if cfg.port:
                sock.bind(f"tcp://{cfg.ip}:{cfg.port}")
                self.port = cfg.port
            else:
                self.port = sock.bind_to_random_port(f"tcp://{cfg.ip}")
        except zmq.ZMQError as exc:
            sock.close()
            raise CoolColorError(f"cannot listen on {cfg.ip}:{cfg.port or 'any port'}: {exc}") from None
        self._socket = sock
        info: dict[str, Any] = {
            "transport": "tcp", "ip": cfg.ip, "port": self.port, "key": self.key,
            "signature_scheme": SIGNATURE_SCHEME, "session": self.session_id, "pid": os.getpid(),
            "protocol_version": f"{PROTOCOL_MAJOR}.{PROTOCOL_MINOR}", "daemon_version": __version__,
            "state_dir": os.path.abspath(cfg.state_dir),
        }
        if curve_public:
            info["curve_serverkey"] = curve_public.decode("ascii")
        # The socket thread runs before clients can find us, and before the (slow) engine and model
        # imports, so hello and ping are answered from the first moment the connection file exists.
        self._io_thread = threading.Thread(target=self._io_loop, name="coolcolor-socket", daemon=True)
        self._io_thread.start()
        write_connection_file(info, cfg.connection_file)
        from coolcolor.daemon.worker import Worker

        self.worker = Worker(self, cfg.model, cfg.device, cfg.dtype)
        self.worker.start()
        log.info("listening on tcp://%s:%d (session %s, connection file %s)", cfg.ip, self.port,
                 self.session_id, cfg.connection_file)

    def _claim_connection_file(self) -> None:
        path = self.config.connection_file
        try:
            from coolcolor_protocol import read_connection_file

            old = read_connection_file(path)
        except ProtocolError:
            return
        pid = int(old.get("pid") or 0)
        if pid and pid != os.getpid() and _pid_alive(pid):
            raise CoolColorError(f"another daemon (pid {pid}) is using connection file {path}; stop it or pass "
                                 "--connection-file")

    def request_stop(self) -> None:
        """Begin a graceful stop: the running job halts at its next diffusion step and stays queued."""
        self.stopping = True
        with self._queue_cv:
            self._queue_cv.notify_all()

    def wait(self, timeout: float | None = None) -> bool:
        return self.stopped.wait(timeout)

    def shutdown(self, worker_timeout: float = 60.0) -> None:
        self.request_stop()
        if self.worker is not None and self.worker.loaded.is_set():  # a model still loading holds no work
            self.worker.join(worker_timeout)
        self._aux.shutdown(wait=True, cancel_futures=True)
        if self._io_thread is not None:
            self._io_thread.join(10)
        try:
            from coolcolor_protocol import read_connection_file

            if read_connection_file(self.config.connection_file).get("session") == self.session_id:
                os.unlink(self.config.connection_file)
        except (ProtocolError, OSError):
            pass
        if self._auth is not None:
            self._auth.stop()
        if self._ctx is not None:
            self._ctx.term()
        self.journal.close()
        self.stopped.set()

    # ================================================================================ worker side
    def model_ready(self, info: dict[str, Any]) -> None:
        self.model_info = info
        log.info("serving model %s (path %s, hash %s) on %s in %s", info.get("name"), info.get("path"),
                 info.get("hash"), info.get("device"), info.get("dtype"))

    def model_failed(self, message: str) -> None:
        self.model_info = {"state": "failed", "error": message}

    def next_queued(self, timeout: float) -> str | None:
        with self._queue_cv:
            queued = self.journal.queued()
            if not queued and not self.stopping:
                self._queue_cv.wait(timeout)
                queued = self.journal.queued()
        return queued[0] if queued and not self.stopping else None

    def _wake_worker(self) -> None:
        with self._queue_cv:
            self._queue_cv.notify_all()

    def cancel_requested(self, job_id: str) -> bool:
        with self._cancel_lock:
            return job_id in self._cancel

    def job_started(self, job_id: str) -> bool:
        """Mark a queued job running; False if it was cancelled meanwhile (checked under the lock that
        cancel takes, so a job is never both cancelled and run)."""
        with self._state_lock:
            rec = self.journal.get(job_id)
            if rec is None or rec.state != "queued":
                return False
            self.running_job = job_id
            with self._cancel_lock:
                self._cancel.discard(job_id)  # a late cancel of an earlier run of this job
            self.journal.set_state(job_id, "running")
        self.post_event(job_id, "job_state", {"job_id": job_id, "state": "running"})
        for position, queued_id in enumerate(self.journal.queued(), start=1):
            self.post_progress(queued_id, {"job_id": queued_id, "state": "queued", "queue_position": position})
        return True

    def job_finished(self, job_id: str, state: str, *, code: int | None = None, message: str | None = None,
                     cached: bool = False, steps_after_cancel: int | None = None) -> None:
        self.journal.set_state(job_id, state, error_code=code, error_message=message, cached=cached)
        with self._cancel_lock:
            self._cancel.discard(job_id)
        self.running_job = None
        content: dict[str, Any] = {"job_id": job_id, "state": state,
                                   "frames_done": self.journal.frame_count(job_id)}
        if code is not None:
            content["error"] = {"code": code, "message": message}
        elif message:
            content["message"] = message
        if cached:
            content["cached"] = True
        if steps_after_cancel is not None:
            content["steps_after_cancel"] = steps_after_cancel
        self.post_event(job_id, "job_state", content)
        log.info("job %s %s%s", job_id, state, f": {message}" if message else "")

    def announce_frame(self, job_id: str, frame: int, path: str) -> None:
        """Journal, then announce, a frame that is complete on disk — at most once per job."""
        if self.journal.add_frame(job_id, frame, path):
            self._outbox.put(("frame", job_id, frame, path))

    def post_event(self, job_id: str, msg_type: str, content: dict[str, Any]) -> None:
        self._outbox.put(("event", job_id, msg_type, content))

    def post_progress(self, job_id: str, content: dict[str, Any]) -> None:
        with self._progress_lock:
            self._progress[job_id] = content
            self._last_progress[job_id] = content

    # ================================================================================ socket thread
    def _io_loop(self) -> None:
        sock = self._socket
        assert sock is not None
        poller = zmq.Poller()
        poller.register(sock, zmq.POLLIN)
        stop_at: float | None = None
        while True:
            if self.stopping and stop_at is None:
                stop_at = time.monotonic()
            worker = self.worker
            worker_idle = worker is None or not worker.is_alive() or not worker.loaded.is_set()
            if stop_at is not None and worker_idle and time.monotonic() - stop_at > 0.2:
                self._flush_outbox()
                break
            try:
                ready = dict(poller.poll(20))
            except zmq.ZMQError:
                break
            if sock in ready:
                for _ in range(256):
                    try:
                        frames = sock.recv_multipart(flags=zmq.NOBLOCK, copy=False)
                    except zmq.Again:
                        break
                    self._handle(frames)
            self._flush_outbox()
            self._flush_progress()
        sock.close(linger=500)

    def _handle(self, frames: list[Any]) -> None:
        self.stats["received"] += 1
        ids: list[bytes] = [bytes(frames[0].buffer)] if frames else []
        msg = None
        try:
            ids, rest = split_identities(frames, router=True)
            if not rest:
                raise ProtocolError(BAD_REQUEST, f"no {DELIMITER.decode()} delimiter frame in the message")
            msg = self.session.unpack(rest)
            self._peer_session[ids[0]] = msg.session
            if len(self._peer_session) > 10000:
                self._peer_session.clear()
            if msg.type not in REQUEST_TYPES:
                raise ProtocolError(BAD_REQUEST, f"unknown message type {msg.type!r}; requests are "
                                    f"{list(REQUEST_TYPES)}")
            content = validate_request(msg.type, msg.content)
            getattr(self, f"_on_{msg.type}")(ids, msg, content)
            self.stats["answered"] += 1
        except ProtocolError as exc:
            self.stats[f"error_{exc.code}"] += 1
            self._send_error(ids, msg, exc)
        except Exception as exc:  # noqa: BLE001 - a bug must not take the daemon down for everyone else
            log.error("internal error handling a message:\n%s", traceback.format_exc())
            self.stats["error_500"] += 1
            detail = f": {type(exc).__name__}: {exc}" if self.config.debug else ""
            self._send_error(ids, msg, ProtocolError(INTERNAL, f"internal error{detail}"))

    def _send_error(self, ids: list[bytes], msg: Any, exc: ProtocolError) -> None:
        if not ids:
            return
        content = exc.to_content()
        if msg is not None:
            content["request_type"] = msg.type
        self._send(ids, "error", content, parent=msg.msg_id if msg is not None else None,
                   to=msg.session if msg is not None else "")

    def _send(self, ids: list[bytes], msg_type: str, content: dict[str, Any], *, parent: str | None = None,
              to: str | None = None, buffers: tuple = ()) -> bool:
        sock = self._socket
        assert sock is not None
        if to is None:
            to = self._peer_session.get(ids[0], "")
        _, frames = self.session.build(msg_type, content, parent=parent, to=to, buffers=buffers)
        try:
            sock.send_multipart(ids + frames, flags=zmq.NOBLOCK, copy=not buffers)
            self.stats["sent"] += 1
            return True
        except zmq.Again:  # the peer is not reading (HWM): drop; state is on disk for attach/status
            self.stats["dropped"] += 1
        except zmq.ZMQError as exc:
            if exc.errno != zmq.EHOSTUNREACH:
                raise
            self.stats["unreachable"] += 1
            self._unsubscribe(ids[0])
        return False

    def _reply(self, ids: list[bytes], msg: Any, content: dict[str, Any], buffers: tuple = ()) -> None:
        self._send(ids, f"{msg.type}_reply", content, parent=msg.msg_id, to=msg.session, buffers=buffers)

    def _subscribe(self, job_id: str, rid: bytes, deliver: str) -> None:
        self._subscribers.setdefault(job_id, {})[rid] = deliver
        self._sent.setdefault((rid, job_id), set())

    def _unsubscribe(self, rid: bytes) -> None:
        for subs in self._subscribers.values():
            subs.pop(rid, None)
        for key in [k for k in self._sent if k[0] == rid]:
            del self._sent[key]

    def _flush_outbox(self) -> None:
        for _ in range(10000):
            try:
                item = self._outbox.get_nowait()
            except queue.Empty:
                return
            kind = item[0]
            if kind == "send":
                _, ids, msg_type, content, parent, to, buffers = item
                self._send(ids, msg_type, content, parent=parent, to=to, buffers=buffers)
            elif kind == "subscribe":
                self._subscribe(item[1], item[2], item[3])
            elif kind == "frame":
                _, job_id, frame, path = item
                for rid, deliver in list(self._subscribers.get(job_id, {}).items()):
                    self._send_frame(rid, job_id, frame, path, deliver)
            elif kind == "event":
                _, job_id, msg_type, content = item
                for rid in list(self._subscribers.get(job_id, {})):
                    self._send([rid], msg_type, content)
                if msg_type == "job_state" and content.get("state") in TERMINAL_STATES:
                    with self._progress_lock:
                        self._progress.pop(job_id, None)
                        self._progress_last.pop(job_id, None)

    def _send_frame(self, rid: bytes, job_id: str, frame: int, path: str, deliver: str) -> None:
        sent = self._sent.setdefault((rid, job_id), set())
        if frame in sent:
            return
        sent.add(frame)
        content = {"job_id": job_id, "frame": frame, "path": path}
        if deliver == "inline":
            to = self._peer_session.get(rid, "")
            self._aux.submit(self._inline_frame, [rid], to, content)
        else:
            self._send([rid], "frame_done", content)

    def _inline_frame(self, ids: list[bytes], to: str, content: dict[str, Any]) -> None:
        """Read an ab EXR for inline delivery (aux thread: file reads stay off the socket thread)."""
        buffers: tuple = ()
        try:
            import numpy as np

            from coolcolor.video.exr import read_ab_exr

            ab, _ = read_ab_exr(content["path"])
            arr = np.ascontiguousarray(ab, dtype="<f2")
            buffers = ((arr, "<f2", arr.shape),)
            content = dict(content, inline="ab")
        except Exception as exc:  # noqa: BLE001 - reported to the client in the event
            content = dict(content, inline_error=f"{type(exc).__name__}: {exc}")
        self._outbox.put(("send", ids, "frame_done", content, None, to, buffers))

    def _flush_progress(self) -> None:
        now = time.monotonic()
        with self._progress_lock:
            due = [(j, c) for j, c in self._progress.items()
                   if now - self._progress_last.get(j, 0.0) >= 1.0 / PROGRESS_MAX_HZ]
            for j, _ in due:
                del self._progress[j]
                self._progress_last[j] = now
        for job_id, content in due:
            for rid in list(self._subscribers.get(job_id, {})):
                self._send([rid], "progress", content)

    # ================================================================================ requests
    def _summary(self, rec: JobRecord, *, detail: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "job_id": rec.job_id, "key": rec.idem_key, "state": rec.state, "source": rec.spec.get("source"),
            "output_dir": rec.spec.get("output_dir"), "first": rec.spec.get("first"), "last": rec.spec.get("last"),
            "frames_total": rec.frames_total, "frames_done": self.journal.frame_count(rec.job_id),
            "cached": rec.cached, "created": rec.created, "started": rec.started, "finished": rec.finished,
            "error": {"code": rec.error_code, "message": rec.error_message} if rec.error_code else None,
        }
        if rec.state == "queued":
            queued = self.journal.queued()
            out["queue_position"] = queued.index(rec.job_id) + 1 if rec.job_id in queued else None
        elif rec.state == "running":
            out["queue_position"] = 0
            with self._progress_lock:
                last = self._last_progress.get(rec.job_id)
            if last:
                out["progress"] = {k: last.get(k) for k in ("step", "steps_total", "fraction", "eta_s")}
        if detail:
            out["job"] = rec.spec
            out["frames"] = _ranges(list(self.journal.frames(rec.job_id)))
            failed = self.journal.failed_frames(rec.job_id)
            out["frames_failed"] = [{"frame": f, "message": m} for f, m in failed.items()]
        return out

    def _job(self, job_id: str) -> JobRecord:
        rec = self.journal.get(job_id)
        if rec is None:
            raise ProtocolError(NOT_FOUND, f"no job {job_id}")
        return rec

    def _on_hello(self, ids: list[bytes], msg: Any, content: dict[str, Any]) -> None:
        major, minor = (int(x) for x in content["protocol"].split("."))
        if major != PROTOCOL_MAJOR:
            from coolcolor_protocol import UPGRADE_REQUIRED

            raise ProtocolError(UPGRADE_REQUIRED, f"client speaks protocol {content['protocol']}; this daemon "
                                f"speaks {PROTOCOL_MAJOR}.{PROTOCOL_MINOR}")
        self._reply(ids, msg, {
            "protocol": f"{PROTOCOL_MAJOR}.{min(minor, PROTOCOL_MINOR)}",
            "server": {"name": "coolcolor-daemon", "version": __version__, "session": self.session_id,
                       "pid": os.getpid()},
            "capabilities": ["attach", "inline", "cache", "cancel"],
            "limits": dict(LIMITS, roots=self.config.roots, max_queued_jobs=self.config.max_queued_jobs),
            "model": dict(self.model_info),
        })

    def _on_ping(self, ids: list[bytes], msg: Any, content: dict[str, Any]) -> None:
        self._reply(ids, msg, {"time": time.time(), "running": self.running_job,
                               "queued": len(self.journal.queued()), "model": self.model_info.get("state"),
                               "stats": dict(self.stats)})

    def _on_status(self, ids: list[bytes], msg: Any, content: dict[str, Any]) -> None:
        self._reply(ids, msg, {"job": self._summary(self._job(content["job_id"]), detail=True)})

    def _on_list_jobs(self, ids: list[bytes], msg: Any, content: dict[str, Any]) -> None:
        jobs = self.journal.list_jobs(content["states"], content["limit"])
        self._reply(ids, msg, {"jobs": [self._summary(r) for r in jobs]})

    def _on_cancel(self, ids: list[bytes], msg: Any, content: dict[str, Any]) -> None:
        rec = self._job(content["job_id"])
        if rec.state in ("done", "failed"):
            raise ProtocolError(CONFLICT, f"job {rec.job_id} is already {rec.state}; nothing to cancel")
        if rec.state == "cancelled":
            self._reply(ids, msg, {"job_id": rec.job_id, "state": "cancelled"})
            return
        with self._state_lock:
            rec = self._job(rec.job_id)
            cancelled_now = rec.state == "queued"
            if cancelled_now:
                self.journal.set_state(rec.job_id, "cancelled")
            else:
                with self._cancel_lock:
                    self._cancel.add(rec.job_id)
        if cancelled_now:
            self._reply(ids, msg, {"job_id": rec.job_id, "state": "cancelled"})
            self.post_event(rec.job_id, "job_state", {"job_id": rec.job_id, "state": "cancelled",
                                                      "frames_done": self.journal.frame_count(rec.job_id)})
            return
        self._reply(ids, msg, {"job_id": rec.job_id, "state": "cancelling"})

    def _on_shutdown(self, ids: list[bytes], msg: Any, content: dict[str, Any]) -> None:
        self._reply(ids, msg, {"state": "stopping", "running": self.running_job})
        self.request_stop()

    def _on_attach(self, ids: list[bytes], msg: Any, content: dict[str, Any]) -> None:
        rec = self._job(content["job_id"])
        rid = ids[0]
        self._subscribe(rec.job_id, rid, content["deliver"])
        sent = self._sent[(rid, rec.job_id)]
        sent.clear()
        sent.update(content["have"])
        done = self.journal.frames(rec.job_id)
        missing = [f for f in sorted(done) if f not in sent]
        self._reply(ids, msg, {"job": self._summary(rec), "resend": len(missing)})
        for frame in missing:
            self._send_frame(rid, rec.job_id, frame, done[frame], content["deliver"])
        if rec.state in TERMINAL_STATES:
            state = {"job_id": rec.job_id, "state": rec.state, "frames_done": len(done)}
            if rec.error_code:
                state["error"] = {"code": rec.error_code, "message": rec.error_message}
            if content["deliver"] == "inline":  # after the inline frames, which go through the aux thread
                self._aux.submit(self._outbox.put, ("send", [rid], "job_state", state, None,
                                                    self._peer_session.get(rid, ""), ()))
            else:
                self._send([rid], "job_state", state)

    def _on_submit(self, ids: list[bytes], msg: Any, content: dict[str, Any]) -> None:
        if self.stopping:
            raise ProtocolError(UNAVAILABLE, "the daemon is shutting down")
        self._aux.submit(self._submit, ids, msg.msg_id, msg.session, content)

    def _submit(self, ids: list[bytes], parent: str, to: str, content: dict[str, Any]) -> None:
        """Aux thread: validate against the file system, journal, then reply (journal first)."""
        try:
            reply = self._submit_inner(ids[0], content)
            self._outbox.put(("send", ids, "submit_reply", reply, parent, to, ()))
        except ProtocolError as exc:
            self.stats[f"error_{exc.code}"] += 1
            self._outbox.put(("send", ids, "error", dict(exc.to_content(), request_type="submit"), parent, to, ()))
        except Exception as exc:  # noqa: BLE001 - answered with a 500, the daemon keeps serving
            log.error("submit failed:\n%s", traceback.format_exc())
            detail = f": {type(exc).__name__}: {exc}" if self.config.debug else ""
            self._outbox.put(("send", ids, "error", {"code": INTERNAL, "message": f"internal error{detail}",
                                                     "request_type": "submit"}, parent, to, ()))

    def _submit_inner(self, rid: bytes, content: dict[str, Any]) -> dict[str, Any]:
        key, job = content["key"], content["job"]
        request_hash = canonical_hash(job)
        existing = self.journal.by_key(key)
        if existing is not None:
            if existing.request_hash != request_hash:
                raise ProtocolError(CONFLICT, f"idempotency key {key!r} was already used for a different job "
                                    f"({existing.job_id}); use a new key for a new job")
            requeued = False
            if existing.state in ("failed", "cancelled"):
                self.journal.set_state(existing.job_id, "queued")
                requeued = True
                self._wake_worker()
            if content["subscribe"]:
                self._outbox.put(("subscribe", existing.job_id, rid, content["deliver"]))
            rec = self.journal.get(existing.job_id)
            assert rec is not None
            return dict(self._summary(rec), output=job_output(rec.spec), duplicate=True, requeued=requeued)
        if self.model_info.get("state") == "failed":
            raise ProtocolError(UNAVAILABLE, f"the model failed to load: {self.model_info.get('error')}")
        if len(self.journal.queued()) >= self.config.max_queued_jobs:
            raise ProtocolError(UNAVAILABLE, f"the queue is full ({self.config.max_queued_jobs} jobs); retry later")
        checked = check_job(job, self.config.roots)
        ckey = cache_key(checked, self.model_info["hash"]) if self.model_info.get("state") == "ready" else None
        state, cache_from, frames = "queued", None, None
        if ckey is not None:
            for done in self.journal.done_by_cache_key(ckey):
                done_frames = self.journal.frames(done.job_id)
                if len(done_frames) != len(checked.frames) or not all(os.path.isfile(p) for p in done_frames.values()):
                    continue
                if os.path.realpath(done.spec["output_dir"]) == os.path.realpath(checked.spec["output_dir"]):
                    state, frames = "done", done_frames
                else:
                    cache_from = done.job_id
                break
        rec = self.journal.add_job(key, request_hash, checked.spec, state=state, cache_key=ckey,
                                   cache_from=cache_from, cached=state == "done",
                                   frames_total=len(checked.frames), frames=frames)
        if content["subscribe"]:
            self._outbox.put(("subscribe", rec.job_id, rid, content["deliver"]))
        if state == "queued":
            self._wake_worker()
        return dict(self._summary(rec), output=job_output(rec.spec), duplicate=False, requeued=False)
