"""`python -m minibert pretrain` end to end: a few steps of a tiny BERT, loadable by minibert and transformers.

Lecture lectures/pretraining.md, section "Pre-training from the command line"; run with `pytest -m pretraining`.
"""
import json
import re

import pytest
import torch
from torch.testing import assert_close

from minibert.__main__ import main
from minibert.model.pretraining import BertForPreTraining
from minibert.tokenizer import WordPieceTokenizer

pytestmark = pytest.mark.pretraining
WORDS = ["the", "cat", "dog", "bird", "sat", "ran", "on", "a", "mat", "tree", "big", "small", "red", "and",
         "play", "##ing", "##ed", "##s"]


def write_corpus(folder, documents=80, seed=0):
    """A made-up text (documents separated by blank lines) and a vocabulary folder for it."""
    g = torch.Generator().manual_seed(seed)
    words = [w for w in WORDS if not w.startswith("##")] + ["playing", "played"]

    def sentence():
        n = int(torch.randint(4, 10, (), generator=g))
        return " ".join(words[i] for i in torch.randint(len(words), (n,), generator=g).tolist()).capitalize() + "."

    text = "\n\n".join(" ".join(sentence() for _ in range(int(torch.randint(2, 6, (), generator=g))))
                       for _ in range(documents))
    (folder / "corpus.txt").write_text(text, encoding="utf-8")
    WordPieceTokenizer(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", *WORDS]).save_pretrained(folder / "vocab")
    return folder / "corpus.txt", folder / "vocab"


def pretrain(*options):
    main(["pretrain", *map(str, options)])


def test_pretrain_a_tiny_bert_and_load_it_in_minibert_and_transformers(tmp_path, transformers_lib):
    corpus, vocab = write_corpus(tmp_path)
    out = tmp_path / "run"
    command = ["--corpus", corpus, "--eval-files", corpus, "--tokenizer", vocab, "--preset", "tiny", "--steps", 4,
               "--batch-size", 8, "--max-length", 32, "--eval-every", 2, "--save-every", 2, "--eval-examples", 32,
               "--whole-word", "--out", out]
    pretrain(*command)
    for name in ("config.json", "model.safetensors", "vocab.txt", "checkpoint.pt", "history.json", "loss_curve.png"):
        assert (out / name).is_file(), name
    history = json.loads((out / "history.json").read_text())
    assert [h["step"] for h in history["history"]] == [1, 2, 3, 4]
    assert [e["step"] for e in history["evaluations"]] == [2, 4]
    assert json.loads((out / "config.json").read_text())["architectures"] == ["BertForPreTraining"]

    ours = BertForPreTraining.from_pretrained(out)
    theirs = transformers_lib.BertForPreTraining.from_pretrained(out, attn_implementation="eager").eval()
    assert ours.config.num_hidden_layers == 2 and ours.config.hidden_size == 128
    text = "The cat sat on the mat and played."
    mine = WordPieceTokenizer.from_pretrained(out)(text, return_tensors="pt")
    reference = transformers_lib.BertTokenizerFast.from_pretrained(out)(text, return_tensors="pt")
    assert mine.input_ids.tolist() == reference["input_ids"].tolist()
    with torch.no_grad():
        a = ours(mine.input_ids, mine.attention_mask, mine.token_type_ids)
        b = theirs(**reference)
    assert_close(a.prediction_logits, b.prediction_logits, atol=1e-5, rtol=0)
    assert_close(a.seq_relationship_logits, b.seq_relationship_logits, atol=1e-5, rtol=0)

    # the same command again refuses to overwrite the run; --resume with other options says which differ
    with pytest.raises(SystemExit, match="already holds a run"):
        pretrain(*command)
    with pytest.raises(SystemExit, match="--lr: started with 0.0005, now 0.001"):
        pretrain(*command, "--resume", "--lr", "1e-3")
    pretrain(*command, "--resume")  # nothing left to do: the run had finished
    assert len(json.loads((out / "history.json").read_text())["history"]) == 4


def test_a_run_stopped_by_the_clock_resumes_to_its_end(tmp_path):
    corpus, vocab = write_corpus(tmp_path)
    out = tmp_path / "run"
    command = ["--corpus", corpus, "--tokenizer", vocab, "--preset", "tiny", "--steps", 5, "--batch-size", 8,
               "--max-length", 32, "--eval-every", 0, "--save-every", 100, "--out", out]
    pretrain(*command, "--minutes", 0)  # out of time at once: a checkpoint at step 0
    assert torch.load(out / "checkpoint.pt", weights_only=True)["step"] == 0
    pretrain(*command, "--resume")
    assert torch.load(out / "checkpoint.pt", weights_only=True)["step"] == 5


def test_clear_errors_for_a_missing_corpus_and_no_length(tmp_path, capsys):
    """Checked before any work starts: one line that names the option, exit code 2 (more in test_cli_errors.py)."""
    _, vocab = write_corpus(tmp_path)
    for options, message in [
        (["--corpus", tmp_path / "corpus.txt"], "--steps N, --minutes M"),
        (["--corpus", tmp_path / "missing.txt", "--steps", 1], "argument --corpus: .*missing.txt does not exist"),
        (["--corpus", tmp_path / "corpus.txt", "--repeats", 2, 3, "--steps", 1],
         "--repeats gives 2 numbers for 1 --corpus files"),
    ]:
        with pytest.raises(SystemExit) as exit:
            pretrain(*options, "--tokenizer", vocab, "--out", tmp_path / "run")
        assert exit.value.code == 2
        assert re.search(message, capsys.readouterr().err)
    assert not (tmp_path / "run").exists()


def test_a_fresh_vocabulary_and_sentence_order_prediction(tmp_path):
    corpus, _ = write_corpus(tmp_path)
    out = tmp_path / "run"
    pretrain("--corpus", corpus, "--train-vocab", 60, "--task", "sop", "--preset", "tiny", "--steps", 2,
             "--batch-size", 8, "--max-length", 32, "--eval-every", 0, "--out", out)
    vocab = (out / "vocab.txt").read_text(encoding="utf-8").split()
    assert vocab[:5] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] and len(vocab) <= 60
    assert BertForPreTraining.from_pretrained(out).config.vocab_size == len(vocab)
