"""The job journal: sqlite in WAL mode with full fsync, so a job acknowledged to a client survives a
kill -9 of the daemon (the Titanic rule: journal first, reply second).

The files on disk are the truth about which frames exist; the journal records which frames were
announced and is reconciled with the disk when a job (re)starts. One connection is shared by the
socket thread and the worker behind a lock; every statement is short.

Each job row keeps its ``CheckedJob`` facts (column ``checked``, JSON) beside the spec: what the daemon
learnt when it checked the job on arrival, so nothing checks it again (issue 23 §2). The column was added
without a schema change: a journal written before it gains it when opened (its old rows hold NULL), and
an older daemon, which names its columns, still reads the file.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from coolcolor import faults
from coolcolor.daemon.validation import CheckedJob

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS jobs (
    order_no INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id TEXT UNIQUE NOT NULL,
    idem_key TEXT UNIQUE NOT NULL,
    request_hash TEXT NOT NULL,
    spec TEXT NOT NULL,
    state TEXT NOT NULL,
    cache_key TEXT,
    cache_from TEXT,
    cached INTEGER NOT NULL DEFAULT 0,
    frames_total INTEGER,
    error_code INTEGER,
    error_message TEXT,
    created REAL NOT NULL,
    started REAL,
    finished REAL,
    checked TEXT
);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs(state);
CREATE INDEX IF NOT EXISTS jobs_cache ON jobs(cache_key, state);
CREATE TABLE IF NOT EXISTS frames (
    job_id TEXT NOT NULL,
    frame INTEGER NOT NULL,
    path TEXT NOT NULL,
    PRIMARY KEY (job_id, frame)
);
CREATE TABLE IF NOT EXISTS failed_frames (
    job_id TEXT NOT NULL,
    frame INTEGER NOT NULL,
    message TEXT NOT NULL,
    PRIMARY KEY (job_id, frame)
);
"""


@dataclass
class JobRecord:
    order_no: int
    job_id: str
    idem_key: str
    request_hash: str
    spec: dict[str, Any]
    state: str
    cache_key: str | None
    cache_from: str | None
    cached: bool
    frames_total: int | None
    error_code: int | None
    error_message: str | None
    created: float
    started: float | None
    finished: float | None
    checked: CheckedJob | None  # None: journaled by a daemon that did not keep it


class Journal:
    def __init__(self, path: str):
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
            columns = {row[1] for row in self._db.execute("PRAGMA table_info(jobs)")}
            if "checked" not in columns:  # a journal from before the checked facts were kept
                self._db.execute("ALTER TABLE jobs ADD COLUMN checked TEXT")
            row = self._db.execute("SELECT value FROM meta WHERE name='schema'").fetchone()
            if row is None:
                self._db.execute("INSERT INTO meta(name, value) VALUES('schema', ?)", (str(SCHEMA_VERSION),))
            elif int(row[0]) != SCHEMA_VERSION:
                raise RuntimeError(f"journal {path} has schema {row[0]}; this daemon reads {SCHEMA_VERSION}")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction under the lock: all of its statements land, or none (kill -9 included)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
                faults.hit("journal_commit")
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    @staticmethod
    def _record(row: tuple) -> JobRecord:
        values = list(row)
        values[4] = json.loads(values[4])
        values[8] = bool(values[8])
        values[15] = CheckedJob.from_facts(values[4], json.loads(values[15])) if values[15] else None
        return JobRecord(*values)

    _COLUMNS = ("order_no, job_id, idem_key, request_hash, spec, state, cache_key, cache_from, cached, "
                "frames_total, error_code, error_message, created, started, finished, checked")

    def add_job(self, idem_key: str, request_hash: str, checked: CheckedJob, *, state: str = "queued",
                cache_key: str | None = None, cache_from: str | None = None, cached: bool = False,
                frames: dict[int, str] | None = None) -> JobRecord:
        """Insert a checked job (and, for a cache hit answered at once, its frames) in one transaction."""
        job_id = uuid.uuid4().hex
        now = time.time()
        with self._transaction() as db:
            db.execute(
                "INSERT INTO jobs(job_id, idem_key, request_hash, spec, state, cache_key, cache_from, cached, "
                "frames_total, created, finished, checked) VALUES(?,?,?,?,?,?,?,?,?,?,?,?)",
                (job_id, idem_key, request_hash, json.dumps(checked.spec, sort_keys=True), state, cache_key,
                 cache_from, int(cached), len(checked.frames), now, now if state == "done" else None,
                 json.dumps(checked.facts(), sort_keys=True)),
            )
            db.executemany("INSERT INTO frames(job_id, frame, path) VALUES(?,?,?)",
                           [(job_id, f, p) for f, p in sorted((frames or {}).items())])
        record = self.get(job_id)
        assert record is not None
        return record

    def get(self, job_id: str) -> JobRecord | None:
        with self._lock:
            row = self._db.execute(f"SELECT {self._COLUMNS} FROM jobs WHERE job_id=?", (job_id,)).fetchone()
        return self._record(row) if row else None

    def by_key(self, idem_key: str) -> JobRecord | None:
        with self._lock:
            row = self._db.execute(f"SELECT {self._COLUMNS} FROM jobs WHERE idem_key=?", (idem_key,)).fetchone()
        return self._record(row) if row else None

    def done_by_cache_key(self, cache_key: str) -> list[JobRecord]:
        with self._lock:
            rows = self._db.execute(
                f"SELECT {self._COLUMNS} FROM jobs WHERE cache_key=? AND state='done' ORDER BY order_no DESC",
                (cache_key,),
            ).fetchall()
        return [self._record(r) for r in rows]

    def list_jobs(self, states: list[str] | None = None, limit: int = 100) -> list[JobRecord]:
        query = f"SELECT {self._COLUMNS} FROM jobs"
        args: list[Any] = []
        if states:
            query += f" WHERE state IN ({','.join('?' * len(states))})"
            args.extend(states)
        query += " ORDER BY order_no DESC LIMIT ?"
        args.append(limit)
        with self._lock:
            rows = self._db.execute(query, args).fetchall()
        return [self._record(r) for r in rows]

    def queued(self) -> list[str]:
        """Queued job ids, oldest first (the order the worker takes them)."""
        with self._lock:
            rows = self._db.execute("SELECT job_id FROM jobs WHERE state='queued' ORDER BY order_no").fetchall()
        return [r[0] for r in rows]

    def set_state(self, job_id: str, state: str, *, error_code: int | None = None,
                  error_message: str | None = None, cached: bool = False) -> None:
        now = time.time()
        with self._transaction() as db:
            db.execute(
                "UPDATE jobs SET state=?, error_code=?, error_message=?, cached=MAX(cached, ?), "
                "started=CASE WHEN ?='running' THEN ? ELSE started END, "
                "finished=CASE WHEN ? IN ('done','failed','cancelled') THEN ? ELSE NULL END WHERE job_id=?",
                (state, error_code, error_message, int(cached), state, now, state, now, job_id),
            )

    def set_checked(self, job_id: str, checked: CheckedJob, cache_key: str | None) -> None:
        """A job's checked facts completed (the model's, once it loaded) and the cache key made from them."""
        with self._lock:
            self._db.execute("UPDATE jobs SET checked=?, cache_key=? WHERE job_id=?",
                             (json.dumps(checked.facts(), sort_keys=True), cache_key, job_id))

    def requeue_interrupted(self) -> list[str]:
        """Jobs left ``running`` by a crash go back to the queue (they resume from the frames on disk)."""
        with self._transaction() as db:
            rows = db.execute("SELECT job_id FROM jobs WHERE state='running'").fetchall()
            db.execute("UPDATE jobs SET state='queued' WHERE state='running'")
        return [r[0] for r in rows]

    def add_frame(self, job_id: str, frame: int, path: str) -> bool:
        """Record an announced frame; False if it was already recorded (announce once)."""
        with self._transaction() as db:
            cur = db.execute("INSERT OR IGNORE INTO frames(job_id, frame, path) VALUES(?,?,?)",
                             (job_id, frame, path))
            db.execute("DELETE FROM failed_frames WHERE job_id=? AND frame=?", (job_id, frame))
        return cur.rowcount == 1

    def add_failed_frame(self, job_id: str, frame: int, message: str) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO failed_frames(job_id, frame, message) VALUES(?,?,?)",
                             (job_id, frame, message[:2000]))

    def clear_failed_frames(self, job_id: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM failed_frames WHERE job_id=?", (job_id,))

    def frames(self, job_id: str) -> dict[int, str]:
        with self._lock:
            rows = self._db.execute("SELECT frame, path FROM frames WHERE job_id=? ORDER BY frame",
                                    (job_id,)).fetchall()
        return {int(f): p for f, p in rows}

    def failed_frames(self, job_id: str) -> dict[int, str]:
        with self._lock:
            rows = self._db.execute("SELECT frame, message FROM failed_frames WHERE job_id=? ORDER BY frame",
                                    (job_id,)).fetchall()
        return {int(f): m for f, m in rows}

    def frame_count(self, job_id: str) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM frames WHERE job_id=?", (job_id,)).fetchone()[0])
