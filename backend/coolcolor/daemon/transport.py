"""The daemon's transport (docs/architecture.md#protocol-and-daemon): the ROUTER socket, the outbox and the
subscriptions.

It translates protocol messages (``coolcolor_protocol``, ``protocol/SPEC.md``) into calls on the job
board and the board's events back into messages; it keeps no job state of its own.

Threads and who owns what:
* socket thread — the only user of the ROUTER socket and of the signing session. It answers cheap
  requests itself (hello, ping, status, list_jobs, cancel, attach, shutdown) and never waits on the
  model, so ``ping`` stays fast while a job runs.
* aux thread — requests that touch the file system (submit: the board opens the source and checks
  paths; inline frame reads). It posts its replies to the outbox.
Everything other threads want sent goes through ``_outbox``; progress is coalesced per job and sent
at most ``PROGRESS_MAX_HZ`` times a second.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
import traceback
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import zmq

from coolcolor import __version__
from coolcolor.errors import CoolColorError
from coolcolor_protocol import (
    BAD_REQUEST,
    DELIMITER,
    INTERNAL,
    LIMITS,
    PROTOCOL_MAJOR,
    PROTOCOL_MINOR,
    REQUEST_TYPES,
    SIGNATURE_SCHEME,
    TERMINAL_STATES,
    UNAVAILABLE,
    ProtocolError,
    Session,
    split_identities,
    validate_request,
)
from coolcolor_protocol.connection import this_host
from coolcolor_protocol.messages import PROGRESS_MAX_HZ

if TYPE_CHECKING:  # pragma: no cover
    from coolcolor.daemon.board import JobBoard

log = logging.getLogger("coolcolor.daemon")

# Requests are small (jobs name files); a bigger frame makes libzmq drop the peer (ZMQ_MAXMSGSIZE).
MAX_REQUEST_FRAME_BYTES = 4 * 1024 * 1024


class Transport:
    """One ROUTER socket on its own thread, speaking for a ``JobBoard`` (it is the board's EventSink)."""

    def __init__(self, board: JobBoard, session: Session, *, debug: bool = False,
                 on_shutdown_request: Any = None):
        self.board = board
        self.session = session
        self.debug = debug
        self.on_shutdown_request = on_shutdown_request or board.request_stop
        self.stats: Counter[str] = Counter()
        self.port = 0
        self.limits: dict[str, Any] = dict(LIMITS, roots=board.roots, max_queued_jobs=board.max_queued_jobs)
        self._outbox: queue.SimpleQueue[tuple] = queue.SimpleQueue()
        self._progress_lock = threading.Lock()
        self._progress: dict[str, dict[str, Any]] = {}  # latest unsent progress per job
        self._progress_last: dict[str, float] = {}
        self._subscribers: dict[str, dict[bytes, str]] = {}  # job -> routing id -> deliver mode
        self._sent: dict[tuple[bytes, str], set[int]] = {}  # frames already sent to a subscriber
        self._peer_session: dict[bytes, str] = {}
        self._aux = ThreadPoolExecutor(1, thread_name_prefix="coolcolor-aux")
        self._ctx: zmq.Context | None = None
        self._socket: zmq.Socket | None = None
        self._auth: Any = None
        self._io_thread: threading.Thread | None = None
        self.curve_public: bytes | None = None

    # ================================================================================ life cycle
    def bind(self, ip: str, port: int = 0, curve_secret_file: str | None = None,
             curve_clients_dir: str | None = None) -> int:
        """Create and bind the socket (CURVE when given its keys); returns the port."""
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
        if curve_secret_file:
            from zmq.auth import load_certificate
            from zmq.auth.thread import ThreadAuthenticator

            curve_public, curve_secret = load_certificate(curve_secret_file)
            if not curve_secret:
                raise CoolColorError(f"{curve_secret_file} holds no secret key (use the .key_secret file)")
            self._auth = ThreadAuthenticator(self._ctx)
            self._auth.start()
            self._auth.configure_curve(domain="*", location=curve_clients_dir)
            sock.curve_server = True
            sock.curve_publickey = curve_public
            sock.curve_secretkey = curve_secret
            self.curve_public = curve_public
        try:
            if port:
                sock.bind(f"tcp://{ip}:{port}")
                self.port = port
            else:
                self.port = sock.bind_to_random_port(f"tcp://{ip}")
        except zmq.ZMQError as exc:
            sock.close()
            raise CoolColorError(f"cannot listen on {ip}:{port or 'any port'}: {exc}") from None
        self._socket = sock
        return self.port

    def start(self) -> None:
        self._io_thread = threading.Thread(target=self._io_loop, name="coolcolor-socket", daemon=True)
        self._io_thread.start()

    def close(self) -> None:
        """After the board has stopped: finish what is queued for sending, then close."""
        self._aux.shutdown(wait=True, cancel_futures=True)
        if self._io_thread is not None:
            self._io_thread.join(10)
        if self._auth is not None:
            self._auth.stop()
        if self._ctx is not None:
            self._ctx.term()

    # ================================================================================ EventSink (any thread)
    def job_event(self, job_id: str, msg_type: str, content: dict[str, Any]) -> None:
        self._outbox.put(("event", job_id, msg_type, content))

    def frame_done(self, job_id: str, frame: int, path: str) -> None:
        self._outbox.put(("frame", job_id, frame, path))

    def progress(self, job_id: str, content: dict[str, Any]) -> None:
        with self._progress_lock:
            self._progress[job_id] = content

    # ================================================================================ socket thread
    def _io_loop(self) -> None:
        sock = self._socket
        assert sock is not None
        poller = zmq.Poller()
        poller.register(sock, zmq.POLLIN)
        stop_at: float | None = None
        while True:
            if self.board.stopping and stop_at is None:
                stop_at = time.monotonic()
            if stop_at is not None and not self.board.busy() and time.monotonic() - stop_at > 0.2:
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
            detail = f": {type(exc).__name__}: {exc}" if self.debug else ""
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
    def _on_hello(self, ids: list[bytes], msg: Any, content: dict[str, Any]) -> None:
        major, minor = (int(x) for x in content["protocol"].split("."))
        if major != PROTOCOL_MAJOR:
            from coolcolor_protocol import UPGRADE_REQUIRED

            raise ProtocolError(UPGRADE_REQUIRED, f"client speaks protocol {content['protocol']}; this daemon "
                                f"speaks {PROTOCOL_MAJOR}.{PROTOCOL_MINOR}")
        self._reply(ids, msg, {
            "protocol": f"{PROTOCOL_MAJOR}.{min(minor, PROTOCOL_MINOR)}",
            "server": {"name": "coolcolor-daemon", "version": __version__, "session": self.session.session_id,
                       "pid": os.getpid()},
            "capabilities": ["attach", "inline", "cache", "cancel"],
            "limits": self.limits,
            "model": dict(self.board.model_info),
        })

    def _on_ping(self, ids: list[bytes], msg: Any, content: dict[str, Any]) -> None:
        running = self.board.running_jobs()
        self._reply(ids, msg, {"time": time.time(), "running": running[0] if running else None,
                               "running_jobs": running, "queued": self.board.queued_count(),
                               "model": self.board.model_info.get("state"), "stats": dict(self.stats)})

    def _on_status(self, ids: list[bytes], msg: Any, content: dict[str, Any]) -> None:
        self._reply(ids, msg, {"job": self.board.summary(self.board.job(content["job_id"]), detail=True)})

    def _on_list_jobs(self, ids: list[bytes], msg: Any, content: dict[str, Any]) -> None:
        jobs = self.board.list_jobs(content["states"], content["limit"])
        self._reply(ids, msg, {"jobs": [self.board.summary(r) for r in jobs]})

    def _on_cancel(self, ids: list[bytes], msg: Any, content: dict[str, Any]) -> None:
        # The reply goes out at once; a job_state event the board posts follows from the outbox.
        self._reply(ids, msg, {"job_id": content["job_id"], "state": self.board.cancel(content["job_id"])})

    def _on_shutdown(self, ids: list[bytes], msg: Any, content: dict[str, Any]) -> None:
        running = self.board.running_jobs()
        self._reply(ids, msg, {"state": "stopping", "running": running[0] if running else None})
        self.on_shutdown_request()

    def _on_attach(self, ids: list[bytes], msg: Any, content: dict[str, Any]) -> None:
        rec = self.board.job(content["job_id"])
        rid = ids[0]
        self._subscribe(rec.job_id, rid, content["deliver"])
        sent = self._sent[(rid, rec.job_id)]
        sent.clear()
        sent.update(content["have"])
        done = self.board.frames(rec.job_id)
        missing = [f for f in sorted(done) if f not in sent]
        self._reply(ids, msg, {"job": self.board.summary(rec), "resend": len(missing)})
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
        if self.board.stopping:
            raise ProtocolError(UNAVAILABLE, "the daemon is shutting down")
        self._aux.submit(self._submit, ids, msg.msg_id, msg.session, content)

    def _submit(self, ids: list[bytes], parent: str, to: str, content: dict[str, Any]) -> None:
        """Aux thread: the board validates against the file system and journals; then the reply."""
        rid, deliver = ids[0], content["deliver"]

        def subscribe(job_id: str) -> None:
            if content["subscribe"]:
                self._outbox.put(("subscribe", job_id, rid, deliver))

        try:
            reply = self.board.submit(content["key"], content["job"], on_journaled=subscribe)
            self._outbox.put(("send", ids, "submit_reply", reply, parent, to, ()))
        except ProtocolError as exc:
            self.stats[f"error_{exc.code}"] += 1
            self._outbox.put(("send", ids, "error", dict(exc.to_content(), request_type="submit"), parent, to, ()))
        except Exception as exc:  # noqa: BLE001 - answered with a 500, the daemon keeps serving
            log.error("submit failed:\n%s", traceback.format_exc())
            detail = f": {type(exc).__name__}: {exc}" if self.debug else ""
            self._outbox.put(("send", ids, "error", {"code": INTERNAL, "message": f"internal error{detail}",
                                                     "request_type": "submit"}, parent, to, ()))


def connection_info(transport: Transport, ip: str, key: str, state_dir: str) -> dict[str, Any]:
    """What the connection file holds (protocol/SPEC.md): how to reach and sign for this daemon."""
    info: dict[str, Any] = {
        "transport": "tcp", "ip": ip, "port": transport.port, "key": key,
        "signature_scheme": SIGNATURE_SCHEME, "session": transport.session.session_id, "pid": os.getpid(),
        "host": this_host(),
        "protocol_version": f"{PROTOCOL_MAJOR}.{PROTOCOL_MINOR}", "daemon_version": __version__,
        "state_dir": os.path.abspath(state_dir),
    }
    if transport.curve_public:
        info["curve_serverkey"] = transport.curve_public.decode("ascii")
    return info
