"""The daemon checks a job once, on arrival (issue 23 §2): the source is opened once for the check and once
more by the run, which reads the frames — never again for the cache key, the cache copy or after the run.

A real board with the real local executor (the tiny model, in this process), so every open the daemon's
path makes is counted; opens are counted where a sequence is opened (``ImageSequenceSource``)."""

from __future__ import annotations

import threading

import pytest

from coolcolor.daemon.board import JobBoard
from coolcolor.daemon.executor import LocalExecutor
from coolcolor.daemon.journal import Journal
from coolcolor.daemon.testing import write_gray_sequence
from coolcolor.model.resolve import TINY_PRESET
from coolcolor.video import sources

from test_daemon_board import WAIT, RecordingSink

#: opens per daemon job: the check on arrival, and the run's own reading (it runs later, from the journal)
OPENS_PER_JOB = 2


class GatedLocalExecutor(LocalExecutor):
    """The local executor whose model finishes loading only when the test says so."""

    def __init__(self, gate: threading.Event) -> None:
        super().__init__(TINY_PRESET, device="cpu")
        self.gate = gate
        self.asked_unknown_words: list[str] = []

    def load(self):
        assert self.gate.wait(WAIT)
        return super().load()

    def unknown_words(self, prompt):
        self.asked_unknown_words.append(prompt)
        return super().unknown_words(prompt)


@pytest.fixture
def count_opens(monkeypatch):
    opened: list[str] = []
    original = sources.ImageSequenceSource.__init__

    def counting(self, *args, **kwargs):
        opened.append(args[0])
        original(self, *args, **kwargs)

    monkeypatch.setattr(sources.ImageSequenceSource, "__init__", counting)
    return opened


@pytest.mark.parametrize("submitted", ["model ready", "model loading"])
def test_a_daemon_job_opens_its_source_once_to_check_it_and_once_to_run(tmp_path, count_opens, submitted):
    source = write_gray_sequence(str(tmp_path / "src"), count=3, size=32)
    gate = threading.Event()
    if submitted == "model ready":
        gate.set()
    sink = RecordingSink()
    board = JobBoard(Journal(str(tmp_path / "journal.sqlite3")), sink)
    executor = GatedLocalExecutor(gate)
    board.start(executor)
    try:
        if submitted == "model ready":
            assert board.loaded.wait(WAIT)
        job = {"source": source, "output_dir": str(tmp_path / "out"), "steps": 2, "prompt": "a red astronaut ball"}
        job_id = board.submit("k", job)["job_id"]
        gate.set()
        assert sink.wait_state(job_id, "done")["frames_done"] == 3
        rec = board.job(job_id)
        assert rec.cache_key is not None  # computed from the checked job, even when the model was loading
        print(f"source opens for one daemon job ({submitted}): {len(count_opens)}")
        assert len(count_opens) == OPENS_PER_JOB, count_opens
        for _ in range(3):  # status: the unknown words come from the checked job, asked of the model once
            assert board.summary(board.job(job_id))["unknown_words"] == ["astronaut"]
        assert executor.asked_unknown_words == [job["prompt"]]
        # an identical job to another folder is copied from the cache: one open (its check), no run
        copy_id = board.submit("k2", dict(job, output_dir=str(tmp_path / "copy")))["job_id"]
        assert sink.wait_state(copy_id, "done")["cached"] is True
        assert len(count_opens) == OPENS_PER_JOB + 1 + 1, count_opens  # its check, then the run finds all done
    finally:
        board.request_stop()
        board.join(WAIT)
        board.journal.close()


def test_a_journal_from_before_the_checked_facts_opens_and_its_queued_job_runs(tmp_path):
    """A journal written by a daemon that did not keep the checked facts gains the column when opened; its
    queued job is checked once when it runs, and gets its cache key then."""
    import sqlite3

    from coolcolor.daemon.validation import check_job
    from test_daemon_board import ScriptedExecutor

    source = write_gray_sequence(str(tmp_path / "src"), count=3, size=16)
    path = str(tmp_path / "journal.sqlite3")
    journal = Journal(path)
    checked = check_job({"source": source, "output_dir": str(tmp_path / "out")}, [])
    job_id = journal.add_job("old", "0" * 64, checked).job_id
    journal.close()
    with sqlite3.connect(path) as db:  # as the older daemon left it: no column for the facts
        db.execute("ALTER TABLE jobs DROP COLUMN checked")
    sink = RecordingSink()
    board = JobBoard(Journal(path), sink)
    assert board.job(job_id).checked is None and board.job(job_id).cache_key is None
    board.start(ScriptedExecutor())
    try:
        assert sink.wait_state(job_id, "done")["frames_done"] == 3
        rec = board.job(job_id)
        assert rec.checked is not None and rec.checked.model_hash == "5" * 64 and rec.cache_key is not None
    finally:
        board.request_stop()
        board.join(WAIT)
        board.journal.close()
