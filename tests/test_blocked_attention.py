"""CPU training attention, computed a few heads at a time with its backward pass written by hand
(model/blocked_attention.py): the same output and gradients as autograd through the plain formula.

Lecture 1.1; run with `pytest -m embeddings`.
"""
import pytest
import torch
from einops import rearrange

from minibert import BertConfig, BertModel
from minibert.model.fast import blocked_attention
from minibert.model.fast.blocked_attention import BlockedAttentionWithDropout, blocks
from minibert.model.fast.dropout import drop_mask

pytestmark = pytest.mark.embeddings


def record_masks(monkeypatch) -> list:
    """The dropout masks the blocked kernel draws, block by block."""
    masks = []

    def recording(x, p):
        masks.append(drop_mask(x, p))
        return masks[-1]

    monkeypatch.setattr(blocked_attention, "drop_mask", recording)
    return masks


def reference(q, k, v, mask, dropped, p):
    """Dropout on the attention probabilities, by the formula, differentiated by autograd."""
    scores = q @ k.transpose(-2, -1) / q.shape[-1] ** 0.5 + mask
    return torch.where(dropped, 0.0, scores.softmax(-1)) / (1 - p) @ v


# blocks of 1 head, of 4 heads (across the two examples), of all 6 heads
@pytest.mark.parametrize("block_bytes", [4 * 6 * 5, 4 * 4 * 6 * 5, 2**21])
def test_output_and_gradients_equal_autograd_through_the_formula(monkeypatch, block_bytes):
    monkeypatch.setattr(blocked_attention, "CACHE_BYTES", 2 * block_bytes)
    g = torch.Generator().manual_seed(0)
    q = torch.randn(2, 3, 6, 4, generator=g, requires_grad=True)  # b h n d
    k, v = (torch.randn(2, 3, 5, 4, generator=g, requires_grad=True) for _ in range(2))  # m = 5 keys
    mask = torch.zeros(2, 1, 1, 5)
    mask[1, ..., -2:] = torch.finfo(torch.float32).min  # the second example has two padded keys
    grad_out = torch.randn(2, 3, 6, 4, generator=g)

    masks = record_masks(monkeypatch)
    out = BlockedAttentionWithDropout.apply(q, k, v, mask, 0.3)
    dropped = rearrange(torch.cat(masks), "(b h) n m -> b h n m", b=2)  # the blocks' masks, in order
    assert len(masks) == len(blocks(6, 6, 5))
    expected = reference(q, k, v, mask, dropped, 0.3)
    torch.testing.assert_close(out, expected)
    assert 0 < dropped.float().mean() < 1
    got = torch.autograd.grad(out, (q, k, v), grad_out)
    want = torch.autograd.grad(expected, (q, k, v), grad_out)
    for name, a, b in zip("qkv", got, want):
        torch.testing.assert_close(a, b, msg=f"gradient of {name}")
    assert got[1][1, :, -2:].abs().max() == 0  # padded keys get no gradient: their weight was zero


def test_blocks_cover_every_head_once_and_respect_the_size(monkeypatch):
    monkeypatch.setattr(blocked_attention, "CACHE_BYTES", 2**22)  # blocks of 2 MB
    assert blocks(36, 512, 512) == [slice(h, h + 2) for h in range(0, 36, 2)]  # a head is 1 MB of scores
    assert blocks(12, 4096, 4096) == [slice(h, h + 1) for h in range(12)]   # never less than a head
    assert blocks(40, 16, 16) == [slice(0, 40)]
    assert blocks(20, 256, 256) == [slice(0, 8), slice(8, 16), slice(16, 20)]  # the last block is shorter


def test_bert_takes_the_blocked_path_only_when_the_scores_outgrow_the_cache(monkeypatch):
    """In CPU training with attention dropout and scores larger than the cache, BertModel takes the blocked
    path: about p of the attention weights are dropped, and gradients reach every weight of the encoder.
    Scores that fit take the plain formula."""
    config = BertConfig(vocab_size=40, hidden_size=32, num_hidden_layers=1, num_attention_heads=4,
                        intermediate_size=48, max_position_embeddings=64, attention_probs_dropout_prob=0.5,
                        hidden_dropout_prob=0.0)
    torch.manual_seed(0)
    model = BertModel(config).train()
    ids = torch.randint(5, 40, (4, 60))
    masks = record_masks(monkeypatch)
    model(ids)
    assert masks == []  # 4 x 4 x 60 x 60 floats fit in the cache
    monkeypatch.setattr(blocked_attention, "CACHE_BYTES", 4 * 4 * 60 * 60 * 4 - 1)  # now just too big
    model(ids).last_hidden_state.square().mean().backward()
    dropped = torch.cat(masks)
    assert len(masks) == len(blocks(4 * 4, 60, 60)) == 3 and dropped.shape == (4 * 4, 60, 60)
    assert dropped.float().mean().item() == pytest.approx(0.5, abs=0.01)
    for name, parameter in model.named_parameters():
        if not name.startswith("pooler"):  # the loss does not use the pooler
            assert parameter.grad is not None and torch.isfinite(parameter.grad).all(), name
