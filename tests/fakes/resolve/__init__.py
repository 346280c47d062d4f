"""A fake DaVinci Resolve for the plugin's tests, built from Blackmagic's documentation, not from the plugin.

Sources, cited per behaviour below:
- [README] Blackmagic Design, DaVinci Resolve scripting ``README.txt``, "Last Updated: 24 Jul 2026" (the 21.0.4
  era), copy at samuelgursky/davinci-resolve-mcp:docs/reference/resolve_scripting_api.txt; cited by section and
  object ("README TimelineItem").
- [R-LIM] samuelgursky/davinci-resolve-mcp:docs/reference/api-limitations.md, behaviour measured on live Resolve
  Studio 19.1-21.1, cited by entry title.
- [RES] the host API notes in docs/hosts.md ("Host API notes"), cited by the id that heads each note (A3, R2, …).
- Gallery stills, beyond the README: davinci-resolve-mcp's CHANGELOG (live-verified exports) and ``src/server.py``
  ``gallery_stills(grab_and_export)``; roger-magnusson's "Grab Stills at Markers" Lua script (public, MIT). Both
  are cited where used; what neither settles is marked [U] (docs/hosts.md R5). ``Project.ExportCurrentFrameAsStill``,
  beyond the README: davinci-resolve-mcp's docs/reference/headless-cli.md, api-coverage.md and
  tests/live_drp_roundtrip_verification.py, cited in ``FakeProject.ExportCurrentFrameAsStill``.

What a test drives: ``FakeResolve(version=..., studio=...)``; timelines of ``FakeTimelineItem`` built with
``add_clip``; ``ui.driver`` — a function the fake's ``RunLoop`` calls with the dispatcher, which clicks buttons
and fires the timer the way Resolve's event loop would, all on the calling thread.
"""

from __future__ import annotations

import os
import re
import threading
import uuid
from collections.abc import Callable
from typing import Any

from fakes.resolve.ui import FakeUIDispatcher, FakeUIManager  # noqa: F401  (re-exported)

MARKER_COLORS = ("Blue", "Cyan", "Green", "Yellow", "Red", "Pink", "Purple", "Fuchsia", "Rose", "Lavender",
                 "Sky", "Mint", "Lemon", "Sand", "Cocoa", "Cream")  # [README "Analyze Slate Settings"; RES A5]


def _dead(*_args: Any, **_kwargs: Any) -> None:
    return None


class ResolveObject:
    """Base of every fake API object.

    ``hasattr`` is always True: [R-LIM "hasattr() / getattr() on Resolve API objects"] "bare hasattr() returns
    True for EVERY name on every object"; on a bridge build any name gives a callable, and "calling a fabricated
    method typically returns None/False with no error". So an unknown attribute here is a callable returning
    None, and ``dir()`` lists only the real methods (the same entry: "Use dir(obj) membership").
    Every API call must come from the thread that created the object (the script's own thread; [RES threading]:
    "Touch the Resolve API and UIManager only from the script's main thread"); a call from another thread is
    recorded in ``FakeResolve.thread_violations``.
    """

    _absent: frozenset = frozenset()
    _app: FakeResolve | None = None

    def __getattribute__(self, name: str) -> Any:
        if not name.startswith("_"):
            app = object.__getattribute__(self, "_app")
            if app is not None and threading.get_ident() != app._thread:
                app.thread_violations.append(f"{type(self).__name__}.{name}")
            if name in object.__getattribute__(self, "_absent"):
                return _dead
        return object.__getattribute__(self, name)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return _dead

    def __dir__(self) -> list[str]:
        names = set()
        for cls in type(self).__mro__:
            names.update(n for n in vars(cls) if n[:1].isupper())
        return sorted(names - set(self._absent))


class DeadHandle(ResolveObject):
    """What a failed ``AppendToTimeline`` returns: truthy, every method returns None. [R-LIM "MediaPool.
    AppendToTimeline (overlapping records — earlier item wins)"; RES A6: auto-subs' mock_resolve_test.lua
    reproduces real Resolve returning a dead handle when the slot is occupied or the track is missing/locked]."""

    def __getattribute__(self, name: str) -> Any:
        if name.startswith("_"):
            return object.__getattribute__(self, name)
        return _dead


class _Markers:
    """AddMarker / GetMarkers / GetMarkerByCustomData / UpdateMarkerCustomData / GetMarkerCustomData /
    DeleteMarkerAtFrame / DeleteMarkersByColor / DeleteMarkerByCustomData, as [README TimelineItem, Timeline,
    MediaPoolItem] document them: GetMarkers returns {frameId(float): {'color', 'duration', 'note', 'name',
    'customData'}} (README example ``{96.0: {'color': 'Green', ...}}``); colours are strings (no MARKER_*
    constants exist: [R-LIM "Folder.AnalyzeForSlate / MediaPoolItem.AnalyzeForSlate markerColor"])."""

    def _init_markers(self) -> None:
        self._markers: dict[float, dict[str, Any]] = {}

    def _marker_ok(self, frame: float, duration: float) -> bool:
        return True

    def AddMarker(self, frameId: float, color: str, name: str, note: str, duration: float,
                  customData: str = "") -> bool:
        if color not in MARKER_COLORS or float(frameId) in self._markers or duration < 1:
            return False
        if not self._marker_ok(float(frameId), float(duration)):
            return False
        self._markers[float(frameId)] = {"color": color, "duration": float(duration), "note": note, "name": name,
                                         "customData": customData}
        return True

    def GetMarkers(self) -> dict[float, dict[str, Any]]:
        return {k: dict(v) for k, v in sorted(self._markers.items())}

    def GetMarkerByCustomData(self, customData: str) -> dict[str, Any]:
        for v in self._markers.values():
            if v["customData"] == customData:
                return dict(v)
        return {}

    def UpdateMarkerCustomData(self, frameId: float, customData: str) -> bool:
        if float(frameId) not in self._markers:
            return False
        self._markers[float(frameId)]["customData"] = customData
        return True

    def GetMarkerCustomData(self, frameId: float) -> str:
        return self._markers.get(float(frameId), {}).get("customData", "")

    def DeleteMarkerAtFrame(self, frameNum: float) -> bool:
        return self._markers.pop(float(frameNum), None) is not None

    def DeleteMarkersByColor(self, color: str) -> bool:
        keys = [k for k, v in self._markers.items() if color == "All" or v["color"] == color]
        for k in keys:
            del self._markers[k]
        return bool(keys)

    def DeleteMarkerByCustomData(self, customData: str) -> bool:
        for k, v in list(self._markers.items()):
            if v["customData"] == customData:
                del self._markers[k]
                return True
        return False


class FakeMediaPoolItem(_Markers, ResolveObject):
    """[README MediaPoolItem]. ``GetClipProperty(None)`` returns the whole dict ([README "Looking up Project and
    Clip properties"]: "call ... without parameters ... to get a snapshot"). Keys used, as in public code [RES
    A4/R4, U]: "File Path" (an image sequence as ``name.[1001-1096].exr``, [U]), "FPS", "Frames", "Start",
    "End", "Type" ("Video", "Video + Audio", "Still", "Compound", "Multicam", "Timeline"), "Resolution",
    "Clip Name". Marker frameIds: "one 'Green' marker at offset 96 (position of the marker)" [README MediaPoolItem
    GetMarkers], taken as an offset from the media's first frame ([RES A5]: "MediaPoolItem markers are
    source-based", [U]); one past the media's frames is refused."""

    def __init__(self, app: FakeResolve, name: str, properties: dict[str, Any]):
        self._app = app
        self._init_markers()
        self._name = name
        self._props = {"Clip Name": name, **properties}
        self._metadata: dict[str, str] = {}
        self._id = app._new_id()

    def _marker_ok(self, frame: float, duration: float) -> bool:
        frames = self._props.get("Frames")
        return frame >= 0 and (frames is None or frame < int(frames))

    def GetName(self) -> str:
        return self._name

    def GetClipProperty(self, propertyName: str | None = None) -> Any:
        if not propertyName:
            return {k: str(v) for k, v in self._props.items()}
        return str(self._props[propertyName]) if propertyName in self._props else ""

    def SetClipProperty(self, propertyName: str, propertyValue: str) -> bool:
        self._props[propertyName] = propertyValue
        return True

    def GetMetadata(self, metadataType: str | None = None) -> Any:
        return dict(self._metadata) if metadataType is None else self._metadata.get(metadataType, "")

    def SetMetadata(self, metadataType: Any, metadataValue: str | None = None) -> bool:
        # [README MediaPoolItem] SetMetadata(metadataType, metadataValue) and SetMetadata({metadata})
        if isinstance(metadataType, dict):
            self._metadata.update({str(k): str(v) for k, v in metadataType.items()})
        else:
            self._metadata[str(metadataType)] = str(metadataValue)
        return True

    def GetUniqueId(self) -> str:
        return self._id


class FakeFolder(ResolveObject):
    """[README Folder]: GetClipList, GetName, GetSubFolderList, GetUniqueId."""

    def __init__(self, app: FakeResolve, name: str):
        self._app = app
        self._name = name
        self._clips: list[FakeMediaPoolItem] = []
        self._subfolders: list[FakeFolder] = []
        self._id = app._new_id()

    def GetClipList(self) -> list[FakeMediaPoolItem]:
        return list(self._clips)

    def GetName(self) -> str:
        return self._name

    def GetSubFolderList(self) -> list[FakeFolder]:
        return list(self._subfolders)

    def GetUniqueId(self) -> str:
        return self._id


class FakeFusionTool(ResolveObject):
    def __init__(self, app: FakeResolve, name: str, kind: str):
        self._app = app
        self.Name = name
        self._kind = kind

    def GetAttrs(self, key: str | None = None) -> Any:
        attrs = {"TOOLS_Name": self.Name, "TOOLS_RegID": self._kind}
        return attrs if key is None else attrs.get(key)


class FakeFusionComp(ResolveObject):
    """A Fusion composition of a timeline item. An imported ``.comp`` keeps its text; its tools are the
    top-level ``Name = RegID {`` entries of ``Tools = ordered() { ... }``. An unparsable file gives an EMPTY comp,
    silently ([RES R2], the 21.1 field report)."""

    def __init__(self, app: FakeResolve, name: str, text: str | None = None):
        self._app = app
        self._name = name
        self.text = text
        self._tools: list[FakeFusionTool] = []
        if text is None:  # [RES R2]: a new item comp holds MediaIn1 -> MediaOut1
            self._tools = [FakeFusionTool(app, "MediaIn1", "MediaIn"), FakeFusionTool(app, "MediaOut1", "MediaOut")]
        else:
            body = re.search(r"Tools\s*=\s*ordered\(\)\s*\{(.*)\}", text, re.S)
            if body and text.count("{") == text.count("}"):
                depth, src = 0, body.group(1)
                for m in re.finditer(r"[{}]|(\w+)\s*=\s*(\w+)\s*\{", src):
                    if m.group(0) == "{":
                        depth += 1
                    elif m.group(0) == "}":
                        depth -= 1
                    else:
                        if depth == 0:
                            self._tools.append(FakeFusionTool(app, m.group(1), m.group(2)))
                        depth += 1

    def GetToolList(self, selected: bool = False, regid: str | None = None) -> dict[int, FakeFusionTool]:
        tools = [t for t in self._tools if regid is None or t._kind == regid]
        return {i + 1: t for i, t in enumerate(tools)}

    def FindTool(self, name: str) -> FakeFusionTool | None:
        for t in self._tools:
            if t.Name == name:
                return t
        return None


class FakeTimelineItem(_Markers, ResolveObject):
    """[README TimelineItem]. Frame conventions:
    - ``GetStart`` / ``GetEnd``: "the start/end frame position on the timeline" — absolute timeline frames
      (timeline start e.g. 86400) [RES A4; R-LIM / davinci-resolve-mcp#164: recordFrame is absolute];
      ``GetEnd`` is exclusive: GetEnd - GetStart == GetDuration, the same exclusive end AppendToTimeline's
      endFrame uses [R-LIM: "endFrame EXCLUSIVE (verified at 1, 119 and 120 frames)"].
    - ``GetLeftOffset``/``GetRightOffset``: "the maximum extension by frame for clip from left/right side", i.e.
      media frames before the in-point / after the out-point (the handles) [README].
    - ``GetSourceStartFrame``/``GetSourceEndFrame``: the media frames used; on a retimed clip their span differs
      from the record span, which is the documented speed witness [R-LIM "Clip speed / retime ratio"].
    - Marker frameIds are relative to the item ("indicates a single green marker at clip offset 96",
      [README TimelineItem GetMarkers]); a marker beyond the item is refused.
    - ``ImportFusionComp(path)`` "Imports a Fusion composition from given file path by creating and adding a new
      composition for the item" [README]; ``GetFusionCompNameList``, ``GetFusionCompByIndex`` (1-based),
      ``DeleteFusionCompByName``, ``ExportFusionComp(path, compIndex)`` [README].
    """

    def __init__(self, app: FakeResolve, timeline: FakeTimeline, mpi: FakeMediaPoolItem | None,
                 track: int, start: int, duration: int, left_offset: int, right_offset: int,
                 source_span: int | None = None, track_type: str = "video", name: str | None = None,
                 properties: dict[str, Any] | None = None):
        self._app = app
        self._init_markers()
        self._timeline = timeline
        self._mpi = mpi
        self._track = track
        self._track_type = track_type
        self._start = start
        self._duration = duration
        self._left = left_offset
        self._right = right_offset
        self._source_span = duration if source_span is None else source_span
        self._name = name or (mpi.GetName() if mpi else "item")
        self._props: dict[str, Any] = {"Pan": 0.0, "Tilt": 0.0, "ZoomX": 1.0, "ZoomY": 1.0, "RotationAngle": 0.0,
                                       "CropLeft": 0.0, "CropRight": 0.0, "CropTop": 0.0, "CropBottom": 0.0,
                                       "CompositeMode": 0, "Opacity": 100.0, **(properties or {})}
        self._comps: list[FakeFusionComp] = []
        self._graded: dict[int, Any] = {}
        self._clip_color = ""
        self._id = app._new_id()

    def _marker_ok(self, frame: float, duration: float) -> bool:
        return 0 <= frame < self._duration

    # test side: the colorist's grade, as the Color page's viewer shows a frame of this item
    def grade(self, offset: int, rgb: Any) -> None:
        self._graded[int(offset)] = rgb

    def _frame_rgb(self, offset: int) -> Any:
        """The frame at item offset ``offset`` as displayed: graded, else the media file as shot (a sequence
        shown as ``name.[1001-1010].png``)."""
        if int(offset) in self._graded:
            return self._graded[int(offset)]
        assert self._mpi is not None
        shown = str(self._mpi.GetClipProperty("File Path"))
        m = re.search(r"\[(\d+)-(\d+)\]", shown)
        assert m, f"the fake reads stills of image sequences only, not {shown}"
        number = int(m.group(1)) + self._left + int(offset)
        return _read_rgb(shown.replace(m.group(0), f"{number:0{len(m.group(1))}d}"))

    def GetName(self) -> str:
        return self._name

    def GetStart(self, subframe_precision: bool = False) -> int:
        return self._start

    def GetEnd(self, subframe_precision: bool = False) -> int:
        return self._start + self._duration

    def GetDuration(self, subframe_precision: bool = False) -> int:
        return self._duration

    def GetLeftOffset(self, subframe_precision: bool = False) -> int:
        return self._left

    def GetRightOffset(self, subframe_precision: bool = False) -> int:
        return self._right

    def GetSourceStartFrame(self) -> int:
        return self._left

    def GetSourceEndFrame(self) -> int:
        return self._left + self._source_span

    def GetMediaPoolItem(self) -> FakeMediaPoolItem | None:
        return self._mpi

    def GetTrackTypeAndIndex(self) -> list[Any]:
        return [self._track_type, self._track]

    def GetUniqueId(self) -> str:
        return self._id

    def GetProperty(self, propertyKey: str | None = None) -> Any:
        # [README "Looking up Timeline item properties"]; no speed key exists [R-LIM "Clip speed"]
        return dict(self._props) if not propertyKey else self._props.get(propertyKey)

    def SetProperty(self, propertyKey: str, propertyValue: Any) -> bool:
        if propertyKey not in self._props:
            return False
        self._props[propertyKey] = propertyValue
        return True

    def SetClipColor(self, colorName: str) -> bool:
        self._clip_color = colorName
        return True

    def GetClipColor(self) -> str:
        return self._clip_color

    # Fusion comps [README TimelineItem]
    def GetFusionCompCount(self) -> int:
        return len(self._comps)

    def GetFusionCompNameList(self) -> list[str]:
        return [c._name for c in self._comps]

    def GetFusionCompByIndex(self, compIndex: int) -> FakeFusionComp | None:
        return self._comps[compIndex - 1] if 1 <= compIndex <= len(self._comps) else None

    def GetFusionCompByName(self, compName: str) -> FakeFusionComp | None:
        return next((c for c in self._comps if c._name == compName), None)

    def _comp_name(self) -> str:
        n = len(self._comps) + 1
        while any(c._name == f"Composition {n}" for c in self._comps):
            n += 1
        return f"Composition {n}"

    def AddFusionComp(self) -> FakeFusionComp:
        comp = FakeFusionComp(self._app, self._comp_name())
        self._comps.append(comp)
        return comp

    def ImportFusionComp(self, path: str) -> FakeFusionComp | None:
        try:
            with open(path, encoding="utf-8") as fh:
                text = fh.read()
        except OSError:
            return None
        comp = FakeFusionComp(self._app, self._comp_name(), text)
        self._comps.append(comp)
        return comp

    def ExportFusionComp(self, path: str, compIndex: int) -> bool:
        comp = self.GetFusionCompByIndex(compIndex)
        if comp is None:
            return False
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(comp.text if comp.text is not None else "Composition { Tools = ordered() { } }\n")
        return True

    def DeleteFusionCompByName(self, compName: str) -> bool:
        for c in self._comps:
            if c._name == compName:
                self._comps.remove(c)
                return True
        return False


def _timecode(frame: int, fps: int) -> str:
    s, f = divmod(frame, fps)
    m, s = divmod(s, 60)
    h, m = divmod(m, 60)
    return f"{h:02d}:{m:02d}:{s:02d}:{f:02d}"


class FakeTimeline(_Markers, ResolveObject):
    """[README Timeline]. ``GetSelectedClips`` ("Returns the currently selected timeline items") is in the
    24 Jul 2026 README and absent before Resolve 21.0.4 ([RES A3]: added in 21.0.4, davinci-resolve-mcp#131 /
    PR #133): on an older version it is missing from ``dir()`` and, like any unknown name, returns None
    (``hasattr`` stays True). ``GetCurrentVideoItem`` returns the item under the playhead on the highest video
    track ([RES A3], one report, [U]). ``GetCurrentTimecode`` is the absolute playhead timecode [README].
    Marker frameIds are relative to the timeline's start: "a value of {96.0: {'color': 'Green', …}} indicates a
    single green marker at timeline offset 96" [README Timeline GetMarkers]; GetMarkers "echoes back whatever was
    passed", so a marker at an absolute frame lands past the end ([RES A5]); the fake refuses a negative one."""

    def __init__(self, app: FakeResolve, name: str, fps: int = 24, start_frame: int = 86400):
        self._app = app
        self._init_markers()
        self._name = name
        self._fps = fps
        self._start_frame = start_frame
        self._tracks: dict[int, list[FakeTimelineItem]] = {1: []}
        self._selected: list[FakeTimelineItem] = []
        self.playhead = start_frame
        self._id = app._new_id()
        if app._version < (21, 0, 4):
            self._absent = frozenset({"GetSelectedClips"})

    # test helpers -------------------------------------------------------------------------------------
    def add_clip(self, mpi: FakeMediaPoolItem | None, *, track: int = 1, start: int | None = None,
                 duration: int, left_offset: int = 0, right_offset: int = 0, **kw: Any) -> FakeTimelineItem:
        while track not in self._tracks:
            self._tracks[len(self._tracks) + 1] = []
        if start is None:
            start = max([i.GetEnd() for i in self._tracks[track]] + [self._start_frame])
        item = FakeTimelineItem(self._app, self, mpi, track, start, duration, left_offset, right_offset, **kw)
        self._tracks[track].append(item)
        return item

    def select(self, *items: FakeTimelineItem) -> None:
        self._selected = list(items)

    def _marker_ok(self, frame: float, duration: float) -> bool:
        return frame >= 0

    # API ------------------------------------------------------------------------------------------------
    def GetName(self) -> str:
        return self._name

    def GetStartFrame(self) -> int:
        return self._start_frame

    def GetEndFrame(self) -> int:
        return max([i.GetEnd() for t in self._tracks.values() for i in t] + [self._start_frame])

    def GetSetting(self, settingName: str | None = None) -> Any:
        settings = {"timelineFrameRate": str(self._fps)}
        return settings if not settingName else settings.get(settingName, "")

    def GetTrackCount(self, trackType: str) -> int:
        return len(self._tracks) if trackType == "video" else 0

    def AddTrack(self, trackType: str, subTrackType: Any = None) -> bool:
        if trackType != "video":
            return False
        self._tracks[len(self._tracks) + 1] = []
        return True

    def GetItemListInTrack(self, trackType: str, index: int) -> list[FakeTimelineItem] | None:
        if trackType != "video" or index not in self._tracks:
            return None
        return sorted(self._tracks[index], key=lambda i: i.GetStart())

    def GetSelectedClips(self) -> list[FakeTimelineItem]:
        return list(self._selected)

    def GetCurrentVideoItem(self) -> FakeTimelineItem | None:
        for track in sorted(self._tracks, reverse=True):
            for item in self._tracks[track]:
                if item.GetStart() <= self.playhead < item.GetEnd():
                    return item
        return None

    def GetCurrentTimecode(self) -> str:
        """[README Timeline]: "Returns a string timecode representation for the current playhead position, while
        on Cut, Edit, Color, Fairlight and Deliver pages" — elsewhere "" ([U]: "We can't get current timecode from
        the Media or Fusion pages", roger-magnusson "Grab Stills at Markers")."""
        if self._app is not None and self._app._page in ("media", "fusion"):
            return ""
        return _timecode(self.playhead, self._fps)

    def GrabStill(self) -> FakeGalleryStill | None:
        """[README Timeline]: "Grabs still from the current video clip. Returns a GalleryStill object." The still
        lands in the current still album ([R-LIM ExportStills]: "the still landed in the album (count 0 -> 1)").
        None unless the Color page is open and a video item is under the playhead ([U]: davinci-resolve-mcp
        ``grab_and_export`` "requires Color page with a clip under the playhead"; public scripts switch to the
        Color page first, roger-magnusson "Grab Stills at Markers"). Its pixels: the frame as graded (test side:
        ``item.grade(offset, rgb)``), else the media frame as shot; its label ``1.<n>.1`` ([U]: labels follow the
        project's Color settings, "Automatically label gallery stills using", Resolve manual)."""
        app = self._app
        item = self.GetCurrentVideoItem()
        if app is None or app._page != "color" or item is None:
            return None
        album = app._project._gallery.GetCurrentStillAlbum()
        return app._project._gallery.add_still(item._frame_rgb(self.playhead - item.GetStart()),
                                               f"1.{len(album._stills) + 1}.1", album)

    def SetCurrentTimecode(self, timecode: str) -> bool:
        h, m, s, f = (int(x) for x in re.split(r"[:;]", timecode))
        self.playhead = ((h * 60 + m) * 60 + s) * self._fps + f
        return True

    def GetUniqueId(self) -> str:
        return self._id

    def _append(self, info: dict[str, Any]) -> ResolveObject:
        """[README MediaPool AppendToTimeline clipInfo]: "startFrame", "endFrame" (exclusive, [R-LIM]),
        "mediaType", "trackIndex", "recordFrame" (absolute, [R-LIM]/#164). An overlap or a missing track gives a
        dead handle ([R-LIM] "overlapping placements are rejected, and the earlier item wins")."""
        mpi = info.get("mediaPoolItem")
        track = int(info.get("trackIndex", 1))
        start, end = int(info.get("startFrame", 0)), int(info.get("endFrame", 0))
        record = int(info.get("recordFrame", self.GetEndFrame()))
        if not isinstance(mpi, FakeMediaPoolItem) or track not in self._tracks or end <= start:
            return DeadHandle()
        duration = end - start
        for other in self._tracks[track]:
            if record < other.GetEnd() and other.GetStart() < record + duration:
                return DeadHandle()
        frames = int(mpi._props.get("Frames", duration))
        item = FakeTimelineItem(self._app, self, mpi, track, record, duration, start, max(0, frames - end))
        self._tracks[track].append(item)
        return item


class FakeMediaPool(ResolveObject):
    """[README MediaPool]. ``ImportMedia`` "Imports specified file/folder paths into current Media Pool folder"
    (list of paths), or a list of clipInfo dicts ``{"FilePath": "file_%03d.dpx", "StartIndex": 1, "EndIndex":
    100}`` which "would import clip file_[001-100].dpx" — one item per dict; imports land in the CURRENT
    folder only [R-LIM "MediaPool.ImportMedia (current-folder destination only)"]. A missing file imports
    nothing."""

    def __init__(self, app: FakeResolve):
        self._app = app
        self._root = FakeFolder(app, "Master")
        self._current = self._root
        self._selected: list[FakeMediaPoolItem] = []

    def GetRootFolder(self) -> FakeFolder:
        return self._root

    def AddSubFolder(self, folder: FakeFolder, name: str) -> FakeFolder | None:
        if not isinstance(folder, FakeFolder):
            return None
        sub = FakeFolder(self._app, name)
        folder._subfolders.append(sub)
        return sub

    def GetCurrentFolder(self) -> FakeFolder:
        return self._current

    def SetCurrentFolder(self, folder: FakeFolder) -> bool:
        if not isinstance(folder, FakeFolder):
            return False
        self._current = folder
        return True

    def GetSelectedClips(self) -> list[FakeMediaPoolItem]:
        return list(self._selected)

    def ImportMedia(self, items: list[Any]) -> list[FakeMediaPoolItem]:
        out = []
        for entry in items:
            if isinstance(entry, dict):
                pattern, first, last = entry.get("FilePath", ""), entry.get("StartIndex"), entry.get("EndIndex")
                if first is None or last is None:
                    continue
                files = [pattern % f for f in range(int(first), int(last) + 1)]
                if not files or not all(os.path.isfile(f) for f in files):
                    continue
                width = len(str(pattern % int(first)).rsplit(".", 1)[0]) - len(pattern.split("%")[0])
                shown = pattern.replace(re.search(r"%0?\d*d", pattern).group(0),  # type: ignore[union-attr]
                                        f"[{int(first):0{width}d}-{int(last):0{width}d}]")
                name = os.path.basename(shown)
                props = {"File Path": shown, "Type": "Still" if len(files) == 1 else "Video",
                         "Frames": len(files), "Start": int(first), "End": int(last), "FPS": "24"}
            else:
                if not os.path.isfile(str(entry)):
                    continue
                name = os.path.basename(str(entry))
                props = {"File Path": str(entry), "Type": "Still", "Frames": 1, "FPS": "24"}
            mpi = FakeMediaPoolItem(self._app, name, props)
            self._current._clips.append(mpi)
            out.append(mpi)
        return out

    def AppendToTimeline(self, clips: list[Any]) -> list[ResolveObject]:
        timeline = self._app._project._timeline
        if timeline is None:
            return []
        return [timeline._append(c if isinstance(c, dict) else {"mediaPoolItem": c}) for c in clips]


STILL_EXPORT_FORMATS = ("dpx", "cin", "tif", "jpg", "png", "ppm", "bmp", "xpm", "drx")
"""[README GalleryStillAlbum ExportStills]: "using file format 'format' (supported formats: dpx, cin, tif, jpg, png,
ppm, bmp, xpm, drx)"."""
FRAME_EXPORT_FORMATS = tuple(f for f in STILL_EXPORT_FORMATS if f != "drx")
"""Project.ExportCurrentFrameAsStill's "valid export file format": not listed in the README; the fake takes the
image formats ExportStills lists ([U]; only PNG is measured, davinci-resolve-mcp docs/reference/headless-cli.md)."""
PAGES = ("media", "photo", "cut", "edit", "fusion", "color", "fairlight", "deliver")
"""[README Resolve OpenPage]: "Input can be one of ("media", "photo", "cut", "edit", "fusion", "color",
"fairlight", "deliver")"."""


class FakeGalleryStill(ResolveObject):
    """[README GalleryStill]: "This class does not provide any API functions but the object type is used by
    functions in other classes." So nothing about a still — not its source clip, frame or timecode — can be read
    from it; its label is read through the album (``GalleryStillAlbum.GetLabel``). The pixels are the frame as it
    looked when grabbed (test side: ``_rgb``, H×W×3 display values in [0, 1])."""

    def __init__(self, app: FakeResolve, rgb: Any, label: str):
        self._app = app
        self._rgb = rgb
        self._label = label


class FakeGalleryStillAlbum(ResolveObject):
    """[README GalleryStillAlbum]: GetStills "Returns the list of GalleryStill objects in the album"; GetLabel /
    SetLabel; DeleteStills; ExportStills([galleryStill], folderPath, filePrefix, format) --> Bool, "Exports list
    of GalleryStill objects '[galleryStill]' to directory 'folderPath', with filename prefix 'filePrefix', using
    file format 'format'" (the nine formats of ``STILL_EXPORT_FORMATS``).

    What an export writes, beyond the README:
    - nothing, returning a bare False, unless the Gallery panel is open on the Color page [R-LIM
      "GalleryStillAlbum.ExportStills (Gallery panel must be visible)"]: "Returns a bare False, writing nothing,
      unless the Gallery panel is actually open on the Color page … Timeline.GrabStill() succeeded and the still
      landed in the album (count 0 -> 1), yet ExportStills returned False for png, jpg, tif and dpx alike";
      "Panel visibility is not readable or settable from the scripting API". Test side: ``app.gallery_panel_open``.
    - per still, the image and a companion grade file: "All 9 supported formats … produce a companion `.drx` grade
      file alongside the image" (davinci-resolve-mcp CHANGELOG v2.0.8), live: "a 257 KB JPEG and its 28 KB `.drx`"
      (same CHANGELOG, "Live-verified … on Studio 19.1.3.7"). The file NAMES are documented nowhere: the fake writes
      ``<prefix>_<label>.<format>`` and ``<prefix>_<label>.drx`` ([U]; an empty prefix "lets it export using the
      labels configured in Resolve", roger-magnusson "Grab Stills at Markers" script), so a caller must not
      depend on them. The .drx body is not modelled (a placeholder XML).
    - into an existing folder only ([U]: public callers create it first, davinci-resolve-mcp ``grab_and_export``).
    """

    def __init__(self, app: FakeResolve, name: str):
        self._app = app
        self._name = name
        self._stills: list[FakeGalleryStill] = []

    def GetStills(self) -> list[FakeGalleryStill]:
        return list(self._stills)

    def GetLabel(self, galleryStill: FakeGalleryStill) -> str:
        return galleryStill._label if galleryStill in self._stills else ""

    def SetLabel(self, galleryStill: FakeGalleryStill, label: str) -> bool:
        if galleryStill not in self._stills:
            return False
        galleryStill._label = str(label)
        return True

    def DeleteStills(self, galleryStills: list[FakeGalleryStill]) -> bool:
        gone = [s for s in galleryStills if s in self._stills]
        for s in gone:
            self._stills.remove(s)
        return bool(gone)

    def ExportStills(self, galleryStills: list[FakeGalleryStill], folderPath: str, filePrefix: str,
                     format: str) -> bool:
        app = self._app
        assert app is not None
        if not app.gallery_panel_open or app._page != "color" or format not in STILL_EXPORT_FORMATS:
            return False
        if not os.path.isdir(folderPath) or not galleryStills or any(s not in self._stills for s in galleryStills):
            return False
        for still in galleryStills:
            stem = os.path.join(folderPath, f"{filePrefix}_{still._label}")
            if format != "drx":
                _write_image(f"{stem}.{format}", still._rgb)
            with open(f"{stem}.drx", "w", encoding="utf-8") as fh:
                fh.write("<?xml version=\"1.0\"?>\n<!-- fake: the grade is not modelled -->\n<DRX/>\n")
        return True


def _write_image(path: str, rgb: Any) -> None:
    """An 8-bit (16-bit for tif/dpx) image of ``rgb`` through OpenImageIO (test side only; imported here so the
    fake stays importable in the host's numpy-free Python for the tests that grab no still)."""
    import numpy as np
    import OpenImageIO as oiio

    ext = path.rsplit(".", 1)[1]
    pixels = np.ascontiguousarray(np.clip(rgb, 0, 1), np.float32)
    out = oiio.ImageOutput.create(path)
    if out is None:
        raise NotImplementedError(f"the fake cannot write .{ext} stills (OpenImageIO has no writer)")
    depth = "uint16" if ext in ("tif", "dpx") else "uint8"
    out.open(path, oiio.ImageSpec(pixels.shape[1], pixels.shape[0], 3, depth))
    out.write_image(pixels)
    out.close()


def _read_rgb(path: str) -> Any:
    import numpy as np
    import OpenImageIO as oiio

    inp = oiio.ImageInput.open(path)
    spec = inp.spec()
    px = np.asarray(inp.read_image(0, 0, 0, spec.nchannels, oiio.FLOAT), np.float32)
    inp.close()
    px = px.reshape(spec.height, spec.width, spec.nchannels)
    return np.repeat(px[..., :1], 3, -1) if spec.nchannels < 3 else px[..., :3]


class FakeGallery(ResolveObject):
    """[README Gallery]: GetAlbumName(galleryStillAlbum), SetAlbumName, GetCurrentStillAlbum ("Returns current album
    as a GalleryStillAlbum object"), SetCurrentStillAlbum, GetGalleryStillAlbums ("Returns the gallery Still albums
    as a list of GalleryStillAlbum objects"), GetGalleryPowerGradeAlbums, CreateGalleryStillAlbum ("or None if not
    successful"). A new project has one still album, "Stills 1" ([U]: Resolve's default album name)."""

    def __init__(self, app: FakeResolve):
        self._app = app
        self._albums = [FakeGalleryStillAlbum(app, "Stills 1")]
        self._power: list[FakeGalleryStillAlbum] = []
        self._current = self._albums[0]

    def GetAlbumName(self, galleryStillAlbum: FakeGalleryStillAlbum) -> str:
        return galleryStillAlbum._name if isinstance(galleryStillAlbum, FakeGalleryStillAlbum) else ""

    def SetAlbumName(self, galleryStillAlbum: FakeGalleryStillAlbum, albumName: str) -> bool:
        if not isinstance(galleryStillAlbum, FakeGalleryStillAlbum):
            return False
        galleryStillAlbum._name = str(albumName)
        return True

    def GetCurrentStillAlbum(self) -> FakeGalleryStillAlbum:
        return self._current

    def SetCurrentStillAlbum(self, galleryStillAlbum: FakeGalleryStillAlbum) -> bool:
        if galleryStillAlbum not in self._albums + self._power:
            return False
        self._current = galleryStillAlbum
        return True

    def GetGalleryStillAlbums(self) -> list[FakeGalleryStillAlbum]:
        return list(self._albums)

    def GetGalleryPowerGradeAlbums(self) -> list[FakeGalleryStillAlbum]:
        return list(self._power)

    def CreateGalleryStillAlbum(self) -> FakeGalleryStillAlbum:
        album = FakeGalleryStillAlbum(self._app, f"Stills {len(self._albums) + 1}")
        self._albums.append(album)
        return album

    # test side: a still already in the gallery (grabbed earlier by the colorist)
    def add_still(self, rgb: Any, label: str, album: FakeGalleryStillAlbum | None = None) -> FakeGalleryStill:
        still = FakeGalleryStill(self._app, rgb, label)
        (album or self._current)._stills.append(still)
        return still


class FakeProject(ResolveObject):
    """[README Project]: GetMediaPool, GetGallery, GetCurrentTimeline, GetName, GetUniqueId ("Returns a unique ID for the
    project item": unique across projects, so across fake apps too), ExportCurrentFrameAsStill."""

    def __init__(self, app: FakeResolve, name: str):
        self._app = app
        self._name = name
        self._pool = FakeMediaPool(app)
        self._gallery = FakeGallery(app)
        self._timeline: FakeTimeline | None = None
        self._id = f"project-{uuid.uuid4()}"

    def GetMediaPool(self) -> FakeMediaPool:
        return self._pool

    def GetGallery(self) -> FakeGallery:
        """[README Project]: "Returns the Gallery object"."""
        return self._gallery

    def GetCurrentTimeline(self) -> FakeTimeline | None:
        return self._timeline

    def GetName(self) -> str:
        return self._name

    def GetUniqueId(self) -> str:
        return self._id

    def ExportCurrentFrameAsStill(self, filePath: str) -> bool:
        """[README Project]: "ExportCurrentFrameAsStill(filePath) --> Bool # Exports current frame as still to
        supplied filePath. filePath must end in valid export file format. Returns True if successful, False
        otherwise." What the README leaves open, and how the fake settles it:
        - which formats are valid is not listed: the fake takes the image formats of ExportStills' list
          (``FRAME_EXPORT_FORMATS``, [U]); PNG is measured: "Returns True and writes a real PNG" (davinci-resolve-mcp
          docs/reference/headless-cli.md, "Everything that works headless").
        - the Gallery panel does not matter: "Project.ExportCurrentFrameAsStill worked in all four runs in both
          modes", where ExportStills wrote nothing in all four [R-LIM "GalleryStillAlbum.ExportStills"], which
          advises "Use Project.ExportCurrentFrameAsStill for pixels (verified in both modes, four for four)".
        - the frame: the current timeline's, at the playhead; davinci-resolve-mcp uses it to export "the composited
          frame" and see what is on screen (tests/live_drp_roundtrip_verification.py, after ``OpenPage("color")``
          and ``SetCurrentTimecode``). The grade is in it: [R-LIM "TimelineItem.SetCDL (write-only, no GetCDL)"]
          "Prove the applied look with a rendered frame (gallery_stills grab_and_export or
          Project.ExportCurrentFrameAsStill)" — advice, not a recorded measurement, so [U]. The fake gives the top
          video item's frame as graded (test side: ``item.grade``), as ``GrabStill`` does; lower tracks are not
          composited, and its size is the item's frame ([U]: the README gives no resolution).
        - no video under the playhead: False ([U]; "needs valid playhead position", davinci-resolve-mcp
          docs/reference/api-coverage.md, Project #39). The page is not a condition ([U]: which page the measured
          runs were on is not recorded).
        - into an existing folder only, the image alone ([U]: davinci-resolve-mcp checks "parent_dir_exists" before
          the call; no companion file is reported).
        Test side: ``app.frame_export_works = False`` makes it return False writing nothing — a False the README
        allows, for causes it does not name."""
        app = self._app
        timeline = self._timeline
        ext = filePath.rsplit(".", 1)[-1].lower() if "." in os.path.basename(filePath) else ""
        if not app.frame_export_works or timeline is None or ext not in FRAME_EXPORT_FORMATS:
            return False
        item = timeline.GetCurrentVideoItem()
        if item is None or not os.path.isdir(os.path.dirname(filePath) or "."):
            return False
        _write_image(filePath, item._frame_rgb(timeline.playhead - item.GetStart()))
        return True


class FakeProjectManager(ResolveObject):
    """[README ProjectManager]: GetCurrentProject."""

    def __init__(self, app: FakeResolve):
        self._app = app

    def GetCurrentProject(self) -> FakeProject | None:
        return self._app._project


class FakeFusion(ResolveObject):
    """``resolve.Fusion()`` [README "Using a script" example]; ``fusion.UIManager`` and ``GetResolve()`` [RES R4]."""

    def __init__(self, app: FakeResolve):
        self._app = app
        self.UIManager = FakeUIManager(app)

    def GetResolve(self) -> FakeResolve:
        return self._app


class FakeBMD:
    """The ``bmd`` global of a Fusion/Resolve script: ``bmd.UIDispatcher(ui)``, ``bmd.scriptapp("Resolve")``
    [RES A3/R4]."""

    def __init__(self, app: FakeResolve):
        self._app = app

    def UIDispatcher(self, ui: FakeUIManager) -> FakeUIDispatcher:
        return FakeUIDispatcher(ui)

    def scriptapp(self, name: str) -> FakeResolve | None:
        return self._app if name == "Resolve" else None


class FakeResolve(ResolveObject):
    """[README Resolve]: GetProductName ("DaVinci Resolve" or "DaVinci Resolve Studio", [R-LIM "Studio-gated
    calls on the free edition"]), GetVersion ("[major, minor, patch, build, suffix]"), GetVersionString
    ("major.minor.patch[suffix].build"), GetProjectManager, Fusion, the COMPOSITE_* constants
    ([README "Looking up Timeline item properties": COMPOSITE_NORMAL = 0]). Python scripting is Studio-only from
    21.1 ([RES A2]: "We have moved the ability to script in Python to the Studio version")."""

    COMPOSITE_NORMAL = 0
    COMPOSITE_ADD = 1

    def __init__(self, version: tuple = (21, 0, 4, 5), studio: bool = True, page: str = "edit"):
        self._thread = threading.get_ident()
        self.thread_violations: list[str] = []
        self._version = tuple(version[:3])
        self._version_fields = list(version) + [0] * (4 - len(version)) + [""]
        self._studio = studio
        self._page = page
        self.gallery_panel_open = True  # test side: ExportStills works only with it open [R-LIM]; not readable
        self.frame_export_works = True  # test side: False makes Project.ExportCurrentFrameAsStill fail (README allows)
        self._ids = 0
        self._project = FakeProject(self, "Project")
        self._pm = FakeProjectManager(self)
        self._fusion = FakeFusion(self)
        self._app = self

    def _new_id(self) -> str:
        self._ids += 1
        return f"id-{self._ids:04d}"

    def new_timeline(self, name: str = "Timeline 1", fps: int = 24, start_frame: int = 86400) -> FakeTimeline:
        self._project._timeline = FakeTimeline(self, name, fps, start_frame)
        return self._project._timeline

    def media_item(self, name: str, **props: Any) -> FakeMediaPoolItem:
        """A clip already in the Master bin (as if imported by the artist)."""
        mpi = FakeMediaPoolItem(self, name, props)
        self._project._pool._root._clips.append(mpi)
        return mpi

    @property
    def ui(self) -> FakeUIManager:
        return self._fusion.UIManager

    def script_globals(self) -> dict[str, Any]:
        """The globals a Workspace ▸ Scripts Python script sees: ``resolve``, ``fusion``/``fu``, ``bmd``, ``app``
        (``app.GetResolve()``) [RES A2 "Getting the resolve object inside Resolve", R4]."""
        return {"resolve": self, "fusion": self._fusion, "fu": self._fusion, "app": self._fusion,
                "bmd": FakeBMD(self), "__name__": "__main__"}

    def GetProductName(self) -> str:
        return "DaVinci Resolve Studio" if self._studio else "DaVinci Resolve"

    def GetVersion(self) -> list[Any]:
        return list(self._version_fields)

    def GetVersionString(self) -> str:
        major, minor, patch, build, suffix = self._version_fields[:5]
        return f"{major}.{minor}.{patch}{suffix}.{build}"

    def GetProjectManager(self) -> FakeProjectManager:
        return self._pm

    def Fusion(self) -> FakeFusion:
        return self._fusion

    def GetCurrentPage(self) -> str:
        """[README Resolve]: "Returns the page currently displayed in the main window"."""
        return self._page

    def OpenPage(self, pageName: str) -> bool:
        """[README Resolve]: "Switches to indicated page in DaVinci Resolve" (``PAGES``) --> Bool."""
        if pageName not in PAGES:
            return False
        self._page = pageName
        return True


Driver = Callable[[FakeUIDispatcher], None]
