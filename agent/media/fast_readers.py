"""Two ways to read frames faster than one sequential decoder: in parallel, and keyframes only.

:class:`ParallelReader` splits a read's targets at keyframes into contiguous runs, decodes each
run with its own exact PyAV reader in a thread (FFmpeg decodes without the GIL), and puts the
frames back in order. It returns the same frames as one reader: each run starts from a keyframe,
so no run depends on another. Each reader decodes single-threaded, which on two cores beats
one reader with FFmpeg's frame threads (see ``vidagent bench sampling``). Memory holds one read's
frames, as with one reader, so it stays flat in video length when the caller streams in chunks.

:class:`KeyframeReader` is ``seek="keyframe"``: for each target it returns the keyframe nearest
to it, decoding keyframes only (``skip_frame="NONKEY"``), with that frame's true time. Targets
that share a keyframe share one decode. Keyframes that lie close together (at most
``SCAN_REACH`` keyframes apart) are decoded in one pass: one seek, only their packets sent, the
decoder drained once at the end, so FFmpeg's frame threads decode several at a time (1.2-1.8x
faster than a seek and a drain per keyframe on two cores). A lone keyframe gets a seek of its
own. It is for indexing and retrieval of long videos, where a frame a second or two from the
grid point is as good as the grid point and costs one decode instead of a group of pictures'
worth (``vidagent bench sampling`` measures the speed, ``vidagent bench keyframe_retrieval``
what it costs retrieval).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import av
import numpy as np

from vidagent.media.video import (
    EPS,
    Frames,
    VideoMeta,
    _BackendFailure,
    _Decoded,
    _PyAVReader,
    _StreamInfo,
    collect_frames,
)

__all__ = ["KeyframeReader", "ParallelReader", "split_at_keyframes"]

LAST_KEY_AIM = 10.0  # seconds past the last keyframe to seek to (beyond any reorder delay)
KEYFRAME_COST = 4.0  # decoding a keyframe costs about this many frames of a group of pictures
SCAN_REACH = 4  # wanted keyframes at most this many keyframes apart are decoded in one pass
KEEP_KEYFRAMES = 8  # decoded keyframes kept between reads (targets come in order)


def split_at_keyframes(
    times: np.ndarray, keys: np.ndarray | None, parts: int, fps: float
) -> list[np.ndarray]:
    """Ascending ``times`` cut into at most ``parts`` contiguous runs of about equal decoding work.

    A run may only start at a target with a keyframe between it and the previous target, so each
    run decodes from its own keyframe; the work of a target is the stretch decoded to reach it
    (from the previous target, or from the keyframe before it when that is later).
    """
    if parts < 2 or keys is None or len(times) < 2:
        return [times]
    key_before = keys[np.maximum(np.searchsorted(keys, times + EPS, side="right") - 1, 0)]
    previous = np.concatenate([[-math.inf], times[:-1]])
    starts_run = key_before > previous  # a keyframe lies between this target and the one before
    from_key = key_before >= previous
    work = np.where(from_key, times - key_before + KEYFRAME_COST / fps, times - previous)
    cumulative = np.cumsum(np.maximum(work, 1 / fps))
    candidates = np.flatnonzero(starts_run[1:]) + 1
    if not len(candidates):
        return [times]
    cuts: list[int] = []
    for part in range(1, parts):
        goal = cumulative[-1] * part / parts
        best = int(candidates[np.argmin(np.abs(cumulative[candidates - 1] - goal))])
        if (not cuts or best > cuts[-1]) and best < len(times):
            cuts.append(best)
    return [run for run in np.split(times, cuts) if len(run)]


class ParallelReader:
    """Exact frames from ``workers`` PyAV readers in threads (see the module docstring)."""

    name = "pyav"

    def __init__(
        self,
        path: Path,
        meta: VideoMeta,
        info: _StreamInfo,
        *,
        workers: int,
        container: av.container.InputContainer | None = None,
    ) -> None:
        if workers < 2:
            raise ValueError(f"a parallel reader needs at least 2 workers, got {workers}")
        # reads that do not split go to one reader with FFmpeg's frame threads (on the probe's
        # ``container`` when given); split reads to readers on one thread each, opened when a
        # read first splits
        self._whole = _PyAVReader(path, meta, info, container=container)
        self._open: Callable[[], _PyAVReader] = lambda: _PyAVReader(path, meta, info, threads="SLICE")
        self._readers: list[_PyAVReader] = []
        self._workers = workers
        self._fps = meta.fps or 25.0
        self._keys = info.keys
        self._pool: ThreadPoolExecutor | None = None

    @property
    def damaged(self) -> set[tuple[float, float]]:
        return set().union(self._whole.damaged, *(reader.damaged for reader in self._readers))

    def read(self, times: np.ndarray, size: tuple[int, int], ahead: np.ndarray | None = None) -> Frames:
        runs = split_at_keyframes(times, self._keys, self._workers, self._fps)
        if len(runs) == 1:
            return self._whole.read(times, size, ahead)
        while len(self._readers) < len(runs):
            self._readers.append(self._open())
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="vidagent-decode")
        futures = [
            self._pool.submit(reader.read, run, size)
            for reader, run in zip(self._readers, runs, strict=False)
        ]
        parts = [future.result() for future in futures]  # a backend failure is raised here
        kept = []
        for run, part in zip(runs, parts, strict=True):
            kept.append(part)
            if len(part) < len(run):  # the file ends early: nothing after the first missing target
                break
        return Frames.concat(kept)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        for reader in [self._whole, *self._readers]:
            reader.close()


class KeyframeReader:
    """``seek="keyframe"``: the keyframe nearest each target, keyframes only decoded."""

    name = "pyav"

    def __init__(self, path: Path, meta: VideoMeta, info: _StreamInfo) -> None:
        try:
            self._container = av.open(str(path), metadata_errors="ignore")
        except (av.FFmpegError, OSError) as exc:
            raise _BackendFailure(f"cannot reopen the file: {exc}") from None
        self._stream = self._container.streams[info.index]
        # frame threads decode several keyframes at once in a pass; a lone keyframe is drained out
        self._stream.thread_type = "AUTO"
        self._stream.codec_context.skip_frame = "NONKEY"
        self._tb, self._start_pts, self._fps = info.time_base, info.start_pts, meta.fps or 25.0
        self._keys = info.keys
        self._decoded: dict[int, _Decoded | None] = {}  # keyframe number -> its frame (the latest few)
        self._shift: float | None = None  # keyframes' presentation minus decode time (index: decode)
        self._scan: Iterator[_Decoded] | None = None  # without an index: keyframes in file order
        self._before: _Decoded | None = None
        self._after: _Decoded | None = None
        self.damaged: set[tuple[float, float]] = set()  # a keyframe that fails is passed over

    def read(self, times: np.ndarray, size: tuple[int, int], ahead: np.ndarray | None = None) -> Frames:
        """The keyframe nearest each ascending target (ties: the earlier), up to the file's end."""
        if self._keys is None:
            return collect_frames(times, self._from_scan, size, self._fps)
        self._decode_close_keyframes(times)
        frames = collect_frames(times, self._from_index, size, self._fps)
        while len(self._decoded) > KEEP_KEYFRAMES:
            self._decoded.pop(next(iter(self._decoded)))
        return frames

    def close(self) -> None:
        self._decoded.clear()
        self._scan = self._before = self._after = None
        self._container.close()

    # with an index: the chosen keyframes, close ones in one pass, a lone one by a seek of its own
    def _nearest(self, t: float) -> int:
        """The number of the keyframe nearest ``t`` (by presentation time, once the shift is known)."""
        keys = self._keys
        assert keys is not None
        shift = self._shift or 0.0
        i = int(np.searchsorted(keys + shift, t + EPS, side="right")) - 1
        if i + 1 < len(keys) and (i < 0 or keys[i + 1] + shift - t < t - keys[i] - shift):
            i += 1
        return max(i, 0)

    def _from_index(self, t: float) -> _Decoded | None:
        keys = self._keys
        assert keys is not None
        i = self._nearest(t)
        if i not in self._decoded:
            decoded = self._decoded[i] = self._decode_key(self._aim(i))
            if self._shift is None and decoded is not None:
                self._shift = decoded.time - keys[i]
        return self._decoded[i]

    def _aim(self, i: int) -> float:
        """Where to seek for keyframe ``i``: between it and the next, since seeking compares
        presentation times in some containers (MP4) and decode times in others, and these
        differ by the reorder delay."""
        keys = self._keys
        assert keys is not None
        return (keys[i] + keys[i + 1]) / 2 if i + 1 < len(keys) else keys[i] + LAST_KEY_AIM

    def _decode_close_keyframes(self, times: np.ndarray) -> None:
        """Decode the keyframes ``times`` pick that lie close together in passes (one seek, only
        their packets sent, one drain at the end), so that frame threads decode several at once."""
        if not len(times):
            return
        if self._shift is None:  # the first keyframe alone: its time gives the shift
            self._from_index(float(times[0]))
        wanted = sorted({self._nearest(float(t)) for t in times} - self._decoded.keys())
        start = 0
        for end in range(1, len(wanted) + 1):
            if end == len(wanted) or wanted[end] - wanted[end - 1] > SCAN_REACH:
                if end - start > 1:
                    self._decode_pass(wanted[start:end])
                start = end

    def _decode_pass(self, wanted: list[int]) -> None:
        """Keyframes ``wanted`` (ascending numbers) into the cache. One that is not reached or
        does not decode is left out: :meth:`_from_index` then seeks to it alone."""
        keys = self._keys
        assert keys is not None
        sent: dict[int, int] = {}  # pts -> keyframe number
        context = self._stream.codec_context
        try:
            aim = round(self._aim(wanted[0]) / self._tb) + self._start_pts
            self._container.seek(aim, stream=self._stream, backward=True)
            for packet in self._container.demux(self._stream):
                if not packet.size or not packet.is_keyframe or packet.dts is None or packet.pts is None:
                    continue
                decode_time = (packet.dts - self._start_pts) * self._tb
                number = int(np.searchsorted(keys, decode_time - EPS))
                if number > wanted[-1]:
                    break
                if number in wanted and abs(keys[number] - decode_time) < EPS:
                    sent[packet.pts] = number
                    self._keep(self._frames_of(packet, drain=False), sent)
                    if len(sent) == len(wanted):
                        break
            self._keep([self._wrap(f) for f in context.decode(None) if f.pts is not None], sent)
        except av.FFmpegError:
            pass
        context.flush_buffers()

    def _keep(self, frames: list[_Decoded], sent: dict[int, int]) -> None:
        for decoded in frames:
            if decoded.frame.pts in sent:
                self._decoded[sent[decoded.frame.pts]] = decoded

    def _decode_key(self, seconds: float) -> _Decoded | None:
        """The keyframe at or before ``seconds`` (the first after it that decodes), or None at the end."""
        try:
            self._container.seek(
                round(seconds / self._tb) + self._start_pts, stream=self._stream, backward=True
            )
            for packet in self._container.demux(self._stream):
                if not packet.is_keyframe and packet.size:
                    continue  # NONKEY would skip it too; not sending it saves the call
                for frame in self._frames_of(packet):
                    return frame
        except av.FFmpegError:
            return None
        return None

    def _frames_of(self, packet: av.Packet, drain: bool = True) -> list[_Decoded]:
        """The frames ``packet`` gives; ``drain``: draining the decoder at once when it holds
        the frame back (reordering delay, frame threads)."""
        try:
            frames = packet.decode() if packet.size else []
            if not frames and drain:
                frames = self._stream.codec_context.decode(None)  # drain: the keyframe comes out now
                self._stream.codec_context.flush_buffers()
        except av.FFmpegError:
            if packet.pts is not None:
                start = (packet.pts - self._start_pts) * self._tb
                self.damaged.add((round(start, 6), round(start + 1 / self._fps, 6)))
            return []
        return [self._wrap(frame) for frame in frames if frame.pts is not None]

    def _wrap(self, frame: av.VideoFrame) -> _Decoded:
        t = (frame.pts - self._start_pts) * self._tb
        return _Decoded(frame, t, t + 1 / self._fps)

    # without an index (MPEG-TS, raw streams): one pass over the keyframes
    def _from_scan(self, t: float) -> _Decoded | None:
        if self._scan is None or (self._before is not None and t < self._before.time - EPS):
            self._container.seek(0, stream=self._stream, backward=True)
            self._scan = self._keyframes()
            self._before, self._after = None, next(self._scan, None)
        while self._after is not None and self._after.time <= t + EPS:
            self._before, self._after = self._after, next(self._scan, None)
        if self._before is None:
            return self._after
        if self._after is not None and self._after.time - t < t - self._before.time:
            return self._after
        return self._before

    def _keyframes(self) -> Iterator[_Decoded]:
        try:
            for packet in self._container.demux(self._stream):
                if packet.is_keyframe or not packet.size:  # drained once, by the last packet
                    yield from self._frames_of(packet, drain=not packet.size)
        except av.FFmpegError:
            return
