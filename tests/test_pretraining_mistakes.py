"""Three mistakes that once passed every test: the NSP labels swapped, clipping measured but never applied, and
the warm-up share taken as a number of steps. Each test here fails on one of them (exercises/mutations.json
keeps them; `python -m minibert.homework mutants` checks it).

Lecture lectures/pretraining.md, sections "From raw text to sentence pairs" and "The training loop"; run with
`pytest -m pretraining`.
"""
import pytest
import torch

from minibert.config import BertConfig
from minibert.model.pretraining import BertForPreTraining
from minibert.pretraining import PretrainingData, Pretrainer, TrainingConfig
from minibert.pretraining.pairs import create_pairs
from minibert.tokenizer import WordPieceTokenizer

pytestmark = pytest.mark.pretraining
WORDS = ["the", "cat", "dog", "sat", "ran", "on", "a", "mat", "tree", "big", "red", "and", "then"]


def test_nsp_labels_are_hugging_faces_is_next_0_not_next_1():
    """transformers' BertForPreTraining: next_sentence_label 0 = B continues A, 1 = B is random. The numbers
    themselves, not the module's constants: swapping the constants would swap what a real checkpoint's NSP head
    means, and every test written with the constants would still pass."""
    documents = [[list(range(1000 * d + 10 * s, 1000 * d + 10 * s + 6)) for s in range(4)] for d in range(60)]
    pairs = create_pairs(documents, max_length=64, generator=torch.Generator().manual_seed(0), short_seq_prob=0.0)
    labels = {0: 0, 1: 0}
    for pair in pairs:
        continues = pair.tokens_b[0] // 1000 == pair.tokens_a[-1] // 1000 and pair.tokens_b[0] > pair.tokens_a[-1]
        assert pair.label == (0 if continues else 1), (pair.tokens_a, pair.tokens_b, pair.label)
        labels[pair.label] += 1
    assert labels[0] > 20 and labels[1] > 20


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("corpus")
    g = torch.Generator().manual_seed(0)
    words = lambda n: " ".join(WORDS[i] for i in torch.randint(len(WORDS), (n,), generator=g).tolist())  # noqa: E731
    text = "\n\n".join(" ".join(words(6).capitalize() + "." for _ in range(4)) for _ in range(40))
    (folder / "corpus.txt").write_text(text, encoding="utf-8")
    tokenizer = WordPieceTokenizer(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", *WORDS])
    return tokenizer, PretrainingData.from_files([folder / "corpus.txt"], tokenizer, max_length=32, batch_size=4)


def trainer(data, tmp_path, **options) -> Pretrainer:
    """A one-layer, 16-wide BERT: a step takes milliseconds."""
    tokenizer, data = data
    torch.manual_seed(0)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=32)
    settings = dict(out_dir=tmp_path, save_every=0, eval_every=0, lr=1e-3, device="cpu", quiet=True,
                    export_model=False)
    return Pretrainer(BertForPreTraining(config), data, TrainingConfig(**{**settings, **options}))


def test_clipping_is_applied_to_the_gradient_the_optimizer_uses(data, tmp_path):
    """max_grad_norm 1e-3 is far below the gradient's norm: the optimizer must see a gradient of norm 1e-3
    (clip_grad_norm_ rescales in place), while the history reports the norm before clipping. AdamW hides a
    missing clip (its step hardly depends on the gradient's scale), so the gradient itself is checked."""
    seen = []
    run = trainer(data, tmp_path, steps=3, max_grad_norm=1e-3)
    run.optimizer.register_step_pre_hook(lambda *_: seen.append(float(torch.linalg.vector_norm(torch.stack(
        [torch.linalg.vector_norm(p.grad) for p in run.model.parameters() if p.grad is not None])))))
    history = run.train()["history"]
    assert len(seen) == 3
    for step, norm in zip(history, seen):
        assert step["grad_norm"] > 0.1, "the reported norm is the one before clipping"
        assert norm == pytest.approx(1e-3, rel=1e-3)


def test_the_warmup_is_a_share_of_the_steps(data, tmp_path):
    """warmup=0.25 of 20 steps is 5 steps: lr x 1/5, 2/5 ... 5/5, then a linear decay to 0 at step 20
    (LinearWarmupDecay by hand). Taken as a step count, 0.25 would round to a warm-up of one step."""
    run = trainer(data, tmp_path, steps=20, warmup=0.25, lr=1e-3)
    history = run.train(until_step=8)["history"]
    expected = [1 / 5, 2 / 5, 3 / 5, 4 / 5, 1.0, 15 / 15, 14 / 15, 13 / 15]
    assert [step["lr"] for step in history] == pytest.approx([1e-3 * f for f in expected])
