"""The plateau's yardsticks: attention to the neighbouring tokens, and guessing a token by counting neighbours;
and NSP's: telling a continuation by the words the two segments share.

Lecture lectures/pretraining.md, section "The plateau, and why short examples end it"; run with
`pytest -m pretraining`.
"""
import pytest
import torch

from minibert.config import BertConfig
from minibert.model.pretraining import IGNORE_INDEX, BertForPreTraining
from minibert.pretraining.data import Batch
from minibert.pretraining.diagnostics import (neighbour_attention, neighbour_attention_of_maps,
                                              neighbour_counting_accuracy, shared_words_nsp_accuracy)
from minibert.pretraining.pairs import IS_NEXT, NOT_NEXT, SegmentPair

pytestmark = pytest.mark.pretraining

MASK = 4


def batch_of(rows: list[list[int]], labels: list[list[int]] | None = None) -> Batch:
    n = max(map(len, rows))
    ids = torch.zeros(len(rows), n, dtype=torch.long)
    real = torch.zeros(len(rows), n, dtype=torch.long)
    for k, row in enumerate(rows):
        ids[k, :len(row)], real[k, :len(row)] = torch.tensor(row), 1
    target = torch.full_like(ids, IGNORE_INDEX)
    if labels is not None:
        for k, row in enumerate(labels):
            target[k, :len(row)] = torch.tensor(row)
    return Batch(ids, real, torch.zeros_like(ids), target, torch.zeros(len(rows), dtype=torch.long))


def test_attention_that_looks_one_token_back_scores_one_on_previous_and_zero_on_next():
    real = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    back = torch.zeros(2, 3, 5, 5)  # b h n n
    for i in range(1, 5):
        back[:, :, i, i - 1] = 1.0
    back[:, :, 0, 0] = 1.0
    back[1, :, 3:] = 0.0  # padding rows: must not count
    back[1, :, 3:, 0] = 1.0
    forward = back.transpose(-1, -2).contiguous()  # one token ahead
    result = neighbour_attention_of_maps((back, forward), real)
    assert torch.equal(result.previous, torch.tensor([[1.0] * 3, [0.0] * 3]))
    assert torch.equal(result.next, torch.tensor([[0.0] * 3, [1.0] * 3]))
    # 4 counted queries in the row of length 5, 2 in the row of length 3
    assert result.uniform == pytest.approx((4 / 5 + 2 / 3) / 6)


def test_uniform_attention_scores_one_over_the_length():
    real = torch.tensor([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]])
    lengths = real.sum(1)
    maps = real[:, None, None, :].float().expand(2, 2, 6, 6) / lengths[:, None, None, None]
    result = neighbour_attention_of_maps((maps,), real)
    assert torch.allclose(result.previous, torch.full((1, 2), result.uniform))
    assert torch.allclose(result.next, torch.full((1, 2), result.uniform))


def test_a_freshly_initialised_bert_attends_almost_uniformly():
    torch.manual_seed(0)
    config = BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=32)
    model = BertForPreTraining(config)
    batch = batch_of([torch.randint(5, 50, (20,)).tolist(), torch.randint(5, 50, (12,)).tolist()])
    result = neighbour_attention(model, [batch])
    assert result.previous.shape == result.next.shape == (2, 2)
    # small weights give near-zero scores: each neighbour gets about 1 / length
    assert torch.allclose(result.previous, torch.full((2, 2), result.uniform), rtol=0.05)
    assert torch.allclose(result.next, torch.full((2, 2), result.uniform), rtol=0.05)
    assert model.training  # left as it was found


def test_counting_neighbours_guesses_what_sits_between_them():
    # training text: 5 6 7 5 6 7 ... and 8 9 8 9 ...: each token is fixed by its neighbours
    documents = [[[5, 6, 7] * 4], [[8, 9] * 5]]
    #              masked 6 between 5 and 7    left neighbour masked: 9 follows ... before 8 -> 9
    batch = batch_of([[1, 5, MASK, 7, 2], [1, 8, MASK, MASK, 9, 2]],
                     [[IGNORE_INDEX, IGNORE_INDEX, 6, IGNORE_INDEX], [IGNORE_INDEX, IGNORE_INDEX, 9, 8]])
    assert neighbour_counting_accuracy(documents, [batch], MASK) == 1.0
    wrong = batch_of([[1, 5, MASK, 7, 2]], [[IGNORE_INDEX, IGNORE_INDEX, 7]])
    assert neighbour_counting_accuracy(documents, [wrong], MASK) == 0.0


def test_counting_falls_back_to_the_most_frequent_token_without_known_neighbours():
    documents = [[[5, 5, 5, 6]]]
    batch = batch_of([[1, MASK, MASK, 2]], [[IGNORE_INDEX, 5, 6]])  # neighbours unknown or masked
    assert neighbour_counting_accuracy(documents, [batch], MASK) == 0.5


def test_shared_words_tell_a_continuation_with_a_cut_fitted_on_training_pairs():
    documents = [[[5, 6, 7]], [[8, 9, 10]], [[11, 12]]]
    train = [SegmentPair([5, 6], [6, 7], IS_NEXT), SegmentPair([5, 6], [9, 10], NOT_NEXT),
             SegmentPair([8, 9], [9, 10], IS_NEXT), SegmentPair([11], [5], NOT_NEXT)]
    held_out = [SegmentPair([8, 10], [10, 9], IS_NEXT), SegmentPair([11, 12], [7, 6], NOT_NEXT)]
    assert shared_words_nsp_accuracy(train, held_out, documents) == 1.0
    flipped = [SegmentPair(p.tokens_a, p.tokens_b, NOT_NEXT if p.label == IS_NEXT else IS_NEXT) for p in held_out]
    assert shared_words_nsp_accuracy(train, flipped, documents) == 0.0
    # training pairs where sharing words goes with NotNext: no cut beats calling every pair IsNext
    misleading = [SegmentPair([5], [9], IS_NEXT), SegmentPair([8, 9], [9, 10], NOT_NEXT),
                  SegmentPair([6], [11], IS_NEXT)]
    assert shared_words_nsp_accuracy(misleading, held_out, documents) == 0.5
