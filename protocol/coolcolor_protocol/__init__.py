"""CoolColor protocol: the signed ZeroMQ protocol between editor plugins and the CoolColor daemon.

Normative description: ``protocol/SPEC.md``. This package imports only the standard library and
pyzmq and runs on Python 3.9+, because it is loaded inside DaVinci Resolve's and Nuke's Python.
"""

from coolcolor_protocol import abfiles
from coolcolor_protocol.client import Client
from coolcolor_protocol.connection import (
    CONNECTION_FILE_ENV,
    RUNTIME_DIR_ENV,
    default_connection_file,
    endpoint,
    find_connection_file,
    read_connection_file,
    runtime_dir,
    write_connection_file,
)
from coolcolor_protocol.errors import (
    BAD_REQUEST,
    CONFLICT,
    ERROR_CODES,
    INTERNAL,
    NOT_FOUND,
    STORAGE_FULL,
    TOO_LARGE,
    UNAUTHORIZED,
    UNAVAILABLE,
    UPGRADE_REQUIRED,
    DaemonUnavailable,
    ProtocolError,
)
from coolcolor_protocol.jobspec import JOB_LIMITS, JobSpec
from coolcolor_protocol.messages import (
    DELIVER_MODES,
    EVENT_TYPES,
    JOB_STATES,
    LIMITS,
    REQUEST_TYPES,
    TERMINAL_STATES,
    validate_job,
    validate_request,
)
from coolcolor_protocol.wire import (
    DELIMITER,
    DTYPES,
    PROTOCOL_MAJOR,
    PROTOCOL_MINOR,
    PROTOCOL_VERSION,
    SIGNATURE_SCHEME,
    Message,
    Session,
    new_id,
    split_identities,
)

__version__ = PROTOCOL_VERSION

__all__ = [
    "abfiles",
    "BAD_REQUEST",
    "CONFLICT",
    "CONNECTION_FILE_ENV",
    "DELIMITER",
    "DELIVER_MODES",
    "DTYPES",
    "ERROR_CODES",
    "EVENT_TYPES",
    "INTERNAL",
    "JOB_LIMITS",
    "JOB_STATES",
    "LIMITS",
    "NOT_FOUND",
    "PROTOCOL_MAJOR",
    "PROTOCOL_MINOR",
    "PROTOCOL_VERSION",
    "REQUEST_TYPES",
    "RUNTIME_DIR_ENV",
    "SIGNATURE_SCHEME",
    "STORAGE_FULL",
    "TERMINAL_STATES",
    "TOO_LARGE",
    "UNAUTHORIZED",
    "UNAVAILABLE",
    "UPGRADE_REQUIRED",
    "Client",
    "DaemonUnavailable",
    "JobSpec",
    "Message",
    "ProtocolError",
    "Session",
    "default_connection_file",
    "endpoint",
    "find_connection_file",
    "new_id",
    "read_connection_file",
    "runtime_dir",
    "split_identities",
    "validate_job",
    "validate_request",
    "write_connection_file",
]
