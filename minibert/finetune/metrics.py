"""How fine-tuned models are scored: accuracy and the confusion matrix for classes, entity-level precision,
recall and F1 for tagging.

Lecture 2.2 (outputs: one class, a class per token). Written by hand because they are the lesson: a tagger is
not scored per token (83% of the CoNLL-2003 test tokens are O, so "always O" gets 0.83 of the tokens right and
finds no entity) but per entity, and an
entity counts only when its type and both of its ends are right. The entity rules are conlleval's, the script
of the CoNLL-2000/2003 shared tasks, which `seqeval.metrics` (default mode) reproduces;
tests/test_finetune_metrics.py checks these functions against seqeval on the real CoNLL-2003 test tags.
"""
from __future__ import annotations

from collections import Counter

import torch
from torch import Tensor


def _as_list(values) -> list:
    return values.tolist() if isinstance(values, Tensor) else list(values)


def accuracy(predictions, labels) -> float:
    """The share of predictions equal to their label (lists or tensors of class ids)."""
    predictions, labels = _as_list(predictions), _as_list(labels)
    if len(predictions) != len(labels):
        raise ValueError(f"{len(predictions)} predictions for {len(labels)} labels; they must pair up")
    if not labels:
        raise ValueError("accuracy of nothing: no predictions were given")
    return sum(p == y for p, y in zip(predictions, labels)) / len(labels)


def confusion_matrix(predictions, labels, num_labels: int) -> Tensor:
    """counts[true class, predicted class] (rows: the gold label, columns: the prediction, as scikit-learn);
    the diagonal holds the right answers."""
    predictions = torch.as_tensor(_as_list(predictions), dtype=torch.long)
    labels = torch.as_tensor(_as_list(labels), dtype=torch.long)
    if predictions.shape != labels.shape:
        raise ValueError(f"{len(predictions)} predictions for {len(labels)} labels; they must pair up")
    for name, values in (("prediction", predictions), ("label", labels)):
        if len(values) and not (0 <= int(values.min()) and int(values.max()) < num_labels):
            raise ValueError(f"a {name} lies outside 0..{num_labels - 1} (got {int(values.min())}.."
                             f"{int(values.max())}); is num_labels={num_labels} right?")
    # each (true, predicted) pair gets one number, true * num_labels + predicted, and bincount counts them
    counts = torch.bincount(labels * num_labels + predictions, minlength=num_labels * num_labels)
    return counts.reshape(num_labels, num_labels)


# ----- entities -----

def _split(tag: str) -> tuple[str, str]:
    """'B-PER' -> ('B', 'PER'); 'O' -> ('O', '')."""
    if tag == "O":
        return "O", ""
    prefix, _, entity_type = tag.partition("-")
    if prefix not in ("B", "I") or not entity_type:
        raise ValueError(f"{tag!r} is not a BIO tag: expected O, B-TYPE or I-TYPE (convert IOB1 files with "
                         f"data.iob1_to_bio; IOBES tags are not read here)")
    return prefix, entity_type


def entity_spans(tags: list[str]) -> set[tuple[str, int, int]]:
    """(type, start, end) of every entity in one sentence's BIO tags, end exclusive: words[start:end].

    conlleval's rules: an entity starts at a B-, or at an I- that does not continue an entity of its type
    (after O or after another type: a tagger's slip still counts as an entity); it ends before the next B-,
    O or change of type."""
    spans, start, current = set(), None, ""
    for i, tag in enumerate([*tags, "O"]):  # a final O closes the last entity
        prefix, entity_type = _split(tag)
        continues = prefix == "I" and entity_type == current
        if start is not None and not continues:
            spans.add((current, start, i))
            start, current = None, ""
        if prefix in ("B", "I") and start is None:
            start, current = i, entity_type
    return spans


def _scores(correct: int, predicted: int, gold: int) -> dict[str, float]:
    # no prediction or no gold entity: 0, as seqeval (and conlleval) report it
    precision = correct / predicted if predicted else 0.0
    recall = correct / gold if gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "support": gold}


def entity_scores(gold_tag_sequences: list[list[str]], predicted_tag_sequences: list[list[str]]) -> dict:
    """Entity-level precision, recall and F1, micro-averaged over all entities of all sentences, and the same
    per entity type under "per_type" ({"PER": {"precision", "recall", "f1", "support"}, ...}; support is the
    number of gold entities). A predicted entity is right only if a gold one has its type, start and end."""
    if len(gold_tag_sequences) != len(predicted_tag_sequences):
        raise ValueError(f"{len(gold_tag_sequences)} gold sentences but {len(predicted_tag_sequences)} predicted; "
                         f"they must pair up")
    correct, predicted, gold = Counter(), Counter(), Counter()
    for index, (gold_tags, predicted_tags) in enumerate(zip(gold_tag_sequences, predicted_tag_sequences)):
        if len(gold_tags) != len(predicted_tags):
            raise ValueError(f"sentence {index}: {len(gold_tags)} gold tags but {len(predicted_tags)} predicted; "
                             f"predict one tag per word (batching.word_predictions reads them back)")
        gold_spans, predicted_spans = entity_spans(gold_tags), entity_spans(predicted_tags)
        gold.update(t for t, *_ in gold_spans)
        predicted.update(t for t, *_ in predicted_spans)
        correct.update(t for t, *_ in gold_spans & predicted_spans)
    result = _scores(sum(correct.values()), sum(predicted.values()), sum(gold.values()))
    result["per_type"] = {t: _scores(correct[t], predicted[t], gold[t]) for t in sorted(gold | predicted)}
    return result
