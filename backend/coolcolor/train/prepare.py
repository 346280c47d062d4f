"""``coolcolor data prepare``: decide once, before training, which images train and with which caption.

Walks a folder of images (and uncompressed ``.tar`` shards), measures every image in worker processes
(decodable, size, Hasler–Süsstrunk colorfulness, sha256), captions the ones without a sidecar caption
with a local captioner in batches, applies the paper's caption filter (a caption must name a color,
§4.1), and writes the dataset folder training reads (``coolcolor train --set data=DATASET``)::

    DATASET/manifest.jsonl    one kept image a line: file (relative to DATASET), width, height,
                              colorfulness, caption, sha256 — read by ``train.data.FolderSource``
    DATASET/decisions.jsonl   one decided file a line, kept or dropped with its reason: the resume log
    DATASET/prepare.json      the settings the decisions were made with (a re-run must use the same)
    DATASET/shards/TAR/…      the kept members of tar shards, extracted (loose images stay where they are)

Resuming: every decision is appended to ``decisions.jsonl`` as one line in a single write and flushed
before the next, so a killed run loses at most the images it had not decided yet (a torn last line is
cut off and that image decided again); a re-run measures and captions only files not decided yet (or
changed since: size or modification time differ). The manifest itself is written whole, then renamed
into place. Identical images (same sha256) are kept once: the one whose path sorts first.
"""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing
import os
import tarfile
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import cv2
import numpy as np

from coolcolor.color import colorfulness
from coolcolor.errors import InputError
from coolcolor.train.data import (
    IMAGE_SUFFIXES,
    MANIFEST_NAME,
    caption_text,
    decode_rgb,
    has_color_word,
    sidecar_caption,
)

logger = logging.getLogger(__name__)

DECISIONS_NAME = "decisions.jsonl"
SETTINGS_NAME = "prepare.json"
SHARDS_DIR = "shards"
CAPTION_THUMBNAIL = 384  # long side of the copy a worker hands to the captioner (BLIP looks at 384×384)

# Drop reasons, as the summary counts them.
UNREADABLE = "unreadable"
NOT_COLOR = "not a color image"
TOO_SMALL = "too small"
LOW_COLORFULNESS = "low colorfulness"
BAD_CAPTION_FILE = "caption file not UTF-8"
NO_CAPTION = "no caption"
NO_COLOR_WORD = "caption names no color"
DUPLICATE = "duplicate"
UNSAFE_MEMBER = "unsafe tar member path"


@dataclass
class Task:
    """One image to decide: a loose file, or a member of a tar shard (read at ``offset``, ``size`` bytes)."""

    key: str  # path relative to the images folder; for a member: "shard.tar/member/path.jpg"
    stat: list[int]
    path: str  # the loose file, or the tar shard
    offset: int = -1
    size: int = 0
    caption_bytes: bytes | None = None  # a tar member's sidecar .txt
    shard: str = ""  # a member's shard, relative to the images folder
    member: str = ""  # a member's name inside its shard


@dataclass
class Summary:
    kept: int
    dropped: Counter[str]
    decided_now: int
    decided_before: int
    manifest: Path

    def line(self) -> str:
        drops = ", ".join(f"{n} {reason}" for reason, n in sorted(self.dropped.items(), key=lambda kv: (-kv[1], kv[0])))
        total = self.kept + sum(self.dropped.values())
        return (f"kept {self.kept} of {total} images → {self.manifest}; dropped: {drops or 'none'} "
                f"(decided now {self.decided_now}, by an earlier run {self.decided_before}; "
                f"each file's reason is in {self.manifest.parent / DECISIONS_NAME})")


Captioner = Callable[[np.ndarray], str]


@dataclass
class Settings:
    min_colorfulness: float
    min_size: int
    captioned: bool  # with a captioner, images without a caption are captioned; without, dropped

    def to_dict(self) -> dict[str, Any]:
        return {"min_colorfulness": self.min_colorfulness, "min_size": self.min_size, "captioned": self.captioned}


# ----------------------------------------------------------------------------- listing


def list_tasks(images: Path, output: Path) -> tuple[list[Task], list[dict[str, Any]]]:
    """Every image under ``images`` (sorted; ``output`` skipped when it lies inside), and a decision
    for each tar shard that cannot be read at all."""
    tasks: list[Task] = []
    failed: list[dict[str, Any]] = []
    skip = output.resolve()
    for folder, dirs, files in os.walk(images):
        here = Path(folder)
        dirs[:] = sorted(d for d in dirs if (here / d).resolve() != skip)
        for name in sorted(files):
            path = here / name
            key = path.relative_to(images).as_posix()
            suffix = path.suffix.lower()
            try:
                st = path.stat()
            except OSError:
                continue  # vanished while walking
            if suffix in IMAGE_SUFFIXES:
                tasks.append(Task(key, [st.st_size, st.st_mtime_ns], str(path)))
            elif suffix == ".tar":
                try:
                    tasks.extend(_tar_tasks(path, key))
                except (tarfile.TarError, OSError) as exc:
                    failed.append({"key": key, "stat": [st.st_size, st.st_mtime_ns], "kept": False,
                                   "reason": UNREADABLE, "detail": f"not a readable tar file ({exc})"})
    return tasks, failed


def _tar_tasks(path: Path, key: str) -> list[Task]:
    members: list[tarfile.TarInfo] = []
    captions: dict[str, bytes] = {}
    with tarfile.open(path, "r:") as tar:  # uncompressed: members are read by offset, in any order
        for m in tar:
            if not m.isfile():
                continue
            suffix = PurePosixPath(m.name).suffix.lower()
            if suffix == ".txt":
                handle = tar.extractfile(m)
                captions[str(PurePosixPath(m.name).with_suffix(""))] = handle.read() if handle else b""
            elif suffix in IMAGE_SUFFIXES:
                members.append(m)
    return [Task(f"{key}/{m.name}", [m.size, int(m.mtime)], str(path), m.offset_data, m.size,
                 captions.get(str(PurePosixPath(m.name).with_suffix(""))), key, m.name)
            for m in sorted(members, key=lambda m: m.name)]


def _safe_member(name: str) -> bool:
    p = PurePosixPath(name)
    return not p.is_absolute() and ".." not in p.parts


def _read(task: Task) -> bytes:
    if task.offset < 0:
        return Path(task.path).read_bytes()
    with open(task.path, "rb") as f:
        f.seek(task.offset)
        data = f.read(task.size)
    if len(data) != task.size:
        raise OSError(f"{task.path}: truncated tar member {task.key}")
    return data


# ----------------------------------------------------------------------------- measuring (worker side)


def measure(task: Task, settings: Settings) -> dict[str, Any]:
    """The decision record of one image before captioning: its measurements, and ``reason`` if it is
    already dropped; ``thumbnail`` (uint8) when it still needs a caption from the captioner."""
    rec: dict[str, Any] = {"key": task.key, "stat": task.stat, "kept": False, "reason": ""}
    if task.shard:
        rec.update(shard=task.shard, offset=task.offset, size=task.size)
    if task.shard and not _safe_member(task.member):
        rec.update(reason=UNSAFE_MEMBER, detail="member path leads outside the shard")
        return rec
    try:
        data = _read(task)
    except OSError as exc:
        rec.update(reason=UNREADABLE, detail=str(exc))
        return rec
    rec["sha256"] = hashlib.sha256(data).hexdigest()
    try:
        rgb = decode_rgb(np.frombuffer(data, np.uint8), task.key)
    except InputError as exc:
        rec.update(reason=NOT_COLOR if "not a color image" in str(exc) else UNREADABLE, detail=str(exc))
        return rec
    h, w = rgb.shape[:2]
    rec.update(width=int(w), height=int(h))
    if min(h, w) < settings.min_size:
        rec.update(reason=TOO_SMALL, detail=f"{w}×{h}, shorter side below {settings.min_size}")
        return rec
    c = float(colorfulness(rgb))
    rec["colorfulness"] = round(c, 3)
    if c < settings.min_colorfulness:
        rec.update(reason=LOW_COLORFULNESS, detail=f"colorfulness {c:.1f} below {settings.min_colorfulness:g}")
        return rec
    try:
        if task.offset >= 0:
            caption = "" if task.caption_bytes is None else caption_text(task.caption_bytes, task.key, "its .txt")
        else:
            caption = sidecar_caption(Path(task.path))
    except InputError as exc:
        rec.update(reason=BAD_CAPTION_FILE, detail=str(exc))
        return rec
    rec["caption"] = caption
    if not caption:
        if not settings.captioned:
            rec.update(reason=NO_CAPTION, detail="no sidecar .txt and no captioner")
            return rec
        scale = min(1.0, CAPTION_THUMBNAIL / max(h, w))
        small = cv2.resize(rgb, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
        rec["thumbnail"] = (small * 255).round().astype(np.uint8)
    return rec


_WORKER_SETTINGS: Settings | None = None


def _worker_init(settings: Settings) -> None:
    global _WORKER_SETTINGS
    import torch

    torch.set_num_threads(1)  # one image per process: the processes are the parallelism
    _WORKER_SETTINGS = settings


def _worker_measure(task: Task) -> dict[str, Any]:
    assert _WORKER_SETTINGS is not None
    return measure(task, _WORKER_SETTINGS)


def _measured(tasks: list[Task], settings: Settings, workers: int) -> Iterator[dict[str, Any]]:
    """Records in ``tasks`` order, measured by ``workers`` processes (in this process when ≤ 1)."""
    if workers <= 1 or len(tasks) <= 1:
        yield from (measure(t, settings) for t in tasks)
        return
    # fork, as torch's DataLoader does on Linux: the workers start at once and import nothing again
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else None
    with multiprocessing.get_context(method).Pool(workers, _worker_init, (settings,)) as pool:
        yield from pool.imap(_worker_measure, tasks, chunksize=4)


# ----------------------------------------------------------------------------- decisions log


def read_decisions(path: Path) -> dict[str, dict[str, Any]]:
    """The decisions so far (the last line of a key wins); a torn last line is cut off the file."""
    if not path.is_file():
        return {}
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1
    if end != len(data):  # killed mid-write: drop the torn line so appends start on a fresh one
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(data[:end])
        os.replace(tmp, path)
    out: dict[str, dict[str, Any]] = {}
    for line in data[:end].decode("utf-8", errors="replace").splitlines():
        try:
            rec = json.loads(line)
            out[rec["key"]] = rec
        except (json.JSONDecodeError, KeyError, TypeError):
            logger.warning("%s: ignoring a line that is not a decision: %.80s", path, line)
    return out


def _check_settings(output: Path, settings: Settings) -> None:
    path = output / SETTINGS_NAME
    if path.is_file():
        try:
            before = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise InputError(f"{path}: cannot read the settings of the earlier run ({exc})") from exc
        if before != settings.to_dict():
            diff = ", ".join(f"{k} {before.get(k)!r} → {v!r}" for k, v in settings.to_dict().items() if before.get(k) != v)
            raise InputError(f"dataset {output} was prepared with other settings ({diff}); use the same settings "
                             "to resume, or a new output folder")
        return
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(settings.to_dict(), indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


# ----------------------------------------------------------------------------- the command


def _caption_batch(captioner: Any, images: list[np.ndarray]) -> list[str]:
    if hasattr(captioner, "caption_batch"):
        captions = list(captioner.caption_batch(images))
    else:
        captions = [captioner(image) for image in images]
    if len(captions) != len(images):
        raise InputError(f"the captioner returned {len(captions)} captions for {len(images)} images")
    return [str(c).strip() for c in captions]


def _finish(rec: dict[str, Any], caption: str) -> dict[str, Any]:
    rec["caption"] = caption
    if not has_color_word(caption):
        rec.update(reason=NO_COLOR_WORD, detail=f"caption {caption!r}")
    else:
        rec.update(kept=True, reason="")
    return rec


def prepare(images_dir: str | Path, output: str | Path, captioner: Captioner | Any | None = None,
            min_colorfulness: float = 15.0, min_size: int = 256, workers: int | None = None,
            caption_batch: int = 16, progress: bool = True) -> Summary:
    """Decide every image under ``images_dir`` and write ``output``'s manifest (see the module doc)."""
    images, out = Path(images_dir), Path(output)
    if not images.is_dir():
        raise InputError(f"images folder {images} does not exist or is not a folder")
    if out.exists() and not out.is_dir():
        raise InputError(f"output {out} is a file, not a folder")
    if not (min_colorfulness >= 0 and np.isfinite(min_colorfulness)):
        raise InputError(f"--min-colorfulness must be a finite number ≥ 0, got {min_colorfulness}")
    if min_size < 1 or caption_batch < 1:
        raise InputError("--min-size and the caption batch must be ≥ 1")
    workers = min(8, os.cpu_count() or 1) if workers is None else workers
    settings = Settings(float(min_colorfulness), int(min_size), captioner is not None)
    out.mkdir(parents=True, exist_ok=True)
    _check_settings(out, settings)
    log_path = out / DECISIONS_NAME
    decisions = read_decisions(log_path)
    tasks, failed = list_tasks(images, out)
    present = {t.key for t in tasks} | {f["key"] for f in failed}  # a file deleted since is not in the manifest
    todo = [t for t in tasks if decisions.get(t.key, {}).get("stat") != t.stat]
    failed = [f for f in failed if decisions.get(f["key"], {}).get("stat") != f["stat"]]
    before = len(tasks) - len(todo)
    from tqdm import tqdm

    bar = tqdm(total=len(todo), disable=not progress, desc="prepare", unit="img", dynamic_ncols=True)
    with log_path.open("a", encoding="utf-8") as log:
        def decide(rec: dict[str, Any]) -> None:
            rec.pop("thumbnail", None)
            log.write(json.dumps(rec, ensure_ascii=False) + "\n")  # one write per decision: no interleaving
            log.flush()
            decisions[rec["key"]] = rec
            bar.update(1)

        def flush(pending: list[dict[str, Any]]) -> None:
            if pending:
                captions = _caption_batch(captioner, [p["thumbnail"].astype(np.float32) / 255 for p in pending])
                for rec, caption in zip(pending, captions, strict=True):
                    decide(_finish(rec, caption))
                os.fsync(log.fileno())
                pending.clear()

        for rec in failed:
            log.write(json.dumps(rec) + "\n")
            decisions[rec["key"]] = rec
        pending: list[dict[str, Any]] = []
        try:
            for rec in _measured(todo, settings, workers):
                if rec["reason"]:
                    decide(rec)
                elif rec.get("caption"):
                    decide(_finish(rec, rec["caption"]))
                else:
                    pending.append(rec)
                    if len(pending) >= caption_batch:
                        flush(pending)
            flush(pending)
        finally:
            bar.close()
            log.flush()
            os.fsync(log.fileno())
    return _write_manifest(images, out, {k: r for k, r in decisions.items() if k in present}, len(todo) + len(failed),
                           before)


def _write_manifest(images: Path, out: Path, decisions: dict[str, dict[str, Any]], now: int, before: int) -> Summary:
    """manifest.jsonl from the decisions (duplicates dropped, tar members extracted), renamed into place."""
    dropped: Counter[str] = Counter()
    first_of: dict[str, str] = {}
    lines: list[str] = []
    for key in sorted(decisions):
        rec = decisions[key]
        if not rec.get("kept"):
            dropped[rec.get("reason") or UNREADABLE] += 1
            continue
        if rec["sha256"] in first_of:
            dropped[DUPLICATE] += 1
            logger.debug("%s: same bytes as %s", key, first_of[rec["sha256"]])
            continue
        first_of[rec["sha256"]] = key
        if rec.get("shard"):
            file = _extract(images, out, rec)
            if file is None:
                dropped[UNREADABLE] += 1
                continue
        else:  # a loose image: the manifest points at it where it is
            file = Path(os.path.relpath((images / key).resolve(), out.resolve())).as_posix()
        entry = {"file": file, "width": rec["width"], "height": rec["height"], "colorfulness": rec["colorfulness"],
                 "caption": rec["caption"], "sha256": rec["sha256"]}
        lines.append(json.dumps(entry, ensure_ascii=False))
    manifest = out / MANIFEST_NAME
    summary = Summary(len(lines), dropped, now, before, manifest)
    if not lines:
        reasons = ", ".join(f"{n}× {r}" for r, n in dropped.most_common(5)) or "no image files found"
        raise InputError(f"images folder {images}: nothing usable ({reasons})")
    tmp = manifest.with_suffix(".tmp")
    tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    os.replace(tmp, manifest)
    return summary


def _extract(images: Path, out: Path, rec: dict[str, Any]) -> str | None:
    """Copy a kept tar member to ``out/shards/KEY`` (once; atomically) and return its manifest path;
    None (logged) when the shard no longer holds the bytes that were decided."""
    key = rec["key"]
    target = out / SHARDS_DIR / key
    if not target.is_file():
        try:
            data = _read(Task(key, rec["stat"], str(images / rec["shard"]), rec["offset"], rec["size"]))
        except OSError as exc:
            logger.warning("%s: cannot extract (%s); dropped", key, exc)
            return None
        if hashlib.sha256(data).hexdigest() != rec["sha256"]:
            logger.warning("%s: the shard changed since it was decided; dropped", key)
            return None
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, target)
    return f"{SHARDS_DIR}/{key}"
