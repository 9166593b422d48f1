"""Hashing attention (minibert/long/lsh.py): one bucket is full shared-QK attention, more rounds approach it.

Lecture 1.3; run with `pytest -m long_sequences`.
"""
import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

from minibert.model.attention import ATTENTION_FUNCTIONS
from minibert.long.lsh import SELF_SCORE, hash_buckets, lsh_attention

pytestmark = pytest.mark.long_sequences
TOL = dict(atol=1e-5, rtol=0)


def inputs(b=2, h=2, n=32, d=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return 2 * torch.randn(b, h, n, d, generator=g), torch.randn(b, h, n, d, generator=g)


def full_shared_qk_attention(q, v, mask=None):
    """The reference, written out: unit keys, no 1/sqrt(d), a token's own key at -1e5 (Reformer's rule)."""
    n = q.shape[2]
    scores = q @ F.normalize(q, dim=-1).transpose(-1, -2)
    scores = scores.masked_fill(torch.eye(n, dtype=torch.bool), SELF_SCORE)
    if mask is not None:
        scores = scores + mask
    return scores.softmax(dim=-1) @ v


def test_registered_as_a_kernel():
    assert ATTENTION_FUNCTIONS["lsh"] is lsh_attention


@pytest.mark.parametrize("chunk_size, rounds", [(32, 1), (16, 1), (32, 3), (100, 2)])
def test_one_bucket_is_full_shared_qk_attention(chunk_size, rounds):
    """One bucket and at most two chunks: every query sees every key, whatever the rounds."""
    q, v = inputs()
    mine, probs = lsh_attention(q, q, v, buckets=1, rounds=rounds, chunk_size=chunk_size)
    assert probs is None
    assert_close(mine, full_shared_qk_attention(q, v), **TOL)


def test_one_bucket_with_padding():
    q, v = inputs(n=20)
    real = torch.ones(2, 20, dtype=torch.bool)
    real[1, 13:] = False
    mask = torch.zeros(2, 20).masked_fill(~real, torch.finfo(torch.float32).min)[:, None, None, :]
    mine, _ = lsh_attention(q, q, v, mask, buckets=1, rounds=1, chunk_size=20)
    assert_close(mine[real[:, None, :].expand(-1, 2, -1)],
                 full_shared_qk_attention(q, v, mask)[real[:, None, :].expand(-1, 2, -1)], **TOL)


def test_a_token_alone_in_its_chunk_attends_to_itself():
    q, v = inputs(b=1, h=1, n=1)
    mine, _ = lsh_attention(q, q, v, buckets=1, rounds=1, chunk_size=4)
    assert_close(mine, v, **TOL)


def test_more_rounds_approach_full_attention():
    """8 buckets, chunks of 4 out of 32 tokens: one round sees a fraction of the keys; the union over rounds
    (duplicates counted once) grows to all of them. Mean error over three seeds, falling round after round."""
    q, v = inputs()
    full = full_shared_qk_attention(q, v)
    errors = []
    for rounds in (1, 4, 16, 32):
        runs = [lsh_attention(q, q, v, buckets=8, rounds=rounds, chunk_size=4,
                              generator=torch.Generator().manual_seed(seed))[0] for seed in range(3)]
        errors.append(sum((run - full).abs().mean() for run in runs) / 3)
    assert all(later < earlier / 2 for earlier, later in zip(errors, errors[1:])), errors
    assert errors[0] > 0.1 and errors[-1] < 1e-3, errors


def test_close_vectors_share_buckets_far_ones_do_not():
    g = torch.Generator().manual_seed(0)
    x = F.normalize(torch.randn(1, 1, 1, 64, generator=g), dim=-1)
    near = F.normalize(x + 0.01 * torch.randn(1, 1, 1, 64, generator=g), dim=-1)
    vectors = torch.cat([x, near, -x], dim=2)  # b h 3 d
    bucket = hash_buckets(vectors, buckets=16, rounds=50, generator=g)  # b h r 3
    same_near = (bucket[..., 0] == bucket[..., 1]).float().mean()
    same_opposite = (bucket[..., 0] == bucket[..., 2]).float().mean()
    assert same_near > 0.8 and same_opposite == 0  # -x always lands in the mirrored bucket


def test_errors_say_what_to_do():
    q, v = inputs(n=8)
    with pytest.raises(ValueError, match="k = q"):
        lsh_attention(q, q + 1, v)
    with pytest.raises(ValueError, match="even"):
        lsh_attention(q, q, v, buckets=3)


def test_lsh_layers_in_bert_model_with_one_bucket_are_shared_qk_attention():
    """use_lsh_attention plugs into BertModel; with one bucket each layer is full shared-QK attention, which the
    same model with query = key projections and the textbook formula (written out here) reproduces."""
    from minibert import BertConfig, BertModel
    from minibert.long.lsh import LSHSelfAttention, use_lsh_attention

    config = BertConfig.preset("tiny", num_hidden_layers=2, vocab_size=100)
    torch.manual_seed(0)
    model = use_lsh_attention(BertModel(config), buckets=1, rounds=1, chunk_size=64).eval()
    assert all(isinstance(layer.attention.self, LSHSelfAttention) for layer in model.encoder.layer)
    ids = torch.randint(1, 100, (2, 20), generator=torch.Generator().manual_seed(0))
    attention_mask = torch.ones_like(ids)
    attention_mask[1, 15:] = 0
    mask = torch.zeros(2, 20).masked_fill(attention_mask == 0, torch.finfo(torch.float32).min)[:, None, None, :]
    with torch.no_grad():
        mine = model(ids, attention_mask).last_hidden_state
        x = model.embeddings(ids, torch.zeros_like(ids))
        for layer in model.encoder.layer:
            attention = layer.attention.self
            qk = attention.query_key(x).view(2, 20, 2, 64).transpose(1, 2)
            v = attention.value(x).view(2, 20, 2, 64).transpose(1, 2)
            context = full_shared_qk_attention(qk, v, mask).transpose(1, 2).reshape(2, 20, 128)
            x = layer.attention.output(context, residual=x)
            x = layer.output(layer.intermediate(x), residual=x)
    real = attention_mask.bool()
    assert_close(mine[real], x[real], **TOL)
