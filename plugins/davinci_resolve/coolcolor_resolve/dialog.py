"""The CoolColor dialog (Fusion UIManager) and what its buttons do.

Every handler runs on the script's thread (UIDispatcher callbacks, and ``ui.Timer`` timeouts, which "deliver
callbacks on the UI dispatcher thread" [docs/hosts.md A3]); an error becomes one line in the
dialog's status, never a traceback, and nothing already imported or placed is undone.
"""

from __future__ import annotations

import os
import traceback
from typing import TYPE_CHECKING, Any

from coolcolor_protocol import abfiles
from coolcolor_resolve import comp as comp_file
from coolcolor_resolve import host, prefs
from coolcolor_resolve.host import ClipSource, GalleryStillEntry, HostError, Keyframe
from coolcolor_resolve.jobs import (ClipJob, Daemon, Reference, Settings, build_spec, frame_path, submit_key,
                                   provenance_comment, reference_folder)

if TYPE_CHECKING:  # pragma: no cover
    from fusionscript import Resolve, Timeline, TimelineItem

WINDOW_ID = "CoolColor"
POLL_MS = 500
ENCODINGS = abfiles.BUILTIN_ENCODINGS
ACTIVE: Controller | None = None  # the open dialog (one per script run); for the console and tests
RESULTS = (("comp", "Fusion comp on the clip (ab layer)"), ("plate", "RGB plate on the track above"))


class Controller:
    """The dialog's state: the selected clips, their jobs, the daemon."""

    def __init__(self, resolve: Resolve, ui: Any, dispatcher: Any) -> None:
        self.resolve = resolve
        self.ui = ui
        self.disp = dispatcher
        self.daemon = Daemon()
        self.items: list[TimelineItem] = []
        self.clips: dict[str, ClipSource] = {}  # item id -> clip
        self.refused: list[str] = []
        self.jobs: list[ClipJob] = []
        self.status_lines: list[str] = []
        self.timeline: Timeline | None = None
        self.project_id = ""
        self.key_color = host.KEYFRAME_COLOR  # markers of this colour are keyframes (remembered per project)
        self.references: list[Reference] = []  # graded frames (per clip) and exemplars (every clip) to send
        self.gallery: list[GalleryStillEntry] = []  # the gallery's stills, as listed in the dialog
        self.win: Any = None
        self.timer: Any = None

    # ------------------------------------------------------------------ building
    def load_selection(self) -> None:
        host.check_edition(self.resolve)
        project, self.timeline = host.current_timeline(self.resolve)
        self.project_id = str(project.GetUniqueId() or "")
        color = prefs.load(self.project_id).get("keyframe_color") if self.project_id else None
        if color in host.MARKER_COLORS:
            self.key_color = str(color)
        self.items = host.selected_items(self.resolve, self.timeline)
        for item in self.items:
            try:
                clip = host.clip_source(item)
            except HostError as exc:
                self.refused.append(str(exc))
                continue
            clip.keyframes = host.read_keyframes(item, clip, self.key_color, self.timeline)
            self.clips[clip.item_id] = clip

    def build(self) -> Any:
        ui = self.ui
        layout = ui.VGroup([
            ui.Label({"ID": "Clips", "Text": "", "WordWrap": True}),
            ui.Label({"Text": "Prompt"}),
            ui.TextEdit({"ID": "Prompt", "PlainText": ""}),
            ui.HGroup([ui.Label({"Text": "Negative prompt"}), ui.LineEdit({"ID": "Negative", "Text": ""})]),
            ui.HGroup([ui.Label({"Text": "Keyframes: markers of colour"}), ui.ComboBox({"ID": "KeyColor"}),
                       ui.ComboBox({"ID": "Keyframes"}),
                       ui.Button({"ID": "AddKeyframe", "Text": "Mark keyframe at playhead"}),
                       ui.Button({"ID": "RemoveKeyframe", "Text": "Remove keyframe"})]),
            ui.HGroup([ui.Label({"Text": "References"}), ui.ComboBox({"ID": "References"}),
                       ui.Button({"ID": "UseGraded", "Text": "Use the graded frame at the playhead as reference"}),
                       ui.Button({"ID": "RemoveReference", "Text": "Remove reference"})]),
            ui.HGroup([ui.Label({"Text": "Gallery stills"}), ui.ComboBox({"ID": "GalleryStills"}),
                       ui.Button({"ID": "UseGalleryStill", "Text": "Use this still as exemplar"}),
                       ui.Button({"ID": "RefreshGallery", "Text": "Refresh"})]),
            ui.HGroup([ui.Label({"Text": "Range"}), ui.ComboBox({"ID": "Range"}),
                       ui.SpinBox({"ID": "Handles", "Minimum": 0, "Maximum": 1000, "Value": 8})]),
            ui.HGroup([ui.Label({"Text": "Seed"}), ui.SpinBox({"ID": "Seed", "Minimum": 0, "Maximum": 2**31 - 1,
                                                               "Value": 0}),
                       ui.Label({"Text": "Steps"}), ui.SpinBox({"ID": "Steps", "Minimum": 1, "Maximum": 500,
                                                                 "Value": 20}),
                       ui.Label({"Text": "Input encoding"}), ui.ComboBox({"ID": "Encoding"})]),
            ui.HGroup([ui.Label({"Text": "Result"}), ui.ComboBox({"ID": "Result"})]),
            ui.HGroup([ui.Button({"ID": "Colorize", "Text": "Colorize"}),
                       ui.Button({"ID": "Preview", "Text": "Preview keyframe"}),
                       ui.Button({"ID": "Cancel", "Text": "Cancel"}),
                       ui.Button({"ID": "Close", "Text": "Close"})]),
            ui.Label({"ID": "Progress", "Text": "", "WordWrap": True}),
            ui.Label({"ID": "UnknownWords", "Text": "", "WordWrap": True}),
            ui.Label({"ID": "Status", "Text": "", "WordWrap": True}),
        ])
        self.win = self.disp.AddWindow({"ID": WINDOW_ID, "WindowTitle": "CoolColor Colorize",
                                        "Geometry": [200, 200, 640, 520]}, layout)
        items = self.win.GetItems()
        items["Range"].AddItem("Clip")
        items["Range"].AddItem("Clip + handles")
        for enc in ENCODINGS:
            items["Encoding"].AddItem(enc)
        items["Encoding"].CurrentIndex = list(ENCODINGS).index("rec709")
        for _, label in RESULTS:
            items["Result"].AddItem(label)
        for color in host.MARKER_COLORS:
            items["KeyColor"].AddItem(color)
        items["KeyColor"].CurrentIndex = list(host.MARKER_COLORS).index(self.key_color)
        on = self.win.On
        on.KeyColor.CurrentIndexChanged = self._guard(self.on_key_color)
        for button, handler in (("Colorize", self.on_colorize), ("Preview", self.on_preview),
                                ("Cancel", self.on_cancel), ("Close", self.on_close),
                                ("AddKeyframe", self.on_add_keyframe), ("RemoveKeyframe", self.on_remove_keyframe),
                                ("UseGraded", self.on_use_graded), ("RemoveReference", self.on_remove_reference),
                                ("UseGalleryStill", self.on_use_gallery_still),
                                ("RefreshGallery", self.on_refresh_gallery)):
            getattr(on, button).Clicked = self._guard(handler)
        getattr(on, WINDOW_ID).Close = self._guard(self.on_close)
        self.timer = self.ui.Timer({"ID": "CoolColorPoll", "Interval": POLL_MS})
        tick = self._guard(self.on_tick)
        self.disp.On.Timeout = tick  # how in-Resolve plugins receive it ([research] A3)
        self.disp.On.CoolColorPoll.Timeout = tick  # the per-ID form some use (R4); ticks are idempotent
        self.refresh_clips()
        self.refresh_references()
        self.refresh_gallery()
        return self.win

    def _guard(self, handler: Any) -> Any:
        """A handler's failure is a message in the dialog: a HostError as it is, anything else in one line."""
        def run(ev: Any) -> None:
            try:
                handler(ev)
            except HostError as exc:
                self.say(str(exc))
            except Exception as exc:  # noqa: BLE001 - never a traceback in Resolve's console
                self.say(f"internal error: {type(exc).__name__}: {exc} "
                         f"({traceback.extract_tb(exc.__traceback__)[-1].lineno})")
        return run

    # ------------------------------------------------------------------ display
    def say(self, text: str) -> None:
        self.status_lines.append(text)
        if self.win is not None:
            self.win.GetItems()["Status"].Text = "\n".join(self.status_lines[-6:])

    def refresh_clips(self) -> None:
        items = self.win.GetItems()
        lines = []
        for c in self.clips.values():
            lines.append(f"{c.item_name}: source {c.first}-{c.last} ({c.duration} frames, {c.fps:g} fps)")
            taken = ", ".join(f"source {k.source_frame} ({k.describe()})" for k in c.keyframes)
            lines.append(f"  keyframes from {self.key_color} markers: {taken or 'none'}")
        items["Clips"].Text = "\n".join(lines + self.refused)
        box = items["Keyframes"]
        box.Clear()
        for clip in self.clips.values():
            for k in clip.keyframes:
                box.AddItem(f"{clip.item_name} @ {k.offset} (source {k.source_frame}, {k.describe()})")
        for reason in self.refused:
            self.say(reason)

    def refresh_progress(self) -> None:
        items = self.win.GetItems()
        items["Progress"].Text = "\n".join(j.line() for j in self.jobs)
        unknown = sorted({w for j in self.jobs for w in j.unknown_words})
        items["UnknownWords"].Text = ("Words the model does not know: " + ", ".join(unknown)) if unknown else ""

    def settings(self) -> Settings:
        items = self.win.GetItems()
        result = RESULTS[max(0, int(items["Result"].CurrentIndex))][0]
        return Settings(prompt=str(items["Prompt"].PlainText), negative_prompt=str(items["Negative"].Text),
                        handles=int(items["Handles"].Value) if int(items["Range"].CurrentIndex) == 1 else 0,
                        seed=int(items["Seed"].Value), steps=int(items["Steps"].Value),
                        encoding=str(items["Encoding"].CurrentText) or "rec709", result=result)

    # ------------------------------------------------------------------ keyframes
    def _keyframe_entries(self) -> list[tuple[ClipSource, Keyframe]]:
        return [(c, k) for c in self.clips.values() for k in c.keyframes]

    def _reread_keyframes(self, clip: ClipSource) -> None:
        clip.keyframes = host.read_keyframes(self._item(clip), clip, self.key_color, self.timeline)

    def on_key_color(self, ev: Any) -> None:
        """Another keyframe colour: remembered for this project, and the keyframes read again."""
        index = int(self.win.GetItems()["KeyColor"].CurrentIndex)
        if not 0 <= index < len(host.MARKER_COLORS) or host.MARKER_COLORS[index] == self.key_color:
            return
        self.key_color = host.MARKER_COLORS[index]
        for clip in self.clips.values():
            self._reread_keyframes(clip)
        self.refresh_clips()
        try:
            if self.project_id:
                prefs.save(self.project_id, keyframe_color=self.key_color)
        except OSError as exc:
            self.say(f"keyframe colour {self.key_color} not remembered ({prefs.prefs_path()}: {exc.strerror})")
        count = sum(len(c.keyframes) for c in self.clips.values())
        self.say(f"keyframes are now the {self.key_color} markers: {count} found")

    def _item(self, clip: ClipSource) -> TimelineItem:
        for item in self.items:
            if str(item.GetUniqueId()) == clip.item_id:
                return item
        raise HostError(f"{clip.item_name} is no longer on the timeline")

    def on_add_keyframe(self, ev: Any) -> None:
        assert self.timeline is not None
        for clip in self.clips.values():
            item = self._item(clip)
            offset = host.playhead_offset(self.timeline, item)
            if 0 <= offset < clip.duration:
                host.add_keyframe(self.timeline, item, self.key_color)
                self._reread_keyframes(clip)
                self.refresh_clips()
                self.say(f"keyframe marked: {clip.item_name} frame {offset} (source {clip.source_frame(offset)})")
                return
        raise HostError("the playhead is on none of the selected clips: park it on the frame to mark")

    def on_remove_keyframe(self, ev: Any) -> None:
        index = int(self.win.GetItems()["Keyframes"].CurrentIndex)
        entries = self._keyframe_entries()
        if not 0 <= index < len(entries):
            raise HostError("no keyframe chosen in the list")
        clip, keyframe = entries[index]
        assert self.timeline is not None
        host.remove_keyframe(self.timeline, self._item(clip), keyframe, self.key_color)
        self._reread_keyframes(clip)
        self.refresh_clips()
        self.say(f"keyframe removed: {clip.item_name} frame {keyframe.offset} ({keyframe.describe()} deleted)")

    # ------------------------------------------------------------------ references
    def refresh_references(self) -> None:
        box = self.win.GetItems()["References"]
        box.Clear()
        for ref in self.references:
            box.AddItem(ref.describe())

    def refresh_gallery(self) -> None:
        project = self.resolve.GetProjectManager().GetCurrentProject()
        self.gallery = host.gallery_stills(project) if project else []
        box = self.win.GetItems()["GalleryStills"]
        box.Clear()
        for entry in self.gallery:
            box.AddItem(entry.describe())

    def on_refresh_gallery(self, ev: Any) -> None:
        self.refresh_gallery()
        self.say(f"gallery: {len(self.gallery)} still(s)")

    def _add_reference(self, ref: Reference) -> None:
        """One reference per clip frame (SPEC: one per frame), one per exemplar content; the newer replaces."""
        def same(r: Reference) -> bool:
            if ref.frame is None:
                return r.frame is None and r.sha256 == ref.sha256
            return r.item_id == ref.item_id and r.frame == ref.frame
        self.references = [r for r in self.references if not same(r)] + [ref]
        self.refresh_references()

    def on_use_graded(self, ev: Any) -> None:
        """The frame at the playhead, as graded on the Color page, becomes that source frame's reference."""
        assert self.timeline is not None
        for clip in self.clips.values():
            item = self._item(clip)
            offset = host.playhead_offset(self.timeline, item)
            if not 0 <= offset < clip.duration:
                continue
            frame = clip.source_frame(offset)
            project, _ = host.current_timeline(self.resolve)
            path, sha = host.grab_graded_still(self.resolve, project, self.timeline, item, reference_folder(),
                                               f"CoolColor {clip.item_name} {frame}")
            self._add_reference(Reference(path, sha, frame, clip.item_id, f"{clip.item_name} graded frame"))
            self.refresh_gallery()
            self.say(f"reference: {clip.item_name} source frame {frame} as graded ({path})")
            return
        raise HostError("the playhead is on none of the selected clips: park it on the graded frame")

    def on_use_gallery_still(self, ev: Any) -> None:
        """A gallery still as an exemplar of every clip: a GalleryStill carries no clip or frame [README
        GalleryStill], so it is never tied to a frame."""
        index = int(self.win.GetItems()["GalleryStills"].CurrentIndex)
        if not 0 <= index < len(self.gallery):
            raise HostError("no gallery still chosen in the list")
        entry = self.gallery[index]
        path, sha = host.export_gallery_still(self.resolve, entry, reference_folder())
        self._add_reference(Reference(path, sha, None, None, f"gallery still {entry.describe()}"))
        self.say(f"reference: gallery still {entry.describe()} as an exemplar ({path})")

    def on_remove_reference(self, ev: Any) -> None:
        index = int(self.win.GetItems()["References"].CurrentIndex)
        if not 0 <= index < len(self.references):
            raise HostError("no reference chosen in the list")
        ref = self.references.pop(index)
        self.refresh_references()
        self.say(f"reference removed: {ref.describe()}")

    # ------------------------------------------------------------------ jobs
    def _submit(self, jobs: list[ClipJob]) -> None:
        submitted = 0
        for job in jobs:
            try:
                self.daemon.submit(job)
            except HostError as exc:
                job.state, job.message, job.finished = "error", str(exc), True
                self.say(str(exc))
                if job.job_id is None and "no CoolColor daemon" in str(exc):
                    break
                continue
            submitted += 1
            self.jobs.append(job)
        if submitted:
            self.timer.Start()
        self.refresh_progress()

    def on_colorize(self, ev: Any) -> None:
        if not self.clips:
            raise HostError("no clip to colorize: " + ("; ".join(self.refused) or "nothing selected"))
        settings = self.settings()
        jobs = []
        for clip in self.clips.values():
            try:
                spec = build_spec(clip, settings, [k.source_frame for k in clip.keyframes],
                                  references=self.references)
            except HostError as exc:
                self.say(str(exc))
                continue
            jobs.append(ClipJob(clip, spec, submit_key(spec), "colorize"))
        self._submit(jobs)

    def on_preview(self, ev: Any) -> None:
        """Each keyframe, and each graded reference frame, alone: the quick look before the shot."""
        settings = self.settings()
        jobs = []
        for clip in self.clips.values():
            frames = sorted({k.source_frame for k in clip.keyframes}
                            | {r.frame for r in self.references if r.frame is not None and r.applies_to(clip)})
            if not frames:
                self.say(f"{clip.item_name}: no keyframe marked — mark one to preview it")
                continue
            for frame in frames:
                try:
                    spec = build_spec(clip, settings, [frame], preview_frame=frame, references=self.references)
                except HostError as exc:
                    self.say(str(exc))
                    continue
                jobs.append(ClipJob(clip, spec, submit_key(spec), "preview"))
        if not jobs and not self.clips:
            raise HostError("no clip to preview: " + ("; ".join(self.refused) or "nothing selected"))
        self._submit(jobs)

    def on_cancel(self, ev: Any) -> None:
        active = [j for j in self.jobs if j.state in ("queued", "running", "new")]
        if not active:
            self.say("nothing to cancel")
            return
        for job in active:
            self.daemon.cancel(job)
        self.say(f"cancel sent for {len(active)} job(s); finished frames are kept")

    def on_close(self, ev: Any) -> None:
        if self.timer is not None:
            self.timer.Stop()
        self.disp.ExitLoop()

    def on_tick(self, ev: Any) -> None:
        for job in self.jobs:
            if job.finished:
                continue
            self.daemon.refresh(job)
            if job.state == "done":
                job.finished = True
                try:
                    self.bring_in(job)
                except HostError as exc:
                    job.state, job.message = "error", str(exc)
                    self.say(str(exc))
            elif job.state in ("failed", "cancelled", "error"):
                job.finished = True
                self.say(job.line())
        if all(j.finished for j in self.jobs):
            self.timer.Stop()
        self.refresh_progress()

    # ------------------------------------------------------------------ results
    def bring_in(self, job: ClipJob) -> None:
        """The finished job's files into Resolve: the bin clip (with provenance), then the comp or the plate."""
        spec, clip = job.spec, job.clip
        project, timeline = host.current_timeline(self.resolve)
        assert spec.first is not None and spec.last is not None
        comments = provenance_comment(spec, self.daemon.model_hash, job.job_id)
        if job.kind == "preview":
            path = frame_path(spec, abfiles.PREVIEW_FILE_PATTERN, spec.first)
            if not os.path.isfile(path):
                raise HostError(f"{clip.item_name}: the daemon reported done but {path} is missing")
            pool = project.GetMediaPool()
            folder, previous = host.coolcolor_bin(pool), pool.GetCurrentFolder()
            pool.SetCurrentFolder(folder)
            try:
                imported = pool.ImportMedia([path])
                for mpi in imported or []:
                    mpi.SetMetadata("Comments", comments)
            finally:
                if previous:
                    pool.SetCurrentFolder(previous)
            job.message = f"preview of source frame {spec.first} in the CoolColor bin: {path}"
            return
        if spec.resolve_sidecar:
            try:
                self._bring_in_comp(job, project)
                return
            except HostError as exc:
                self.say(f"{exc}; placing the RGB plate on the track above instead")
        self._bring_in_plate(job, project, timeline, comments)

    def _frames_present(self, job: ClipJob, pattern: str) -> None:
        spec = job.spec
        assert spec.first is not None and spec.last is not None
        missing = [f for f in range(spec.first, spec.last + 1) if not os.path.isfile(pattern % f)]
        if missing:
            raise HostError(f"{job.clip.item_name}: the daemon reported done but {len(missing)} result frame(s) "
                            f"are missing, e.g. {pattern % missing[0]}")

    def _bring_in_comp(self, job: ClipJob, project: Any) -> None:
        spec, clip = job.spec, job.clip
        assert spec.first is not None and spec.last is not None
        pattern = os.path.join(spec.output_dir, abfiles.RESOLVE_SIDECAR_PATTERN)
        self._frames_present(job, pattern)
        host.import_sequence(project, pattern, spec.first, spec.last,
                             provenance_comment(spec, self.daemon.model_hash, job.job_id))
        text = comp_file.comp_text(sidecar_first_file=pattern % spec.first, sidecar_first=spec.first,
                                   sidecar_last=spec.last, clip_first=clip.first, duration=clip.duration,
                                   encoding=spec.encoding)
        comp_path = os.path.join(spec.output_dir, "coolcolor.comp")
        with open(comp_path, "w", encoding="utf-8") as fh:
            fh.write(text)
        host.replace_comp(self._item(clip), comp_path, spec.output_dir, comp_file.CUSTOM)
        job.message = f"comp on the clip ({comp_path})"

    def _bring_in_plate(self, job: ClipJob, project: Any, timeline: Any, comments: str) -> None:
        spec, clip = job.spec, job.clip
        assert spec.first is not None and spec.last is not None
        pattern = os.path.join(spec.output_dir, abfiles.RGB_PLATE_PATTERN)
        self._frames_present(job, pattern)
        plate = host.import_sequence(project, pattern, spec.first, spec.last, comments)
        placed = host.place_plate(self.resolve, timeline, plate, clip, spec.first)
        job.message = f"RGB plate on V{(placed.GetTrackTypeAndIndex() or ['', '?'])[1]}"


def run(resolve: Resolve, fusion: Any, bmd: Any) -> Controller | None:
    """Open the dialog on the current selection and run its event loop until Close."""
    ui = fusion.UIManager
    disp = bmd.UIDispatcher(ui)
    global ACTIVE
    ctl = Controller(resolve, ui, disp)
    ACTIVE = ctl
    try:
        ctl.load_selection()
    except HostError as exc:
        _message_box(ui, disp, str(exc))
        return None
    except Exception as exc:  # noqa: BLE001 - a message, never a traceback in Resolve's console
        _message_box(ui, disp, f"internal error reading the selection: {type(exc).__name__}: {exc}")
        return None
    ctl.build()
    ctl.win.Show()
    disp.RunLoop()
    ctl.win.Hide()
    return ctl


def _message_box(ui: Any, disp: Any, text: str) -> None:
    win = disp.AddWindow({"ID": WINDOW_ID, "WindowTitle": "CoolColor Colorize", "Geometry": [200, 200, 520, 140]},
                         ui.VGroup([ui.Label({"ID": "Status", "Text": text, "WordWrap": True}),
                                    ui.Button({"ID": "Close", "Text": "Close"})]))
    win.On.Close.Clicked = lambda ev: disp.ExitLoop()
    getattr(win.On, WINDOW_ID).Close = lambda ev: disp.ExitLoop()
    win.Show()
    disp.RunLoop()
    win.Hide()
