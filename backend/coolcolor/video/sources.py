"""Frame sources: image sequences and single images through OpenImageIO, movies through PyAV.

A source is opened and validated in one go (``open_source``): every problem that can be seen
without decoding pixels — a missing file, a gap in a sequence, an unreadable header, frames of
different sizes, a range outside the source — is an ``InputError`` naming it, before any work.
Pixels are read lazily, one frame at a time (``read``), so memory does not grow with clip length.

Frame numbers are the source's own: the number in a sequence's file names; for a movie or a single
image, the 0-based position (frame 0 is the first picture). ``read`` returns the decoded values as
float32 H×W×C (C = 1 for gray sources, else 3; alpha dropped): integers normalised to [0, 1]
(8/10/12/16-bit alike), half and float as stored. What those values mean is the job's declared
encoding (``encoding.py``), not the file's business.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from fractions import Fraction
from typing import Any

import numpy as np

from coolcolor.errors import InputError
from coolcolor_protocol.frames import runs_text
from coolcolor_protocol.jobspec import MAX_FRAME_NUMBER

MOVIE_EXTENSIONS = (".mov", ".mp4", ".m4v", ".mxf", ".mkv", ".avi", ".webm")
_PRINTF = re.compile(r"%(0?)(\d*)d")
_HASHES = re.compile(r"#+")


class FrameReadError(InputError):
    """One frame could not be decoded although the source validated (found mid-clip)."""

    def __init__(self, frame: int, message: str) -> None:
        super().__init__(f"frame {frame}: {message}")
        self.frame = frame


@dataclass(frozen=True)
class SourceInfo:
    kind: str  # "sequence" | "image" | "movie"
    path: str  # the pattern (printf form) for sequences
    first: int
    last: int
    width: int
    height: int
    channels: int  # channels read: 1 (gray) or 3
    pixel_format: str  # e.g. "half", "uint16", "yuv422p10le"
    fps: float | None = None

    @property
    def frame_count(self) -> int:
        return self.last - self.first + 1

    def to_dict(self) -> dict:
        return asdict(self)


class FrameSource:
    """Common interface; use as a context manager or call ``close``."""

    info: SourceInfo
    note: str | None = None  # something the user should know about the source (one line), e.g. a sequence beside it

    def read(self, frame: int) -> np.ndarray:
        raise NotImplementedError

    def frames(self) -> range:
        return range(self.info.first, self.info.last + 1)

    def files(self) -> list[str]:
        """The files the frames to colorize are read from (one per frame of a sequence)."""
        return [self.info.path]

    def iter_frames(self, frames: range | list[int] | None = None) -> Iterator[tuple[int, np.ndarray | FrameReadError]]:
        """Yield (frame, pixels), or (frame, FrameReadError) for a frame that fails, in order."""
        for f in self.frames() if frames is None else frames:
            try:
                yield f, self.read(f)
            except FrameReadError as exc:
                yield f, exc

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def parse_sequence_pattern(source: str) -> tuple[str, str, int] | None:
    """``dir/name.%04d.exr`` or ``dir/name.####.exr`` → (prefix, suffix, padding); None if no placeholder.

    ``%d`` means no padding; each ``#`` is one digit (Nuke's convention).
    """
    head, base = os.path.split(source)
    found = [(m, "printf") for m in _PRINTF.finditer(base)] + [(m, "hash") for m in _HASHES.finditer(base)]
    if not found:
        return None
    if len(found) > 1:
        raise InputError(f"sequence pattern {source!r} has more than one frame-number placeholder")
    m, kind = found[0]
    pad = (int(m.group(2) or 0) if kind == "printf" else len(m.group(0)))
    return os.path.join(head, base[: m.start()]), base[m.end():], pad


def printf_pattern(prefix: str, suffix: str, pad: int) -> str:
    return f"{prefix}%0{pad}d{suffix}" if pad else f"{prefix}%d{suffix}"


def open_source(source: str, first: int | None = None, last: int | None = None) -> FrameSource:
    """Open and validate ``source`` over [first, last] (inclusive; None = the source's own bound)."""
    if not isinstance(source, str) or not source:
        raise InputError("source must be a file path or an image-sequence pattern")
    if first is not None and last is not None and first > last:
        raise InputError(f"first frame {first} is after last frame {last}")
    pattern = parse_sequence_pattern(source)
    if pattern is not None:
        return ImageSequenceSource(*pattern, first=first, last=last)
    if not os.path.exists(source):
        raise InputError(f"source not found: {source}")
    if os.path.isdir(source):
        raise InputError(f"source {source} is a folder; give an image-sequence pattern such as name.%04d.exr")
    if source.lower().endswith(MOVIE_EXTENSIONS):
        return MovieSource(source, first=first, last=last)
    return SingleImageSource(source, first=first, last=last)


def _check_range(what: str, have_first: int, have_last: int, first: int | None, last: int | None) -> tuple[int, int]:
    f = have_first if first is None else first
    lst = have_last if last is None else last
    if f > lst:
        raise InputError(f"first frame {f} is after last frame {lst}")
    if f < have_first or lst > have_last:
        raise InputError(f"frames {f}-{lst} are out of range: {what} has frames {have_first}-{have_last}")
    return f, lst


# --------------------------------------------------------------------------- OpenImageIO


def _oiio():
    import OpenImageIO as oiio

    return oiio


def _image_header(path: str) -> tuple[int, int, int, str]:
    """(width, height, channels read, pixel format) of one image, or InputError."""
    oiio = _oiio()
    inp = oiio.ImageInput.open(path)
    if inp is None:
        raise InputError(f"cannot read image {path}: {oiio.geterror() or 'unknown format'}")
    try:
        spec = inp.spec()
        return spec.width, spec.height, (1 if spec.nchannels < 3 else 3), str(spec.format)
    finally:
        inp.close()


def _read_image(path: str, channels: int) -> np.ndarray:
    oiio = _oiio()
    inp = oiio.ImageInput.open(path)
    if inp is None:
        raise InputError(f"cannot read image {path}: {oiio.geterror() or 'unknown format'}")
    try:
        pixels = inp.read_image(0, 0, 0, channels, oiio.FLOAT)
        if pixels is None:
            raise InputError(f"cannot decode image {path}: {inp.geterror() or 'read failed'}")
    finally:
        inp.close()
    pixels = np.asarray(pixels, dtype=np.float32)
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    if not np.isfinite(pixels).all():
        pixels = np.nan_to_num(pixels, nan=0.0, posinf=1.0, neginf=0.0)
    return pixels


class ImageSequenceSource(FrameSource):
    def __init__(self, prefix: str, suffix: str, pad: int, first: int | None, last: int | None) -> None:
        self.pattern = printf_pattern(prefix, suffix, pad)
        folder = os.path.dirname(prefix) or "."
        if not os.path.isdir(folder):
            raise InputError(f"sequence folder not found: {folder} (pattern {self.pattern})")
        if first is None or last is None:
            on_disk = self._scan(prefix, suffix, pad)
            if not on_disk:
                raise InputError(f"no frames match {self.pattern}")
            lo = on_disk[0] if first is None else first
            hi = on_disk[-1] if last is None else last
        else:
            lo, hi = first, last
        if lo > hi:
            raise InputError(f"first frame {lo} is after last frame {hi}")
        if lo < 0:
            raise InputError(f"frame numbers must be ≥ 0, got first frame {lo}")
        missing = [f for f in range(lo, hi + 1) if not os.path.isfile(self.path(f))]
        if missing:
            what = "gaps in the sequence" if first is None and last is None else "missing frames"
            raise InputError(f"{what} {self.pattern}: {runs_text(missing)} ({len(missing)} frames)")
        # Every header, so that unreadable files and mismatched sizes stop the job before any work.
        width = height = channels = 0
        fmt = ""
        for f in range(lo, hi + 1):
            w, h, c, fm = _image_header(self.path(f))
            if f == lo:
                width, height, channels, fmt = w, h, c, fm
            elif (w, h) != (width, height):
                raise InputError(
                    f"frame size mismatch in {self.pattern}: frame {f} is {w}×{h}, frame {lo} is {width}×{height}"
                )
            channels = max(channels, c)
        self.info = SourceInfo("sequence", self.pattern, lo, hi, width, height, channels, fmt)

    def path(self, frame: int) -> str:
        return self.pattern % frame

    def files(self) -> list[str]:
        return [self.path(f) for f in self.frames()]

    @staticmethod
    def _scan(prefix: str, suffix: str, pad: int) -> list[int]:
        folder, stem = os.path.split(prefix)
        rx = re.compile(re.escape(stem) + r"(\d+)" + re.escape(suffix) + r"\Z")
        frames = []
        for name in os.listdir(folder or "."):
            m = rx.match(name)
            if m and (f"%0{pad}d" % int(m.group(1)) if pad else str(int(m.group(1)))) == m.group(1):
                frames.append(int(m.group(1)))
        return sorted(frames)

    def read(self, frame: int) -> np.ndarray:
        if not self.info.first <= frame <= self.info.last:
            raise InputError(f"frame {frame} is outside {self.info.first}-{self.info.last}")
        try:
            pixels = _read_image(self.path(frame), self.info.channels)
        except InputError as exc:
            raise FrameReadError(frame, str(exc)) from exc
        if pixels.shape[:2] != (self.info.height, self.info.width):
            raise FrameReadError(frame, f"size changed to {pixels.shape[1]}×{pixels.shape[0]}")
        if pixels.shape[-1] < self.info.channels:  # a gray frame inside an RGB sequence
            pixels = np.repeat(pixels[..., :1], self.info.channels, axis=-1)
        return pixels


_NUMBERED_NAME = re.compile(r"(?P<stem>.+[._])(?P<digits>\d+)(?P<suffix>\.[^.]+)\Z")


def numbered_frame(path: str) -> tuple[int, str] | None:
    """``plate.1001.exr`` → (1001, ``plate.%04d.exr``): the frame number a file's name gives it and the
    pattern of the sequence it belongs to; None for a name without one (``still.tif``)."""
    folder, name = os.path.split(path)
    m = _NUMBERED_NAME.match(name)
    if m is None or int(m.group("digits")) > MAX_FRAME_NUMBER:  # a date-and-time photo name is no frame number
        return None
    digits = m.group("digits")
    return int(digits), os.path.join(folder, printf_pattern(m.group("stem"), m.group("suffix"), len(digits)))


class SingleImageSource(FrameSource):
    """One picture. Its frame number is the one in its name (``plate.1001.exr`` is frame 1001, so its ab
    file is ``ab.1001.exr`` and lines up with the rest of the shot), else 0. When the name is one frame of
    a sequence on disk, ``note`` says so: the user may have meant the whole sequence."""

    def __init__(self, path: str, first: int | None, last: int | None) -> None:
        self._path = path
        w, h, c, fmt = _image_header(path)
        numbered = numbered_frame(path)
        self.frame = numbered[0] if numbered else 0
        lo, hi = _check_range(path, self.frame, self.frame, first, last)
        self.info = SourceInfo("image", path, lo, hi, w, h, c, fmt)
        if numbered:
            self.note = _sequence_note(path, *numbered)

    def read(self, frame: int) -> np.ndarray:
        if frame != self.frame:
            raise InputError(f"frame {frame} is outside {self.frame}-{self.frame}")
        try:
            return _read_image(self._path, self.info.channels)
        except InputError as exc:
            raise FrameReadError(frame, str(exc)) from exc


def _sequence_note(path: str, frame: int, pattern: str) -> str | None:
    """``plate.1001.exr is frame 1001 of the sequence plate.%04d.exr (frames 1001-1100) …`` when the file
    has siblings of the same sequence; None when it stands alone."""
    parsed = parse_sequence_pattern(pattern)
    if parsed is None:
        return None
    try:
        frames = ImageSequenceSource._scan(*parsed)
    except (OSError, InputError):
        return None
    if len(frames) < 2:
        return None
    return (f"{os.path.basename(path)} is frame {frame} of the sequence {pattern} (frames {runs_text(frames)}): "
            f"only this frame is colorized; give the pattern {os.path.basename(pattern)} for the whole sequence")


# --------------------------------------------------------------------------- PyAV


class MovieSource(FrameSource):
    """A movie decoded with PyAV (FFmpeg): ProRes, DNxHR, H.264, … in MOV/MP4/MXF.

    Sequential reads continue the open decoder; a jump seeks to the nearest earlier keyframe and
    decodes forward, mapping presentation timestamps to frame numbers at the stream's average rate
    (constant-frame-rate footage, which is what editorial delivers).
    """

    def __init__(self, path: str, first: int | None, last: int | None) -> None:
        import av

        self._path = path
        try:
            container = av.open(path)
        except Exception as exc:
            raise InputError(f"cannot open movie {path}: {exc}") from exc
        try:
            if not container.streams.video:
                raise InputError(f"movie {path} has no video stream")
            stream = container.streams.video[0]
            ctx = stream.codec_context
            width, height = ctx.width, ctx.height
            fmt = ctx.pix_fmt or "unknown"
            rate = stream.average_rate or stream.guessed_rate
            if not rate:
                raise InputError(f"movie {path} has no frame rate")
            count = stream.frames or sum(1 for p in container.demux(stream) if p.size)
        finally:
            container.close()
        if count <= 0:
            raise InputError(f"movie {path} has no frames")
        if not width or not height:
            raise InputError(f"movie {path}: cannot tell the frame size")
        gray = fmt.startswith("gray") or fmt.startswith("y") and not fmt.startswith("yuv")
        lo, hi = _check_range(path, 0, count - 1, first, last)
        self._rate = Fraction(rate)
        self._container: Any = None
        self._stream: Any = None
        self._decoder: Iterator[Any] | None = None
        self._next = -1
        self.info = SourceInfo("movie", path, lo, hi, width, height, 1 if gray else 3, fmt, float(rate))

    def _open(self):
        import av

        self._container = av.open(self._path)
        self._stream = self._container.streams.video[0]
        self._stream.thread_type = "AUTO"
        self._start = self._stream.start_time or 0

    def _index_of(self, vf) -> int:
        if vf.pts is None:
            return -1
        return round((vf.pts - self._start) * self._stream.time_base * self._rate)

    def _seek(self, frame: int) -> Iterator[Any]:
        if self._container is None:
            self._open()
        target = self._start + int(frame / self._rate / self._stream.time_base)
        self._container.seek(target, stream=self._stream, backward=True, any_frame=False)
        self._decoder = self._container.decode(self._stream)
        self._next = -1
        return self._decoder

    def read(self, frame: int) -> np.ndarray:
        if not self.info.first <= frame <= self.info.last:
            raise InputError(f"frame {frame} is outside {self.info.first}-{self.info.last}")
        try:
            decoder = self._decoder
            if decoder is None or frame != self._next:
                decoder = self._seek(frame)
            for vf in decoder:
                index = self._index_of(vf)
                if index == -1:
                    index = self._next if self._next >= 0 else frame
                if index < frame:
                    continue
                self._next = index + 1
                if index > frame:  # the seek landed past it (timestamps missing or irregular)
                    raise FrameReadError(frame, "no picture with this frame number in the stream")
                return self._to_array(vf)
        except FrameReadError:
            self._decoder = None
            raise
        except Exception as exc:
            self._decoder = None
            raise FrameReadError(frame, f"cannot decode {self._path}: {exc}") from exc
        self._decoder = None
        raise FrameReadError(frame, f"the movie ended before frame {frame}")

    def _to_array(self, vf) -> np.ndarray:
        from av.video.reformatter import ColorRange, Colorspace, Interpolation

        if self.info.channels == 1:
            arr = vf.to_ndarray(format="gray16le")
            return (arr.astype(np.float32) / 65535.0)[..., None]
        # Matrix and range from the stream's tags; untagged HD is BT.709, untagged SD BT.601
        # (AVColorSpace: 1 = BT.709, 2 = unspecified, 5/6 = BT.601).
        cs = int(vf.colorspace)
        hd = self.info.height >= 720
        src_cs = None
        if cs == 1 or (cs == 2 and hd):
            src_cs = Colorspace.ITU709
        elif cs in (5, 6) or (cs == 2 and not hd):
            src_cs = Colorspace.ITU601
        src_range = ColorRange.JPEG if vf.color_range == 2 else ColorRange.MPEG
        rgb = vf.reformat(
            format="rgb48le",
            src_colorspace=src_cs,
            src_color_range=src_range,
            dst_color_range=ColorRange.JPEG,
            interpolation=Interpolation.BILINEAR | Interpolation.ACCURATE_RND,
        )
        return rgb.to_ndarray().astype(np.float32) / 65535.0

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None
        self._decoder = None
