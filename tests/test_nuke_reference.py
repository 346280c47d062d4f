"""The Nuke node's Reference input (issue 25 §4) against the fake ``nuke``, without a daemon: the input rendered at
the knob's frame and sent as the job's reference, exemplar mode, a disconnected input changing nothing, an
out-of-range frame refused in one line with nothing written, the reference's content in the job's identity, and
Preview keyframe with a reference. End to end through a real daemon: tests/test_nuke_e2e.py."""

from __future__ import annotations

import os

import numpy as np
import OpenImageIO as oiio
import pytest
from fakes.nuke.support import load_fake_nuke

FIRST, LAST, SIZE = 11, 15, 16
HALF = dict(rtol=2e-3, atol=2e-3)  # a half-float EXR: 11 significant bits


@pytest.fixture
def nuke(tmp_path, monkeypatch):
    monkeypatch.setenv("COOLCOLOR_NUKE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("COOLCOLOR_CONNECTION_FILE", str(tmp_path / "no-daemon" / "daemon.json"))
    return load_fake_nuke()


@pytest.fixture
def plate(tmp_path) -> str:
    from coolcolor.daemon.testing import write_gray_sequence

    return write_gray_sequence(str(tmp_path / "plate"), count=LAST - FIRST + 1, size=SIZE, first=FIRST)


def write_color(path: str, f: int, tint: tuple = (1.0, 0.55, 0.25), size: int = SIZE) -> None:
    """An 8-bit sRGB PNG whose colours differ from frame to frame (so the frame rendered can be told)."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    base = 0.2 + 0.6 * x * (f % 7 + 1) / 7
    rgb = np.clip(np.stack([base * t for t in tint], -1) + 0.05 * y[..., None], 0, 1)
    out = oiio.ImageOutput.create(path)
    assert out.open(path, oiio.ImageSpec(size, size, 3, "uint8"))
    out.write_image(np.ascontiguousarray(rgb, np.float32))
    out.close()


def color_sequence(folder, tint: tuple = (1.0, 0.55, 0.25)) -> str:
    os.makedirs(folder, exist_ok=True)
    for f in range(FIRST, LAST + 1):
        write_color(os.path.join(folder, f"graded.{f:04d}.png"), f, tint)
    return os.path.join(folder, "graded.%04d.png")


def read_node(nuke, pattern: str):
    return nuke.nodes.Read(file=pattern.replace("%04d", "####"), first=FIRST, last=LAST, origfirst=FIRST,
                           origlast=LAST)


def new_node(nuke, plate_node, reference_node=None):
    import coolcolor_nuke.menus

    coolcolor_nuke.menus.register()
    nuke.fake.select(plate_node)
    nuke.menu("Nodes").findItem("CoolColor/CoolColor").invoke()
    g = [n for n in nuke.allNodes("Group") if n.knob("coolcolor_node")][-1]
    if reference_node is not None:
        g.setInput(1, reference_node)
    return g


def pixels(path: str) -> np.ndarray:
    """A file's stored values (no conversion)."""
    return np.asarray(oiio.ImageBuf(path).get_pixels(oiio.FLOAT), np.float32)[:, :, :3]


def test_the_reference_input_is_rendered_at_the_knobs_frame_and_sent(nuke, plate, tmp_path):
    from coolcolor_nuke import node

    graded = color_sequence(tmp_path / "graded")
    reference = read_node(nuke, graded)
    g = new_node(nuke, read_node(nuke, plate), reference)
    g["reference_frame"].setValue(13)
    jobs, _ = node.plan(g, preview=False)
    spec = jobs[0].spec
    path = spec["references"][0]["path"]
    assert spec["references"] == [{"frame": 13, "path": path}]
    assert path.startswith(str(tmp_path / "cache")) and path.endswith("reference.0013.exr")
    assert nuke.fake.executed == [("CoolColor.ReferenceWrite", 13)]  # that frame, once; the plain-Read plate is not
    # The file holds the input's frame 13 in the plate file's encoding (this plate: 8-bit PNGs, sRGB), so the daemon
    # decodes reference and plate alike: here the graded PNG's own values.
    np.testing.assert_allclose(pixels(path), pixels(graded.replace("%04d", "0013")), **HALF)
    assert np.abs(pixels(path) - pixels(graded.replace("%04d", "0012"))).max() > 0.05  # not another frame
    # and read back the way Nuke reads the plate, it is what the Reference input shows at 13
    back = nuke.fake.render(nuke.nodes.Read(file=path, first=13, last=13, colorspace="sRGB"), 13)
    shown = nuke.fake.render(reference, 13)
    for c in ("rgba.red", "rgba.green", "rgba.blue"):
        np.testing.assert_allclose(back[c], shown[c], **HALF)


def test_a_rendered_plate_gets_a_linear_reference(nuke, plate, tmp_path):
    """A plate the node renders itself is sent linear (encoding linear): the reference is written linear too."""
    from coolcolor_nuke import node

    reference = read_node(nuke, color_sequence(tmp_path / "graded"))
    g = new_node(nuke, nuke.nodes.Grade(white=0.9, inputs=[read_node(nuke, plate)]), reference)
    g["reference_frame"].setValue(12)
    spec = node.plan(g, preview=False)[0][0].spec
    assert spec["encoding"] == "linear"
    np.testing.assert_allclose(pixels(spec["references"][0]["path"]),
                               np.stack([nuke.fake.render(reference, 12)[c] for c in ("rgba.red", "rgba.green",
                                                                                      "rgba.blue")], -1), **HALF)


def test_exemplar_mode_sends_frame_null_and_takes_the_still_at_any_frame(nuke, plate, tmp_path):
    from coolcolor_nuke import node

    still = str(tmp_path / "still.png")
    write_color(still, 3, (0.3, 0.6, 1.0), size=24)  # another size: an exemplar is not a frame of the plate
    g = new_node(nuke, read_node(nuke, plate), nuke.nodes.Read(file=still, first=1, last=1, origfirst=1, origlast=1))
    g["reference_exemplar"].setValue(True)
    g["reference_frame"].setValue(40)  # outside the plate's range: allowed for a still (the Read holds its frame)
    spec = node.plan(g, preview=False)[0][0].spec
    path = spec["references"][0]["path"]
    assert spec["references"] == [{"frame": None, "path": path}]
    np.testing.assert_allclose(pixels(path), pixels(still), **HALF)


def test_a_disconnected_reference_input_changes_nothing(nuke, plate, tmp_path):
    from coolcolor_nuke import node

    plain = new_node(nuke, read_node(nuke, plate))
    before = node.plan(plain, preview=False)[0][0]
    for exemplar in (False, True):
        plain["reference_frame"].setValue(40)  # even a frame that would be refused: the knobs are not read
        plain["reference_exemplar"].setValue(exemplar)
        after = node.plan(plain, preview=False)[0][0]
        assert after.spec == before.spec and after.key == before.key
    assert before.spec["references"] == [] and nuke.fake.executed == []
    assert not os.path.exists(tmp_path / "cache" / "references")


@pytest.mark.parametrize("button", ["colorize", "preview"])
def test_a_reference_frame_outside_the_range_is_refused_in_one_line_and_nothing_is_written(
        nuke, plate, tmp_path, button):
    reference = read_node(nuke, color_sequence(tmp_path / "graded"))
    # a plate the node would render (a Grade): the refusal comes before the plate's render too
    g = new_node(nuke, nuke.nodes.Grade(white=0.9, inputs=[read_node(nuke, plate)]), reference)
    g["delivered"].setValue("11-13")  # frames an earlier job delivered
    g["keyframes"].setValue("12")
    g["reference_frame"].setValue(40)
    runner_before = node_runner(g)  # a runner of an earlier test's node of the same name, or None
    nuke.fake.press(g, button)
    status = g["status"].value()
    assert status.startswith("error: reference frame 40 outside the frame range 11-15"), status
    assert "\n" not in status and "Traceback" not in status
    assert "reference frame 40" in nuke.fake.messages[-1]
    assert nuke.fake.executed == [] and not os.path.exists(tmp_path / "cache")
    assert g["delivered"].value() == "11-13" and node_runner(g) is runner_before  # nothing submitted


def test_a_reference_input_that_cannot_render_is_named_in_one_line(nuke, plate, tmp_path):
    missing = read_node(nuke, str(tmp_path / "nowhere" / "graded.%04d.png"))  # on_error "error" (the default)
    g = new_node(nuke, read_node(nuke, plate), missing)
    g["reference_frame"].setValue(12)
    runner_before = node_runner(g)
    nuke.fake.press(g, "colorize")
    status = g["status"].value()
    assert status.startswith("error: could not render the Reference input to "), status
    assert "No such file" in status and "\n" not in status
    assert node_runner(g) is runner_before  # nothing submitted


def node_runner(g):
    from coolcolor_nuke import node

    return node.runner_for(g)


def test_the_references_content_is_part_of_the_job(nuke, plate, tmp_path):
    """Another reference (another upstream, or the same Read whose file was re-graded on disk) is another job:
    another key (the daemon answers a known key with that key's job) and another output folder."""
    from coolcolor_nuke import node

    graded = color_sequence(tmp_path / "graded")
    reference = read_node(nuke, graded)
    g = new_node(nuke, read_node(nuke, plate), reference)
    g["reference_frame"].setValue(13)
    first = node.plan(g, preview=False)[0][0]
    again = node.plan(g, preview=False)[0][0]
    assert (again.key, again.spec) == (first.key, first.spec)  # the same content: the same job, not rendered again
    assert nuke.fake.executed == [("CoolColor.ReferenceWrite", 13)]
    # another upstream: a Grade on the reference
    g.setInput(1, nuke.nodes.Grade(white=0.8, inputs=[reference]))
    graded_down = node.plan(g, preview=False)[0][0]
    assert graded_down.key != first.key and graded_down.spec["output_dir"] != first.spec["output_dir"]
    # the same Read, its file re-graded on disk (no knob changed, so the fake's op hash is the same): rendered
    # again, and the new content makes a new job
    g.setInput(1, reference)
    frame13 = graded.replace("%04d", "0013")
    write_color(frame13, 13, (0.2, 0.9, 0.4))
    stat = os.stat(frame13)
    os.utime(frame13, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    regraded = node.plan(g, preview=False)[0][0]
    assert regraded.key != first.key and regraded.spec["output_dir"] != first.spec["output_dir"]
    np.testing.assert_allclose(pixels(regraded.spec["references"][0]["path"]), pixels(frame13), **HALF)


def test_the_key_follows_the_references_bytes_not_only_its_path(nuke, plate, tmp_path):
    """The daemon answers a known key with that key's job: were the key made of the path alone, a render folder
    rewritten under the node (another session sharing the cache) would bring back a result for other colours."""
    from coolcolor_nuke import node

    g = new_node(nuke, read_node(nuke, plate), read_node(nuke, color_sequence(tmp_path / "graded")))
    g["reference_frame"].setValue(13)
    first = node.plan(g, preview=False)[0][0]
    path = first.spec["references"][0]["path"]
    write_color(path, 13, (0.2, 0.9, 0.4))  # other bytes at the same path (the render's cache marker stays)
    second = node.plan(g, preview=False)[0][0]
    assert second.spec["references"] == first.spec["references"] and nuke.fake.executed == [
        ("CoolColor.ReferenceWrite", 13)]
    assert second.key != first.key and second.spec["output_dir"] != first.spec["output_dir"]


def test_preview_with_a_graded_frame_previews_that_frame_and_with_an_exemplar_each_keyframe(nuke, plate, tmp_path):
    from coolcolor_nuke import node

    g = new_node(nuke, read_node(nuke, plate), read_node(nuke, color_sequence(tmp_path / "graded")))
    g["reference_frame"].setValue(14)
    jobs, kind = node.plan(g, preview=True)  # no keyframe needed: the graded frame is the shot's keyframe
    assert kind == "preview" and len(jobs) == 1
    spec = jobs[0].spec
    assert (spec["first"], spec["last"], spec["keyframes"]) == (14, 14, [14])
    assert [r["frame"] for r in spec["references"]] == [14]
    g["reference_exemplar"].setValue(True)
    g["keyframes"].setValue("12, 13")
    jobs, _ = node.plan(g, preview=True)
    assert [(j.spec["first"], [r["frame"] for r in j.spec["references"]]) for j in jobs] == [(12, [None]),
                                                                                          (13, [None])]


def test_set_to_current_frame_and_a_node_made_before_the_reference_input(nuke, plate, tmp_path):
    from coolcolor_nuke import node

    g = new_node(nuke, read_node(nuke, plate), read_node(nuke, color_sequence(tmp_path / "graded")))
    nuke.frame(12)
    nuke.fake.press(g, "set_reference_frame")
    assert g["reference_frame"].value() == 12
    assert node.plan(g, preview=False)[0][0].spec["references"][0]["frame"] == 12
    # A node saved by the plugin before references (no Reference input, no knobs) still plans, without one.
    g.removeKnob(g["reference_frame"])
    assert node.plan(g, preview=False)[0][0].spec["references"] == []


def test_a_daemon_that_does_not_advertise_references_is_not_sent_one(nuke, plate, tmp_path, monkeypatch):
    """SPEC §10 (1.1, references): a client may send references only to a daemon whose hello_reply.limits has
    max_references; an older daemon would keep the field as unknown and colorize without the reference."""
    from coolcolor_nuke import runner as runner_module

    submitted = []

    class OlderDaemon:  # the client side of a 1.1 daemon from before references: its hello, nothing else used
        def __init__(self, *args, **kwargs):
            self.daemon_session = "s"

        def hello(self, timeout=None):
            return {"server": {"version": "0.9"}, "model": {"state": "ready", "hash": "ab" * 8},
                    "limits": {"max_keyframes": 64}}

        def submit(self, spec, key=None):
            submitted.append(spec)
            raise AssertionError("submitted to a daemon that cannot take references")

        def close(self):
            pass

    monkeypatch.setattr(runner_module, "Client", OlderDaemon)
    g = new_node(nuke, read_node(nuke, plate), read_node(nuke, color_sequence(tmp_path / "graded")))
    g["reference_frame"].setValue(13)
    nuke.fake.press(g, "colorize")
    nuke.fake.run_main_loop(lambda: g["status"].value().startswith(("error", "done")), timeout=60)
    assert g["status"].value() == f"error: {runner_module.REFERENCES_UNSUPPORTED}" and submitted == []
