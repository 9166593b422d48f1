"""Segment-level recurrence (minibert/long/recurrence.py): reading with memory is causal attention over the whole
text, and no gradient flows into the memory.

Lecture 1.3; run with `pytest -m long_sequences`.
"""
import pytest
import torch
from torch.testing import assert_close

from minibert import BertConfig
from minibert.long.recurrence import RecurrentEncoder, RelativeSelfAttention, sinusoid

pytestmark = pytest.mark.long_sequences
TOL = dict(atol=1e-5, rtol=0)


def tiny_model(mem_len, layers=2):
    config = BertConfig.preset("tiny", num_hidden_layers=layers, vocab_size=50, hidden_dropout_prob=0.0,
                               attention_probs_dropout_prob=0.0)
    torch.manual_seed(0)
    model = RecurrentEncoder(config, mem_len).eval()
    with torch.no_grad():  # the u, v biases start at zero; random ones make a wrong bias term show
        for layer in model.layers:
            layer.attention.r_w_bias.normal_()
            layer.attention.r_r_bias.normal_()
    return model


def segments(*lengths, seed=0):
    ids = torch.randint(0, 50, (2, sum(lengths)), generator=torch.Generator().manual_seed(seed))
    return ids, ids.split(list(lengths), dim=1)


@pytest.mark.parametrize("lengths", [(6, 5), (4, 4, 4), (7, 1, 3)])
def test_with_memory_equals_causal_attention_over_the_concatenation(lengths):
    """Segment by segment with a memory long enough to hold everything before = the whole text at once, causally."""
    model = tiny_model(mem_len=sum(lengths))
    whole, parts = segments(*lengths)
    with torch.no_grad():
        expected = model(whole).last_hidden_state
        mems, outputs = None, []
        for part in parts:
            out = model(part, mems)
            outputs.append(out.last_hidden_state)
            mems = out.mems
    assert_close(torch.cat(outputs, dim=1), expected, **TOL)


def test_without_memory_the_segment_forgets():
    """The check above is not vacuous: the second segment's outputs do depend on the memory."""
    model = tiny_model(mem_len=6)
    _, (first, second) = segments(6, 5)
    with torch.no_grad():
        remembered = model(second, model(first).mems).last_hidden_state
        alone = model(second).last_hidden_state
    assert (remembered - alone).abs().max() > 1e-2


def test_memory_keeps_the_last_mem_len_inputs_of_each_layer():
    model = tiny_model(mem_len=4)
    _, (first, second) = segments(6, 3)
    with torch.no_grad():
        out1 = model(first)
        out2 = model(second, out1.mems)
        embeddings = model.word_embeddings(torch.cat([first, second], dim=1))
    assert [m.shape[1] for m in out1.mems] == [4, 4]
    assert_close(out1.mems[0], model.word_embeddings(first)[:, -4:], **TOL)  # layer 0's input: the embeddings
    assert_close(out2.mems[0], embeddings[:, -4:], **TOL)                    # spans the segment boundary


def test_no_gradient_flows_into_the_memory():
    model = tiny_model(mem_len=6).train()
    _, (first, second) = segments(6, 5)
    out1 = model(first)
    assert all(not m.requires_grad for m in out1.mems)
    model.zero_grad()
    model(second, out1.mems).last_hidden_state.square().sum().backward()
    grads_with_memory = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    # the embeddings of the first segment's tokens get gradient only through the second segment's own tokens:
    # rows used only in the first segment get none
    only_first = sorted(set(first.flatten().tolist()) - set(second.flatten().tolist()))
    assert only_first, "the seed must give the first segment a token the second lacks"
    assert grads_with_memory["word_embeddings.weight"][only_first].abs().max() == 0


def test_score_is_content_plus_position_by_distance():
    """One query worked by hand: (q + u) . k_j + (q + v) . W_r R_(i - j), over sqrt(d), for its 3 memory keys and
    5 segment keys (the gather in the module must pick distance 7 - j)."""
    config = BertConfig(hidden_size=16, num_attention_heads=2)
    torch.manual_seed(0)
    attention = RelativeSelfAttention(config).eval()
    with torch.no_grad():
        attention.r_r_bias.normal_()
        x = torch.randn(1, 5, 16)
        memory = torch.randn(1, 3, 16)
        with_memory = attention(x, memory)
        # the same computation by hand, for query 4 (position 3 + 4 = 7) and its 8 keys
        keys_in = torch.cat([memory, x], dim=1)
        q, k, v = attention.qkv_net(keys_in).view(1, 8, 3, 2, 8).unbind(2)
        r = attention.r_net(sinusoid(torch.arange(8), 16)).view(8, 2, 8)
        query = q[0, 7]  # h d
        scores = torch.stack([((query + attention.r_w_bias) * k[0, j]).sum(-1)
                              + ((query + attention.r_r_bias) * r[7 - j]).sum(-1) for j in range(8)], dim=-1)
        probs = (scores / 8 ** 0.5).softmax(-1)  # h 8
        expected = torch.einsum("hj,jhd->hd", probs, v[0]).reshape(16)
    assert_close(with_memory[0, 4], expected, **TOL)
