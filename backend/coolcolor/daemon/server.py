"""The daemon (docs/architecture.md#protocol-and-daemon), assembled from its three parts, whose imports run one way:

    transport (socket, outbox, subscriptions) ─▶ job board (journal, queue, cancel, cache, events)
        ─▶ executor (``run(job, events)``) ─▶ video engine

``Daemon`` only builds and wires them, and runs the start-up and shutdown sequences: the journal is
replayed, the socket answers and the connection file is written before the (slow) model imports,
so ``hello`` and ``ping`` are answered from the first moment clients can find the daemon.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import secrets
import threading
from dataclasses import dataclass, field
from typing import Any

from coolcolor.daemon.board import JobBoard
from coolcolor.daemon.journal import Journal
from coolcolor.daemon.transport import MAX_REQUEST_FRAME_BYTES, Transport, connection_info
from coolcolor.errors import CoolColorError
from coolcolor_protocol import ProtocolError, Session, new_id, write_connection_file

log = logging.getLogger("coolcolor.daemon")


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


class Daemon:
    """Transport + job board + executor for one state folder and one connection file."""

    def __init__(self, config: DaemonConfig, executor: Any = None):
        if not is_loopback(config.ip) and not (config.curve_secret_file and config.curve_clients_dir):
            raise CoolColorError(
                f"refusing to listen on {config.ip}: only loopback (127.0.0.1) is allowed without CURVE "
                "encryption; pass --curve-secret FILE and --curve-clients DIR to listen on other addresses"
            )
        self.config = config
        self.session_id = new_id()
        self.key = secrets.token_hex(32)
        session = Session(self.key.encode("ascii"), self.session_id, require_to=True,
                          max_buffer_bytes=MAX_REQUEST_FRAME_BYTES)
        os.makedirs(config.state_dir, mode=0o700, exist_ok=True)
        self.journal = Journal(os.path.join(config.state_dir, "journal.sqlite3"))
        self.executor = executor  # None: a LocalExecutor for config.model, made once the socket is up
        self.board = JobBoard(self.journal, roots=config.roots, max_queued_jobs=config.max_queued_jobs)
        self.transport = Transport(self.board, session, debug=config.debug, on_shutdown_request=self.request_stop)
        self.board.sink = self.transport  # the transport tells subscribers what the board posts
        self.port = config.port
        self.stopped = threading.Event()

    @property
    def stopping(self) -> bool:
        return self.board.stopping

    # ================================================================================ life cycle
    def start(self) -> None:
        cfg = self.config
        self._claim_connection_file()
        requeued = self.board.recover()
        if requeued:
            log.info("resuming %d interrupted job(s): %s", len(requeued), ", ".join(requeued))
        self.port = self.transport.bind(cfg.ip, cfg.port, cfg.curve_secret_file, cfg.curve_clients_dir)
        self.transport.start()
        write_connection_file(connection_info(self.transport, cfg.ip, self.key, cfg.state_dir), cfg.connection_file)
        if self.executor is None:
            from coolcolor.daemon.executor import LocalExecutor

            self.executor = LocalExecutor(cfg.model, cfg.device, cfg.dtype)
        self.board.start(self.executor)
        log.info("listening on tcp://%s:%d (session %s, connection file %s)", cfg.ip, self.port,
                 self.session_id, cfg.connection_file)

    def _claim_connection_file(self) -> None:
        path = self.config.connection_file
        from coolcolor_protocol.connection import process_alive, read_connection_file

        try:
            old = read_connection_file(path)
        except ProtocolError:
            return  # none, unreadable, or stale (its daemon has exited): ours to replace
        pid = int(old.get("pid") or 0)
        if pid and pid != os.getpid() and process_alive(pid) is True:
            raise CoolColorError(f"another daemon (pid {pid}) is using connection file {path}; stop it or pass "
                                 "--connection-file")

    def request_stop(self) -> None:
        """Begin a graceful stop: running jobs halt at their next diffusion step and stay queued."""
        self.board.request_stop()

    def wait(self, timeout: float | None = None) -> bool:
        return self.stopped.wait(timeout)

    def shutdown(self, worker_timeout: float = 60.0) -> None:
        self.request_stop()
        self.board.join(worker_timeout)
        self.transport.close()
        try:
            from coolcolor_protocol import read_connection_file

            if read_connection_file(self.config.connection_file).get("session") == self.session_id:
                os.unlink(self.config.connection_file)
        except (ProtocolError, OSError):
            pass
        self.journal.close()
        self.stopped.set()

