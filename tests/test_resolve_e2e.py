"""End to end: the fake Resolve runs the real "CoolColor Colorize" script against a real ``coolcolor serve`` on the
embedded model (a child process): ab EXRs and the Loader sidecar come back, the bin clip carries the provenance,
the item gets the imported comp, whose Custom Tool expressions reproduce the daemon's own preview. Cancel, a
daemon restart and queueing are ordered by events (job states, frames done), never by sleeps."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import OpenImageIO as oiio
import pytest
from fakes.resolve import FakeResolve
from fakes.resolve import harness as h
from hostexpr import eval_fusion_custom

from coolcolor import faults
from coolcolor.daemon.testing import DaemonProcess
from coolcolor.default_model import default_model_path

sys.path.insert(0, str(h.PLUGIN_DIR))
from coolcolor_resolve import host  # noqa: E402

TAG = json.dumps({"app": host.KEYFRAME_TAG, "v": 1})
WAIT_S = 240.0


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    proc = DaemonProcess(str(tmp_path_factory.mktemp("resolve-daemon")), tiny=False,
                         args=("--model", str(default_model_path())))
    proc.start(timeout=WAIT_S)
    yield proc
    proc.stop(30)


@pytest.fixture
def env(daemon, tmp_path, monkeypatch):
    monkeypatch.setenv("COOLCOLOR_CONNECTION_FILE", daemon.connection_file)
    monkeypatch.setenv("COOLCOLOR_RESOLVE_OUTPUT", str(tmp_path / "out"))
    monkeypatch.setenv("COOLCOLOR_RESOLVE_PREFS", str(tmp_path / "prefs.json"))
    return tmp_path


def scene(tmp_path: Path, *, clips=1, count=10, left=2, duration=6, seed=0):
    app = FakeResolve()
    tl = app.new_timeline()
    items = []
    for n in range(clips):
        pattern = h.gray_sequence(tmp_path / f"media{n}", 1001, count, name=f"plate{n}", seed=seed + n)
        mpi = h.sequence_clip(app, pattern, 1001, count, name=f"plate{n}")
        items.append(h.place(tl, mpi, frames=count, left=left, duration=duration))
    tl.select(*items)
    tl.playhead = items[0].GetStart()
    return app, tl, items


def set_dialog(disp, *, prompt="a red ball in front of a blue wall", steps=2, encoding="srgb", result=0,
               handles=None):
    disp.item("Prompt").PlainText = prompt
    disp.item("Steps").Value = steps
    disp.item("Encoding").CurrentIndex = list(host_encodings()).index(encoding)
    disp.item("Result").CurrentIndex = result
    if handles is not None:
        disp.item("Range").CurrentIndex = 1
        disp.item("Handles").Value = handles


def host_encodings():
    from coolcolor_resolve.dialog import ENCODINGS

    return ENCODINGS


def all_finished() -> bool:
    ctl = h.controller()
    return bool(ctl.jobs) and all(j.finished for j in ctl.jobs)


def bin_clips(app):
    pool = app.GetProjectManager().GetCurrentProject().GetMediaPool()
    [folder] = [f for f in pool.GetRootFolder().GetSubFolderList() if f.GetName() == "CoolColor"] or [None]
    return folder.GetClipList() if folder else []


def read_pixels(path: str) -> np.ndarray:
    inp = oiio.ImageInput.open(path)
    assert inp is not None, oiio.geterror()
    spec = inp.spec()
    px = np.asarray(inp.read_image(0, 0, 0, spec.nchannels, oiio.FLOAT), np.float32)
    inp.close()
    return px.reshape(spec.height, spec.width, spec.nchannels)


def comp_inputs(text: str, tool: str) -> dict:
    """The ``Input { Value = "..." }`` strings of ``tool`` in a .comp file (Lua string escapes undone)."""
    body = text[text.index(f"{tool} = Custom {{"):]
    body = body[: body.index("ViewInfo")]
    out = {}
    for m in re.finditer(r'(\w+) = Input \{ Value = "((?:[^"\\]|\\.)*)", \}', body):
        out[m.group(1)] = re.sub(r"\\(.)", lambda e: {"n": "\n"}.get(e.group(1), e.group(1)), m.group(2))
    return out


# ---------------------------------------------------------------- the main path
def test_colorize_builds_bin_clip_comp_and_keeps_markers_then_a_rerun_is_a_cache_hit(env, daemon):
    app, tl, [item] = scene(env)
    item.AddMarker(2.0, "Cyan", "CoolColor keyframe", "", 1.0, TAG)
    item.AddMarker(4.0, "Red", "editor note", "", 1.0, "keep me")
    artist_comp = item.AddFusionComp()  # the artist's own comp: exported, then replaced
    runs = []

    def driver(disp):
        set_dialog(disp)
        disp.click("Colorize")
        h.tick_until(disp, all_finished, WAIT_S)
        runs.append([(j.state, j.cached, j.message, j.spec) for j in h.controller().jobs])
        disp.click("Close")

    h.run_script(app, driver)
    [(state, cached, message, spec)] = runs[0]
    assert state == "done" and not cached, message
    assert (spec.first, spec.last, spec.keyframes) == (1003, 1008, [1005]) and spec.resolve_sidecar
    for f in range(1003, 1009):
        side = read_pixels(os.path.join(spec.output_dir, f"ab_rg.{f:04d}.exr"))
        assert side.shape == (64, 64, 3) and np.all(side[..., 2] == 0)
    [clip] = bin_clips(app)
    assert clip.GetClipProperty("File Path") == os.path.join(spec.output_dir, "ab_rg.[1003-1008].exr")
    provenance = json.loads(clip.GetMetadata("Comments").split(" ", 1)[1])
    with daemon.client() as c:
        model_hash = c.hello()["model"]["hash"]
    assert provenance["prompt"] == "a red ball in front of a blue wall" and provenance["keyframes"] == [1005]
    assert provenance["seed"] == 0 and provenance["model_hash"] == model_hash and model_hash
    # the comp: imported from the .comp kept in the output folder; the artist's comp exported first
    comp_path = os.path.join(spec.output_dir, "coolcolor.comp")
    assert item.GetFusionCompCount() == 1 and item.GetFusionCompByIndex(1) is not artist_comp
    comp = item.GetFusionCompByIndex(1)
    assert comp.text == Path(comp_path).read_text()
    assert [t.Name for t in comp.GetToolList().values()] == ["MediaIn1", "CoolColorAB", "CoolColorRecombine",
                                                             "MediaOut1"]
    assert os.path.isfile(os.path.join(spec.output_dir, "previous-1-Composition_1.comp"))
    assert 'Filename = "' + os.path.join(spec.output_dir, "ab_rg.1003.exr") + '"' in comp.text
    assert "pow(" not in comp.text
    markers = item.GetMarkers()
    assert markers[2.0]["customData"] == TAG and markers[4.0]["customData"] == "keep me"
    assert app.thread_violations == []

    # unchanged settings: the daemon's cache answers, the bin clip is reused, the comp replaced in place
    stamps = {n: os.stat(os.path.join(spec.output_dir, n)).st_mtime_ns for n in os.listdir(spec.output_dir)
              if n.endswith(".exr")}
    h.run_script(app, driver)
    [(state, cached, message, spec2)] = runs[1]
    assert state == "done" and cached and spec2.output_dir == spec.output_dir, message
    assert len(bin_clips(app)) == 1 and item.GetFusionCompCount() == 1
    assert {n: os.stat(os.path.join(spec.output_dir, n)).st_mtime_ns for n in stamps} == stamps  # nothing redone


def test_comp_expressions_reproduce_the_daemons_preview(env, daemon):
    """The written .comp's Custom Tool, evaluated by the Fusion grammar's parser on the daemon's real sidecar
    frames and the clip's plate, equals the daemon's own preview (sRGB PNG) within 1/255."""
    app, tl, [item] = scene(env, count=6, left=0, duration=3)
    item.AddMarker(1.0, "Cyan", "kf", "", 1.0, TAG)
    done = []

    def driver(disp):
        set_dialog(disp, encoding="srgb")
        disp.click("Colorize")
        h.tick_until(disp, all_finished, WAIT_S)
        done.extend(h.controller().jobs)
        disp.click("Close")

    h.run_script(app, driver)
    [job] = done
    assert job.state == "done", job.message
    inputs = comp_inputs(Path(job.spec.output_dir, "coolcolor.comp").read_text(), "CoolColorRecombine")
    assert {"RedExpression", "GreenExpression", "BlueExpression", "AlphaExpression"} <= set(inputs)
    # the same job with the daemon's preview on (another seed, so the cache does not answer)
    spec = dict(job.spec.to_dict(), preview=True, seed=1, output_dir=str(env / "reference"))
    with daemon.client() as c:
        reply = c.submit(spec, key="resolve-e2e-reference")
        final = c.wait(reply["job_id"], timeout=WAIT_S)
    assert final["state"] == "done", final
    for f in range(spec["first"], spec["last"] + 1):
        plate = read_pixels(job.clip.source % f)[..., 0] / 1.0  # gray PNG as MediaIn delivers it (0..1)
        side = read_pixels(os.path.join(spec["output_dir"], f"ab_rg.{f:04d}.exr"))
        preview = read_pixels(os.path.join(spec["output_dir"], f"preview.{f:04d}.png"))
        out = eval_fusion_custom(inputs, c1={"r": plate, "g": plate, "b": plate, "a": 1.0},
                                 c2={"r": side[..., 0], "g": side[..., 1], "b": side[..., 2], "a": 1.0})
        got = np.stack([out["r"], out["g"], out["b"]], -1)
        assert np.isfinite(got).all()
        assert np.abs(got - preview).max() <= 1 / 255 + 1e-6, np.abs(got - preview).max() * 255


def test_rgb_plate_fallback_on_the_track_above_with_handles(env, daemon):
    app, tl, [item] = scene(env)
    done = []

    def driver(disp):
        set_dialog(disp, result=1, handles=1, encoding="srgb")
        disp.click("Colorize")
        h.tick_until(disp, all_finished, WAIT_S)
        done.extend(h.controller().jobs)
        disp.click("Close")

    h.run_script(app, driver)
    [job] = done
    assert job.state == "done" and job.spec.rgb_plate and not job.spec.resolve_sidecar, job.message
    assert (job.spec.first, job.spec.last) == (1002, 1009)  # clip 1003-1008 + 1 handle each side
    [plate] = tl.GetItemListInTrack("video", 2)
    assert plate.GetStart() == item.GetStart() and plate.GetEnd() == item.GetEnd()
    assert plate.GetLeftOffset() == 1  # starts at the clip's first frame inside the handle-wide plate
    assert plate.GetProperty("CompositeMode") == app.COMPOSITE_NORMAL
    assert plate.GetMediaPoolItem().GetClipProperty("File Path").endswith("rgb.[1002-1009].exr")
    assert item.GetFusionCompCount() == 0 and tl.GetItemListInTrack("video", 1) == [item]
    px = read_pixels(os.path.join(job.spec.output_dir, "rgb.1005.exr"))
    assert px.shape == (64, 64, 3) and float(np.ptp(px[..., 0] - px[..., 2])) > 0  # colour, not gray


def test_preview_keyframe_colorizes_only_the_keyframes(env, daemon):
    app, tl, [item] = scene(env)
    item.AddMarker(1.0, "Cyan", "kf", "", 1.0, TAG)
    item.AddMarker(4.0, "Cyan", "kf", "", 1.0, TAG)
    done = []

    def driver(disp):
        set_dialog(disp)
        disp.click("Preview")
        h.tick_until(disp, all_finished, WAIT_S)
        done.extend(h.controller().jobs)
        disp.click("Close")

    h.run_script(app, driver)
    assert [(j.kind, j.state, j.spec.first, j.spec.last) for j in done] == [("preview", "done", 1004, 1004),
                                                                           ("preview", "done", 1007, 1007)]
    names = sorted(c.GetName() for c in bin_clips(app))
    assert names == ["preview.1004.png", "preview.1007.png"]
    for j in done:
        assert sorted(os.listdir(j.spec.output_dir)) == [f"ab.{j.spec.first:04d}.exr", "manifest.json",
                                                         f"preview.{j.spec.first:04d}.png"]
    assert item.GetFusionCompCount() == 0


def _long_job(daemon, tmp_path, key):
    """A job that keeps the daemon's one worker busy until it is cancelled."""
    source = h.gray_sequence(tmp_path / "busy", 1, 4, name="busy")
    with daemon.client() as c:
        reply = c.submit({"source": source, "output_dir": str(tmp_path / "busy-out"), "steps": 400, "window": 1,
                          "keyframes": [1]}, key=key)
        deadline = time.monotonic() + WAIT_S
        while c.status(reply["job_id"])["state"] != "running":
            assert time.monotonic() < deadline, "the busy job never started"
            c.poll(0.2)
    return reply["job_id"]


def test_two_clips_queue_behind_a_running_job_then_both_finish(env, daemon):
    app, tl, items = scene(env, clips=2)
    busy = _long_job(daemon, env, "resolve-e2e-busy")
    seen = {}

    def driver(disp):
        set_dialog(disp)
        disp.click("Colorize")
        seen["progress"] = disp.item("Progress").Text
        with daemon.client() as c:
            c.cancel(busy)
        h.tick_until(disp, all_finished, WAIT_S)
        seen["jobs"] = [(j.clip.item_name, j.state, j.message) for j in h.controller().jobs]
        disp.click("Close")

    h.run_script(app, driver)
    assert seen["progress"] == "plate0: queued (position 1)\nplate1: queued (position 2)"
    assert [(n, s) for n, s, _ in seen["jobs"]] == [("plate0", "done"), ("plate1", "done")], seen["jobs"]
    assert all(i.GetFusionCompCount() == 1 for i in items) and len(bin_clips(app)) == 2


def test_cancel_stops_the_job_and_brings_nothing_in(env, daemon):
    app, tl, [item] = scene(env)
    seen = {}

    def driver(disp):
        set_dialog(disp, steps=400)
        disp.click("Colorize")
        h.tick_until(disp, lambda: h.controller().jobs[0].state == "running", WAIT_S, "the job to start")
        disp.click("Cancel")
        h.tick_until(disp, all_finished, WAIT_S)
        seen["job"] = h.controller().jobs[0]
        seen["status"] = h.status_text(disp)
        disp.click("Close")

    h.run_script(app, driver)
    assert seen["job"].state == "cancelled" and "cancel sent for 1 job(s)" in seen["status"]
    assert bin_clips(app) == [] and item.GetFusionCompCount() == 0


def test_a_daemon_restart_mid_job_is_survived(env, daemon):
    app, tl, [item] = scene(env, count=12, left=1, duration=10)
    seen = {}

    # Mid-job by an event, not by speed: this daemon holds its job right after the first frame_done.
    daemon.kill()
    daemon.start(timeout=WAIT_S, env={"COOLCOLOR_FAULT": faults.spec("frame_written", 1, "pause")})

    def driver(disp):
        set_dialog(disp, steps=8)
        disp.click("Colorize")
        job = h.controller().jobs[0]
        h.tick_until(disp, lambda: job.frames_done >= 1, WAIT_S, "a first frame")
        assert job.frames_done < 10
        daemon.kill()  # SIGKILL mid-job
        daemon.start(timeout=WAIT_S)  # same state: the journal is replayed, the job resumes
        h.tick_until(disp, all_finished, WAIT_S)
        seen["job"] = job
        disp.click("Close")

    h.run_script(app, driver)
    job = seen["job"]
    assert job.state == "done", job.message
    assert all(os.path.isfile(os.path.join(job.spec.output_dir, f"ab_rg.{f:04d}.exr")) for f in range(1002, 1012))
    assert item.GetFusionCompCount() == 1 and len(bin_clips(app)) == 1


def test_a_daemon_error_for_the_job_is_a_message_and_loses_nothing(env, daemon):
    app, tl, [item] = scene(env)
    os.unlink(os.path.join(str(env / "media0"), "plate0.1005.png"))  # a frame missing inside the used range
    artist_comp = item.AddFusionComp()
    seen = {}

    def driver(disp):
        set_dialog(disp)
        disp.click("Colorize")
        seen["status"] = h.status_text(disp)
        disp.click("Close")

    h.run_script(app, driver)
    assert "plate0: the daemon refused the job: [400]" in seen["status"] and "1005" in seen["status"]
    assert "Traceback" not in seen["status"]
    assert item.GetFusionCompNameList() == ["Composition 1"] and item.GetFusionCompByIndex(1) is artist_comp
    assert bin_clips(app) == [] and app.thread_violations == []


def host_python() -> str | None:
    """A Python like Resolve's (3.9 with pyzmq only): $COOLCOLOR_TEST_HOST_PYTHON, or the checkout's venv/py39."""
    candidate = os.environ.get("COOLCOLOR_TEST_HOST_PYTHON") or str(h.ROOT / "venv" / "py39" / "bin" / "python")
    return candidate if os.path.isfile(candidate) else None


def test_the_plugin_runs_in_a_python_3_9_host_with_only_pyzmq(env, daemon):
    python = host_python()
    if python is None:
        pytest.skip("no host Python: set COOLCOLOR_TEST_HOST_PYTHON to a Python 3.9 with pyzmq (not numpy)")
    pattern = h.gray_sequence(env / "media", 1001, 10)
    args = json.dumps({"pattern": pattern, "first": 1001, "count": 10, "left": 2, "duration": 6})
    child_env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    child_env["PYTHONPATH"] = os.pathsep.join([str(h.ROOT / "tests"), str(h.ROOT / "protocol")])
    proc = subprocess.run([python, str(h.ROOT / "tests" / "fakes" / "resolve" / "host_driver.py"), args],
                          env=child_env, capture_output=True, text=True, timeout=600, cwd=str(env))
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["python"] == [3, 9] and result["modules"] == [] and result["thread_violations"] == []
    assert [s for s, _ in result["jobs"]] == ["done"], result
    assert len(result["comps"]) == 1


def test_a_comp_resolve_cannot_build_falls_back_to_the_plate_and_restores_the_artists_comp(env, daemon,
                                                                                          monkeypatch):
    from coolcolor_resolve import comp as comp_file

    monkeypatch.setattr(comp_file, "comp_text", lambda **kw: "Composition { Tools = ordered() { broken\n")
    app, tl, [item] = scene(env)
    artist = item.AddFusionComp()
    artist.text = "Composition { Tools = ordered() { Artist = Blur { }, }, }\n"
    seen = {}

    def driver(disp):
        set_dialog(disp)
        disp.click("Colorize")
        h.tick_until(disp, all_finished, WAIT_S)
        seen["job"] = h.controller().jobs[0]
        seen["status"] = h.status_text(disp)
        disp.click("Close")

    h.run_script(app, driver)
    assert seen["job"].state == "done" and seen["job"].message == "RGB plate on V2", seen["status"]
    assert "Resolve did not build the CoolColor comp" in seen["status"]
    assert "placing the RGB plate on the track above instead" in seen["status"]
    [restored] = [item.GetFusionCompByIndex(i) for i in range(1, item.GetFusionCompCount() + 1)]
    assert [t.Name for t in restored.GetToolList().values()] == ["Artist"]  # the artist's comp is back
    [plate] = tl.GetItemListInTrack("video", 2)
    assert plate.GetStart() == item.GetStart() and plate.GetDuration() == item.GetDuration()


# ---------------------------------------------------------------- references (issue 25)
@pytest.mark.parametrize("gallery_open", [True, False], ids=["gallery-open", "gallery-closed"])
def test_the_graded_frame_at_the_playhead_is_that_frames_output(env, daemon, gallery_open):
    """The colorist grades source frame 1005 on the Color page; "Use the graded frame at the playhead" grabs and
    exports it (with the Gallery panel closed ExportStills writes nothing and the current frame is exported
    instead); the daemon's ab for 1005 is the exported still's a*, b* to half-float precision."""
    from coolcolor import color
    from coolcolor.references import file_sha256
    from coolcolor.video.exr import read_ab_exr

    app, tl, [item] = scene(env)  # media 1001-1010, the cut 1003-1008
    plate = read_pixels(str(env / "media0" / "plate0.1005.png"))[..., 0]
    item.grade(2, np.clip(np.stack([plate * c + 0.05 for c in (1.0, 0.55, 0.25)], -1), 0, 1))
    app.gallery_panel_open = gallery_open
    done = []

    def driver(disp):
        set_dialog(disp)
        tl.playhead = item.GetStart() + 2
        disp.click("UseGraded")
        disp.click("Colorize")
        h.tick_until(disp, all_finished, WAIT_S)
        done.extend(h.controller().jobs)
        disp.click("Close")

    h.run_script(app, driver)
    [job] = done
    assert job.state == "done", job.message
    [ref] = job.spec.references
    assert ref["frame"] == 1005
    ab, header = read_ab_exr(os.path.join(job.spec.output_dir, "ab.1005.exr"))
    expected = color.rgb_to_lab(read_pixels(ref["path"]))[..., 1:]
    assert np.abs(ab - expected).max() < 0.07  # the artist's frame, to half-float precision (|ab| < 128)
    assert json.loads(header["references"]) == [{"frame": 1005, "path": ref["path"],
                                                 "sha256": file_sha256(ref["path"])}]
    other, _ = read_ab_exr(os.path.join(job.spec.output_dir, "ab.1007.exr"))
    assert np.abs(other - ab).max() > 1  # the other frames are colorized, not copies
    [clip] = bin_clips(app)
    assert json.loads(clip.GetMetadata("Comments").split(" ", 1)[1])["references"] == [ref]  # provenance
    assert item.GetFusionCompCount() == 1 and app.thread_violations == []


def test_an_ungraded_still_is_refused_in_one_line_and_nothing_runs(env, daemon):
    """Grabbed before grading: the still is the gray plate; the daemon's reference check (the one definition of
    "gray") refuses the job at submission, one line in the dialog, nothing queued or brought in."""
    app, tl, [item] = scene(env)
    seen = {}

    def driver(disp):
        set_dialog(disp)
        tl.playhead = item.GetStart() + 2
        disp.click("UseGraded")
        disp.click("Colorize")
        seen["last"] = h.controller().status_lines[-1]
        seen["jobs"] = list(h.controller().jobs)
        disp.click("Close")

    h.run_script(app, driver)
    assert seen["last"].startswith("plate0: the daemon refused the job: [400]") and "is gray" in seen["last"]
    assert "\n" not in seen["last"] and seen["jobs"] == []
    assert bin_clips(app) == [] and item.GetFusionCompCount() == 0
