"""The daemon's job board without a model and without sockets: journal, queue, state changes, cancel,
the cache and events, driven through a scripted executor. Everything is ordered by events
(``threading.Event``/``Barrier`` with generous timeouts), never by sleeps."""

from __future__ import annotations

import ast
import errno
import inspect
import threading
from pathlib import Path

import pytest

from coolcolor.daemon.board import BoardJobEvents, JobBoard
from coolcolor.daemon.journal import Journal
from coolcolor.daemon.testing import write_gray_sequence
from coolcolor.errors import InputError
from coolcolor_protocol import BAD_REQUEST, CONFLICT, NOT_FOUND, STORAGE_FULL, UNAVAILABLE, ProtocolError

WAIT = 120.0


class RecordingSink:
    """The board's events, in order, with a way to wait for one."""

    def __init__(self) -> None:
        self.events: list[tuple] = []
        self._cv = threading.Condition()

    def _add(self, item: tuple) -> None:
        with self._cv:
            self.events.append(item)
            self._cv.notify_all()

    def job_event(self, job_id, msg_type, content):
        self._add(("event", job_id, msg_type, dict(content)))

    def frame_done(self, job_id, frame, path):
        self._add(("frame", job_id, frame, path))

    def progress(self, job_id, content):
        self._add(("progress", job_id, dict(content)))

    def states(self, job_id: str) -> list[str]:
        with self._cv:
            return [e[3]["state"] for e in self.events if e[0] == "event" and e[1] == job_id and e[2] == "job_state"]

    def wait_state(self, job_id: str, state: str) -> dict:
        def found():
            return next((e[3] for e in self.events if e[0] == "event" and e[1] == job_id and e[2] == "job_state"
                         and e[3]["state"] == state), None)

        with self._cv:
            assert self._cv.wait_for(lambda: found() is not None, WAIT), f"{job_id} never {state}: {self.events}"
            return found()


class ScriptedExecutor:
    """Writes each frame's file and reports it as the engine does; optional gates order the test."""

    def __init__(self, capacity: int = 1, *, fail_with: BaseException | None = None, hold: bool = False,
                 barrier: threading.Barrier | None = None, load_error: Exception | None = None):
        self.capacity = capacity
        self.fail_with, self.barrier, self.load_error = fail_with, barrier, load_error
        self.release = threading.Event()
        if not hold:
            self.release.set()
        self.started: list[str] = []
        self.started_cv = threading.Condition()
        self.running = 0
        self.max_running = 0
        self.closed = False
        self._lock = threading.Lock()

    def load(self):
        if self.load_error:
            raise self.load_error
        return {"name": "scripted", "path": None, "hash": "5" * 64, "device": "none", "dtype": "none",
                "resolution": 64}

    def wait_started(self, count: int) -> None:
        with self.started_cv:
            assert self.started_cv.wait_for(lambda: len(self.started) >= count, WAIT), self.started

    def run(self, job, events):
        from coolcolor.video.job import JobCancelled, JobResult, ab_frame_path
        from coolcolor.video.sources import open_source

        with self._lock:
            self.running += 1
            self.max_running = max(self.max_running, self.running)
        with self.started_cv:
            self.started.append(job.output_dir)
            self.started_cv.notify_all()
        try:
            if self.barrier is not None:
                self.barrier.wait(WAIT)  # only passes when `parties` jobs run at the same time
            while not self.release.wait(0.05):
                if events.should_cancel():
                    events.progress(0, 1, 1, 2)  # a step after the cancel, as the engine reports it
                    raise JobCancelled("cancelled")
            if self.fail_with is not None:
                raise self.fail_with
            with open_source(job.source, job.first, job.last) as source:
                frames = list(source.frames())
            Path(job.output_dir).mkdir(parents=True, exist_ok=True)
            written, skipped = [], []
            for f in frames:
                path = ab_frame_path(job.output_dir, f)
                if Path(path).is_file():
                    skipped.append(f)
                    continue
                Path(path).write_bytes(f"frame {f}".encode())
                events.frame_done(f, path)
                written.append(f)
            return JobResult(written, skipped, {}, str(Path(job.output_dir) / "manifest.json"))
        finally:
            with self._lock:
                self.running -= 1

    def unknown_words(self, prompt):
        return []  # a scripted model reads every word

    def close(self):
        self.closed = True


@pytest.fixture
def source(tmp_path):
    return write_gray_sequence(str(tmp_path / "src"), count=3, size=16)


@pytest.fixture
def make_board(tmp_path):
    boards = []

    def make(executor, **kw):
        sink = RecordingSink()
        board = JobBoard(Journal(str(tmp_path / f"journal{len(boards)}.sqlite3")), sink, **kw)
        board.start(executor)
        boards.append(board)
        assert board.loaded.wait(WAIT)
        return board, sink

    yield make
    for board in boards:
        board.request_stop()
        board.join(WAIT)
        board.journal.close()


def job(source: str, out, **kw) -> dict:
    return dict({"source": source, "output_dir": str(out), "steps": 2}, **kw)


def test_a_job_is_journaled_run_and_announced_in_order(tmp_path, source, make_board):
    executor = ScriptedExecutor()
    board, sink = make_board(executor)
    assert board.model_info == {"name": "scripted", "path": None, "hash": "5" * 64, "device": "none",
                                "dtype": "none", "resolution": 64, "state": "ready"}
    seen_before_start = []
    reply = board.submit("k1", job(source, tmp_path / "out"), on_journaled=lambda j: seen_before_start.append(
        (j, board.job(j).state, list(sink.events))))
    job_id = reply["job_id"]
    assert reply["duplicate"] is False and reply["frames_total"] == 3
    assert seen_before_start[0][0] == job_id and seen_before_start[0][2] == []  # nothing posted before it
    done = sink.wait_state(job_id, "done")
    assert done["frames_done"] == 3 and sink.states(job_id) == ["running", "done"]
    order = [e for e in sink.events if e[1] == job_id and e[0] in ("frame", "event")]
    assert [e[2] for e in order] == ["job_state", 1, 2, 3, "job_state"]
    rec = board.job(job_id)
    assert rec.state == "done" and rec.cache_key is not None and rec.started and rec.finished
    assert sorted(board.frames(job_id)) == [1, 2, 3]
    summary = board.summary(rec, detail=True)
    assert summary["frames"] == [[1, 3]] and summary["frames_failed"] == []
    again = board.submit("k1", job(source, tmp_path / "out"))
    assert again["duplicate"] is True and again["job_id"] == job_id and again["requeued"] is False
    with pytest.raises(ProtocolError) as info:
        board.submit("k1", job(source, tmp_path / "elsewhere"))
    assert info.value.code == CONFLICT and "already used for a different job" in info.value.message


def test_cancel_a_queued_and_a_running_job(tmp_path, source, make_board):
    executor = ScriptedExecutor(hold=True)
    board, sink = make_board(executor)
    first = board.submit("a", job(source, tmp_path / "a"))["job_id"]
    executor.wait_started(1)
    second = board.submit("b", job(source, tmp_path / "b"))["job_id"]
    assert board.summary(board.job(second))["queue_position"] == 1
    assert board.running_jobs() == [first]
    assert board.cancel(second) == "cancelled" and board.job(second).state == "cancelled"
    assert sink.states(second) == ["cancelled"]
    assert board.cancel(first) == "cancelling"
    ended = sink.wait_state(first, "cancelled")
    assert ended["steps_after_cancel"] == 1 and board.running_jobs() == []
    assert executor.started == [str(tmp_path / "a")]  # the cancelled queued job never ran
    with pytest.raises(ProtocolError) as info:
        board.cancel("0" * 32)
    assert info.value.code == NOT_FOUND
    # A cancelled job submitted again with its key is queued again, and this time finishes.
    executor.release.set()
    assert board.submit("b", job(source, tmp_path / "b"))["requeued"] is True
    sink.wait_state(second, "done")
    with pytest.raises(ProtocolError) as info:
        board.cancel(second)
    assert info.value.code == CONFLICT and "already done" in info.value.message


def test_cache_answers_an_identical_job_at_once_or_copies_its_frames(tmp_path, source, make_board):
    executor = ScriptedExecutor()
    board, sink = make_board(executor)
    first = board.submit("one", job(source, tmp_path / "out", prompt="red"))["job_id"]
    sink.wait_state(first, "done")
    same_place = board.submit("two", job(source, tmp_path / "out", prompt="red"))
    assert same_place["state"] == "done" and same_place["cached"] is True and same_place["frames_done"] == 3
    assert len(executor.started) == 1  # answered from the journal, not run
    elsewhere = board.submit("three", job(source, tmp_path / "copy", prompt="red"))["job_id"]
    ended = sink.wait_state(elsewhere, "done")
    assert ended["cached"] is True and len(executor.started) == 2
    assert (tmp_path / "copy" / "ab.0002.exr").read_bytes() == b"frame 2"  # copied, then found done
    assert sorted(board.frames(elsewhere)) == [1, 2, 3]
    other_prompt = board.submit("four", job(source, tmp_path / "out", prompt="blue"))
    assert other_prompt["state"] == "queued" and other_prompt["cached"] is False


def test_a_cache_copy_into_a_folder_another_job_holds_is_refused_and_copies_nothing(tmp_path, source, make_board):
    """The cache writes frames into the job's folder before the engine runs: it takes the folder first, as
    every writer does (coolcolor.video.ownership), so a folder held by another live job gets nothing."""
    from coolcolor.video.ownership import FolderOwnership

    executor = ScriptedExecutor()
    board, sink = make_board(executor)
    first = board.submit("one", job(source, tmp_path / "out", prompt="red"))["job_id"]
    sink.wait_state(first, "done")
    held = FolderOwnership(str(tmp_path / "copy"), "another-job", {"prompt": "blue", "source": source})
    held.acquire()
    try:
        copy = board.submit("two", job(source, tmp_path / "copy", prompt="red"))["job_id"]
        ended = sink.wait_state(copy, "failed")
    finally:
        held.release()
    assert ended["error"]["code"] == BAD_REQUEST, ended
    assert "is being written by another job (prompt 'blue'" in ended["error"]["message"]
    assert not list((tmp_path / "copy").glob("ab.*")) and len(executor.started) == 1


def test_an_executor_with_capacity_two_runs_two_jobs_at_once(tmp_path, source, make_board):
    executor = ScriptedExecutor(capacity=2, barrier=threading.Barrier(2))
    board, sink = make_board(executor)
    ids = [board.submit(k, job(source, tmp_path / k))["job_id"] for k in ("x", "y")]
    for job_id in ids:
        assert sink.wait_state(job_id, "done")["frames_done"] == 3
    assert executor.max_running == 2


def test_a_local_style_executor_runs_one_job_at_a_time(tmp_path, source, make_board):
    executor = ScriptedExecutor(capacity=1)
    board, sink = make_board(executor)
    ids = [board.submit(k, job(source, tmp_path / k))["job_id"] for k in ("p", "q", "r")]
    for job_id in ids:
        sink.wait_state(job_id, "done")
    assert executor.max_running == 1 and executor.started == [str(tmp_path / k) for k in ("p", "q", "r")]


@pytest.mark.parametrize("error, code, text", [
    (InputError("frame 2 of the source is gone"), BAD_REQUEST, "frame 2 of the source is gone"),
    (OSError(errno.ENOSPC, "No space left on device"), STORAGE_FULL, "No space left"),
    (MemoryError("8 GiB"), UNAVAILABLE, "out of memory: 8 GiB"),
])
def test_a_failing_job_fails_alone_with_a_code_naming_the_cause(tmp_path, source, make_board, error, code, text):
    executor = ScriptedExecutor(fail_with=error)
    board, sink = make_board(executor)
    job_id = board.submit("f", job(source, tmp_path / "out"))["job_id"]
    ended = sink.wait_state(job_id, "failed")
    assert ended["error"]["code"] == code and text in ended["error"]["message"]
    assert board.job(job_id).error_code == code


def test_a_model_that_fails_to_load_refuses_submits_with_503(tmp_path, source, make_board):
    board, _ = make_board(ScriptedExecutor(load_error=RuntimeError("weights unreadable")))
    assert board.model_info == {"state": "failed", "error": "RuntimeError: weights unreadable"}
    with pytest.raises(ProtocolError) as info:
        board.submit("k", job(source, tmp_path / "out"))
    assert info.value.code == UNAVAILABLE and "weights unreadable" in info.value.message


def test_stop_puts_the_running_job_back_in_the_queue_and_recover_requeues_a_crashed_one(tmp_path, source):
    journal_path = str(tmp_path / "j.sqlite3")
    executor = ScriptedExecutor(hold=True)
    sink = RecordingSink()
    board = JobBoard(Journal(journal_path), sink)
    board.start(executor)
    job_id = board.submit("s", job(source, tmp_path / "out"))["job_id"]
    executor.wait_started(1)
    board.request_stop()
    board.join(WAIT)
    assert board.job(job_id).state == "queued" and "resumes when it restarts" in sink.wait_state(job_id, "queued")["message"]
    assert executor.closed
    board.journal.set_state(job_id, "running")  # as a kill -9 mid-job leaves it
    board.journal.close()
    again = JobBoard(Journal(journal_path))
    assert again.recover() == [job_id] and again.job(job_id).state == "queued"
    again.journal.close()


def test_board_events_implement_every_engine_callback():
    from coolcolor.video.job import JobEvents

    wanted = {n for n, _ in inspect.getmembers(JobEvents, inspect.isfunction) if not n.startswith("_")}
    have = {n for n, _ in inspect.getmembers(BoardJobEvents, inspect.isfunction)}
    assert wanted <= have, f"BoardJobEvents lacks {sorted(wanted - have)}"


DAEMON = Path(__file__).resolve().parents[1] / "backend" / "coolcolor" / "daemon"
# Imports run one way: server (assembly) → transport → board → executor → video engine.
FORBIDDEN = {
    "executor": {"server", "transport", "board", "cli", "journal", "validation"},
    "board": {"server", "transport", "cli"},
    "transport": {"server", "executor", "cli"},
    "journal": {"server", "transport", "board", "executor"},
}


@pytest.mark.parametrize("module", sorted(FORBIDDEN))
def test_daemon_imports_run_one_way(module):
    tree = ast.parse((DAEMON / f"{module}.py").read_text(encoding="utf-8"))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("coolcolor.daemon."):
            imported.add(node.module.split(".")[2])
        elif isinstance(node, ast.Import):
            imported |= {a.name.split(".")[2] for a in node.names if a.name.startswith("coolcolor.daemon.")}
    assert not imported & FORBIDDEN[module], f"{module}.py imports {sorted(imported & FORBIDDEN[module])}"
