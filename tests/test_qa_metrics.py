"""QA metrics against their official definitions: SQuAD v1.1 written out here as its evaluate-v1.1.py has
it, and the CMRC 2018 (DRCD) character-level scores on cases derived by hand.

Lecture 2.2 (outputs: copying a span); run with `pytest -m outputs`.
"""
import re
import string
from collections import Counter

import pytest

from minibert.finetune.qa.data import Answer, QAExample, read_drcd, read_squad
from minibert.finetune.qa.metrics import (chinese_exact_match, chinese_f1, chinese_scores, exact_match, f1,
                                          mixed_segmentation, normalize_answer, squad_scores)

pytestmark = pytest.mark.outputs


# ---- The official SQuAD v1.1 definitions (evaluate-v1.1.py), as the reference ----

def official_normalize_answer(s):
    def remove_articles(text):
        return re.sub(r"\b(a|an|the)\b", " ", text)

    def white_space_fix(text):
        return " ".join(text.split())

    def remove_punc(text):
        exclude = set(string.punctuation)
        return "".join(ch for ch in text if ch not in exclude)

    return white_space_fix(remove_articles(remove_punc(s.lower())))


def official_f1_score(prediction, ground_truth):
    prediction_tokens = official_normalize_answer(prediction).split()
    ground_truth_tokens = official_normalize_answer(ground_truth).split()
    common = Counter(prediction_tokens) & Counter(ground_truth_tokens)
    num_same = sum(common.values())
    if num_same == 0:
        return 0
    precision = 1.0 * num_same / len(prediction_tokens)
    recall = 1.0 * num_same / len(ground_truth_tokens)
    return (2 * precision * recall) / (precision + recall)


def official_exact_match_score(prediction, ground_truth):
    return official_normalize_answer(prediction) == official_normalize_answer(ground_truth)


@pytest.mark.parametrize("prediction, gold, em, f1_value", [
    ("the Broncos", "Broncos", 1, 1),
    ("Denver Broncos", "Broncos", 0, 2 / 3),  # P = 1/2, R = 1
    ("Broncos.", "broncos", 1, 1),
    ("an apple a day", "Apple day", 1, 1),
    ("Broncos Broncos", "Broncos", 0, 2 / 3),  # words counted with repeats: 1 shared of 2
    ("1,000", "1000", 1, 1),
    ("the-end", "end", 0, 0),  # punctuation goes first: "theend" is no article
    ("theater", "ater", 0, 0),
    ("a", "the", 1, 0),  # both normalise to "": equal, yet v1.1's F1 is 0 (no shared word)
    ("", "Broncos", 0, 0),
    ("Carolina Panthers won", "the Carolina Panthers", 0, 0.8),  # P = 2/3, R = 1
])
def test_squad_known_cases(prediction, gold, em, f1_value):
    assert exact_match(prediction, gold) == em == official_exact_match_score(prediction, gold)
    assert f1(prediction, gold) == pytest.approx(f1_value) and f1_value == pytest.approx(
        official_f1_score(prediction, gold))


def test_squad_matches_the_official_script_on_real_near_misses(data_dir):
    """Predictions a word too long or too short, around every XQuAD answer: the same EM and F1 as the
    official functions, to the last bit."""
    data = read_squad(data_dir / "xquad-squad11-dev-subset" / "xquad.en.json")
    for example in data:
        answer = example.answers[0]
        before, after = example.context[:answer.start].split(), example.context[answer.end:].split()
        words = answer.text.split()
        for prediction in [" ".join(before[-1:] + words), " ".join(words + after[:1]), " ".join(words[1:]),
                           " ".join(words[:-1]), answer.text.upper()]:
            assert normalize_answer(prediction) == official_normalize_answer(prediction)
            assert exact_match(prediction, answer.text) == official_exact_match_score(prediction, answer.text)
            assert f1(prediction, answer.text) == official_f1_score(prediction, answer.text)


def test_squad_scores_take_the_best_gold_and_count_missing_as_zero():
    examples = [QAExample("1", "q", "c", [Answer("Carolina Panthers", 0), Answer("Panthers", 9)]),
                QAExample("2", "q", "c", [Answer("Denver Broncos", 0)]),
                QAExample("3", "q", "c", [Answer("Santa Clara", 0)])]
    predictions = {"1": "the Panthers", "2": "Broncos"}  # "3" unanswered
    with pytest.warns(UserWarning, match="1 of 3 questions have no prediction"):
        scores = squad_scores(predictions, examples)
    # EM: 1 + 0 + 0; F1: 1 + 2/3 (P = 1, R = 1/2) + 0
    assert scores == pytest.approx({"exact_match": 100 / 3, "f1": 100 * (1 + 2 / 3) / 3})
    with pytest.raises(ValueError, match="no gold answer"):
        squad_scores({"x": "a"}, [QAExample("x", "q", "c", [])])


# ---- Chinese: CMRC 2018's script, cases worked out by hand ----

def test_mixed_segmentation():
    assert mixed_segmentation("我在2018年用BERT-base") == ["我", "在", "2018", "年", "用", "bert", "-", "base"]
    assert mixed_segmentation("我在2018年用BERT-base", remove_punctuation=True) == ["我", "在", "2018", "年", "用",
                                                                              "bertbase"]
    assert mixed_segmentation(" 「聖經」 ") == ["「", "聖", "經", "」"]


@pytest.mark.parametrize("prediction, gold, em, f1_value", [
    ("天主教會", "天主教", 0, 6 / 7),  # 3 shared of 4 predicted and 3 gold: P = 3/4, R = 1
    ("北京的大學", "北京大學", 0, 4 / 9),  # longest common SUBSTRING 2 ("北京"): P = 2/5, R = 2/4; a subsequence would give 8/9
    ("「聖經」", "聖經", 1, 1),  # the script's punctuation goes
    ("2018年", "2018 年", 0, 1),  # EM keeps inner spaces; F1 segments: "2018", "年" both
    ("BERT模型", "bert", 0, 0.5),  # "bert" one token, 模, 型: P = 1/3, R = 1
    ("Bert", "bert", 1, 1),
    ("，", "。", 1, 0),  # both empty after removing punctuation: equal, but no shared token
    ("長老制", "主教制", 0, 1 / 3),  # "制" shared: P = R = 1/3
])
def test_chinese_known_cases(prediction, gold, em, f1_value):
    assert chinese_exact_match(prediction, gold) == em
    assert chinese_f1(prediction, gold) == pytest.approx(f1_value)


def test_chinese_scores(data_dir):
    examples = [QAExample("1", "q", "c", [Answer("歐洲", 0), Answer("歐洲大陸", 0)]),
                QAExample("2", "q", "c", [Answer("因信稱義", 0)])]
    scores = chinese_scores({"1": "歐洲大陸", "2": "稱義"}, examples)
    assert scores == pytest.approx({"exact_match": 50.0, "f1": 100 * (1 + 2 / 3) / 2})  # "稱義": P = 1, R = 1/2
    dev = read_drcd(data_dir / "drcd" / "DRCD_dev.json")
    assert chinese_scores({e.id: e.answers[0].text for e in dev}, dev) == {"exact_match": 100.0, "f1": 100.0}
    assert chinese_scores({e.id: e.answers[0].text[:-1] for e in dev}, dev)["exact_match"] < 10
