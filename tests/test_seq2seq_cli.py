"""`python -m minibert generate`: what it prints is the library's generation, decoded.

Lecture 2.2 (general sequence output); run with `pytest -m outputs`. A tiny random v1 and v2 on the real
vocabulary: the words are nonsense, the point is that the command runs the same computation as the library.
"""
import pytest
import torch

from minibert.__main__ import main
from minibert.config import BertConfig
from minibert.seq2seq import BertEncoderDecoder, BertForSeq2SeqLM, EncoderDecoderConfig, generate
from minibert.tokenizer import WordPieceTokenizer

pytestmark = pytest.mark.outputs
TEXTS = ["Ein Hund rennt über die Wiese.", "Zwei Männer."]


def tiny(**sizes):
    return BertConfig(vocab_size=30522, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                      intermediate_size=32, max_position_embeddings=64, **sizes)


@pytest.fixture(scope="module")
def tokenizer(checkpoint_dir):
    return WordPieceTokenizer.from_pretrained(checkpoint_dir)


@pytest.mark.parametrize("version", ["v1", "v2"])
@pytest.mark.parametrize("options, flags", [(dict(), []), (dict(num_beams=2), ["--num-beams", "2"])])
def test_generate_prints_the_librarys_translation(tokenizer, tmp_path, capsys, version, options, flags):
    torch.manual_seed(0)
    if version == "v1":
        model = BertEncoderDecoder(EncoderDecoderConfig(tiny(), tiny())).eval()
    else:
        model = BertForSeq2SeqLM(tiny()).eval()
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    batch = tokenizer(TEXTS, padding=True, return_tensors="pt")
    expected = [tokenizer.decode(row[1:]) for row in
                generate(model, batch.input_ids, batch.attention_mask, max_new_tokens=6, **options).sequences]
    main(["generate", "--model", str(tmp_path), "--text", *TEXTS, "--max-new-tokens", "6", *flags])
    printed = capsys.readouterr().out.splitlines()
    assert printed == expected and len(printed) == 2 and all(printed)


def test_a_plain_bert_folder_is_refused(checkpoint_dir):
    with pytest.raises(SystemExit, match="not a model trained to generate"):
        main(["generate", "--model", str(checkpoint_dir), "--text", "Ein Hund."])


@pytest.mark.parametrize("option, value, expected", [("--num-beams", "0", "--num-beams"),
                                                     ("--top-p", "1.5", "--top-p"),
                                                     ("--temperature", "0", "--temperature")])
def test_generation_options_are_checked_before_any_work(checkpoint_dir, capsys, option, value, expected):
    with pytest.raises(SystemExit) as stop:
        main(["generate", "--model", str(checkpoint_dir), "--text", "Ein Hund.", option, value])
    assert stop.value.code == 2
    assert f"argument {expected}" in capsys.readouterr().err
