"""Everything that touches Resolve's scripting API, on the script's thread.

API facts relied on (sources: Blackmagic's scripting README "Last Updated: 24 Jul 2026", [README]; the
measured ledger samuelgursky/davinci-resolve-mcp docs/reference/api-limitations.md, [R-LIM]):
- ``hasattr`` is always True on Resolve objects [R-LIM "hasattr()"], so optional calls are chosen by version.
- ``Timeline.GetSelectedClips`` exists from 21.0.4 [README Timeline; davinci-resolve-mcp#131]; before it,
  ``Timeline.GetCurrentVideoItem`` [README Timeline].
- ``TimelineItem.GetStart`` / ``GetEnd`` are absolute timeline frames, ``GetEnd`` exclusive; ``GetLeftOffset`` /
  ``GetRightOffset`` are the handles, in media frames ([README TimelineItem]; [R-LIM "TimelineItem.
  GetSourceStartFrame"]: GetLeftOffset is the exact in-point on video, GetSourceStartFrame can be one off).
- Markers: TimelineItem frameIds are item-relative ("indicates a single green marker at clip offset 96", [README
  TimelineItem GetMarkers]); Timeline frameIds are relative to the timeline's start ("… at timeline offset 96",
  [README Timeline GetMarkers]; GetStartFrame is the timeline's first frame); MediaPoolItem frameIds are offsets
  into the media ("one 'Green' marker at offset 96 (position of the marker)", [README MediaPoolItem GetMarkers]),
  counted from its first frame [U]. Colours are strings, there are no MARKER_* constants [R-LIM "AnalyzeForSlate
  markerColor"]; the 16 names are the README's "Analyze Slate Settings" list.
- Retime: no speed property; the GetSourceStart/EndFrame span against the record duration is the witness
  [R-LIM "Clip speed / retime ratio"].
- ``ImportMedia([{"FilePath", "StartIndex", "EndIndex"}])`` imports one sequence clip into the CURRENT folder
  [README MediaPool; R-LIM "ImportMedia (current-folder destination only)"].
- ``AppendToTimeline([{clipInfo}])``: recordFrame absolute, endFrame exclusive; an overlap gives a dead handle,
  so the result is read back [README MediaPool; R-LIM "AppendToTimeline (overlapping records)"].
- Python scripting is Studio-only from 21.1 (release notes, quoted in ynput/ayon-resolve PR #111);
  ``GetProductName()`` tells the editions apart [R-LIM "Studio-gated calls on the free edition"].
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Final, Iterator

from coolcolor_protocol.jobspec import file_sha256

if TYPE_CHECKING:  # pragma: no cover - the stubs are for mypy only
    from fusionscript import (GalleryStill, GalleryStillAlbum, MediaPool, MediaPoolClipInfo, MediaPoolItem, Project,
                              Resolve, Timeline, TimelineItem)

SELECTED_CLIPS_SINCE = (21, 0, 4)  # Timeline.GetSelectedClips [README 24 Jul 2026; davinci-resolve-mcp#131]
PYTHON_STUDIO_ONLY_SINCE = (21, 1)  # "moved the ability to script in Python to the Studio version"
KEYFRAME_COLOR = "Cyan"  # the default; the dialog's choice is remembered per project (prefs)
MARKER_COLORS = ("Blue", "Cyan", "Green", "Yellow", "Red", "Pink", "Purple", "Fuchsia", "Rose", "Lavender", "Sky",
                 "Mint", "Lemon", "Sand", "Cocoa", "Cream")  # [README "Analyze Slate Settings"]
KEYFRAME_TAG = "coolcolor:keyframe"  # customData of the markers the dialog's button adds (not needed to count)
BIN_NAME = "CoolColor"
VIDEO_TYPES = ("Video", "Video + Audio")  # GetClipProperty("Type") values of a plain video clip
REFUSED_TYPES = {"Compound": "a compound clip", "Multicam": "a multicam clip", "Timeline": "a nested timeline",
                 "Still": "a still image", "Audio": "an audio clip", "Generator": "a generator",
                 "Fusion Title": "a title", "Title": "a title"}
_SEQUENCE_RE = re.compile(r"\[(\d+)-(\d+)\]")


class HostError(Exception):
    """A reason to show in the dialog (one line); nothing has been changed in the project."""


def version_tuple(resolve: Resolve) -> tuple[int, int, int]:
    """``GetVersion()`` → (major, minor, patch) ([README Resolve]: "[major, minor, patch, build, suffix]")."""
    fields = resolve.GetVersion() or []
    out = []
    for v in list(fields)[:3]:
        try:
            out.append(int(v))
        except (TypeError, ValueError):
            out.append(0)
    while len(out) < 3:
        out.append(0)
    return out[0], out[1], out[2]


def is_studio(resolve: Resolve) -> bool:
    return "Studio" in str(resolve.GetProductName() or "")


def check_edition(resolve: Resolve) -> None:
    """The free edition from 21.1 runs no Python scripts; say so instead of failing later."""
    if not is_studio(resolve) and version_tuple(resolve)[:2] >= PYTHON_STUDIO_ONLY_SINCE:
        raise HostError(f"CoolColor needs DaVinci Resolve Studio: since Resolve 21.1 Python scripting is a "
                        f"Studio feature (this is {resolve.GetProductName()} {resolve.GetVersionString()})")


def current_timeline(resolve: Resolve) -> tuple[Project, Timeline]:
    project = resolve.GetProjectManager().GetCurrentProject()
    if not project:
        raise HostError("no project is open")
    timeline = project.GetCurrentTimeline()
    if not timeline:
        raise HostError("no timeline is open: open one on the Edit page and select clips")
    return project, timeline


def selected_items(resolve: Resolve, timeline: Timeline) -> list[TimelineItem]:
    """The selection: ``GetSelectedClips`` from 21.0.4, else the video item under the playhead."""
    items: list[Any] = []
    if version_tuple(resolve) >= SELECTED_CLIPS_SINCE:
        items = list(getattr(timeline, "GetSelectedClips")() or [])  # noqa: B009 (not in fusionscript-stubs 21.0)
    if not items:
        current = timeline.GetCurrentVideoItem()
        items = [current] if current else []
    items = [i for i in items if i and (i.GetTrackTypeAndIndex() or ["", 0])[0] == "video"]
    if not items:
        raise HostError("nothing selected: select video clips on the Edit timeline (or park the playhead on one)")
    return items


@dataclass
class Keyframe:
    """A marker taken as a keyframe: where it is (``origin``: "clip", "timeline" or "media" marker), its name, its
    frameId in its own object's frames (to delete it), and the clip frame and source frame it marks."""

    offset: int  # relative to the item's first frame
    source_frame: int
    origin: str = "clip"
    name: str = ""
    marker_frame: float = 0.0

    def describe(self) -> str:
        label = f" {self.name!r}" if self.name else ""
        return f"{self.origin} marker{label}"


@dataclass
class ClipSource:
    """What the daemon reads for one timeline item, in the source's own frame numbers."""

    item_name: str
    item_id: str
    source: str  # a %0Nd pattern or a movie path
    source_start: int  # frame number of the media's first frame (an image sequence's first file; 0 for a movie)
    left_offset: int  # media frames before the item's in-point (GetLeftOffset)
    duration: int  # record frames
    right_offset: int
    fps: float
    record_start: int  # GetStart(): absolute timeline frame
    track: int
    keyframes: list[Keyframe] = field(default_factory=list)

    @property
    def first(self) -> int:
        return self.source_start + self.left_offset

    @property
    def last(self) -> int:
        return self.first + self.duration - 1

    def used_range(self, handles: int) -> tuple[int, int]:
        """The clip's frames, widened by ``handles`` on each side as far as the media allows."""
        left = min(max(0, handles), self.left_offset)
        right = min(max(0, handles), self.right_offset)
        return self.first - left, self.last + right

    def source_frame(self, offset: int) -> int:
        """Item-relative marker frame → source frame: source start + left offset (the in-point) + offset."""
        return self.first + int(offset)

    def offset_of(self, source_frame: int) -> int:
        return int(source_frame) - self.first


def _parse_file_path(path: str, props: dict[str, Any]) -> tuple[str, int]:
    """``GetClipProperty("File Path")`` → (daemon source, first frame number). An image sequence shows as
    ``name.[1001-1096].exr`` [U: public code; confirm on a real Resolve]; a printf (``%04d``) or hash (``####``)
    pattern is read too, its first frame from the files on disk; a movie is a plain path (frame 0)."""
    folder, base = os.path.dirname(path), os.path.basename(path)
    m = _SEQUENCE_RE.search(base)
    if m:
        return os.path.join(folder, base.replace(m.group(0), f"%0{len(m.group(1))}d")), int(m.group(1))
    printf = re.search(r"%0?(\d*)d", base)
    hashes = re.search(r"#+", base)
    if printf or hashes:
        token = printf.group(0) if printf else hashes.group(0)  # type: ignore[union-attr]
        width = int(printf.group(1) or 1) if printf else len(token)
        pattern = os.path.join(folder, base.replace(token, f"%0{width}d", 1))
        head, tail = base.split(token, 1)
        numbers = []
        for name in os.listdir(folder) if os.path.isdir(folder) else []:
            if name.startswith(head) and name.endswith(tail) and name[len(head):len(name) - len(tail)].isdigit():
                numbers.append(int(name[len(head):len(name) - len(tail)]))
        if not numbers:
            start = str(props.get("Start", "")).strip()
            return pattern, int(start) if start.isdigit() else 0
        return pattern, min(numbers)
    return path, 0


_TRANSFORM_KEYS = ("ZoomX", "ZoomY", "Pan", "Tilt", "RotationAngle", "CropLeft", "CropRight", "CropTop",
                   "CropBottom")  # [README "Looking up Timeline item properties"]


def _transformed(item: TimelineItem) -> dict[str, float]:
    """The Inspector transform keys that differ from identity (GetProperty with no key gives them all
    [README TimelineItem GetProperty]; one key at a time where that is not a dict)."""
    props = getattr(item, "GetProperty")()  # noqa: B009 (not in fusionscript-stubs 21.0)
    if not isinstance(props, dict):
        props = {k: item.GetProperty(k) for k in _TRANSFORM_KEYS}
    out = {}
    for k in _TRANSFORM_KEYS:
        identity = 1.0 if k.startswith("Zoom") else 0.0
        raw: Any = props.get(k)
        try:
            value = identity if raw is None else float(raw)
        except (TypeError, ValueError):
            continue
        if abs(value - identity) > 1e-9:
            out[k] = value
    return out


def _first_file(source: str, start: int) -> str:
    return source % start if "%" in source else source


def clip_source(item: TimelineItem) -> ClipSource:
    """Refuse (HostError naming the reason) what the daemon cannot read as-is; else describe the clip."""
    name = item.GetName() or "clip"
    mpi = item.GetMediaPoolItem()
    if not mpi:
        raise HostError(f"{name}: not a media clip (a generator, title or gap); select a video clip")
    props = mpi.GetClipProperty(None)
    props = props if isinstance(props, dict) else {}
    kind = str(props.get("Type", ""))
    if kind in REFUSED_TYPES:
        raise HostError(f"{name}: {REFUSED_TYPES[kind]} cannot be colorized — CoolColor reads the clip's own "
                        "media file; decompose it (or render it in place) and select the clip inside")
    if kind and kind not in VIDEO_TYPES:
        raise HostError(f"{name}: clip type {kind!r} is not a video clip")
    path = str(props.get("File Path", "") or "")
    if not path:
        raise HostError(f"{name}: no media file (offline or generated clip)")
    source, start = _parse_file_path(path, props)
    if not os.path.exists(_first_file(source, start)):
        raise HostError(f"{name}: media offline — {_first_file(source, start)} does not exist; relink it first")
    duration = int(item.GetDuration(False))
    span = int(item.GetSourceEndFrame()) - int(item.GetSourceStartFrame())
    if span and abs(span - duration) > 1:
        raise HostError(f"{name}: retimed clip ({span} source frames over {duration} record frames); CoolColor "
                        "colorizes media frames, so render the retime first (Deliver ▸ EXR of the used range, "
                        "import it) and colorize that clip")
    resized = _transformed(item)
    if resized:
        raise HostError(f"{name}: transformed in the Inspector ({', '.join(sorted(resized))}); CoolColor "
                        "colorizes the media as shot — reset the transform, or render the clip first")
    try:
        fps = float(str(props.get("FPS", "24")).split()[0])
    except (ValueError, IndexError):
        fps = 24.0
    track_type, track = (item.GetTrackTypeAndIndex() or ["video", 1])[:2]
    return ClipSource(item_name=name, item_id=str(item.GetUniqueId()), source=source, source_start=start,
                      left_offset=int(item.GetLeftOffset(False)), duration=duration,
                      right_offset=int(item.GetRightOffset(False)), fps=fps, record_start=int(item.GetStart(False)),
                      track=int(track))


# ------------------------------------------------------------------ keyframes as markers
def _markers(owner: Any) -> list[tuple[float, dict[str, Any]]]:
    found = owner.GetMarkers() if owner else None
    return sorted((float(k), dict(v)) for k, v in (found if isinstance(found, dict) else {}).items())


def read_keyframes(item: TimelineItem, clip: ClipSource, color: str = KEYFRAME_COLOR,
                   timeline: Timeline | None = None) -> list[Keyframe]:
    """Every marker of ``color`` on the clip is a keyframe, however it was made (the dialog's button or the
    editor's M key): the item's own markers (any frame, so one left beyond a trimmed end is reported, not lost),
    the timeline's markers over the item's record range, and the media's markers inside the cut. One keyframe per
    source frame; the clip's marker wins over the others. Markers of other colours are left alone."""
    out: dict[int, Keyframe] = {}

    def take(offset: int, origin: str, info: dict[str, Any], frame: float) -> None:
        source = clip.source_frame(offset)
        if source not in out:
            out[source] = Keyframe(offset, source, origin, str(info.get("name") or ""), frame)

    for frame, info in _markers(item):
        if info.get("color") == color:
            take(int(round(frame)), "clip", info, frame)
    if timeline is not None:
        start = int(timeline.GetStartFrame())
        for frame, info in _markers(timeline):
            offset = start + int(round(frame)) - clip.record_start
            if info.get("color") == color and 0 <= offset < clip.duration:
                take(offset, "timeline", info, frame)
    for frame, info in _markers(item.GetMediaPoolItem()):
        offset = clip.offset_of(clip.source_start + int(round(frame)))
        if info.get("color") == color and 0 <= offset < clip.duration:
            take(offset, "media", info, frame)
    return sorted(out.values(), key=lambda k: k.source_frame)


def playhead_offset(timeline: Timeline, item: TimelineItem) -> int:
    """The playhead (absolute timecode) as a frame offset into ``item``."""
    tc = str(timeline.GetCurrentTimecode() or "")
    parts = re.split(r"[:;]", tc)
    if len(parts) != 4:
        raise HostError(f"cannot read the playhead timecode {tc!r}")
    fps_text = str(timeline.GetSetting("timelineFrameRate") or "24")
    fps = int(round(float(fps_text.split()[0])))
    h, m, s, f = (int(p) for p in parts)
    frame = ((h * 60 + m) * 60 + s) * fps + f
    return frame - int(item.GetStart(False))


def add_keyframe(timeline: Timeline, item: TimelineItem, color: str = KEYFRAME_COLOR) -> int:
    offset = playhead_offset(timeline, item)
    if not 0 <= offset < int(item.GetDuration(False)):
        raise HostError(f"the playhead is not on {item.GetName()}: park it on the frame to mark")
    data = json.dumps({"app": KEYFRAME_TAG, "v": 1})
    if not item.AddMarker(float(offset), color, "CoolColor keyframe", "", 1.0, data):  # type: ignore[arg-type]
        raise HostError(f"{item.GetName()}: could not add a marker at frame {offset} (one is already there?)")
    return offset


def remove_keyframe(timeline: Timeline, item: TimelineItem, keyframe: Keyframe, color: str = KEYFRAME_COLOR) -> None:
    """Delete the marker that made ``keyframe``, on the object that holds it, if it still has the keyframe colour."""
    owner: Any = {"clip": item, "timeline": timeline, "media": item.GetMediaPoolItem()}.get(keyframe.origin)
    info = dict(_markers(owner)).get(float(keyframe.marker_frame))
    if info is None or info.get("color") != color:
        raise HostError(f"no {color} marker at frame {keyframe.offset} of {item.GetName()} any more")
    owner.DeleteMarkerAtFrame(float(keyframe.marker_frame))


# ------------------------------------------------------------------ results
def coolcolor_bin(pool: MediaPool) -> Any:
    root = pool.GetRootFolder()
    for sub in root.GetSubFolderList() or []:
        if sub.GetName() == BIN_NAME:
            return sub
    folder = pool.AddSubFolder(root, BIN_NAME)
    if not folder:
        raise HostError(f"could not create the {BIN_NAME!r} bin in the Media Pool")
    return folder


def import_sequence(project: Project, pattern: str, first: int, last: int, comments: str) -> MediaPoolItem:
    """Import ``pattern`` (``%04d``) first..last as one clip into the CoolColor bin, provenance in Comments;
    the artist's current folder is restored afterwards."""
    pool = project.GetMediaPool()
    folder = coolcolor_bin(pool)
    previous = pool.GetCurrentFolder()
    pool.SetCurrentFolder(folder)
    try:
        name = os.path.basename(pattern)
        found: MediaPoolItem | None = None
        for existing in folder.GetClipList() or []:  # the same result imported before: reuse it
            path = str(existing.GetClipProperty("File Path") or "")
            m = _SEQUENCE_RE.search(os.path.basename(path))
            if m and os.path.dirname(path) == os.path.dirname(pattern) and \
                    os.path.basename(path).replace(m.group(0), f"%0{len(m.group(1))}d") == name and \
                    int(m.group(1)) == first and int(m.group(2)) == last:
                found = existing
                break
        if found is None:
            items = pool.ImportMedia([{"FilePath": pattern, "StartIndex": first, "EndIndex": last}])
            if not items:
                raise HostError(f"Resolve did not import {pattern} ({first}-{last})")
            found = items[0]
        found.SetMetadata("Comments", comments)
        return found
    finally:
        if previous:
            pool.SetCurrentFolder(previous)


def replace_comp(item: TimelineItem, comp_path: str, backup_dir: str, expect_tool: str) -> Any:
    """Import ``comp_path`` as the item's only comp.

    With two comps "the wrong one renders" (docs/hosts.md R2), so the others go — but first each is exported to
    ``backup_dir`` (``ExportFusionComp(path, compIndex)`` [README TimelineItem]); one that cannot be exported
    stops everything before anything is deleted. An import that fails, or gives an empty comp (an unparsable file
    "imports as an EMPTY comp, silently", docs/hosts.md R2), is undone and the artist's comps re-imported; HostError.
    """
    names = list(item.GetFusionCompNameList() or [])
    backups = []
    for index, name in enumerate(names, start=1):
        path = os.path.join(backup_dir, f"previous-{index}-{re.sub(r'[^A-Za-z0-9_.-]+', '_', str(name))}.comp")
        if not item.ExportFusionComp(path, index) or not os.path.isfile(path):
            raise HostError(f"{item.GetName()}: could not back up its Fusion comp {name!r}; nothing was changed")
        backups.append(path)
    for name in names:
        item.DeleteFusionCompByName(name)
    comp = item.ImportFusionComp(comp_path)
    if comp and getattr(comp, "FindTool")(expect_tool):  # noqa: B009 (not in fusionscript-stubs 21.0)
        return comp
    for name in list(item.GetFusionCompNameList() or []):
        item.DeleteFusionCompByName(name)
    for path in backups:
        item.ImportFusionComp(path)
    raise HostError(f"{item.GetName()}: Resolve did not build the CoolColor comp from {comp_path}")


def place_plate(resolve: Resolve, timeline: Timeline, plate: MediaPoolItem, clip: ClipSource,
                first: int) -> TimelineItem:
    """The RGB plate on the first track above the clip that is free over its record range, NORMAL composite.
    ``first``: the plate sequence's first frame (the clip's used range may include handles)."""
    start_in_plate = clip.first - first
    record = clip.record_start
    track = clip.track + 1
    while True:
        if track > timeline.GetTrackCount("video"):
            timeline.AddTrack("video", "")
            track = timeline.GetTrackCount("video")
        busy = any(i.GetStart(False) < record + clip.duration and record < i.GetEnd(False)
                   for i in (timeline.GetItemListInTrack("video", track) or []))
        if not busy:
            break
        track += 1
    info: MediaPoolClipInfo = {
        "mediaPoolItem": plate, "startFrame": start_in_plate, "endFrame": start_in_plate + clip.duration,
        "mediaType": 1, "trackIndex": track, "recordFrame": record}
    pool: Any = resolve.GetProjectManager().GetCurrentProject().GetMediaPool()  # the stub's clipInfo overload
    placed: list[Any] = list(pool.AppendToTimeline([info]) or [])              # is malformed (-> [TimelineItem])
    item: TimelineItem | None = placed[0] if placed else None
    # a dead handle answers None to everything: read the placement back
    if not item or item.GetStart(False) != record or list(item.GetTrackTypeAndIndex() or [])[:2] != ["video", track]:
        raise HostError(f"Resolve did not place the colorized plate on V{track} at frame {record}")
    item.SetProperty("CompositeMode", getattr(resolve, "COMPOSITE_NORMAL", 0))
    return item


# ------------------------------------------------------------------ references: gallery stills
# Facts (docs/hosts.md R5): ``Timeline.GrabStill()`` "Grabs still from the current video clip. Returns a
# GalleryStill object" [README Timeline], into the current still album, on the Color page [U]; ``GalleryStillAlbum.
# ExportStills([galleryStill], folderPath, filePrefix, format)`` writes the image and a companion .drx, under names
# the README does not give, and returns a bare False writing nothing unless the Gallery panel is open on the Color
# page [R-LIM "GalleryStillAlbum.ExportStills (Gallery panel must be visible)"]; a GalleryStill "does not provide
# any API functions" [README GalleryStill]: nothing ties a gallery still to a clip or a frame but its label.
# ``Project.ExportCurrentFrameAsStill(filePath)`` "Exports current frame as still to supplied filePath. filePath must
# end in valid export file format. Returns True if successful, False otherwise." [README Project]; it does not
# need the Gallery panel ("worked in all four runs in both modes" where ExportStills wrote nothing in all four,
# [R-LIM "GalleryStillAlbum.ExportStills"]).
STILL_FORMAT: Final = "png"  # of the README's list, one the daemon reads as display sRGB (SPEC §3.4 references), lossless
REFERENCE_FOLDER = "references"
_STAGING_PREFIX = ".export-"


@dataclass
class GalleryStillEntry:
    """A still of the gallery as the dialog lists it: its album's name and its label."""

    album_name: str
    label: str
    album: Any
    still: Any

    def describe(self) -> str:
        return f"{self.album_name}: {self.label or '(no label)'}"


def gallery_stills(project: Project) -> list[GalleryStillEntry]:
    """Every still of every still album (``Gallery.GetGalleryStillAlbums``, ``GalleryStillAlbum.GetStills``,
    ``GetLabel``, ``Gallery.GetAlbumName`` [README Gallery, GalleryStillAlbum])."""
    gallery = project.GetGallery()
    if not gallery:
        return []
    out = []
    for album in gallery.GetGalleryStillAlbums() or []:
        name = str(gallery.GetAlbumName(album) or "album")
        for still in album.GetStills() or []:
            out.append(GalleryStillEntry(name, str(album.GetLabel(still) or ""), album, still))
    return out


def _export_into(folder: str, what: str, write: Callable[[str], Any]) -> tuple[str, str] | None:
    """Have Resolve write an image into a fresh staging folder of ours (``write(staging)``) and keep it as
    ``<sha256[:16]>.png`` in ``folder``: (path, sha256), or None when the call failed or wrote no image.

    Resolve names exported stills itself (undocumented) and writes a .drx beside the image, so every export goes to
    a staging folder, the one image found there is kept (the same pixels, the same file: a re-grab of an unchanged
    grade is the same reference) and the staging folder is removed, whatever happened."""
    os.makedirs(folder, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=_STAGING_PREFIX, dir=folder)
    try:
        ok = write(staging)
        images = sorted(n for n in os.listdir(staging) if n.lower().endswith("." + STILL_FORMAT))
        if not ok or not images:
            return None
        if len(images) > 1:
            raise HostError(f"Resolve exported {len(images)} images for {what} ({', '.join(images)}); expected one")
        staged = os.path.join(staging, images[0])
        sha = file_sha256(staged)
        path = os.path.join(folder, f"{sha[:16]}.{STILL_FORMAT}")
        os.replace(staged, path)
        return path, sha
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _export_stills(album: GalleryStillAlbum, still: GalleryStill) -> Callable[[str], Any]:
    return lambda staging: album.ExportStills([still], staging, "coolcolor", STILL_FORMAT)


def export_still(album: GalleryStillAlbum, still: GalleryStill, folder: str, what: str) -> tuple[str, str]:
    """Export one gallery still as ``STILL_FORMAT`` into ``folder``; return (path, sha256). Nothing written is a
    HostError naming the Gallery panel, the documented cause (a chosen still has no other way out: the current
    frame is not that still)."""
    found = _export_into(folder, what, _export_stills(album, still))
    if found is None:
        raise HostError(f"Resolve exported nothing for {what}: open the Gallery on the Color page (Workspace ▸ "
                        "Gallery) — ExportStills writes no file while it is closed — and try again")
    return found


@contextlib.contextmanager
def _on_color_page(resolve: Resolve) -> Iterator[None]:
    """The Color page for the duration (stills are grabbed and exported there), then the page the colorist had."""
    page = resolve.GetCurrentPage()
    if page != "color" and not resolve.OpenPage("color"):
        raise HostError("Resolve did not open the Color page, where stills are grabbed; open it and try again")
    try:
        yield
    finally:
        if page and page != "color":
            resolve.OpenPage(page)


def export_gallery_still(resolve: Resolve, entry: GalleryStillEntry, folder: str) -> tuple[str, str]:
    """A still already in the gallery, exported as a reference file: (path, sha256); HostError."""
    with _on_color_page(resolve):
        return export_still(entry.album, entry.still, folder, f"the gallery still {entry.describe()}")


def grab_graded_still(resolve: Resolve, project: Project, timeline: Timeline, item: TimelineItem,
                      folder: str, label: str) -> tuple[str, str]:
    """The frame at the playhead of ``item`` as the colorist graded it: ``GrabStill`` on the Color page (opened
    for the grab if another page is showing, and given back after), labelled ``label`` in the gallery so it can be
    found and picked again, exported with ``ExportStills`` — or, when that writes nothing (the Gallery panel is
    closed), with ``Project.ExportCurrentFrameAsStill``. ``item`` must be the video Resolve grabs from (the top
    item under the playhead: a plate placed above it would be grabbed instead). Returns (path, sha256);
    HostError otherwise."""
    current = timeline.GetCurrentVideoItem()
    if not current or str(current.GetUniqueId()) != str(item.GetUniqueId()):
        top = current.GetName() if current else "nothing"
        raise HostError(f"Resolve grabs the top video at the playhead, which is {top}, not {item.GetName()}: "
                        "disable the tracks above it and try again")
    with _on_color_page(resolve):
        still = timeline.GrabStill()
        gallery = project.GetGallery()
        album = gallery.GetCurrentStillAlbum() if gallery else None
        if not still or not album:
            raise HostError(f"Resolve grabbed no still of {item.GetName()} (GrabStill needs the Color page and the "
                            "clip under the playhead)")
        album.SetLabel(still, label)
        what = f"the still of {item.GetName()}"
        # The gallery still first: it is documented as the still "from the current video clip" — the clip, as
        # graded — and is the path davinci-resolve-mcp calls "the most reliable way to get a color-graded frame
        # preview" (its SKILL.md, grab_and_export), while ExportCurrentFrameAsStill's "current frame" is the
        # timeline's composited frame (davinci-resolve-mcp tests/live_drp_roundtrip_verification.py) whose grade
        # is advised, not measured [R-LIM "TimelineItem.SetCDL"]. ExportStills writes nothing while the Gallery
        # panel is closed, which no call can see or change; then the current frame, which needs no panel and was
        # measured four for four [R-LIM "GalleryStillAlbum.ExportStills"], is the same frame: the playhead is on
        # ``item``, the top video there (checked above), on the Color page. The still stays in the gallery,
        # labelled, either way.
        found = _export_into(folder, what, _export_stills(album, still))
        if found is not None:
            return found
        if not _is_current(project, timeline):
            raise HostError(f"Resolve exported nothing for {what}: open the Gallery on the Color page (Workspace ▸ "
                            "Gallery) and try again — ExportStills writes no file while it is closed, and the "
                            f"current frame is of another timeline than {timeline.GetName()}")
        found = _export_into(folder, what, lambda staging: project.ExportCurrentFrameAsStill(
            os.path.join(staging, f"frame.{STILL_FORMAT}")))
        if found is None:
            raise HostError(f"Resolve exported nothing for {what}: open the Gallery on the Color page (Workspace ▸ "
                            "Gallery) and try again — ExportStills writes no file while it is closed, and "
                            "ExportCurrentFrameAsStill wrote none either")
        return found


def _is_current(project: Project, timeline: Timeline) -> bool:
    """``ExportCurrentFrameAsStill`` exports the current timeline's frame: only the dialog's timeline will do."""
    current = project.GetCurrentTimeline()
    return bool(current) and str(current.GetUniqueId()) == str(timeline.GetUniqueId())
