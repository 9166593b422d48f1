"""Sharper checks for the course's exercises (exercises/*.md): hand-derived values that a plausible wrong
answer gets wrong. Each test carries its lecture section's marker; exercises/points.json lists which exercise
each one grades.
"""
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.testing import assert_close

from minibert.finetune.qa.postprocess import best_span_in_window
from minibert.methods.lora import LoRALinear
from minibert.model.attention import additive_mask, eager_attention
from minibert.model.pretraining import IGNORE_INDEX
from minibert.pretraining.masking import Masker, corrupt


@pytest.mark.embeddings
def test_attention_two_queries_and_a_mask_by_hand():
    """d = 2, so the scale is 1/sqrt(2). q1 = (2, 0), q2 = (0, 2); keys (1, 0), (0, 1), (1, 1):
    scores q1: (2, 0, 2)/sqrt(2), q2: (0, 2, 2)/sqrt(2); each query's row is a softmax over the keys. In batch
    row 2 the third key is hidden: a softmax over the first two only."""
    q = torch.tensor([[2.0, 0.0], [0.0, 2.0]]).expand(2, 1, 2, 2)  # b h n d
    k = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]).expand(2, 1, 3, 2)
    v = torch.tensor([[1.0, 0.0], [0.0, 3.0], [5.0, 5.0]]).expand(2, 1, 3, 2)
    a = math.exp(math.sqrt(2))  # e^(2 / sqrt 2)
    full = torch.tensor([[a, 1, a], [1, a, a]]) / torch.tensor([[2 * a + 1], [2 * a + 1]])
    hidden = torch.tensor([[a, 1, 0], [1, a, 0]]) / (a + 1)
    mask = additive_mask(torch.tensor([[1, 1, 1], [1, 1, 0]]), torch.float32)
    context, probs = eager_attention(q, k, v, mask)
    assert_close(probs, torch.stack([full, hidden])[:, None])
    assert_close(context[0, 0], full @ v[0, 0])
    assert_close(context[1, 0], torch.tensor([[a / (a + 1), 3 / (a + 1)], [1 / (a + 1), 3 * a / (a + 1)]]))


@pytest.mark.embeddings
def test_attention_dropout_drops_probabilities_not_the_returned_map():
    """Dropout acts on the probabilities before they mix the values (as BERT's code does); the map returned
    still sums to 1 per query, the one a student plots."""
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, 2, 4, 8, generator=g) for _ in range(3))
    torch.manual_seed(1)
    context, probs = eager_attention(q, k, v, dropout_p=0.5)
    torch.manual_seed(1)
    expected = F.dropout(probs, 0.5) @ v
    assert_close(probs.sum(-1), torch.ones(1, 2, 4))
    assert_close(context, expected)
    assert not torch.allclose(context, probs @ v)


@pytest.mark.pretraining
def test_corruption_by_hand_with_every_token_selected():
    """With the fractions pushed to their ends each action is certain, so the result is known by hand: the
    corruption must use the masker's fractions and never touch a token that was not selected."""
    ids = torch.tensor([[11, 12, 13, 14, 15, 16]])
    selected = torch.tensor([[True, True, False, True, False, True]])
    g = torch.Generator().manual_seed(0)
    labels_by_hand = torch.tensor([[11, 12, IGNORE_INDEX, 14, IGNORE_INDEX, 16]])

    all_mask = Masker(1000, 4, (0, 1, 2, 3), mask_fraction=1.0, random_fraction=0.0)
    corrupted, labels = corrupt(ids, selected, all_mask, g)
    assert corrupted.tolist() == [[4, 4, 13, 4, 15, 4]]
    assert torch.equal(labels, labels_by_hand)

    all_kept = Masker(1000, 4, (0, 1, 2, 3), mask_fraction=0.0, random_fraction=0.0)
    corrupted, labels = corrupt(ids, selected, all_kept, g)
    assert torch.equal(corrupted, ids) and torch.equal(labels, labels_by_hand)

    all_random = Masker(1000, 4, (0, 1, 2, 3), mask_fraction=0.0, random_fraction=1.0)
    changed = torch.zeros_like(selected)
    for _ in range(20):
        corrupted, labels = corrupt(ids, selected, all_random, g)
        assert torch.equal(corrupted[~selected], ids[~selected]) and torch.equal(labels, labels_by_hand)
        assert ((corrupted >= 0) & (corrupted < 1000)).all() and (corrupted != 4).all()
        changed |= corrupted != ids
    assert torch.equal(changed, selected), "random tokens, drawn from the whole vocabulary"


@pytest.mark.outputs
def test_span_search_by_hand():
    """Tokens 0..2 are the question, 3..7 the context. Start logits peak on the question; among the context,
    the best pair with end >= start and at most 3 tokens is (4, 6): 2 + 3 = 5 ((4, 7) would be 2 + 4 but is 4
    tokens long; (6, 7) = 0.5 + 4 = 4.5, (7, 7) = 4.2)."""
    start = torch.tensor([9.0, 8.0, 7.0, 0.0, 2.0, -1.0, 0.5, 0.2])
    end = torch.tensor([9.0, 9.0, 9.0, 0.0, 0.0, 1.0, 3.0, 4.0])
    context = torch.tensor([False] * 3 + [True] * 5)
    span = best_span_in_window(start, end, context, n_best=20, max_answer_tokens=3)
    assert (span.start_token, span.end_token, span.score) == (4, 6, 5.0)
    # the question is masked before taking the n best: one start and one end are enough to find (4, 7)
    span = best_span_in_window(start, end, context, n_best=1, max_answer_tokens=30)
    assert (span.start_token, span.end_token, span.score) == (4, 7, 6.0)
    # an end before its start is no span at all
    assert best_span_in_window(torch.tensor([0.0, 5.0]), torch.tensor([5.0, 0.0]), torch.tensor([True, True]),
                               n_best=1) is None
    assert best_span_in_window(start, end, torch.zeros(8, dtype=torch.bool)) is None


@pytest.mark.finetuning
def test_lora_layer_by_hand():
    """W = I, b = (1, -1), A = (1 2), B = (1 0)^T, r = 1, alpha = 2: scale alpha / r = 2, B A = ((1, 2), (0, 0)).
    x = (1, 1): W x + b = (2, 0), B A x = (3, 0), so the output is (2, 0) + 2 (3, 0) = (8, 0)."""
    base = nn.Linear(2, 2)
    with torch.no_grad():
        base.weight.copy_(torch.eye(2))
        base.bias.copy_(torch.tensor([1.0, -1.0]))
    layer = LoRALinear(base, r=1, alpha=2)
    x = torch.tensor([[1.0, 1.0]])
    assert_close(layer(x), torch.tensor([[2.0, 0.0]]))  # B = 0 at the start: the base layer exactly
    with torch.no_grad():
        layer.lora_A.weight.copy_(torch.tensor([[1.0, 2.0]]))
        layer.lora_B.weight.copy_(torch.tensor([[1.0], [0.0]]))
    assert_close(layer.delta_weight(), torch.tensor([[2.0, 4.0], [0.0, 0.0]]))
    assert_close(layer(x), torch.tensor([[8.0, 0.0]]))
    layer.merge()
    assert_close(layer.weight, torch.tensor([[3.0, 4.0], [0.0, 1.0]]))
    assert_close(layer(x), torch.tensor([[8.0, 0.0]]))  # counted once, not twice, once merged
    layer.unmerge()
    assert_close(layer(x), torch.tensor([[8.0, 0.0]]))
    assert [name for name, p in layer.named_parameters() if p.requires_grad] == ["lora_A.weight", "lora_B.weight"]
