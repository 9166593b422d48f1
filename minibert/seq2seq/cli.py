"""`python -m minibert generate`: translate (or otherwise rewrite) text with a saved sequence-to-sequence model.

Lecture 2.2 (outputs: a general sequence); notebook notebooks/06_general_sequence.ipynb.

    python -m minibert generate --model runs/v1-warm --text "Ein Hund rennt über die Wiese."
    python -m minibert generate --model runs/v2 --file sources.de --num-beams 4
    python -m minibert generate --model runs/v1 --text "Zwei Männer." --sample --top-p 0.9 --seed 0

--model is a folder that BertEncoderDecoder.save_pretrained (v1) or BertForSeq2SeqLM.save_pretrained (v2) wrote,
or that transformers' EncoderDecoderModel saved; the tokenizer is its vocab.txt (or --tokenizer).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from ..options import (model_folder, non_negative_int, positive_float, positive_int, probability, text_file,
                       vocabulary_folder)
from ..resources import pretrained_checkpoint_dir
from ..tokenizer import WordPieceTokenizer
from .encoder_decoder import BertEncoderDecoder
from .generate import generate
from .unilm import BertForSeq2SeqLM


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, type=model_folder, metavar="FOLDER",
                        help="a saved v1 or v2 model folder")
    given = parser.add_mutually_exclusive_group(required=True)
    given.add_argument("--text", nargs="+", help="one or more source sentences")
    given.add_argument("--file", type=text_file, metavar="FILE", help="a text file, one source sentence per line")
    parser.add_argument("--tokenizer", type=vocabulary_folder, metavar="FOLDER",
                        help="a folder with vocab.txt (default: the model folder's, else the installed MiniLM's)")
    parser.add_argument("--max-new-tokens", type=positive_int, default=40)
    parser.add_argument("--num-beams", type=positive_int, default=1, help="1: greedy search; more: beam search")
    parser.add_argument("--length-penalty", type=float, default=1.0,
                        help="beam search: > 0 favours longer translations, < 0 shorter ones")
    parser.add_argument("--sample", action="store_true", help="draw each token instead of taking the best")
    parser.add_argument("--temperature", type=positive_float, default=1.0)
    parser.add_argument("--top-k", type=positive_int)
    parser.add_argument("--top-p", type=probability(zero=False))
    parser.add_argument("--seed", type=non_negative_int, default=0, help="for --sample")
    parser.add_argument("--batch-size", type=positive_int, default=16)
    parser.add_argument("--no-cache", action="store_true", help="recompute the whole prefix every step (slower)")


def load_model(folder: str | Path) -> BertEncoderDecoder | BertForSeq2SeqLM:
    """A v1 folder (model_type 'encoder-decoder') or a v2 one (architecture BertForSeq2SeqLM)."""
    folder = Path(folder)
    config = folder / "config.json"
    if not config.is_file():
        raise FileNotFoundError(f"no model at {folder}: expected a folder with config.json and model.safetensors, "
                                "as BertEncoderDecoder.save_pretrained or BertForSeq2SeqLM.save_pretrained write.")
    values = json.loads(config.read_text(encoding="utf-8"))
    if values.get("model_type") == "encoder-decoder":
        return BertEncoderDecoder.from_pretrained(folder)
    if "BertForSeq2SeqLM" in values.get("architectures", []):
        return BertForSeq2SeqLM.from_pretrained(folder)
    raise ValueError(f"{folder} holds a {', '.join(values.get('architectures', ['BERT']))}, not a model trained to "
                     "generate: give a folder saved by BertEncoderDecoder (v1) or BertForSeq2SeqLM (v2) after "
                     "fine-tuning.")


def load_tokenizer(model_folder: Path, tokenizer_folder: str | None) -> WordPieceTokenizer:
    for folder in (tokenizer_folder, model_folder, pretrained_checkpoint_dir()):
        if folder is not None and (Path(folder) / "vocab.txt").is_file():
            return WordPieceTokenizer.from_pretrained(folder)
    raise FileNotFoundError(f"no vocab.txt in {model_folder}: pass --tokenizer FOLDER, the folder of the "
                            "checkpoint the model was fine-tuned from.")


def main(args: argparse.Namespace) -> None:
    model = load_model(args.model)
    tokenizer = load_tokenizer(Path(args.model), args.tokenizer)
    if args.file:
        sources = [line for line in Path(args.file).read_text(encoding="utf-8").splitlines() if line.strip()]
    else:
        sources = args.text
    generator = torch.Generator().manual_seed(args.seed)
    # v2 puts source and target in one position table: the source gets what the target leaves
    max_source = (model.config.encoder.max_position_embeddings if isinstance(model, BertEncoderDecoder)
                  else model.config.max_position_embeddings - args.max_new_tokens)
    for start in range(0, len(sources), args.batch_size):
        batch = tokenizer(sources[start:start + args.batch_size], max_length=max_source, truncation=True,
                          padding=True, return_tensors="pt")
        out = generate(model, batch.input_ids, batch.attention_mask, max_new_tokens=args.max_new_tokens,
                       num_beams=args.num_beams, length_penalty=args.length_penalty, do_sample=args.sample,
                       temperature=args.temperature, top_k=args.top_k, top_p=args.top_p, generator=generator,
                       use_cache=not args.no_cache)
        for row in out.sequences:
            print(tokenizer.decode(row[1:]))  # the start token is not part of the translation
    sys.stdout.flush()
