"""Message types and the schema of every request's content (SPEC.md §4–§5).

``validate_request`` is shared by the client (which checks before sending, so a script fails fast)
and the daemon (which never trusts the client). It checks types, lengths and counts and fills in
defaults; what needs the file system or the model (paths exist, frames exist, roots) is the daemon's.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from coolcolor_protocol.errors import BAD_REQUEST, TOO_LARGE, ProtocolError
from coolcolor_protocol.jobspec import (  # the job's limits are re-exported here for older imports
    JOB_LIMITS,
    MAX_FRAME_NUMBER,
    MAX_FRAMES_PER_JOB,
    MAX_GUIDANCE,
    MAX_KEYFRAMES,
    MAX_PATH_CHARS,
    MAX_PROMPT_CHARS,
    MAX_SEED,
    MAX_STEPS,
    MAX_WINDOW,
    JobSpec,
)

__all__ = ["DELIVER_MODES", "EVENT_TYPES", "JOB_STATES", "LIMITS", "MAX_FRAME_NUMBER", "MAX_FRAMES_PER_JOB",
           "MAX_GUIDANCE", "MAX_KEYFRAMES", "MAX_PATH_CHARS", "MAX_PROMPT_CHARS", "MAX_SEED", "MAX_STEPS",
           "MAX_WINDOW", "REQUEST_TYPES", "TERMINAL_STATES", "parse_frame_set", "validate_job", "validate_request"]
from coolcolor_protocol.wire import DTYPES, MAX_BUFFER_BYTES, MAX_BUFFERS, MAX_CONTENT_BYTES, MAX_HEADER_BYTES

REQUEST_TYPES = ("hello", "submit", "status", "list_jobs", "attach", "cancel", "ping", "shutdown")
EVENT_TYPES = ("progress", "frame_done", "job_state", "error")
REPLY_TYPES = tuple(f"{t}_reply" for t in REQUEST_TYPES)

JOB_STATES = ("queued", "running", "done", "failed", "cancelled")
TERMINAL_STATES = ("done", "failed", "cancelled")
DELIVER_MODES = ("path", "inline")

# Request limits (SPEC.md §3.4); advertised in hello_reply.limits. The job's own limits are jobspec's.
MAX_KEY_CHARS = 128
MAX_LIST_LIMIT = 1000
MAX_HAVE_ITEMS = 20_000
PROGRESS_MAX_HZ = 10
HEARTBEAT_INTERVAL_S = 2.0
HEARTBEAT_LIVENESS = 3

LIMITS: dict[str, Any] = {
    "max_header_bytes": MAX_HEADER_BYTES,
    "max_content_bytes": MAX_CONTENT_BYTES,
    "max_buffers": MAX_BUFFERS,
    "max_buffer_bytes": MAX_BUFFER_BYTES,
    "dtypes": sorted(DTYPES),
    **JOB_LIMITS,
    "max_key_chars": MAX_KEY_CHARS,
    "progress_max_hz": PROGRESS_MAX_HZ,
    "heartbeat_interval_s": HEARTBEAT_INTERVAL_S,
    "heartbeat_liveness": HEARTBEAT_LIVENESS,
}

_JOB_ID_RE = re.compile(r"^[0-9a-f]{32}$")
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def _bad(where: str, what: str) -> ProtocolError:
    return ProtocolError(BAD_REQUEST, f"{where}: {what}")


def _string(d: dict[str, Any], name: str, where: str, *, required: bool = False, default: str | None = "",
            max_chars: int = MAX_PATH_CHARS, nullable: bool = False, allow_empty: bool = True) -> str | None:
    value = d.get(name)
    if value is None:
        if required:
            raise _bad(f"{where}.{name}", "is required")
        return None if nullable else default
    if not isinstance(value, str):
        raise _bad(f"{where}.{name}", f"must be a string, got {type(value).__name__}")
    if len(value) > max_chars:
        raise ProtocolError(TOO_LARGE, f"{where}.{name}: {len(value)} characters; limit {max_chars}")
    if not allow_empty and not value:
        raise _bad(f"{where}.{name}", "must not be empty")
    if _CONTROL_RE.search(value):
        raise _bad(f"{where}.{name}", "contains control characters")
    return value


def _int(d: dict[str, Any], name: str, where: str, lo: int, hi: int, *, default: int | None = None,
         nullable: bool = False) -> int | None:
    value = d.get(name)
    if value is None:
        if nullable or default is not None:
            return default
        raise _bad(f"{where}.{name}", "is required")
    if type(value) is not int:
        raise _bad(f"{where}.{name}", f"must be an integer, got {value!r}")
    if not lo <= value <= hi:
        raise _bad(f"{where}.{name}", f"{value} is outside {lo}..{hi}")
    return value


def _bool(d: dict[str, Any], name: str, where: str, default: bool) -> bool:
    value = d.get(name, default)
    if type(value) is not bool:
        raise _bad(f"{where}.{name}", f"must be true or false, got {value!r}")
    return value


def _choice(d: dict[str, Any], name: str, where: str, choices: tuple, default: str) -> str:
    value = d.get(name, default)
    if value not in choices:
        raise _bad(f"{where}.{name}", f"must be one of {list(choices)}, got {value!r}")
    return value


def _job_id(d: dict[str, Any], where: str) -> str:
    value = d.get("job_id")
    if not isinstance(value, str) or not _JOB_ID_RE.match(value):
        raise _bad(f"{where}.job_id", f"must be a job id (32 lowercase hex digits), got {value!r}")
    return value


def validate_job(job: Any, where: str = "submit.job") -> dict[str, Any]:
    """A job description checked by ``JobSpec`` (the one job contract), as the JSON-safe dict it journals:
    defaults filled in, keyframes sorted, unknown fields kept (a newer client's) but used by nobody."""
    return JobSpec.from_dict(job, where).to_dict()


def _validate_hello(c: dict[str, Any]) -> dict[str, Any]:
    client = c.get("client", {})
    if not isinstance(client, dict):
        raise _bad("hello.client", "must be an object")
    proto = c.get("protocol", "1.0")
    if not isinstance(proto, str) or not re.match(r"^\d{1,6}\.\d{1,6}$", proto):
        raise _bad("hello.protocol", f"must be a version string like '1.0', got {proto!r}")
    caps = c.get("capabilities", [])
    if not isinstance(caps, list) or len(caps) > 64 or not all(isinstance(x, str) and len(x) <= 64 for x in caps):
        raise _bad("hello.capabilities", "must be a list of at most 64 short strings")
    return {
        "client": {
            "name": _string(client, "name", "hello.client", default="", max_chars=64),
            "version": _string(client, "version", "hello.client", default="", max_chars=64),
        },
        "protocol": proto,
        "capabilities": caps,
    }


def _validate_submit(c: dict[str, Any]) -> dict[str, Any]:
    return {
        "key": _string(c, "key", "submit", required=True, max_chars=MAX_KEY_CHARS, allow_empty=False),
        "job": validate_job(c.get("job")),
        "deliver": _choice(c, "deliver", "submit", DELIVER_MODES, "path"),
        "subscribe": _bool(c, "subscribe", "submit", True),
    }


def _validate_job_ref(name: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    return lambda c: {"job_id": _job_id(c, name)}


def _validate_list_jobs(c: dict[str, Any]) -> dict[str, Any]:
    states = c.get("states")
    if states is not None and (not isinstance(states, list) or not all(s in JOB_STATES for s in states)):
        raise _bad("list_jobs.states", f"must be a list drawn from {list(JOB_STATES)}, got {states!r}")
    return {"states": states, "limit": _int(c, "limit", "list_jobs", 1, MAX_LIST_LIMIT, default=100)}


def parse_frame_set(have: Any, where: str) -> list[int]:
    """``have`` as sent by attach: frame numbers and inclusive ``[a, b]`` ranges, expanded and sorted."""
    if not isinstance(have, list):
        raise _bad(where, f"must be a list of frame numbers or [first, last] ranges, got {type(have).__name__}")
    if len(have) > MAX_HAVE_ITEMS:
        raise ProtocolError(TOO_LARGE, f"{where}: {len(have)} items; limit {MAX_HAVE_ITEMS}")
    frames = set()
    for item in have:
        if type(item) is int and 0 <= item <= MAX_FRAME_NUMBER:
            frames.add(item)
        elif (isinstance(item, list) and len(item) == 2 and all(type(x) is int for x in item)
              and 0 <= item[0] <= item[1] <= MAX_FRAME_NUMBER and item[1] - item[0] < MAX_FRAMES_PER_JOB):
            frames.update(range(item[0], item[1] + 1))
            if len(frames) > MAX_FRAMES_PER_JOB:
                raise ProtocolError(TOO_LARGE, f"{where}: more than {MAX_FRAMES_PER_JOB} frames")
        else:
            raise _bad(where, f"{item!r} is neither a frame number nor a [first, last] range")
    return sorted(frames)


def _validate_attach(c: dict[str, Any]) -> dict[str, Any]:
    return {
        "job_id": _job_id(c, "attach"),
        "have": parse_frame_set(c.get("have", []), "attach.have"),
        "deliver": _choice(c, "deliver", "attach", DELIVER_MODES, "path"),
    }


VALIDATORS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "hello": _validate_hello,
    "submit": _validate_submit,
    "status": _validate_job_ref("status"),
    "list_jobs": _validate_list_jobs,
    "attach": _validate_attach,
    "cancel": _validate_job_ref("cancel"),
    "ping": lambda c: {},
    "shutdown": lambda c: {},
}


def validate_request(msg_type: str, content: dict[str, Any]) -> dict[str, Any]:
    """Normalized content of a request, or ProtocolError(400/413) naming the offending field."""
    validator = VALIDATORS.get(msg_type)
    if validator is None:
        raise ProtocolError(BAD_REQUEST, f"unknown message type {msg_type!r}; requests are {list(REQUEST_TYPES)}")
    return validator(content)
