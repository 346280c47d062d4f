"""The Nuke plugin against the fake ``nuke``, without a daemon: registration, the node's knobs and internals, the
prompt never TCL-evaluated, keyframe buttons, source frames (plain Read vs internal Write with its cache), bad input,
a daemon that is not running, and the type check against types-nuke."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest
from fakes.nuke.support import PLUGIN_DIR, ROOT, load_fake_nuke


@pytest.fixture
def nuke(tmp_path, monkeypatch):
    monkeypatch.setenv("COOLCOLOR_NUKE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("COOLCOLOR_CONNECTION_FILE", str(tmp_path / "no-daemon" / "daemon.json"))
    return load_fake_nuke()


@pytest.fixture
def plate(tmp_path) -> str:
    from coolcolor.daemon.testing import write_gray_sequence

    return write_gray_sequence(str(tmp_path / "plate"), count=5, size=16, first=11)


def new_node(nuke, upstream=None):
    import coolcolor_nuke.menus

    coolcolor_nuke.menus.register()
    if upstream is not None:
        nuke.fake.select(upstream)
    nuke.menu("Nodes").findItem("CoolColor/CoolColor").invoke()
    groups = [n for n in nuke.allNodes("Group") if n.knob("coolcolor_node")]
    return groups[-1]


def plain_read(nuke, pattern: str, first: int = 11, last: int = 15):
    return nuke.nodes.Read(file=pattern.replace("%04d", "####"), first=first, last=last, origfirst=first,
                           origlast=last)


def test_registration_adds_the_toolbar_entry_with_an_icon_and_the_daemon_status_menu(nuke):
    ns = {"__file__": str(PLUGIN_DIR / "init.py")}
    exec(compile((PLUGIN_DIR / "init.py").read_text(), "init.py", "exec"), ns)
    exec(compile((PLUGIN_DIR / "menu.py").read_text(), "menu.py", "exec"), {})
    exec(compile((PLUGIN_DIR / "menu.py").read_text(), "menu.py", "exec"), {})  # twice: still one entry each
    toolbar = nuke.menu("Nodes").findItem("CoolColor")
    assert [i.name() for i in toolbar.items()] == ["CoolColor"]
    icon = toolbar.findItem("CoolColor").icon()
    assert icon.endswith("coolcolor.png") and os.path.getsize(icon) > 0
    status = nuke.menu("Nuke").findItem("CoolColor/Daemon status")
    status.invoke()
    assert "coolcolor serve" in nuke.fake.messages[-1]


def test_the_node_is_a_group_with_a_source_and_a_reference_input_the_knobs_and_the_shared_recombination(nuke, plate):
    from coolcolor_protocol.recombine import nuke_expressions

    read = plain_read(nuke, plate)
    g = new_node(nuke, read)
    assert g.Class() == "Group" and g.input(0) is read and g.input(1) is None and g.maxInputs() == 2
    assert g.node("Source").Class() == "Input" and g.node("Reference").Class() == "Input"
    # the plate is input 0 (the main input, what a disabled node passes), the optional reference input 1; the
    # Node Graph labels the pipes with the Input nodes' names
    assert [nuke.fake.input_label(g, i) for i in range(2)] == ["Source", "Reference"]
    for name in ("prompt", "negative_prompt", "use_input_range", "first", "last", "handles", "keyframes",
                 "add_keyframe", "remove_keyframe", "reference_frame", "set_reference_frame", "reference_exemplar",
                 "seed", "steps", "guidance", "encoding", "colorize", "preview", "cancel", "check_daemon", "status", "unknown_words", "mix", "model_hash", "frames_seed",
                 "frames_keyframes", "job_id"):
        assert g.knob(name) is not None, name
    assert g["prompt"].Class() == "Multiline_Eval_String_Knob"
    assert g["add_keyframe"].label() == "+ current frame" and g["remove_keyframe"].label() == "\u2212 current frame"
    assert not g["job_id"].visible()
    assert g["encoding"].values()[:4] == ["from input", "srgb", "rec709", "linear"]
    merge = g.node("Recombine")
    assert merge.Class() == "MergeExpression"
    for name, value in nuke_expressions("linear").knobs().items():
        knob = merge[name]
        assert (knob.getText() if hasattr(knob, "getText") else knob.value()) == value, name
    assert merge.input(0) is g.node("Source") and merge.input(1) is g.node("ReadAB")
    assert g.node("ColorizedOrPlate").input(1) is g.node("CopyAB") and g.node("CopyAB").input(0) is g.node("KeepPlate")
    assert g.node("ReadAB")["raw"].value() is True
    assert "ab" in nuke.layers() and nuke.Layer("ab").channels() == ["ab.a_star", "ab.b_star"]
    # before any colorization the output is the plate, unchanged
    out = nuke.fake.render(g, 12)
    src = nuke.fake.render(read, 12)
    for c in ("rgba.red", "rgba.green", "rgba.blue"):
        assert (out[c] == src[c]).all()


def test_ocio_colorspaces_are_offered_when_the_script_has_an_ocio_config(nuke, tmp_path):
    config = tmp_path / "config.ocio"
    config.write_text("ocio_profile_version: 2\ncolorspaces:\n  - !<ColorSpace>\n    name: ACEScg\n"
                      "  - !<ColorSpace>\n    name: Output - sRGB\n")
    nuke.root()["colorManagement"].setValue("OCIO")
    nuke.root()["OCIO_config"].setValue("custom")
    nuke.root()["customOCIOConfigPath"].setValue(str(config))
    g = new_node(nuke)
    assert g["encoding"].values()[4:] == ["ACEScg", "Output - sRGB"]


def test_prompt_with_tcl_syntax_is_sent_verbatim_and_never_evaluated(nuke, plate):
    from coolcolor_nuke import node

    g = new_node(nuke, plain_read(nuke, plate))
    prompt = "a red tram [exit] under $env(HOME) sky\nsecond line"
    g["prompt"].setValue(prompt)
    g["negative_prompt"].setValue("[value name] $frame")
    jobs, kind = node.plan(g, preview=False)
    assert jobs[0].spec["prompt"] == prompt
    assert jobs[0].spec["negative_prompt"] == "[value name] $frame"
    assert not nuke.fake.exited  # a value() would have "quit Nuke"


def test_keyframe_buttons_keep_a_sorted_list_shown_on_the_label(nuke, plate):
    g = new_node(nuke, plain_read(nuke, plate))
    for f in (14, 11, 14, 13):
        nuke.frame(f)
        nuke.fake.press(g, "add_keyframe")
    assert g["keyframes"].getText() == "11, 13, 14"
    assert "11, 13, 14" in g["label"].getText()
    nuke.frame(13)
    nuke.fake.press(g, "remove_keyframe")
    assert g["keyframes"].getText() == "11, 14" and "11, 14" in g["label"].getText()


def test_a_plain_read_sends_its_pattern_range_and_colorspace(nuke, plate):
    from coolcolor_nuke import node

    read = plain_read(nuke, plate)
    g = new_node(nuke, read)
    g["keyframes"].setValue("12")
    g["seed"].setValue(7)
    jobs, _ = node.plan(g, preview=False)
    spec = jobs[0].spec
    assert spec["source"] == plate and (spec["first"], spec["last"]) == (11, 15)
    assert spec["encoding"] == "srgb" and spec["keyframes"] == [12] and spec["seed"] == 7
    read["colorspace"].setValue("rec709")
    assert node.plan(g, preview=False)[0][0].spec["encoding"] == "rec709"
    assert nuke.fake.executed == []  # nothing rendered for a plain Read
    g["use_input_range"].setValue(False)
    g["first"].setValue(13)
    g["last"].setValue(13)
    g["handles"].setValue(1)
    spec = node.plan(g, preview=False)[0][0].spec
    assert (spec["first"], spec["last"]) == (12, 14)
    preview_jobs, kind = node.plan(g, preview=True)
    assert kind == "preview" and [(j.spec["first"], j.spec["last"], j.spec["keyframes"]) for j in preview_jobs] == [
        (12, 12, [12])]


def test_the_idempotency_key_names_the_whole_request_so_a_changed_output_folder_is_a_new_job(nuke, plate):
    """The daemon answers a reused key with a different job by 409 (SPEC §5.2): two nodes with the same settings
    write to different folders, so they must not share a key; an unchanged node keeps its key (a duplicate)."""
    from coolcolor_nuke import node

    from coolcolor_protocol.identity import request_hash

    read = plain_read(nuke, plate)
    first, second = new_node(nuke, read), new_node(nuke, read)
    one, two = node.plan(first, preview=False)[0][0], node.plan(second, preview=False)[0][0]
    assert {k: v for k, v in one.spec.items() if k != "output_dir"} == {k: v for k, v in two.spec.items()
                                                                         if k != "output_dir"}
    assert one.spec["output_dir"] != two.spec["output_dir"] and one.key != two.key
    assert node.plan(first, preview=False)[0][0].key == one.key
    first["output_dir"].setValue(os.path.join(os.path.dirname(plate), "elsewhere"))
    moved = node.plan(first, preview=False)[0][0]
    assert moved.spec["output_dir"] != one.spec["output_dir"] and moved.key != one.key
    assert moved.key == "nuke-" + request_hash(moved.spec)[:40]  # the request as the daemon hashes it


def test_a_modified_input_is_rendered_once_through_an_internal_write_keyed_by_the_upstream(nuke, plate, tmp_path):
    from coolcolor_nuke import node

    read = plain_read(nuke, plate)
    grade = nuke.nodes.Grade(white=0.5, inputs=[read])
    g = new_node(nuke, grade)
    spec = node.plan(g, preview=False)[0][0].spec
    assert spec["source"].startswith(str(tmp_path / "cache")) and spec["source"].endswith(".%04d.exr")
    assert spec["encoding"] == "linear"
    assert sorted(f for _, f in nuke.fake.executed) == [11, 12, 13, 14, 15]
    assert all(os.path.exists(spec["source"].replace("%04d", f"{f:04d}")) for f in range(11, 16))
    node.plan(g, preview=False)
    assert len(nuke.fake.executed) == 5  # unchanged upstream: not rendered again
    grade["white"].setValue(0.6)
    spec2 = node.plan(g, preview=False)[0][0].spec
    assert spec2["source"] != spec["source"] and len(nuke.fake.executed) == 10


@pytest.mark.parametrize("case, expected", [
    ("no input", "no input: connect"),
    ("empty read", "has no frames"),
    ("keyframe outside", "keyframe(s) 40 outside the frame range 11-15"),
    ("long prompt", "job.prompt"),
    ("unwritable output", "cannot be written"),
    ("preview without keyframes", "needs a keyframe"),
])
def test_bad_input_gets_a_status_line_and_a_message_and_keeps_delivered_frames(nuke, plate, case, expected):
    g = new_node(nuke, plain_read(nuke, plate))
    g["delivered"].setValue("11-13")  # frames an earlier job delivered
    button = "colorize"
    if case == "no input":
        g.setInput(0, None)
    elif case == "empty read":
        g.setInput(0, nuke.nodes.Read())
    elif case == "keyframe outside":
        g["keyframes"].setValue("12, 40")
    elif case == "long prompt":
        g["prompt"].setValue("red " * 600)
    elif case == "unwritable output":
        g["output_dir"].setValue("/etc/hostname/coolcolor")
    elif case == "preview without keyframes":
        button = "preview"
    nuke.fake.press(g, button)
    status = g["status"].value()
    assert status.startswith("error: ") and expected in status, status
    assert "\n" not in status and "Traceback" not in status
    assert expected in nuke.fake.messages[-1]
    assert g["delivered"].value() == "11-13"


def test_daemon_not_running_says_how_to_start_it(nuke, plate):
    g = new_node(nuke, plain_read(nuke, plate))
    nuke.fake.press(g, "colorize")
    nuke.fake.run_main_loop(lambda: g["status"].value().startswith("error"), timeout=120)
    assert "daemon is not running" in g["status"].value() and "coolcolor serve" in g["status"].value()
    assert "coolcolor serve" in nuke.fake.messages[-1]
    nuke.fake.press(g, "check_daemon")
    assert "coolcolor serve" in g["status"].value()
    assert nuke.fake.main_thread_violations == 0


def test_plugin_is_python39_syntax_and_imports_only_stdlib_pyzmq_and_the_protocol():
    allowed = {"nuke", "zmq", "coolcolor_protocol", "coolcolor_nuke", "__future__"} | set(sys.stdlib_module_names)
    for path in sorted(PLUGIN_DIR.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path), feature_version=(3, 9))
        for n in ast.walk(tree):
            names = [a.name for a in n.names] if isinstance(n, ast.Import) else (
                [n.module or ""] if isinstance(n, ast.ImportFrom) and n.level == 0 else [])
            for name in names:
                assert name.split(".")[0] in allowed, f"{path.name} imports {name}"


def test_mypy_against_types_nuke_has_no_errors():
    env = dict(os.environ)
    env.pop("MYPYPATH", None)
    proc = subprocess.run([sys.executable, "-m", "mypy", "--config-file", str(PLUGIN_DIR / "mypy.ini"),
                           "--no-incremental", "--cache-dir", os.devnull, str(PLUGIN_DIR)], cwd=str(ROOT),
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Success: no issues found" in proc.stdout


def test_unknown_prompt_words_and_provenance_reported_by_the_daemon_reach_the_node(nuke, plate):
    from coolcolor_nuke import node

    g = new_node(nuke, plain_read(nuke, plate))
    reply = {"job_id": "j1", "state": "queued", "first": 11, "last": 15, "unknown_words": ["tramcar", "zeppelin"],
             "output": {"dir": "/out", "pattern": "/out/ab.%04d.exr", "first": 11, "last": 15}}
    node._on_submitted(g.fullName(), "j1", reply, {"seed": 3, "keyframes": [11, 12, 13]}, 0, 1, "01e84cc1abcdef")
    assert g["unknown_words"].value() == "tramcar, zeppelin"
    assert g.node("ReadAB")["file"].value() == "/out/ab.%04d.exr"
    assert (g["model_hash"].value(), g["frames_seed"].value(), g["frames_keyframes"].value()) == (
        "01e84cc1abcdef", "3", "11-13")
    assert g["job_state"].value() == "queued" and "not yet colorized show the plate" in g["status"].value()
    node._on_frame(g.fullName(), 12, "/out/ab.0012.exr")
    which = g.node("ColorizedOrPlate")["which"]
    assert [which.getValueAt(f) for f in range(11, 16)] == [0, 1, 0, 0, 0]


def _write_exr(path: str, planes: dict) -> None:
    """A float EXR whose channels are named as given (``R``, ``A``, ``depth.Z``, ``ab.a_star``)."""
    import numpy as np
    import OpenImageIO as oiio

    names = list(planes)
    data = np.stack([np.asarray(planes[n], np.float32) for n in names], axis=-1)
    spec = oiio.ImageSpec(data.shape[1], data.shape[0], len(names), oiio.FLOAT)
    spec.channelnames = tuple(names)
    out = oiio.ImageOutput.create(path)
    assert out is not None and out.open(path, spec), oiio.geterror()
    out.write_image(data)
    out.close()


@pytest.mark.parametrize("unwritten", ["B", "black"])
@pytest.mark.parametrize("kind", ["opaque plate (auto_alpha)", "plate with alpha and an extra layer"])
def test_the_node_changes_only_rgb_and_adds_the_ab_layer(nuke, plate, tmp_path, kind, unwritten):
    """A compositor's expectation: alpha and every other layer of the plate leave the node exactly as they came
    in, on colorized frames and on frames that show the plate; rgb is the recombination; the ab layer is added.
    ``unwritten``: the fake's choice for MergeExpression channels no expression writes (undocumented), so the
    node is shown not to depend on it."""
    import numpy as np

    from coolcolor_nuke import node
    from coolcolor_protocol.recombine import nuke_expressions
    from hostexpr import eval_nuke_merge

    nuke.fake.merge_expression_unwritten = unwritten
    size, first, last = 16, 11, 15
    rng = np.random.default_rng(5)
    if kind.startswith("opaque"):
        read = plain_read(nuke, plate, first, last)
        read["auto_alpha"].setValue(True)
    else:
        folder = tmp_path / "layered"
        folder.mkdir()
        for f in range(first, last + 1):
            gray = rng.uniform(0.05, 0.9, (size, size))
            _write_exr(str(folder / f"plate.{f:04d}.exr"), {
                "R": gray, "G": gray, "B": gray, "A": rng.uniform(0, 1, (size, size)),
                "depth.Z": rng.uniform(1, 100, (size, size))})
        read = plain_read(nuke, str(folder / "plate.%04d.exr"), first, last)
    ab_dir = tmp_path / "ab"
    ab_dir.mkdir()
    colorized = (12, 14)
    for f in colorized:
        _write_exr(str(ab_dir / f"ab.{f:04d}.exr"), {"ab.a_star": rng.uniform(-40, 40, (size, size)),
                                                      "ab.b_star": rng.uniform(-40, 40, (size, size))})
    g = new_node(nuke, read)
    reply = {"job_id": "j1", "state": "running", "first": first, "last": last,
             "output": {"dir": str(ab_dir), "pattern": str(ab_dir / "ab.%04d.exr"), "first": first, "last": last}}
    node._on_submitted(g.fullName(), "j1", reply, {"seed": 0, "keyframes": [12]}, 0, 1, "")
    for f in colorized:
        node._on_frame(g.fullName(), f, str(ab_dir / f"ab.{f:04d}.exr"))
    merge = g.node("Recombine")
    knobs = {k: (merge[k].getText() if hasattr(merge[k], "getText") else str(merge[k].value()))
             for k in merge.knobs() if k.startswith(("temp_name", "temp_expr", "expr", "channel"))}
    assert knobs == {**{k: knobs[k] for k in knobs if k not in nuke_expressions("linear").knobs()},
                     **nuke_expressions("linear").knobs()}
    rgb = ("rgba.red", "rgba.green", "rgba.blue")
    for f in range(first, last + 1):
        plate_image = nuke.fake.render(read, f)
        out = nuke.fake.render(g, f)
        others = sorted(c for c in plate_image if c not in rgb)
        assert "rgba.alpha" in others and (kind.startswith("opaque") or "depth.Z" in others), others
        if kind.startswith("opaque"):
            assert (plate_image["rgba.alpha"] == 1).all()
        for c in others:  # alpha first, then any other layer: exactly as it came in
            np.testing.assert_array_equal(out[c], plate_image[c], err_msg=f"frame {f}: {c}")
        if f in colorized:
            ab = nuke.fake.render(g.node("ReadAB"), f)
            for c in ("ab.a_star", "ab.b_star"):
                np.testing.assert_array_equal(out[c], ab[c])
            short = lambda ch: {(k.split(".")[1][0] if k.startswith("rgba.") else k): v  # noqa: E731
                                for k, v in ch.items()}
            expected = eval_nuke_merge(knobs, short(plate_image), short(ab))
            for c in rgb:
                np.testing.assert_allclose(out[c], expected[c], atol=1e-6)
            assert not np.allclose(out["rgba.red"], plate_image["rgba.red"])  # colour arrived
            assert set(out) == set(plate_image) | {"ab.a_star", "ab.b_star"}
        else:
            for c in rgb:  # a frame not colorized: the plate itself
                np.testing.assert_array_equal(out[c], plate_image[c])
            assert set(out) == set(plate_image)


def test_upstream_key_without_op_hashes_follows_the_upstream_knobs(nuke, plate, monkeypatch):
    from coolcolor_nuke import node

    def no_op_hashes(self):
        raise AttributeError("opHashes")

    monkeypatch.setattr(type(nuke.nodes.NoOp()), "opHashes", no_op_hashes)
    read = plain_read(nuke, plate)
    grade = nuke.nodes.Grade(white=0.5, inputs=[read])
    first = node.upstream_hash(grade)
    assert node.upstream_hash(grade) == first
    grade["white"].setValue(0.7)
    assert node.upstream_hash(grade) != first
    grade["white"].setValue(0.5)
    read["first"].setValue(12)
    assert node.upstream_hash(grade) != first


def test_installed_plugin_starts_in_nuke_and_uninstall_restores_the_users_files(nuke, tmp_path, monkeypatch):
    """`coolcolor plugins install nuke` into a temporary ~/.nuke, then Nuke's start-up order (DEVGUIDE "Installing
    plug-ins": ~/.nuke/init.py, each plug-in path's init.py, then menu.py files in interactive sessions) run with the
    installed copy of the plugin, not this checkout's."""
    from coolcolor.cli import main

    dot_nuke = tmp_path / "dot_nuke"
    dot_nuke.mkdir()
    (dot_nuke / "init.py").write_bytes(b"# studio init\n")
    (dot_nuke / "menu.py").write_bytes(b"# studio menu\r\n")
    assert main(["plugins", "install", "nuke", "--target", str(dot_nuke)]) == 0
    installed = dot_nuke / "coolcolor"
    assert (installed / "coolcolor_nuke" / "node.py").is_file() and (installed / "icons" / "coolcolor.png").is_file()
    assert not (installed / "README_SECTION.md").exists() and not (installed / "mypy.ini").exists()
    saved_modules = {k: v for k, v in sys.modules.items() if k == "coolcolor_nuke" or k.startswith("coolcolor_nuke.")}
    for k in saved_modules:
        monkeypatch.delitem(sys.modules, k)
    monkeypatch.setattr(sys, "path", list(sys.path))
    sys.path[:] = [p for p in sys.path if Path(p).resolve() != PLUGIN_DIR.resolve()]
    try:
        for script in (dot_nuke / "init.py", installed / "init.py", installed / "menu.py", dot_nuke / "menu.py"):
            exec(compile(script.read_text(), str(script), "exec"), {"__file__": str(script)})
        assert nuke.pluginPath()[0] == str(installed)
        import coolcolor_nuke

        assert Path(coolcolor_nuke.__file__).resolve().is_relative_to(installed.resolve())
        item = nuke.menu("Nodes").findItem("CoolColor/CoolColor")
        assert Path(item.icon()).is_file() and Path(item.icon()).resolve().is_relative_to(installed.resolve())
        assert [i.name() for i in nuke.menu("Nodes").findItem("CoolColor").items()] == ["CoolColor"]
        item.invoke()
        assert [n for n in nuke.allNodes("Group") if n.knob("coolcolor_node")]
    finally:
        for k in [k for k in sys.modules if k == "coolcolor_nuke" or k.startswith("coolcolor_nuke.")]:
            del sys.modules[k]
        sys.modules.update(saved_modules)
    assert main(["plugins", "uninstall", "nuke", "--target", str(dot_nuke)]) == 0
    assert (dot_nuke / "init.py").read_bytes() == b"# studio init\n"
    assert (dot_nuke / "menu.py").read_bytes() == b"# studio menu\r\n"
    assert not installed.exists()
