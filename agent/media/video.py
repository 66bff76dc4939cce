"""Video input: probe a file, then sample frames from it with PyAV or decord.

Contract shared by both backends
--------------------------------
* **Which frame.** A request becomes target times through one function, :func:`target_times`;
  each backend then returns, for every target ``t``, the frame *shown* at ``t``: the last frame
  whose presentation time is ``<= t`` (the first frame for a ``t`` before it). Because this uses
  presentation timestamps, variable-frame-rate (VFR) video is handled exactly.
* **Sampling grids.** ``sample_uniform(n)`` takes the centres of ``n`` equal segments of the span;
  ``sample_fps(fps)`` takes ``start + (k + 0.5) / fps`` for every ``k`` with that time before the
  span's end (a span shorter than half a period gets one frame, at its midpoint). Both skip the
  very first frame (often black) and the two agree when ``n = duration * fps``.
* **Timestamps** are seconds relative to the video stream's start time, from the frame's pts.
  decord's float32 timestamps are snapped to the stream's time base, so for the same request the
  two backends return identical timestamps (the tests check they agree within one frame).
* **Indices.** decord: the exact frame number. PyAV decodes from keyframes and never counts from
  the start, so its index is ``round(timestamp * fps)``: exact for constant-frame-rate video, an
  estimate for VFR.
* **Rotation.** Frames are returned as stored; ``VideoMeta.rotation`` reports the display-matrix
  rotation (degrees counter-clockwise, 0/90/180/270) for the caller to apply if it wants.
* **Resizing.** ``short_side`` scales on decode (aspect kept, the shorter side becomes
  ``short_side``); the full-size frame is never converted to RGB.

Probing
-------
:meth:`Video.open` reads the container and stream headers with PyAV (both backends) and checks
the dimensions before anything is decoded. It then decodes the *first* frame only: that proves
the stream is decodable before decord (which can crash or hang on broken files) ever sees it,
tells an empty video (:class:`EmptyVideo`) from a broken one (:class:`CorruptVideo`) in containers
that carry no frame count (Matroska, MPEG-TS), and yields the display matrix, which PyAV 18
exposes on decoded frames only.

Truncated or corrupt files
--------------------------
Sampling returns the frames that decode. Targets are served in time order; once a target has no
decodable frame (it lies past the end of the last frame that decoded, e.g. in a file cut in the
middle of a download), it and all later targets are dropped, and a
:class:`TruncatedVideoWarning` names the file and how many requested frames are missing.
A file damaged in the middle (packets that do not decode, frames after them that do) keeps its
frames: a target in the damaged stretch gets the last frame before it (its own timestamp says
so), and one :class:`DamagedVideoWarning` per video names the stretches in seconds. decord's
FFmpeg log is silenced (it would print raw ``[h264 @ 0x...]`` lines); decord raises on such
packets and PyAV takes over.
Returned frames keep the requested order. :class:`CorruptVideo` is raised only when no frame at
all can be decoded (found at open). If decord fails on a file mid-way, the video switches to
PyAV for good (with a warning when decord was asked for by name). No av/decord exception leaves
this module: they become :mod:`vidagent.core.errors` classes carrying the path and a short reason.

Backends
--------
"auto" is PyAV (the readers below); decord is kept for callers who ask for it by name.

Skipping
--------
The PyAV reader decodes only what the requested times depend on. For each packet it sets the
codec's ``skip_frame`` (frame threads copy it with every packet): "NONREF" when the packet's
frame is shown at no target (the decoder then drops it unless other frames reference it),
"NONKEY" when no target needs anything before the next keyframe (from the container's index),
else "DEFAULT". Only returned frames are converted, scaled in the same libswscale call. The
decision uses packet durations; if one lies, a skipped frame can lie between the frame held for
a target and the target: the reader checks that for every target, decodes that stretch again
with nothing skipped, and stops skipping after ``MAX_SKIP_MISSES`` such misses. It seeks (instead
of decoding on) when two or more keyframes lie before the next target, or without an index when
the target is more than ``SEEK_AHEAD`` seconds and the longest keyframe interval seen away.
``workers`` > 1 splits long reads at keyframes over parallel readers, and ``seek="keyframe"``
returns the nearest keyframe instead (both in :mod:`vidagent.media.fast_readers`). A
:class:`Video` is not thread-safe; use one per thread.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import math
import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, cast

import av
import numpy as np

from vidagent.core.errors import (
    AbsurdDimensions,
    CorruptVideo,
    EmptyVideo,
    NotAMediaFile,
    NoVideoStream,
    SpanOutOfRange,
    VidagentError,
    VideoNotFound,
)
from vidagent.core.spans import checked_span

__all__ = [
    "BACKENDS",
    "DamagedVideoWarning",
    "Frames",
    "TruncatedVideoWarning",
    "Video",
    "VideoMeta",
    "target_times",
]

BACKENDS = ("auto", "decord", "pyav")
SEEK_MODES = ("exact", "keyframe")
MAX_SIDE = 16384
MAX_PIXELS = 8192 * 8192
SEEK_AHEAD = 2.0  # seconds: a target closer than this to the decode position is decoded to, not sought
EPS = 1e-6  # seconds: a target this close before a frame's pts still shows that frame
FRAME_THREAD_LAG = 16  # frames: how late FFmpeg's frame threads may report a packet that failed to decode
PROBE_PACKETS = 600  # packets read at open looking for a first decodable frame
READER_THREADS = "AUTO"  # FFmpeg's frame threads for a reader that decodes alone
MAX_SKIP_MISSES = 3  # skipped frames that turned out to be needed before a reader stops skipping

Span = tuple[float, float]

# Demuxers that render *text* as a video stream (FFmpeg opens any .txt file as "tty" video).
_TEXT_CODECS = frozenset({"ansi", "bintext", "xbin", "idf"})
# Signatures of containers that exist only for media: an unreadable file carrying one is a broken
# video (e.g. an MP4 cut before its moov box), not some other kind of file.
_MEDIA_MAGIC = (
    (4, b"ftyp"), (4, b"moov"), (4, b"mdat"), (4, b"free"), (4, b"wide"),
    (0, b"\x1aE\xdf\xa3"), (0, b"RIFF"), (0, b"OggS"), (0, b"FLV"), (0, b"YUV4MPEG2"),
    (0, b"\x00\x00\x01\xba"), (0, b"\x30\x26\xb2\x75"),
)  # fmt: skip


class TruncatedVideoWarning(UserWarning):
    """Some requested frames could not be decoded (the file ends early or is damaged)."""


class DamagedVideoWarning(UserWarning):
    """A stretch of the video does not decode, though frames after it do (bytes damaged in the middle)."""


@dataclass(frozen=True)
class VideoMeta:
    """What the headers say about a video (see the module docstring for ``rotation``)."""

    path: str
    duration: float  # seconds
    fps: float  # average frame rate
    frame_count: int  # from the stream header, else round(duration * fps)
    width: int  # as stored
    height: int
    codec: str
    rotation: int  # degrees counter-clockwise to display upright; frames are NOT rotated
    has_audio: bool
    container: str

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class Frames:
    """Sampled frames: RGB uint8 ``(N, H, W, 3)``, pts in seconds, frame indices."""

    frames: np.ndarray
    timestamps: np.ndarray  # float64 seconds from the stream start
    indices: np.ndarray  # int64

    def __len__(self) -> int:
        return len(self.frames)

    @classmethod
    def empty(cls, width: int, height: int) -> Frames:
        return cls(np.empty((0, height, width, 3), np.uint8), np.empty(0), np.empty(0, np.int64))

    @classmethod
    def concat(cls, parts: Sequence[Frames]) -> Frames:
        """All ``parts`` one after another (at least one part)."""
        return cls(
            np.concatenate([p.frames for p in parts]),
            np.concatenate([p.timestamps for p in parts]),
            np.concatenate([p.indices for p in parts]),
        )

    def take(self, rows: np.ndarray) -> Frames:
        return Frames(self.frames[rows], self.timestamps[rows], self.indices[rows])


def target_times(span: float | Span, fps: float | None = None, n: int | None = None) -> np.ndarray:
    """Target timestamps (seconds) for a request; every sampler of both backends uses this.

    ``span`` is a duration (meaning ``(0, duration)``) or ``(start, end)``. Give exactly one of
    ``n`` (centres of ``n`` equal segments) or ``fps`` (``start + (k + 0.5) / fps`` while before
    ``end``; at least one target, the midpoint, for a span shorter than half a period).
    """
    if np.isscalar(span):  # a duration; NumPy scalars count too (casts: np.isscalar narrows neither branch)
        start, end = 0.0, float(cast(float, span))
    else:
        bounds = cast(Span, span)
        start, end = float(bounds[0]), float(bounds[1])
    if not end > start:
        raise ValueError(f"span end must be after its start, got {start:g}-{end:g}s")
    if (fps is None) == (n is None):
        raise ValueError("give exactly one of fps or n")
    if n is not None:
        if int(n) < 1:
            raise ValueError(f"n must be at least 1, got {n}")
        return start + (np.arange(int(n)) + 0.5) * ((end - start) / int(n))
    if not (fps is not None and math.isfinite(fps) and fps > 0):
        raise ValueError(f"fps must be a positive number, got {fps}")
    count = math.ceil((end - start) * fps - 0.5 - 1e-9)
    if count < 1:
        return np.array([(start + end) / 2])
    return start + (np.arange(count) + 0.5) / fps


# --- probing -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _StreamInfo:
    """Header facts the backends need besides :class:`VideoMeta`."""

    index: int
    time_base: float
    start_pts: int
    # the keyframes' decode times (s) from the container's index, or None without one (MPEG-TS):
    # read once here, shared by every reader of the video
    keys: np.ndarray | None = dataclasses.field(default=None, compare=False)


def _probe(
    path: Path, *, keep: bool = False
) -> tuple[VideoMeta, _StreamInfo, av.container.InputContainer | None]:
    """Read the headers, check them, and decode the first frame (see the module docstring).

    ``keep``: return the open container (its decoder on FFmpeg's frame threads) for the first
    PyAV reader, which then need not open the file again; else None.
    """
    if not path.is_file():
        raise VideoNotFound(path, "no such file" if not path.exists() else "not a regular file")
    try:
        container = av.open(str(path), metadata_errors="ignore")
    except (av.FFmpegError, OSError) as exc:
        raise _unreadable(path, exc) from None
    try:
        if not container.streams:
            raise _unreadable(path, "no streams")
        stream = _video_stream(path, container)
        if keep:  # the reader's threading: the codec opens with the first decode, and stays so
            stream.thread_type = READER_THREADS
        width, height = stream.codec_context.width, stream.codec_context.height
        check_dimensions(path, width, height)
        fps = _frame_rate(stream, container)
        duration = _duration(stream, container, fps)
        first = _first_frame(path, container, stream)
        meta = VideoMeta(
            path=str(path),
            duration=duration,
            fps=fps,
            frame_count=stream.frames or round(duration * fps),
            width=width,
            height=height,
            codec=stream.codec_context.name,
            rotation=round(first.rotation) % 360,
            has_audio=bool(container.streams.audio),
            container=container.format.name,
        )
        time_base, start_pts = float(stream.time_base or 0), stream.start_time or 0
        info = _StreamInfo(stream.index, time_base, start_pts, _keyframe_times(stream, start_pts, time_base))
    except BaseException:
        container.close()
        raise
    if not keep:
        container.close()
    return meta, info, container if keep else None


def _unreadable(path: Path, reason: object) -> Exception:
    """The error for a file FFmpeg cannot open: broken media, or not media at all."""
    with path.open("rb") as f:
        head = f.read(16)
    if any(head[at : at + len(magic)] == magic for at, magic in _MEDIA_MAGIC):
        return CorruptVideo(
            path, f"the container headers cannot be read (truncated or damaged file?): {reason}"
        )
    return NotAMediaFile(path, f"not a video or audio file FFmpeg can read ({reason})")


def _video_stream(path: Path, container: av.container.InputContainer) -> av.video.stream.VideoStream:
    """The first real video stream (cover art in audio files does not count)."""
    videos = [s for s in container.streams.video if not s.disposition & av.stream.Disposition.attached_pic]
    if not videos:
        kinds = ", ".join(sorted({s.type for s in container.streams})) or "none"
        raise NoVideoStream(path, f"no video stream (streams: {kinds})")
    if videos[0].codec_context.name in _TEXT_CODECS:
        raise NotAMediaFile(path, "a text file, not a video")
    name = container.format.name
    if name == "image2" or name.endswith("_pipe"):  # png_pipe, jpeg_pipe, webp_pipe...: one still picture
        raise NoVideoStream(path, f"a still image ({videos[0].codec_context.name}), not a video")
    return videos[0]


def check_dimensions(path: object, width: int, height: int) -> None:
    """Raise :class:`AbsurdDimensions` for sizes we refuse to decode."""
    if width <= 0 or height <= 0 or width > MAX_SIDE or height > MAX_SIDE or width * height > MAX_PIXELS:
        raise AbsurdDimensions(
            path, f"frame size {width}x{height} is outside 1..{MAX_SIDE} per side / {MAX_PIXELS} pixels"
        )


def _frame_rate(stream: av.video.stream.VideoStream, container: av.container.InputContainer) -> float:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate and float(rate) > 0:
            return float(rate)
    seconds = (container.duration or 0) / av.time_base
    return stream.frames / seconds if stream.frames and seconds > 0 else 0.0


def _duration(
    stream: av.video.stream.VideoStream, container: av.container.InputContainer, fps: float
) -> float:
    """Stream duration, else container duration, else frames / fps, else one frame period."""
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration:
        return container.duration / av.time_base
    if stream.frames and fps:
        return stream.frames / fps
    return 1 / fps if fps else 0.0


def _first_frame(
    path: Path, container: av.container.InputContainer, stream: av.video.stream.VideoStream
) -> av.VideoFrame:
    """Decode the first frame: :class:`EmptyVideo` without packets, :class:`CorruptVideo` if none decodes."""
    packets, reason = 0, "no frame decodes"
    try:
        for packet in container.demux(stream):
            if packet.size == 0 and packet.pts is None and packets == 0:
                continue  # the flush packet of an empty stream
            packets += 1
            try:
                frames = packet.decode()
            except av.FFmpegError as exc:
                reason = f"no frame decodes ({exc})"
                frames = []
            if frames:
                return frames[0]
            if packets >= PROBE_PACKETS:
                break
    except av.FFmpegError as exc:
        reason = f"reading failed ({exc})"
    if packets == 0:
        raise EmptyVideo(path, "the video stream has no frames")
    raise CorruptVideo(path, f"{reason} in the first {packets} packets")


def _served_until(last_end: float, duration: float, fps: float) -> float:
    """Up to when the last decodable frame (ending at ``last_end``) answers targets.

    If decoding reached the header's end (give or take half a frame), it is the last frame of the
    video and answers every target up to the end. Otherwise the file stops early (truncated or
    damaged) and targets after that frame's end have no frame.
    """
    return math.inf if last_end >= duration - 0.5 / fps else last_end + EPS


def output_size(width: int, height: int, short_side: int | None) -> tuple[int, int]:
    """(width, height) after scaling the shorter side to ``short_side`` (aspect kept)."""
    if short_side is None:
        return width, height
    if int(short_side) < 1:
        raise ValueError(f"short_side must be a positive integer, got {short_side}")
    scale = int(short_side) / min(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


# --- backends ------------------------------------------------------------------------------


class _BackendFailure(Exception):
    """A backend cannot go on with this file; the message is the reason."""


class _Decoded:
    """One decoded PyAV frame with its times, converted to RGB at most once per size."""

    __slots__ = ("_rgb", "end", "frame", "time")

    def __init__(self, frame: av.VideoFrame, time: float, end: float) -> None:
        self.frame, self.time, self.end = frame, time, end
        self._rgb: tuple[tuple[int, int], np.ndarray] | None = None

    def rgb(self, size: tuple[int, int]) -> np.ndarray:
        if self._rgb is None or self._rgb[0] != size:
            try:
                array = self.frame.to_ndarray(format="rgb24", width=size[0], height=size[1])
            except (av.FFmpegError, ValueError) as exc:
                raise _BackendFailure(f"cannot convert a frame to RGB: {exc}") from None
            self._rgb = (size, array)
        return self._rgb[1]


def collect_frames(
    times: np.ndarray, frame_at: Callable[[float], _Decoded | None], size: tuple[int, int], fps: float
) -> Frames:
    """The frames ``frame_at`` gives for ascending ``times`` at ``size``, up to the first None;
    indices are ``round(time * fps)`` (PyAV never counts frames from the start)."""
    arrays, stamps = [], []
    for t in times:
        decoded = frame_at(float(t))
        if decoded is None:
            break
        arrays.append(decoded.rgb(size))
        stamps.append(decoded.time)
    if not arrays:
        return Frames.empty(*size)
    seconds = np.array(stamps)
    return Frames(np.stack(arrays), seconds, np.rint(seconds * fps).astype(np.int64))


class _PyAVReader:
    """Sequential threaded decoding that keeps its position between calls (cheap chunking)."""

    name = "pyav"

    def __init__(
        self,
        path: Path,
        meta: VideoMeta,
        info: _StreamInfo,
        *,
        threads: str = READER_THREADS,
        container: av.container.InputContainer | None = None,
    ) -> None:
        """``container``: the probe's, already open with ``threads`` (the first read seeks, which
        flushes what the probe decoded)."""
        try:
            self._container = container or av.open(str(path), metadata_errors="ignore")
        except (av.FFmpegError, OSError) as exc:
            raise _BackendFailure(f"cannot reopen the file: {exc}") from None
        self._stream = self._container.streams[info.index]
        if container is None:
            self._stream.thread_type = threads
        self._tb, self._start_pts, self._fps = info.time_base, info.start_pts, meta.fps or 25.0
        self._duration = meta.duration
        self._frames: Iterator[_Decoded] | None = None  # None until the first read
        self._shown: _Decoded | None = None  # the frame shown at the last target
        self._next: _Decoded | None = None  # the first frame after it (None at the end)
        self._keyframe_gap = 0.0  # longest keyframe interval seen (for files without an index)
        self._errors: set[float] = set()  # times (s) of packets that did not decode
        self._gaps: set[tuple[float, float]] = set()  # stretches with no decoded frame
        # what lets the decoder skip work (see "Skipping" in the module docstring)
        self._context = self._stream.codec_context
        self._keys = info.keys  # decode times (s), or None
        self._plan = np.empty(0)  # the targets still to serve, ascending: what the decoder may skip
        self._skipping = True  # off for good after MAX_SKIP_MISSES misses
        self._strict = False  # while re-decoding a target a skip got wrong
        self._misses = 0
        self._mode = "DEFAULT"  # the codec context's skip_frame now
        self._skipped: set[int] = set()  # pts of packets sent under a skip mode that gave no frame (yet)
        self._reorder = 0.0  # the largest pts - dts seen (s): how far decoding runs ahead of display

    def read(self, times: np.ndarray, size: tuple[int, int], ahead: np.ndarray | None = None) -> Frames:
        """The frames shown at ascending ``times``, up to the first one that does not decode.

        ``ahead``: the targets the next reads will ask for (ascending, after ``times``), so that
        the decoder does not skip a frame they need.
        """
        self._plan = times if ahead is None or not len(ahead) else np.concatenate([times, ahead])
        return collect_frames(times, self._frame_at, size, self._fps)

    def close(self) -> None:
        self._shown = self._next = self._frames = None
        self._container.close()

    def _frame_at(self, t: float) -> _Decoded | None:
        if self._frames is None or self._needs_seek(t):
            self._seek(t)
        while self._next is not None and self._next.time <= t + EPS:
            self._shown, self._next = self._next, self._pull()
        if self._shown is not None and self._skipped_before(t):
            self._redo_strictly(t)  # a skipped frame would have been the one shown at t
        if self._shown is None:
            return self._next  # t precedes the first frame (or nothing decodes here)
        if self._next is None and t > _served_until(self._shown.end, self._duration, self._fps):
            return None  # past the last frame that decodes
        return self._shown

    def _needs_seek(self, t: float) -> bool:
        """Backwards, or far enough ahead that a keyframe lies in between (seeking skips decoding)."""
        if self._shown is not None and t < self._shown.time - EPS:
            return True
        here = self._shown or self._next
        position = here.time if here is not None else 0.0
        if self._keys is None:  # no index: seek only past the longest keyframe interval seen so far
            return t - position > max(SEEK_AHEAD, self._keyframe_gap)
        # Seek when decoding on would decode a keyframe for nothing: two or more keyframes lie
        # between here and t. With one, the decoder skips to it (skip_frame) without a seek.
        first_after = np.searchsorted(self._keys, position + EPS, side="left")
        last_before = np.searchsorted(self._keys, t - self._reorder + EPS, side="right") - 1
        return bool(last_before > first_after)

    def _seek(self, t: float) -> None:
        """Position the decoder so the next frame pulled is at or before ``t``."""
        back = 0.0
        while True:
            target = max(t - back, 0.0)
            self._restart_at(target)
            if target == 0.0 or (self._next is not None and self._next.time <= t + EPS):
                return
            # Landed after t (index times are dts; MPEG-TS seeks are approximate) or where nothing
            # decodes before the end: seek further back.
            back = max(2 * back, 1.0)

    def _restart_at(self, seconds: float) -> None:
        """Seek to the keyframe at or before ``seconds`` and pull the first frame from there."""
        offset = self._ticks(seconds) if seconds > 0 else min(self._start_pts, 0)  # below the start
        try:
            self._container.seek(offset, stream=self._stream, backward=True, any_frame=False)
            self._skipped.clear()
            self._frames = self._decode()
        except av.FFmpegError:
            self._frames = iter(())
        self._shown, self._next = None, self._pull()

    def _ticks(self, seconds: float) -> int:
        return round(seconds / self._tb) + self._start_pts

    @property
    def damaged(self) -> set[tuple[float, float]]:
        """The stretches where packets failed to decode: the gaps between decoded frames near a
        failure (frame threads report a failure a few packets late), else the failures' own times."""
        lag = FRAME_THREAD_LAG / self._fps
        near = {g for g in self._gaps if any(g[0] - lag <= e <= g[1] + lag for e in self._errors)}
        lone = {
            (round(e, 6), round(e + 1 / self._fps, 6))
            for e in self._errors
            if not any(g[0] - lag <= e <= g[1] + lag for g in near)
        }
        return near | lone

    def _pull(self) -> _Decoded | None:
        return next(self._frames, None) if self._frames is not None else None

    def _decode(self) -> Iterator[_Decoded]:
        """Frames in presentation order; damaged packets are skipped, a demuxer error ends it."""
        last_time, last_key = -1 / self._fps, None
        last_end, last_length = math.inf, 1 / self._fps  # no gap before the first frame
        leading_before = -math.inf  # pts before the keyframe that ended a skip: may lack references
        try:
            for packet in self._container.demux(self._stream):
                mode = self._skip_mode(packet)
                if mode != self._mode:  # frame threads copy the setting with each packet they take
                    self._context.skip_frame = self._mode = mode
                if mode != "DEFAULT" and packet.pts is not None:
                    self._skipped.add(packet.pts)
                elif packet.is_keyframe and self._skipped and packet.pts is not None:
                    leading_before = packet.pts
                try:
                    frames = packet.decode()
                except av.FFmpegError:
                    stamp = packet.pts if packet.pts is not None else packet.dts
                    if mode == "DEFAULT" and (stamp is None or stamp >= leading_before):
                        self._errors.add(
                            (stamp - self._start_pts) * self._tb if stamp is not None else last_time
                        )
                    continue
                for frame in frames:
                    if frame.pts is not None:
                        self._skipped.discard(frame.pts)
                    t = (
                        (frame.pts - self._start_pts) * self._tb
                        if frame.pts is not None
                        else last_time + 1 / self._fps
                    )
                    if frame.key_frame:
                        if last_key is not None:
                            self._keyframe_gap = max(self._keyframe_gap, t - last_key)
                        last_key = t
                    if t > last_end + 0.5 * last_length and not self._skipped_between(last_end, t):
                        self._gaps.add((round(last_end, 6), round(t, 6)))  # frames missing (or VFR)
                    length = frame.duration * self._tb if frame.duration else 1 / self._fps
                    last_time, last_end, last_length = t, t + length, length
                    yield _Decoded(frame, t, t + length)
        except av.FFmpegError:
            return

    def _skip_mode(self, packet: av.Packet) -> str:
        """How much of ``packet`` the decoder may skip: everything but keyframes ("NONKEY") when
        no target needs anything before the next keyframe, non-reference frames ("NONREF") when
        it is not shown at a target, else nothing ("DEFAULT")."""
        if not self._skipping or self._strict or packet.pts is None or packet.is_keyframe:
            return "DEFAULT"
        p = (packet.pts - self._start_pts) * self._tb
        if packet.dts is not None:
            self._reorder = max(self._reorder, (packet.pts - packet.dts) * self._tb)
        plan = self._plan
        i = np.searchsorted(plan, p - EPS, side="left")
        length = packet.duration * self._tb if packet.duration else 1 / self._fps
        if i == len(plan) or plan[i] < p + length:
            return "DEFAULT"  # shown at a target, or past the plan (a later read may want it)
        if self._keys is not None and packet.dts is not None:
            # frames decoded after this one show at most `reach` earlier and may reference it
            reach = self._reorder + 1 / self._fps
            first = plan[np.searchsorted(plan, p - reach, side="left")]
            k = np.searchsorted(self._keys, (packet.dts - self._start_pts) * self._tb + EPS, side="left")
            if k < len(self._keys) and self._keys[k] + self._reorder + reach <= first:
                return "NONKEY"
        return "NONREF"

    def _skipped_between(self, after: float, until: float) -> bool:
        """Whether a packet skipped by the decoder shows in ``(after, until]`` (seconds)."""
        return any(after - EPS < (q - self._start_pts) * self._tb <= until + EPS for q in self._skipped)

    def _skipped_before(self, t: float) -> bool:
        """Whether a skipped frame lies between the frame shown at ``t`` and ``t``; forgets older ones."""
        if self._shown is None:
            return False
        shown = self._shown.time
        self._skipped = {q for q in self._skipped if (q - self._start_pts) * self._tb > shown + EPS}
        return self._skipped_between(shown + 2 * EPS, t)

    def _redo_strictly(self, t: float) -> None:
        """Decode up to ``t`` again with nothing skipped (a frame's duration misled the skipping)."""
        self._misses += 1
        self._skipping = self._misses < MAX_SKIP_MISSES
        self._strict = True
        try:
            self._seek(t)
            while self._next is not None and self._next.time <= t + EPS:
                self._shown, self._next = self._next, self._pull()
        finally:
            self._strict = False


def _keyframe_times(
    stream: av.video.stream.VideoStream, start_pts: int, time_base: float
) -> np.ndarray | None:
    """The keyframes' decode times (s) from the container's index, or None without one."""
    entries = stream.index_entries
    if len(entries) < 2:
        return None
    keys = np.array([e.timestamp for e in entries if e.is_keyframe], np.float64)
    return np.unique((keys - start_pts) * time_base) if len(keys) else None


class _DecordReader:
    """decord random access: exact frame indices and batched reads."""

    name = "decord"

    def __init__(self, path: Path, meta: VideoMeta, info: _StreamInfo) -> None:
        import decord

        # decord's FFmpeg would print raw "[h264 @ 0x...]" lines; its errors raise and PyAV takes
        # over, which says in one warning which seconds do not decode
        decord.logging.set_level(decord.logging.QUIET)
        self.damaged: set[tuple[float, float]] = set()  # decord does not say; a failure falls back to PyAV
        self._decord, self._path, self._meta = decord, path, meta
        self._sized: tuple[tuple[int, int], Any] | None = None
        full = self._reader((meta.width, meta.height))
        try:
            stamps = np.asarray(full.get_frame_timestamp(list(range(len(full)))), np.float64).reshape(-1, 2)
        except (decord.DECORDError, IndexError, RuntimeError) as exc:
            raise _BackendFailure(f"decord cannot read the frame times: {exc}") from None
        if info.time_base > 0:  # decord keeps float32 seconds; snap back onto the pts grid
            stamps = np.round(stamps / info.time_base) * info.time_base
        if not _plausible(stamps[:, 0], meta.duration):
            raise _BackendFailure("decord reads implausible frame times")
        fps = meta.fps or 25.0
        last_start, last_end = stamps[-1]
        self._starts = stamps[:, 0]
        self._end = _served_until(
            last_end if last_end > last_start else last_start + 1 / fps, meta.duration, fps
        )

    def read(self, times: np.ndarray, size: tuple[int, int], ahead: np.ndarray | None = None) -> Frames:
        """The frames shown at ascending ``times``, up to the first past the last frame."""
        times = times[times <= self._end]
        if not len(times):
            return Frames.empty(*size)
        indices = np.maximum(np.searchsorted(self._starts, times + EPS, side="right") - 1, 0)
        unique, inverse = np.unique(indices, return_inverse=True)
        try:
            batch = self._reader(size).get_batch(unique.tolist()).asnumpy()
        except (self._decord.DECORDError, IndexError, RuntimeError) as exc:
            raise _BackendFailure(f"decord failed to decode: {exc}") from None
        return Frames(batch[inverse], self._starts[indices], indices.astype(np.int64))

    def close(self) -> None:
        self._sized = None

    def _reader(self, size: tuple[int, int]) -> Any:
        """A VideoReader decoding at ``size`` (one is kept; a new size opens a new one)."""
        if self._sized is None or self._sized[0] != size:
            full = size == (self._meta.width, self._meta.height)
            width, height = (-1, -1) if full else size
            try:
                reader = self._decord.VideoReader(
                    str(self._path), ctx=self._decord.cpu(0), num_threads=0, width=width, height=height
                )
            except (self._decord.DECORDError, RuntimeError) as exc:
                raise _BackendFailure(f"decord cannot open the file: {exc}") from None
            if len(reader) == 0:
                raise _BackendFailure("decord finds no frames")
            self._sized = (size, reader)
        return self._sized[1]


def _plausible(starts: np.ndarray, duration: float) -> bool:
    return bool(
        len(starts)
        and np.isfinite(starts).all()
        and (np.diff(starts) >= 0).all()
        and starts[0] > -1.0
        and (duration <= 0 or starts[-1] < duration + 1.0)
    )


def decord_available() -> bool:
    return importlib.util.find_spec("decord") is not None


class Reader(Protocol):
    """What :class:`Video` reads with: one per backend and seek mode."""

    name: str

    @property
    def damaged(self) -> set[tuple[float, float]]: ...

    def read(self, times: np.ndarray, size: tuple[int, int], ahead: np.ndarray | None = None) -> Frames: ...

    def close(self) -> None: ...


def default_workers() -> int:
    """Parallel PyAV decoders for one video: the cores this process may use, at most 8."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, 8))


# --- the public object ---------------------------------------------------------------------


class Video:
    """An opened video. Use :meth:`open`; close it (or use ``with``) when done."""

    def __init__(
        self,
        path: Path,
        meta: VideoMeta,
        info: _StreamInfo,
        backend: str,
        explicit: bool,
        seek: str = "exact",
        workers: int = 1,
        probed: av.container.InputContainer | None = None,
    ) -> None:
        """``probed``: the probe's open container, for the first exact PyAV reader."""
        self.path, self.meta, self._info, self._explicit = path, meta, info, explicit
        self.seek, self.workers = seek, workers
        self._probed = probed
        try:
            self._reader: Reader | None = self._start(backend)
        finally:
            if self._probed is not None:  # not taken (decord, keyframe mode, a failure)
                self._probed.close()
            self._probed = None
        self.backend: str = self._reader.name  # the backend actually in use
        self._damage_named: set[tuple[float, float]] = set()  # damaged stretches already in a warning

    @classmethod
    def open(
        cls, path: str | Path, backend: str = "auto", *, seek: str = "exact", workers: int | None = None
    ) -> Video:
        """Probe ``path`` and prepare ``backend`` ("auto": PyAV, see "Backends" above).

        ``seek``: "exact" (the frame shown at each time) or "keyframe" (the nearest keyframe,
        with its true time; PyAV only). ``workers``: PyAV decoders run in parallel on long reads
        (default: :func:`default_workers`; 1 decodes sequentially).
        """
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        if seek not in SEEK_MODES:
            raise ValueError(f"seek must be one of {SEEK_MODES}, got {seek!r}")
        if backend == "decord" and seek != "exact":
            raise ValueError("the decord backend reads exact frames only; keyframe seeking is PyAV's")
        if workers is not None and int(workers) < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        if backend == "decord" and not decord_available():
            raise VidagentError("the decord backend needs the decord package: pip install decord")
        path = Path(path)
        chosen = "pyav" if backend == "auto" else backend
        meta, info, probed = _probe(path, keep=chosen == "pyav" and seek == "exact")
        count = default_workers() if workers is None else int(workers)
        return cls(
            path, meta, info, chosen, explicit=backend != "auto", seek=seek, workers=count, probed=probed
        )

    # metadata shortcuts
    @property
    def duration(self) -> float:
        return self.meta.duration

    @property
    def fps(self) -> float:
        return self.meta.fps

    @property
    def frame_count(self) -> int:
        return self.meta.frame_count

    @property
    def width(self) -> int:
        return self.meta.width

    @property
    def height(self) -> int:
        return self.meta.height

    @property
    def keyframes(self) -> np.ndarray | None:
        """The keyframes' decode times (s) from the container's index; None without one (MPEG-TS)."""
        return self._info.keys

    # sampling
    def sample_uniform(self, n: int, span: Span | None = None, short_side: int | None = None) -> Frames:
        """``n`` frames at the centres of ``n`` equal segments of ``span`` (default: whole video)."""
        return self._sample(target_times(self._span(span), n=n), short_side)

    def sample_fps(self, fps: float, span: Span | None = None, short_side: int | None = None) -> Frames:
        """Frames at ``start + (k + 0.5) / fps`` inside ``span`` (default: whole video)."""
        return self._sample(target_times(self._span(span), fps=fps), short_side)

    def sample_at(self, timestamps: Sequence[float] | np.ndarray, short_side: int | None = None) -> Frames:
        """The frame shown at each timestamp (seconds, any order, repeats allowed), in that order."""
        return self._sample(self._checked_times(timestamps), short_side)

    def iter_chunks(
        self,
        *,
        fps: float | None = None,
        n: int | None = None,
        span: Span | None = None,
        short_side: int | None = None,
        chunk_size: int = 32,
    ) -> Iterator[Frames]:
        """Stream the frames of ``sample_fps(fps)`` or ``sample_uniform(n)`` in chunks of at most ``chunk_size``."""
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be at least 1, got {chunk_size}")
        times = target_times(self._span(span), fps=fps, n=n)  # checked now, not at the first next()
        return self._chunks(times, self._size(short_side), chunk_size)

    def iter_at(
        self, timestamps: Sequence[float] | np.ndarray, *, short_side: int | None = None, chunk_size: int = 32
    ) -> Iterator[Frames]:
        """Stream the frames shown at ascending ``timestamps`` in chunks of at most ``chunk_size``
        (each chunk is decoded knowing the next ones, so nothing they need is skipped)."""
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be at least 1, got {chunk_size}")
        times = self._checked_times(timestamps)
        if (np.diff(times) < 0).any():
            raise ValueError("iter_at needs ascending timestamps (sample_at takes any order)")
        return self._chunks(times, self._size(short_side), chunk_size)

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    def __enter__(self) -> Video:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        m = self.meta
        return (
            f"Video({str(self.path)!r}, {m.width}x{m.height}, {m.duration:.2f}s @ {m.fps:.3g} fps, "
            f"{self.backend}, seek={self.seek})"
        )

    # internals
    def _span(self, span: Span | None) -> Span:
        """``span`` checked against the video by :func:`vidagent.core.spans.checked_span`."""
        return checked_span(self.path, span, self.duration)

    def _checked_times(self, timestamps: Sequence[float] | np.ndarray) -> np.ndarray:
        times = np.asarray(timestamps, np.float64).reshape(-1)
        outside = times[~((times >= 0) & (times <= self.duration + EPS))]
        if len(outside):
            raise SpanOutOfRange(
                self.path, f"timestamp {outside[0]:g}s is outside the video (0-{self.duration:.3f}s)"
            )
        return times

    def _size(self, short_side: int | None) -> tuple[int, int]:
        return output_size(self.width, self.height, short_side)

    def _sample(self, times: np.ndarray, short_side: int | None) -> Frames:
        """Read ``times`` in ascending order, return the frames in the order asked."""
        order = np.argsort(times, kind="stable")
        got = self._read(times[order], self._size(short_side))
        self._warn_damaged(stacklevel=4)
        if len(got) < len(times):
            self._warn_missing(float(times[order[len(got)]]), len(times) - len(got), len(times), stacklevel=4)
        if (np.diff(times) >= 0).all():
            return got
        return got.take(np.argsort(order[: len(got)], kind="stable"))

    def _chunks(self, times: np.ndarray, size: tuple[int, int], chunk_size: int) -> Iterator[Frames]:
        for start in range(0, len(times), chunk_size):
            wanted = times[start : start + chunk_size]
            got = self._read(wanted, size, ahead=times[start + chunk_size : start + 4 * chunk_size])
            self._warn_damaged(stacklevel=3)
            if len(got):
                yield got
            if len(got) < len(wanted):
                missing = len(times) - start - len(got)
                self._warn_missing(float(wanted[len(got)]), missing, len(times), stacklevel=3)
                return

    def _read(self, times: np.ndarray, size: tuple[int, int], ahead: np.ndarray | None = None) -> Frames:
        if self._reader is None:
            raise ValueError(f"{self.path}: the video is closed")
        try:
            return self._reader.read(times, size, ahead)
        except _BackendFailure as exc:
            if self._reader.name != "decord":
                raise CorruptVideo(self.path, str(exc)) from None
            self._reader.close()
            self._reader = self._fall_back(exc)
            self.backend = self._reader.name
            return self._read(times, size, ahead)

    def _start(self, backend: str) -> Reader:
        try:
            if backend == "decord":
                return _DecordReader(self.path, self.meta, self._info)
            from vidagent.media.fast_readers import (  # they build on this module
                KeyframeReader,
                ParallelReader,
            )

            if self.seek == "keyframe":
                return KeyframeReader(self.path, self.meta, self._info)
            probed, self._probed = self._probed, None  # the reader owns it from here
            if self.workers > 1:
                return ParallelReader(
                    self.path, self.meta, self._info, workers=self.workers, container=probed
                )
            return _PyAVReader(self.path, self.meta, self._info, container=probed)
        except _BackendFailure as exc:
            if backend != "decord":
                raise CorruptVideo(self.path, str(exc)) from None
            return self._fall_back(exc)

    def _fall_back(self, reason: Exception) -> Reader:
        """A PyAV reader replacing failed decord (warning only if decord was asked for by name)."""
        if self._explicit:
            warnings.warn(f"{self.path}: decord failed ({reason}); using PyAV instead", stacklevel=2)
        return self._start("pyav")

    def _warn_damaged(self, stacklevel: int) -> None:
        """One warning naming the seconds that did not decode, the first time a read meets them."""
        new = sorted(self._reader.damaged - self._damage_named) if self._reader is not None else []
        if not new:
            return
        self._damage_named.update(new)
        spans = [list(new[0])]
        for start, end in new[1:]:
            if start <= spans[-1][1] + 1e-6:
                spans[-1][1] = max(spans[-1][1], end)
            else:
                spans.append([start, end])
        named = ", ".join(f"{a:.2f}-{min(b, self.duration):.2f}s" for a, b in spans)
        warnings.warn(
            f"{self.path}: the video is damaged at {named}: nothing decodes there, so frames asked for "
            f"there show the last frame before (later frames may show artefacts until the next keyframe)",
            DamagedVideoWarning,
            stacklevel=stacklevel,
        )

    def _warn_missing(self, first_missing: float, missing: int, total: int, stacklevel: int) -> None:
        warnings.warn(
            f"{self.path}: no frame decodes at {first_missing:.2f}s or later (the file is truncated or "
            f"corrupt; its header says {self.duration:.2f}s): {missing} of {total} requested frames are missing",
            TruncatedVideoWarning,
            stacklevel=stacklevel,
        )
