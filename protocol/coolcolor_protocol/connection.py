"""Connection files (SPEC.md §1): how a plugin finds the daemon and gets the key, the Jupyter way.

The file holds a secret (the HMAC key lets its reader submit jobs that read and write files as the
daemon's user), so it is created with mode 0600 inside a 0700 directory and replaced atomically.
Discovery order: an explicit path, then ``$COOLCOLOR_CONNECTION_FILE``, then the default file in the
runtime directory (``$COOLCOLOR_RUNTIME_DIR``, else ``$XDG_RUNTIME_DIR/coolcolor``, else a per-user
folder under the home directory).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import tempfile
from typing import Any

from coolcolor_protocol.errors import UNAVAILABLE, DaemonUnavailable, ProtocolError
from coolcolor_protocol.wire import PROTOCOL_VERSION, SIGNATURE_SCHEME

CONNECTION_FILE_ENV = "COOLCOLOR_CONNECTION_FILE"
RUNTIME_DIR_ENV = "COOLCOLOR_RUNTIME_DIR"
DEFAULT_FILE_NAME = "daemon.json"
REQUIRED_FIELDS = ("transport", "ip", "port", "key", "signature_scheme", "session")


def runtime_dir() -> str:
    """The per-user folder for connection files (same answer in the daemon and in every plugin)."""
    explicit = os.environ.get(RUNTIME_DIR_ENV)
    if explicit:
        return explicit
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg:
        return os.path.join(xdg, "coolcolor")
    home = os.path.expanduser("~")
    if sys.platform == "darwin":
        return os.path.join(home, "Library", "Application Support", "CoolColor", "runtime")
    if os.name == "nt":
        return os.path.join(os.environ.get("APPDATA", home), "CoolColor", "runtime")
    return os.path.join(home, ".local", "share", "coolcolor", "runtime")


def default_connection_file() -> str:
    return os.path.join(runtime_dir(), DEFAULT_FILE_NAME)


def find_connection_file(path: str | None = None) -> str:
    """The connection file to use; raises ProtocolError(503) naming where it looked."""
    candidates = [path] if path else [os.environ.get(CONNECTION_FILE_ENV) or default_connection_file()]
    for candidate in candidates:
        if candidate and os.path.isfile(candidate):
            return candidate
    raise ProtocolError(
        UNAVAILABLE,
        f"no CoolColor daemon connection file at {candidates[0]} (is the daemon running? start it with "
        f"`coolcolor serve`, or set {CONNECTION_FILE_ENV})",
    )


def write_connection_file(info: dict[str, Any], path: str) -> str:
    """Write *info* to *path* with mode 0600, atomically (temp file, fsync, rename)."""
    missing = [k for k in REQUIRED_FIELDS if k not in info]
    if missing:
        raise ValueError(f"connection info lacks {missing}")
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, mode=0o700, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".conn-", suffix=".tmp", dir=folder)  # mkstemp creates it 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(info, f, indent=2, sort_keys=True)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path


def read_connection_file(path: str | None = None) -> dict[str, Any]:
    """Load and check a connection file found by :func:`find_connection_file`."""
    path = find_connection_file(path)
    try:
        with open(path, encoding="utf-8") as f:
            info = json.load(f)
    except (OSError, ValueError) as exc:
        raise ProtocolError(UNAVAILABLE, f"cannot read connection file {path}: {exc}") from None
    if not isinstance(info, dict):
        raise ProtocolError(UNAVAILABLE, f"connection file {path} does not hold a JSON object")
    missing = [k for k in REQUIRED_FIELDS if k not in info]
    if missing:
        raise ProtocolError(UNAVAILABLE, f"connection file {path} lacks {missing}")
    if info["signature_scheme"] != SIGNATURE_SCHEME:
        raise ProtocolError(UNAVAILABLE, f"connection file {path}: signature scheme "
                            f"{info['signature_scheme']!r} is not {SIGNATURE_SCHEME!r}")
    info.setdefault("protocol_version", PROTOCOL_VERSION)
    info["path"] = path
    stale = stale_connection_reason(info)
    if stale:
        raise DaemonUnavailable(stale)
    return info


def this_host() -> str:
    """The name a daemon records as ``host`` in its connection file (and a client compares with)."""
    return socket.gethostname()


def process_alive(pid: int) -> bool | None:
    """Whether process ``pid`` exists on this machine; None where that cannot be told harmlessly (on
    Windows ``os.kill`` would terminate it)."""
    if os.name != "posix":
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, owned by someone else
    except OSError:
        return None
    return True


def stale_connection_reason(info: dict[str, Any]) -> str | None:
    """Why the daemon of this connection file is certainly gone, or None when it may be running.

    Gone means: the file records this machine as ``host`` and a ``pid`` with no process (a daemon killed
    with -9 leaves its file behind). Without both fields, or on another host, nothing is concluded and
    the client finds out by asking (SPEC §1).
    """
    pid, host = info.get("pid"), info.get("host")
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0 or not host or host != this_host():
        return None
    if process_alive(pid) is not False:
        return None
    return (f"the CoolColor daemon is not running: connection file {info.get('path', '')} is stale (its daemon, "
            f"pid {pid} on {host}, has exited); start it with `coolcolor serve`")


def endpoint(info: dict[str, Any]) -> str:
    """The address a client connects to (a daemon bound to 0.0.0.0 is reached over loopback here)."""
    ip = info["ip"]
    if ip in ("0.0.0.0", "*", ""):
        ip = "127.0.0.1"
    if ip == "::":
        ip = "::1"
    if ":" in ip:
        ip = f"[{ip}]"
    return f"{info['transport']}://{ip}:{int(info['port'])}"
