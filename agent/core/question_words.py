"""Free-text arguments in the question's own words: the vocabulary, the check, the grammar.

A planner that invents arguments sends CLIP after "a dog running" when the user asked about a
helmet. So every free-text argument of a tool call (``retrieve``/``ground`` ``query``,
``detect_track``/``segment`` ``prompt``, ``look`` ``question``) must be made of the words of the
question: the question itself, its options, and the earlier turns of the chat. A word counts
as the question's when its lemma is (``cars`` -> ``car.``, ``running`` -> ``run``); a short list
of function words (articles, prepositions) is always allowed, as is each tool's own syntax
(GroundingDINO's ``'person. bicycle.'``, a question mark).

Tool input models mark their free-text fields with ``json_schema_extra={"words": KIND}``:

- ``phrase``: words separated by spaces or commas, optionally ending with ``?``, ``.`` or ``!``;
- ``objects``: GroundingDINO phrases, each ending with ``.`` (``person. red car.``).

``Vocabulary.pattern(kind)`` is the same rule as a regular expression, put into the plan's
JSON schema so a backend with constrained decoding (xgrammar, llama.cpp grammars) cannot write
anything else; ``Vocabulary.foreign(text)`` is the check run after decoding, for backends
without a grammar and as a guard for those with one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

WORD = re.compile(r"[^\W_]+(?:['’\-][^\W_]+)*")
FUNCTION_WORDS = frozenset(
    [
        "a",
        "an",
        "the",
        "of",
        "in",
        "on",
        "at",
        "to",
        "with",
        "and",
        "or",
        "from",
        "by",
        "for",
        "into",
        "onto",
        "near",
        "over",
        "under",
        "behind",
        "before",
        "after",
        "his",
        "her",
        "their",
        "its",
        "this",
        "that",
        "these",
        "those",
        "is",
        "are",
    ]
)
IRREGULAR = {
    "people": "person",
    "men": "man",
    "women": "woman",
    "children": "child",
    "mice": "mouse",
    "feet": "foot",
    "teeth": "tooth",
    "geese": "goose",
    "knives": "knife",
    "leaves": "leaf",
    "wolves": "wolf",
    "shelves": "shelf",
    "sheep": "sheep",
    "fish": "fish",
}
KINDS = ("phrase", "objects")
TIME_WORDS = frozenset(
    {
        "first",
        "last",
        "start",
        "beginning",
        "end",
        "ending",
        "final",
        "opening",
        "intro",
        "outro",
        "minute",
        "minutes",
        "second",
        "seconds",
        "hour",
        "hours",
        "half",
        "middle",
    }
)
# bounds in the grammar: enough for any sensible argument, and a stop to a small model's repetitions
MAX_WORDS = 16  # per phrase (a query, a question)
MAX_OBJECTS, MAX_OBJECT_WORDS = 4, 4  # GroundingDINO phrases per prompt, words per phrase


def words(text: str) -> list[str]:
    """The words of ``text`` (letters and digits, with inner apostrophes and hyphens)."""
    return WORD.findall(text)


def lemma(word: str) -> str:
    """A light lemma for matching words across inflections: lower case, possessive, plural, -ing, -ed.

    Not a dictionary lemmatiser: it only has to map the forms a planner writes for a question's
    word onto the same key (``boxes``/``box``, ``running``/``run``, ``danced``/``dance``).
    """
    w = word.lower().replace("’", "'")
    w = w.removesuffix("'s").removesuffix("'")
    if w in IRREGULAR:
        w = IRREGULAR[w]
    elif len(w) > 4 and w.endswith("ies"):
        w = w[:-3] + "y"
    elif len(w) > 4 and w.endswith(("sses", "shes", "ches", "xes", "zes")):
        w = w[:-2]
    elif _plural_s(w):
        w = w[:-1]
    for suffix in ("ing", "ed"):
        if len(w) > len(suffix) + 2 and w.endswith(suffix):
            w = w[: -len(suffix)]
            if len(w) > 2 and w[-1] == w[-2] and w[-1] not in "aeiousl":
                w = w[:-1]  # running -> run, stopped -> stop (but not falling -> fal)
            break
    return w[:-1] if len(w) > 3 and w.endswith("e") else w  # dance/danced, take/taking


def singular(word: str) -> str | None:
    """The singular of a plural noun as written (``cars`` -> ``car``), else None."""
    lower = word.lower()
    if lower in IRREGULAR and IRREGULAR[lower] != lower:
        return IRREGULAR[lower]
    if len(lower) > 4 and lower.endswith("ies"):
        return word[:-3] + "y"
    if len(lower) > 4 and lower.endswith(("sses", "shes", "ches", "xes", "zes")):
        return word[:-2]
    if _plural_s(lower):
        return word[:-1]
    return None


def _plural_s(lower: str) -> bool:
    """Whether a final 's' looks like a plural's (cars, taxis; not glass, bus, this)."""
    return (
        len(lower) > 3
        and lower.endswith("s")
        and not lower.endswith(("ss", "us"))
        and not (lower.endswith("is") and len(lower) <= 4)
    )


@dataclass(frozen=True)
class Vocabulary:
    """The words a planner may use in free-text arguments for one question."""

    source: tuple[str, ...]  # the question's words, as written

    @classmethod
    def of(
        cls,
        question: str,
        options: Iterable[str] | None = None,
        history: Iterable[dict[str, str]] | None = None,
    ) -> Vocabulary:
        texts = [question, *(options or []), *(str(turn.get("content", "")) for turn in history or [])]
        seen: dict[str, None] = {}
        for text in texts:
            for word in words(text):
                seen.setdefault(word, None)
        return cls(tuple(seen))

    @cached_property
    def lemmas(self) -> frozenset[str]:
        return frozenset(lemma(w) for w in self.source)

    @cached_property
    def surface(self) -> tuple[str, ...]:
        """Every written form the grammar allows: as written, lower case, capitalised, singular."""
        forms: dict[str, None] = {}
        for word in (*self.source, *sorted(FUNCTION_WORDS)):
            one = singular(word)
            for form in (word, word.lower(), word[:1].upper() + word[1:], one, one and one.lower()):
                if form:
                    forms.setdefault(form, None)
        return tuple(forms)

    @cached_property
    def mentions_time(self) -> bool:
        """Whether the question names a time (a number, or words like "first", "last", "minute")."""
        return any(any(c.isdigit() for c in w) or w.lower() in TIME_WORDS for w in self.source)

    def allows(self, word: str) -> bool:
        return word.lower() in FUNCTION_WORDS or lemma(word) in self.lemmas

    def foreign(self, text: str) -> list[str]:
        """The words of ``text`` that are not the question's (in order, without repeats)."""
        found: dict[str, None] = {}
        for word in words(text):
            if not self.allows(word):
                found.setdefault(word, None)
        return list(found)

    def pattern(self, kind: str) -> str:
        """A regular expression (anchored; plain groups only) for a ``kind`` field over these words."""
        if kind not in KINDS:
            raise ValueError(f"unknown free-text kind {kind!r}; one of {', '.join(KINDS)}")
        # longest first: regex alternation takes the first branch that matches
        word = "(" + "|".join(_escape(w) for w in sorted(self.surface, key=lambda w: (-len(w), w))) + ")"
        if kind == "phrase":
            return f"^{word}(,? {word}){{0,{MAX_WORDS - 1}}}[?.!]?$"
        phrase = f"{word}( {word}){{0,{MAX_OBJECT_WORDS - 1}}}[.]"
        return f"^{phrase}( {phrase}){{0,{MAX_OBJECTS - 1}}}$"


def _escape(word: str) -> str:
    """A literal word in a pattern; specials go in a character class (``[-]``), which every regex
    dialect and llama.cpp's schema-to-grammar converter read the same way."""
    return "".join(f"[{c}]" if c in ".^$*+?(){}|/-" else c for c in word)


def free_text_fields(schema: dict[str, Any]) -> dict[str, str]:
    """``field -> kind`` for the fields of a tool input schema marked with ``words``."""
    return {
        name: prop["words"]
        for name, prop in schema.get("properties", {}).items()
        if prop.get("words") in KINDS
    }


def check_arguments(
    tool: str, args: dict[str, Any], kinds: dict[str, str], vocabulary: Vocabulary
) -> list[str]:
    """Problems with the free-text arguments of one call (empty: all in the question's words)."""
    problems = []
    for name in kinds:
        value = args.get(name)
        if isinstance(value, str) and (bad := vocabulary.foreign(value)):
            listed = ", ".join(repr(w) for w in bad[:6]) + (" ..." if len(bad) > 6 else "")
            problems.append(
                f"{tool}.{name} uses words that are not in the question ({listed}): "
                "write it with the question's own words"
            )
    return problems


# words that shape a question but name nothing to look for
ASKING_WORDS = frozenset(
    [
        "what",
        "when",
        "where",
        "which",
        "who",
        "whom",
        "whose",
        "why",
        "how",
        "many",
        "much",
        "does",
        "do",
        "did",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "am",
        "can",
        "could",
        "would",
        "will",
        "should",
        "shall",
        "may",
        "might",
        "you",
        "me",
        "i",
        "we",
        "us",
        "my",
        "our",
        "your",
        "please",
        "tell",
        "show",
        "give",
        "find",
        "see",
        "seen",
        "there",
        "here",
        "time",
        "times",
        "moment",
        "moments",
        "point",
        "part",
        "video",
        "clip",
        "scene",
        "happen",
        "happens",
        "happening",
        "it",
        "they",
        "them",
    ]
)


def content_words(question: str) -> list[str]:
    """The question's words that name something to look for (asking and function words dropped)."""
    return [w for w in words(question) if w.lower() not in ASKING_WORDS and w.lower() not in FUNCTION_WORDS]


def question_arguments(tool: str, kinds: dict[str, str], question: str) -> dict[str, Any]:
    """Free-text arguments filled from the question alone (the planner's fallback).

    A ``question`` field gets the question itself; a ``phrase`` its content words ("When does the
    woman pick up the phone?" -> "woman pick up phone"); ``objects`` the same as one
    GroundingDINO phrase ("dog."). Falls back to the whole question when nothing is left.
    """
    content = " ".join(content_words(question))[:280].strip() or question.strip()[:280] or tool
    args: dict[str, Any] = {}
    for name, kind in kinds.items():
        if name == "question":
            args[name] = question.strip()[:480] or content
        elif kind == "objects":
            args[name] = content.rstrip(".") + "."
        else:
            args[name] = content
    return args
