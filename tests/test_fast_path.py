"""The textbook path and the fast path give the same numbers, and the textbook kernel is the formula.

Lecture 1.1; run with `pytest -m embeddings`. The textbook path (attn_implementation="eager":
model/attention.py, model/encoder.py) is what a student reads, what the notebooks and the exercises run, and
what tests/test_model_parity.py compares with transformers. The fast path (model/fast/) is the default; these
tests are the whole argument that it computes the same thing.
"""
import math

import pytest
import torch
from torch.testing import assert_close

from minibert import BertConfig, BertModel
from minibert.model import ATTENTION_FUNCTIONS, eager_attention, register_attention
from minibert.model.attention import additive_mask
from minibert.model.fast.dropout import drop_mask, dropout
from minibert.model.fast.sdpa import sdpa_attention
from reference import random_batch

pytestmark = pytest.mark.embeddings
TOL = dict(atol=1e-5, rtol=0)
SIZES = dict(vocab_size=300, hidden_size=48, num_hidden_layers=2, num_attention_heads=4, intermediate_size=80,
             max_position_embeddings=32, type_vocab_size=2)


def test_textbook_kernel_is_the_formula_by_hand():
    """One query, two keys, d = 4. q.k1 = 4, scaled by 1/sqrt(4) to 2; q.k2 = 0. softmax([2, 0]) =
    [e^2, 1] / (e^2 + 1) = [0.8808, 0.1192]. Without the scaling it would be softmax([4, 0]) = [0.982, 0.018]:
    the exercise of notebook 02 (remove the scaling) fails here, and in the parity tests."""
    q = torch.ones(1, 1, 1, 4)
    k = torch.stack([torch.ones(4), torch.zeros(4)])[None, None]  # 1 1 2 4
    v = torch.tensor([[10.0, 0, 0, 0], [0, 10.0, 0, 0]])[None, None]
    context, probs = eager_attention(q, k, v)
    e2 = math.exp(2)
    assert_close(probs, torch.tensor([[[[e2 / (e2 + 1), 1 / (e2 + 1)]]]]))
    assert_close(context, torch.tensor([[[[10 * e2 / (e2 + 1), 10 / (e2 + 1), 0, 0]]]]))
    # a hidden key gets no weight at all
    mask = additive_mask(torch.tensor([[1, 0]]), torch.float32)
    context, probs = eager_attention(q, k, v, mask)
    assert_close(probs, torch.tensor([[[[1.0, 0.0]]]]))


def test_masks_of_two_and_three_dimensions():
    padding = torch.tensor([[1, 1, 0]])
    assert additive_mask(padding, torch.float32).shape == (1, 1, 1, 3)
    causal = torch.tril(torch.ones(3, 3, dtype=torch.long))[None]
    mask = additive_mask(causal, torch.float32)
    assert mask.shape == (1, 1, 3, 3)
    assert (mask[0, 0] == 0).tolist() == causal[0].bool().tolist()


@pytest.mark.parametrize("mask_kind", ["none", "padding", "causal"])
@pytest.mark.parametrize("with_grad", [False, True])
def test_fast_kernel_equals_textbook_kernel(mask_kind, with_grad):
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 6, 8, generator=g, requires_grad=with_grad) for _ in range(3))
    mask = {"none": None,
            "padding": additive_mask(torch.tensor([[1] * 6, [1] * 4 + [0] * 2]), torch.float32),
            "causal": additive_mask(torch.tril(torch.ones(2, 6, 6)), torch.float32)}[mask_kind]
    fast, _ = sdpa_attention(q, k, v, mask)
    plain, _ = eager_attention(q, k, v, mask)
    assert_close(fast, plain, **TOL)
    if with_grad:
        for got, want in zip(torch.autograd.grad(fast.square().sum(), (q, k, v)),
                             torch.autograd.grad(plain.square().sum(), (q, k, v))):
            assert_close(got, want, **TOL)


def model_pair(seed=0, **overrides):
    torch.manual_seed(seed)
    fast = BertModel(BertConfig(**SIZES, **overrides))
    textbook = BertModel(BertConfig(**SIZES, **overrides, attn_implementation="eager"))
    textbook.load_state_dict(fast.state_dict())
    return fast.eval(), textbook.eval()


@pytest.mark.parametrize("training", [False, True])
def test_fast_model_equals_textbook_model_on_padded_batches(training):
    """Outputs at the real tokens, the pooler and every parameter's gradient; in training (dropout off, so both
    draw nothing) and in inference. The fast path skips the padding and returns zeros there."""
    fast, textbook = model_pair(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    batch = random_batch(300, batch=4, length=20, type_vocab_size=2, seed=1)
    batch["attention_mask"][3, :3] = 0  # left padding too
    real = batch["attention_mask"].bool()
    outputs = {}
    for name, model in (("fast", fast), ("textbook", textbook)):
        model.train(training)
        with torch.set_grad_enabled(training):
            out = model(**batch, output_hidden_states=True)
            if training:
                (out.last_hidden_state[real].square().mean() + out.pooler_output[real[:, 0]].sum()).backward()
        outputs[name] = out
    for ours, theirs in zip(outputs["fast"].hidden_states, outputs["textbook"].hidden_states):
        assert_close(ours[real], theirs[real], **TOL)
        assert not ours[~real].any()  # the padding is not computed
    assert_close(outputs["fast"].pooler_output[real[:, 0]], outputs["textbook"].pooler_output[real[:, 0]], **TOL)
    if training:
        for (name, p_fast), p_textbook in zip(fast.named_parameters(), textbook.parameters()):
            assert_close(p_fast.grad, p_textbook.grad, atol=1e-5, rtol=1e-4, msg=name)


def test_a_three_dimensional_mask_runs_the_same_on_both_paths():
    """A causal mask (b n n), as generation uses: the fast kernel under the textbook encoder."""
    fast, textbook = model_pair(seed=1)
    ids = torch.randint(5, 300, (2, 10), generator=torch.Generator().manual_seed(2))
    causal = torch.tril(torch.ones(10, 10, dtype=torch.long)).expand(2, 10, 10)
    assert_close(fast(ids, causal).last_hidden_state, textbook(ids, causal).last_hidden_state, **TOL)
    # causal: the first token's output ignores every later token
    changed = ids.clone()
    changed[:, 5:] = 7
    assert_close(textbook(changed, causal).last_hidden_state[:, :5], textbook(ids, causal).last_hidden_state[:, :5],
                 **TOL)


def test_the_switch_changes_which_kernel_runs(monkeypatch):
    """attn_implementation picks the kernel by name; a new kind is one registry entry, and the model's keyword
    arguments reach it."""
    calls = []

    @register_attention("recorded")
    def recorded(q, k, v, mask=None, dropout_p=0.0, **options):
        calls.append(options)
        return eager_attention(q, k, v, mask, dropout_p)

    try:
        fast, textbook = model_pair(seed=2)
        ids = torch.randint(5, 300, (2, 7), generator=torch.Generator().manual_seed(3))
        textbook.config.attn_implementation = "recorded"
        out = textbook(ids, window=3)
        assert calls == [{"window": 3}] * SIZES["num_hidden_layers"]
        assert_close(out.last_hidden_state, fast(ids).last_hidden_state, **TOL)
    finally:
        del ATTENTION_FUNCTIONS["recorded"]
    with pytest.raises(ValueError, match="attn_implementation='nonsense'.*eager"):
        BertModel(BertConfig(**SIZES, attn_implementation="nonsense"))


def test_attention_maps_come_from_the_textbook_kernel():
    fast, textbook = model_pair(seed=3)
    ids = torch.randint(5, 300, (1, 6), generator=torch.Generator().manual_seed(4))
    maps = fast(ids, output_attentions=True).attentions
    assert len(maps) == 2 and maps[0].shape == (1, 4, 6, 6)
    assert_close(maps[0].sum(-1), torch.ones(1, 4, 6))
    assert_close(maps[1], textbook(ids, output_attentions=True).attentions[1], **TOL)


def test_the_faster_dropout_is_dropout():
    """The fast path draws dropout masks its own way; the parity tests run without dropout, so this checks it."""
    torch.manual_seed(0)
    x = torch.ones(200_000, requires_grad=True)
    y = dropout(x, 0.1)
    kept = y != 0
    assert kept.float().mean().item() == pytest.approx(0.9, abs=0.005)  # 7 standard deviations
    assert_close(y[kept], torch.full((int(kept.sum()),), 1 / 0.9))
    y.sum().backward()
    assert_close(x.grad, y.detach())  # the gradient goes through the same mask and scale
    assert dropout(x, 0.1, training=False) is x
    assert dropout(x, 1.0).eq(0).all()


def test_drop_masks_are_unbiased_everywhere():
    """Four 16-bit numbers come out of each 64-bit draw: every one of the four positions, and odd sizes, must
    drop at the rate asked for (p is rounded to a multiple of 2^-16). 1,000,000 draws per position: sd at most
    0.0005, allow 0.003 (6 sd)."""
    torch.manual_seed(0)
    for p in (0.1, 0.5, 0.9):
        drop = drop_mask(torch.empty(4_000_003), p)
        assert drop.shape == (4_000_003,)
        for lane in range(4):
            assert drop[lane::4].float().mean().item() == pytest.approx(p, abs=0.003)


def test_attention_dropout_is_dropout_on_the_probabilities():
    """In CPU training the fast kernel applies dropout's 1 / (1 - p) after the product with v, not before: the
    same numbers as the textbook's dropout(probs) @ v with the same mask, and the same gradients."""
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 5, 4, generator=g, requires_grad=True) for _ in range(3))
    mask = torch.zeros(2, 1, 1, 5)
    mask[1, ..., -2:] = torch.finfo(torch.float32).min  # the second example has two padded keys

    torch.manual_seed(1)
    context, _ = sdpa_attention(q, k, v, mask, 0.25)
    _, probs = eager_attention(q, k, v, mask)
    torch.manual_seed(1)
    drop = drop_mask(probs, 0.25)  # the mask the kernel drew
    expected = (torch.where(drop, 0.0, probs) / 0.75) @ v
    assert_close(context, expected)
    assert 0 < drop.float().mean() < 1
    grads = torch.autograd.grad(context.sum(), (q, k, v), retain_graph=True)
    expected_grads = torch.autograd.grad(expected.sum(), (q, k, v))
    for got, want in zip(grads, expected_grads):
        assert_close(got, want)
