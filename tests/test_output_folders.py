"""Nothing a user saved is lost: what `python -m minibert pretrain --out` may write into, and what it removes.

Lecture lectures/pretraining.md, section "Checkpoints and resuming"; run with `pytest -m pretraining`.
The rules live in minibert/output_folder.py, for every command that writes a model.
"""
from pathlib import Path

import pytest
import torch

from minibert.__main__ import main
from minibert.output_folder import OutputFolderError, check_output_folder, clear_output_folder
from test_cli_errors import run_main, snapshot, tiny_model_folder
from test_pretraining_cli import WORDS, write_corpus

pytestmark = pytest.mark.pretraining
TINY_RUN = ["--preset", "tiny", "--steps", 1, "--batch-size", 8, "--max-length", 32, "--eval-every", 0]


def someone_elses_model(folder, transformers_lib, tmp_path):
    """A model folder as the Hub gives it: another vocabulary, with tokenizer.json (which transformers reads
    before vocab.txt), special_tokens_map.json and a pytorch_model.bin beside model.safetensors."""
    from minibert.tokenizer import WordPieceTokenizer
    other = tmp_path / "other-vocab"
    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    WordPieceTokenizer([*special, "zebra", "##s", "the", "mat"]).save_pretrained(other)
    tiny_model_folder(folder, other)
    transformers_lib.BertTokenizerFast(vocab_file=str(other / "vocab.txt")).save_pretrained(folder)
    (folder / "special_tokens_map.json").write_text('{"unk_token": "[UNK]"}')  # older transformers wrote it
    torch.save({"stale": torch.zeros(1)}, folder / "pytorch_model.bin")
    (folder / "notes.txt").write_text("my notes about this model")
    return folder


def test_a_folder_that_holds_a_model_is_refused_and_left_as_it_was(tmp_path, capsys, transformers_lib):
    corpus, vocab = write_corpus(tmp_path)
    model = someone_elses_model(tmp_path / "model", transformers_lib, tmp_path)
    before = snapshot(model)
    code, err = run_main(capsys, "pretrain", "--corpus", corpus, "--tokenizer", vocab, *TINY_RUN, "--out", model)
    assert code == 1
    assert f"error: {model} already holds a model that this command did not write (config.json, model." in err
    assert "add --overwrite to replace it" in err and "Traceback" not in err
    assert snapshot(model) == before


def test_a_folder_of_other_files_is_refused_too(tmp_path, capsys):
    corpus, vocab = write_corpus(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    (out / "thesis.tex").write_text("chapter 1")
    code, err = run_main(capsys, "pretrain", "--corpus", corpus, "--tokenizer", vocab, *TINY_RUN, "--out", out)
    assert code == 1 and f"{out} already holds files that this command did not write (thesis.tex)" in err
    assert (out / "thesis.tex").read_text() == "chapter 1"


def test_overwrite_removes_the_old_models_files_so_transformers_reads_the_new_one(tmp_path, capsys, transformers_lib):
    corpus, vocab = write_corpus(tmp_path)
    model = someone_elses_model(tmp_path / "model", transformers_lib, tmp_path)
    notes = snapshot(model)[Path("notes.txt")]
    main(["pretrain", "--corpus", str(corpus), "--tokenizer", str(vocab), *map(str, TINY_RUN), "--out", str(model),
          "--overwrite"])
    err = capsys.readouterr().err
    assert ("--overwrite: removed the old config.json, model.safetensors, pytorch_model.bin, special_tokens_map.json, "
            "tokenizer.json, tokenizer_config.json, vocab.txt from") in err
    names = sorted(p.name for p in model.iterdir())
    assert names == ["checkpoint.pt", "config.json", "history.json", "loss_curve.png", "model.safetensors", "notes.txt",
                     "tokenizer_config.json", "vocab.txt"]
    assert snapshot(model)[Path("notes.txt")] == notes  # not a model file: left alone
    # with the old tokenizer.json left behind, transformers would tokenize with the other vocabulary
    theirs = transformers_lib.AutoTokenizer.from_pretrained(model)
    assert theirs.convert_ids_to_tokens(list(range(len(WORDS) + 6)))[5:] == [".", *WORDS]
    assert theirs("the cat sat")["input_ids"] == [2, 6, 7, 10, 3]


@pytest.mark.parametrize("option", ["--init", "--tokenizer"])
def test_the_folder_a_run_starts_from_is_never_its_output(tmp_path, capsys, option):
    corpus, vocab = write_corpus(tmp_path)
    start = tiny_model_folder(tmp_path / "start", vocab)
    before = snapshot(start)
    starting = {"--init": ["--init", start, "--tokenizer", vocab], "--tokenizer": ["--tokenizer", start]}[option]
    for extra in ([], ["--overwrite"]):
        code, err = run_main(capsys, "pretrain", "--corpus", corpus, *starting, *TINY_RUN, "--out", start, *extra)
        assert code == 2 and (f"error: {option} and --out are the same folder ({start}): the run would write over "
                              "what it starts from") in err
    assert snapshot(start) == before


def test_a_run_folder_needs_resume_or_overwrite_and_resume_needs_a_checkpoint(tmp_path, capsys):
    corpus, vocab = write_corpus(tmp_path)
    out = tmp_path / "run"
    out.mkdir()
    (out / "vocab.txt").write_bytes((vocab / "vocab.txt").read_bytes())
    code, err = run_main(capsys, "pretrain", "--corpus", corpus, "--tokenizer", vocab, *TINY_RUN, "--out", out,
                         "--resume")
    assert code == 1 and f"error: nothing to resume: {out} holds no checkpoint.pt" in err
    torch.save({}, out / "checkpoint.pt")
    before = snapshot(out)
    code, err = run_main(capsys, "pretrain", "--corpus", corpus, "--tokenizer", vocab, *TINY_RUN, "--out", out)
    assert code == 1 and f"{out} already holds a run ({out / 'checkpoint.pt'}). Add --resume" in err
    assert snapshot(out) == before


def test_leftovers_of_killed_saves_are_removed_when_the_run_resumes(tmp_path, capsys):
    corpus, vocab = write_corpus(tmp_path)
    out = tmp_path / "run"
    command = ["pretrain", "--corpus", str(corpus), "--tokenizer", str(vocab), *map(str, TINY_RUN), "--out", str(out)]
    main([*command, "--minutes", "0"])  # out of time at once: a checkpoint at step 0
    leftovers = [out / ".checkpoint.pt.a1b2c3d4.tmp", out / ".model.safetensors.x_y_z_00.tmp",
                 out / ".history.json.qwertyui.tmp"]
    for path in leftovers:
        path.write_bytes(b"\0" * 1000)  # what a kill in the middle of a save leaves
    keep = out / ".my-own.tmp"
    keep.write_text("not written by minibert")
    main([*command, "--resume"])
    assert torch.load(out / "checkpoint.pt", weights_only=True)["step"] == 1
    assert not any(path.exists() for path in leftovers) and keep.exists()


def test_a_folder_with_only_leftovers_counts_as_empty(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / ".checkpoint.pt.abcdefgh.tmp").write_bytes(b"half")
    stale = check_output_folder(out, run_file="checkpoint.pt")
    assert stale == [out / ".checkpoint.pt.abcdefgh.tmp"] and (out / ".checkpoint.pt.abcdefgh.tmp").exists()
    assert clear_output_folder(out, stale) == [] and list(out.iterdir()) == []


def test_check_output_folder_changes_nothing_and_lists_what_overwrite_removes(tmp_path):
    out = tmp_path / "model"
    (out / "1_Pooling").mkdir(parents=True)
    for name in ("config.json", "model-00001-of-00002.safetensors", "modules.json", "README.md",
                 "1_Pooling/config.json", "history.json"):
        (out / name).write_text(name)
    before = snapshot(out)
    with pytest.raises(OutputFolderError, match="already holds a model"):
        check_output_folder(out, run_file="checkpoint.pt")
    stale = check_output_folder(out, overwrite=True, run_file="checkpoint.pt", writes=("history.json",))
    assert snapshot(out) == before
    assert [p.name for p in stale] == ["1_Pooling", "config.json", "history.json", "model-00001-of-00002.safetensors",
                                       "modules.json"]
    clear_output_folder(out, stale)
    assert [p.name for p in out.iterdir()] == ["README.md"]
