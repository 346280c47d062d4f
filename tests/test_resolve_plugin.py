"""The Resolve plugin against the fake Resolve (no daemon): the documented API quirks the fake encodes, frame
conversion on trimmed clips, selection by version, keyframe markers, the dialog's messages for bad input, and
mypy against fusionscript-stubs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from fakes.resolve import DeadHandle, FakeResolve
from fakes.resolve import harness as h

sys.path.insert(0, str(h.PLUGIN_DIR))
from coolcolor_resolve import host  # noqa: E402
from coolcolor_resolve.jobs import ClipJob, Reference, Settings, build_spec, submit_key  # noqa: E402

TAG = json.dumps({"app": host.KEYFRAME_TAG, "v": 1})


@pytest.fixture(autouse=True)
def no_daemon(tmp_path, monkeypatch):
    monkeypatch.setenv("COOLCOLOR_CONNECTION_FILE", str(tmp_path / "no-daemon.json"))
    monkeypatch.setenv("COOLCOLOR_RESOLVE_OUTPUT", str(tmp_path / "out"))
    monkeypatch.setenv("COOLCOLOR_RESOLVE_PREFS", str(tmp_path / "prefs.json"))


def media(tmp_path: Path, first: int = 1001, count: int = 10, name: str = "plate") -> str:
    return h.gray_sequence(tmp_path / f"media-{name}", first, count, name=name)


def one_clip(tmp_path, *, version=(21, 0, 4, 5), studio=True, left=2, duration=6, count=10, **props):
    app = FakeResolve(version=version, studio=studio)
    tl = app.new_timeline()
    pattern = media(tmp_path, count=count)
    mpi = h.sequence_clip(app, pattern, 1001, count, **props)
    item = h.place(tl, mpi, frames=count, left=left, duration=duration)
    tl.select(item)
    tl.playhead = item.GetStart()
    return app, tl, item


def dialog_messages(app, actions=("Colorize",)) -> tuple[str, object]:
    seen: dict = {}

    def driver(disp):
        for a in actions:
            disp.click(a)
        seen["status"] = h.status_text(disp)
        seen["clips"] = disp.item("Clips").Text if disp.window and "Clips" in disp.window.GetItems() else ""
        disp.click("Close")

    h.run_script(app, driver)
    assert app.thread_violations == []
    return seen["status"], seen.get("clips")


# ---------------------------------------------------------------- the fake follows the documents
def test_fake_encodes_the_documented_quirks(tmp_path):
    old, new = FakeResolve(version=(20, 3, 0, 9)), FakeResolve(version=(21, 0, 4, 5))
    t_old, t_new = old.new_timeline(), new.new_timeline()
    # hasattr is always True; dir() tells the truth; GetSelectedClips only from 21.0.4
    assert hasattr(t_old, "GetSelectedClips") and hasattr(t_old, "TotallyMadeUp")
    assert t_old.TotallyMadeUp() is None and t_old.GetSelectedClips() is None
    assert "GetSelectedClips" not in dir(t_old) and "GetSelectedClips" in dir(t_new)
    assert not [n for n in dir(new) if n.startswith("MARKER_")]
    assert new.GetVersion()[:3] == [21, 0, 4] and new.GetVersionString() == "21.0.4.5"
    # GetStart absolute, GetEnd exclusive
    pattern = media(tmp_path, count=5)
    mpi = h.sequence_clip(new, pattern, 1001, 5)
    item = h.place(t_new, mpi, frames=5, left=1, duration=3)
    assert item.GetStart() == 86400 and item.GetEnd() - item.GetStart() == item.GetDuration() == 3
    # ImportMedia's dict form: one clip, in the current folder; an overlapping append: a dead handle
    pool = new.GetProjectManager().GetCurrentProject().GetMediaPool()
    sub = pool.AddSubFolder(pool.GetRootFolder(), "X")
    pool.SetCurrentFolder(sub)
    [clip] = pool.ImportMedia([{"FilePath": pattern, "StartIndex": 1001, "EndIndex": 1005}])
    assert sub.GetClipList() == [clip] and clip.GetClipProperty("File Path").endswith("plate.[1001-1005].png")
    [dead] = pool.AppendToTimeline([{"mediaPoolItem": clip, "startFrame": 0, "endFrame": 2, "mediaType": 1,
                                     "trackIndex": 1, "recordFrame": 86401}])
    assert isinstance(dead, DeadHandle) and dead and dead.GetStart() is None
    # markers: item-relative, colour strings, customData
    assert item.AddMarker(1.0, "Cyan", "k", "", 1.0, TAG) and not item.AddMarker(1.0, "Red", "k", "", 1.0, "")
    assert not item.AddMarker(2.0, "MARKER_CYAN", "k", "", 1.0, "")
    assert item.GetMarkers() == {1.0: {"color": "Cyan", "duration": 1.0, "note": "", "name": "k", "customData": TAG}}
    assert item.UpdateMarkerCustomData(1.0, "x") and item.GetMarkerCustomData(1.0) == "x"
    assert item.DeleteMarkerAtFrame(1.0) and item.GetMarkers() == {}


# ---------------------------------------------------------------- frames
# (media first number, media frames, left offset, duration, marker offset, expected source frame)
TRIMS = [
    (1001, 10, 0, 10, 0, 1001),  # untrimmed: the first file
    (1001, 10, 2, 6, 0, 1003),  # head trimmed by 2: offset 0 is the in-point
    (1001, 10, 2, 6, 5, 1008),  # last frame of the trimmed clip
    (1, 10, 4, 3, 1, 6),  # a sequence numbered from 1
    (86400, 30, 10, 12, 7, 86417),  # a sequence numbered by timecode
    (1001, 10, 0, 4, 3, 1004),  # tail trimmed only
]


@pytest.mark.parametrize("first,frames,left,duration,offset,expected", TRIMS)
def test_marker_frame_to_source_frame_on_trimmed_clips(tmp_path, first, frames, left, duration, offset, expected):
    app = FakeResolve()
    tl = app.new_timeline()
    pattern = h.gray_sequence(tmp_path / "m", first, frames, size=16)
    item = h.place(tl, h.sequence_clip(app, pattern, first, frames), frames=frames, left=left, duration=duration,
                   start=90000)
    assert item.AddMarker(float(offset), "Cyan", "kf", "", 1.0, TAG)
    clip = host.clip_source(item)
    assert clip.source % (first + 3) == pattern % (first + 3)  # the same files (padding read from the range)
    assert (clip.first, clip.last) == (first + left, first + left + duration - 1)
    [kf] = host.read_keyframes(item, clip)
    assert (kf.offset, kf.source_frame) == (offset, expected)
    # handles: as many as asked, as far as the media has them
    lo, hi = clip.used_range(3)
    assert lo == first + max(0, left - 3) and hi == first + min(frames - 1, left + duration - 1 + 3)


def test_movie_frames_are_zero_based(tmp_path):
    movie = tmp_path / "reel.mov"
    movie.write_bytes(b"not decoded here")
    app = FakeResolve()
    tl = app.new_timeline()
    mpi = app.media_item("reel", **{"File Path": str(movie), "Type": "Video + Audio", "Frames": 100, "FPS": "25"})
    item = h.place(tl, mpi, frames=100, left=40, duration=10)
    clip = host.clip_source(item)
    assert (clip.source, clip.first, clip.last, clip.fps) == (str(movie), 40, 49, 25.0)


@pytest.mark.parametrize("version,expected", [((20, 3, 0, 9), ["b"]), ((21, 0, 3, 7), ["b"]),
                                              ((21, 0, 4, 5), ["a", "b"]), ((21, 1, 0, 3), ["a", "b"])])
def test_selection_by_version(tmp_path, version, expected):
    app = FakeResolve(version=version)
    tl = app.new_timeline()
    pattern = media(tmp_path)
    a = h.place(tl, h.sequence_clip(app, pattern, 1001, 10, name="a"), frames=10, left=0, duration=4)
    b = h.place(tl, h.sequence_clip(app, pattern, 1001, 10, name="b"), frames=10, left=4, duration=4)
    tl.select(a, b)
    tl.playhead = b.GetStart() + 1  # the item under the playhead is b
    items = host.selected_items(app, tl)
    assert [i.GetName() for i in items] == expected


# ---------------------------------------------------------------- keyframes in the dialog
def test_dialog_lists_adds_and_removes_keyframe_markers(tmp_path):
    app, tl, item = one_clip(tmp_path)
    item.AddMarker(1.0, "Cyan", "CoolColor keyframe", "", 1.0, TAG)
    item.AddMarker(3.0, "Red", "other", "", 1.0, TAG)  # another colour: not a keyframe, even with our tag
    seen = {}

    def driver(disp):
        seen["listed"] = list(disp.item("Keyframes").items)
        tl.playhead = item.GetStart() + 4
        disp.click("AddKeyframe")
        seen["after_add"] = list(disp.item("Keyframes").items)
        disp.item("Keyframes").CurrentIndex = 0
        disp.click("RemoveKeyframe")
        seen["after_remove"] = list(disp.item("Keyframes").items)
        tl.playhead = item.GetEnd() + 10  # off the clip
        disp.click("AddKeyframe")
        seen["status"] = h.status_text(disp)
        disp.click("Close")

    h.run_script(app, driver)
    assert seen["listed"] == ["plate @ 1 (source 1004, clip marker 'CoolColor keyframe')"]
    assert seen["after_add"] == ["plate @ 1 (source 1004, clip marker 'CoolColor keyframe')",
                                 "plate @ 4 (source 1007, clip marker 'CoolColor keyframe')"]
    assert seen["after_remove"] == ["plate @ 4 (source 1007, clip marker 'CoolColor keyframe')"]
    assert "playhead is on none of the selected clips" in seen["status"]
    markers = item.GetMarkers()
    assert set(markers) == {3.0, 4.0}  # the other marker untouched
    assert markers[4.0]["color"] == "Cyan" and json.loads(markers[4.0]["customData"])["app"] == host.KEYFRAME_TAG
    assert app.thread_violations == []


def test_markers_placed_by_hand_count_as_keyframes_wherever_the_editor_put_them(tmp_path):
    """The editor's gesture: a marker of the keyframe colour on the clip (M on the selected clip), on the
    timeline ruler over the clip, or on the source clip in the media pool — no customData needed. Frames:
    clip markers are item-relative, timeline markers timeline-relative, media markers media-relative."""
    app, tl, item = one_clip(tmp_path, left=2, duration=6)  # media 1001-1010, cut 1003-1008 at 86400
    assert tl.GetStartFrame() == 86400 == item.GetStart()
    other = h.place(tl, h.sequence_clip(app, media(tmp_path, name="b"), 1001, 10, name="b"), frames=10, left=0,
                    duration=4)  # 86406-86409, not selected
    item.AddMarker(1.0, "Cyan", "hand", "", 1.0, "")  # clip offset 1 -> 1004
    item.AddMarker(2.0, "Green", "note", "", 1.0, "")  # another colour
    tl.AddMarker(3.0, "Cyan", "ruler", "", 1.0, "")  # timeline offset 3 = 86403 = clip offset 3 -> 1006
    tl.AddMarker(7.0, "Cyan", "over b", "", 1.0, "")  # over the other clip: not this one's
    item.GetMediaPoolItem().AddMarker(6.0, "Cyan", "source", "", 1.0, "")  # media offset 6 = 1007
    item.GetMediaPoolItem().AddMarker(0.0, "Cyan", "outside the cut", "", 1.0, "")  # 1001: not in 1003-1008
    clip = host.clip_source(item)
    keys = host.read_keyframes(item, clip, "Cyan", tl)
    assert [(k.source_frame, k.origin, k.name) for k in keys] == [
        (1004, "clip", "hand"), (1006, "timeline", "ruler"), (1007, "media", "source")]
    assert [k.source_frame for k in host.read_keyframes(other, host.clip_source(other), "Cyan", tl)] == [1002]
    assert [k.source_frame for k in host.read_keyframes(item, clip, "Green", tl)] == [1005]

    seen = {}

    def driver(disp):
        seen["listed"] = list(disp.item("Keyframes").items)
        seen["clips"] = disp.item("Clips").Text
        disp.item("Keyframes").CurrentIndex = 1  # the ruler marker
        disp.click("RemoveKeyframe")
        seen["after_remove"] = list(disp.item("Keyframes").items)
        disp.click("Colorize")  # no daemon here: the spec is what matters
        disp.click("Close")

    globs = h.run_script(app, driver)
    assert seen["listed"] == ["plate @ 1 (source 1004, clip marker 'hand')",
                              "plate @ 3 (source 1006, timeline marker 'ruler')",
                              "plate @ 4 (source 1007, media marker 'source')"]
    assert "keyframes from Cyan markers: source 1004 (clip marker 'hand'), source 1006 (timeline marker " \
           "'ruler'), source 1007 (media marker 'source')" in seen["clips"]
    assert seen["after_remove"] == ["plate @ 1 (source 1004, clip marker 'hand')",
                                    "plate @ 4 (source 1007, media marker 'source')"]
    assert set(tl.GetMarkers()) == {7.0}  # the ruler marker went, the other clip's stayed
    ctl = globs.get("COOLCOLOR_CONTROLLER") or h.controller()
    spec = build_spec(ctl.clips[item.GetUniqueId()], Settings(prompt="a"),
                      [k.source_frame for k in ctl.clips[item.GetUniqueId()].keyframes])
    assert spec.keyframes == [1004, 1007]
    assert app.thread_violations == []


def test_the_keyframe_colour_is_a_setting_remembered_per_project(tmp_path):
    app, tl, item = one_clip(tmp_path)
    item.AddMarker(1.0, "Cyan", "c", "", 1.0, "")
    item.AddMarker(2.0, "Yellow", "y", "", 1.0, "")
    seen = {}

    def pick_yellow(disp):
        seen["default"] = (disp.item("KeyColor").CurrentText, list(disp.item("Keyframes").items))
        disp.choose("KeyColor", "Yellow")
        seen["yellow"] = list(disp.item("Keyframes").items)
        seen["status"] = h.status_text(disp)
        tl.playhead = item.GetStart() + 5
        disp.click("AddKeyframe")  # the button marks in the chosen colour
        disp.click("Close")

    h.run_script(app, pick_yellow)
    assert seen["default"] == ("Cyan", ["plate @ 1 (source 1004, clip marker 'c')"])
    assert seen["yellow"] == ["plate @ 2 (source 1005, clip marker 'y')"]
    assert "keyframes are now the Yellow markers: 1 found" in seen["status"]
    assert item.GetMarkers()[5.0]["color"] == "Yellow"

    def look(disp):
        seen["again"] = (disp.item("KeyColor").CurrentText, list(disp.item("Keyframes").items))
        disp.click("Close")

    h.run_script(app, look)  # the script run again on the same project: Yellow is remembered
    assert seen["again"] == ("Yellow", ["plate @ 2 (source 1005, clip marker 'y')",
                                        "plate @ 5 (source 1008, clip marker 'CoolColor keyframe')"])
    other, tl2, item2 = one_clip(tmp_path / "other")  # another project: the default
    item2.AddMarker(1.0, "Cyan", "c", "", 1.0, "")
    h.run_script(other, look)
    assert seen["again"] == ("Cyan", ["plate @ 1 (source 1004, clip marker 'c')"])
    assert other.GetProjectManager().GetCurrentProject().GetUniqueId() != \
        app.GetProjectManager().GetCurrentProject().GetUniqueId()


def test_an_unreadable_or_unwritable_colour_setting_is_a_message_not_a_failure(tmp_path, monkeypatch):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the settings folder would be")
    monkeypatch.setenv("COOLCOLOR_RESOLVE_PREFS", str(blocker / "prefs.json"))
    app, tl, item = one_clip(tmp_path)
    item.AddMarker(2.0, "Mint", "m", "", 1.0, "")
    seen = {}

    def driver(disp):
        disp.choose("KeyColor", "Mint")
        seen["listed"] = list(disp.item("Keyframes").items)
        seen["status"] = h.status_text(disp)
        disp.click("Close")

    h.run_script(app, driver)
    assert seen["listed"] == ["plate @ 2 (source 1005, clip marker 'm')"]  # the choice works for this run
    assert f"keyframe colour Mint not remembered ({blocker / 'prefs.json'}:" in seen["status"]
    assert "internal error" not in seen["status"]
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    monkeypatch.setenv("COOLCOLOR_RESOLVE_PREFS", str(broken))
    h.run_script(app, lambda disp: (seen.update(color=disp.item("KeyColor").CurrentText), disp.click("Close")))
    assert seen["color"] == "Cyan"  # an unreadable file: the default


# ---------------------------------------------------------------- bad input: a message, nothing lost
def test_nothing_selected(tmp_path):
    app, tl, item = one_clip(tmp_path)
    tl.select()
    tl.playhead = item.GetEnd() + 5
    status, _ = dialog_messages(app, actions=())
    assert status.startswith("nothing selected")


@pytest.mark.parametrize("kind,reason", [("Compound", "a compound clip cannot be colorized"),
                                         ("Multicam", "a multicam clip cannot be colorized"),
                                         ("Still", "a still image cannot be colorized"),
                                         ("Audio", "an audio clip cannot be colorized")])
def test_compound_multicam_and_non_video_clips_are_refused_with_the_reason(tmp_path, kind, reason):
    app, tl, item = one_clip(tmp_path, Type=kind)
    status, clips = dialog_messages(app)
    assert reason in clips and reason in status
    assert "no clip to colorize" in status


def test_offline_media(tmp_path):
    app, tl, item = one_clip(tmp_path)
    item.GetMediaPoolItem()._props["File Path"] = str(tmp_path / "gone" / "plate.[1001-1010].png")
    status, _ = dialog_messages(app)
    assert "media offline" in status and "gone/plate.1001.png does not exist" in status


def test_retimed_clip_is_refused_with_the_reason(tmp_path):
    app = FakeResolve()
    tl = app.new_timeline()
    pattern = media(tmp_path)
    h.place(tl, h.sequence_clip(app, pattern, 1001, 10), frames=10, left=0, duration=4, source_span=8)
    tl.select(*tl.GetItemListInTrack("video", 1))
    status, _ = dialog_messages(app)
    assert "retimed clip (8 source frames over 4 record frames)" in status


def test_resized_clip_is_refused_with_the_reason(tmp_path):
    app, tl, item = one_clip(tmp_path)
    item.SetProperty("ZoomX", 1.5)
    status, _ = dialog_messages(app)
    assert "transformed in the Inspector (ZoomX)" in status


@pytest.mark.parametrize("version,studio,refused", [((21, 1, 0, 3), False, True), ((21, 0, 4, 5), False, False),
                                                    ((21, 1, 0, 3), True, False)])
def test_free_edition_from_21_1_says_so(tmp_path, version, studio, refused):
    app, tl, item = one_clip(tmp_path, version=version, studio=studio)
    status, _ = dialog_messages(app, actions=())
    assert ("needs DaVinci Resolve Studio" in status) == refused


def test_keyframe_outside_the_used_range(tmp_path):
    app, tl, item = one_clip(tmp_path)
    # a marker left beyond the end after the clip was trimmed shorter (Resolve keeps item markers [U])
    item._markers[9.0] = {"color": "Cyan", "duration": 1.0, "note": "", "name": "kf", "customData": TAG}
    status, _ = dialog_messages(app)
    assert "keyframe(s) 1012 outside the frame range 1003-1008; move or remove those markers" in status
    assert 9.0 in item.GetMarkers()


def test_no_daemon(tmp_path):
    app, tl, item = one_clip(tmp_path)
    comp = item.AddFusionComp()
    status, _ = dialog_messages(app)
    assert status.startswith("no CoolColor daemon") and "coolcolor serve" in status
    assert item.GetFusionCompByIndex(1) is comp and item.GetFusionCompCount() == 1  # nothing lost
    assert app.GetProjectManager().GetCurrentProject().GetMediaPool().GetRootFolder().GetSubFolderList() == []


def test_build_spec_and_key(tmp_path):
    app, tl, item = one_clip(tmp_path)
    clip = host.clip_source(item)
    spec = build_spec(clip, Settings(prompt="a", handles=5, result="plate"), [1004])
    assert (spec.first, spec.last, spec.keyframes, spec.rgb_plate, spec.resolve_sidecar) == (1001, 1010, [1004],
                                                                                           True, False)
    again = build_spec(clip, Settings(prompt="a", handles=5, result="plate"), [1004])
    assert submit_key(again) == submit_key(spec) and again.output_dir == spec.output_dir  # unchanged → same job
    other = build_spec(clip, Settings(prompt="b", handles=5, result="plate"), [1004])
    assert submit_key(other) != submit_key(spec) and other.output_dir != spec.output_dir
    preview = build_spec(clip, Settings(prompt="a"), [1004], preview_frame=1004)
    assert (preview.first, preview.last, preview.keyframes, preview.preview) == (1004, 1004, [1004], True)
    job = ClipJob(clip, spec, submit_key(spec), "colorize", state="queued", queue_position=2)
    assert job.line() == "plate: queued (position 2)"
    job.state, job.frames_done, job.frames_total, job.eta_s = "running", 3, 10, 12.4
    assert job.line() == "plate: 3/10 frames, ETA 12 s"


# ---------------------------------------------------------------- typing
def test_mypy_against_fusionscript_stubs():
    pytest.importorskip("mypy")
    env = dict(os.environ, MYPYPATH=os.pathsep.join([str(h.ROOT / "protocol"), "."]))
    proc = subprocess.run([sys.executable, "-m", "mypy", "--no-incremental", "--cache-dir", os.devnull,
                           "--config-file", "mypy.ini", "coolcolor_resolve", "CoolColor Colorize.py"],
                          cwd=h.PLUGIN_DIR, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Success: no issues found in 8 source files" in proc.stdout


@pytest.mark.parametrize("shown", ["plate.%04d.png", "plate.####.png", "plate.[1001-1010].png"])
def test_sequence_file_path_forms(tmp_path, shown):
    app = FakeResolve()
    tl = app.new_timeline()
    pattern = media(tmp_path)
    mpi = h.sequence_clip(app, pattern, 1001, 10, **{"File Path": os.path.join(os.path.dirname(pattern), shown)})
    clip = host.clip_source(h.place(tl, mpi, frames=10, left=3, duration=2))
    assert clip.source == pattern and (clip.first, clip.last) == (1004, 1005)


def test_plate_goes_to_the_first_free_track_above_and_a_dead_handle_is_a_message(tmp_path):
    app, tl, item = one_clip(tmp_path)
    other = h.sequence_clip(app, media(tmp_path, name="o"), 1001, 10, name="o")
    h.place(tl, other, frames=10, left=0, duration=3, track=2, start=item.GetStart() + 2)  # V2 busy there
    clip = host.clip_source(item)
    plate = h.sequence_clip(app, media(tmp_path, name="p"), 1001, 10, name="p")
    placed = host.place_plate(app, tl, plate, clip, first=1001)
    assert placed.GetTrackTypeAndIndex() == ["video", 3] and tl.GetTrackCount("video") == 3
    assert (placed.GetStart(), placed.GetDuration(), placed.GetLeftOffset()) == (item.GetStart(), 6, 2)
    with pytest.raises(host.HostError, match="did not place the colorized plate on V4"):
        host.place_plate(app, tl, DeadHandle(), clip, first=1001)  # Resolve answers with a dead handle
    assert tl.GetItemListInTrack("video", 1) == [item]


def test_unknown_prompt_words_are_shown(tmp_path):
    from coolcolor_resolve import dialog

    app, tl, item = one_clip(tmp_path)
    seen = {}

    def driver(disp):
        ctl = dialog.ACTIVE
        clip = next(iter(ctl.clips.values()))
        spec = build_spec(clip, Settings(prompt="a zorblax tram"), [])
        ctl.jobs.append(ClipJob(clip, spec, submit_key(spec), "colorize", state="queued", queue_position=1,
                                unknown_words=["zorblax"]))
        ctl.refresh_progress()
        seen["words"] = disp.item("UnknownWords").Text
        disp.click("Close")

    h.run_script(app, driver)
    assert seen["words"] == "Words the model does not know: zorblax"


def test_a_comp_that_cannot_be_backed_up_is_not_deleted(tmp_path):
    app, tl, item = one_clip(tmp_path)
    artist = item.AddFusionComp()
    item.ExportFusionComp = lambda path, index: False  # Resolve refuses the export
    (tmp_path / "new.comp").write_text("Composition { Tools = ordered() { CoolColorRecombine = Custom { }, }, }\n")
    with pytest.raises(host.HostError, match="could not back up its Fusion comp 'Composition 1'; nothing was"):
        host.replace_comp(item, str(tmp_path / "new.comp"), str(tmp_path), "CoolColorRecombine")
    assert item.GetFusionCompCount() == 1 and item.GetFusionCompByIndex(1) is artist


def test_installed_plugin_runs_from_the_fusion_folder(tmp_path):
    """`coolcolor plugins install resolve` of THIS plugin, then the installed Edit-menu launcher run the way Resolve
    runs it (its globals injected), importing the plugin, coolcolor_protocol and pyzmq from Fusion/CoolColor."""
    target = tmp_path / "Fusion"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(h.ROOT / "backend"), str(h.ROOT / "protocol")]))
    proc = subprocess.run([sys.executable, "-c", "import sys; from coolcolor.cli import main; sys.exit(main())",
                           "plugins", "install", "resolve", "--target", str(target)],
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    launcher = target / "Scripts" / "Edit" / "CoolColor Colorize.py"
    assert sorted(p.name for p in launcher.parent.iterdir()) == ["CoolColor Colorize.py"]
    installed = target / "CoolColor"
    assert (installed / "coolcolor_resolve" / "dialog.py").is_file() and not (installed / "README_SECTION.md").exists()
    driver = (
        "import json, os, runpy, sys\n"
        f"sys.path.append({str(h.ROOT / 'tests')!r})\n"
        "from fakes.resolve import FakeResolve\n"
        "from fakes.resolve import harness as h\n"
        "app = FakeResolve(); tl = app.new_timeline()\n"
        f"mpi = h.sequence_clip(app, {media(tmp_path)!r}, 1001, 10)\n"
        "tl.select(h.place(tl, mpi, frames=10, left=2, duration=6))\n"
        "seen = {}\n"
        "def driver(d):\n"
        "    d.click('Colorize'); seen['status'] = h.status_text(d); d.click('Close')\n"
        "app.ui.driver = driver\n"
        "runpy.run_path(sys.argv[1], init_globals=app.script_globals(), run_name='__main__')\n"
        "import coolcolor_resolve, coolcolor_protocol, zmq\n"
        "seen['files'] = [coolcolor_resolve.__file__, coolcolor_protocol.__file__, zmq.__file__]\n"
        "print(json.dumps(seen))\n")
    child_env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run([sys.executable, "-c", driver, str(launcher)], env=child_env, capture_output=True,
                            text=True, timeout=300, cwd=str(tmp_path))
    assert result.returncode == 0, result.stderr[-3000:]
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen["status"].startswith("no CoolColor daemon")
    assert all(f.startswith(str(installed)) for f in seen["files"]), seen["files"]


# ---------------------------------------------------------------- references: the graded frame, gallery stills
def _tinted(tmp_path, frame: int, tint=(1.0, 0.55, 0.25)):
    """The media frame ``frame`` of ``media()`` as a colorist would grade it: the plate tinted (display RGB)."""
    import numpy as np
    import OpenImageIO as oiio

    inp = oiio.ImageInput.open(str(tmp_path / "media-plate" / f"plate.{frame:04d}.png"))
    gray = np.asarray(inp.read_image(0, 0, 0, 1, oiio.FLOAT), np.float32).reshape(inp.spec().height, -1)
    inp.close()
    return np.clip(np.stack([gray * c + 0.05 for c in tint], -1), 0, 1)


def _decoded(path):
    import numpy as np
    import OpenImageIO as oiio

    inp = oiio.ImageInput.open(str(path))
    px = np.asarray(inp.read_image(0, 0, 0, 3, oiio.FLOAT), np.float32)
    inp.close()
    return px


@pytest.fixture
def submitted(monkeypatch):
    """The daemon's side of submit, recorded: every job the dialog sends (the client is not under test here)."""
    from coolcolor_resolve import jobs as jobs_module

    sent: list = []

    def submit(self, job):
        sent.append(job)
        job.job_id, job.state, job.queue_position = f"job-{len(sent)}", "queued", len(sent)

    monkeypatch.setattr(jobs_module.Daemon, "submit", submit)
    return sent


def test_fake_gallery_follows_the_readme(tmp_path):
    np = pytest.importorskip("numpy")
    app, tl, item = one_clip(tmp_path)
    project = app.GetProjectManager().GetCurrentProject()
    gallery = project.GetGallery()
    album = gallery.GetCurrentStillAlbum()
    assert gallery.GetGalleryStillAlbums() == [album] and gallery.GetAlbumName(album) == "Stills 1"
    tl.playhead = item.GetStart() + 1
    assert app.GetCurrentPage() == "edit" and tl.GrabStill() is None  # the Color page only
    assert not app.OpenPage("colour") and app.OpenPage("color") and app.GetCurrentPage() == "color"
    still = tl.GrabStill()
    assert album.GetStills() == [still] and album.GetLabel(still) == "1.1.1"  # count 0 -> 1
    assert [n for n in dir(still) if not n.startswith("_")] == []  # "does not provide any API functions"
    np.testing.assert_array_equal(still._rgb[..., 0], _decoded(tmp_path / "media-plate" / "plate.1004.png")[..., 0])
    out = tmp_path / "export"
    out.mkdir()
    app.gallery_panel_open = False  # ExportStills: a bare False, nothing written
    assert not album.ExportStills([still], str(out), "p", "png") and os.listdir(out) == []
    app.gallery_panel_open = True
    assert not album.ExportStills([still], str(out), "p", "exr")  # not in the documented list
    assert not album.ExportStills([still], str(out / "missing"), "p", "png")
    assert album.ExportStills([still], str(out), "p", "png")
    assert sorted(os.listdir(out)) == ["p_1.1.1.drx", "p_1.1.1.png"]  # the image and its companion .drx
    tl.playhead = item.GetEnd() + 3  # nothing under the playhead
    assert tl.GrabStill() is None
    app.OpenPage("fusion")
    assert tl.GetCurrentTimecode() == ""  # "while on Cut, Edit, Color, Fairlight and Deliver pages"


def test_the_graded_frame_at_the_playhead_is_sent_as_the_reference_of_its_source_frame(tmp_path, submitted):
    np = pytest.importorskip("numpy")
    app, tl, item = one_clip(tmp_path, left=2, duration=6)  # media 1001-1010, the cut 1003-1008
    graded = _tinted(tmp_path, 1006)
    item.grade(3, graded)  # the colorist's grade of clip offset 3 = source 1006
    seen: dict = {}

    def driver(disp):
        tl.playhead = item.GetStart() + 3
        disp.click("UseGraded")
        seen["refs"] = list(disp.item("References").items)
        seen["gallery"] = list(disp.item("GalleryStills").items)
        seen["page"] = app.GetCurrentPage()
        disp.click("Colorize")
        disp.click("Preview")
        disp.click("Close")

    h.run_script(app, driver)
    assert seen["refs"] == ["plate graded frame (source frame 1006)"]
    assert seen["gallery"] == ["Stills 1: CoolColor plate 1006"]  # the grabbed still stays, labelled
    assert seen["page"] == "edit"  # the Color page only for the grab
    [colorize, preview] = submitted
    [ref] = colorize.spec.references
    assert ref["frame"] == 1006 and (colorize.spec.first, colorize.spec.last) == (1003, 1008)
    folder = tmp_path / "out" / "references"
    assert os.listdir(folder) == [os.path.basename(ref["path"])]  # the staging folder and the .drx are gone
    np.testing.assert_allclose(_decoded(ref["path"]), graded, atol=0.5 / 255)  # the grade, as exported
    assert (preview.spec.first, preview.spec.last, preview.spec.references) == (1006, 1006, [ref])
    # the reference's content is the job's identity: without it, or with another grade, another job
    clip = host.clip_source(item)
    plain = build_spec(clip, Settings(), [])
    assert submit_key(plain) != colorize.key and plain.output_dir != colorize.spec.output_dir
    assert colorize.key == submit_key(colorize.spec)
    # another grade of the frame (its content hash, recorded at export) names another folder, so another request
    regraded = build_spec(clip, Settings(), [], references=[
        Reference(path=ref["path"], sha256="0" * 64, frame=1006, item_id=clip.item_id)])
    assert regraded.references == colorize.spec.references
    assert regraded.output_dir != colorize.spec.output_dir and submit_key(regraded) != colorize.key
    assert app.thread_violations == []


def test_a_gallery_still_is_sent_as_an_exemplar_of_every_clip(tmp_path, submitted):
    np = pytest.importorskip("numpy")
    app = FakeResolve()
    tl = app.new_timeline()
    a = h.place(tl, h.sequence_clip(app, media(tmp_path), 1001, 10, name="a"), frames=10, left=0, duration=4)
    b = h.place(tl, h.sequence_clip(app, media(tmp_path), 1001, 10, name="b"), frames=10, left=4, duration=4)
    tl.select(a, b)
    gallery = app.GetProjectManager().GetCurrentProject().GetGallery()
    other = gallery.CreateGalleryStillAlbum()
    photo = np.dstack([np.full((20, 30), v, np.float32) for v in (0.8, 0.3, 0.1)])  # any size: an exemplar
    gallery.add_still(photo, "location photo", other)
    seen: dict = {}

    def driver(disp):
        seen["listed"] = list(disp.item("GalleryStills").items)
        disp.choose("GalleryStills", "Stills 2: location photo")
        disp.click("UseGalleryStill")
        seen["refs"] = list(disp.item("References").items)
        disp.click("Colorize")
        disp.click("Close")

    h.run_script(app, driver)
    assert seen["listed"] == ["Stills 2: location photo"]
    assert seen["refs"] == ["gallery still Stills 2: location photo (exemplar)"]
    assert [j.clip.item_name for j in submitted] == ["a", "b"]
    [ref_a], [ref_b] = (j.spec.references for j in submitted)
    assert ref_a == ref_b and ref_a["frame"] is None
    np.testing.assert_allclose(_decoded(ref_a["path"]), photo, atol=0.5 / 255)
    assert app.GetCurrentPage() == "edit" and app.thread_violations == []


def test_fake_current_frame_export_follows_the_readme(tmp_path):
    np = pytest.importorskip("numpy")
    app, tl, item = one_clip(tmp_path)
    project = app.GetProjectManager().GetCurrentProject()
    graded = _tinted(tmp_path, 1004)
    item.grade(1, graded)
    tl.playhead = item.GetStart() + 1
    out = tmp_path / "export"
    out.mkdir()
    app.gallery_panel_open = False  # not a condition: "worked in all four runs in both modes" [R-LIM]
    assert not project.ExportCurrentFrameAsStill(str(out / "frame"))  # "must end in valid export file format"
    assert not project.ExportCurrentFrameAsStill(str(out / "frame.drx"))
    assert not project.ExportCurrentFrameAsStill(str(out / "missing" / "frame.png"))
    assert os.listdir(out) == []
    assert project.ExportCurrentFrameAsStill(str(out / "frame.png"))
    assert os.listdir(out) == ["frame.png"]  # the image alone, under the name given
    np.testing.assert_allclose(_decoded(out / "frame.png"), graded, atol=0.5 / 255)  # the frame as graded
    tl.playhead = item.GetEnd() + 3  # "needs valid playhead position"
    assert not project.ExportCurrentFrameAsStill(str(out / "none.png"))
    tl.playhead = item.GetStart() + 1
    app.frame_export_works = False  # "Returns True if successful, False otherwise"
    assert not project.ExportCurrentFrameAsStill(str(out / "failed.png")) and os.listdir(out) == ["frame.png"]


def test_with_the_gallery_closed_the_current_frame_export_gives_the_graded_frame(tmp_path, submitted):
    """ExportStills writes nothing while the Gallery panel is closed [R-LIM]; the plugin then exports the current
    frame (Project.ExportCurrentFrameAsStill) and sends it just the same."""
    np = pytest.importorskip("numpy")
    app, tl, item = one_clip(tmp_path, left=2, duration=6)  # media 1001-1010, the cut 1003-1008
    graded = _tinted(tmp_path, 1006)
    item.grade(3, graded)
    app.gallery_panel_open = False
    seen: dict = {}

    def driver(disp):
        tl.playhead = item.GetStart() + 3
        disp.click("UseGraded")
        seen["refs"] = list(disp.item("References").items)
        seen["gallery"] = list(disp.item("GalleryStills").items)
        disp.click("Colorize")
        disp.click("Close")

    h.run_script(app, driver)
    assert seen["refs"] == ["plate graded frame (source frame 1006)"]
    assert seen["gallery"] == ["Stills 1: CoolColor plate 1006"]  # grabbed and labelled all the same
    [colorize] = submitted
    [ref] = colorize.spec.references
    assert ref["frame"] == 1006 and (colorize.spec.first, colorize.spec.last) == (1003, 1008)
    folder = tmp_path / "out" / "references"
    name = os.path.basename(ref["path"])
    assert os.listdir(folder) == [name] and name == f"{host.file_sha256(ref['path'])[:16]}.png"  # named by content
    np.testing.assert_allclose(_decoded(ref["path"]), graded, atol=0.5 / 255)
    assert app.GetCurrentPage() == "edit" and app.thread_violations == []


def test_the_current_frame_of_another_timeline_is_not_taken(tmp_path, submitted):
    """ExportCurrentFrameAsStill exports the CURRENT timeline's frame: once the colorist has switched timelines,
    it is not the dialog's clip, so with the Gallery closed nothing is sent."""
    pytest.importorskip("numpy")
    app, tl, item = one_clip(tmp_path)
    item.grade(1, _tinted(tmp_path, 1004))
    tl.playhead = item.GetStart() + 1
    app.gallery_panel_open = False
    seen: dict = {}

    def driver(disp):
        other = app.new_timeline("Timeline 2")  # now the current one, another clip under its playhead
        shot = h.place(other, h.sequence_clip(app, media(tmp_path, name="other"), 1001, 10, name="other shot"),
                       frames=10, left=0, duration=10)
        other.playhead = shot.GetStart() + 1
        assert app.GetProjectManager().GetCurrentProject().GetCurrentTimeline() is other
        disp.click("UseGraded")
        seen["last"] = h.controller().status_lines[-1]
        disp.click("Close")

    h.run_script(app, driver)
    assert seen["last"] == ("Resolve exported nothing for the still of plate: open the Gallery on the Color page "
                            "(Workspace ▸ Gallery) and try again — ExportStills writes no file while it is closed, "
                            "and the current frame is of another timeline than Timeline 1")
    assert submitted == [] and h.controller().references == []
    assert os.listdir(tmp_path / "out" / "references") == []


def _refuse_grab(app, tl, item):  # "GrabStill failed" (davinci-resolve-mcp grab_and_export): None comes back
    tl.GrabStill = lambda: None


def _close_gallery_panel_and_fail_the_frame_export(app, tl, item):
    app.gallery_panel_open = False  # ExportStills: nothing
    app.frame_export_works = False  # and ExportCurrentFrameAsStill's documented False


def _playhead_off_the_clip(app, tl, item):
    tl.playhead = item.GetEnd() + 2


def _plate_above(app, tl, item):
    h.place(tl, h.sequence_clip(app, media(app._tmp, name="above"), 1001, 10, name="rgb plate"), frames=10, left=2,
            duration=6, track=2, start=item.GetStart())


@pytest.mark.parametrize("setup,message", [
    (_refuse_grab, "Resolve grabbed no still of plate (GrabStill needs the Color page and the clip under the "
                   "playhead)"),
    (_close_gallery_panel_and_fail_the_frame_export,
     "Resolve exported nothing for the still of plate: open the Gallery on the Color page (Workspace ▸ Gallery) and "
     "try again — ExportStills writes no file while it is closed, and ExportCurrentFrameAsStill wrote none either"),
    (_playhead_off_the_clip, "the playhead is on none of the selected clips: park it on the graded frame"),
    (_plate_above, "Resolve grabs the top video at the playhead, which is rgb plate, not plate: disable the tracks "
                   "above it and try again"),
])
def test_a_reference_that_cannot_be_had_is_one_line_and_nothing_is_sent(tmp_path, submitted, setup, message):
    pytest.importorskip("numpy")
    app, tl, item = one_clip(tmp_path)
    app._tmp = tmp_path
    item.grade(1, _tinted(tmp_path, 1004))
    tl.playhead = item.GetStart() + 1
    setup(app, tl, item)
    seen: dict = {}

    def driver(disp):
        disp.click("UseGraded")
        seen["last"] = h.controller().status_lines[-1]
        seen["refs"] = list(disp.item("References").items)
        seen["sent"] = len(submitted)
        disp.click("Close")

    h.run_script(app, driver)
    assert seen["last"] == message and "\n" not in seen["last"]
    assert seen["refs"] == [] and seen["sent"] == 0 and h.controller().references == []
    folder = tmp_path / "out" / "references"
    assert not folder.exists() or os.listdir(folder) == []  # no staging folder or half export left
    assert app.GetCurrentPage() == "edit" and app.thread_violations == []
