"""transcribe with the tiny random Whisper: audio decoding, parity with transformers, windows, storage."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
import torch
from transformers import WhisperForConditionalGeneration, WhisperProcessor

from tests.synth import write_video
from vidagent.core.errors import SpanOutOfRange
from vidagent.tools import transcribe as transcribe_module
from vidagent.tools.base import ToolContext
from vidagent.tools.transcribe import TOOL, Window, load_audio, segment_rows, transcribe_samples

RATE = 16_000


def write_with_audio(
    path: Path, samples: np.ndarray, rate: int = RATE, layout: str = "mono", codec: str = "pcm_s16le"
) -> np.ndarray:
    """A small video (5 fps) with ``samples`` as its audio track; returns the samples as stored (int16 / 32768)."""
    seconds = len(samples) / rate
    pcm = np.round(np.clip(samples, -1, 1) * 32767).astype(np.int16)
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=5)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        audio = out.add_stream(codec, rate=rate, layout=layout)
        for i in range(max(1, round(seconds * 5))):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), (i * 37) % 255, np.uint8), format="rgb24")
            frame.pts = i
            out.mux(video.encode(frame))
        out.mux(video.encode())
        for k in range(0, len(pcm), 1024):
            block = pcm[k : k + 1024]
            planes = np.stack([block, block]).reshape(1, -1, order="F") if layout == "stereo" else block[None]
            frame = av.AudioFrame.from_ndarray(planes, format="s16", layout=layout)
            frame.sample_rate, frame.pts = rate, k
            out.mux(audio.encode(frame))
        out.mux(audio.encode())
    return pcm.astype(np.float32) / 32768


def tone(seconds: float, rate: int = RATE, seed: int = 0) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    noise = np.random.default_rng(seed).standard_normal(len(t))
    return (0.3 * np.sin(2 * np.pi * 440 * t) * np.sin(2 * np.pi * 0.5 * t) + 0.05 * noise).astype(np.float32)


def test_audio_is_decoded_exactly_and_resampled(tmp_path: Path) -> None:
    stored = write_with_audio(tmp_path / "a.mkv", tone(4.0))
    assert np.array_equal(load_audio(tmp_path / "a.mkv"), stored)  # PCM at 16 kHz: bit-exact
    part = load_audio(tmp_path / "a.mkv", span=(1.5, 3.0))
    assert np.array_equal(part, stored[24_000:48_000])
    # 48 kHz stereo -> 16 kHz mono: same duration, same 440 Hz tone (FFmpeg's downmix sets the gain)
    t = np.arange(2 * 48_000) / 48_000
    write_with_audio(
        tmp_path / "b.mkv",
        (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32),
        rate=48_000,
        layout="stereo",
    )
    resampled = load_audio(tmp_path / "b.mkv")
    assert abs(len(resampled) - 2 * RATE) <= 64 and resampled.dtype == np.float32
    crossings = np.count_nonzero(np.diff(np.signbit(resampled[100:-100])))
    assert crossings == pytest.approx(2 * 440 * (len(resampled) - 200) / RATE, rel=0.01)
    assert 0.45 < np.abs(resampled[1000:-1000]).max() < 0.75
    assert len(load_audio(write_video(tmp_path / "silent.mp4", seconds=1))) == 0  # no audio stream


def test_transcribe_generates_the_same_tokens_as_transformers(
    ctx: ToolContext, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stored = write_with_audio(tmp_path / "speech.mkv", tone(6.0))
    loaded = ctx.hub.get("asr")
    seen: list[list[Window]] = []
    spy = transcribe_module.transcribe_samples
    monkeypatch.setattr(
        transcribe_module, "transcribe_samples", lambda *a, **k: seen.append(spy(*a, **k)) or seen[-1]
    )
    evidence = TOOL(ctx, tmp_path / "speech.mkv", language="en")
    [windows] = seen
    assert len(windows) == 1 and windows[0].offset == 0.0 and windows[0].length == pytest.approx(6.0)

    # the same audio through transformers as its Whisper docs show it
    processor = WhisperProcessor.from_pretrained(loaded.source)
    model = WhisperForConditionalGeneration.from_pretrained(loaded.source).eval()
    features = processor(stored, sampling_rate=RATE, return_tensors="pt").input_features
    with torch.inference_mode():
        direct = model.generate(
            features,
            return_timestamps=True,
            language="en",
            task="transcribe",
            max_new_tokens=loaded.spec.options["max_new_tokens"],
        )
    assert windows[0].sequence == direct[0].tolist()

    expected = segment_rows(loaded, windows)
    assert [r["text"] for r in evidence.to_records()] == [r["text"] for r in expected]
    assert all(
        0.0 <= r["start"] <= r["end"] <= 6.0 and r["tool"] == "transcribe" for r in evidence.to_records()
    )


def test_video_without_audio_gives_empty_evidence(ctx: ToolContext, tmp_path: Path) -> None:
    video = write_video(tmp_path / "mute.mp4", seconds=1)
    evidence = TOOL(ctx, video)
    assert len(evidence) == 0
    silent = write_video(tmp_path / "quiet.mp4", seconds=1, audio=True)  # an audio stream of digital silence
    assert len(TOOL(ctx, silent)) == 0  # skipped, not hallucinated
    with pytest.raises(SpanOutOfRange):
        TOOL(ctx, silent, span=(3.0, 4.0))


def test_long_audio_in_windows_with_offsets(ctx: ToolContext, monkeypatch: pytest.MonkeyPatch) -> None:
    """65 s: 30 s windows, silent ones skipped, the rest in one batch; segments shifted by their window."""
    audio = tone(65.0)
    audio[30 * RATE : 60 * RATE] = 0.0  # the middle window is silent: skipped
    loaded = ctx.hub.get("asr")
    hi = loaded.processor.tokenizer("hi", add_special_tokens=False).input_ids
    batches: list[int] = []

    def fake_generate(input_features, **kwargs):  # Whisper's output layout with return_segments=True
        assert (
            kwargs["return_timestamps"]
            and kwargs["return_segments"]
            and input_features.shape[1:] == (80, 3000)
        )
        batches.append(len(input_features))
        segment = {"start": torch.tensor(1.0), "end": torch.tensor(2.5), "tokens": torch.tensor(hi)}
        return {
            "sequences": torch.ones((len(input_features), 3), dtype=torch.long),
            "segments": [[segment] for _ in range(len(input_features))],
        }

    monkeypatch.setattr(loaded.model, "generate", fake_generate)
    windows = transcribe_samples(loaded, audio)
    assert batches == [2]
    assert [(w.offset, w.length) for w in windows] == [(0.0, 30.0), (60.0, 5.0)]
    assert [(r["start"], r["end"], r["text"]) for r in segment_rows(loaded, windows)] == [
        (1.0, 2.5, "hi"),
        (61.0, 62.5, "hi"),
    ]

    tokenizer = loaded.processor.tokenizer
    hello, world = (
        tokenizer(" hello", add_special_tokens=False).input_ids,
        tokenizer(" world", add_special_tokens=False).input_ids,
    )
    fake = [
        Window(0.0, 30.0, [], [{"start": 1.0, "end": 4.5, "tokens": hello}]),
        Window(
            60.0,
            5.0,
            [],
            [
                {"start": 0.5, "end": 9.0, "tokens": world},  # clipped to the window
                {"start": 6.0, "end": 8.0, "tokens": hello},
            ],
        ),
    ]  # after the audio: dropped
    assert segment_rows(loaded, fake, offset=10.0) == [
        {"start": 11.0, "end": 14.5, "text": "hello", "score": 1.0, "data": {}},
        {"start": 70.5, "end": 75.0, "text": "world", "score": 1.0, "data": {}},
    ]


def test_transcripts_are_stored_searchable_and_computed_once(
    ctx: ToolContext, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_with_audio(tmp_path / "talk.mkv", tone(3.0))
    loaded = ctx.hub.get("asr")
    hello = loaded.processor.tokenizer(" hello there", add_special_tokens=False).input_ids
    calls: list[int] = []

    def fake(loaded_, samples, *, language=None, batch_size=None):
        calls.append(len(samples))
        return [Window(0.0, len(samples) / RATE, [], [{"start": 0.5, "end": 2.0, "tokens": hello}])]

    monkeypatch.setattr(transcribe_module, "transcribe_samples", fake)
    first = TOOL(ctx, tmp_path / "talk.mkv")
    assert first.to_records()[0]["text"] == "hello there" and first.start[0] == 0.5
    assert TOOL(ctx, tmp_path / "talk.mkv").to_records() == first.to_records()
    assert calls == [3 * RATE]  # the model ran once
    part = TOOL(ctx, tmp_path / "talk.mkv", span=(1.0, 3.0))  # another span: another set
    assert part.start[0] == 1.5 and calls == [3 * RATE, 2 * RATE]
    hits = ctx.store.search_texts("hello", tool="transcribe")
    assert len(hits) == 2 and {h["start"] for h in hits} == {0.5, 1.5}
