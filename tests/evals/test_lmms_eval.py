"""The lmms-eval model wrapper: prompts, registration, and generate_until over the tiny profile."""

from __future__ import annotations

from pathlib import Path

import pytest
from lmms_eval.api.instance import Instance
from lmms_eval.models.registry_v2 import ModelRegistryV2

from vidagent.evals.lmms_eval_model import LmmsQuestion, VidagentLMM, split_options, truncate
from vidagent.media.sample_videos import sample_video

TASK, SPLIT = "videomme_probe", "test"
# lmms-eval's videomme doc_to_text with its default post_prompt.
VIDEOMME_CONTEXT = (
    "Select the best answer to the following multiple-choice question based on the video and the subtitles. "
    "Respond with only the letter (A, B, C, or D) of the correct option.\n"
    "What moves across the scene?\nA. A bicycle.\nB. A boat.\nC. A plane.\nD. A horse.\n"
    "The best answer is:\nAnswer with the option's letter from the given choices directly."
)


def test_split_options_reads_the_option_styles_of_video_tasks() -> None:
    videomme = split_options(VIDEOMME_CONTEXT)
    assert videomme.options == ["A bicycle.", "A boat.", "A plane.", "A horse."]
    assert videomme.question.splitlines()[1] == "What moves across the scene?"
    assert "A. A bicycle." not in videomme.question and videomme.question.endswith("directly.")
    # mvbench: "(A) text" lines under an "Option:" header
    mvbench = split_options(
        "Question:What is the man doing?\nOption:\n(A) running\n(B) sitting\n(C) swimming\nBest option:("
    )
    assert mvbench == LmmsQuestion(
        "Question:What is the man doing?\nBest option:(", ["running", "sitting", "swimming"]
    )
    assert split_options("When does the cyclist appear?") == LmmsQuestion("When does the cyclist appear?")
    # letters that do not run A, B, C, ... are not options
    assert split_options("Who won?\nB. Bob\nD. Dan").options is None
    assert split_options("Grade it.\nA. fine").options is None


def test_truncate_cuts_at_the_first_stop_string() -> None:
    assert truncate("a bike.\n\nUser: next", ["\n\n", "User:"]) == "a bike."
    assert truncate("a bike. User: next", "User:") == "a bike. "
    assert truncate("a bike", None) == truncate("a bike", ["", "zzz"]) == "a bike"


def test_the_entry_point_registers_the_model_as_vidagent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What pip writes for the pyproject entry point; lmms-eval's registry resolves it to the wrapper."""
    info = tmp_path / "vidagent_lmms_probe-0.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: vidagent-lmms-probe\nVersion: 0.0\n")
    (info / "entry_points.txt").write_text(
        "[lmms_eval.models]\nvidagent = vidagent.evals.lmms_eval_model:lmms_eval_manifest\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = ModelRegistryV2()
    registry.load_entrypoint_manifests()
    assert registry.get_model_class("vidagent") is VidagentLMM


def test_unknown_model_args_are_refused() -> None:
    with pytest.raises(TypeError, match="max_stpes"):
        VidagentLMM.create_from_arg_string("profile=tiny,max_stpes=2")


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> VidagentLMM:
    store = tmp_path_factory.mktemp("lmms") / "store.sqlite"
    # the way lmms-eval builds models: --model_args plus its batch_size/device config
    lm = VidagentLMM.create_from_arg_string(
        f"profile=tiny,store={store},fps=1,max_steps=2", {"batch_size": 1, "device": "cpu"}
    )
    lm.task_dict = {
        TASK: {SPLIT: [{"video": str(sample_video("bikes"))}, {"video": str(sample_video("bikes"))}]}
    }
    return lm


def request(context: str, until: list[str], doc_id: int) -> Instance:
    def doc_to_visual(doc: dict[str, str]) -> list[str]:
        return [doc["video"]]

    gen_kwargs = {"until": until, "max_new_tokens": 16, "temperature": 0}
    return Instance(
        request_type="generate_until",
        arguments=(context, gen_kwargs, doc_to_visual, doc_id, TASK, SPLIT),
        idx=0,
        metadata={"task": TASK, "doc_id": doc_id, "repeats": 1},
    )


@pytest.mark.slow
def test_generate_until_asks_the_agent_about_the_video(
    model: VidagentLMM, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert model.agent.budget.max_steps == 2 and model.agent.ctx.fps == 1.0
    asked: list = []
    real_ask = model.agent.ask
    monkeypatch.setattr(
        model.agent,
        "ask",
        lambda *args, **kwargs: asked.append((args, real_ask(*args, **kwargs))) or asked[-1][1],
    )
    replies = model.generate_until([request(VIDEOMME_CONTEXT, ["\n\n"], 0)])
    assert isinstance(replies, list) and len(replies) == 1
    assert replies[0] in {"A", "B", "C", "D"}  # the agent scored the four options
    [(args, answer)] = asked
    assert Path(args[0]) == sample_video("bikes") and len(args[2]) == 4  # the video, the question's options
    assert any(event["type"] == "tool_call" for event in answer.trace)  # its planner sent a tool at the video


@pytest.mark.slow
def test_open_questions_reply_with_text_cut_at_until(model: VidagentLMM) -> None:
    [reply] = model.generate_until([request("What moves across the scene?", [" "], 1)])
    assert isinstance(reply, str) and reply and " " not in reply


def test_loglikelihood_and_multi_round_say_they_are_unsupported(model: VidagentLMM) -> None:
    with pytest.raises(NotImplementedError, match="log-likelihood"):
        model.loglikelihood([])
    with pytest.raises(NotImplementedError, match="multi-round"):
        model.generate_until_multi_round([])
