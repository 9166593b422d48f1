"""Scores of fine-tuned models, written by hand: accuracy, the confusion matrix, entity-level precision/recall/F1.

Lecture 2.2 (outputs); run with `pytest -m outputs`. Entity scores are checked against seqeval (a test-only
dependency; its default mode is conlleval's) on the real CoNLL-2003 test tags, corrupted at random, and on
cases worked out by hand.
"""
import pytest
import torch

from minibert.finetune.data import read_conll2003
from minibert.finetune.metrics import accuracy, confusion_matrix, entity_scores, entity_spans

pytestmark = pytest.mark.outputs

TAGS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-MISC", "I-MISC"]


@pytest.fixture(scope="module")
def seqeval_metrics():
    return pytest.importorskip("seqeval.metrics", reason="seqeval is the reference: pip install seqeval")


@pytest.fixture(scope="module")
def conll_test_tags(data_dir):
    return [s.tags for s in read_conll2003(data_dir / "conll2003" / "eng.testb")]


def test_accuracy_by_hand():
    assert accuracy([1, 0, 2, 2], [1, 1, 2, 0]) == 0.5
    assert accuracy(torch.tensor([3, 3, 3]), torch.tensor([3, 3, 1])) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="3 predictions for 2 labels"):
        accuracy([0, 1, 2], [0, 1])


def test_confusion_matrix_by_hand():
    #            gold:  0  0  1  1  1  2
    #       predicted:  0  1  1  1  2  0
    matrix = confusion_matrix([0, 1, 1, 1, 2, 0], [0, 0, 1, 1, 1, 2], num_labels=3)
    torch.testing.assert_close(matrix, torch.tensor([[1, 1, 0],    # gold 0: once right, once taken for 1
                                                     [0, 2, 1],    # gold 1: twice right, once taken for 2
                                                     [1, 0, 0]]))  # gold 2: taken for 0
    assert int(matrix.trace()) / int(matrix.sum()) == accuracy([0, 1, 1, 1, 2, 0], [0, 0, 1, 1, 1, 2])
    with pytest.raises(ValueError, match="outside 0..2"):
        confusion_matrix([0, 3], [0, 1], num_labels=3)


@pytest.mark.parametrize("tags, spans", [
    (["B-PER", "I-PER", "O", "B-LOC"], {("PER", 0, 2), ("LOC", 3, 4)}),
    (["I-PER", "I-PER", "O"], {("PER", 0, 2)}),                     # an I- without a B- opens an entity
    (["O", "I-LOC", "B-LOC", "I-LOC"], {("LOC", 1, 2), ("LOC", 2, 4)}),  # B- ends the entity before it
    (["B-ORG", "I-PER", "I-PER"], {("ORG", 0, 1), ("PER", 1, 3)}),  # a change of type opens another
    (["B-MISC", "B-MISC", "O", "O"], {("MISC", 0, 1), ("MISC", 1, 2)}),
    (["O", "O"], set()),
    ([], set()),
])
def test_entity_spans_by_hand(tags, spans, seqeval_metrics):
    assert entity_spans(tags) == spans
    from seqeval.metrics.sequence_labeling import get_entities
    assert {(t, start, end + 1) for t, start, end in get_entities(tags)} == spans  # seqeval's end is inclusive


@pytest.mark.parametrize("tag", ["E-PER", "S-LOC", "B-", "PER", "o"])
def test_entity_spans_refuses_what_is_not_bio(tag):
    with pytest.raises(ValueError, match=f"'{tag}' is not a BIO tag"):
        entity_spans(["O", tag])


def test_entity_scores_by_hand():
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O"]]
    predicted = [["B-PER", "I-PER", "O", "O"], ["B-ORG", "B-LOC"]]
    scores = entity_scores(gold, predicted)
    # gold: PER(0,2), LOC(3,4), ORG(0,1); predicted: PER(0,2), ORG(0,1), LOC(1,2); right: PER and ORG
    assert (scores["precision"], scores["recall"], scores["f1"]) == pytest.approx((2 / 3, 2 / 3, 2 / 3))
    assert scores["per_type"]["LOC"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert scores["per_type"]["PER"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1}
    # an entity with one end wrong is both a false positive and a false negative
    half = entity_scores([["B-PER", "I-PER", "I-PER"]], [["B-PER", "I-PER", "O"]])
    assert (half["precision"], half["recall"], half["f1"]) == (0.0, 0.0, 0.0)
    nothing = entity_scores([["O", "O"]], [["O", "O"]])
    assert (nothing["precision"], nothing["recall"], nothing["f1"], nothing["per_type"]) == (0.0, 0.0, 0.0, {})
    with pytest.raises(ValueError, match="sentence 1: 2 gold tags but 3 predicted"):
        entity_scores([["O"], ["O", "O"]], [["O"], ["O", "O", "O"]])


def test_entity_scores_perfect_on_real_tags(conll_test_tags):
    scores = entity_scores(conll_test_tags, conll_test_tags)
    assert (scores["precision"], scores["recall"], scores["f1"]) == (1.0, 1.0, 1.0)
    # the CoNLL-2003 paper's test set: 1,668 LOC, 702 MISC, 1,661 ORG, 1,617 PER
    assert {t: s["support"] for t, s in scores["per_type"].items()} == {"LOC": 1668, "MISC": 702, "ORG": 1661,
                                                                       "PER": 1617}


def corrupt(tag_sequences, probability, seed):
    """Each tag replaced, with `probability`, by one of the nine drawn at random: ends move, types change,
    entities vanish or appear, and I- tags follow O (the cases where taggers and scorers disagree)."""
    generator = torch.Generator().manual_seed(seed)
    n = sum(len(tags) for tags in tag_sequences)
    change = (torch.rand(n, generator=generator) < probability).tolist()
    replacement = torch.randint(len(TAGS), (n,), generator=generator).tolist()
    corrupted, k = [], 0
    for tags in tag_sequences:
        corrupted.append([TAGS[replacement[k + i]] if change[k + i] else t for i, t in enumerate(tags)])
        k += len(tags)
    return corrupted


@pytest.mark.parametrize("probability, seed", [(0.05, 0), (0.3, 1), (1.0, 2)])
def test_entity_scores_match_seqeval(conll_test_tags, seqeval_metrics, probability, seed):
    predicted = corrupt(conll_test_tags, probability, seed)
    scores = entity_scores(conll_test_tags, predicted)
    report = seqeval_metrics.classification_report(conll_test_tags, predicted, output_dict=True)
    micro = report["micro avg"]  # seqeval's precision_score, recall_score and f1_score (mode=None: conlleval)
    assert (scores["precision"], scores["recall"], scores["f1"]) == pytest.approx(
        (micro["precision"], micro["recall"], micro["f1-score"]))
    assert 0 < scores["f1"] < 1
    for entity_type, ours in scores["per_type"].items():
        theirs = report[entity_type]
        assert (ours["precision"], ours["recall"], ours["f1"], ours["support"]) == pytest.approx(
            (theirs["precision"], theirs["recall"], theirs["f1-score"], theirs["support"]))
    # the corruptions both keep many entities and break many: the comparison is not a trivial one
    if probability < 1:
        assert scores["f1"] > 0.2
