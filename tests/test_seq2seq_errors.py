"""The mistakes a student meets with the seq2seq models say what was expected and what to do.

Lecture 2.2 (general sequence output); run with `pytest -m outputs`.
"""
import pytest
import torch

from minibert.config import BertConfig
from minibert.seq2seq import BertEncoderDecoder, BertForSeq2SeqLM, EncoderDecoderConfig, generate

pytestmark = pytest.mark.outputs


def tiny(**overrides):
    return BertConfig(**{**dict(vocab_size=30, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                intermediate_size=32, max_position_embeddings=8), **overrides})


def test_a_bert_folder_is_not_an_encoder_decoder(checkpoint_dir):
    with pytest.raises(ValueError, match=r"'bert' model, not an encoder-decoder.*from_encoder_pretrained"):
        BertEncoderDecoder.from_pretrained(checkpoint_dir)


def test_a_folder_without_config(tmp_path):
    with pytest.raises(FileNotFoundError, match="no config.json"):
        BertEncoderDecoder.from_pretrained(tmp_path)


def test_a_target_longer_than_the_decoders_positions():
    model = BertEncoderDecoder(EncoderDecoderConfig(tiny(), tiny(), 1, 0, 2)).eval()
    with pytest.raises(ValueError, match="position table has 8 rows: lower max_new_tokens"):
        generate(model, torch.tensor([[1, 5, 2]]), max_new_tokens=12)


def test_v2_source_and_target_share_the_positions():
    model = BertForSeq2SeqLM(tiny(), cls_token_id=1, sep_token_id=2).eval()
    with torch.no_grad():
        model.cls.predictions.bias[2] = -1e4  # it never writes [SEP], so it runs into the end of the table
    with pytest.raises(ValueError, match="shorten the source or lower max_new_tokens"):
        generate(model, torch.tensor([[1, 5, 6, 7, 2]]), max_new_tokens=6)


def test_no_target_given():
    model = BertEncoderDecoder(EncoderDecoderConfig(tiny(), tiny(), 1, 0, 2))
    with pytest.raises(ValueError, match="give the target"):
        model(torch.tensor([[1, 5, 2]]))


def test_a_fresh_decoder_must_share_the_vocabulary(checkpoint_dir):
    with pytest.raises(ValueError, match="vocab_size=encoder.config.vocab_size"):
        BertEncoderDecoder.from_encoder_pretrained(checkpoint_dir, decoder_config=tiny())


def test_sampling_needs_a_positive_temperature():
    model = BertEncoderDecoder(EncoderDecoderConfig(tiny(), tiny(), 1, 0, 2)).eval()
    with pytest.raises(ValueError, match="temperature must be positive"):
        generate(model, torch.tensor([[1, 5, 2]]), do_sample=True, temperature=0.0)
