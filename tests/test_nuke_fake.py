"""The fake ``nuke`` itself: each documented behaviour the plugin relies on, so a wrong fake fails here first."""

from __future__ import annotations

import os
import threading

import numpy as np
import pytest
from fakes.nuke.support import load_fake_nuke


@pytest.fixture
def nuke():
    return load_fake_nuke()


def test_string_knobs_evaluate_tcl_in_value_but_not_in_get_text(nuke, monkeypatch):
    monkeypatch.setenv("COOLCOLOR_FAKE_HOME", "/home/ana")
    n = nuke.nodes.NoOp()
    for cls in (nuke.String_Knob, nuke.EvalString_Knob, nuke.Multiline_Eval_String_Knob):
        k = cls(f"k_{cls.__name__}")
        n.addKnob(k)
        k.setValue("in $env(COOLCOLOR_FAKE_HOME) at [frame]")
        nuke.frame(7)
        assert k.getText() == "in $env(COOLCOLOR_FAKE_HOME) at [frame]"
        assert k.value() == "in /home/ana at 7"
        k.setValue("a [exit] b")
        assert k.getText() == "a [exit] b"
        with pytest.raises(nuke.TclExit):
            k.value()
        assert nuke.fake.exited
        nuke.fake.exited = False
        k.setValue("$nosuchvar")
        with pytest.raises(nuke.TclError, match="no such variable"):
            k.value()


def test_file_knob_normalises_hashes_and_knob_types(nuke):
    r = nuke.nodes.Read(file="/shots/plate.####.exr")
    assert r["file"].value() == "/shots/plate.%04d.exr"
    assert r["file"].getText() == "/shots/plate.####.exr"
    r["first"].setValue("12")
    assert r["first"].value() == 12
    e = nuke.Enumeration_Knob("e", "e", ["srgb", "linear"])
    r.addKnob(e)
    e.setValue("linear")
    assert e.value() == "linear" and e.getValue() == 1.0
    with pytest.raises(ValueError):
        e.setValue("nope")


def test_root_fps_is_rounded_but_its_knob_exact(nuke):
    nuke.root()["fps"].setValue(23.976)
    assert nuke.root().fps() == 24
    assert nuke.root()["fps"].value() == pytest.approx(23.976)


def test_groups_context_inputs_and_layers(nuke):
    g = nuke.nodes.Group()
    with g:
        i = nuke.nodes.Input()
        o = nuke.nodes.Output()
        o.setInput(0, i)
    assert nuke.toNode("Input1") is None  # created inside the group, looked up from the root
    assert g.node("Input1") is i and g.output() is o
    assert nuke.toNode(f"{g.name()}.Input1") is i
    nuke.Layer("ab", ["ab.a_star", "ab.b_star"])
    assert nuke.Layer("ab").channels() == ["ab.a_star", "ab.b_star"]


def test_execute_in_main_thread_refuses_the_main_thread_and_runs_queued_calls_on_the_pumped_loop(nuke):
    with pytest.raises(RuntimeError, match="main thread"):
        nuke.executeInMainThread(lambda: None)
    seen = []

    def worker():
        nuke.executeInMainThread(seen.append, ("queued",))
        seen.append(nuke.executeInMainThreadWithResult(lambda x: x * 2, (21,)))

    t = threading.Thread(target=worker)
    t.start()
    nuke.fake.run_main_loop(lambda: len(seen) == 2, timeout=60)
    t.join(60)
    assert seen == ["queued", 42]


def test_knob_writes_from_a_worker_thread_fail(nuke):
    n = nuke.nodes.Read()
    errors = []
    t = threading.Thread(target=lambda: errors.append(_catch(lambda: n["file"].setValue("x"))))
    t.start()
    t.join(30)
    assert errors and "worker thread" in errors[0]


def _catch(fn):
    try:
        fn()
    except RuntimeError as exc:
        return str(exc)
    return ""


def test_progress_task_cancel_is_scripted(nuke):
    nuke.fake.cancel_script = lambda task: task.cancel_checks >= 3
    task = nuke.ProgressTask("x")
    assert [task.isCancelled() for _ in range(3)] == [False, False, True]
    task.setProgress(40)
    with pytest.raises(TypeError):
        task.setProgress(0.5)
    assert task.progress == [40]


def test_execute_writes_real_half_exr_frames_linearised_by_the_read(nuke, tmp_path):
    import OpenImageIO as oiio

    from coolcolor.daemon.testing import write_gray_sequence

    pattern = write_gray_sequence(str(tmp_path / "src"), count=2, size=16)
    read = nuke.nodes.Read(file=pattern, first=1, last=2)
    grade = nuke.nodes.Grade(white=0.5, inputs=[read])
    write = nuke.nodes.Write(file=str(tmp_path / "out" / "w.####.exr"), file_type="exr", create_directories=True,
                             inputs=[grade])
    nuke.execute(write, 1, 2)
    out = str(tmp_path / "out" / "w.0002.exr")
    assert os.path.exists(out)
    buf = oiio.ImageBuf(out)
    assert buf.spec().format == oiio.HALF and list(buf.spec().channelnames) == ["R", "G", "B"]
    png = oiio.ImageBuf(pattern.replace("%04d", "0002")).get_pixels(oiio.FLOAT)[:, :, 0]
    linear = np.where(png > 0.04045, ((png + 0.055) / 1.055) ** 2.4, png / 12.92)
    np.testing.assert_allclose(buf.get_pixels(oiio.FLOAT)[:, :, 0], 0.5 * linear, atol=2e-3)
    missing = nuke.nodes.Write(file=str(tmp_path / "nope" / "w.####.exr"), inputs=[read])
    with pytest.raises(RuntimeError, match="Can't open"):
        nuke.execute(missing, 1, 1)


def test_menus_and_plugin_path(nuke, tmp_path):
    m = nuke.menu("Nodes").addMenu("CoolColor", icon="cc.png")
    m.addCommand("CoolColor", "x = 1")
    m.addCommand("CoolColor", "x = 2")  # replaced, not duplicated
    assert [i.name() for i in nuke.menu("Nodes").findItem("CoolColor").items()] == ["CoolColor"]
    assert nuke.menu("Nodes").findItem("CoolColor/CoolColor").script() == "x = 2"
    nuke.pluginAddPath(str(tmp_path))
    assert nuke.pluginPath()[0] == str(tmp_path)


def test_channel_nodes_follow_their_documented_defaults(nuke, tmp_path):
    """Read auto_alpha, Copy's from0/to0 default (rgba.alpha) and Layer Copy, Switch passing a whole image,
    MergeExpression writing only its channel masks (defaults: rgb, and alpha from a blank expr3 = 0)."""
    from coolcolor.daemon.testing import write_gray_sequence

    pattern = write_gray_sequence(str(tmp_path / "src"), count=1, size=8)
    plain = nuke.nodes.Read(file=pattern, first=1, last=1)
    opaque = nuke.nodes.Read(file=pattern, first=1, last=1, auto_alpha=True)
    assert "rgba.alpha" not in nuke.fake.render(plain, 1)  # a gray PNG has no alpha
    assert (nuke.fake.render(opaque, 1)["rgba.alpha"] == 1).all()

    copy = nuke.nodes.Copy(inputs=[opaque, plain])  # B = opaque, A = plain (no alpha)
    assert (copy["from0"].value(), copy["to0"].value(), copy["from1"].value(), copy["channels"].value()) == (
        "rgba.alpha", "rgba.alpha", "none", "none")
    assert (nuke.fake.render(copy, 1)["rgba.alpha"] == 0).all()  # the default copies A's (missing) alpha: black
    copy["from0"].setValue("none")
    copy["to0"].setValue("none")
    copy["channels"].setValue("depth")  # a layer A lacks: "If they are not in A, use B unchanged"
    out = nuke.fake.render(copy, 1)
    assert set(out) == set(nuke.fake.render(opaque, 1)) and (out["rgba.alpha"] == 1).all()

    switch = nuke.nodes.Switch(inputs=[plain, opaque])
    assert "rgba.alpha" not in nuke.fake.render(switch, 1)
    switch["which"].setValue(1)
    assert (nuke.fake.render(switch, 1)["rgba.alpha"] == 1).all()

    nuke.fake.merge_expression_unwritten = "B"
    merge = nuke.nodes.MergeExpression(inputs=[opaque, plain])
    merge["expr0"].setValue("0.25")
    out = nuke.fake.render(merge, 1)
    assert (out["rgba.red"] == 0.25).all() and (out["rgba.green"] == 0).all()  # blank expr1 = 0
    assert (out["rgba.alpha"] == 0).all()  # channel3 default "none none none rgba.alpha", blank expr3
    merge["channel3"].setValue("none")
    assert (nuke.fake.render(merge, 1)["rgba.alpha"] == 1).all()  # unwritten: B's ...
    nuke.fake.merge_expression_unwritten = "black"
    assert (nuke.fake.render(merge, 1)["rgba.alpha"] == 0).all()  # ... or zeroed: undocumented, both are tried
