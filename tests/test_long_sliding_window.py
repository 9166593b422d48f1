"""Sliding-window attention with global tokens (minibert/long/sliding_window.py) against transformers' Longformer,
and the properties that make it a sliding window.

Lecture 1.3; run with `pytest -m long_sequences`.
"""
import pytest
import torch
from torch.testing import assert_close

from minibert import BertConfig, BertModel
from minibert.model.attention import ATTENTION_FUNCTIONS, eager_attention
from minibert.long.sliding_window import (LongformerSelfAttention, banded_attention, from_longformer_state_dict,
                                          sliding_window_attention, use_sliding_window)

pytestmark = pytest.mark.long_sequences
TOL = dict(atol=1e-5, rtol=0)
LOWEST = torch.finfo(torch.float32).min


def qkv(b=2, h=3, n=37, d=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(3, b, h, n, d, generator=g).unbind(0)


def padding_mask(real):
    """(b n) bool -> additive (b 1 1 n), as BertModel builds it."""
    return torch.zeros(real.shape).masked_fill(~real, LOWEST)[:, None, None, :]


def test_registered_as_a_kernel():
    assert ATTENTION_FUNCTIONS["sliding_window"] is sliding_window_attention


@pytest.mark.parametrize("window, chunk_size", [(2, None), (6, None), (6, 5), (8, 1), (10, 64)])
def test_chunks_compute_the_band(window, chunk_size):
    """Any chunk size gives the plain band's numbers, forward and backward."""
    q, k, v = (t.requires_grad_() for t in qkv())
    chunked, _ = sliding_window_attention(q, k, v, window=window, chunk_size=chunk_size)
    banded, _ = banded_attention(q, k, v, window)
    assert_close(chunked, banded, **TOL)
    grads = torch.autograd.grad(chunked.square().sum(), (q, k, v))
    expected = torch.autograd.grad(banded.square().sum(), (q, k, v))
    for mine, theirs in zip(grads, expected):
        assert_close(mine, theirs, **TOL)


@pytest.mark.parametrize("n", [5, 16, 37])
def test_window_covering_the_sequence_is_full_attention(n):
    q, k, v = qkv(n=n)
    real = torch.ones(2, n, dtype=torch.bool)
    real[1, n - 2:] = False
    mask = padding_mask(real)
    window = 2 * n  # n - 1 on each side would do
    mine, _ = sliding_window_attention(q, k, v, mask, window=window, chunk_size=3)
    full, _ = eager_attention(q, k, v, mask)
    assert_close(mine, full, **TOL)


def test_narrow_window_ignores_far_tokens():
    """Token 10 sees tokens 8..12 (window 4): changing token 20 leaves it, changing token 12 moves it."""
    q, k, v = qkv(b=1, n=32)
    before, _ = sliding_window_attention(q, k, v, window=4)
    for far, moved in ((20, False), (3, False), (12, True), (8, True)):
        k2, v2 = k.clone(), v.clone()
        k2[..., far, :] += 1.0
        v2[..., far, :] += 1.0
        after, _ = sliding_window_attention(q, k2, v2, window=4)
        assert torch.equal(after[..., 10, :], before[..., 10, :]) is not moved, far


def test_padding_keys_get_no_weight():
    q, k, v = qkv(b=1, n=12)
    real = torch.ones(1, 12, dtype=torch.bool)
    real[0, 8:] = False
    mine, _ = sliding_window_attention(q, k, v, padding_mask(real), window=6)
    alone, _ = sliding_window_attention(q[..., :8, :], k[..., :8, :], v[..., :8, :], window=6)
    assert_close(mine[..., :8, :], alone, **TOL)


def test_errors_say_what_to_do():
    q, k, v = qkv(n=8)
    with pytest.raises(ValueError, match="positive even"):
        sliding_window_attention(q, k, v, window=3)
    with pytest.raises(ValueError, match=r"\(b 1 1 n\)"):
        sliding_window_attention(q, k, v, torch.zeros(2, 1, 8, 8), window=4)


# ----- against transformers -----

def hf_layer(transformers_lib, window, hidden=32, heads=4):
    from transformers.models.longformer.modeling_longformer import LongformerSelfAttention as Reference
    config = transformers_lib.LongformerConfig(hidden_size=hidden, num_attention_heads=heads, num_hidden_layers=1,
                                               attention_window=[window], attention_probs_dropout_prob=0.0)
    layer = Reference(config, layer_id=0).eval()
    g = torch.Generator().manual_seed(window)
    with torch.no_grad():
        for p in layer.parameters():  # random weights big enough that a wrong softmax would show
            p.copy_(0.3 * torch.randn(p.shape, generator=g))
    return layer


@pytest.mark.parametrize("window, n, with_global", [(4, 16, True), (6, 24, True), (4, 16, False)])
def test_matches_transformers_longformer_self_attention(transformers_lib, window, n, with_global):
    theirs = hf_layer(transformers_lib, window)
    ours = LongformerSelfAttention(BertConfig(hidden_size=32, num_attention_heads=4), window).eval()
    ours.load_state_dict(theirs.state_dict())
    b = 3
    x = torch.randn(b, n, 32, generator=torch.Generator().manual_seed(1))
    real = torch.ones(b, n, dtype=torch.bool)
    real[1, n - 5:] = False
    real[2, 5:] = False
    is_global = torch.zeros(b, n, dtype=torch.bool)
    if with_global:  # different counts per row, one global token inside another's window, one row without
        is_global[0, [0, 7]] = True
        is_global[1, [0, 2, 9]] = True
    # transformers' layer takes its mask as LongformerModel hands it: < 0 padding, 0 local, > 0 global
    their_mask = torch.zeros(b, n).masked_fill(~real, -10000.0).masked_fill(is_global, 10000.0)
    with torch.no_grad():
        expected = theirs(x, attention_mask=their_mask, is_index_masked=their_mask < 0,
                          is_index_global_attn=their_mask > 0, is_global_attn=bool(is_global.any()))[0]
        mine, probs = ours(x, padding_mask(real), global_attention_mask=is_global)
    assert probs is None
    assert_close(mine, expected, **TOL)  # zeros at the padding, as transformers gives


def test_global_token_reads_far_tokens_and_is_read_by_them():
    config = BertConfig(hidden_size=16, num_attention_heads=2)
    layer = LongformerSelfAttention(config, window=2).eval()
    x = torch.randn(1, 20, 16, generator=torch.Generator().manual_seed(0))
    is_global = torch.zeros(1, 20, dtype=torch.bool)
    is_global[0, 0] = True
    with torch.no_grad():
        before, _ = layer(x, global_attention_mask=is_global)
        x2 = x.clone()
        x2[0, 15] += 1.0
        after, _ = layer(x2, global_attention_mask=is_global)
        x3 = x.clone()
        x3[0, 0] += 1.0
        after_global, _ = layer(x3, global_attention_mask=is_global)
    assert not torch.equal(after[0, 0], before[0, 0])          # global token 0 reads far token 15
    assert torch.equal(after[0, 5], before[0, 5])              # local token 5 does not
    assert not torch.equal(after_global[0, 12], before[0, 12])  # token 12 reads global token 0


def tiny_longformer(transformers_lib, window=4, pad=1):
    config = transformers_lib.LongformerConfig(
        vocab_size=50, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
        max_position_embeddings=64 + pad + 1, attention_window=window, pad_token_id=pad, type_vocab_size=1,
        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    torch.manual_seed(0)
    model = transformers_lib.LongformerModel(config).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "LayerNorm" not in name:
                p.normal_(0, 0.2)
    return model


def test_whole_longformer_model_matches(transformers_lib):
    """BertModel + use_sliding_window is LongformerModel once its position table drops RoBERTa's first rows."""
    window, pad = 4, 1
    theirs = tiny_longformer(transformers_lib, window, pad)
    hf = theirs.config
    config = BertConfig(vocab_size=hf.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=64, max_position_embeddings=hf.max_position_embeddings - pad - 1,
                        type_vocab_size=1, layer_norm_eps=hf.layer_norm_eps, pad_token_id=pad,
                        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    ours = use_sliding_window(BertModel(config), window).eval()
    missing, unexpected = ours.load_state_dict(from_longformer_state_dict(theirs.state_dict(), pad), strict=False)
    assert not missing and not unexpected
    g = torch.Generator().manual_seed(3)
    input_ids = torch.randint(2, 50, (3, 22), generator=g)  # 22: not a multiple of the window; Longformer pads
    attention_mask = torch.ones_like(input_ids)
    attention_mask[1, 15:] = 0
    attention_mask[2, 6:] = 0
    input_ids[attention_mask == 0] = pad
    is_global = torch.zeros_like(input_ids)
    is_global[:, 0] = 1  # [CLS]-like, as for classification
    is_global[0, 1:3] = 1
    with torch.no_grad():
        expected = theirs(input_ids, attention_mask=attention_mask, global_attention_mask=is_global)
        mine = ours(input_ids, attention_mask=attention_mask, global_attention_mask=is_global)
    real = attention_mask.bool()
    assert_close(mine.last_hidden_state[real], expected.last_hidden_state[real], **TOL)
    assert_close(mine.pooler_output, expected.pooler_output, **TOL)


def test_receptive_field_of_a_stack_grows_by_half_a_window_per_layer():
    """Two layers of window 4: token 10 sees 10 +- 2 after one layer, 10 +- 4 after two."""
    config = BertConfig.preset("tiny", num_hidden_layers=2, vocab_size=100, hidden_dropout_prob=0.0,
                               attention_probs_dropout_prob=0.0)
    torch.manual_seed(0)
    model = use_sliding_window(BertModel(config), window=4).eval()
    ids = torch.randint(1, 100, (1, 30), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        before = model(ids).last_hidden_state[0, 10]
        for position, moved in ((14, True), (6, True), (15, False), (5, False), (29, False)):
            changed = ids.clone()
            changed[0, position] = (ids[0, position] + 1) % 100
            after = model(changed).last_hidden_state[0, 10]
            assert torch.equal(after, before) is not moved, position


def test_registered_kernel_runs_in_bert_model_and_equals_the_swapped_module():
    """attn_implementation="sliding_window" (the window as a forward option) = use_sliding_window without global
    tokens: the kernel needs no weights of its own."""
    config = BertConfig.preset("tiny", num_hidden_layers=2, vocab_size=100, attn_implementation="sliding_window")
    torch.manual_seed(0)
    plain = BertModel(config).eval()
    swapped = use_sliding_window(BertModel(config), window=6).eval()
    swapped.load_state_dict(plain.state_dict(), strict=False)  # the global projections are extra
    ids = torch.randint(1, 100, (2, 25), generator=torch.Generator().manual_seed(0))
    attention_mask = torch.ones_like(ids)
    attention_mask[1, 20:] = 0
    with torch.no_grad():
        mine = plain(ids, attention_mask, window=6).last_hidden_state
        theirs = swapped(ids, attention_mask).last_hidden_state
    real = attention_mask.bool()
    assert_close(mine[real], theirs[real], **TOL)


def test_extended_positions_repeat_the_table_and_read_a_longer_text():
    from minibert.long.sliding_window import extend_positions

    config = BertConfig.preset("tiny", num_hidden_layers=1, vocab_size=100, max_position_embeddings=16)
    torch.manual_seed(0)
    model = use_sliding_window(BertModel(config), window=4).eval()
    table = model.embeddings.position_embeddings.weight.detach().clone()
    ids = torch.randint(1, 100, (1, 40), generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="position table"):
        model(ids)
    with torch.no_grad():
        short = model(ids[:, :16]).last_hidden_state
        extend_positions(model, 48)
        long = model(ids).last_hidden_state
    assert model.config.max_position_embeddings == 48
    assert_close(model.embeddings.position_embeddings.weight[16:32], table, **TOL)
    assert_close(model.embeddings.position_embeddings.weight[32:48], table, **TOL)
    assert_close(long[:, :14], short[:, :14], **TOL)  # beyond the window of the new tokens: unchanged
