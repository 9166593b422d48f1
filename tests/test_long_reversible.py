"""Reversible layers (minibert/long/reversible.py): inputs recomputed from outputs, the same gradients as
ordinary autograd, and activations that do not pile up with depth.

Lecture 1.3; run with `pytest -m long_sequences`.
"""
import pytest
import torch
from torch.testing import assert_close

from minibert import BertConfig
from minibert.long.reversible import ReversibleEncoder

pytestmark = pytest.mark.long_sequences
TOL = dict(atol=1e-5, rtol=1e-4)


def encoder(layers=3, dropout=0.0):
    config = BertConfig(hidden_size=32, num_attention_heads=4, intermediate_size=64, num_hidden_layers=layers,
                        hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout, attn_implementation="eager")
    torch.manual_seed(0)
    return ReversibleEncoder(config)


def inputs():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 7, 32, generator=g)
    mask = torch.zeros(2, 1, 1, 7)
    mask[1, ..., 5:] = torch.finfo(torch.float32).min
    return x, mask


def test_a_layer_is_inverted_exactly():
    model = encoder(layers=1).eval()
    x1, x2 = torch.randn(2, 2, 7, 32, generator=torch.Generator().manual_seed(0)).unbind(0)
    with torch.no_grad():
        y1, y2 = model.layer[0](x1, x2)
        back1, back2 = model.layer[0].inverse(y1, y2)
    assert_close(back1, x1, **TOL)
    assert_close(back2, x2, **TOL)


@pytest.mark.parametrize("dropout", [0.0, 0.2])
def test_gradients_equal_ordinary_autograd(dropout):
    """With dropout too: the recomputation redraws the same masks."""
    model = encoder(dropout=dropout).train()
    x, mask = inputs()
    results = []
    for reversible in (True, False):
        model.zero_grad()
        torch.manual_seed(5)  # the same dropout masks in both runs
        x_ = x.clone().requires_grad_()
        out = model(x_, mask, reversible=reversible)
        out.square().sum().backward()
        results.append((out.detach(), x_.grad, {n: p.grad.clone() for n, p in model.named_parameters()}))
    (out_r, dx_r, grads_r), (out_p, dx_p, grads_p) = results
    assert_close(out_r, out_p, **TOL)
    assert_close(dx_r, dx_p, **TOL)
    assert grads_r.keys() == grads_p.keys()
    for name in grads_p:
        assert_close(grads_r[name], grads_p[name], **TOL, msg=name)


def saved_bytes(model, x, mask, reversible):
    """Bytes of the tensors autograd keeps for backward during one forward pass."""
    total = [0]

    def pack(t):
        total[0] += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(x, mask, reversible=reversible)
    return total[0]


def test_stored_activations_do_not_grow_with_depth():
    x, mask = inputs()
    x.requires_grad_()
    reversible = [saved_bytes(encoder(layers), x, mask, True) for layers in (2, 6)]
    ordinary = [saved_bytes(encoder(layers), x, mask, False) for layers in (2, 6)]
    assert reversible[0] == reversible[1] == 2 * x.numel() * 4  # the two output halves only, whatever the depth
    assert ordinary[1] > 2.5 * ordinary[0]  # every layer's activations
    assert reversible[1] < ordinary[0] / 4
