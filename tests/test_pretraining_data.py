"""The data pipeline: text -> documents -> sentences -> NSP/SOP pairs packed as BERT packs them -> batches.

Lecture lectures/pretraining.md, section "From raw text to sentence pairs"; run with `pytest -m pretraining`.
Most tests use token-id documents whose ids say where they come from (document d, token t -> 1000 d + t), so
that "B really follows A" can be checked by arithmetic.
"""
import pytest
import torch

from minibert.pretraining import Masker, PretrainingData
from minibert.pretraining.data import StagedData
from minibert.pretraining.documents import read_documents, split_documents, split_sentences
from minibert.pretraining.pairs import IS_NEXT, NOT_NEXT, create_pairs, tokenize_documents, truncate_pair
from minibert.tokenizer import WordPieceTokenizer

pytestmark = pytest.mark.pretraining

WIKI = """
 = First Article = 
 
 The first article starts here . It has @-@ two sentences . 
 
 = = A section = = 
 
 More text in section one . 
 
 = Second Article = 
 
 Another article begins . 
"""


def id_documents(n_documents: int, sentences=(2, 6), words=(3, 9), seed=0) -> list[list[list[int]]]:
    """Documents of sentences of ids 1000 d + t, t counting the tokens of document d from 0."""
    g = torch.Generator().manual_seed(seed)
    documents = []
    for d in range(n_documents):
        document, t = [], 0
        for _ in range(int(torch.randint(*sentences, (), generator=g))):
            n = int(torch.randint(*words, (), generator=g))
            document.append(list(range(1000 * d + t, 1000 * d + t + n)))
            t += n
        documents.append(document)
    return documents


def is_run(tokens: list[int]) -> bool:
    """Consecutive ids of one document: text that really follows on."""
    return all(b == a + 1 for a, b in zip(tokens, tokens[1:]))


def test_wikitext_headings_separate_documents_and_sections_are_dropped():
    documents = split_documents(WIKI)
    assert len(documents) == 2
    assert "A section" not in documents[0] and "two sentences" in documents[0]
    assert split_sentences(documents[0]) == ["The first article starts here .", "It has-two sentences .",
                                             "More text in section one ."]


def test_blank_lines_separate_documents_in_plain_text(tmp_path):
    path = tmp_path / "book.txt"
    path.write_text("Mr. Bennet came home.\nHe was\ntired. Was he?\n\n\nYes! He said so.\n", encoding="utf-8")
    assert read_documents(path) == [["Mr. Bennet came home.", "He was tired.", "Was he?"],
                                    ["Yes!", "He said so."]]


def test_is_next_and_not_next_are_balanced_and_true_to_their_label():
    """Documents shorter than the maximum are never truncated, so every pair can be checked exactly.

    Tolerance: about 700 pairs, a share of 0.5 has a standard deviation of 0.019; +-0.06 is three of them.
    """
    documents = id_documents(400)
    pairs = create_pairs(documents, max_length=128, generator=torch.Generator().manual_seed(0))
    assert len(pairs) > 600
    share_not_next = sum(p.label == NOT_NEXT for p in pairs) / len(pairs)
    assert abs(share_not_next - 0.5) < 0.06
    for pair in pairs:
        document_a = pair.tokens_a[0] // 1000
        assert is_run(pair.tokens_a)
        assert is_run(pair.tokens_b), "B is consecutive text (of one document)"
        if pair.label == IS_NEXT:
            assert pair.tokens_b[0] == pair.tokens_a[-1] + 1, "IsNext: B starts where A ends"
        else:
            assert pair.tokens_b[0] // 1000 != document_a, "NotNext: B comes from another document"


def test_not_next_text_comes_from_the_same_file_and_is_as_long_as_the_true_next():
    """Two 'files' of 200 documents each (sources 0 and 1). A NotNext B is drawn from the file of A, so the
    model cannot answer NSP by telling one kind of text from another; and NotNext examples are as long as
    IsNext ones (documents here are shorter than an example: Google's rule would make every NotNext longer)."""
    documents = id_documents(400, sentences=(2, 4))
    sources = [0] * 200 + [1] * 200
    pairs = create_pairs(documents, max_length=128, generator=torch.Generator().manual_seed(5), sources=sources)
    not_next = [p for p in pairs if p.label == NOT_NEXT]
    assert len(not_next) > 150
    assert all(sources[p.tokens_b[0] // 1000] == sources[p.tokens_a[0] // 1000] for p in not_next)

    def mean_length(label):
        lengths = [len(p.tokens_a) + len(p.tokens_b) for p in pairs if p.label == label]
        return sum(lengths) / len(lengths)
    # the two means differ by at most a third of a sentence (a NotNext B ends at a sentence end of its own)
    assert abs(mean_length(NOT_NEXT) - mean_length(IS_NEXT)) < 3


def test_repeats_use_a_file_that_many_times_with_other_cuts():
    """File 1 repeated 3 times gives about three times the pairs it gives once, nearly all of them different
    (each copy is cut anew); NotNext text still comes from its own file, never from the same document."""
    documents = id_documents(200, sentences=(6, 10))
    sources = [0] * 100 + [1] * 100

    def pairs_of_file_1(repeats):
        pairs = create_pairs(documents, max_length=64, generator=torch.Generator().manual_seed(6), sources=sources,
                             repeats=repeats)
        for pair in pairs:
            if pair.label == NOT_NEXT:
                a, b = pair.tokens_a[0] // 1000, pair.tokens_b[0] // 1000
                assert a != b and sources[a] == sources[b]
        return [(tuple(p.tokens_a), tuple(p.tokens_b)) for p in pairs if p.tokens_a[0] // 1000 >= 100]

    once, thrice = pairs_of_file_1([1, 1]), pairs_of_file_1([1, 3])
    assert abs(len(thrice) / len(once) - 3) < 0.3
    assert len(set(thrice)) > 0.9 * len(thrice)
    with pytest.raises(ValueError, match="one whole number"):
        PretrainingData.from_files(["a.txt", "b.txt"], tokenizer=None, repeats=[2])


def test_min_document_words_gathers_paragraphs(tmp_path):
    path = tmp_path / "book.txt"
    path.write_text("One two three.\n\nFour five.\n\nSix seven eight nine.\n\nTen.\n", encoding="utf-8")
    assert len(read_documents(path)) == 4
    assert read_documents(path, min_words=5) == [["One two three.", "Four five."], ["Six seven eight nine.", "Ten."]]


def test_no_text_is_wasted_when_next_sentences_are_replaced():
    """The sentences a NotNext example displaced start the next example: every token of every document is
    used in some segment A or IsNext segment B."""
    documents = id_documents(100, sentences=(4, 8))
    pairs = create_pairs(documents, max_length=24, generator=torch.Generator().manual_seed(1), short_seq_prob=0.0)
    used = {t for p in pairs for t in p.tokens_a + (p.tokens_b if p.label == IS_NEXT else [])}
    every = {t for document in documents for sentence in document for t in sentence}
    # truncation may trim a few tokens off the ends of long chunks, nothing else may be missing
    assert len(every - used) / len(every) < 0.2


def test_sentence_order_prediction_swaps_the_two_segments():
    documents = id_documents(300)
    pairs = create_pairs(documents, max_length=128, generator=torch.Generator().manual_seed(2), task="sop")
    share_swapped = sum(p.label == NOT_NEXT for p in pairs) / len(pairs)
    assert abs(share_swapped - 0.5) < 0.07
    for pair in pairs:
        assert pair.tokens_a[0] // 1000 == pair.tokens_b[0] // 1000, "SOP: both segments from one document"
        first, second = (pair.tokens_a, pair.tokens_b) if pair.label == IS_NEXT else (pair.tokens_b, pair.tokens_a)
        assert second[0] == first[-1] + 1, "in order, or swapped"


def test_packing_fills_examples_to_the_maximum_length():
    """Long documents, no short examples: a chunk grows past the target, then the longer segment is trimmed,
    so examples come out at exactly max_length (the last chunk of a document may be shorter)."""
    documents = id_documents(40, sentences=(30, 40), words=(5, 25))
    pairs = create_pairs(documents, max_length=64, generator=torch.Generator().manual_seed(3), short_seq_prob=0.0)
    lengths = torch.tensor([len(p.tokens_a) + len(p.tokens_b) + 3 for p in pairs])
    assert lengths.max() <= 64
    assert (lengths == 64).float().mean() > 0.85

    short = create_pairs(documents, max_length=64, generator=torch.Generator().manual_seed(3), short_seq_prob=1.0)
    short_lengths = torch.tensor([len(p.tokens_a) + len(p.tokens_b) + 3 for p in short]).float()
    assert short_lengths.max() <= 64 and short_lengths.mean() < 0.8 * 64, "random targets give shorter examples"


def test_truncation_trims_the_longer_segment_from_either_end():
    fronts = backs = 0
    for seed in range(30):
        a, b = list(range(10)), list(range(100, 103))
        truncate_pair(a, b, max_tokens=8, generator=torch.Generator().manual_seed(seed))
        assert b == [100, 101, 102] and len(a) == 5 and is_run(a), "only A, the longer one, loses tokens"
        fronts += a[0] > 0
        backs += a[-1] < 9
    assert fronts and backs, "both ends get cut"


def test_one_sentence_documents_still_give_true_pairs():
    documents = [[list(range(1000 * d, 1000 * d + 12))] for d in range(200)]  # a play: one line per speech
    pairs = create_pairs(documents, max_length=64, generator=torch.Generator().manual_seed(4))
    share_not_next = sum(p.label == NOT_NEXT for p in pairs) / len(pairs)
    assert abs(share_not_next - 0.5) < 0.1
    assert all(p.tokens_b[0] == p.tokens_a[-1] + 1 for p in pairs if p.label == IS_NEXT)


@pytest.fixture
def small_data(tmp_path):
    words = ["the", "cat", "dog", "sat", "ran", "on", "a", "mat", "tree", "big", "small", "red"]
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", *words]
    tokenizer = WordPieceTokenizer(vocab)
    g = torch.Generator().manual_seed(0)
    def sentence():
        return " ".join(words[i] for i in torch.randint(len(words), (6,), generator=g).tolist()).capitalize() + "."

    text = "\n\n".join(" ".join(sentence() for _ in range(int(torch.randint(1, 6, (), generator=g))))
                       for _ in range(80))
    (tmp_path / "corpus.txt").write_text(text, encoding="utf-8")
    return tokenizer, PretrainingData.from_files([tmp_path / "corpus.txt"], tokenizer, max_length=32, batch_size=8)


def test_tokenized_example_layout(small_data):
    tokenizer, data = small_data
    ids, segments, labels, _ = data.example(0, 0)
    pair = data.pairs[0]
    assert ids[0] == tokenizer.cls_token_id and ids[-1] == tokenizer.sep_token_id
    assert ids[len(pair.tokens_a) + 1] == tokenizer.sep_token_id
    assert segments.tolist() == [0] * (len(pair.tokens_a) + 2) + [1] * (len(pair.tokens_b) + 1)
    assert len(tokenize_documents([["The cat sat."]], tokenizer)[0][0]) == 4


def test_masks_are_drawn_anew_each_epoch_and_the_same_for_the_same_epoch(small_data):
    _, data = small_data
    ids = data.example(0, 3)[0]
    first, again = data.mask(ids, 0, 3), data.mask(ids, 0, 3)
    assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])
    differs = [not torch.equal(data.mask(ids, 0, i)[1], data.mask(ids, 1, i)[1]) for i in range(20)]
    assert sum(differs) >= 15, "dynamic masking: another epoch hides other tokens"


def test_pairs_are_drawn_anew_each_epoch(small_data):
    _, data = small_data
    first, second = data.epoch_pairs(0), data.epoch_pairs(1)
    assert [(p.tokens_a, p.tokens_b) for p in first] != [(p.tokens_a, p.tokens_b) for p in second]
    for pairs in (first, second):
        assert abs(sum(p.label for p in pairs) / len(pairs) - 0.5) < 0.15
    assert data.epoch_pairs(0) == first, "and the same ones when an epoch is asked for again"


def test_an_earlier_epoch_can_be_asked_for_again(small_data):
    """A second run over the same data (the benchmark trains two models on it) goes back to epoch 0 after
    later epochs were made; it must get the same pairs and batches as the first time."""
    _, data = small_data
    first = [(p.tokens_a, p.tokens_b, p.label) for p in data.epoch_pairs(0)]
    batch = data.micro_batches(0)[0]
    for epoch in (1, 2, 3):
        data.epoch_pairs(epoch)
    assert [(p.tokens_a, p.tokens_b, p.label) for p in data.epoch_pairs(0)] == first
    assert torch.equal(data.micro_batches(0)[0].input_ids, batch.input_ids)


def test_processes_and_micro_batches_share_out_exactly_the_single_process_batch(small_data):
    _, data = small_data

    def rows(batches):
        return [tuple(ids[mask.bool()].tolist()) for b in batches for ids, mask in zip(b.input_ids, b.attention_mask)]

    for step in (0, 5, data.batches_per_epoch + 2):  # the last one is in the second epoch
        whole = rows(data.micro_batches(step))
        assert len(whole) == 8
        assert rows(data.micro_batches(step, accumulation=2)) == whole
        shares = [data.micro_batches(step, accumulation=2, rank=r, world_size=2) for r in range(2)]
        interleaved = [row for m in range(2) for r in range(2) for row in rows([shares[r][m]])]
        assert interleaved == whole
    with pytest.raises(ValueError, match="divisible by 3"):
        data.micro_batches(0, accumulation=3)


def test_staged_data_serves_each_stage_from_its_own_step_zero(small_data, tmp_path):
    tokenizer, long = small_data
    short = PretrainingData.from_files([tmp_path / "corpus.txt"], tokenizer, max_length=12, batch_size=8)
    staged = StagedData([(3, short), (None, long)])

    def same(a, b):
        return all(torch.equal(getattr(x, f), getattr(y, f)) for x, y in zip(a, b)
                   for f in ("input_ids", "labels", "token_type_ids", "next_sentence_label"))

    for step in range(3):
        assert same(staged.micro_batches(step), short.micro_batches(step))
        assert staged.micro_batches(step)[0].input_ids.shape[1] <= 12
    for step in (3, 4, 3 + long.batches_per_epoch):
        assert same(staged.micro_batches(step, accumulation=2), long.micro_batches(step - 3, accumulation=2))
    assert staged.stage(2)[1] is short and staged.stage(10**6) == (3, long)
    with pytest.raises(ValueError, match="the last, which takes the rest"):
        StagedData([(3, short), (5, long)])
    built = StagedData.short_then_long([tmp_path / "corpus.txt"], 3, 12, max_length=32, batch_size=8, tokenizer=tokenizer)
    assert [(steps, d.max_length, d.batch_size) for steps, d in built.stages] == [(3, 12, 21), (None, 32, 8)]


def test_every_example_is_seen_once_per_epoch(small_data):
    _, data = small_data
    seen = [i for batch in data.epoch_batches(0) for i in batch]
    assert len(seen) == len(set(seen)) == data.batches_per_epoch * 8
    assert data.epoch_batches(1) != data.epoch_batches(0)


def test_padding_gets_no_label(small_data):
    _, data = small_data
    batches = [data.micro_batches(step)[0] for step in range(data.batches_per_epoch)]
    assert any((batch.attention_mask == 0).any() for batch in batches)
    for batch in batches:
        assert (batch.labels[batch.attention_mask == 0] == -100).all()
        assert (batch.input_ids[batch.attention_mask == 0] == data.pad).all()
    assert isinstance(data.masker, Masker)
