"""Every bad input on the command line gets one clear line, before any work starts, and leaves the user's files as
they were.

Lecture lectures/pretraining.md, section "Pre-training from the command line"; run with `pytest -m pretraining`.
Options out of range stop argparse with exit code 2 and a line naming the option, the value and what is allowed
(minibert/options.py); files that cannot be used stop with exit code 1 and a line naming the file and what was
expected; `--debug` or MINIBERT_DEBUG=1 bring the traceback back.
"""
import argparse
import math
import os
import pickle
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from minibert.__main__ import main
from minibert.options import number_in, probability, text_file
from test_pretraining_cli import write_corpus

pytestmark = pytest.mark.pretraining
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def corpus(tmp_path):
    corpus, vocab = write_corpus(tmp_path, documents=20)
    return tmp_path, corpus, vocab


def run_main(capsys, *argv) -> tuple[int, str]:
    """`python -m minibert ...` in this process: its exit code and what it printed on stderr."""
    with pytest.raises(SystemExit) as exit:
        main([str(a) for a in argv])
    err = capsys.readouterr().err
    code = exit.value.code
    if isinstance(code, str):  # SystemExit("error: ...") is printed by the interpreter, with exit code 1
        return 1, err + code
    return code, err


def snapshot(folder: Path) -> dict:
    """Every file under `folder`: its bytes and modification time."""
    return {p.relative_to(folder): (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(folder.rglob("*"))
            if p.is_file()}


@pytest.mark.parametrize("option, value, allowed", [
    ("--mlm-probability", "1.5", "a number in (0, 1)"),
    ("--mlm-probability", "0", "a number in (0, 1)"),
    ("--mlm-probability", "-0.2", "a number in (0, 1)"),
    ("--warmup", "2", "a number in [0, 1)"),
    ("--minutes", "-1", "a number of at least 0"),
    ("--batch-size", "0", "a whole number of at least 1"),
    ("--batch-size", "-4", "a whole number of at least 1"),
    ("--batch-size", "8.5", "a whole number of at least 1"),
    ("--accumulation", "0", "a whole number of at least 1"),
    ("--lr", "-1", "a number greater than 0"),
    ("--lr", "nan", "a number greater than 0"),
    ("--dropout", "1.5", "a number in [0, 1)"),
    ("--steps", "0", "a whole number of at least 1"),
    ("--max-length", "4", "a whole number of at least 5"),
    ("--adam-beta2", "1", "a number in [0, 1)"),
    ("--short-seq-prob", "1.01", "a number in [0, 1]"),
    ("--save-every", "-5", "a whole number of at least 0"),
])
def test_an_option_out_of_range_names_option_value_and_range(corpus, capsys, option, value, allowed):
    folder, text, vocab = corpus
    before = snapshot(folder)
    code, err = run_main(capsys, "pretrain", "--corpus", text, "--tokenizer", vocab, "--steps", 2,
                         "--out", folder / "run", option, value)
    assert code == 2
    value_shown = repr(value) if allowed.startswith("a whole") and "." in value else value
    assert f"python -m minibert pretrain: error: argument {option}: expected {allowed}, got {value_shown}\n" in err
    assert len(err.splitlines()) == 2 and "--help" in err.splitlines()[1]  # one line and where to look, no usage
    assert not (folder / "run").exists() and snapshot(folder) == before


@pytest.mark.parametrize("options, message", [
    ([], "say how long to train: --steps N, --minutes M, or both."),
    (["--minutes", "0"], "--minutes 0 without --steps leaves no time"),
    (["--steps", "2", "--batch-size", "8", "--accumulation", "3"],
     "--batch-size 8 cannot be split into 3 equal micro-batches (--accumulation 3 x 1 processes); "
     "choose a multiple of 3"),
    (["--steps", "2", "--repeats", "1", "2"], "--repeats gives 2 numbers for 1 --corpus files"),
    (["--steps", "2", "--train-vocab", "60"], "--tokenizer uses a vocabulary, --train-vocab learns a new one"),
    (["--steps", "2", "--resume", "--overwrite"], "--resume continues the run in --out and --overwrite replaces it"),
    (["--steps", "2", "--short-steps", "5", "--short-length", "64", "--max-length", "64"],
     "--short-length 64 must be shorter than --max-length 64"),
])
def test_options_that_do_not_fit_together_are_refused_before_any_work(corpus, capsys, options, message):
    folder, text, vocab = corpus
    code, err = run_main(capsys, "pretrain", "--corpus", text, "--tokenizer", vocab, "--out", folder / "run", *options)
    assert code == 2 and f"python -m minibert pretrain: error: {message}" in err
    assert not (folder / "run").exists()


def test_the_batch_is_split_over_torchrun_processes_too(corpus, capsys, monkeypatch):
    folder, text, vocab = corpus
    monkeypatch.setenv("WORLD_SIZE", "2")
    code, err = run_main(capsys, "pretrain", "--corpus", text, "--tokenizer", vocab, "--steps", 1,
                         "--batch-size", 6, "--accumulation", 2, "--out", folder / "run")
    assert code == 2 and "--accumulation 2 x 2 processes); choose a multiple of 4" in err


def test_a_corpus_that_is_not_utf8_names_file_position_and_line(tmp_path, capsys):
    _, vocab = write_corpus(tmp_path)
    latin1 = tmp_path / "notes.txt"
    text = ("A plain English sentence.\n" * 2693).encode()  # 70,018 bytes of ASCII: the bad byte is not first
    latin1.write_bytes(text[:70003] + "é".encode("latin-1") + text[70003:])
    code, err = run_main(capsys, "pretrain", "--corpus", latin1, "--tokenizer", vocab, "--steps", 1,
                         "--out", tmp_path / "run")
    assert code == 2
    assert (f"argument --corpus: {latin1} is not UTF-8 text: byte 0xe9 at position 70,003 (line 2,693) is not "
            "valid UTF-8") in err
    assert "save it as UTF-8" in err and "Traceback" not in err and not (tmp_path / "run").exists()


def test_utf8_characters_across_the_read_chunks_are_accepted_and_positions_stay_exact(tmp_path):
    """text_file reads 1 MiB at a time: a character cut by a chunk's end is whole again with the next chunk."""
    path = tmp_path / "big.txt"
    head = b"a" * ((1 << 20) - 1) + "€".encode()  # the 3 bytes of € start 1 byte before the first chunk ends
    path.write_bytes(head + b"\nok\n")
    assert text_file(str(path)) == path
    path.write_bytes(head + b"\n" + b"\xff")
    with pytest.raises(argparse.ArgumentTypeError, match=f"byte 0xff at position {len(head) + 1:,} \\(line 2\\)"):
        text_file(str(path))
    path.write_bytes(b"abc" + "€".encode()[:2])  # cut short in the middle of a character
    with pytest.raises(argparse.ArgumentTypeError, match="ends in the middle of a character"):
        text_file(str(path))


@pytest.mark.parametrize("name, message", [
    ("missing.txt", "missing.txt does not exist"),
    ("empty.txt", "empty.txt is empty; expected plain text"),
    ("", "is a folder; expected a file"),
])
def test_a_missing_empty_or_folder_corpus_is_one_line(tmp_path, capsys, name, message):
    _, vocab = write_corpus(tmp_path)
    (tmp_path / "empty.txt").write_bytes(b"")
    code, err = run_main(capsys, "pretrain", "--corpus", tmp_path / name, "--tokenizer", vocab, "--steps", 1,
                         "--out", tmp_path / "run")
    assert code == 2 and "argument --corpus: " in err and message in err and "Traceback" not in err


def test_a_vocabulary_that_is_not_utf8_names_the_file(tmp_path, capsys):
    corpus, vocab = write_corpus(tmp_path)
    (vocab / "vocab.txt").write_bytes((vocab / "vocab.txt").read_bytes() + "café\n".encode("latin-1"))
    code, err = run_main(capsys, "pretrain", "--corpus", corpus, "--tokenizer", vocab, "--steps", 1,
                         "--out", tmp_path / "run")
    size = len((vocab / "vocab.txt").read_bytes())
    assert code == 2 and (f"argument --tokenizer: {vocab / 'vocab.txt'} is not UTF-8 text: byte 0xe9 at position "
                          f"{size - 2:,} (line 25)") in err


@pytest.mark.parametrize("option, make, message", [
    ("--tokenizer", lambda folder: folder / "corpus.txt", "corpus.txt is a file; expected a folder"),
    ("--tokenizer", lambda folder: folder, "has no vocab.txt; expected a folder with a WordPiece vocabulary"),
    ("--init", lambda folder: folder / "vocab", "is not a model folder: it has no config.json and no "
                                                "model.safetensors or pytorch_model.bin"),
    ("--out", lambda folder: folder / "corpus.txt", "corpus.txt is a file; expected a folder to write into"),
])
def test_a_folder_option_given_the_wrong_thing(tmp_path, capsys, option, make, message):
    corpus, vocab = write_corpus(tmp_path)
    before = snapshot(tmp_path)
    options = {"--tokenizer": vocab, "--out": tmp_path / "run", option: make(tmp_path)}
    code, err = run_main(capsys, "pretrain", "--corpus", corpus, "--steps", 1,
                         *[x for pair in options.items() for x in pair])
    assert code == 2 and f"argument {option}: " in err and message in err
    assert snapshot(tmp_path) == before


def tiny_model_folder(folder: Path, vocab: Path) -> Path:
    from minibert import BertConfig
    from minibert.model.pretraining import BertForPreTraining
    from minibert.tokenizer import WordPieceTokenizer
    tokenizer = WordPieceTokenizer.from_pretrained(vocab)
    config = BertConfig.preset("tiny", vocab_size=tokenizer.vocab_size, max_position_embeddings=64)
    BertForPreTraining(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_an_init_folder_whose_weights_are_a_list_is_one_line(tmp_path, capsys):
    corpus, vocab = write_corpus(tmp_path)
    init = tiny_model_folder(tmp_path / "init", vocab)
    from safetensors.torch import load_file
    torch.save(list(load_file(init / "model.safetensors").values()), init / "pytorch_model.bin")
    (init / "model.safetensors").unlink()
    code, err = run_main(capsys, "pretrain", "--corpus", corpus, "--tokenizer", vocab, "--init", init, "--steps", 1,
                         "--out", tmp_path / "run")
    assert code == 1
    assert f"error: {init / 'pytorch_model.bin'} holds a list, not a state dict" in err
    assert "AttributeError" not in err and "Traceback" not in err


class RunsCode:
    def __reduce__(self):
        return (os.system, ("echo this must never run",))


def test_an_init_folder_with_a_pickle_that_runs_code_is_refused_without_unsafe_advice(tmp_path, capsys):
    corpus, vocab = write_corpus(tmp_path)
    init = tiny_model_folder(tmp_path / "init", vocab)
    (init / "model.safetensors").unlink()
    (init / "pytorch_model.bin").write_bytes(pickle.dumps({"weight": RunsCode()}))
    code, err = run_main(capsys, "pretrain", "--corpus", corpus, "--tokenizer", vocab, "--init", init, "--steps", 1,
                         "--out", tmp_path / "run")
    assert code == 1 and "refused to read the weights" in err and "could run code" in err
    assert "weights_only" not in err and "trust" not in err and "this must never run" not in err


def test_a_checkpoint_that_is_not_a_training_checkpoint_is_one_line(tmp_path, capsys):
    corpus, vocab = write_corpus(tmp_path)
    run = tmp_path / "run"
    run.mkdir()
    torch.save({"step": 3}, run / "checkpoint.pt")
    code, err = run_main(capsys, "pretrain", "--corpus", corpus, "--tokenizer", vocab, "--steps", 1, "--resume",
                         "--out", run)
    assert code == 1 and f"{run / 'checkpoint.pt'} is not a minibert training checkpoint (it has no model," in err


def test_the_benchmark_options_are_checked_too(tmp_path, capsys):
    results = tmp_path / "speed.json"
    results.write_text("{}")
    before = snapshot(tmp_path)
    code, err = run_main(capsys, "bench", "speed", "--repeats", "0")
    assert code == 2 and "bench speed: error: argument --repeats: expected a whole number of at least 1, got 0" in err
    code, err = run_main(capsys, "bench", "speed", "--out", results)
    assert code == 2 and f"argument --out: {results} already exists; choose another name" in err
    code, err = run_main(capsys, "bench", "speed", "--checkpoint", tmp_path)
    assert code == 2 and "argument --checkpoint: " in err and "is not a model folder" in err
    assert snapshot(tmp_path) == before


def test_number_in_keeps_open_and_closed_ends_apart():
    closed, open_ = probability(), probability(zero=False, one=False)
    assert closed("0") == 0.0 and closed("1") == 1.0 and open_("0.5") == 0.5
    for bad in ("0", "1", "-0.0001", "1.0001", "inf"):
        with pytest.raises(argparse.ArgumentTypeError, match=r"expected a number in \(0, 1\)"):
            open_(bad)
    steps = number_in(int, 10, 20, high_open=True)
    assert steps("10") == 10 and steps("19") == 19
    with pytest.raises(argparse.ArgumentTypeError, match=r"expected a whole number in \[10, 20\), got 20"):
        steps("20")


def python_minibert(*argv, env=None, cwd=None) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k != "MINIBERT_DEBUG"}
    environment.update(PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", **(env or {}))
    return subprocess.run([sys.executable, "-m", "minibert", *map(str, argv)], capture_output=True, text=True,
                          env=environment, cwd=cwd or ROOT, timeout=300)


def test_from_a_shell_an_error_is_one_line_and_minibert_debug_shows_the_traceback(tmp_path):
    """As a user meets it: `python -m minibert` in a shell, its exit code and its stderr (two runs: each starts
    Python and torch, which takes seconds on a busy machine; the rest is tested in this process)."""
    corpus, vocab = write_corpus(tmp_path)
    resume = ["pretrain", "--corpus", corpus, "--tokenizer", vocab, "--steps", 1, "--resume", "--out", tmp_path / "r"]
    plain = python_minibert(*resume)
    assert plain.returncode == 1 and "Traceback" not in plain.stderr
    assert plain.stderr.strip() == (f"error: nothing to resume: {tmp_path / 'r'} does not exist (--resume continues a "
                                     "run that an earlier command wrote into the same --out). Leave out --resume to "
                                     "start a new run.")
    debug = python_minibert(*resume, env={"MINIBERT_DEBUG": "1"})
    assert debug.returncode == 1 and "Traceback (most recent call last)" in debug.stderr
    assert "OutputFolderError: nothing to resume" in debug.stderr


def test_debug_raises_the_error_itself(tmp_path, capsys):
    from minibert.output_folder import OutputFolderError
    corpus, vocab = write_corpus(tmp_path)
    with pytest.raises(OutputFolderError, match="nothing to resume"):
        main(["pretrain", "--corpus", str(corpus), "--tokenizer", str(vocab), "--steps", "1", "--resume",
              "--out", str(tmp_path / "r"), "--debug"])
    with pytest.raises(OutputFolderError, match="nothing to resume"):
        main(["--debug", "pretrain", "--corpus", str(corpus), "--tokenizer", str(vocab), "--steps", "1", "--resume",
              "--out", str(tmp_path / "r")])


def test_a_checkpoint_variable_that_points_nowhere_is_named(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MINIBERT_CHECKPOINT", str(tmp_path / "nonexistent"))
    code, err = run_main(capsys, "demo")
    assert code == 1 and err.strip() == (
        f"error: the environment variable MINIBERT_CHECKPOINT={tmp_path / 'nonexistent'} is not a folder; point it to "
        "a Hugging Face BERT folder (config.json, model.safetensors, vocab.txt), or unset it to use the installed "
        "MiniLM checkpoint.")
    monkeypatch.setenv("MINIBERT_CHECKPOINT", str(tmp_path))
    code, err = run_main(capsys, "demo")
    assert code == 1 and f"MINIBERT_CHECKPOINT={tmp_path} has no config.json" in err


@given(st.floats(allow_nan=True, allow_infinity=True), st.booleans(), st.booleans())
def test_a_probability_is_accepted_exactly_inside_its_interval(x, zero, one):
    inside = math.isfinite(x) and (0 <= x if zero else 0 < x) and (x <= 1 if one else x < 1)
    parse = probability(zero=zero, one=one)
    if inside:
        assert parse(repr(x)) == x
    else:
        with pytest.raises(argparse.ArgumentTypeError, match=f"got {re.escape(repr(x))}$"):
            parse(repr(x))
