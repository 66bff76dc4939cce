"""VideoQA adapters over small fixtures in each benchmark's official layout, and the metrics.

The fixtures (``tests/evals/fixtures/<benchmark>/``) are text only; each test copies its
benchmark's folder to a temporary directory and puts a tiny placeholder mp4 where the
benchmark keeps its videos. WUPS values are worked out by hand from WordNet 3.0's Wu-Palmer
similarities of first synsets (table below) and skip, saying why, where WordNet is missing.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.synth import write_video
from vidagent.core.options import LETTERS
from vidagent.evals.tasks import (
    TASK_REGISTRY,
    TASKS,
    LLMJudge,
    Sample,
    Task,
    TaskError,
    WordNetUnavailable,
    _wordnet_dir,
    egoschema_submission,
    exact_match,
    load_stopwords,
    load_task,
    load_wordnet,
    nextqa_oe_scores,
    normalize_answer,
    parse_letter,
    percentile,
    read_srt,
    remove_stop,
    task,
    wup,
    wups,
)

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="module")
def placeholder_mp4(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """The bytes of a tiny real mp4 (32x32, 3 frames), copied wherever a fixture needs a video."""
    path = write_video(
        tmp_path_factory.mktemp("placeholder") / "tiny.mp4", size=(32, 32), fps=10, seconds=0.3
    )
    return path.read_bytes()


@pytest.fixture
def bench(tmp_path: Path, placeholder_mp4: bytes):
    """``bench(name, *videos)``: a copy of fixtures/<name> with placeholder mp4s at the given paths."""

    def make(name: str, *videos: str) -> Path:
        root = tmp_path / name
        shutil.copytree(FIXTURES / name, root)
        for video in videos:
            (root / video).parent.mkdir(parents=True, exist_ok=True)
            (root / video).write_bytes(placeholder_mp4)
        return root

    return make


def by_id(task: Task) -> dict[str, Sample]:
    return {s.id: s for s in task.samples}


# --- NExT-QA ----------------------------------------------------------------------------------------
def test_nextqa_multiple_choice(bench) -> None:
    root = bench("nextqa", "NExTVideo/1106/4010069381.mp4")
    task = load_task("nextqa", root)
    assert task.name == "nextqa" and not task.open_ended and task.settings == {"split": "val"}
    assert [s.id for s in task.samples] == ["4010069381_6", "4010069381_9", "7771650716_2"]
    how, after, count = task.samples
    assert how.options == [
        "roll the handle",
        "tap their feet",
        "strum the string",
        "hit with sticks",
        "pat with hand",
    ]
    assert (
        how.options[how.answer] == "hit with sticks"
        and how.question == "how do the two man play the instrument"
    )
    assert (how.category, how.sub) == ("causal", {"type": "CH"})
    assert (after.category, after.options[after.answer]) == ("temporal", "look at the other man")
    assert (count.category, count.sub["type"], count.options[count.answer]) == ("descriptive", "DC", "three")
    # videos through map_vid_vidorID.json; a missing one still gets its expected path
    assert how.video == root / "NExTVideo" / "1106" / "4010069381.mp4" and how.video.is_file()
    assert count.video == root / "NExTVideo" / "0068" / "7771650716.mp4" and not count.video.exists()
    assert [s.id for s in load_task("nextqa", root / "val.csv").samples] == [s.id for s in task.samples]


def test_nextqa_open_ended(bench) -> None:
    task = load_task("nextqa-oe", bench("nextqa_oe", "videos/4882821564.mp4"))
    assert task.name == "nextqa-oe" and task.open_ended and task.score_text is not None
    samples = by_id(task)
    riding, how_many, holding = samples["4882821564_3"], samples["4882821564_5"], samples["6233408665_0"]
    assert riding.options is None and riding.answer == "riding a bike" and riding.category == "causal"
    assert riding.video.name == "4882821564.mp4" and riding.video.is_file()
    assert (how_many.answer, how_many.sub) == ("two", {"type": "DC"})
    assert holding.references == ["ball"] and riding.references == []


def test_nextqa_bad_files(bench, tmp_path: Path) -> None:
    root = bench("nextqa")
    with pytest.raises(TaskError, match=r"missing .*test\.csv"):
        load_task("nextqa", root, split="test")
    (root / "val.csv").write_text("video,question,answer,qid,type\n1,q,0,1,CW\n")
    with pytest.raises(TaskError, match=r"missing columns \['a0', 'a1', 'a2', 'a3', 'a4'\]"):
        load_task("nextqa", root)
    (root / "val.csv").write_text("video,question,answer,qid,type\n")  # header only: still checked
    with pytest.raises(TaskError, match="missing columns"):
        load_task("nextqa", root)
    (root / "val.csv").write_text("video,question,answer,qid,type,a0,a1,a2,a3,a4\n1,q,7,1,CW,a,b,c,d,e\n")
    with pytest.raises(TaskError, match=r"val\.csv row 1: .*answer 7 is not an option index"):
        load_task("nextqa", root)


# --- EgoSchema --------------------------------------------------------------------------------------
UIDS = [
    "001934bb-81bd-4cd8-a574-0472ef3f6678",
    "00b9a0de-c59e-49cb-a127-6081e2fb8c8e",
    "00f93e1e-cf4e-4835-88b4-4ad68216e86f",
]


def test_egoschema_subset_and_full(bench) -> None:
    root = bench("egoschema", f"videos/{UIDS[0]}.mp4")
    subset = load_task("egoschema", root)
    assert [s.id for s in subset.samples] == [UIDS[0], UIDS[2]] and subset.settings == {"split": "subset"}
    first = subset.samples[0]
    assert first.options[first.answer] == "C is cleaning dishes." and len(first.options) == 5
    assert first.video == root / "videos" / f"{UIDS[0]}.mp4" and first.video.is_file()
    assert subset.samples[1].options[subset.samples[1].answer] == "Knitting."
    full = load_task("egoschema", root, split="full")
    assert [s.id for s in full.samples] == UIDS
    assert [s.answer for s in full.samples] == [3, None, 2]  # the hidden answer stays hidden


def test_egoschema_submission_from_run_rows() -> None:
    rows = [  # as the runner writes them: prediction is the chosen option index
        {"id": UIDS[0], "prediction": 3, "correct": True},
        {"id": UIDS[1], "prediction": 0, "correct": None},
        {"id": UIDS[2], "prediction": None, "error": "VideoNotFound: ..."},
    ]
    assert egoschema_submission(rows) == f"q_uid,answer\n{UIDS[0]},3\n{UIDS[1]},0\n"
    assert egoschema_submission([]) == "q_uid,answer\n"


def test_egoschema_bad_files(bench) -> None:
    root = bench("egoschema")
    with pytest.raises(TaskError, match="must be 'subset' or 'full'"):
        load_task("egoschema", root, split="val")
    (root / "subset_answers.json").unlink()
    with pytest.raises(TaskError, match=r"subset's answers.*--split full"):
        load_task("egoschema", root)
    (root / "questions.json").write_text(json.dumps([{"q_uid": "x", "question": "q", "option 0": "a"}]))
    with pytest.raises(TaskError, match=r"questions\.json item 0: missing field 'option 1'"):
        load_task("egoschema", root, split="full")
    (root / "questions.json").write_text("[{")
    with pytest.raises(TaskError, match=r"questions\.json: not valid JSON"):
        load_task("egoschema", root, split="full")


# --- MVBench ----------------------------------------------------------------------------------------
def test_mvbench(bench) -> None:
    root = bench("mvbench", "video/star/Charades_segment/ZS9XR.mp4", "video/star/Charades_v1_480/YSKX3.mp4")
    task = load_task("mvbench", root)
    assert task.settings == {"subtasks": ["action_sequence", "object_shuffle"]}
    samples = by_id(task)
    assert list(samples) == ["action_sequence/0", "action_sequence/1", "object_shuffle/0"]
    cut, original, shuffle = samples.values()
    assert cut.options[cut.answer] == "Ate the medicine." and (cut.category, cut.sub) == (
        "action_sequence",
        {"aspect": "Action"},
    )
    assert cut.video.parent.name == "Charades_segment" and cut.span is None  # the release's clip: no span
    assert original.video.parent.name == "Charades_v1_480" and original.span == (
        4.0,
        13.5,
    )  # cut from the source
    assert original.options[original.answer] == "Put down the food."
    assert shuffle.sub == {"aspect": "Object"} and shuffle.answer == 1 and len(shuffle.options) == 3
    assert shuffle.video == root / "video" / "perception" / "videos" / "video_10042.mp4"
    assert [s.id for s in load_task("mvbench", root, split="object_shuffle").samples] == ["object_shuffle/0"]


def test_mvbench_bad_files(bench, tmp_path: Path) -> None:
    root = bench("mvbench")
    with pytest.raises(TaskError, match="unknown MVBench subtask 'moving_colour'"):
        load_task("mvbench", root, split="moving_colour")
    with pytest.raises(TaskError, match="no MVBench subtask files"):
        load_task("mvbench", tmp_path / "empty")
    path = root / "json" / "object_shuffle.json"
    item = json.loads(path.read_text())[0]
    path.write_text(json.dumps([{**item, "answer": "Under the fourth object."}]))
    with pytest.raises(
        TaskError, match=re.escape("object_shuffle.json item 0: answer 'Under the fourth object.' is not one")
    ):
        load_task("mvbench", root, split="object_shuffle")
    path.write_text(json.dumps([{"video": "v.mp4", "question": "q", "answer": "a"}]))
    with pytest.raises(TaskError, match="item 0: missing field 'candidates'"):
        load_task("mvbench", root, split="object_shuffle")


# --- Video-MME --------------------------------------------------------------------------------------
def test_read_srt_keeps_only_the_spoken_text() -> None:
    text = read_srt(FIXTURES / "videomme_json" / "subtitle" / "fFjv93ACGo8.srt")
    assert text == "In Germany the first trees\nwere hung with apples and candles."


def test_videomme_official_json_layout(bench) -> None:
    root = bench("videomme_json", "data/fFjv93ACGo8.mp4")
    task = load_task("videomme", root)
    assert [s.id for s in task.samples] == ["001-1", "001-2", "601-3"]
    counting, genre, travel = task.samples
    assert counting.options == ["Apples.", "Candles.", "Berries.", "The three kinds are of the same number."]
    assert counting.answer == 2 and genre.answer == 0 and travel.answer == 3
    assert (counting.category, travel.category) == ("short", "long")
    assert counting.sub == {
        "duration": "short",
        "domain": "Knowledge",
        "sub_category": "Humanity & History",
        "task_type": "Counting Problem",
    }
    assert counting.video == root / "data" / "fFjv93ACGo8.mp4" and counting.video.is_file()
    assert counting.context is None and counting.prompt == counting.question
    with_subtitles = load_task("videomme", root, subtitles=True)
    assert with_subtitles.settings["subtitles"] is True
    first = with_subtitles.samples[0]
    assert first.context == (
        "This video's subtitles are listed below:\n"
        "In Germany the first trees\nwere hung with apples and candles."
    )
    assert first.prompt == f"{first.context}\n\nQuestion: {first.question}"
    assert with_subtitles.samples[2].context is None  # no .srt for that video


def test_videomme_jsonl_rows(bench) -> None:
    task = load_task("videomme", bench("videomme_jsonl"))
    assert [(s.id, s.answer, s.category, s.sub["task_type"]) for s in task.samples] == [
        ("301-1", 1, "medium", "Action Recognition"),
        ("302-2", 0, "medium", "Object Reasoning"),
    ]
    assert task.samples[0].options[1] == "Passes the ball." and task.samples[0].video.stem == "sNNSbnLQE-0"


def test_videomme_parquet(bench) -> None:
    pd = pytest.importorskip("pandas", reason="the parquet form needs pandas")
    pytest.importorskip("pyarrow", reason="the parquet form needs pyarrow")
    root = bench("videomme_jsonl")
    rows = [json.loads(line) for line in (root / "videomme.jsonl").read_text().splitlines() if line.strip()]
    (root / "videomme.jsonl").unlink()
    (root / "videomme").mkdir()
    pd.DataFrame(rows).to_parquet(root / "videomme" / "test-00000-of-00001.parquet")
    task = load_task("videomme", root)
    assert [(s.id, s.answer, s.options[s.answer]) for s in task.samples] == [
        ("301-1", 1, "Passes the ball."),
        ("302-2", 0, "The home team."),
    ]


def test_videomme_parquet_without_pandas_says_what_to_install(bench, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pandas", None)  # as if not installed: importing it raises ImportError
    root = bench("videomme_jsonl")
    (root / "videomme.jsonl").unlink()
    (root / "videomme").mkdir()
    (root / "videomme" / "test-00000-of-00001.parquet").write_bytes(b"PAR1")
    with pytest.raises(TaskError, match="needs pandas and pyarrow"):
        load_task("videomme", root)


def test_videomme_bad_files(bench, tmp_path: Path) -> None:
    with pytest.raises(TaskError, match="no Video-MME questions"):
        load_task("videomme", tmp_path / "nothing")
    root = bench("videomme_jsonl")
    row = json.loads((root / "videomme.jsonl").read_text().splitlines()[0])
    for change, message in [
        ({"answer": "E"}, "301-1: .*answer 'E' is not one of the option letters"),
        ({"answer": ""}, "answer '' is not one of the option letters"),
        ({"options": None}, "301-1: TypeError"),
    ]:
        (root / "videomme.jsonl").write_text(json.dumps({**row, **change}) + "\n")
        with pytest.raises(TaskError, match=message):
            load_task("videomme", root)
    (root / "videomme.jsonl").write_text(json.dumps({k: v for k, v in row.items() if k != "question"}) + "\n")
    with pytest.raises(TaskError, match="missing field 'question'"):
        load_task("videomme", root)
    (root / "videomme.jsonl").write_text(json.dumps(row) + "\n{oops\n")
    with pytest.raises(TaskError, match=r"videomme\.jsonl:2: not valid JSON"):
        load_task("videomme", root)


# --- ActivityNet-QA ---------------------------------------------------------------------------------
def test_activitynet_qa(bench) -> None:
    root = bench("activitynet_qa", "videos/v_1QIUV7WYKXg.mp4", "videos/v_wAqDPnY3kCg.mp4")
    task = load_task("activitynet-qa", root)
    assert task.name == "activitynet-qa" and task.open_ended and task.settings == {"split": "test"}
    assert [(s.id, s.answer, s.category) for s in task.samples] == [
        ("v_1QIUV7WYKXg_1", "no", "yes_no"),
        ("v_1QIUV7WYKXg_6", "Blue", "color"),
        ("v_wAqDPnY3kCg_3", "2", "number"),
    ]
    # the name with or without its v_ prefix finds videos/v_<name>.mp4
    assert [s.video.name for s in task.samples] == ["v_1QIUV7WYKXg.mp4"] * 2 + ["v_wAqDPnY3kCg.mp4"]
    assert all(s.video.is_file() for s in task.samples)
    colour = task.samples[1]
    assert task.score_text(colour, "The blue.") == {"exact": 1.0}
    assert task.score_text(colour, "dark blue") == {"exact": 0.0}


def test_activitynet_qa_bad_files(bench) -> None:
    root = bench("activitynet_qa")
    with pytest.raises(TaskError, match=r"missing .*val_q\.json"):
        load_task("activitynet-qa", root, split="val")
    answers = json.loads((root / "test_a.json").read_text())
    (root / "test_a.json").write_text(json.dumps(answers[:2]))
    with pytest.raises(TaskError, match=r"test_a\.json has no answer for v_wAqDPnY3kCg_3"):
        load_task("activitynet-qa", root)
    (root / "test_a.json").write_text(json.dumps([{"answer": "no", "type": 3}]))
    with pytest.raises(TaskError, match=r"test_a\.json: missing field 'question_id'"):
        load_task("activitynet-qa", root)
    (root / "test_q.json").write_text('[{"video_name": "x", "question_id": 1,}]')
    with pytest.raises(TaskError, match=r"test_q\.json: not valid JSON"):
        load_task("activitynet-qa", root)


# --- generic JSONL ----------------------------------------------------------------------------------
def test_jsonl(bench) -> None:
    root = bench("jsonl", "clips/kitchen.mp4")
    task = load_task("jsonl", root)
    assert task.name == "jsonl" and not task.open_ended and task.score_text is None
    first, second, third = task.samples
    assert (first.answer, first.category, first.video) == (1, "order", root / "clips" / "kitchen.mp4")
    assert (second.answer, second.sub) == (1, {"room": "kitchen"})  # answer given as its letter
    assert (third.answer, third.category) == (2, "all")  # answer given as the option text
    assert third.video == root / "garden.mp4"
    assert [s.id for s in load_task("jsonl", root / "questions.jsonl").samples] == [
        "kitchen-1",
        "kitchen-2",
        "garden-1",
    ]


def test_jsonl_open_ended(tmp_path: Path) -> None:
    path = tmp_path / "open.jsonl"
    path.write_text(
        json.dumps({"id": "a", "video": "/abs/v.mp4", "question": "What colour?", "answer": "Red"}) + "\n"
    )
    task = load_task("jsonl", path)
    assert task.open_ended and task.samples[0].video == Path("/abs/v.mp4") and task.samples[0].options is None
    assert task.score_text(task.samples[0], "red.") == {"exact": 1.0}
    assert task.score_text(task.samples[0], "dark red") == {"exact": 0.0}


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (['{"id": "a", "video": "v.mp4"'], r"bad\.jsonl:1: JSONDecodeError"),
        (
            ['{"id": "a", "video": "v.mp4", "answer": 0, "options": ["x", "y"]}'],
            r"bad\.jsonl:1: KeyError: 'question'",
        ),
        (
            ['{"id": "a", "video": "v.mp4", "question": "q", "options": ["x", "y"], "answer": 2}'],
            "answer index 2 out of range",
        ),
        (
            ['{"id": "a", "video": "v.mp4", "question": "q", "options": ["x", "y"], "answer": "z"}'],
            "answer 'z' is neither an option, its index nor its letter",
        ),
        (
            [
                '{"id": "a", "video": "v.mp4", "question": "q", "options": ["x", "y"], "answer": "x"}',
                "",
                '{"id": "b", "video": "v.mp4", "question": "q", "answer": "x"}',
            ],
            r"bad\.jsonl:3: mixes open-ended",
        ),
        (
            [
                '{"id": "a", "video": "v.mp4", "question": "q", "answer": "x"}',
                '{"id": "a", "video": "w.mp4", "question": "r", "answer": "y"}',
            ],
            "sample id 'a' appears twice",
        ),
    ],
)
def test_jsonl_bad_files(tmp_path: Path, lines: list[str], message: str) -> None:
    (tmp_path / "bad.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(TaskError, match=message):
        load_task("jsonl", tmp_path)


def test_jsonl_folder_needs_exactly_one_file(tmp_path: Path) -> None:
    with pytest.raises(TaskError, match=r"expected exactly one \.jsonl file, found 0"):
        load_task("jsonl", tmp_path)
    with pytest.raises(TaskError, match=r"missing .*nope\.jsonl"):
        load_task("jsonl", tmp_path / "nope.jsonl")
    (tmp_path / "a.jsonl").write_text("")
    (tmp_path / "b.jsonl").write_text("")
    with pytest.raises(TaskError, match="found 2"):
        load_task("jsonl", tmp_path)


def test_unknown_task_names_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(TaskError, match=r"unknown task 'nextqa-mc' .*nextqa, nextqa-oe, egoschema"):
        load_task("nextqa-mc", tmp_path)


def test_every_registered_task_says_what_it_is() -> None:
    names = list(TASK_REGISTRY)  # the tasks there were before they registered themselves, in that order
    assert names == [
        *("nextqa", "nextqa-oe", "egoschema", "mvbench", "videomme", "activitynet-qa"),
        *("jsonl", "synthetic", "routing", "real"),
    ]
    assert tuple(names) == TASKS
    for name, registered in TASK_REGISTRY.items():
        assert registered.name == name and registered.help.strip() and "\n" not in registered.help, name
    assert [name for name, registered in TASK_REGISTRY.items() if not registered.needs_data] == ["routing"]
    with pytest.raises(ValueError, match="registered twice"):
        task("nextqa", help="again")(lambda data, options: load_task("jsonl", data))


def test_task_head_keeps_order_and_records_the_limit() -> None:
    samples = [Sample(id=str(i), video=Path(f"{i}.mp4"), question="q") for i in range(5)]
    task = Task("t", samples, settings={"split": "val"})
    head = task.head(2)
    assert [s.id for s in head.samples] == ["0", "1"] and head.settings == {"split": "val", "limit": 2}
    assert task.head(None) is task


# --- metrics ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("reply", "n_options", "expected"),
    [
        ("B", 5, 1),
        ("B.", 5, 1),
        ("(C)", 5, 2),
        ("D) a dog", 5, 3),
        ("A: the red square", 3, 0),
        ("  E. The cup.", 5, 4),
        ("The answer is D", 5, 3),
        ("the answer is (b)", 5, None),
        ("Answer: (C)", 5, 2),
        ("The answer is: B", 5, 1),
        ("I think the correct option is A.", 4, 0),
        ("Banana", 5, None),
        ("A cat sits on the mat", 5, None),
        ("I don't know", 5, None),
        ("E", 4, None),
        ("The answer is E", 4, None),
        ("The answer is B, not option C", 5, None),
        ("", 5, None),
        ("The answer is a dog", 5, None),
        ("b", 5, None),
    ],
)
def test_parse_letter_is_strict(reply: str, n_options: int, expected: int | None) -> None:
    assert parse_letter(reply, n_options) == expected


def test_parse_letter_reads_every_letter_of_the_options() -> None:
    assert [parse_letter(f"({letter})", 26) for letter in LETTERS] == list(range(26))


@pytest.mark.parametrize(
    ("text", "normal"),
    [
        ("The Cat!", "cat"),
        ("  a   red\tball. ", "red ball"),
        ("An apple, the end", "apple end"),
        ("dog's toy", "dog s toy"),
        ("Theatre", "theatre"),
        ("3 people", "3 people"),
    ],
)
def test_normalize_answer(text: str, normal: str) -> None:
    assert normalize_answer(text) == normal


def test_exact_match_against_any_reference() -> None:
    assert exact_match("A Ball.", ["toy", "ball"]) == 1.0
    assert exact_match("red ball", ["ball"]) == 0.0
    assert exact_match("anything", []) == 0.0


def test_the_judge_prompt_reads_as_it_did_in_code() -> None:
    """prompts/judge.yaml renders the very messages LLMJudge built in code (judge@v1)."""
    judge = LLMJudge(SimpleNamespace(name="j"))
    assert judge.tag == "judge@v1"
    assert judge.messages("What falls?", "a ball", " The ball. ") == [
        {
            "role": "system",
            "content": "You grade answers to questions about videos. Compare the predicted answer with the "
            "correct answer and decide whether they mean the same thing; synonyms and paraphrases count as a "
            "match, extra detail is fine unless it contradicts the correct answer. Reply with JSON only: "
            '{"pred": "yes" or "no", "score": an integer from 0 (unrelated) to 5 (same meaning)}.',
        },
        {
            "role": "user",
            "content": "Question: What falls?\nCorrect answer: a ball\nPredicted answer:  The ball. \n"
            "Does the predicted answer match the correct answer?",
        },
    ]


def test_percentile_matches_numpy_linear() -> None:
    values = [4.0, 1.0, 3.0, 2.0]
    assert percentile(values, 50) == 2.5
    assert percentile(values, 90) == pytest.approx(3.7)  # 1 + 0.9 * 3 = position 2.7: 3 + 0.7 * (4 - 3)
    assert (percentile(values, 0), percentile(values, 100)) == (1.0, 4.0)
    assert percentile([7.0], 95) == 7.0 and percentile([], 50) is None


# --- WUPS (needs WordNet 3.0) -------------------------------------------------------------------------
# Wu-Palmer similarity of the first noun synsets in WordNet 3.0: 2 * depth(lcs) / (depth(a) + depth(b)).
WUP = {
    ("dog", "cat"): 6 / 7,  # dog.n.01, cat.n.01: lcs carnivore.n.01
    ("doll", "toy"): 12 / 13,  # doll.n.01, plaything.n.01 (its hypernym)
    ("ball", "toy"): 2 / 3,
    ("man", "woman"): 2 / 3,  # lcs adult.n.01
    ("dog", "toy"): 8 / 15,
    ("doll", "cat"): 8 / 21,
    ("dog", "run"): 0.1,  # run.n.01 (a score in baseball)
    ("cat", "run"): 0.08,
}


@pytest.fixture(scope="module")
def wordnet():
    try:
        return load_wordnet()
    except WordNetUnavailable as exc:
        pytest.skip(f"WordNet 3.0 unavailable ({exc})")


def test_wordnet_folder_from_the_environment_is_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VIDAGENT_WORDNET", str(tmp_path))
    with pytest.raises(
        WordNetUnavailable, match=r"VIDAGENT_WORDNET=.* is not a WordNet dict folder \(no data\.noun"
    ):
        _wordnet_dir()


def test_wup_values_of_wordnet_3_0(wordnet) -> None:
    for (a, b), value in WUP.items():
        assert wup(a, b, 0.0, wordnet) == pytest.approx(value), (a, b)
        assert wup(b, a, 0.0, wordnet) == pytest.approx(value), (b, a)
    assert wup("dog", "cat", 0.9, wordnet) == pytest.approx(0.1 * 6 / 7)  # below alpha: times 0.1
    assert wup("doll", "toy", 0.9, wordnet) == pytest.approx(12 / 13)  # above alpha: as is
    assert wup("xyzzy", "cat", 0.0, wordnet) == 0.0 and wup("xyzzy", "xyzzy", 0.9, wordnet) == 1.0


@pytest.mark.parametrize(
    ("pred", "truth", "at0", "at9"),
    [
        ("dog", "cat", 6 / 7, 0.6 / 7),
        ("doll", "toy", 12 / 13, 12 / 13),
        ("ball", "toy", 2 / 3, 0.2 / 3),
        # each word's best match, multiplied: dog->cat 6/7 (> dog-toy 8/15), doll->toy 12/13 (> doll-cat 8/21)
        ("dog doll", "cat toy", 6 / 7 * 12 / 13, 0.6 / 7 * 12 / 13),
        # the smaller direction: dog->dog is 1, but cat->dog only 6/7
        ("dog", "dog cat", 6 / 7, 0.6 / 7),
        ("dog xyzzy", "cat", 6 / 7, 0.6 / 7),  # a word with no synset is skipped
        ("xyzzy", "cat", 0.0, 0.0),  # nothing matched at all
        ("", "cat", 0.0, 0.0),
        ("man walk", "man walk", 1.0, 1.0),
    ],
)
def test_wups_by_hand(wordnet, pred: str, truth: str, at0: float, at9: float) -> None:
    assert wups(pred, truth, 0.0, wordnet) == pytest.approx(at0)
    assert wups(pred, truth, 0.9, wordnet) == pytest.approx(at9)


def test_nextqa_oe_scores(wordnet) -> None:
    stop = load_stopwords(None)  # NExT-OE's list
    assert remove_stop("The dogs are running", stop, wordnet) == "dog run"
    # "dog run" vs "cat run": dog->cat 6/7 (dog-run only 0.1), run->run 1
    scores = nextqa_oe_scores("The dogs are running", "a cat running", "CW", [], stop, wordnet)
    assert scores == pytest.approx({"wups0": 6 / 7, "wups9": 0.6 / 7, "exact": 0.0})
    # best over the answer and the extra reference answers
    assert nextqa_oe_scores("a doll", "ball", "DO", ["toy"], stop, wordnet) == pytest.approx(
        {"wups0": 12 / 13, "wups9": 12 / 13, "exact": 0.0}
    )
    # counting and binary questions: exact match after lemmatising
    assert nextqa_oe_scores("Two.", "two", "DC", [], stop, wordnet) == {
        "wups0": 1.0,
        "wups9": 1.0,
        "exact": 1.0,
    }
    assert nextqa_oe_scores("three", "two", "DC", [], stop, wordnet) == {
        "wups0": 0.0,
        "wups9": 0.0,
        "exact": 0.0,
    }


def test_nextqa_oe_task_scores_with_references(bench, wordnet) -> None:
    task = load_task("nextqa-oe", bench("nextqa_oe"))
    samples = by_id(task)
    assert task.score_text(samples["6233408665_0"], "a ball") == {"wups0": 1.0, "wups9": 1.0, "exact": 1.0}
    assert task.score_text(samples["4882821564_3"], "rides bikes") == {
        "wups0": 1.0,
        "wups9": 1.0,
        "exact": 1.0,
    }
    assert task.score_text(samples["4882821564_5"], "2") == {"wups0": 0.0, "wups9": 0.0, "exact": 0.0}
