"""`python -m minibert finetune / evaluate / predict` on slices of the real task files and on a user's table.

Lecture 2.2 (outputs); run with `pytest -m outputs`. The models are the tiny preset with MiniLM's vocabulary:
what is checked is the plumbing (the same examples, labels, metric and saved folder all the way through),
not how well a two-layer random model does.
"""
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from torch.testing import assert_close

from minibert.__main__ import main
from minibert import BertConfig, BertForSequenceClassification
from minibert.finetune.data import read_conll2003, read_sst2
from minibert.finetune.metrics import accuracy, entity_scores
from minibert.finetune.qa import chinese_scores, read_drcd, read_hw7
from minibert.finetune.qa.data import read_hw7_submission

pytestmark = pytest.mark.outputs
ROOT = Path(__file__).resolve().parent.parent


def finetune(tmp_path, checkpoint_dir, *options):
    out = tmp_path / "run"
    main(["finetune", "--init", "tiny", "--tokenizer", str(checkpoint_dir), "--out", str(out), "--lr", "1e-3",
          "--device", "cpu", *options])
    return out


def evaluate(capsys, *options):
    capsys.readouterr()
    main(["evaluate", "--device", "cpu", *options])
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_sst2_slice_evaluate_and_predict_give_the_metric_the_trainer_reported(tmp_path, checkpoint_dir, data_dir,
                                                                              capsys):
    folder = data_dir / "glue-sst2"
    out = finetune(tmp_path, checkpoint_dir, "--task", "sst2", "--data", str(folder), "--limit", "64",
                   "--eval-limit", "48", "--epochs", "2")
    history = json.loads((out / "history.json").read_text())
    best = json.loads((out / "best" / "eval_results.json").read_text())
    assert best["accuracy"] == history["best_metric"] == max(e["accuracy"] for e in history["evaluations"])
    assert len(history["history"]) == 4  # 64 examples / 32 per batch x 2 epochs
    scores = evaluate(capsys, "--model", str(out / "best"), "--data", str(folder / "dev.tsv"), "--limit", "48")
    assert scores == {"task": "sst2", "examples": 48, "accuracy": best["accuracy"]}
    # the latest model (OUT) is scored the same way as the last evaluation of the run
    assert evaluate(capsys, "--model", str(out), "--data", str(folder), "--limit", "48")["accuracy"] == \
        history["evaluations"][-1]["accuracy"]

    main(["predict", "--model", str(out / "best"), "--data", str(folder / "dev.tsv"), "--limit", "48",
          "--out", str(tmp_path / "predictions.tsv"), "--device", "cpu"])
    rows = list(csv.DictReader((tmp_path / "predictions.tsv").open(encoding="utf-8"), delimiter="\t"))
    gold = read_sst2(folder / "dev.tsv")[:48]
    assert [r["text"] for r in rows] == [e.text for e in gold]
    assert accuracy([r["prediction"] for r in rows], [str(e.label) for e in gold]) == best["accuracy"]

    # what the user saved stays: the predictions file, and the run folder (it now holds a model)
    saved = (tmp_path / "predictions.tsv").read_bytes()
    with pytest.raises(SystemExit, match="already exists"):
        main(["predict", "--model", str(out / "best"), "--data", str(folder / "dev.tsv"), "--limit", "8",
              "--out", str(tmp_path / "predictions.tsv"), "--device", "cpu"])
    assert (tmp_path / "predictions.tsv").read_bytes() == saved
    with pytest.raises(SystemExit, match="already holds a run"):
        main(["finetune", "--task", "sst2", "--data", str(folder), "--out", str(out), "--init", str(checkpoint_dir)])
    with pytest.raises(SystemExit, match="--init and --out are the same folder"):
        main(["finetune", "--task", "sst2", "--data", str(folder), "--out", str(out / "best"), "--overwrite",
              "--init", str(out / "best")])


@pytest.mark.parametrize("option, value", [("--lr", "-1"), ("--warmup", "2"), ("--batch-size", "0"),
                                           ("--clip", "-0.5")])
def test_finetune_options_are_checked_before_any_work(tmp_path, data_dir, capsys, option, value):
    with pytest.raises(SystemExit) as stop:
        main(["finetune", "--task", "sst2", "--data", str(data_dir / "glue-sst2"), "--out", str(tmp_path / "run"),
              option, value])
    assert stop.value.code == 2
    assert f"argument {option}" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_conll_slice_scores_entities_the_same_in_training_evaluate_and_predict(tmp_path, checkpoint_dir, data_dir,
                                                                               capsys):
    folder = data_dir / "conll2003"
    with pytest.warns(UserWarning, match="longer than max_length=24"):  # short: some words are cut
        out = finetune(tmp_path, checkpoint_dir, "--task", "conll2003", "--data", str(folder), "--limit", "64",
                       "--eval-limit", "40", "--epochs", "1", "--max-length", "24")
    config = json.loads((out / "best" / "config.json").read_text())
    assert config["architectures"] == ["BertForTokenClassification"]
    assert config["id2label"]["0"] == "O" and len(config["id2label"]) == 9  # BIO over the four entity types
    best = json.loads((out / "best" / "eval_results.json").read_text())
    with pytest.warns(UserWarning, match="longer than max_length=24"):
        scores = evaluate(capsys, "--model", str(out / "best"), "--data", str(folder), "--limit", "40")
    assert {k: scores[k] for k in ("f1", "word_accuracy")} == {k: best[k] for k in ("f1", "word_accuracy")}
    assert 0 < scores["word_accuracy"] < 1

    with pytest.warns(UserWarning, match="longer than max_length=24"):
        main(["predict", "--model", str(out / "best"), "--data", str(folder / "eng.testa"), "--limit", "40",
              "--out", str(tmp_path / "tagged.conll"), "--device", "cpu"])
    predicted = read_conll2003(tmp_path / "tagged.conll")
    gold = read_conll2003(folder / "eng.testa")[:40]
    assert [s.words for s in predicted] == [s.words for s in gold]  # every word, also the cut ones
    assert entity_scores([s.tags for s in gold], [s.tags for s in predicted])["f1"] == scores["f1"]


def write_table(path, rows):
    with path.open("w", encoding="utf-8", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["question", "answer", "verdict", "score"])
        writer.writerows(rows)


def table_rows(n, seed):
    g = torch.Generator().manual_seed(seed)
    words = ["good", "fine", "great", "bad", "awful", "poor"]
    rows = []
    for _ in range(n):
        k = int(torch.randint(6, (), generator=g))
        rows.append([f"is it {words[k]}?", f"it is {words[k]} indeed", "yes" if k < 3 else "no", f"{k / 2 + 0.25}"])
    return rows


def test_a_users_table_labels_from_the_training_file_and_regression_when_numeric(tmp_path, checkpoint_dir,
                                                                                  capsys):
    write_table(tmp_path / "train.csv", table_rows(60, seed=0))
    write_table(tmp_path / "dev.csv", table_rows(20, seed=1))
    columns = ["--text-column", "question", "--pair-column", "answer"]
    out = finetune(tmp_path, checkpoint_dir, "--task", "csv", "--data", str(tmp_path / "train.csv"),
                   "--eval-data", str(tmp_path / "dev.csv"), *columns, "--label-column", "verdict", "--epochs", "1")
    config = json.loads((out / "best" / "config.json").read_text())
    assert config["id2label"] == {"0": "no", "1": "yes"}
    best = json.loads((out / "best" / "eval_results.json").read_text())
    assert evaluate(capsys, "--model", str(out / "best"), "--data", str(tmp_path / "dev.csv"))["accuracy"] == \
        best["accuracy"]  # the columns come from the saved folder

    regression = finetune(tmp_path / "r", checkpoint_dir, "--task", "csv", "--data", str(tmp_path / "train.csv"),
                          *columns, "--label-column", "score", "--epochs", "1")
    config = json.loads((regression / "best" / "config.json").read_text())
    assert len(config["id2label"]) == 1 and config["problem_type"] == "regression"
    history = json.loads((regression / "history.json").read_text())
    assert history["main_metric"] == "pearson" and -1 <= history["best_metric"] <= 1

    write_table(tmp_path / "odd.csv", [["is it?", "maybe", "perhaps", "1"]])
    with pytest.raises(SystemExit, match=r"label 'perhaps' is not one of the 2 labels.*\['no', 'yes'\]"):
        main(["evaluate", "--model", str(out / "best"), "--data", str(tmp_path / "odd.csv"), "--device", "cpu"])


def test_an_existing_run_is_not_overwritten_without_being_asked(tmp_path, checkpoint_dir, data_dir):
    options = ["--task", "sst2", "--data", str(data_dir / "glue-sst2"), "--limit", "32", "--eval-limit", "8",
               "--epochs", "1"]
    finetune(tmp_path, checkpoint_dir, *options)
    with pytest.raises(SystemExit, match="already holds a run.*--resume"):
        finetune(tmp_path, checkpoint_dir, *options)
    with pytest.raises(SystemExit, match=r"--lr: started with 0.001, now 0.002"):
        main(["finetune", "--init", "tiny", "--tokenizer", str(checkpoint_dir), "--out", str(tmp_path / "run"),
              "--lr", "2e-3", "--resume", *options])


def test_two_gloo_processes_match_one_process(tmp_path, checkpoint_dir, data_dir):
    """Under torchrun each process takes half the rows of every batch and DDP averages the gradients: with
    halves of equal size that is the gradient of the whole batch. Dropout is off (two processes cannot draw the
    masks one process would have drawn)."""
    options = ["--task", "sst2", "--data", data_dir / "glue-sst2", "--limit", 32, "--eval-limit", 16,
               "--batch-size", 8, "--epochs", 1, "--dropout", 0, "--init", "tiny", "--tokenizer", checkpoint_dir,
               "--lr", "1e-3", "--device", "cpu"]
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
                   "OMP_NUM_THREADS": "1"}

    def run(launcher, out):
        command = [*launcher, "-m", "minibert", "finetune", *map(str, options), "--out", str(out)]
        finished = subprocess.run(command, cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=300)
        assert finished.returncode == 0, finished.stderr[-3000:]
        return load_file(out / "model.safetensors"), json.loads((out / "history.json").read_text())

    one, one_history = run([sys.executable], tmp_path / "one")
    two, two_history = run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"],
                           tmp_path / "two")
    assert [h["tokens"] for h in two_history["history"]] == [h["tokens"] for h in one_history["history"]]
    for name in one:
        assert_close(two[name], one[name], atol=1e-6, rtol=0, msg=name)
    assert two_history["evaluations"][-1]["accuracy"] == one_history["evaluations"][-1]["accuracy"]
    # the comparison means something only if training moved the weights well beyond 1e-6
    config = BertConfig.preset("tiny", vocab_size=len(one["bert.embeddings.word_embeddings.weight"]),
                               max_position_embeddings=512, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
                               id2label={0: "0", 1: "1"})
    torch.manual_seed(0)  # what the trainer does before it makes the model
    initial = BertForSequenceClassification(config).state_dict()
    assert max((one[name] - initial[name]).abs().max().item() for name in one) > 1e-3


def test_question_answering_from_the_command_line(tmp_path, checkpoint_dir, data_dir, capsys):
    """DRCD slices: evaluate gives the trainer's EM and F1; predict writes SQuAD's predictions JSON, which scores
    the same; the homework task writes its submission CSV; XQuAD is split by article when no held-out file."""
    drcd = data_dir / "drcd"
    out = finetune(tmp_path, checkpoint_dir, "--task", "drcd", "--data", str(drcd), "--limit", "24",
                   "--eval-limit", "16", "--epochs", "1", "--max-length", "128", "--stride", "32")
    best = json.loads((out / "best" / "eval_results.json").read_text())
    assert json.loads((out / "best" / "config.json").read_text())["architectures"] == ["BertForQuestionAnswering"]
    scores = evaluate(capsys, "--model", str(out / "best"), "--data", str(drcd), "--limit", "16")
    assert {k: scores[k] for k in ("exact_match", "f1")} == {k: best[k] for k in ("exact_match", "f1")}
    main(["predict", "--model", str(out / "best"), "--data", str(drcd / "DRCD_dev.json"), "--limit", "16",
          "--out", str(tmp_path / "answers.json"), "--device", "cpu"])
    answers = json.loads((tmp_path / "answers.json").read_text(encoding="utf-8"))
    gold = list(read_drcd(drcd / "DRCD_dev.json"))[:16]
    assert list(answers) == [e.id for e in gold]
    assert all(answers[e.id] in e.context for e in gold)  # copied out of the context, character for character
    assert chinese_scores(answers, gold)["f1"] == scores["f1"]

    hw7 = data_dir / "ntu-ml2023-hw7-drcd"
    main(["predict", "--model", str(out / "best"), "--task", "hw7", "--data", str(hw7 / "hw7_test.json"),
          "--limit", "5", "--out", str(tmp_path / "submission.csv"), "--device", "cpu"])
    submission = read_hw7_submission(tmp_path / "submission.csv")
    assert list(submission) == [e.id for e in list(read_hw7(hw7 / "hw7_test.json"))[:5]]

    xquad = finetune(tmp_path / "x", checkpoint_dir, "--task", "squad", "--data",
                     str(data_dir / "xquad-squad11-dev-subset"), "--limit", "16", "--eval-limit", "8", "--epochs", "1",
                     "--max-length", "128", "--stride", "32")
    assert 0 <= json.loads((xquad / "history.json").read_text())["best_metric"] <= 100


def test_training_paragraphs_in_the_evaluation_data_are_refused_by_name(tmp_path, checkpoint_dir, data_dir):
    """hw7_dev.json shares 171 paragraphs (605 questions) with DRCD_test.json."""
    options = ["--task", "drcd", "--data", str(data_dir / "drcd" / "DRCD_test.json"),
               "--eval-data", str(data_dir / "ntu-ml2023-hw7-drcd" / "hw7_dev.json")]
    with pytest.raises(SystemExit, match=r"171 of the 1000 training paragraphs .*DRCD_test.json.*605 training and "
                                         r"605 evaluation questions.*--allow-overlap"):
        finetune(tmp_path, checkpoint_dir, *options)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("command", ["finetune", "evaluate", "predict"])
def test_help_lists_the_tasks(command, capsys):
    with pytest.raises(SystemExit) as exit_code:
        main([command, "--help"])
    assert exit_code.value.code == 0
    text = capsys.readouterr().out
    assert all(task in text for task in ("sst2", "sst5", "cfimdb", "conll2003", "csv", "squad", "drcd", "hw7"))
