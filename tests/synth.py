"""Synthetic test videos whose every frame says which frame it is.

Each frame of :func:`write_video` shows its frame number as a 4x3 grid of black/white blocks
(12 bits, big enough to survive lossy coding and down-scaling), so a test can read back
*which* frame a sampler returned with :func:`frame_number`. Also here: a VFR writer (explicit,
irregular presentation times), an audio-only file, a zero-frame video, a truncated copy and a
header-only Y4M file with any width/height.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

GRID = (3, 4)  # rows, columns of the frame-number pattern
DARK, LIGHT = 16, 240

FrameFn = Callable[[int], np.ndarray]


def number_frame(index: int, size: tuple[int, int]) -> np.ndarray:
    """An RGB frame (height, width, 3) showing ``index`` as a block pattern."""
    width, height = size
    rows, cols = GRID
    bits = [(index >> b) & 1 for b in range(rows * cols)]
    cells = np.where(np.array(bits).reshape(rows, cols), LIGHT, DARK).astype(np.uint8)
    ys = np.arange(height) * rows // height
    xs = np.arange(width) * cols // width
    image = cells[ys[:, None], xs[None, :]]
    return np.repeat(image[:, :, None], 3, axis=2)


def frame_number(frame: np.ndarray) -> int:
    """Read back the number drawn by :func:`number_frame` (any size, after lossy coding)."""
    rows, cols = GRID
    height, width = frame.shape[:2]
    luma = frame.mean(axis=2)
    value = 0
    for r in range(rows):
        for c in range(cols):
            y0, y1 = (4 * r + 1) * height // (4 * rows), (4 * r + 3) * height // (4 * rows)
            x0, x1 = (4 * c + 1) * width // (4 * cols), (4 * c + 3) * width // (4 * cols)
            if luma[y0:y1, x0:x1].mean() > 128:
                value |= 1 << (r * cols + c)
    return value


def frame_numbers(frames: np.ndarray) -> list[int]:
    """:func:`frame_number` of each frame of an (N, H, W, 3) array."""
    return [frame_number(f) for f in frames]


def write_video(
    path: str | Path,
    *,
    fps: float = 25.0,
    size: tuple[int, int] = (128, 96),
    seconds: float = 2.0,
    codec: str = "libx264",
    frames_fn: FrameFn | None = None,
    pts_seconds: Sequence[float] | None = None,
    vfr: bool = False,
    gop: int | None = None,
    audio: bool = False,
    noise: int = 0,
    rotation: int | None = None,
    options: dict[str, str] | None = None,
    pix_fmt: str = "yuv420p",
) -> Path:
    """Write a video with PyAV; frame ``i`` shows ``frames_fn(i)`` (default: its number).

    CFR by default: ``round(seconds * fps)`` frames at ``i / fps``. ``pts_seconds`` gives each
    frame's presentation time explicitly (VFR); ``vfr=True`` uses :func:`irregular_times`.
    ``gop`` sets the keyframe interval in frames. ``noise`` adds that much random texture (so
    frames cost real bytes, e.g. for truncation tests). ``rotation`` writes a display matrix.
    ``options`` go to the muxer (e.g. ``{"movflags": "faststart"}``); ``pix_fmt`` is the encoded
    pixel format (``yuv444p``, ``yuv420p10le``...).
    """
    path = Path(path)
    size = (int(size[0]), int(size[1]))
    if vfr and pts_seconds is None:
        pts_seconds = irregular_times(seconds)
    times = list(pts_seconds) if pts_seconds is not None else [i / fps for i in range(round(seconds * fps))]
    draw = frames_fn or (lambda i: number_frame(i, size))
    if noise:
        draw = _noisy(draw, noise)
    time_base = (
        Fraction(1, 1000) if pts_seconds is not None else Fraction(fps).limit_denominator(100000) ** -1
    )
    with av.open(str(path), "w", options=options or {}) as out:
        stream = out.add_stream(codec, rate=Fraction(fps).limit_denominator(100000))
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], pix_fmt
        stream.codec_context.time_base = time_base
        if gop:
            stream.codec_context.gop_size = gop
        if rotation is not None:
            stream.set_display_rotation(rotation)
        if codec == "libx264":
            stream.codec_context.options = {"preset": "superfast", "crf": "18"}
        sound = _add_audio(out) if audio else None
        for i, t in enumerate(times):
            frame = av.VideoFrame.from_ndarray(draw(i), format="rgb24")
            frame.pts, frame.time_base = round(t / time_base), time_base
            out.mux(stream.encode(frame))
        out.mux(stream.encode())
        if sound is not None:
            _write_silence(out, sound, times[-1] + 1 / fps if times else 0.0)
    return path


def _noisy(draw: FrameFn, amplitude: int) -> FrameFn:
    rng = np.random.default_rng(0)

    def noisy(i: int) -> np.ndarray:
        image = draw(i).astype(np.int16)
        image += rng.integers(-amplitude, amplitude + 1, image.shape[:2], dtype=np.int16)[:, :, None]
        return np.clip(image, 0, 255).astype(np.uint8)

    return noisy


def irregular_times(seconds: float, seed: int = 0) -> list[float]:
    """Presentation times with irregular gaps (10-150 ms, on a 1 ms grid) up to ``seconds``."""
    rng = np.random.default_rng(seed)
    times, t = [], 0.0
    while t < seconds:
        times.append(round(t, 3))
        t += float(rng.choice([0.010, 0.020, 0.040, 0.040, 0.100, 0.150]))
    return times


def _add_audio(out: av.container.OutputContainer, rate: int = 16000) -> av.audio.stream.AudioStream:
    return out.add_stream("aac", rate=rate, layout="mono")


def _write_silence(
    out: av.container.OutputContainer, stream: av.audio.stream.AudioStream, seconds: float
) -> None:
    rate, block = stream.rate, 1024
    for k in range(int(np.ceil(seconds * rate / block))):
        frame = av.AudioFrame.from_ndarray(np.zeros((1, block), np.float32), format="fltp", layout="mono")
        frame.sample_rate, frame.pts = rate, k * block
        out.mux(stream.encode(frame))
    out.mux(stream.encode())


def write_audio_only(path: str | Path, seconds: float = 1.0) -> Path:
    """An audio-only file (.m4a / .wav / .mka ...): no video stream."""
    path = Path(path)
    codec = "pcm_s16le" if path.suffix == ".wav" else "aac"
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=16000, layout="mono")
        frame_format = "s16" if codec == "pcm_s16le" else "fltp"
        dtype = np.int16 if codec == "pcm_s16le" else np.float32
        for k in range(int(seconds * 16000 / 1024) + 1):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), dtype), format=frame_format, layout="mono")
            frame.sample_rate, frame.pts = 16000, k * 1024
            out.mux(stream.encode(frame))
        out.mux(stream.encode())
    return path


def write_zero_frame_video(path: str | Path) -> Path:
    """A container (AVI) with a video stream in its header and no frames at all."""
    path = Path(path)
    with av.open(str(path), "w", format="avi") as out:
        stream = out.add_stream("mpeg4", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        out.start_encoding()
        out.mux(stream.encode())
    return path


def truncated_copy(src: str | Path, dst: str | Path, fraction: float = 0.5) -> Path:
    """The first ``fraction`` of ``src``'s bytes, as an interrupted download would leave it."""
    data = Path(src).read_bytes()
    Path(dst).write_bytes(data[: int(len(data) * fraction)])
    return Path(dst)


def damaged_copy(src: str | Path, dst: str | Path, start: float, end: float, seed: int = 0) -> Path:
    """``src`` with the payload of every video packet whose time lies in [start, end) overwritten by
    random bytes (a bad sector, a damaged download): the container stays readable, those packets
    do not decode, and the frames after them (up to the next keyframe) lose their references."""
    data = bytearray(Path(src).read_bytes())
    rng = np.random.default_rng(seed)
    with av.open(str(src)) as container:
        stream = container.streams.video[0]
        for packet in container.demux(stream):
            if packet.pts is None or packet.pos is None or packet.size == 0:
                continue
            if start <= float(packet.pts * stream.time_base) < end:
                data[packet.pos : packet.pos + packet.size] = rng.integers(
                    0, 256, packet.size, np.uint8
                ).tobytes()
    Path(dst).write_bytes(bytes(data))
    return Path(dst)


def write_y4m_header(path: str | Path, width: int, height: int) -> Path:
    """A YUV4MPEG2 file whose header claims ``width`` x ``height`` (frame data left out)."""
    path = Path(path)
    path.write_bytes(f"YUV4MPEG2 W{width} H{height} F25:1 Ip A1:1 C420jpeg\nFRAME\n".encode() + bytes(64))
    return path


def moving_square(index: int, size: tuple[int, int] = (96, 64)) -> np.ndarray:
    """A 20-px white square crossing a grey frame left to right, 3 px per frame (from x=4)."""
    width, height = size
    frame = np.full((height, width, 3), 90, np.uint8)
    x = 4 + 3 * index
    frame[20:40, x : x + 20] = 240
    return frame
