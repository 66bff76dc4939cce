"""Run the vidagent agent as an lmms-eval model: ``lmms-eval --model vidagent --tasks videomme``.

lmms-eval (https://github.com/EvolvingLMMs-Lab/lmms-eval) finds the model through the
``lmms_eval.models`` entry point that names :func:`lmms_eval_manifest`; ``--model_args`` become
the keyword arguments of :class:`VidagentLMM` (``profile=gpu,store=/data/store.sqlite,max_steps=6``).

Each request is one question about one video: the task's ``doc_to_visual`` gives the video's path
and its context is the question. When the context lists lettered options (``A. ...``, ``(A) ...``
or ``A) ...`` lines, as video multiple-choice tasks write them) the agent scores the options and
the reply is the chosen letter; otherwise the reply is the agent's answer text, cut at the first
of the request's ``until`` strings. ``loglikelihood`` and multi-round requests are not supported.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lmms_eval.api.instance import Instance
from lmms_eval.api.model import lmms
from tqdm import tqdm

from vidagent.core.errors import VidagentError
from vidagent.core.options import option_letter

log = logging.getLogger(__name__)

MODEL_NAME = "vidagent"

# An option line: "A. text", "A) text", "A: text" or "(A) text".
_OPTION_LINE = re.compile(r"^\s*(?:\(([A-Z])\)|([A-Z])[.):])\s+(\S.*?)\s*$")
# A line that only introduces the options ("Options:", "Option:", "Choices:").
_OPTIONS_HEADER = re.compile(r"^\s*(?:options?|choices?)\s*:?\s*$", re.IGNORECASE)
# lmms-eval passes these to every model; the agent's profile decides devices and batching.
_LMMS_EVAL_CONFIG = ("batch_size", "max_batch_size", "device")
_BUDGET_ARGS = ("max_steps", "max_seconds", "max_tool_calls", "max_frames", "max_tokens")


@dataclass(frozen=True)
class LmmsQuestion:
    """An lmms-eval context split into the question and its options (``None``: open-ended)."""

    question: str
    options: list[str] | None = None


def split_options(context: str) -> LmmsQuestion:
    """The question and the lettered options of ``context``.

    Options count only when their letters run A, B, C, ... in order (two at least); the option
    lines and an ``Options:`` header line are taken out of the question, the rest is kept as is.
    """
    lines = context.splitlines()
    found = [(i, m) for i, m in enumerate(_OPTION_LINE.match(line) for line in lines) if m]
    letters = [m.group(1) or m.group(2) for _, m in found]
    if len(found) < 2 or letters != [option_letter(i) for i in range(len(found))]:
        return LmmsQuestion(context.strip())
    taken = {i for i, _ in found}
    rest = [line for i, line in enumerate(lines) if i not in taken and not _OPTIONS_HEADER.match(line)]
    question = "\n".join(rest).strip() or "Which option is correct?"
    return LmmsQuestion(question, [m.group(3) for _, m in found])


def truncate(text: str, until: str | list[str] | None) -> str:
    """``text`` up to the first occurrence of any of the stop strings ``until``."""
    stops = [until] if isinstance(until, str) else list(until or [])
    cut = min((i for i in (text.find(s) for s in stops if s) if i >= 0), default=len(text))
    return text[:cut]


def lmms_eval_manifest() -> Any:
    """The ``lmms_eval.models`` entry point: registers :class:`VidagentLMM` as ``vidagent``."""
    from lmms_eval.models.registry_v2 import ModelManifest

    return ModelManifest(model_id=MODEL_NAME, simple_class_path=f"{__name__}.{VidagentLMM.__name__}")


class VidagentLMM(lmms):
    """The vidagent agent behind lmms-eval's model interface (``generate_until`` on video tasks)."""

    is_simple = True

    def __init__(
        self,
        profile: str = "auto",
        store: str | None = None,
        fps: float = 1.0,
        options: bool = True,
        max_steps: int | None = None,
        max_seconds: float | None = None,
        max_tool_calls: int | None = None,
        max_frames: int | None = None,
        max_tokens: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__()
        from vidagent.agent.api import VideoAgent
        from vidagent.agent.graph import Budget

        for name in _LMMS_EVAL_CONFIG:
            value = kwargs.pop(name, None)
            if name == "device" and value is not None:
                log.info("vidagent ignores --device %s: the profile %r places its models", value, profile)
        if kwargs:
            raise TypeError(
                f"unknown --model_args for vidagent: {', '.join(sorted(kwargs))} (known: profile, store, fps, "
                f"options, {', '.join(_BUDGET_ARGS)})"
            )
        limits = dict(
            zip(_BUDGET_ARGS, (max_steps, max_seconds, max_tool_calls, max_frames, max_tokens), strict=True)
        )
        budget = Budget(**{k: v for k, v in limits.items() if v is not None})
        self.use_options = bool(options)
        self.agent = VideoAgent.from_profile(str(profile), store=store, budget=budget, fps=float(fps))

    # --- requests ------------------------------------------------------------------------------
    def generate_until(self, requests: list[Instance]) -> list[str]:
        replies: list[str] = []
        bar = tqdm(total=len(requests), disable=(self.rank != 0), desc="Model Responding")
        for request in requests:
            context, gen_kwargs, doc_to_visual, doc_id, task, split = request.args
            video = self._video(doc_to_visual(self.task_dict[task][split][doc_id]), task, doc_id)
            asked = split_options(context) if self.use_options else LmmsQuestion(context.strip())
            answer = self.agent.ask(video, asked.question, asked.options)
            if asked.options and answer.choice is not None:
                reply = option_letter(answer.choice)
            else:
                reply = truncate(answer.text, (gen_kwargs or {}).get("until"))
            replies.append(reply)
            self.cache_hook.add_partial("generate_until", (context, gen_kwargs), reply)
            bar.update(1)
        bar.close()
        return replies

    def loglikelihood(self, requests: list[Instance]) -> list[tuple[float, bool]]:
        raise NotImplementedError(
            "vidagent answers by planning and calling tools, it has no log-likelihood of a continuation: "
            "run vidagent on generate_until tasks (e.g. videomme, mvbench, egoschema, nextqa_mc)"
        )

    def generate_until_multi_round(self, requests: list[Instance]) -> list[str]:
        raise NotImplementedError(
            "vidagent does not run lmms-eval's multi-round tasks; for multi-turn questions about a video "
            "use vidagent's own chat sessions (VideoAgent.chat)"
        )

    @staticmethod
    def _video(visuals: Any, task: str, doc_id: Any) -> Path:
        """The one local video file of a request."""
        items = list(visuals) if isinstance(visuals, list | tuple) else [visuals]
        if not items:
            raise VidagentError(f"{task} doc {doc_id}: doc_to_visual gave no video")
        first = items[0]
        if not isinstance(first, str | os.PathLike):
            raise VidagentError(
                f"{task} doc {doc_id}: vidagent answers questions about video files, "
                f"but doc_to_visual gave a {type(first).__name__}"
            )
        path = Path(first)
        if path.is_dir():
            raise VidagentError(
                f"{task} doc {doc_id}: {path} is a folder of frames; vidagent needs a video file"
            )
        if len(items) > 1:
            log.warning(
                "%s doc %s: %d visuals, vidagent answers about the first (%s)", task, doc_id, len(items), path
            )
        return path
