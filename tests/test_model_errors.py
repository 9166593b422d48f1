"""The mistakes students make with a BERT get an error that says what to do.

Lecture 1.1 and 2.1; run with `pytest -m embeddings`.
"""
import pytest
import torch

from minibert import BertConfig, BertModel

pytestmark = pytest.mark.embeddings


@pytest.fixture(scope="module")
def model():
    return BertModel(BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                intermediate_size=32, max_position_embeddings=8)).eval()


def ids(*shape, high=50):
    return torch.randint(0, high, shape, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("inputs, message", [
    (dict(input_ids=ids(9)), r"shape \(batch, seq_len\); got shape \(9,\).*input_ids\[None\]"),
    (dict(input_ids=ids(1, 9)), r"9 tokens but the position table has 8 rows.*truncation=True, max_length=8"),
    (dict(input_ids=ids(2, 5) + 50), r"ids must lie in \[0, 50\).*vocabulary does not match"),
    (dict(input_ids=ids(2, 5), attention_mask=torch.ones(2, 4)), r"attention_mask must have the shape .*\(2, 5\)"),
    (dict(input_ids=ids(2, 5), token_type_ids=torch.full((2, 5), 2)), r"token_type_ids must lie in \[0, 2\)"),
    (dict(input_ids=ids(2, 5).float()), r"integer token ids"),
])
def test_bad_input_gets_a_clear_error(model, inputs, message):
    with pytest.raises((ValueError, TypeError), match=message):
        model(**inputs)


def test_padding_does_not_change_the_real_tokens(model):
    """The mask is the whole point of padding: extra [PAD] keys must not move the other tokens' vectors."""
    short = ids(1, 5, high=49) + 1
    padded = torch.cat([short, torch.zeros(1, 3, dtype=torch.long)], dim=1)
    mask = torch.tensor([[1, 1, 1, 1, 1, 0, 0, 0]])
    with torch.no_grad():
        alone = model(short).last_hidden_state
        in_batch = model(padded, attention_mask=mask).last_hidden_state[:, :5]
    torch.testing.assert_close(in_batch, alone, atol=1e-6, rtol=0)


def test_returned_attention_rows_are_distributions_that_ignore_padding(model):
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    out = model(ids(2, 5), attention_mask=mask, output_attentions=True, output_hidden_states=True)
    probs = out.attentions[0]  # b h n n
    assert probs.shape == (2, 2, 5, 5)
    torch.testing.assert_close(probs.sum(-1), torch.ones(2, 2, 5))
    assert probs[0, :, :, 3:].abs().max() == 0  # no weight on padded keys
    assert len(out.hidden_states) == 2  # embeddings + one layer
