"""Answers read off what the video says and shows: quoted, timed and cited, not paraphrased.

A question about speech or on-screen text ("Which city does the speaker mention?", "When is
GATE 51 shown?", "Is the city on screen the one the speaker names?") has its answer in the
text rows the agent gathered (``find_text``, ``transcribe``, ``read_text``). Asking a small LLM
to restate it invites invention ("the city of [city_name]"), so :func:`text_answer` reads the
answer from those rows and the LLM only chooses among what they hold:

1. :func:`text_question` says what the question asks for: a time (``when``), yes or no, a
   number, a colour, or words; which source holds it (speech, screen or both, from words such
   as "said", "speaker", "written", "sign"); and, for a question naming both sources, which one
   holds the answer and which one links to it ("The speaker names a destination; what platform
   does the screen give for it?").
2. The candidate answers are taken from the rows of that source: numbers (digits or number
   words), colour words, or names and words (capitalised or upper-case runs, on-screen lines;
   never the question's own words). For a question that links the sources, only rows sharing
   a word with the other source; for "both said and shown", only values in both.
3. One candidate is the answer; several are scored by the LLM as a multiple choice over the
   rows (the same log-likelihood scoring as options), and the answer names the value, where and
   when it was said or shown, quotes the row and cites it.

When-questions answer with the span of the best-matching row (``find_text`` narrows speech to
the matching words); yes/no questions check the question's own words against the rows. Anything
else (or no usable row) returns None, and the agent answers with the LLM as before.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from vidagent.core.question_words import FUNCTION_WORDS, lemma, words
from vidagent.models.llm import ChatModel

SPEECH_WORDS = frozenset(
    {
        "say",
        "said",
        "says",
        "saying",
        "speaker",
        "speakers",
        "speak",
        "speaks",
        "spoke",
        "spoken",
        "speech",
        "mention",
        "mentions",
        "mentioned",
        "mentioning",
        "announce",
        "announces",
        "announced",
        "announcer",
        "announcement",
        "audio",
        "hear",
        "heard",
        "voice",
        "talk",
        "talks",
        "talking",
        "narrator",
        "narration",
        "tell",
        "tells",
        "told",
        "call",
        "calls",
        "called",
        "aloud",
        "sound",
        "soundtrack",
        "transcript",
        "pronounce",
        "pronounced",
    }
)
SCREEN_WORDS = frozenset(
    {  # not "show" or "appear": "What does the video show?" asks about what is seen
        "shown",
        "written",
        "write",
        "writes",
        "writing",
        "sign",
        "signs",
        "screen",
        "text",
        "display",
        "displays",
        "displayed",
        "read",
        "reads",
        "board",
        "letters",
        "lettering",
        "caption",
        "label",
        "banner",
        "printed",
        "title",
        "on-screen",
    }
)
EITHER_WORDS = frozenset(
    {
        "say",
        "says",
        "said",
        "saying",
        "tell",
        "tells",
        "told",
        "call",
        "calls",
        "called",
        "mention",
        "mentions",
        "mentioned",
    }
)  # speech unless a screen word is there
WHEN_PATTERNS = re.compile(
    r"\b(when|what time|(which|what) (seconds?|moments?|points?|times?|part)|during which|"
    r"how (long|far|many seconds) into|timestamps?)\b",
    re.IGNORECASE,
)
YES_NO_START = frozenset({"is", "are", "was", "were", "does", "do", "did", "has", "have", "can", "will"})
SAME_WORDS = frozenset({"same", "both", "also", "match", "matches", "agree", "agrees", "identical"})
NUMBER_WORDS_IN_QUESTION = frozenset(
    {
        "number",
        "numbers",
        "many",
        "much",
        "digit",
        "digits",
        "code",
        "minutes",
        "percent",
        "price",
        "year",
        "count",
    }
)
# things known by their numbers: "Which platform does the board show?" asks for one
NUMBERED = frozenset(
    {
        "platform",
        "platforms",
        "gate",
        "gates",
        "track",
        "room",
        "seat",
        "flight",
        "bus",
        "route",
        "floor",
        "level",
        "channel",
        "lane",
        "terminal",
        "bay",
        "stand",
        "counter",
    }
)
COLOUR_NAMES = (
    "red",
    "orange",
    "yellow",
    "green",
    "blue",
    "purple",
    "violet",
    "pink",
    "brown",
    "black",
    "white",
    "grey",
    "gray",
    "silver",
    "gold",
    "golden",
    "beige",
    "turquoise",
    "navy",
    "maroon",
)
ASKING = frozenset(
    {
        "what",
        "which",
        "who",
        "whom",
        "whose",
        "where",
        "when",
        "why",
        "how",
        "does",
        "do",
        "did",
        "is",
        "are",
        "was",
        "were",
        "can",
        "will",
        "has",
        "have",
        "according",
        "name",
        "names",
        "named",
        "give",
        "gives",
        "given",
        "one",
        "it",
        "they",
        "there",
        "clip",
        "video",
        "point",
        "time",
        "moment",
        "part",
        "both",
        "also",
        "same",
        "aloud",
        "exactly",
    }
)
SMALL = (
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
)
TENS = ("twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
NUMBER = re.compile(
    rf"(?<![\d.])\d+(?:[.,:]\d+)*|\b(?:(?:{'|'.join(TENS)})(?:[\s-]+(?:{'|'.join(SMALL[1:10])}))?|"
    rf"(?:{'|'.join(SMALL)}))\b",
    re.IGNORECASE,
)
MAX_CANDIDATES = 8
NAMES_ASKED = frozenset(
    {
        "who",
        "whose",
        "whom",
        "where",
        "city",
        "cities",
        "town",
        "destination",
        "place",
        "country",
        "station",
        "name",
        "named",
        "word",
        "words",
        "person",
        "passenger",
        "street",
        "called",
    }
)
SOURCE_OF_TOOL = {"transcribe": "speech", "read_text": "screen"}
VERB = {"speech": "said", "screen": "shown"}


@dataclass(frozen=True)
class TextQuestion:
    """What a question about speech or on-screen text asks for (see :func:`text_question`)."""

    kind: str  # "when", "yes_no", "number", "colour" or "words"
    answer_sources: frozenset[str]  # where the answer is: {"speech"}, {"screen"} or both
    link_sources: frozenset[str] = frozenset()  # the other source, when one clause names it
    same: bool = False  # "both said and shown" / "the same one": a value in both sources
    named: bool = True  # the question names a source (else any, and rows must match its words)


@dataclass(frozen=True)
class TextRow:
    id: int  # the evidence row id
    source: str  # "speech" or "screen"
    start: float  # find_text narrows speech to the words that matched: when-questions answer with that
    end: float
    text: str
    score: float
    segment: tuple[float, float] | None = None  # the whole segment's span, quoted with a value it holds
    colour: str | None = None  # on-screen text: its ink's colour name (read_text's data.colour)
    box: tuple[float, float, float, float] | None = None  # on-screen text: x1, y1, x2, y2


def _split_digits(text: str) -> str:
    """A sign's run-together "4TORONTO", "GATE10" or "toBoston" as "4 TORONTO", "GATE 10", "to Boston"
    (OCR loses such spaces)."""
    text = re.sub(r"(?<=\d)(?=[^\W\d_])|(?<=[^\W\d_])(?=\d)", " ", text)
    return re.sub(r"(?<=[a-z])(?=[A-Z][a-z])", " ", text)


def _lemmas(text: str) -> set[str]:
    return {lemma(w) for w in words(_split_digits(text))}


def _sources_in(text: str) -> set[str]:
    found = set()
    tokens = {w.lower() for w in words(text)}
    if tokens & SCREEN_WORDS or re.search(r"\bon screen\b", text, re.IGNORECASE):
        found.add("screen")
    speech = tokens & SPEECH_WORDS
    if speech and not ("screen" in found and speech <= EITHER_WORDS):  # a sign "says" and "calls" too
        found.add("speech")
    return found


def text_question(question: str) -> TextQuestion:
    """The kind of answer and its sources; a question naming no source gets both (``named=False``)."""
    lowered = question.lower()
    tokens = [w.lower() for w in words(question)]
    sources = _sources_in(question)
    named = bool(sources)
    answer_sources: frozenset[str] = frozenset(sources or {"speech", "screen"})
    link_sources: frozenset[str] = frozenset()
    same = bool(set(tokens) & SAME_WORDS) and len(sources) == 2
    if len(sources) == 2 and not same:  # the source named first after the asking word holds the answer:
        # "The speaker names X; what does the screen give for it?", "Which city does the board list next
        # to the platform the announcer mentions?"
        asking = re.search(r"\b(what|which|who|whose|where|when|how)\b", question, re.IGNORECASE)
        after = [(_sources_in(w), w) for w in words(question[asking.end() :] if asking else question)]
        first = next((found for found, _ in after if len(found) == 1), set())
        if first:
            answer_sources, link_sources = frozenset(first), frozenset(sources - first)
        else:
            same = True
    # the kind of answer comes from the sentence that asks: "The announcement gives a platform
    # number. Where does that train go?" asks for a place, not a number
    sentences = [c for c in re.split(r"(?<=[.;?!])\s+", question) if c.strip()]
    asking_sentence = next(
        (c for c in sentences if re.search(r"\b(what|which|who|whose|where|when|how)\b", c, re.IGNORECASE)),
        question,
    )
    asked_tokens = {w.lower() for w in words(asking_sentence)}
    if WHEN_PATTERNS.search(lowered):
        kind = "when"
    elif tokens and tokens[0] in YES_NO_START:
        kind = "yes_no"
    elif {"colour", "color", "colours", "colors"} & asked_tokens:
        kind = "colour"
    elif asked_tokens & NUMBER_WORDS_IN_QUESTION or _asks_for_numbered(asking_sentence):
        kind = "number"
    else:
        kind = "words"
    return TextQuestion(kind, answer_sources, link_sources, same, named)


def _asks_for_numbered(sentence: str) -> bool:
    """ "Which platform ...?", "What gate ...?": the asking word right before a thing known by its number."""
    return (
        re.search(rf"\b(which|what)\s+({'|'.join(sorted(NUMBERED))})\b", sentence, re.IGNORECASE) is not None
    )


def text_rows(evidence_rows: Sequence[dict[str, Any]]) -> list[TextRow]:
    """The rows that quote speech or on-screen text, best first."""
    rows = []
    for i, row in enumerate(evidence_rows):
        tool = row.get("tool")
        data = row.get("data") or {}
        source = data.get("source") if tool == "find_text" else SOURCE_OF_TOOL.get(str(tool))
        text = row.get("text")
        if source in VERB and isinstance(text, str) and text.strip():
            segment = data.get("segment")
            rows.append(
                TextRow(
                    i,
                    source,
                    float(row["start"]),
                    float(row["end"]),
                    text.strip(),
                    float(row.get("score") or 0.0),
                    (float(segment[0]), float(segment[1])) if segment else None,
                    str(data["colour"]) if data.get("colour") else None,
                    _box(row.get("box")),
                )
            )
    return sorted(rows, key=lambda r: (-r.score, r.id))


def _box(value: Any) -> tuple[float, float, float, float] | None:
    try:
        box = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        return None
    return box if len(box) == 4 and all(v == v for v in box) else None  # NaN: no box


def _same_line(a: TextRow, b: TextRow) -> bool:
    """Two on-screen lines side by side on one row of a board: shown together, overlapping in height
    by at least half the shorter one."""
    if a.box is None or b.box is None or a.source != "screen" or b.source != "screen":
        return False
    if min(a.end, b.end) <= max(a.start, b.start):
        return False
    overlap = min(a.box[3], b.box[3]) - max(a.box[1], b.box[1])
    return overlap >= 0.5 * min(a.box[3] - a.box[1], b.box[3] - b.box[1])


def _digits(text: str) -> str | None:
    if text[0].isdigit():
        return text.replace(",", "")
    parts = re.split(r"[\s-]+", text.lower())
    if parts[0] in SMALL:
        return str(SMALL.index(parts[0]))
    value = 20 + 10 * TENS.index(parts[0])
    return str(value + (SMALL.index(parts[1]) if len(parts) > 1 else 0))


def _candidates(row: TextRow, kind: str, question_lemmas: set[str]) -> list[str]:
    """Values in one row that could answer a question of ``kind`` (never the question's own words)."""
    if kind == "number":
        return [_digits(m.group(0)) or m.group(0) for m in NUMBER.finditer(row.text)]
    if kind == "colour":
        return [
            w.lower()
            for w in words(row.text)
            if w.lower() in COLOUR_NAMES and lemma(w) not in question_lemmas
        ]
    tokens = words(_split_digits(row.text) if row.source == "screen" else row.text)
    new = [
        (i, w)
        for i, w in enumerate(tokens)
        if w.lower() not in FUNCTION_WORDS and w.lower() not in ASKING and lemma(w) not in question_lemmas
    ]
    letters = [c for c in row.text if c.isalpha()]
    if row.source == "screen" and all(
        c.isupper() for c in letters
    ):  # a sign in capitals: the line, each word
        line = " ".join(w for _, w in new)
        return ([line] if len(new) > 1 else []) + [w for _, w in new]
    # a sentence (speech, or a sign in mixed case such as "Next train to Dublin"): its names
    sentence_starts = {0} | {
        i + 1 for i, w in enumerate(tokens[:-1]) if re.search(rf"{re.escape(w)}[.!?]", row.text)
    }
    named = [
        w for i, w in new if (w[0].isupper() and i not in sentence_starts) or w.isupper() or w[0].isdigit()
    ]
    return named or [w for _, w in new]


def _unique(items: Sequence[Any], key: Any = lambda value: value.lower()) -> list[Any]:
    """``items`` without repeats (by ``key``: values case-insensitively by default), first kept."""
    seen, kept = set(), []
    for item in items:
        if key(item) not in seen:
            seen.add(key(item))
            kept.append(item)
    return kept


def _quote(row: TextRow, whole: bool = True) -> str:
    """Where and when the row was said or shown, cited, and its text quoted (``whole``: the
    segment's span, not the matched words')."""
    text = row.text if len(row.text) <= 160 else row.text[:157] + "..."
    start, end = row.segment if whole and row.segment else (row.start, row.end)
    return f"{VERB[row.source]} at {start:.1f}-{end:.1f} s [{row.id}]: \u201c{text}\u201d"


@dataclass(frozen=True)
class TextAnswer:
    text: str
    cited: list[int]
    confidence: float
    tokens: int = 0


def _squashed(text: str) -> str:
    return re.sub(r"\W+", "", text).lower()


def _contains(row: TextRow, value: str) -> bool:
    """Does the row hold ``value``? Numbers by value; words ignoring case and spaces, since OCR
    can join the words of a sign ("ToSeattle")."""
    if value.isdigit():
        return value in _candidates(row, "number", set())
    squashed = _squashed(value)
    return len(squashed) >= 3 and squashed in _squashed(row.text)


def text_answer(
    question: str, evidence_rows: Sequence[dict[str, Any]], llm: ChatModel | None, messages_for: Any = None
) -> TextAnswer | None:
    """The answer read off the evidence's text rows (see the module docstring), or None.

    ``messages_for(rows, options)``: the answer prompt's messages for the LLM's multiple choice
    among several candidates (the agent's ``answer`` prompt over those rows).
    """
    asked = text_question(question)
    rows = text_rows(evidence_rows)
    question_lemmas = {lemma(w) for w in words(question)}
    looked_for = {
        lemma(w)
        for w in words(question)
        if w.lower() not in ASKING | FUNCTION_WORDS | SPEECH_WORDS | SCREEN_WORDS
    }
    if not asked.named:  # no source named: a what-question, and only rows sharing two of its words (or all)
        if asked.kind in ("when", "yes_no") or not looked_for:
            return None
        rows = [r for r in rows if len(_lemmas(r.text) & looked_for) >= min(2, len(looked_for))]
    in_answer = [r for r in rows if r.source in asked.answer_sources]
    if not in_answer:
        return None
    if asked.kind == "when":
        best = max(in_answer, key=lambda r: (len(_lemmas(r.text) & looked_for), r.score))
        if not _lemmas(best.text) & looked_for:
            return None
        return TextAnswer(
            f"At {best.start:.1f}-{best.end:.1f} s: {_quote(best, whole=False)}.",
            [best.id],
            min(best.score, 1.0),
        )
    if asked.kind == "yes_no":
        return _yes_no(asked, rows, in_answer, looked_for, question_lemmas)
    colours = {w.lower() for w in words(question)} & set(COLOUR_NAMES)
    if asked.kind == "colour" and asked.answer_sources == {
        "screen"
    }:  # "What colour is the word EXIT written in?"
        coloured = [r for r in in_answer if r.colour and _lemmas(r.text) & looked_for]
        if not coloured:
            return None
        return TextAnswer(
            f"{coloured[0].colour}: {_quote(coloured[0])}.", [coloured[0].id], min(coloured[0].score, 1.0)
        )
    if colours and asked.kind != "colour":  # "the word written in red letters": rows with that ink
        in_answer = [r for r in in_answer if r.colour in colours] or in_answer
    kind = asked.kind
    if asked.link_sources:  # rows of the answer source that share a value with the linking source
        links = [
            v
            for r in rows
            if r.source in asked.link_sources
            for v in _candidates(r, "words", question_lemmas) + _candidates(r, "number", question_lemmas)
        ]
        linked = [r for r in in_answer if any(_contains(r, v) for v in links)]
        # a board's columns are read as separate lines: the rest of a linked line's row goes with it
        linked += [r for r in in_answer if r not in linked and any(_same_line(r, other) for other in linked)]
        in_answer = linked or in_answer
    found: dict[str, TextRow] = {}
    for row in sorted(in_answer, key=lambda r: r.source != "speech") if asked.same else in_answer:
        for value in _candidates(row, kind, question_lemmas):
            found.setdefault(value, row)
    # values beside what the question names win: "What gate does the sign show?" -> "GATE 50" gives 50
    naming = {v: r for v, r in found.items() if _lemmas(r.text) & looked_for}
    found = naming or found
    if asked.same:  # "both said and shown": values present in both sources
        both = {v: r for v, r in found.items() if any(_contains(o, v) for o in rows if o.source != r.source)}
        # the spoken form first: Whisper spaces its words, OCR may not
        found = dict(sorted(both.items(), key=lambda item: item[1].source != "speech")) if both else found
        found = {
            v: r
            for v, r in found.items()  # "Seattle", not the sign's run-together "ToSeattle" too
            if not any(o != v and len(_squashed(o)) >= 3 and _squashed(o) in _squashed(v) for o in found)
        }
    if asked.kind == "words" and NAMES_ASKED & {
        w.lower() for w in words(question)
    }:  # a name, a place, a word
        found = {v: r for v, r in found.items() if not any(c.isdigit() for c in v)} or found
    elif asked.kind == "words":  # numbers are asked for by "number", "gate", "how many": words first
        found = {v: r for v, r in found.items() if any(c.isalpha() for c in v)} or found
    values = _unique(list(found))[:MAX_CANDIDATES]
    if not values:
        return None
    choice, confidence, tokens = 0, min(found[values[0]].score, 1.0), 0
    if len(values) > 1 and llm is not None and messages_for is not None:
        choice, confidence, tokens = _choose(llm, messages_for, [found[v] for v in values], values)
    value = values[choice]
    row = found[value]
    return TextAnswer(f"{value}: {_quote(row)}.", [row.id], round(confidence, 4), tokens)


def _choose(
    llm: ChatModel, messages_for: Any, rows: list[TextRow], values: list[str]
) -> tuple[int, float, int]:
    """The LLM's pick among ``values`` as a multiple choice, asked in the given order and reversed and
    the two log-likelihoods averaged, so a small model's liking for option A does not decide."""
    shown = _unique(rows, key=lambda row: row.id)
    forward = llm.score_options(messages_for(shown, values), values)
    backward = llm.score_options(messages_for(shown[::-1], values[::-1]), values[::-1])
    logprobs = (np.asarray(forward.logprobs) + np.asarray(backward.logprobs)[::-1]) / 2
    choice = int(np.argmax(logprobs))
    probabilities = np.exp(logprobs - logprobs.max())
    return choice, float(probabilities[choice] / probabilities.sum()), forward.tokens + backward.tokens


def _yes_no(
    asked: TextQuestion,
    rows: list[TextRow],
    in_answer: list[TextRow],
    looked_for: set[str],
    question_lemmas: set[str],
) -> TextAnswer | None:
    if asked.same:  # "Is the city on screen the same one the speaker names?": a shared value
        by_source: dict[str, dict[str, TextRow]] = {"speech": {}, "screen": {}}
        for row in rows:
            for value in _candidates(row, "words", question_lemmas):
                by_source[row.source].setdefault(value.lower(), row)
        if not by_source["speech"] or not by_source["screen"]:
            return None
        shared = [v for v in by_source["speech"] if v in by_source["screen"]]
        if shared:
            said, shown = by_source["speech"][shared[0]], by_source["screen"][shared[0]]
            return TextAnswer(
                f"Yes: {shared[0]!r} is {_quote(said)}, and {_quote(shown)}.",
                [said.id, shown.id],
                min(said.score, shown.score, 1.0),
            )
        said = next(iter(by_source["speech"].values()))
        shown = next(iter(by_source["screen"].values()))
        return TextAnswer(
            f"No: {_quote(said)}; {_quote(shown)}.", [said.id, shown.id], min(said.score, shown.score, 1.0)
        )
    matching = [r for r in in_answer if looked_for and looked_for <= _lemmas(r.text)]
    if matching:
        return TextAnswer(f"Yes: {_quote(matching[0])}.", [matching[0].id], min(matching[0].score, 1.0))
    sources = " or ".join(VERB[s] for s in sorted(asked.answer_sources))
    return TextAnswer(
        f"No: nothing {sources} matches; the closest is {_quote(in_answer[0])}.",
        [in_answer[0].id],
        min(in_answer[0].score, 1.0),
    )


__all__ = ["TextAnswer", "TextQuestion", "TextRow", "text_answer", "text_question", "text_rows"]
