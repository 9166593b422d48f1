"""Training and generation line up: after a few steps on two pairs, greedy generation writes their targets.

Lecture 2.2 (general sequence output); run with `pytest -m outputs`. This is what proves that the labels
(target + [SEP]), the shift behind the start token, and the position each prediction is read from are the same in
training as in generation, for v1 and v2, with dropout on during training.
"""
import pytest
import torch

from minibert.config import BertConfig
from minibert.model.pretraining import IGNORE_INDEX
from minibert.seq2seq import BertEncoderDecoder, BertForSeq2SeqLM, EncoderDecoderConfig, generate

pytestmark = pytest.mark.outputs
CLS, SEP, PAD = 1, 2, 0


def tiny():
    return BertConfig(vocab_size=30, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                      intermediate_size=64, max_position_embeddings=32, hidden_dropout_prob=0.1,
                      attention_probs_dropout_prob=0.1)


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_memorised_pairs_come_back_from_generation(version):
    torch.manual_seed(0)
    if version == "v1":
        model = BertEncoderDecoder(EncoderDecoderConfig(tiny(), tiny(), CLS, PAD, SEP))
    else:
        model = BertForSeq2SeqLM(tiny(), cls_token_id=CLS, sep_token_id=SEP)
    input_ids = torch.tensor([[CLS, 5, 6, 7, SEP], [CLS, 8, 9, SEP, PAD]])
    attention_mask = (input_ids != PAD).long()
    labels = torch.tensor([[10, 11, 12, 13, SEP], [14, 12, SEP, IGNORE_INDEX, IGNORE_INDEX]])
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(60):
        loss = model(input_ids, attention_mask, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    assert loss.item() < 0.1
    written = generate(model, input_ids, attention_mask, max_new_tokens=8).sequences
    expected = torch.tensor([[CLS if version == "v1" else SEP, 10, 11, 12, 13, SEP],
                             [CLS if version == "v1" else SEP, 14, 12, SEP, PAD, PAD]])
    assert torch.equal(written, expected)
