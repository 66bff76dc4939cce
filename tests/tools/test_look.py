"""look and caption with the tiny random LLaVA-OneVision: parity with transformers, caching, storage."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from transformers import LlavaOnevisionForConditionalGeneration, LlavaOnevisionProcessor

from tests.synth import write_video
from vidagent.app.cli import main
from vidagent.core.errors import SpanOutOfRange
from vidagent.media.store import Store
from vidagent.media.video import Video
from vidagent.models.hub import image_only_processor
from vidagent.prompts import load_prompt
from vidagent.tools import caption as caption_module
from vidagent.tools.base import ToolContext
from vidagent.tools.caption import TOOL as CAPTION
from vidagent.tools.caption import caption_prompt, caption_video, caption_windows
from vidagent.tools.look import TOOL as LOOK
from vidagent.tools.look import LookInput, VlmOutput, frame_short_side, look_prompt, vlm_generate


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4 s at 10 fps; every frame shows its number, so frames differ."""
    return write_video(tmp_path_factory.mktemp("look") / "v.mp4", seconds=4, fps=10, size=(128, 96))


def _direct(source: str, frames: list, prompt: str, max_new_tokens: int) -> list[int]:
    """The same request through transformers as its LLaVA-OneVision docs show it (chat template, generate)."""
    model = LlavaOnevisionForConditionalGeneration.from_pretrained(source).eval()
    # the tiny checkpoint has no video processor (it cannot be built without torchvision)
    processor = image_only_processor(LlavaOnevisionProcessor).from_pretrained(source)
    conversation = [
        {"role": "user", "content": [*({"type": "image"} for _ in frames), {"type": "text", "text": prompt}]}
    ]
    text = processor.apply_chat_template(conversation, add_generation_prompt=True)
    inputs = processor(images=[frames], text=[text], return_tensors="pt")
    with torch.inference_mode():
        out = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
    new = out[0, inputs["input_ids"].shape[1] :].tolist()
    stop = {model.generation_config.eos_token_id, model.generation_config.pad_token_id}
    return next((new[:i] for i, t in enumerate(new) if t in stop), new)


@pytest.mark.parametrize("request_args", [{"span": (0.0, 2.0), "frames": 3}, {"times": [1.0]}])
def test_look_generates_the_same_tokens_as_transformers(
    ctx: ToolContext, video: Path, request_args: dict
) -> None:
    question = "What number is shown?"
    evidence = LOOK(ctx, video, question=question, **request_args)
    assert len(evidence) == 1 and evidence.tool[0] == "look"
    row = evidence.to_records()[0]
    n = request_args.get("frames", 1)
    assert row["data"]["frames"] == n and len(row["data"]["times"]) == n
    assert row["frame_index"] >= 0 and row["video"] == ctx.store.content_hash(video)

    loaded = ctx.hub.get("vlm")
    with Video.open(video) as v:
        args = LookInput(question=question, **request_args)
        side = frame_short_side(loaded, v)
        frames = (
            v.sample_at(args.times, short_side=side)
            if args.times
            else v.sample_uniform(args.frames, span=args.span, short_side=side)
        )
    prompt = look_prompt(question, [float(t) for t in frames.timestamps])
    ours = vlm_generate(loaded, [list(frames.frames)], [prompt])
    direct = _direct(loaded.source, list(frames.frames), prompt, loaded.spec.options["max_new_tokens"])
    assert ours.sequences == [direct]
    assert evidence.text[0] == loaded.processor.decode(direct, skip_special_tokens=True).strip()


def _count_generate(monkeypatch: pytest.MonkeyPatch, model) -> list[int]:
    calls: list[int] = []
    original = model.generate

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(model, "generate", counting)
    return calls


def test_look_and_caption_never_run_the_model_twice(
    ctx: ToolContext, video: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _count_generate(monkeypatch, ctx.hub.get("vlm").model)
    first = LOOK(ctx, video, question="Is it dark?", span=(1.0, 3.0), frames=2)
    again = LOOK(ctx, video, question="Is it dark?", span=(1.0, 3.0), frames=2)
    assert len(calls) == 1 and again.to_records() == first.to_records()
    LOOK(ctx, video, question="Is it light?", span=(1.0, 3.0), frames=2)
    assert len(calls) == 2

    caption = CAPTION(ctx, video, span=(1.0, 3.0), frames=3)
    assert CAPTION(ctx, video, span=(1.0, 3.0), frames=3).to_records() == caption.to_records()
    assert len(calls) == 3
    row = caption.to_records()[0]
    assert (row["tool"], row["start"], row["end"], row["data"]["frames"]) == ("caption", 1.0, 3.0, 3)
    # stored as a text set: per (video, span, model, prompt, settings)
    stored = ctx.store.texts(
        ctx.store.content_hash(video),
        "caption",
        "tiny/vlm",
        caption_module._settings(ctx, ctx.hub.get("vlm"), span=[1.0, 3.0], frames=3),
    )
    assert [r["text"] for r in stored] == [caption.text[0]]


def test_caption_matches_transformers_too(ctx: ToolContext, video: Path) -> None:
    evidence = CAPTION(ctx, video, frames=4)  # the whole video
    loaded = ctx.hub.get("vlm")
    with Video.open(video) as v:
        frames = v.sample_uniform(4, short_side=frame_short_side(loaded, v))
    prompt = caption_prompt(loaded, [float(t) for t in frames.timestamps])
    direct = _direct(loaded.source, list(frames.frames), prompt, loaded.spec.options["max_new_tokens"])
    assert evidence.text[0] == loaded.processor.decode(direct, skip_special_tokens=True).strip()
    assert (evidence.start[0], evidence.end[0]) == (0.0, pytest.approx(4.0, abs=0.05))


def test_batched_dense_captions(ctx: ToolContext, video: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    loaded = ctx.hub.get("vlm")
    monkeypatch.setitem(loaded.spec.options, "batch_size", 2)
    calls = _count_generate(monkeypatch, loaded.model)
    evidence = caption_video(ctx, video, every_s=1.5, frames=2)
    assert [(r["start"], r["end"]) for r in evidence.to_records()] == [(0.0, 1.5), (1.5, 3.0), (3.0, 4.0)]
    assert len(calls) == 2  # 3 windows, 2 per call
    assert all(r["data"]["frames"] == 2 for r in evidence.to_records())
    assert caption_video(ctx, video, every_s=1.5, frames=2).to_records() == evidence.to_records()
    assert len(calls) == 2


def test_look_and_caption_prompts_read_as_they_did_in_code() -> None:
    """prompts/look.yaml and caption.yaml render the very text the tools built in code (look@v1)."""
    assert look_prompt("What colour is the car?", [1.25]) == (
        "The image is a frame of a video at 1.2 s.\nWhat colour is the car?"
    )
    assert look_prompt("Does it move? \n", [0.0, 1.05, 2.5]) == (
        "The 3 images are frames of a video at 0.0, 1.1, 2.5 s, in order.\nDoes it move? \n"
    )
    assert load_prompt("look").tag == "look@v1"
    plain = SimpleNamespace(spec=SimpleNamespace(options={}))
    assert caption_prompt(plain, [2.0, 4.0]) == (  # type: ignore[arg-type]
        "The 2 images are frames of a video at 2.0, 4.0 s, in order.\n"
        "Describe what happens in these frames in one or two sentences."
    )
    own = SimpleNamespace(spec=SimpleNamespace(options={"caption_prompt": "List the objects.\n"}))
    assert caption_prompt(own, [3.0]) == (  # type: ignore[arg-type]
        "The image is a frame of a video at 3.0 s.\nList the objects.\n"
    )


def test_caption_windows() -> None:
    assert caption_windows(25.0, 10.0) == [(0.0, 10.0), (10.0, 20.0), (20.0, 25.0)]
    assert caption_windows(21.0, 10.0) == [(0.0, 10.0), (10.0, 21.0)]  # a 1 s sliver joins the last window
    assert caption_windows(4.0, 10.0) == [(0.0, 4.0)]
    with pytest.raises(ValueError):
        caption_windows(4.0, 0.0)


def test_arguments_and_spans_are_checked(ctx: ToolContext, video: Path) -> None:
    with pytest.raises(ValueError, match="either span or times"):
        LOOK(ctx, video, question="q", span=(0, 1), times=[0.5])
    with pytest.raises(ValueError):
        LOOK(ctx, video, question="")
    with pytest.raises(SpanOutOfRange):
        LOOK(ctx, video, question="q", span=(10.0, 12.0))
    with pytest.raises(SpanOutOfRange):  # a start before 0 is refused, not clamped (vidagent.core.spans)
        LOOK(ctx, video, question="q", span=(-1.0, 2.0))
    with pytest.raises(SpanOutOfRange):
        LOOK(ctx, video, question="q", times=[9.0])
    with pytest.raises(SpanOutOfRange):
        CAPTION(ctx, video, span=(5.0, 6.0))


def test_index_captions_and_text_search_from_the_cli(
    tmp_path: Path, video: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`vidagent index --captions-every` stores captions that `vidagent texts` finds (VLM stubbed)."""

    def fake(loaded, batch, prompts, **kwargs):
        return VlmOutput(
            sequences=[[] for _ in batch], texts=[f"a red bicycle, {len(b)} frames" for b in batch]
        )

    monkeypatch.setattr(caption_module, "vlm_generate", fake)
    store = str(tmp_path / "cli.sqlite")
    with pytest.raises(SystemExit) as done:
        main(["index", str(video), "--profile", "tiny", "--store", store, "--captions-every", "2"])
    assert done.value.code == 0
    assert "2 captions, one per 2 s" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["texts", "bicycle", "--store", store])
    printed = capsys.readouterr().out
    assert (
        "caption" in printed and "0.0-2.0" in printed and "2.0-4.0" in printed and "a red bicycle" in printed
    )
    db = Store(store)
    hits = db.search_texts("bicycle", tool="caption")
    assert len(hits) == 2 and hits[0]["text"] == "a red bicycle, 4 frames"
    assert db.video(hits[0]["video_id"])["path"] == str(video.resolve())  # the table names the file
