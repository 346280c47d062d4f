"""The identities of a job (SPEC §5.2, "Job identities"): one definition of each, for the daemon, the engine
and both plugins.

A job has three different identities, and mixing them up is a bug (issue 23 §4):

- **the request** (``request_hash``, ``idempotency_key``): *is this submit the one I sent before?* Everything
  the client sent counts, ``output_dir`` and unknown fields included, because the daemon answers a reused
  key with a different request by 409. A client's idempotency key is therefore derived from the whole
  request: the same request is a duplicate (a retried submit, a button pressed twice), any change is a new
  key, never a conflict.
- **the settings** (``settings_digest``): *what decides the pixels?* The engine's ``job_key`` (written into
  every ab file, so a re-run resumes and never overwrites another job's frames) digests the settings with
  the source taken by its identity; a plugin names its output folder by a digest of its settings, so
  different settings never share a folder.
- **the exact result** (``cache_key``): *may finished frames be reused?* The settings' ``job_key`` plus the
  path, size and mtime of every input file: equal keys mean equal outputs.

Each digest is sha256 over JSON with sorted keys. The two JSON forms are kept as they were, because the
digests are stored: request hashes and cache keys in the daemon's journal (compact separators), job keys in
the ab files' headers (the default separators).

Standard library only, Python 3.9+: the plugins import it inside the host's Python.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

#: The version of ``cache_key``'s layout (journaled keys of another version never match).
CACHE_KEY_VERSION = 1

#: How many hex digits of the request hash an idempotency key carries (the key is at most 128 characters).
IDEMPOTENCY_DIGITS = 40


def _sha256_json(obj: Any, *, compact: bool) -> str:
    separators = (",", ":") if compact else None
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=separators).encode()).hexdigest()


def request_hash(job: Mapping[str, Any]) -> str:
    """The identity of a submitted request: the job exactly as sent (all fields, unknown ones included).
    The daemon journals it with the idempotency key and refuses the key for another request (409)."""
    return _sha256_json(dict(job), compact=True)


def idempotency_key(client: str, job: Mapping[str, Any]) -> str:
    """A client's idempotency key for ``job``: ``<client>-`` and the start of its ``request_hash``, so a
    repeated submit of the same request is a duplicate and a changed one (its output folder too) a new job."""
    return f"{client}-{request_hash(job)[:IDEMPOTENCY_DIGITS]}"


def settings_digest(settings: Mapping[str, Any]) -> str:
    """The identity of the settings that decide a result (64 hex digits): the engine's ``job_key`` is this
    digest of the job's settings; a plugin names an output folder by the first 16 digits of its own."""
    return _sha256_json(dict(settings), compact=False)


def cache_key(job_key: str, input_files: Sequence[Sequence[Any]]) -> str:
    """The daemon's result-cache key: the settings' ``job_key`` plus ``[path, size, mtime_ns]`` of every input
    file the job reads, so a hit is exact (SPEC §5.2, "Result cache")."""
    return _sha256_json({"v": CACHE_KEY_VERSION, "job_key": job_key, "inputs": [list(f) for f in input_files]},
                        compact=True)
