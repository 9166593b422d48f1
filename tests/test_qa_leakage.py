"""The leakage guard on the real files: the homework's files are cut from DRCD.

Lecture 2.2 (outputs: copying a span); run with `pytest -m outputs`.
"""
import warnings
from functools import cache

import pytest

from minibert.finetune.qa.data import Answer, QAExample, read_drcd, read_hw7
from minibert.finetune.qa.leakage import DataLeakError, check_no_overlap, find_overlap

pytestmark = pytest.mark.outputs


@cache
def load(data_dir, folder, name):
    return (read_hw7 if name.startswith("hw7") else read_drcd)(data_dir / folder / name)


def test_hw7_dev_shares_171_paragraphs_with_drcd_test(data_dir):
    hw7_dev, drcd_test = load(data_dir, "ntu-ml2023-hw7-drcd", "hw7_dev.json"), load(data_dir, "drcd", "DRCD_test.json")
    with pytest.raises(DataLeakError) as caught:
        check_no_overlap(hw7_dev, drcd_test)
    message = str(caught.value)
    assert message.startswith("171 of the 1255 training paragraphs (") and "hw7_dev.json" in message
    assert "DRCD_test.json" in message and "605 training and 605 evaluation questions" in message
    overlap = find_overlap(hw7_dev, drcd_test)
    assert (overlap.paragraphs, overlap.train_questions, overlap.eval_questions) == (171, 605, 605)
    with pytest.warns(UserWarning, match="171 of the 1255"):
        assert check_no_overlap(hw7_dev, drcd_test, allow=True).paragraphs == 171


def test_hw7_test_holds_all_of_drcd_dev(data_dir):
    hw7_test, drcd_dev = load(data_dir, "ntu-ml2023-hw7-drcd", "hw7_test.json"), load(data_dir, "drcd", "DRCD_dev.json")
    overlap = find_overlap(drcd_dev, hw7_test)
    assert (overlap.paragraphs, overlap.train_paragraphs, overlap.eval_paragraphs) == (1000, 1000, 1000)
    assert (overlap.train_questions, overlap.eval_questions) == (3524, 3524)
    with pytest.raises(DataLeakError, match="1000 of the 1000 training paragraphs"):
        check_no_overlap(drcd_dev, hw7_test)


def test_disjoint_files_pass(data_dir):
    hw7_dev, drcd_dev = load(data_dir, "ntu-ml2023-hw7-drcd", "hw7_dev.json"), load(data_dir, "drcd", "DRCD_dev.json")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        overlap = check_no_overlap(hw7_dev, drcd_dev)
    assert not overlap and overlap.paragraphs == 0


def test_a_retyped_paragraph_is_caught():
    train = [QAExample("a", "q", "台達  電子\n成立於１９７１年。", [Answer("台達", 0)])]
    evaluation = [QAExample("b", "q", "台達 電子 成立於1971年。", []), QAExample("c", "q", "別的段落", [])]
    with pytest.raises(DataLeakError, match=r"1 of the 1 training paragraphs \(the training data\) are also among "
                                            r"the 2 evaluation paragraphs \(dev\.json\): 1 training and 1 evaluation"):
        check_no_overlap(train, evaluation, eval_name="dev.json")
