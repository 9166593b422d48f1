"""The QA readers on the shared files, the homework's CSV writer, and the split by article.

Lecture 2.2 (outputs: copying a span); run with `pytest -m outputs`. The counts are those of each folder's
SOURCE.md; a file we break on purpose must give a report or an error naming it, never a crash.
"""
import json

import pytest
import torch

from minibert.finetune.qa.data import (Answer, read_drcd, read_hw7, read_hw7_submission, read_squad,
                                       split_by_title, write_hw7_submission)

pytestmark = pytest.mark.outputs


@pytest.mark.parametrize("name", ["xquad.en.json", "xquad.zh.json"])
def test_xquad_counts(data_dir, name):
    data = read_squad(data_dir / "xquad-squad11-dev-subset" / name)
    assert (len({e.title for e in data}), data.num_paragraphs, len(data)) == (48, 240, 1190)  # SOURCE.md
    assert all(len(e.answers) == 1 for e in data) and data.problems == []
    assert all(e.context[a.start:a.end] == a.text for e in data for a in e.answers)


def test_xquad_first_question_is_squads(data_dir):
    example = read_squad(data_dir / "xquad-squad11-dev-subset" / "xquad.en.json")[0]
    assert example.id == "56beb4343aeaaa14008c925b"  # SQuAD v1.1 dev ids are kept
    assert example.title == "Super_Bowl_50"
    assert example.question == "How many points did the Panthers defense surrender?"
    assert example.answers == [Answer("308", 34)]


@pytest.mark.parametrize("name, articles, questions", [("DRCD_dev.json", 383, 3524), ("DRCD_test.json", 378, 3493)])
def test_drcd_counts(data_dir, name, articles, questions):
    data = read_drcd(data_dir / "drcd" / name)
    assert (len({e.title for e in data}), data.num_paragraphs, len(data)) == (articles, 1000, questions)
    assert data.problems == []  # SOURCE.md: every span matches; here every answer, not only the first
    assert sum(len(e.answers) for e in data) == 2 * questions  # DRCD: an annotator's answer and a second one


def test_hw7_counts_and_inclusive_end(data_dir):
    dev = read_hw7(data_dir / "ntu-ml2023-hw7-drcd" / "hw7_dev.json")
    assert (len(dev), dev.num_paragraphs, dev.problems) == (2863, 1255, [])
    raw = json.loads((data_dir / "ntu-ml2023-hw7-drcd" / "hw7_dev.json").read_text(encoding="utf-8"))
    first = raw["questions"][0]  # "200", answer_start 199, answer_end 201: three characters, end inclusive
    assert (first["answer_text"], first["answer_start"], first["answer_end"]) == ("200", 199, 201)
    assert dev[0].answers == [Answer("200", 199)] and dev[0].answers[0].end == 202
    assert dev[0].context == raw["paragraphs"][515]
    for example, item in zip(dev, raw["questions"]):  # every one: end + 1 is our exclusive end
        assert example.answers[0].end == item["answer_end"] + 1
        assert example.context[example.answers[0].start:item["answer_end"] + 1] == item["answer_text"]


def test_hw7_test_is_unlabeled(data_dir):
    test = read_hw7(data_dir / "ntu-ml2023-hw7-drcd" / "hw7_test.json")
    assert len(test) == 3524 and all(e.answers == [] for e in test)
    assert test.num_paragraphs == 1000  # the file lists 1,606 paragraphs; its questions use 1,000 of them
    assert [e.id for e in test[:3]] == ["0", "1", "2"]


def write_json(path, value):
    path.write_text(json.dumps(value, ensure_ascii=False), encoding="utf-8")
    return path


def test_mismatched_answers_are_reported_not_fatal(tmp_path):
    context = "Denver Broncos won Super Bowl 50."
    squad = {"data": [{"title": "t", "paragraphs": [{"context": context, "qas": [
        {"id": "good", "question": "Who won?", "answers": [{"text": "Denver Broncos", "answer_start": 0}]},
        {"id": "bad", "question": "Which?", "answers": [{"text": "Super Bowl", "answer_start": 18},
                                                        {"text": "Super Bowl 50", "answer_start": 19}]}]}]}]}
    data = read_squad(write_json(tmp_path / "s.json", squad))
    assert [e.id for e in data] == ["good", "bad"]
    assert data[1].answers == [Answer("Super Bowl 50", 19)]  # the good answer of the question stays
    assert len(data.problems) == 1
    assert (data.problems[0].example_id, data.problems[0].found) == ("bad", " Super Bow")
    assert data.summary() == ("s.json: 2 questions on 1 paragraphs; 1 annotated answers do not match their "
                              "context (left out), e.g. question bad: answer 'Super Bowl' at 18, but the context has "
                              "' Super Bow'")

    hw7 = {"paragraphs": ["甲乙丙丁"], "questions": [
        {"id": 0, "paragraph_id": 0, "question_text": "q", "answer_text": "乙丙", "answer_start": 1, "answer_end": 2},
        {"id": 1, "paragraph_id": 0, "question_text": "q", "answer_text": "乙丙", "answer_start": 1, "answer_end": 3},
        {"id": 2, "paragraph_id": 0, "question_text": "q", "answer_text": "丙丁", "answer_start": 1, "answer_end": 2}]}
    data = read_hw7(write_json(tmp_path / "h.json", hw7))
    assert [e.answers for e in data] == [[Answer("乙丙", 1)], [], []]
    assert [(p.example_id, p.found) for p in data.problems] == [("1", "乙丙丁"), ("2", "乙丙")]


def test_malformed_files_name_the_file_and_the_format(tmp_path):
    (tmp_path / "bad.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad\.json is not UTF-8 JSON.*expected SQuAD JSON"):
        read_squad(tmp_path / "bad.json")
    with pytest.raises(ValueError, match=r"x\.json: article 0, paragraph 0 has no field 'context'"):
        read_squad(write_json(tmp_path / "x.json", {"data": [{"title": "t", "paragraphs": [{"qas": []}]}]}))
    with pytest.raises(ValueError, match=r"h\.json: question 0 has 'paragraph_id' = '3', expected int"):
        read_hw7(write_json(tmp_path / "h.json", {"paragraphs": [], "questions": [{"id": 0, "paragraph_id": "3"}]}))
    with pytest.raises(ValueError, match=r"paragraph_id 3, but the file has 1 paragraphs"):
        read_hw7(write_json(tmp_path / "h.json", {"paragraphs": ["p"], "questions": [
            {"id": 0, "paragraph_id": 3, "question_text": "q"}]}))
    with pytest.raises(ValueError, match=r"s\.json: the file has no field 'data'"):
        read_squad(write_json(tmp_path / "s.json", {"questions": []}))  # a homework file given to the SQuAD reader
    with pytest.raises(FileNotFoundError, match="no QA file at"):
        read_hw7(tmp_path / "missing.json")


def test_submission_round_trip_and_refusal_to_overwrite(tmp_path):
    predictions = {"0": "200", "1": "嚇阻鳥群", "2": 'a "quoted"\nanswer', "3": ""}
    path = write_hw7_submission(tmp_path / "pred.csv", predictions)
    assert path.read_text(encoding="utf-8").split("\n")[:3] == ["ID,Answer", "0,200", "1,嚇阻鳥群"]
    assert read_hw7_submission(path) == predictions
    with pytest.raises(FileExistsError, match="overwrite=True"):
        write_hw7_submission(path, {"0": "other"})
    assert read_hw7_submission(path) == predictions  # untouched
    write_hw7_submission(path, [("0", "1,000,000"), ("1", "甲，乙")], overwrite=True)
    # the homework deletes ASCII commas (its Kaggle answers were processed the same way); "，" is not one
    assert path.read_text(encoding="utf-8") == "ID,Answer\n0,1000000\n1,甲，乙\n"


def test_split_by_title_keeps_articles_whole(data_dir):
    data = read_squad(data_dir / "xquad-squad11-dev-subset" / "xquad.en.json")
    split = split_by_title(data, 2 / 3, torch.Generator().manual_seed(0))
    assert (len(split.train_titles), len(split.test_titles)) == (32, 16)
    assert not {e.title for e in split.train} & {e.title for e in split.test}
    assert not {e.context for e in split.train} & {e.context for e in split.test}
    assert sorted(e.id for e in split.train + split.test) == sorted(e.id for e in data)
    again = split_by_title(data, 2 / 3, torch.Generator().manual_seed(0))
    assert again.test_titles == split.test_titles
    other = split_by_title(data, 2 / 3, torch.Generator().manual_seed(1))
    assert other.test_titles != split.test_titles
    with pytest.raises(ValueError, match="no title|without one"):
        split_by_title([e for e in data][:1] + [type(data[0])("x", "q", "c", [], None)], 0.5, torch.Generator())
