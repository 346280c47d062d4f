"""End to end: the fake Nuke → a real ``coolcolor serve`` on the embedded default model (a child process started
here, one per module) → ab EXRs read back through the node's internal Read.

Faults are ordered by events (the node's first delivered frame), never by sleeps; waits have generous timeouts.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from fakes.nuke.support import load_fake_nuke

from coolcolor import faults

SIZE = 32


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    from coolcolor.daemon.testing import DaemonProcess
    from coolcolor.default_model import default_model_path

    # the embedded coolcolor-tiny (named explicitly: `serve` without --model may not default to it on every branch)
    d = DaemonProcess(str(tmp_path_factory.mktemp("nuke-daemon")), tiny=False,
                      args=("--model", str(default_model_path())))
    d.start(timeout=240)
    yield d
    d.stop(30)


@pytest.fixture
def nuke(daemon, tmp_path, monkeypatch):
    monkeypatch.setenv("COOLCOLOR_NUKE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("COOLCOLOR_CONNECTION_FILE", daemon.connection_file)
    nk = load_fake_nuke()
    yield nk
    from coolcolor_nuke import node

    for runner in list(node._runners.values()):  # leave no worker behind for the next test
        runner.orphaned.set()
        runner.join(60)
    node._runners.clear()


def plate(tmp_path, count: int, name: str = "plate") -> str:
    from coolcolor.daemon.testing import write_gray_sequence

    return write_gray_sequence(str(tmp_path / name), count=count, size=SIZE, first=1)


def make_node(nuke, pattern: str, count: int, *, steps: int = 3, window: int = 2, keyframes: str = "1"):
    import coolcolor_nuke.menus

    coolcolor_nuke.menus.register()
    read = nuke.nodes.Read(file=pattern.replace("%04d", "####"), first=1, last=count, origfirst=1, origlast=count)
    nuke.fake.select(read)
    nuke.menu("Nodes").findItem("CoolColor/CoolColor").invoke()
    g = [n for n in nuke.allNodes("Group") if n.knob("coolcolor_node")][-1]
    g["prompt"].setValue("a red ball [on] a $blue sky")
    g["steps"].setValue(steps)
    g["window"].setValue(window)
    g["keyframes"].setValue(keyframes)
    return g, read


def status(g) -> str:
    return str(g["status"].value())


def wait_status(nuke, g, *prefixes: str, timeout: float = 240) -> str:
    nuke.fake.run_main_loop(lambda: status(g).startswith(prefixes), timeout=timeout)
    return status(g)


def delivered(g) -> list:
    from coolcolor_nuke.frames import parse_frames

    return parse_frames(str(g["delivered"].value()))


def runner(g):
    from coolcolor_nuke import node

    return node.runner_for(g)


def read_png(path: str) -> np.ndarray:
    import OpenImageIO as oiio

    return oiio.ImageBuf(path).get_pixels(oiio.FLOAT)[:, :, :3]


def to_srgb(v: np.ndarray) -> np.ndarray:
    return np.where(v > 0.0031308, 1.055 * np.maximum(v, 0.0031308) ** (1 / 2.4) - 0.055, 12.92 * v)


def test_colorize_recombines_the_real_ab_frames_into_the_daemons_preview_and_a_rerun_is_a_cache_hit(nuke, tmp_path):
    from hostexpr import eval_nuke_merge

    count = 3
    g, read = make_node(nuke, plate(tmp_path, count), count)
    nuke.fake.press(g, "colorize")
    assert wait_status(nuke, g, "done", "error").startswith("done"), status(g)
    r = runner(g)
    assert sorted(r.delivered) == [1, 2, 3] and r.duplicates == 0
    assert nuke.fake.main_thread_violations == 0
    task = nuke.fake.progress_tasks[-1]
    assert task.progress and all(0 <= p <= 100 for p in task.progress) and task.progress[-1] >= 50
    assert any("frames" in m and "ETA" in m for m in task.messages), task.messages
    read_ab = g.node("ReadAB")
    pattern = read_ab["file"].value()
    out_dir = os.path.dirname(pattern)
    assert pattern.endswith("ab.%04d.exr") and (read_ab["first"].value(), read_ab["last"].value()) == (1, 3)
    assert len(g["model_hash"].value()) >= 12 and g["frames_seed"].value() == "0" and g["frames_keyframes"].value() == "1"
    merge = g.node("Recombine")
    knobs = {k: (merge[k].getText() if hasattr(merge[k], "getText") else str(merge[k].value()))
             for k in merge.knobs() if k.startswith(("temp_name", "temp_expr", "expr", "channel"))}
    for f in range(1, count + 1):
        a = nuke.fake.render(read_ab, f)  # the real ab EXR, through the node's raw Read
        assert {"ab.a_star", "ab.b_star"} <= set(a)
        b = nuke.fake.render(g.node("Source"), f)  # the plate as Nuke sees it: linearised by its Read
        short = lambda ch: {(k.split(".")[1][0] if k.startswith("rgba.") else k): v for k, v in ch.items()}  # noqa: E731
        rgb = eval_nuke_merge(knobs, short(b), short(a))
        linear = np.stack([rgb["rgba.red"], rgb["rgba.green"], rgb["rgba.blue"]], axis=-1)
        preview = read_png(os.path.join(out_dir, f"preview.{f:04d}.png"))
        err = np.abs(to_srgb(linear) - preview).max()
        assert err <= 1 / 255 + 1e-6, f"frame {f}: {err * 255:.2f}/255 from the daemon's preview"
        # the node's own output: rgba = the colorized plate, the ab layer carried along
        out = nuke.fake.render(g, f)
        np.testing.assert_allclose(out["rgba.red"], linear[:, :, 0], atol=1e-5)
        np.testing.assert_array_equal(out["ab.a_star"], a["ab.a_star"])
    assert np.abs(a["ab.a_star"]).max() > 0.5  # colour was delivered, not zeros

    # Same settings again: answered by the daemon (cache / same job), nothing computed, frames fetched again.
    mtimes = {n: os.stat(os.path.join(out_dir, n)).st_mtime_ns for n in os.listdir(out_dir) if n.startswith("ab.")}
    job_id = g["job_id"].value()
    nuke.fake.press(g, "colorize")
    assert "nothing computed" in wait_status(nuke, g, "done", "error"), status(g)
    assert g["job_id"].value() == job_id and sorted(runner(g).delivered) == [1, 2, 3]
    assert {n: os.stat(os.path.join(out_dir, n)).st_mtime_ns for n in mtimes} == mtimes
    # A changed prompt renders again, into its own folder (the first result stays on disk).
    g["prompt"].setValue("a green ball")
    nuke.fake.press(g, "colorize")
    assert wait_status(nuke, g, "done", "error").startswith("done"), status(g)
    assert g["job_id"].value() != job_id and os.path.dirname(g.node("ReadAB")["file"].value()) != out_dir
    assert {n: os.stat(os.path.join(out_dir, n)).st_mtime_ns for n in mtimes} == mtimes


def test_preview_keyframe_colorizes_only_the_keyframes_and_other_frames_show_the_plate(nuke, tmp_path):
    count = 5
    g, read = make_node(nuke, plate(tmp_path, count), count, keyframes="2, 4")
    nuke.fake.press(g, "preview")
    assert wait_status(nuke, g, "done", "error").startswith("done"), status(g)
    assert delivered(g) == [2, 4]
    folder = os.path.dirname(g.node("ReadAB")["file"].value())
    assert sorted(n for n in os.listdir(folder) if n.startswith("ab.")) == ["ab.0002.exr", "ab.0004.exr"]
    for f in (2, 4):  # both previewed keyframes reach the node's output, colorized
        ab = nuke.fake.render(g.node("ReadAB"), f)["ab.a_star"]
        assert np.abs(ab).max() > 0.5
        np.testing.assert_array_equal(nuke.fake.render(g, f)["ab.a_star"], ab)
    plate3 = nuke.fake.render(read, 3)
    out3 = nuke.fake.render(g, 3)
    np.testing.assert_array_equal(out3["rgba.red"], plate3["rgba.red"])  # not colorized: the plate passes
    assert "ab.a_star" not in out3


@pytest.mark.parametrize("how", ["progress bar", "Cancel button"])
def test_cancel_mid_job_stops_the_daemons_job_and_keeps_the_delivered_frames(nuke, daemon, tmp_path, how):
    count = 24
    g, _ = make_node(nuke, plate(tmp_path, count), count, steps=10, window=1)
    g["seed"].setValue(1 if how == "progress bar" else 2)  # two different jobs
    nuke.fake.press(g, "colorize")
    nuke.fake.run_main_loop(lambda: len(delivered(g)) >= 1 or status(g).startswith(("done", "error")))
    if how == "progress bar":
        nuke.fake.press_cancel(nuke.fake.progress_tasks[-1])  # the user cancels the progress bar after frame one
    else:
        nuke.fake.press(g, "cancel")
    assert wait_status(nuke, g, "cancelled", "done", "error").startswith("cancelled"), status(g)
    with daemon.client() as c:
        job = c.status(g["job_id"].value())
    assert job["state"] == "cancelled" and job["frames_done"] < count
    kept = delivered(g)
    assert kept and all(os.path.exists(g.node("ReadAB")["file"].value().replace("%04d", f"{f:04d}")) for f in kept)
    assert set(kept) == {f for a, b in job["frames"] for f in range(a, b + 1)}


def test_a_daemon_restart_mid_job_reattaches_and_receives_only_the_missing_frames(nuke, daemon, tmp_path):
    count = 16
    g, _ = make_node(nuke, plate(tmp_path, count), count, steps=8, window=1)
    # Mid-job by an event, not by speed: this daemon holds its job right after the first frame_done.
    daemon.kill()
    daemon.start(timeout=240, env={"COOLCOLOR_FAULT": faults.spec("frame_written", 1, "pause")})
    nuke.fake.press(g, "colorize")
    nuke.fake.run_main_loop(lambda: len(delivered(g)) >= 1 or status(g).startswith(("done", "error")))
    assert len(delivered(g)) < count and not status(g).startswith(("done", "error")), status(g)
    daemon.kill()  # kill -9 after the first frame reached the node
    daemon.start(timeout=240)
    assert wait_status(nuke, g, "done", "error").startswith("done"), status(g)
    r = runner(g)
    assert sorted(r.delivered) == list(range(1, count + 1)) and r.duplicates == 0
    assert delivered(g) == list(range(1, count + 1))


@pytest.mark.parametrize("how", ["delete the node", "close the script"])
def test_deleting_the_node_or_closing_the_script_leaves_the_job_running_and_reopening_attaches(
        nuke, daemon, tmp_path, how):
    from coolcolor_nuke import node

    count = 8
    pattern = plate(tmp_path, count)
    g, read = make_node(nuke, pattern, count, steps=6, window=1)
    seed = 3 if how == "delete the node" else 4
    g["seed"].setValue(seed)
    nuke.fake.press(g, "colorize")
    nuke.fake.run_main_loop(lambda: len(delivered(g)) >= 1 or status(g).startswith(("done", "error")))
    saved = {k: g[k].getText() if hasattr(g[k], "getText") else g[k].value()
             for k in ("job_id", "delivered", "status", "job_kind", "job_state")}
    saved_read = g.node("ReadAB")["file"].value()
    first_runner = runner(g)
    if how == "delete the node":
        nuke.delete(g)
    else:
        nuke.fake.reset()  # File > New: every node gone
        read = nuke.nodes.Read(file=pattern, first=1, last=count, origfirst=1, origlast=count)
    nuke.fake.run_main_loop(lambda: not first_runner.is_alive() or first_runner.orphaned.is_set())
    first_runner.join(60)
    with daemon.client() as c:
        final = c.wait(saved["job_id"], timeout=240)
    assert final["state"] == "done"  # the daemon's job went on without the node
    # Re-open: the saved script recreates the node with its knobs, then Nuke runs its onCreate.
    g2 = node.build_node(nuke.nodes.Group())
    g2.setInput(0, read)
    for k, v in saved.items():
        g2[k].setValue(v)
    g2.node("ReadAB")["file"].setValue(saved_read)
    had = set(delivered(g2))
    nuke.fake.run_knob_script(g2, "onCreate")
    assert wait_status(nuke, g2, "done", "error").startswith("done"), status(g2)
    r = runner(g2)
    assert r.duplicates == 0 and set(r.delivered) == set(range(1, count + 1)) - had
    assert delivered(g2) == list(range(1, count + 1))
    assert g2["frames_seed"].value() == str(seed) and g2["frames_keyframes"].value() == "1"  # from the job


def test_a_daemon_error_for_the_job_shows_its_code_and_message(nuke, tmp_path):
    count = 3
    pattern = plate(tmp_path, count)
    os.remove(pattern.replace("%04d", "0002"))  # a hole in the sequence: the daemon refuses the job
    g, _ = make_node(nuke, pattern, count)
    nuke.fake.press(g, "colorize")
    text = wait_status(nuke, g, "error", "done")
    assert text.startswith("error: daemon error 400:") and "missing frames" in text, text
    assert "daemon error 400" in nuke.fake.messages[-1]


# ---------------------------------------------------------------------------------------------------------------
# The Reference input (issue 25 §4)
# ---------------------------------------------------------------------------------------------------------------
def graded_sequence(plate_pattern: str, folder, count: int, tint: tuple, size: int = SIZE) -> str:
    """The plate's frames "graded": its gray values tinted, as 8-bit sRGB PNGs (``size`` other than the plate's:
    resized, for the wrong-size case)."""
    import cv2

    os.makedirs(folder, exist_ok=True)
    for f in range(1, count + 1):
        gray = cv2.imread(plate_pattern.replace("%04d", f"{f:04d}"), cv2.IMREAD_GRAYSCALE).astype(np.float32) / 255
        gray = cv2.resize(gray, (size, size), interpolation=cv2.INTER_AREA) if size != gray.shape[0] else gray
        bgr = np.clip(np.stack([gray * tint[2], gray * tint[1], gray * tint[0]], -1), 0, 1)
        cv2.imwrite(os.path.join(folder, f"graded.{f:04d}.png"), (bgr * 255 + 0.5).astype(np.uint8))
    return os.path.join(str(folder), "graded.%04d.png")


def reference_ab(path: str, encoding: str) -> np.ndarray:
    """The a*b* the daemon reads from a reference file (its own decoder and colour conversion)."""
    from coolcolor import color
    from coolcolor.references import load_reference_file
    from coolcolor.video.encoding import InputDecoder

    return np.asarray(color.rgb_to_lab(load_reference_file(path, InputDecoder(encoding).to_srgb)))[..., 1:]


def node_ab(nuke, g, f: int) -> np.ndarray:
    """The ab the node received for frame f, through its internal raw Read."""
    ab = nuke.fake.render(g.node("ReadAB"), f)
    return np.stack([ab["ab.a_star"], ab["ab.b_star"]], -1)


def test_a_graded_reference_frame_becomes_that_frames_output_and_another_grade_is_another_job(nuke, tmp_path):
    count = 3
    pattern = plate(tmp_path, count)
    g, read = make_node(nuke, pattern, count, keyframes="")
    graded = graded_sequence(pattern, tmp_path / "graded", count, (1.0, 0.55, 0.25))
    reference = nuke.nodes.Read(file=graded.replace("%04d", "####"), first=1, last=count, origfirst=1,
                                origlast=count)
    g.setInput(1, reference)
    g["reference_frame"].setValue(2)
    nuke.fake.press(g, "colorize")
    assert wait_status(nuke, g, "done", "error").startswith("done"), status(g)
    spec = runner(g).jobs[0].spec
    path = spec["references"][0]["path"]
    assert spec["references"] == [{"frame": 2, "path": path}] and os.path.isfile(path)
    assert sorted(runner(g).delivered) == [1, 2, 3]
    # the graded frame's output is the reference's a*b*, to half-float precision (the ab EXR is half)
    expected = reference_ab(path, spec["encoding"])
    assert np.abs(expected).max() > 5  # a colour reference, not gray
    assert np.abs(node_ab(nuke, g, 2) - expected).max() < 0.07
    assert np.abs(node_ab(nuke, g, 1)).max() > 0.5  # the other frames are colorized too
    first_job = g["job_id"].value()

    # The same reference again: the daemon's answer, nothing computed.
    first_key = runner(g).jobs[0].key
    nuke.fake.press(g, "colorize")
    text = wait_status(nuke, g, "done", "error")
    assert runner(g).jobs[0].key == first_key and "nothing computed" in text, text
    assert g["job_id"].value() == first_job

    # The artist re-grades frame 2 (the same file, new colours): a new job, computed, whose frame 2 is the new grade.
    regraded = graded_sequence(pattern, tmp_path / "graded", count, (0.25, 0.6, 1.0))
    frame2 = regraded.replace("%04d", "0002")
    st = os.stat(frame2)
    os.utime(frame2, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    nuke.fake.press(g, "colorize")
    text = wait_status(nuke, g, "done", "error")
    assert text.startswith("done") and "nothing computed" not in text, text
    assert g["job_id"].value() != first_job
    new_expected = reference_ab(runner(g).jobs[0].spec["references"][0]["path"], spec["encoding"])
    assert np.abs(new_expected - expected).max() > 5
    assert np.abs(node_ab(nuke, g, 2) - new_expected).max() < 0.07


@pytest.mark.parametrize("case, expected", [
    ("gray", "is gray"),
    ("wrong size", "is 16×16, the plate is 32×32"),
])
def test_a_reference_the_daemon_refuses_shows_its_error_in_one_line(nuke, tmp_path, case, expected):
    count = 2
    pattern = plate(tmp_path, count)
    g, read = make_node(nuke, pattern, count)
    g["delivered"].setValue("1")  # a frame an earlier job delivered
    if case == "gray":
        reference = read  # the plate itself: no colour to give
    else:
        small = graded_sequence(pattern, tmp_path / "small", count, (1.0, 0.55, 0.25), size=16)
        reference = nuke.nodes.Read(file=small.replace("%04d", "####"), first=1, last=count, origfirst=1,
                                    origlast=count)
    g.setInput(1, reference)
    g["reference_frame"].setValue(1)
    nuke.fake.press(g, "colorize")
    text = wait_status(nuke, g, "error", "done")
    assert text.startswith("error: daemon error 400: job: reference ") and expected in text, text
    assert "\n" not in text and "Traceback" not in text
    assert expected in nuke.fake.messages[-1]
