"""Generation speed of v1 against transformers' `generate`: the same weights, the same inputs, the same ids.

Lecture 2.2 (outputs: a general sequence: the cost of writing token by token); notebook
notebooks/06_general_sequence.ipynb. A benchmark, not a test (the machine's load moves the numbers):

    python -m minibert.seq2seq.speed                  # batch 1 and 16, greedy and 4 beams, 20 new tokens
    python -m minibert.seq2seq.speed --profile        # and where minibert's time goes, operator by operator

The model is the warm-started BERT2BERT of the installed MiniLM (its cross-attention untrained, so the words are
nonsense and every sequence runs to max_new_tokens: the most work per call); the sources are Multi30k German
test sentences. transformers reads the folder minibert saves, so both run the very same weights.
"""
from __future__ import annotations

import argparse
import tempfile
import time

import torch

from ..resources import pretrained_checkpoint_dir
from ..tokenizer import WordPieceTokenizer
from .data import multi30k
from .encoder_decoder import BertEncoderDecoder
from .generate import generate


def best_of(repeats: int, run):
    """The fastest of `repeats` runs (the least disturbed by other work on the machine), and its output."""
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = run()
        times.append(time.perf_counter() - start)
    return min(times), out


def same_ids(mine: torch.Tensor, theirs: torch.Tensor, eos: int, pad: int) -> bool:
    """Equal, allowing for transformers' beam search filling with [SEP] where minibert puts [PAD]."""
    return mine.shape == theirs.shape and bool(((mine == theirs) | ((mine == pad) & (theirs == eos))).all())


@torch.no_grad()
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--beams", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--max-new-tokens", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args(argv)
    import transformers  # a benchmark-only dependency

    torch.set_num_threads(args.threads)
    folder = pretrained_checkpoint_dir()
    torch.manual_seed(0)
    ours = BertEncoderDecoder.from_encoder_pretrained(folder)
    with tempfile.TemporaryDirectory() as saved:
        ours.save_pretrained(saved)
        theirs = transformers.EncoderDecoderModel.from_pretrained(saved).eval()
    tokenizer = WordPieceTokenizer.from_pretrained(folder)
    sources = multi30k("test").sources
    ids = dict(decoder_start_token_id=ours.config.decoder_start_token_id, eos_token_id=ours.config.eos_token_id,
               pad_token_id=ours.config.pad_token_id)
    print(f"{args.threads} thread(s), {args.max_new_tokens} new tokens, best of {args.repeats}\n")
    print("| batch | beams | minibert (ms) | transformers (ms) | speed-up | same ids | minibert without cache (ms) |")
    print("|---:|---:|---:|---:|---:|:---:|---:|")
    for batch_size in args.batch_sizes:
        batch = tokenizer(sources[:batch_size], padding=True, return_tensors="pt")
        for beams in args.beams:
            mine_time, mine = best_of(args.repeats, lambda: generate(
                ours, batch.input_ids, batch.attention_mask, max_new_tokens=args.max_new_tokens,
                num_beams=beams).sequences)
            theirs_time, reference = best_of(args.repeats, lambda: theirs.generate(
                batch.input_ids, attention_mask=batch.attention_mask, max_new_tokens=args.max_new_tokens,
                num_beams=beams, do_sample=False, **({"early_stopping": True} if beams > 1 else {}), **ids))
            uncached_time, _ = best_of(1, lambda: generate(
                ours, batch.input_ids, batch.attention_mask, max_new_tokens=args.max_new_tokens,
                num_beams=beams, use_cache=False))
            same = same_ids(mine, reference, ids["eos_token_id"], ids["pad_token_id"])
            print(f"| {batch_size} | {beams} | {mine_time * 1000:,.0f} | {theirs_time * 1000:,.0f} | "
                  f"{theirs_time / mine_time:.2f}x | {'yes' if same else 'NO'} | {uncached_time * 1000:,.0f} |")
    if args.profile:
        from torch.profiler import ProfilerActivity, profile
        batch = tokenizer(sources[:max(args.batch_sizes)], padding=True, return_tensors="pt")
        with profile(activities=[ProfilerActivity.CPU]) as profiler:
            generate(ours, batch.input_ids, batch.attention_mask, max_new_tokens=args.max_new_tokens,
                     num_beams=max(args.beams))
        print(profiler.key_averages().table(sort_by="self_cpu_time_total", row_limit=10))


if __name__ == "__main__":
    main()
