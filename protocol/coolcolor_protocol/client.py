"""The client every plugin and script uses (SPEC.md §7): one DEALER socket, two ways to drive it.

* Blocking: ``request()`` and the helpers (``submit``, ``status``, ``wait`` …) send and wait for the
  reply; events that arrive meanwhile are kept for ``poll()``.
* Polling: ``send()`` returns at once with the message id; ``poll(0)`` from a UI timer (Resolve's
  ``ui.Timer``, Nuke's worker thread) returns whatever has arrived — replies and events — without
  blocking, and keeps the heartbeat going.

A client is not thread-safe: use it from one thread. Only the standard library and pyzmq are imported.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import zmq

from coolcolor_protocol import connection as conn
from coolcolor_protocol.errors import DaemonUnavailable, ProtocolError
from coolcolor_protocol.messages import (
    HEARTBEAT_INTERVAL_S,
    HEARTBEAT_LIVENESS,
    REQUEST_TYPES,
    TERMINAL_STATES,
    validate_request,
)
from coolcolor_protocol.wire import PROTOCOL_VERSION, Message, Session, split_identities

STALE_CHECK_INTERVAL_S = 0.25  # while waiting for a reply: how often to look whether the daemon's process is gone

if TYPE_CHECKING:  # pragma: no cover
    from typing_extensions import Self


class Client:
    """A connection to the CoolColor daemon.

    ``connection``: a connection-file path, an already loaded connection dict, or None to discover the
    file (``$COOLCOLOR_CONNECTION_FILE``, then the runtime directory). ``curve_keys``: this client's
    (public, secret) Z85 keys when the daemon requires CURVE.
    """

    def __init__(
        self,
        connection: str | dict[str, Any] | None = None,
        *,
        name: str = "coolcolor-client",
        version: str = "",
        timeout: float = 10.0,
        curve_keys: tuple[str, str] | None = None,
        context: zmq.Context | None = None,
    ):
        self._connection_spec = connection
        self.name = name
        self.version = version
        self.timeout = timeout
        self._curve_keys = curve_keys
        self._ctx = context or zmq.Context.instance()
        self._socket: zmq.Socket | None = None
        self.info: dict[str, Any] = {}
        self.session: Session | None = None
        self.server: dict[str, Any] | None = None  # hello_reply content
        self._inbox: collections.deque[Message] = collections.deque()
        self._internal: dict[str, str] = {}  # msg_id -> type of requests whose replies poll() hides
        self._last_recv = time.monotonic()
        self._ping_sent_at: float | None = None
        self.alive = True
        self.rejected = 0  # messages that failed verification (wrong key after a restart, tampering)
        self._open(self._load_info())

    # -- connection ----------------------------------------------------------------------------------
    def _load_info(self) -> dict[str, Any]:
        spec = self._connection_spec
        if isinstance(spec, dict):
            return dict(spec)
        return conn.read_connection_file(spec)

    def _open(self, info: dict[str, Any]) -> None:
        key = info["key"].encode("ascii")
        # Keep our session (and with it the routing id) across reconnects: the daemon hands the
        # connection over (ROUTER_HANDOVER) and our subscriptions stay valid.
        old = self.session
        self.session = Session(key, old.session_id if old else None)
        if old is not None:
            self.session._seq = old._seq  # our seq must keep rising: the daemon may remember us
        self.info = info
        sock = self._ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.ROUTING_ID, ("c-" + self.session.session_id).encode("ascii"))
        sock.setsockopt(zmq.RCVHWM, 256)
        sock.setsockopt(zmq.SNDHWM, 256)
        sock.setsockopt(zmq.RECONNECT_IVL, 100)
        sock.setsockopt(zmq.RECONNECT_IVL_MAX, 2000)
        sock.setsockopt(zmq.HEARTBEAT_IVL, int(HEARTBEAT_INTERVAL_S * 1000))
        sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, int(HEARTBEAT_INTERVAL_S * HEARTBEAT_LIVENESS * 1000))
        sock.setsockopt(zmq.HEARTBEAT_TTL, int(HEARTBEAT_INTERVAL_S * HEARTBEAT_LIVENESS * 1000))
        if info.get("curve_serverkey"):
            public, secret = self._curve_keys or (info.get("curve_client_publickey"),
                                                  info.get("curve_client_secretkey"))
            if not public or not secret:
                sock.close()
                raise ProtocolError(401, "the daemon requires CURVE: pass curve_keys=(public, secret) "
                                    "or put curve_client_publickey/secretkey in the connection file")
            sock.setsockopt(zmq.CURVE_SERVERKEY, _z85(info["curve_serverkey"]))
            sock.setsockopt(zmq.CURVE_PUBLICKEY, _z85(public))
            sock.setsockopt(zmq.CURVE_SECRETKEY, _z85(secret))
        sock.connect(conn.endpoint(info))
        self._socket = sock
        self.server = None
        self._last_recv = time.monotonic()
        self._ping_sent_at = None

    @property
    def daemon_session(self) -> str:
        return (self.server or {}).get("server", {}).get("session") or self.info.get("session", "")

    def _newer_connection(self) -> dict[str, Any] | None:
        """The connection file as it is now, when it names another daemon than the one this client talks to
        (a restart: new session or port); None when it names the same one or cannot be read."""
        if isinstance(self._connection_spec, dict):
            return None
        try:
            info = self._load_info()
        except ProtocolError:
            return None
        if info.get("session") == self.info.get("session") and info.get("port") == self.info.get("port"):
            return None
        return info

    def _replaced(self) -> bool:
        """Whether a new daemon that may be running has taken the file's place: then the dead daemon of the
        file this client read is no reason to give up."""
        info = self._newer_connection()
        return info is not None and conn.stale_connection_reason(info) is None

    def reconnect(self) -> bool:
        """Re-read the connection file; if the daemon restarted (new session), reopen the socket.
        Returns True when it reconnected."""
        info = self._newer_connection()
        if info is None:
            return False
        self._close_socket()
        self._open(info)
        return True

    def close(self) -> None:
        self._close_socket()

    def _close_socket(self) -> None:
        if self._socket is not None:
            self._socket.close(linger=0)
            self._socket = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- polling API ---------------------------------------------------------------------------------
    def send(self, msg_type: str, content: dict[str, Any] | None = None,
             buffers: Sequence[tuple[Any, str, Sequence[int]]] = ()) -> str:
        """Send a request without waiting; returns its msg_id (the reply's ``parent``)."""
        content = dict(content or {})
        if msg_type in REQUEST_TYPES:
            validate_request(msg_type, content)  # fail fast, naming the field; the daemon re-checks
        assert self._socket is not None and self.session is not None, "client is closed"
        msg_id, frames = self.session.build(msg_type, content, to=self.daemon_session, buffers=buffers)
        try:
            self._socket.send_multipart(frames, flags=zmq.NOBLOCK, copy=len(buffers) == 0)
        except zmq.Again:
            raise DaemonUnavailable("the daemon is not reading (send queue full)") from None
        return msg_id

    def poll(self, timeout: float = 0.0) -> list[Message]:
        """Everything received so far (replies and events, in arrival order). ``timeout`` seconds to
        wait for the first message when nothing is queued; 0 never blocks."""
        out = list(self._inbox)
        self._inbox.clear()
        deadline = time.monotonic() + timeout
        while True:
            remaining = 0.0 if out else max(0.0, deadline - time.monotonic())
            msg = self._recv(remaining)
            if msg is None:
                break
            if not self._swallow(msg):
                out.append(msg)
        self._heartbeat()
        return out

    def _swallow(self, msg: Message) -> bool:
        """Hide replies to the client's own heartbeat pings."""
        if msg.parent in self._internal:
            del self._internal[msg.parent]
            return True
        return False

    def _heartbeat(self) -> None:
        now = time.monotonic()
        interval = float((self.server or {}).get("limits", {}).get("heartbeat_interval_s", HEARTBEAT_INTERVAL_S))
        silent = now - self._last_recv
        if silent > interval * HEARTBEAT_LIVENESS and self._ping_sent_at is not None:
            self.alive = False
        if silent > interval and conn.stale_connection_reason(self.info):
            self.alive = False  # the daemon's process is gone: no need to wait out the liveness
        if silent > interval and (self._ping_sent_at is None or now - self._ping_sent_at > interval):
            try:
                self._internal[self.send("ping")] = "ping"
                self._ping_sent_at = now
            except DaemonUnavailable:
                self.alive = False
            if len(self._internal) > 64:
                self._internal.clear()

    def _recv(self, timeout: float) -> Message | None:
        assert self._socket is not None and self.session is not None, "client is closed"
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if not self._socket.poll(max(0, int(remaining * 1000)) if remaining > 0 else 0, zmq.POLLIN):
                return None
            frames = self._socket.recv_multipart(copy=False)
            try:
                _, rest = split_identities(frames, router=False)
                msg = self.session.unpack(rest)
            except ProtocolError:
                self.rejected += 1  # not from our daemon (or altered): never acted upon
                if time.monotonic() >= deadline:
                    return None
                continue
            self._last_recv = time.monotonic()
            self._ping_sent_at = None
            self.alive = True
            return msg

    # -- blocking API --------------------------------------------------------------------------------
    def request(self, msg_type: str, content: dict[str, Any] | None = None,
                timeout: float | None = None, *, retry: bool = True) -> dict[str, Any]:
        """Send a request and wait for its reply's content. An ``error`` reply raises ProtocolError with
        the daemon's code and message; no reply in time raises DaemonUnavailable. Every request is safe
        to repeat (submit carries an idempotency key), so one retry follows a daemon restart."""
        if self.server is None and msg_type != "hello":
            self.hello(timeout)
        msg_id = self.send(msg_type, content)
        timeout = self.timeout if timeout is None else timeout
        reply = self._wait_reply(msg_id, timeout)
        if reply is None:
            if retry and self.reconnect():
                if msg_type != "hello":
                    self.hello(timeout)
                return self.request(msg_type, content, timeout, retry=False)
            raise DaemonUnavailable(f"no reply to {msg_type} within {timeout:.1f} s from the daemon at "
                                    f"{conn.endpoint(self.info)}")
        if reply.type == "error":
            raise ProtocolError(int(reply.content.get("code", 500)), str(reply.content.get("message", "")))
        return reply.content

    def _wait_reply(self, msg_id: str, timeout: float) -> Message | None:
        deadline = time.monotonic() + timeout
        while True:
            remaining = max(0.0, deadline - time.monotonic())
            msg = self._recv(min(remaining, STALE_CHECK_INTERVAL_S))
            if msg is None:
                stale = conn.stale_connection_reason(self.info)
                if stale:  # its process is gone (kill -9): say so now rather than after the timeout
                    if self._replaced():
                        return None  # a new daemon wrote the file since: the caller reconnects and retries
                    self.alive = False
                    raise DaemonUnavailable(stale)
                if remaining <= STALE_CHECK_INTERVAL_S:
                    return None
                continue
            if msg.parent == msg_id:
                return msg
            if not self._swallow(msg):
                self._inbox.append(msg)

    def hello(self, timeout: float | None = None) -> dict[str, Any]:
        """Version negotiation; returns the daemon's hello_reply (server, protocol, limits, model)."""
        self.server = None
        reply = self.request("hello", {
            "client": {"name": self.name, "version": self.version},
            "protocol": PROTOCOL_VERSION,
            "capabilities": ["inline", "attach"],
        }, timeout)
        self.server = reply
        return reply

    def ping(self, timeout: float | None = None) -> float:
        """Round-trip time in seconds."""
        t0 = time.perf_counter()
        self.request("ping", {}, timeout)
        return time.perf_counter() - t0

    def submit(self, job: dict[str, Any], key: str, *, deliver: str = "path", subscribe: bool = True,
               timeout: float | None = None) -> dict[str, Any]:
        return self.request("submit", {"key": key, "job": job, "deliver": deliver, "subscribe": subscribe},
                            timeout)

    def status(self, job_id: str, timeout: float | None = None) -> dict[str, Any]:
        return self.request("status", {"job_id": job_id}, timeout)["job"]

    def list_jobs(self, states: list[str] | None = None, limit: int = 100,
                  timeout: float | None = None) -> list[dict[str, Any]]:
        content: dict[str, Any] = {"limit": limit}
        if states is not None:
            content["states"] = states
        return self.request("list_jobs", content, timeout)["jobs"]

    def attach(self, job_id: str, have: Sequence[Any] = (), *, deliver: str = "path",
               timeout: float | None = None) -> dict[str, Any]:
        return self.request("attach", {"job_id": job_id, "have": list(have), "deliver": deliver}, timeout)

    def cancel(self, job_id: str, timeout: float | None = None) -> dict[str, Any]:
        return self.request("cancel", {"job_id": job_id}, timeout)

    def shutdown(self, timeout: float | None = None) -> dict[str, Any]:
        return self.request("shutdown", {}, timeout)

    def wait(self, job_id: str, timeout: float | None = None,
             on_event: Callable[[Message], None] | None = None, status_every: float = 2.0) -> dict[str, Any]:
        """Block until the job reaches a terminal state; returns its final status. Events for the job
        go to ``on_event``. A status request every ``status_every`` s makes this robust to missed events
        and daemon restarts."""
        deadline = None if timeout is None else time.monotonic() + timeout
        next_status = 0.0
        kept: list[Message] = []  # other jobs' messages, handed back to poll() afterwards
        try:
            while True:
                now = time.monotonic()
                if now >= next_status:
                    job = self.status(job_id)
                    if job["state"] in TERMINAL_STATES:
                        return job
                    next_status = now + status_every
                if deadline is not None and now >= deadline:
                    raise DaemonUnavailable(f"job {job_id} did not finish within {timeout:.1f} s")
                wait_for = min(0.2, next_status - now)
                if deadline is not None:
                    wait_for = min(wait_for, deadline - now)
                for msg in self.poll(max(0.0, wait_for)):
                    if msg.content.get("job_id") != job_id:
                        kept.append(msg)
                        continue
                    if on_event is not None:
                        on_event(msg)
                    if msg.type == "job_state" and msg.content.get("state") in TERMINAL_STATES:
                        next_status = 0.0
        finally:
            self._inbox.extendleft(reversed(kept))


def _z85(key: str | bytes) -> bytes:
    return key.encode("ascii") if isinstance(key, str) else key
