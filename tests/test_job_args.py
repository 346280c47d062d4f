"""`colorize` and `submit` take the job's flags from one helper and build the same JobSpec."""

from __future__ import annotations

import dataclasses
import os

import pytest

from coolcolor.cli import build_parser, main
from coolcolor.job_args import job_from_args
from coolcolor.video.job import ColorizeJob
from coolcolor_protocol import JobSpec

FLAGS = ["plate.%04d.exr", "-o", "out", "--prompt", "a red tram", "--negative-prompt", "grey", "--first", "3",
         "--last", "40", "--keyframe", "5", "9", "--keyframe", "12", "--seed", "7", "--steps", "12",
         "--guidance-scale", "6.5", "--encoding", "rec709", "--preview", "--clip-model", "clip", "--window", "4",
         "--keyframes-only", "--resolve-sidecar", "--rgb-plate"]


def test_colorize_and_submit_parse_the_same_flags_into_the_same_job():
    parser = build_parser()
    colorize = job_from_args(parser.parse_args(["colorize", *FLAGS]), ColorizeJob)
    submit = job_from_args(parser.parse_args(["submit", *FLAGS]))
    assert isinstance(colorize, ColorizeJob) and type(submit) is JobSpec
    for f in dataclasses.fields(JobSpec):
        assert getattr(colorize, f.name) == getattr(submit, f.name), f.name
    assert submit.keyframes == [5, 9, 12] and submit.guidance_scale == 6.5 and submit.clip_model_dir == "clip"
    assert (submit.window, submit.keyframes_only, submit.resolve_sidecar, submit.rgb_plate) == (4, True, True, True)
    submit.validate()


def test_defaults_are_the_job_contracts():
    parser = build_parser()
    for command in ("colorize", "submit"):
        job = job_from_args(parser.parse_args([command, "a.mov", "-o", "out"]))
        assert job == JobSpec(source="a.mov", output_dir="out")


def test_submit_sends_absolute_paths():
    args = build_parser().parse_args(["submit", "a.%04d.exr", "-o", "out", "--ocio-config", "ocio://default"])
    job = job_from_args(args, absolute_paths=True)
    assert job.source == os.path.abspath("a.%04d.exr") and job.output_dir == os.path.abspath("out")
    assert job.ocio_config == "ocio://default"


@pytest.mark.parametrize("command", ["colorize", "submit"])
def test_a_bad_flag_is_one_line_naming_the_field_before_any_work(command, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COOLCOLOR_CONNECTION_FILE", str(tmp_path / "no-daemon.json"))
    code = main([command, str(tmp_path / "a.%04d.exr"), "-o", str(tmp_path / "out"), "--steps", "0"])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and "Traceback" not in err
    assert f"coolcolor {command}: error: job.steps: 0 is outside 1..500" in err
    assert not (tmp_path / "out").exists()
