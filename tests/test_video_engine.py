"""The engine's public parts: validate and open once, identity-based job_key, segments independent."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

import coolcolor.video.job as job_module
from coolcolor.errors import InputError
from coolcolor.video import cli as video_cli
from coolcolor.video.exr import read_ab_exr
from coolcolor.video.job import ColorizeJob, open_job
from coolcolor.video.run import JobRun, LocalSegmentRunner, run_colorize_job
from coolcolor.video.plan import plan_job
from coolcolor.video.segment import AbFolderSink, SegmentEvents, colorize_segment
from test_video_job import FakePipeline, Recorder, one_shot_sequence


def test_the_cli_validates_the_job_once_and_opens_the_source_once(tmp_path, monkeypatch):
    source = one_shot_sequence(tmp_path / "src", range(1, 7))
    counts = {"validate": 0, "open": 0}
    real_validate, real_open = ColorizeJob.validate, job_module.open_source

    def counting_validate(self):
        counts["validate"] += 1
        return real_validate(self)

    def counting_open(*args, **kwargs):
        counts["open"] += 1
        return real_open(*args, **kwargs)

    monkeypatch.setattr(ColorizeJob, "validate", counting_validate)
    monkeypatch.setattr(job_module, "open_source", counting_open)
    class Words:
        def warning(self):
            return ""

    class Pipeline(FakePipeline):
        def prompt_words(self, prompt):
            return Words()

        def prompt_warning(self, prompt):
            return None

    class Resolved:
        def load_pipeline(self):
            return Pipeline()

    monkeypatch.setattr(video_cli, "resolve_model", lambda model, device, dtype: Resolved())
    from coolcolor.cli import build_parser

    args = build_parser().parse_args(["colorize", source, "-o", str(tmp_path / "out"), "--keyframe", "1",
                                      "--steps", "1", "--window", "4"])
    assert video_cli.run(args) == 0
    assert counts == {"validate": 1, "open": 1}  # was 2 and 2 before the split
    assert sorted(p.name for p in (tmp_path / "out").glob("ab.*.exr")) == [f"ab.{f:04d}.exr" for f in range(1, 7)]


def test_a_job_resumes_on_the_same_files_mounted_elsewhere(tmp_path):
    source = one_shot_sequence(tmp_path / "volume_a" / "plates", range(1, 9))
    out = tmp_path / "out"
    job = ColorizeJob(source=source, output_dir=str(out), keyframes=[1], steps=1, window=2)
    with pytest.raises(job_module.JobCancelled):
        run_colorize_job(job, FakePipeline(), Recorder(cancel_after=3))
    done_before = sorted(int(p.name[3:7]) for p in out.glob("ab.*.exr"))
    assert 3 <= len(done_before) < 8

    # The same files, now under another mount point: the finished frames are this job's.
    moved = tmp_path / "volume_b" / "plates"
    shutil.copytree(tmp_path / "volume_a" / "plates", moved)
    shutil.rmtree(tmp_path / "volume_a")
    again = run_colorize_job(ColorizeJob(**{**job.to_dict(), "source": str(moved / "plate.####.exr")}),
                             FakePipeline())
    assert again.frames_skipped == done_before
    assert sorted(again.frames_written) == [f for f in range(1, 9) if f not in done_before]

    # Other footage (another name) into the same folder is still refused, nothing overwritten.
    other = tmp_path / "other"
    other.mkdir()
    for f in range(1, 9):
        shutil.copy(moved / f"plate.{f:04d}.exr", other / f"take2.{f:04d}.exr")
    before = {p.name: p.read_bytes() for p in out.glob("ab.*.exr")}
    with pytest.raises(InputError, match="different job"):
        run_colorize_job(ColorizeJob(**{**job.to_dict(), "source": str(other / "take2.####.exr")}), FakePipeline())
    assert {p.name: p.read_bytes() for p in out.glob("ab.*.exr")} == before


def test_windows_of_a_segment_run_in_any_order_give_the_same_pixels(tmp_path, tiny_pipe):
    """What lets a pool of workers share one long shot: each window depends only on the keyframe."""
    source = one_shot_sequence(tmp_path / "src", range(1, 7))
    job = ColorizeJob(source=source, output_dir=str(tmp_path / "whole"), keyframes=[2], steps=2, window=2)
    whole = run_colorize_job(job, tiny_pipe)
    assert whole.ok and whole.frames_written == list(range(1, 7))

    shuffled = ColorizeJob(**{**job.to_dict(), "output_dir": str(tmp_path / "shuffled")})
    with open_job(shuffled) as opened:
        runner = LocalSegmentRunner(tiny_pipe)
        run = JobRun(opened, Recorder(), runner.model_hash, runner.resolution)
        run.prepare()
        plan = plan_job(run, lambda shot: runner.choose_keyframe(run, shot))
        windows = plan.windows(shuffled.window)
        assert [w.frames for w in windows] == [(1, 2), (3, 4), (5, 6)] and {w.keyframe for w in windows} == {2}
        context = run.segment_context(plan)
        context.keyframe_cache = runner.keyframe_cache  # as every segment runner does: miss first, then hits
        for window in reversed(windows):  # last window first, each on its own
            colorize_segment(tiny_pipe, window, opened.read_gray, AbFolderSink(shuffled),
                             SegmentEvents(), context)
    for f in range(1, 7):
        a, _ = read_ab_exr(str(tmp_path / "whole" / f"ab.{f:04d}.exr"))
        b, _ = read_ab_exr(str(tmp_path / "shuffled" / f"ab.{f:04d}.exr"))
        np.testing.assert_array_equal(a, b)
