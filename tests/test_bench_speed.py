"""The speed benchmark's mechanics, on a tiny random model in a few seconds. Not a timed test: the numbers
it checks are the ones that would be wrong if the bookkeeping were (FLOPs, MFU, medians, the id check).

Lecture 1.1; run with `pytest -m embeddings`. The benchmark itself: `python -m minibert bench speed`.
"""
import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from minibert import BertConfig, BertModel
from minibert.bench import cli, speed

pytestmark = pytest.mark.embeddings

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
LETTERS = [chr(c) for c in range(ord("a"), ord("z") + 1)] + [str(d) for d in range(10)]
VOCAB = SPECIALS + list(".,!?'") + LETTERS + ["##" + c for c in LETTERS] + ["the", "bank", "river"]
TEXTS = ["The bank of the river.", "Banks lend money, rivers don't!", "A third text, with 42 digits?",
         "今天", "Tokenization of unbelievably long words works letter by letter."]
TINY = dict(vocab_size=len(VOCAB), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
            intermediate_size=48, max_position_embeddings=64)


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory, transformers_lib):
    """A random BERT saved by transformers, with a vocabulary that spells any word letter by letter."""
    folder = tmp_path_factory.mktemp("tiny-bert")
    torch.manual_seed(0)
    transformers_lib.BertModel(transformers_lib.BertConfig(**TINY)).save_pretrained(folder)
    (folder / "vocab.txt").write_text("".join(token + "\n" for token in VOCAB), encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def results(tiny_folder, transformers_lib):
    settings = speed.Settings(lengths=(16, 32), batch_tokens=64, repeats=3, warmup=1, tokenizer_repeats=2,
                              matmul_size=64)
    out = speed.run(settings, tiny_folder, {"tiny": TEXTS * 3}, transformers_lib, command="test")
    return json.loads(json.dumps(out))  # what the JSON file holds, round-tripped


def test_every_implementation_and_length_has_its_numbers(results):
    rows = {(row["length"], row["implementation"]): row for row in results["models"]}
    assert set(rows) == {(n, name) for n in (16, 32) for name in speed.IMPLEMENTATIONS}
    config = BertConfig(**TINY)
    for (length, name), row in rows.items():
        assert row["batch_size"] == 64 // length
        assert 0.75 * row["batch_size"] * length <= row["real_tokens"] <= row["batch_size"] * length
        assert len(row["sequence_lengths"]) == row["batch_size"] and sum(row["sequence_lengths"]) == row["real_tokens"]
        # the same weights in all three: the padded batch gives the same last hidden state
        assert row["max_abs_diff_vs_reference"] < 1e-5
        for mode in speed.MODES:
            result = row[mode]
            assert len(result["seconds"]) == 3
            assert result["median_s"] == statistics.median(result["seconds"])
            assert result["tokens_per_s"] == pytest.approx(row["real_tokens"] / result["median_s"])
            assert result["flops"] == speed.step_flops(config, row["sequence_lengths"], mode)
            assert result["mfu"] == pytest.approx(result["flops"] / result["median_s"] / result["matmul_flops_per_s"])
            assert result["peak_memory_bytes"] > 0
    assert results["matmul"]["flops_per_s"] == pytest.approx(2 * 64**3 / statistics.median(results["matmul"]["seconds"]))
    assert len(results["matmul"]["seconds"]) == 2 * 2 * 3  # lengths x modes x repeats
    slowest_over_fastest = [max(row[mode]["seconds"]) / min(row[mode]["seconds"]) for row in rows.values()
                            for mode in speed.MODES]
    assert results["timing_spread"] >= max(slowest_over_fastest) >= 1.0


def test_tokenizer_results_and_goals(results):
    tokenizer = results["tokenizer"]
    assert tokenizer["texts"] == 15 and tokenizer["ids_batch"]["identical"] and tokenizer["ids_one_by_one"]["identical"]
    assert tokenizer["reference_one_by_one_agrees"]
    assert set(tokenizer["runs"]) == {f"{who} {way}" for who in ("minibert", "transformers")
                                      for way in ("batch", "one-by-one")}
    goals = {goal["goal"]: goal for goal in results["goals"]}
    assert len(goals) == 2 * 3 + 3  # per length: inference, training, MFU; tokenizer: batch, one by one, ids
    for goal in goals.values():
        assert goal["met"] == (goal["value"] >= goal["target"])
    rows = {(row["length"], row["implementation"]): row for row in results["models"]}
    ratio = rows[16, "minibert"]["training"]["tokens_per_s"] / max(
        rows[16, name]["training"]["tokens_per_s"] for name in ("transformers sdpa", "transformers eager"))
    assert goals["training at length 16: minibert / faster transformers"]["value"] == pytest.approx(ratio)
    table = speed.format_table(results)
    assert "minibert" in table and f"{results['matmul']['flops_per_s'] / 1e9:,.0f} GFLOP/s" in table


def test_flop_count_by_hand_and_mfu():
    config = BertConfig(vocab_size=10, hidden_size=4, num_hidden_layers=1, num_attention_heads=1,
                        intermediate_size=8)
    # 1 sequence of 2 tokens: projections 2*2*(4*4*4 + 2*4*8) = 512, attention 2*2*(2*2)*4 = 64, pooler 2*4*4 = 32
    assert speed.forward_flops(config, [2]) == 608
    assert speed.step_flops(config, [2], "training") == 3 * 608
    # and one of 1 token more: projections 2*1*256 = 256, attention 2*2*(1*1)*4 = 16, pooler 32
    assert speed.forward_flops(config, [2, 1]) == 608 + 256 + 16 + 32
    assert speed.mfu(flops=1824, seconds=2.0, matmul_flops_per_s=912.0) == 1.0


def test_flop_count_agrees_with_pytorchs_counter():
    """Forward and forward+backward of a real model on a padded batch: PyTorch counts every matmul it runs.

    The projections run on the real tokens only; attention with dropout runs the explicit kernel (whose
    matmuls the counter sees; it does not see the fused kernel's) on the padded (b n) grid, so its padded
    pairs are the only FLOPs beyond what the real tokens need."""
    config = BertConfig(**TINY, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.1)
    model = BertModel(config).train()
    input_ids = torch.randint(5, config.vocab_size, (3, 20), generator=torch.Generator().manual_seed(0))
    lengths = [20, 13, 7]
    attention_mask = (torch.arange(20)[None] < torch.tensor(lengths)[:, None]).long()
    padded_pairs = 2 * 2 * config.hidden_size * (3 * 20 * 20 - sum(n * n for n in lengths))
    with FlopCounterMode(display=False) as counter:
        model(input_ids, attention_mask)
    assert counter.get_total_flops() == speed.forward_flops(config, lengths) + config.num_hidden_layers * padded_pairs
    with FlopCounterMode(display=False) as counter:
        out = model(input_ids, attention_mask)
        (out.last_hidden_state.sum() + out.pooler_output.sum()).backward()
    assert counter.get_total_flops() == 3 * (speed.forward_flops(config, lengths) + config.num_hidden_layers * padded_pairs)


def test_id_check_flags_a_mismatch():
    reference = [[2, 10, 11, 3], [2, 12, 3], [2, 3]]
    ours = [[2, 10, 11, 3], [2, 12, 1, 3], [2, 3]]  # text 1: an [UNK] too many, from position 2
    check = speed.compare_ids(ours, reference, ["a b", "c", ""])
    assert not check["identical"] and check["mismatched"] == 1
    assert check["examples"] == [{"index": 1, "text": "c", "position": 2, "ours": [1, 3], "reference": [3]}]
    assert speed.compare_ids(reference, reference, ["a b", "c", ""])["identical"]
    assert speed.compare_ids(ours[:2], reference, ["a b", "c", ""])["mismatched"] == 2  # a text went missing


def test_padded_batch_is_pairs_cut_from_the_stream():
    stream = torch.arange(100, 400)
    batch = speed.padded_batch(stream, batch_size=4, length=40, special_ids={"cls": 2, "sep": 3, "pad": 0})
    lengths = batch["attention_mask"].sum(1).tolist()
    assert lengths[0] == 40 and all(30 <= n <= 40 for n in lengths)
    start = 100
    for row, n in enumerate(lengths):
        ids, types = batch["input_ids"][row].tolist(), batch["token_type_ids"][row].tolist()
        len_a = (n - 3) // 2
        assert ids[n:] == [0] * (40 - n) and types[n:] == [0] * (40 - n)
        assert ids[0] == 2 and ids[len_a + 1] == 3 and ids[n - 1] == 3
        assert ids[1:len_a + 1] + ids[len_a + 2:n - 1] == list(range(start, start + n - 3))  # the stream, in order
        assert types[:len_a + 2] == [0] * (len_a + 2) and types[len_a + 2:n] == [1] * (n - len_a - 2)
        start += n - 3


def test_alternation_rotates_and_prepares_untimed():
    calls = []
    steps = {name: (lambda name=name: calls.append(name)) for name in "abc"}
    prepare = {"b": lambda: calls.append("prepare b")}
    times = speed.alternate(steps, repeats=3, warmup=0, device=torch.device("cpu"), prepare=prepare)
    assert [c for c in calls if not c.startswith("prepare")] == list("abc" "bca" "cab")
    assert calls[:3] == ["a", "prepare b", "b"]
    assert {name: len(seconds) for name, seconds in times.items()} == {"a": 3, "b": 3, "c": 3}


def test_command_line_routes_to_speed():
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    args = parser.parse_args(["speed", "--quick", "--lengths", "64", "--out", "x.json"])
    assert args.benchmark == "speed" and args.quick and args.lengths == [64]
    settings = speed.Settings.for_machine(quick=True, lengths=(64,))
    assert settings.lengths == (64,) and settings.repeats < speed.Settings().repeats


FAULTS_PROGRAM = """
import resource, sys, torch
from minibert.memory import keep_freed_memory
applied = keep_freed_memory() if sys.argv[1] == "keep" else None
for _ in range(3):
    torch.ones(16 << 20)  # 64 MB, made and freed at once, as a step's activations are
faults = []
for _ in range(11):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    torch.ones(16 << 20)
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(applied, sorted(faults)[5])  # the median: now and then a virtual machine's host takes pages back
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a glibc malloc setting")
def test_keep_freed_memory_stops_the_page_faults_of_each_step():
    """A fresh process each, as the setting is process-wide: by default each 64 MB block comes back from the
    kernel as 16,384 new pages; kept, it is reused without faults (median of 11 blocks: on a shared virtual
    machine, about one test run in four saw three of ten blocks fault in again)."""
    def faults(mode):
        out = subprocess.run([sys.executable, "-c", FAULTS_PROGRAM, mode], capture_output=True, text=True,
                             check=True, cwd=Path(__file__).resolve().parent.parent).stdout.split()
        return out[0], float(out[1])

    (_, default), (applied, kept) = faults("default"), faults("keep")
    assert applied == "True"
    assert default > 10_000, default   # 16,384 pages faulted back in on every iteration
    assert kept < default / 8, (kept, default)
