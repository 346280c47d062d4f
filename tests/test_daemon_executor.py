"""The local executor without a daemon or a socket: ``run(job, events) -> JobResult`` on the tiny preset."""

from __future__ import annotations

import os

import pytest

from coolcolor.daemon.executor import LocalExecutor
from coolcolor.daemon.testing import write_gray_sequence
from coolcolor.model.resolve import TINY_PRESET, resolve_model
from coolcolor.video.exr import read_ab_header
from coolcolor.video.job import ColorizeJob, JobCancelled, JobEvents


class Recorder(JobEvents):
    def __init__(self, cancel_at_start: bool = False):
        self.frames: list[tuple[int, bool]] = []
        self.steps = 0
        self.cancel_at_start = cancel_at_start

    def frame_done(self, frame: int, path: str) -> None:
        self.frames.append((frame, os.path.isfile(path)))

    def progress(self, frames_done: int, frames_total: int, step: int, steps_total: int) -> None:
        self.steps += 1

    def should_cancel(self) -> bool:
        return self.cancel_at_start


@pytest.fixture(scope="module")
def executor():
    local = LocalExecutor(TINY_PRESET, device="cpu")
    info = local.load()
    yield local, info
    local.close()


def test_load_describes_what_is_served(executor):
    _, info = executor
    from coolcolor.model.prompt_words import known_words

    words = len(known_words(resolve_model(TINY_PRESET, "cpu").load_tokenizer()))  # hello_reply's count
    assert info == {"name": TINY_PRESET, "path": None, "hash": resolve_model(TINY_PRESET, "cpu").hash,
                    "device": "cpu", "dtype": "fp32", "resolution": 64, "known_words": words} and words > 50
    assert LocalExecutor.capacity == 1


def test_run_colorizes_reports_each_frame_after_it_is_on_disk_and_resumes(tmp_path, executor):
    local, info = executor
    source = write_gray_sequence(str(tmp_path / "src"), count=3, size=32)
    job = ColorizeJob(source=source, output_dir=str(tmp_path / "out"), prompt="a red ball", steps=2, keyframes=[2])
    events = Recorder()
    result = local.run(job, events)
    assert result.frames_written == [1, 2, 3] and result.ok and events.frames == [(1, True), (2, True), (3, True)]
    assert events.steps > 0
    assert read_ab_header(str(tmp_path / "out" / "ab.0002.exr"))["model_hash"] == info["hash"]
    again = local.run(job, Recorder())
    assert again.frames_written == [] and again.frames_skipped == [1, 2, 3]


def test_run_stops_when_events_ask_and_writes_no_frame(tmp_path, executor):
    local, _ = executor
    source = write_gray_sequence(str(tmp_path / "src"), count=2, size=32)
    job = ColorizeJob(source=source, output_dir=str(tmp_path / "out"), steps=2, keyframes=[1])
    events = Recorder(cancel_at_start=True)
    with pytest.raises(JobCancelled):
        local.run(job, events)
    assert events.frames == [] and not list((tmp_path / "out").glob("ab.*.exr"))


def test_run_before_load_is_a_clear_error(tmp_path):
    with pytest.raises(RuntimeError, match="before load"):
        LocalExecutor(TINY_PRESET, device="cpu").run(ColorizeJob(source="x.%04d.png", output_dir=str(tmp_path)),
                                                     JobEvents())
