"""Jobs for the daemon: one ``JobSpec`` per clip, submitted and then polled from the dialog's ``ui.Timer``.

No thread: every call here is a short request on the script's own thread (submit, status, cancel, each with a
few seconds' timeout), so nothing ever touches Resolve or prints from elsewhere.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

import coolcolor_protocol
from coolcolor_protocol import abfiles
from coolcolor_protocol.frames import KeyframeOutsideRange, check_keyframes_in_range
from coolcolor_protocol.identity import idempotency_key, settings_digest
from coolcolor_protocol.jobspec import JobSpec
from coolcolor_resolve.host import ClipSource, HostError

OUTPUT_ENV = "COOLCOLOR_RESOLVE_OUTPUT"  # where results go; default ~/CoolColor/Resolve
REQUEST_TIMEOUT_S = 5.0


def output_root() -> str:
    return os.environ.get(OUTPUT_ENV) or os.path.join(os.path.expanduser("~"), "CoolColor", "Resolve")


@dataclass
class Settings:
    prompt: str = ""
    negative_prompt: str = ""
    handles: int = 0  # 0 = the clip; N = clip + N handles each side (as far as the media has them)
    seed: int = 0
    steps: int = 20
    encoding: str = "srgb"
    result: str = "comp"  # "comp" (Fusion comp over the ab sidecar) or "plate" (RGB plate above)


@dataclass(frozen=True)
class Reference:
    """A colour image the shot follows (issue 25; SPEC §3.4 ``references``): the graded frame ``frame`` (a source
    frame) of the clip ``item_id``, or an exemplar still (``frame`` None) for every clip. ``sha256``: the file's
    content, part of the job's identity; ``what``: how the dialog names it."""

    path: str
    sha256: str
    frame: int | None = None
    item_id: str | None = None
    what: str = ""

    def applies_to(self, clip: ClipSource) -> bool:
        return self.item_id is None or self.item_id == clip.item_id

    def describe(self) -> str:
        return f"{self.what} (source frame {self.frame})" if self.frame is not None else f"{self.what} (exemplar)"


def reference_folder() -> str:
    """Where the exported stills are kept: beside the jobs that read them (content-named, shared by the clips)."""
    return os.path.join(output_root(), "references")


@dataclass
class ClipJob:
    """One clip's job and what the dialog shows for it."""

    clip: ClipSource
    spec: JobSpec
    key: str
    kind: str  # "colorize" | "preview"
    job_id: str | None = None
    state: str = "new"
    frames_done: int = 0
    frames_total: int = 0
    eta_s: float | None = None
    queue_position: int | None = None
    message: str = ""
    unknown_words: list[str] = field(default_factory=list)
    cached: bool = False
    finished: bool = False  # results brought into Resolve (or the failure shown)

    def line(self) -> str:
        name = self.clip.item_name
        if self.state == "queued":
            return f"{name}: queued (position {self.queue_position})"
        if self.state == "running":
            eta = f", ETA {int(self.eta_s)} s" if self.eta_s is not None else ""
            return f"{name}: {self.frames_done}/{self.frames_total} frames{eta}"
        if self.state == "done":
            return f"{name}: done{' (cached)' if self.cached else ''} — {self.message}".rstrip(" —")
        if self.state in ("failed", "cancelled", "error"):
            return f"{name}: {self.state} — {self.message}"
        return f"{name}: {self.state}"


def build_spec(clip: ClipSource, settings: Settings, keyframes: list[int], *, preview_frame: int | None = None,
               references: list[Reference] | tuple[Reference, ...] = ()) -> JobSpec:
    """The job for ``clip``: its used range (clip or clip + handles), the marked keyframes (source frames),
    the references that apply to the clip (a preview takes the exemplars and a graded frame of its own frame),
    the Resolve outputs (the Loader sidecar, or the RGB plate for the fallback). Keyframes outside the used range
    are refused here, naming them. The output folder is named by the job's content, the references' included."""
    first, last = clip.used_range(settings.handles)
    try:
        check_keyframes_in_range(keyframes, first, last)
    except KeyframeOutsideRange as exc:
        raise HostError(f"{clip.item_name}: {exc}; move or remove those markers") from None
    fields: dict[str, Any] = {"source": clip.source, "prompt": settings.prompt,
                              "negative_prompt": settings.negative_prompt, "seed": settings.seed,
                              "steps": settings.steps, "encoding": settings.encoding}
    refs = [r for r in references if r.applies_to(clip)]
    if preview_frame is not None:
        refs = [r for r in refs if r.frame is None or r.frame == preview_frame]
    if refs:
        fields["references"] = [{"frame": r.frame, "path": r.path} for r in refs]
    if preview_frame is not None:
        fields.update(first=preview_frame, last=preview_frame, keyframes=[preview_frame], preview=True)
        kind = "preview"
    else:
        fields.update(first=first, last=last, keyframes=sorted(set(keyframes)),
                      # the plate is written in comp mode too: the fallback when the comp cannot be built
                      resolve_sidecar=settings.result == "comp", rgb_plate=True)
        kind = "colorize"
    # the folder is named by the settings and the references' content: others never share it
    identity = dict(fields, reference_content=[r.sha256 for r in refs]) if refs else fields
    digest = settings_digest(identity)[:16]
    fields["output_dir"] = os.path.join(output_root(), _safe(clip.item_name) + "-" + _safe(clip.item_id),
                                        f"{kind}-{digest}")
    spec = JobSpec(**fields)
    spec.validate()
    return spec


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in text)[:60] or "clip"


def submit_key(spec: JobSpec) -> str:
    """Idempotency key of the whole request (``coolcolor_protocol.identity``): an unchanged clip and settings
    give the same key (the daemon answers with the existing job), any change a new one."""
    return idempotency_key("resolve", spec.to_dict())


class Daemon:
    """The connection to the CoolColor daemon (``coolcolor serve``), opened on first use."""

    def __init__(self) -> None:
        self.client: coolcolor_protocol.Client | None = None
        self.model_hash = ""

    def connect(self) -> coolcolor_protocol.Client:
        if self.client is None:
            try:
                client = coolcolor_protocol.Client(None, name="coolcolor-resolve", timeout=REQUEST_TIMEOUT_S)
                hello = client.hello(REQUEST_TIMEOUT_S)
            except (coolcolor_protocol.DaemonUnavailable, coolcolor_protocol.ProtocolError, OSError) as exc:
                raise HostError(f"no CoolColor daemon: {_one_line(exc)}") from None
            self.client = client
            self.model_hash = str((hello.get("model") or {}).get("hash") or "")
        return self.client

    def submit(self, job: ClipJob) -> None:
        client = self.connect()
        try:
            reply = client.submit(job.spec.to_dict(), job.key, timeout=REQUEST_TIMEOUT_S)
        except coolcolor_protocol.ProtocolError as exc:
            raise HostError(f"{job.clip.item_name}: the daemon refused the job: {_one_line(exc)}") from None
        except coolcolor_protocol.DaemonUnavailable as exc:
            raise HostError(f"{job.clip.item_name}: the daemon did not answer ({_one_line(exc)})") from None
        job.job_id = str(reply["job_id"])
        self._update(job, reply)
        # the same key with the same job: the daemon answers with the job it already finished
        job.cached = job.cached or (bool(reply.get("duplicate")) and job.state == "done")

    def refresh(self, job: ClipJob) -> None:
        """One status request; a daemon that is restarting is reported and asked again on the next tick."""
        if job.job_id is None or self.client is None:
            return
        try:
            self.client.poll(0)  # drain events and keep the heartbeat going; status below is authoritative
            status = self.client.status(job.job_id, timeout=REQUEST_TIMEOUT_S)
        except coolcolor_protocol.DaemonUnavailable:
            job.message = "daemon not answering — waiting for it to come back"
            return
        except coolcolor_protocol.ProtocolError as exc:
            job.state, job.message = "error", _one_line(exc)
            return
        self._update(job, status)

    def cancel(self, job: ClipJob) -> None:
        if job.job_id is None or self.client is None:
            return
        try:
            self.client.cancel(job.job_id, timeout=REQUEST_TIMEOUT_S)
        except (coolcolor_protocol.DaemonUnavailable, coolcolor_protocol.ProtocolError) as exc:
            job.message = f"cancel not confirmed: {_one_line(exc)}"

    @staticmethod
    def _update(job: ClipJob, status: dict[str, Any]) -> None:
        job.state = str(status.get("state", job.state))
        if status.get("unknown_words"):  # submit_reply (SPEC), or a status that carries them
            job.unknown_words = [str(w) for w in status["unknown_words"]]
        job.frames_done = int(status.get("frames_done") or 0)
        job.frames_total = int(status.get("frames_total") or job.frames_total or 0)
        job.queue_position = status.get("queue_position")
        job.cached = job.cached or bool(status.get("cached"))
        progress = status.get("progress") or {}
        job.eta_s = progress.get("eta_s")
        error = status.get("error") or None
        if error:
            job.message = _one_line(error.get("message", error))


def _one_line(x: Any) -> str:
    text = str(x).strip().splitlines()
    return text[0] if text else type(x).__name__


def frame_path(spec: JobSpec, pattern: str, frame: int) -> str:
    return os.path.join(spec.output_dir, abfiles.frame_file(pattern, frame))


def provenance_comment(spec: JobSpec, model_hash: str, job_id: str | None) -> str:
    return "CoolColor " + json.dumps({"prompt": spec.prompt, "negative_prompt": spec.negative_prompt,
                                      "keyframes": list(spec.keyframes), "seed": spec.seed, "steps": spec.steps,
                                      "encoding": spec.encoding, "model_hash": model_hash, "job_id": job_id,
                                      "first": spec.first, "last": spec.last,
                                      "references": [dict(r) for r in spec.references]}, sort_keys=True)

