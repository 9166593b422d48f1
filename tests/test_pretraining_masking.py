"""Masking: 15% selected, 80/10/10, never special tokens or padding, whole words, drawn anew each epoch.

Lecture lectures/pretraining.md, section "Masked language model"; run with `pytest -m pretraining`.
"""
import pytest
import torch

from minibert.model.pretraining import IGNORE_INDEX
from minibert.pretraining import Masker
from minibert.pretraining.masking import select_positions, word_starts
from minibert.tokenizer import WordPieceTokenizer

pytestmark = pytest.mark.pretraining
PAD, UNK, CLS, SEP, MASK = range(5)
VOCAB_SIZE = 1000


def masker(**options) -> Masker:
    return Masker(VOCAB_SIZE, MASK, never_mask_ids=(CLS, SEP, PAD, UNK), **options)


def pair_batch(rows: int = 64, length: int = 128, seed: int = 0) -> torch.Tensor:
    """[CLS] A [SEP] B [SEP] [PAD]...: random ordinary ids (a few [UNK]), ragged lengths."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, VOCAB_SIZE, (rows, length), generator=g)
    ids[torch.rand(rows, length, generator=g) < 0.02] = UNK
    for row in range(rows):
        n = int(torch.randint(length // 2, length + 1, (), generator=g))
        ids[row, 0], ids[row, n // 2], ids[row, n - 1] = CLS, SEP, SEP
        ids[row, n:] = PAD
    return ids


def ordinary(ids: torch.Tensor) -> torch.Tensor:
    return ~torch.isin(ids, torch.tensor([PAD, UNK, CLS, SEP]))


def test_proportions_over_many_draws():
    """Exactly round(15% x ordinary tokens) per row; of those 80% [MASK], 10% random, 10% unchanged.

    Tolerance: about 50 draws x 64 rows x 14 selected = 45,000 tokens; a share p has a standard deviation of
    sqrt(p (1 - p) / 45,000) <= 0.0024, so +-0.01 is four standard deviations.
    """
    ids, g = pair_batch(), torch.Generator().manual_seed(1)
    counts = {"selected": 0, "mask": 0, "random": 0, "kept": 0}
    for _ in range(50):
        corrupted, labels = masker()(ids, g)
        selected = labels != IGNORE_INDEX
        per_row_expected = (0.15 * ordinary(ids).sum(1)).round().clamp(min=1)
        assert torch.equal(selected.sum(1), per_row_expected.long())
        assert torch.equal(labels[selected], ids[selected]), "the label is the original token"
        assert torch.equal(corrupted[~selected], ids[~selected]), "unselected tokens are never changed"
        counts["selected"] += int(selected.sum())
        counts["mask"] += int((corrupted[selected] == MASK).sum())
        counts["kept"] += int((corrupted[selected] == ids[selected]).sum())
        counts["random"] += int(((corrupted[selected] != MASK) & (corrupted[selected] != ids[selected])).sum())
    share = {k: counts[k] / counts["selected"] for k in ("mask", "random", "kept")}
    assert counts["selected"] > 40_000
    assert abs(share["mask"] - 0.8) < 0.01
    assert abs(share["random"] - 0.1) < 0.01
    assert abs(share["kept"] - 0.1) < 0.01
    assert abs(counts["selected"] / (50 * int(ordinary(ids).sum())) - 0.15) < 0.002


def test_special_tokens_unknown_and_padding_are_never_selected():
    ids, g = pair_batch(rows=32), torch.Generator().manual_seed(2)
    special = ~ordinary(ids)
    for _ in range(100):
        corrupted, labels = masker(probability=0.5)(ids, g)
        assert (labels[special] == IGNORE_INDEX).all()
        assert torch.equal(corrupted[special], ids[special])


def test_a_short_sequence_gets_at_least_one_prediction():
    ids = torch.tensor([[CLS, 7, 8, 9, SEP, PAD]])  # round(0.15 x 3) = 0, but a row without labels teaches nothing
    _, labels = masker()(ids, torch.Generator().manual_seed(0))
    assert (labels != IGNORE_INDEX).sum() == 1
    assert (labels[0, 1:4] != IGNORE_INDEX).sum() == 1


def wordpiece_tokenizer():
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat", "dog", "play", "jump", "em", "##bed",
             "##ding", "##s", "##ing", "##ed", "."]
    return WordPieceTokenizer(vocab)


def test_whole_word_masking_takes_every_piece_of_a_word():
    tokenizer = wordpiece_tokenizer()
    text = "the cat plays . embedding jumped the dog playing . the embeddings"
    pieces = tokenizer.tokenize(text)
    assert "##bed" in pieces and "##ding" in pieces
    ids = torch.tensor([[tokenizer.cls_token_id, *tokenizer.convert_tokens_to_ids(pieces), tokenizer.sep_token_id]] * 8)
    whole_word = Masker.from_tokenizer(tokenizer, whole_word=True, probability=0.3)
    g = torch.Generator().manual_seed(3)
    starts = word_starts(ids, ordinary(ids), whole_word.word_start)
    word_of = starts.cumsum(1)  # tokens of one word share a number
    saw_a_split_word = False
    for _ in range(200):
        _, labels = whole_word(ids, g)
        selected = labels != IGNORE_INDEX
        for row in range(len(ids)):
            for word in word_of[row][selected[row]].unique():
                members = (word_of[row] == word) & ordinary(ids)[row]
                assert selected[row][members].all(), "a word is masked whole or not at all"
                saw_a_split_word |= int(members.sum()) > 1
            assert selected[row].sum() <= round(0.3 * int(ordinary(ids)[row].sum()))
    assert saw_a_split_word


def test_word_start_after_sep_even_for_a_continuation_piece():
    """Segment B can start mid-word after truncation: its first `##` piece begins a word of its own."""
    word_start = torch.tensor([True] * 13 + [False] * 4)  # ids 13.. are `##` pieces
    ids = torch.tensor([[CLS, 5, 14, SEP, 13, 6, SEP]])
    starts = word_starts(ids, ordinary(ids), word_start)
    assert starts.tolist() == [[False, True, False, False, True, True, False]]


def test_select_positions_by_hand():
    """Units of sizes 1, 3, 1 (a three-piece word in the middle); a budget of 2 can never take the word."""
    candidates = torch.tensor([[False, True, True, True, True, True, False]])
    starts = torch.tensor([[False, True, True, False, False, True, False]])
    for seed in range(20):
        chosen = select_positions(candidates, starts, probability=0.4, generator=torch.Generator().manual_seed(seed))
        assert chosen.tolist() == [[False, True, False, False, False, True, False]]  # round(0.4 x 5) = 2
