"""DistributedDataParallel: two gloo processes under torchrun end where one process on the whole batch ends.

Lecture lectures/pretraining.md, section "More than one process"; run with `pytest -m pretraining`.
Each process reads its half of every batch; DDP averages the gradients; the loss is normalised by the
labelled tokens of the whole step, so the average is the gradient of the whole batch. Dropout is off: two
processes cannot draw the dropout masks that one process would have drawn.
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from torch.testing import assert_close

from minibert.config import BertConfig
from minibert.model.pretraining import BertForPreTraining
from test_pretraining_cli import write_corpus

pytestmark = pytest.mark.pretraining
ROOT = Path(__file__).resolve().parent.parent


def test_two_gloo_processes_match_one_process_on_the_combined_batch(tmp_path):
    corpus, vocab = write_corpus(tmp_path, documents=120)
    options = ["--corpus", corpus, "--tokenizer", vocab, "--preset", "tiny", "--steps", 3, "--batch-size", 8,
               "--max-length", 32, "--dropout", 0, "--lr", "1e-3", "--eval-every", 0, "--save-every", 0,
               "--device", "cpu"]
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
                   "OMP_NUM_THREADS": "1"}  # two processes on two cores; also the same arithmetic in both runs

    def run(launcher, out):
        command = [*launcher, "-m", "minibert", "pretrain", *map(str, options), "--out", str(out)]
        finished = subprocess.run(command, cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=300)
        assert finished.returncode == 0, finished.stderr[-3000:]
        return load_file(out / "model.safetensors"), finished.stderr

    one, _ = run([sys.executable], tmp_path / "one")
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    two, log = run(torchrun, tmp_path / "two")
    assert "DistributedDataParallel over 2 processes (gloo)" in log

    assert one.keys() == two.keys()
    for name in one:
        assert_close(two[name], one[name], atol=1e-6, rtol=0, msg=name)

    # the comparison means something only if training moved the weights well beyond 1e-6
    torch.manual_seed(0)  # what the command does before it builds the model
    config = BertConfig.preset("tiny", vocab_size=len(one["bert.embeddings.word_embeddings.weight"]),
                               hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    initial = BertForPreTraining(config).state_dict()
    moved = max((one[name] - initial[name]).abs().max().item() for name in one)
    assert moved > 1e-3
