"""Error codes of the CoolColor protocol (SPEC.md §6) and the one exception type that carries them.

The codes borrow HTTP's numbers so that plugin authors can branch on familiar classes: 4xx means
"fix the request, retrying the same bytes will fail again", 5xx means "the daemon could not do it
now".
"""

from __future__ import annotations

BAD_REQUEST = 400
UNAUTHORIZED = 401
NOT_FOUND = 404
CONFLICT = 409
TOO_LARGE = 413
UPGRADE_REQUIRED = 426
INTERNAL = 500
UNAVAILABLE = 503
STORAGE_FULL = 507

ERROR_CODES = {
    BAD_REQUEST: "bad request",
    UNAUTHORIZED: "unauthorized",
    NOT_FOUND: "not found",
    CONFLICT: "conflict",
    TOO_LARGE: "too large",
    UPGRADE_REQUIRED: "protocol version not supported",
    INTERNAL: "internal error",
    UNAVAILABLE: "unavailable",
    STORAGE_FULL: "storage full",
}


class ProtocolError(Exception):
    """A failure with a protocol error code; ``str()`` is the message meant for the user."""

    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = int(code)
        self.message = message

    def __str__(self) -> str:
        return f"[{self.code}] {self.message}"

    def to_content(self) -> dict:
        return {"code": self.code, "message": self.message}


class DaemonUnavailable(ProtocolError):
    """No answer from the daemon in time (not running, restarted, or wedged); client-side only."""

    def __init__(self, message: str):
        super().__init__(UNAVAILABLE, message)
