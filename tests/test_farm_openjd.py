"""``coolcolor farm export-openjd``: the template passes ``openjd check``, and ``openjd run`` of it
colorizes every frame through the same engine, bit-identical to a local ``coolcolor colorize``."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from coolcolor import cli
from coolcolor.video.exr import read_ab_exr
from test_video_job import ab_by_frame, graded_reference, torch_threads, two_shot_sequence

openjd_model = pytest.importorskip("openjd.model")
ROOT = Path(__file__).resolve().parents[1]


def test_export_openjd_template_checks_and_runs_to_the_same_frames(tmp_path, model_dir, capsys, monkeypatch):
    """Exported with relative paths, as the README's example does, and run by OpenJD from another folder
    (issue 27: every task failed with "sequence folder not found", OpenJD runs tasks in folders of their own)."""
    two_shot_sequence(tmp_path / "src", per_shot=8)
    monkeypatch.chdir(tmp_path)
    source = os.path.join("src", "plate.####.exr")
    common = [source, "--keyframe", "2", "12", "--steps", "1", "--window", "4", "--seed", "3",
              "--model", os.path.relpath(model_dir, tmp_path)]
    template = tmp_path / "farm" / "job.yaml"
    template.parent.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    wrapper = tmp_path / "coolcolor-on-node"  # what a farm node has on its PATH
    wrapper.write_text(f"#!/bin/sh\nexport PYTHONPATH={ROOT / 'backend'}:{ROOT / 'protocol'}\nexport OMP_NUM_THREADS=1\n"
                       f"exec {sys.executable} -c 'import sys; from coolcolor.cli import main; "
                       "sys.exit(main(sys.argv[1:]))' \"$@\"\n")
    wrapper.chmod(0o755)
    assert cli.main(["farm", "export-openjd", *common, "-o", "farm_out", "--template", os.path.join("farm", "job.yaml"),
                     "--coolcolor", str(wrapper)]) == 0
    assert "2 shot step(s), 4 window task(s)" in capsys.readouterr().out

    import yaml

    doc = yaml.safe_load(template.read_text())
    openjd_model.decode_job_template(template=doc)  # the OpenJD model accepts it
    assert [s["name"] for s in doc["steps"]] == ["shot-0001-0008", "shot-0009-0016", "manifest"]
    ranges = [s["parameterSpace"]["taskParameterDefinitions"][0]["range"] for s in doc["steps"][:2]]
    assert ranges == [["2:1-4", "2:5-8"], ["12:9-12", "12:13-16"]]
    openjd = shutil.which("openjd") or str(Path(sys.executable).with_name("openjd"))
    check = subprocess.run([openjd, "check", str(template)], capture_output=True, text=True, timeout=120)
    assert check.returncode == 0 and "passes validation" in check.stdout, check.stdout + check.stderr

    # The farm job holds its output folder for its tasks (issue 27 §1): another job is refused until `finish`.
    from coolcolor.video.ownership import OWNER_FILE, read_owner

    plan_path = str(template.with_suffix(".plan.json"))
    assert read_owner(str(tmp_path / "farm_out"))["farm_plan"] == plan_path
    capsys.readouterr()
    assert cli.main(["colorize", *common, "--prompt", "another", "-o", str(tmp_path / "farm_out")]) == 1
    refused = capsys.readouterr().err.strip().splitlines()[-1]
    assert f"being written by another job (the farm job of plan {plan_path} (" in refused, refused

    for step in ("shot-0001-0008", "shot-0009-0016", "manifest"):
        ran = subprocess.run([openjd, "run", str(template), "--step", step], capture_output=True, text=True,
                             timeout=900, cwd=elsewhere)
        assert ran.returncode == 0 and "Session ended successfully" in ran.stdout, ran.stdout[-3000:] + ran.stderr
    manifest = json.loads((tmp_path / "farm_out" / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["frames"]["done"] == 16
    assert manifest["frames"]["written_this_run"] == []  # every frame came from the farm tasks
    assert not (tmp_path / "farm_out" / OWNER_FILE).exists()  # `finish` ended the farm job's hold

    # The same job run locally (one torch thread, as the farm tasks) gives the same bytes.
    with torch_threads(1):
        assert cli.main(["colorize", *common, "-o", str(tmp_path / "local")]) == 0
    farm, local = ab_by_frame(tmp_path / "farm_out"), ab_by_frame(tmp_path / "local")
    assert sorted(farm) == sorted(local) == list(range(1, 17))
    for frame in local:
        np.testing.assert_array_equal(farm[frame], local[frame])
    assert not [p for p in (tmp_path / "farm_out").iterdir() if ".tmp" in p.name]


def test_farm_tasks_follow_a_reference_keyframe_as_a_local_run_does(tmp_path, model_dir, capsys):
    """Issue 25 on the farm: the plan carries the driver's shot bounds, checked references and ignored words,
    so each task colorizes its window as ``coolcolor colorize`` does — the graded frame 2 guides its own shot
    only (the tasks used to take the whole job for one shot) — and stamps the same provenance."""
    source = two_shot_sequence(tmp_path / "src", per_shot=8)
    reference = graded_reference(tmp_path / "graded.0002.exr", 1)
    common = [source, "--keyframe", "12", "--reference", f"2={reference}", "--steps", "2", "--window", "4",
              "--seed", "5", "--prompt", "a red astronaut ball", "--model", model_dir]
    template = tmp_path / "farm" / "job.yaml"
    template.parent.mkdir()
    with torch_threads(1):  # as a farm task's process (OMP_NUM_THREADS=1)
        assert cli.main(["farm", "export-openjd", *common, "-o", str(tmp_path / "farm_out"),
                         "--template", str(template)]) == 0
        import yaml

        plan = str(template.with_suffix(".plan.json"))
        windows = [w for step in yaml.safe_load(template.read_text())["steps"][:-1]
                   for w in step["parameterSpace"]["taskParameterDefinitions"][0]["range"]]
        assert windows == ["2:1-4", "2:5-8", "12:9-12", "12:13-16"]
        for window in windows:  # what each farm task runs, here in this process
            assert cli.main(["farm", "run-window", plan, "--window", window]) == 0
        assert cli.main(["farm", "finish", plan]) == 0
        assert cli.main(["colorize", *common, "-o", str(tmp_path / "local")]) == 0
    farm, local = ab_by_frame(tmp_path / "farm_out"), ab_by_frame(tmp_path / "local")
    assert sorted(farm) == sorted(local) == list(range(1, 17))
    for frame in local:
        np.testing.assert_array_equal(farm[frame], local[frame], err_msg=f"frame {frame}")
    for frame in (1, 13):
        farm_header = read_ab_exr(str(tmp_path / "farm_out" / f"ab.{frame:04d}.exr"))[1]
        local_header = read_ab_exr(str(tmp_path / "local" / f"ab.{frame:04d}.exr"))[1]
        for name in ("references", "unknown_words", "keyframe", "job_key"):
            assert farm_header[name] == local_header[name], name
    assert json.loads(local_header["unknown_words"]) == ["astronaut"]


def test_run_window_names_a_bad_plan_or_window(tmp_path, capsys):
    assert cli.main(["farm", "run-window", str(tmp_path / "nope.json"), "--window", "1:1-2"]) == 1
    assert "cannot read the farm plan" in capsys.readouterr().err
    plan = tmp_path / "p.json"
    plan.write_text(json.dumps({"format": "coolcolor-farm-plan", "job": {}}))
    assert cli.main(["farm", "run-window", str(plan), "--window", "x"]) == 1
    assert "expected KEYFRAME:FIRST-LAST" in capsys.readouterr().err
    os.unlink(plan)
