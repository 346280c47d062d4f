"""The wire format (SPEC.md §2–§3): signed multipart messages, in the style of jupyter_client's Session.

A message on the wire is ``[ids…, DELIMITER, signature, header, content, buffers…]``. The signature is
HMAC-SHA256 over the delimiter, header, content and every buffer, each prefixed with its length as an
unsigned 64-bit big-endian integer, so that no frame boundary can be moved without detection (Jupyter
leaves buffers unsigned; we do not). The signature is checked before any JSON is parsed. Replays are
refused by a per-sender sequence number, a time window and the ``to`` field (SPEC.md §3.3).

Only the standard library is used here: this module runs inside DaVinci Resolve's and Nuke's Python.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import re
import time
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from coolcolor_protocol.errors import BAD_REQUEST, TOO_LARGE, UNAUTHORIZED, UPGRADE_REQUIRED, ProtocolError

PROTOCOL_MAJOR = 1
PROTOCOL_MINOR = 1
PROTOCOL_VERSION = f"{PROTOCOL_MAJOR}.{PROTOCOL_MINOR}"
DELIMITER = b"<COOLCOLOR|%d>" % PROTOCOL_MAJOR
SIGNATURE_SCHEME = "hmac-sha256"

# Size limits checked before the signature (cheap) and before parsing (safe). SPEC.md §3.4.
MAX_HEADER_BYTES = 16 * 1024
MAX_CONTENT_BYTES = 1024 * 1024
MAX_BUFFERS = 16
MAX_BUFFER_BYTES = 512 * 1024 * 1024
MAX_NDIM = 4
MAX_DIM = 65536
# Little-endian only, so both ends agree on the bytes without negotiating (numpy ``dtype.str``).
DTYPES = {"|u1": 1, "<u2": 2, "<f2": 2, "<f4": 4}
# A sender's clock may differ from ours by this much; it also bounds how long replay state is kept.
REPLAY_WINDOW_S = 300.0

_DELIM_RE = re.compile(rb"^<COOLCOLOR\|(\d{1,6})>$")
_TYPE_RE = re.compile(r"^[a-z][a-z_]{0,63}$")
_ID_RE = re.compile(r"^[0-9A-Za-z_.:-]{1,64}$")
_HEX64_RE = re.compile(rb"^[0-9a-f]{64}$")

BufferLike = Any  # bytes, bytearray, memoryview, or any C-contiguous object with the buffer protocol


def new_id() -> str:
    """A fresh message or session id (uuid4, 32 hex characters)."""
    return uuid.uuid4().hex


def _as_bytes_view(data: BufferLike) -> memoryview:
    view = memoryview(data)
    if not view.c_contiguous:
        raise ValueError("buffer is not C-contiguous; make a contiguous copy before sending it")
    return view.cast("B") if (view.format != "B" or view.ndim != 1) else view


def sign(key: bytes, parts: Iterable[BufferLike]) -> bytes:
    """HMAC-SHA256 hex digest (ASCII bytes) over length-prefixed *parts* (delimiter, header, content,
    buffers…)."""
    mac = hmac.new(key, digestmod=hashlib.sha256)
    for part in parts:
        view = _as_bytes_view(part)
        mac.update(len(view).to_bytes(8, "big"))
        mac.update(view)
    return mac.hexdigest().encode("ascii")


def dumps(obj: Any) -> bytes:
    """Canonical compact JSON; NaN and infinities are refused (they are not JSON)."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed in JSON")


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise ValueError(f"duplicate key {k!r}")
        out[k] = v
    return out


def loads_object(data: BufferLike, what: str) -> dict[str, Any]:
    """Strict JSON object parse: UTF-8, no NaN/Infinity, no duplicate keys, no deep-nesting crash."""
    try:
        text = bytes(data).decode("utf-8")
        obj = json.loads(text, parse_constant=_reject_constant, object_pairs_hook=_no_duplicate_keys)
    except RecursionError:
        raise ProtocolError(BAD_REQUEST, f"{what} JSON is nested too deeply") from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise ProtocolError(BAD_REQUEST, f"{what} is not valid JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise ProtocolError(BAD_REQUEST, f"{what} must be a JSON object, got {type(obj).__name__}")
    return obj


class Message:
    """A verified message. ``buffers`` are memoryviews (read-only, zero-copy where zmq allowed it)."""

    __slots__ = ("buffers", "content", "header", "identities")

    def __init__(
        self,
        header: dict[str, Any],
        content: dict[str, Any],
        buffers: Sequence[memoryview] = (),
        identities: Sequence[bytes] = (),
    ):
        self.header = header
        self.content = content
        self.buffers = list(buffers)
        self.identities = list(identities)

    @property
    def type(self) -> str:
        return self.header["type"]

    @property
    def msg_id(self) -> str:
        return self.header["msg_id"]

    @property
    def parent(self) -> str | None:
        return self.header.get("parent")

    @property
    def session(self) -> str:
        return self.header["session"]

    @property
    def buffer_descriptors(self) -> list[dict[str, Any]]:
        return list(self.header.get("buffers", []))

    def __repr__(self) -> str:
        return f"Message({self.type!r}, content={self.content!r}, buffers={len(self.buffers)})"


def split_identities(frames: Sequence[Any], router: bool) -> tuple[list[bytes], list[Any]]:
    """Split routing identities from the message proper.

    On a ROUTER socket the first frame is always the peer's routing id (set by libzmq), so the search
    for the delimiter starts after it — a client cannot confuse us by choosing the delimiter as its
    routing id (a weakness Jupyter's ``feed_identities`` documents).
    """
    start = 1 if router else 0
    if router and not frames:
        raise ProtocolError(BAD_REQUEST, "empty message")
    for i in range(start, len(frames)):
        view = _frame_view(frames[i])
        if len(view) <= 16 and bytes(view).startswith(b"<COOLCOLOR|"):
            return [bytes(_frame_view(f)) for f in frames[:i]], list(frames[i:])
    ids = [bytes(_frame_view(f)) for f in frames[:start]]
    return ids, []


def _frame_view(frame: Any) -> memoryview:
    """A memoryview of a received frame (zmq.Frame when received with copy=False, else bytes)."""
    buf = getattr(frame, "buffer", None)
    return buf if buf is not None else memoryview(frame)


def _check_descriptor(desc: Any, index: int) -> tuple[str, list[int], int]:
    if not isinstance(desc, dict):
        raise ProtocolError(BAD_REQUEST, f"header.buffers[{index}] must be an object")
    dtype = desc.get("dtype")
    shape = desc.get("shape")
    if dtype not in DTYPES:
        raise ProtocolError(
            BAD_REQUEST, f"header.buffers[{index}].dtype {dtype!r} is not one of {sorted(DTYPES)}"
        )
    if (
        not isinstance(shape, list)
        or not 1 <= len(shape) <= MAX_NDIM
        or not all(type(d) is int and 0 < d <= MAX_DIM for d in shape)
    ):
        raise ProtocolError(
            BAD_REQUEST,
            f"header.buffers[{index}].shape must be a list of 1..{MAX_NDIM} integers in 1..{MAX_DIM}, "
            f"got {shape!r}",
        )
    nbytes = DTYPES[dtype]
    for d in shape:
        nbytes *= d
    return dtype, shape, nbytes


class Session:
    """One side of a conversation: signs what it sends, verifies and de-duplicates what it receives.

    ``require_to`` (the daemon sets it) makes every message except ``hello`` name this session in its
    ``to`` field, so a message captured from one daemon run cannot be replayed to the next.
    """

    def __init__(
        self,
        key: bytes,
        session_id: str | None = None,
        *,
        require_to: bool = False,
        max_buffer_bytes: int = MAX_BUFFER_BYTES,
        replay_window_s: float = REPLAY_WINDOW_S,
        clock: Any = time.time,
    ):
        if not key:
            raise ValueError("an empty HMAC key would disable signing; the protocol requires a key")
        self.key = bytes(key)
        self.session_id = session_id or new_id()
        self.require_to = require_to
        self.max_buffer_bytes = max_buffer_bytes
        self.replay_window_s = replay_window_s
        self._clock = clock
        self._seq = 0
        self._peers: dict[str, tuple[int, float]] = {}  # peer session -> (highest seq, our clock)

    # -- sending -------------------------------------------------------------------------------------
    def build(
        self,
        msg_type: str,
        content: dict[str, Any] | None = None,
        *,
        parent: str | None = None,
        to: str = "",
        buffers: Sequence[tuple[BufferLike, str, Sequence[int]]] = (),
        msg_id: str | None = None,
    ) -> tuple[str, list[Any]]:
        """Frames for one message (without routing ids) and its msg_id.

        ``buffers`` are ``(data, dtype, shape)`` triples; data must be C-contiguous and its size must
        match dtype × shape. The data is not copied: do not modify it until zmq has sent it.
        """
        descriptors = []
        views = []
        for i, (data, dtype, shape) in enumerate(buffers):
            desc = {"dtype": dtype, "shape": [int(d) for d in shape]}
            _, _, nbytes = _check_descriptor(desc, i)
            view = _as_bytes_view(data)
            if len(view) != nbytes:
                raise ValueError(f"buffer {i} has {len(view)} bytes; dtype {dtype} shape {list(shape)} "
                                 f"needs {nbytes}")
            descriptors.append(desc)
            views.append(view)
        self._seq += 1
        header: dict[str, Any] = {
            "v": PROTOCOL_VERSION,
            "msg_id": msg_id or new_id(),
            "session": self.session_id,
            "seq": self._seq,
            "ts": self._clock(),
            "type": msg_type,
            "parent": parent,
            "to": to,
            "buffers": descriptors,
        }
        header_b = dumps(header)
        content_b = dumps(content if content is not None else {})
        parts = [DELIMITER, header_b, content_b] + views
        signature = sign(self.key, parts)
        return header["msg_id"], [DELIMITER, signature, header_b, content_b] + views

    # -- receiving -----------------------------------------------------------------------------------
    def unpack(self, frames: Sequence[Any]) -> Message:
        """Verify and decode frames that start at the delimiter. Raises ProtocolError with a code."""
        n = len(frames)
        if n < 4:
            raise ProtocolError(
                BAD_REQUEST, f"message has {n} frames after the routing ids; expected at least 4 "
                "(delimiter, signature, header, content)"
            )
        views = [_frame_view(f) for f in frames]
        delim = bytes(views[0])
        if delim != DELIMITER:
            m = _DELIM_RE.match(delim)
            if m:
                raise ProtocolError(
                    UPGRADE_REQUIRED,
                    f"protocol major version {int(m.group(1))} is not supported; this side speaks "
                    f"{PROTOCOL_MAJOR} ({DELIMITER.decode()})",
                )
            raise ProtocolError(BAD_REQUEST, f"first frame must be the delimiter {DELIMITER.decode()}")
        nbuf = n - 4
        if nbuf > MAX_BUFFERS:
            raise ProtocolError(TOO_LARGE, f"message has {nbuf} buffers; at most {MAX_BUFFERS} allowed")
        if len(views[2]) > MAX_HEADER_BYTES:
            raise ProtocolError(TOO_LARGE, f"header is {len(views[2])} bytes; limit {MAX_HEADER_BYTES}")
        if len(views[3]) > MAX_CONTENT_BYTES:
            raise ProtocolError(TOO_LARGE, f"content is {len(views[3])} bytes; limit {MAX_CONTENT_BYTES}")
        for i, v in enumerate(views[4:]):
            if len(v) > self.max_buffer_bytes:
                raise ProtocolError(TOO_LARGE, f"buffer {i} is {len(v)} bytes; limit {self.max_buffer_bytes}")
        signature = bytes(views[1])
        if not _HEX64_RE.match(signature):
            raise ProtocolError(UNAUTHORIZED, "missing or malformed signature (expected 64 hex digits)")
        expected = sign(self.key, [views[0]] + views[2:])
        if not hmac.compare_digest(signature, expected):
            raise ProtocolError(UNAUTHORIZED, "bad signature (wrong key, or the message was altered)")

        header = loads_object(views[2], "header")
        self._check_header(header, nbuf)
        self._check_replay(header)
        content = loads_object(views[3], "content")
        for i, desc in enumerate(header["buffers"]):
            _, _, nbytes = _check_descriptor(desc, i)
            if len(views[4 + i]) != nbytes:
                raise ProtocolError(
                    BAD_REQUEST,
                    f"buffer {i} has {len(views[4 + i])} bytes but its descriptor "
                    f"({desc['dtype']}, shape {desc['shape']}) needs {nbytes}",
                )
        return Message(header, content, views[4:])

    def _check_header(self, header: dict[str, Any], nbuf: int) -> None:
        def bad(msg: str) -> ProtocolError:
            return ProtocolError(BAD_REQUEST, f"header.{msg}")

        version = header.get("v")
        if not isinstance(version, str) or not re.match(r"^\d{1,6}\.\d{1,6}$", version):
            raise bad(f"v must be a version string like '1.0', got {version!r}")
        if int(version.split(".")[0]) != PROTOCOL_MAJOR:
            raise ProtocolError(UPGRADE_REQUIRED, f"header.v {version} does not match delimiter major "
                                f"{PROTOCOL_MAJOR}")
        for name in ("msg_id", "session"):
            value = header.get(name)
            if not isinstance(value, str) or not _ID_RE.match(value):
                raise bad(f"{name} must be 1..64 characters of [0-9A-Za-z_.:-], got {value!r}")
        seq = header.get("seq")
        if type(seq) is not int or not 0 < seq < 2**63:
            raise bad(f"seq must be a positive integer, got {seq!r}")
        ts = header.get("ts")
        if not isinstance(ts, (int, float)) or isinstance(ts, bool) or not math.isfinite(ts):
            raise bad(f"ts must be a number (seconds since the epoch), got {ts!r}")
        msg_type = header.get("type")
        if not isinstance(msg_type, str) or not _TYPE_RE.match(msg_type):
            raise bad(f"type must match [a-z][a-z_]*, got {msg_type!r}")
        parent = header.get("parent")
        if parent is not None and (not isinstance(parent, str) or not _ID_RE.match(parent)):
            raise bad(f"parent must be null or a message id, got {parent!r}")
        to = header.get("to", "")
        if not isinstance(to, str) or len(to) > 64:
            raise bad(f"to must be a session id string, got {to!r}")
        buffers = header.get("buffers", [])
        if not isinstance(buffers, list) or len(buffers) != nbuf:
            raise bad(f"buffers must list one descriptor per buffer frame ({nbuf}), got {buffers!r}")
        header.setdefault("buffers", buffers)
        header.setdefault("to", to)
        header.setdefault("parent", None)

    def _check_replay(self, header: dict[str, Any]) -> None:
        now = self._clock()
        if abs(now - header["ts"]) > self.replay_window_s:
            raise ProtocolError(
                UNAUTHORIZED,
                f"message timestamp is {now - header['ts']:.0f} s off this side's clock (window "
                f"{self.replay_window_s:.0f} s): stale, replayed, or the clocks disagree",
            )
        to = header["to"]
        if to and to != self.session_id:
            raise ProtocolError(
                UNAUTHORIZED,
                f"message is addressed to session {to}, this is {self.session_id} (the daemon restarted: "
                "re-read the connection file and send hello)",
            )
        if self.require_to and not to and header["type"] != "hello":
            raise ProtocolError(UNAUTHORIZED, "header.to must name the daemon session (from hello_reply "
                                "or the connection file)")
        peer = header["session"]
        last = self._peers.get(peer)
        if last is not None and header["seq"] <= last[0]:
            raise ProtocolError(
                UNAUTHORIZED, f"replayed or reordered message: seq {header['seq']} from session {peer} "
                f"is not above {last[0]}"
            )
        self._peers[peer] = (header["seq"], now)
        if len(self._peers) > 4096:
            self._forget_idle_peers(now)

    def _forget_idle_peers(self, now: float) -> None:
        """Drop peers silent for longer than the window: any replay of theirs now fails the ts check."""
        horizon = now - 2 * self.replay_window_s
        for peer, (_, seen) in list(self._peers.items()):
            if seen < horizon:
                del self._peers[peer]
