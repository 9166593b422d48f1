"""Task data for fine-tuning: the readers on the real shared files, their errors on broken files, labels aligned
to word pieces, dynamic padding and length-grouped batches.

Lecture 2.1 (inputs); run with `pytest -m inputs`. Counts come from each folder's SOURCE.md and the CoNLL-2003
paper (Tjong Kim Sang and De Meulder, 2003, table 2: entities per type); alignments are derived by hand with
the real MiniLM tokenizer and checked against transformers' `word_ids()`.
"""
import random

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from minibert.finetune.batching import (collate, encode_tagged, encode_texts, length_grouped_batches,
                                        word_predictions)
from minibert.finetune.data import (DataFormatError, TaggedSentence, TextExample, UnknownLabelError,
                                    iob1_to_bio, label_vocabulary, read_conll2003, read_cs224n_sentiment,
                                    read_sst2, read_table)
from minibert.tokenizer import WordPieceTokenizer

pytestmark = pytest.mark.inputs


@pytest.fixture(scope="module")
def tokenizer(checkpoint_dir):
    return WordPieceTokenizer.from_pretrained(checkpoint_dir)


def label_counts(examples):
    counts = {}
    for e in examples:
        counts[e.label] = counts.get(e.label, 0) + 1
    return counts


# ----- the real files: counts of SOURCE.md, and examples read by eye -----

@pytest.mark.parametrize("name, count, counts", [
    ("train.tsv", 67_349, {1: 37_569, 0: 29_780}),
    ("dev.tsv", 872, {1: 444, 0: 428}),
    ("train-first1000.tsv", 1_000, None),
    ("test.tsv", 1_821, {None: 1_821}),
])
def test_sst2_counts(data_dir, name, count, counts):
    examples = read_sst2(data_dir / "glue-sst2" / name)
    assert len(examples) == count
    if counts:
        assert label_counts(examples) == counts


def test_sst2_examples(data_dir):
    dev = read_sst2(data_dir / "glue-sst2" / "dev.tsv")
    assert dev[0] == TextExample("it 's a charming and often affecting journey .", None, 1)  # trailing space gone
    assert dev[1] == TextExample("unflinchingly bleak and desperate", None, 0)
    test = read_sst2(data_dir / "glue-sst2" / "test.tsv")
    assert test[0] == TextExample("uneasy mishmash of styles and genres .", None, None)


@pytest.mark.parametrize("name, count, counts", [
    ("ids-sst-train.csv", 8_544, {0: 1_092, 1: 2_218, 2: 1_624, 3: 2_322, 4: 1_288}),
    ("ids-sst-dev.csv", 1_101, None),
    ("ids-sst-test-student.csv", 2_210, {None: 2_210}),
    ("ids-cfimdb-train.csv", 1_707, {0: 856, 1: 851}),
    ("ids-cfimdb-dev.csv", 245, {0: 123, 1: 122}),
    ("ids-cfimdb-test-student.csv", 488, {None: 488}),
])
def test_cs224n_counts(data_dir, name, count, counts):
    examples = read_cs224n_sentiment(data_dir / "cs224n-minbert" / name)
    assert len(examples) == count
    if counts:
        assert label_counts(examples) == counts


def test_cs224n_examples(data_dir):
    dev = read_cs224n_sentiment(data_dir / "cs224n-minbert" / "ids-sst-dev.csv")
    assert dev[0] == TextExample("It 's a lovely film with lovely performances by Buy and Accorsi .", None, 3)
    test = read_cs224n_sentiment(data_dir / "cs224n-minbert" / "ids-sst-test-student.csv")
    assert test[0] == TextExample("Effective but too-tepid biopic", None, None)
    assert label_vocabulary(dev) == [0, 1, 2, 3, 4]


# sentences, words, and entities per type (B- tags once in BIO) as the CoNLL-2003 paper counts them
CONLL = {
    "eng.train": (14_041, 203_621, {"LOC": 7_140, "MISC": 3_438, "ORG": 6_321, "PER": 6_600}),
    "eng.testa": (3_250, 51_362, {"LOC": 1_837, "MISC": 922, "ORG": 1_341, "PER": 1_842}),
    "eng.testb": (3_453, 46_435, {"LOC": 1_668, "MISC": 702, "ORG": 1_661, "PER": 1_617}),
}


@pytest.mark.parametrize("name", ["eng.testa", "eng.testb"])
def test_conll_counts_and_entities(data_dir, name):
    sentences = read_conll2003(data_dir / "conll2003" / name)
    n_sentences, n_words, entities = CONLL[name]
    assert len(sentences) == n_sentences
    assert sum(len(s.words) for s in sentences) == n_words
    assert all(len(s.words) == len(s.tags) for s in sentences)
    begins = {}
    for s in sentences:
        for tag in s.tags:
            if tag.startswith("B-"):
                begins[tag[2:]] = begins.get(tag[2:], 0) + 1
    assert begins == entities  # every entity opens with exactly one B- once converted


def test_conll_train_tag_totals(data_dir):
    """SOURCE.md counts IOB1 tags (O 170,524 with the 946 -DOCSTART- lines; I-PER 11,128 ...; 70 B-): the
    conversion changes prefixes, never the type of a word."""
    sentences = read_conll2003(data_dir / "conll2003" / "eng.train")
    n_sentences, n_words, entities = CONLL["eng.train"]
    assert (len(sentences), sum(len(s.words) for s in sentences)) == (n_sentences, n_words)
    types = {}
    for s in sentences:
        for tag in s.tags:
            types[tag[2:] or "O"] = types.get(tag[2:] or "O", 0) + 1
    assert types["O"] == 170_524 - 946
    assert types["PER"] == 11_128  # PER has no IOB1 B- in train
    assert types["LOC"] + types["ORG"] + types["MISC"] == 8_286 + 10_001 + 4_558 + 70


def test_conll_iob1_to_bio_by_hand(data_dir):
    """eng.testb: '5-2 Real Madrid Real Madrid', two adjacent ORG entities; IOB1 marks only the second with B-."""
    assert iob1_to_bio(["O", "I-ORG", "I-ORG", "B-ORG", "I-ORG"]) == ["O", "B-ORG", "I-ORG", "B-ORG", "I-ORG"]
    assert iob1_to_bio(["I-PER", "I-LOC", "O", "I-MISC", "I-MISC"]) == ["B-PER", "B-LOC", "O", "B-MISC", "I-MISC"]
    sentences = read_conll2003(data_dir / "conll2003" / "eng.testb")
    match = next(s for s in sentences if s.words == ["5-2", "Real", "Madrid", "Real", "Madrid"])
    assert match.tags == ["O", "B-ORG", "I-ORG", "B-ORG", "I-ORG"]
    first = sentences[0]
    assert first.words[:3] == ["SOCCER", "-", "JAPAN"] and first.tags[:3] == ["O", "O", "B-LOC"]
    assert sentences[1] == TaggedSentence(["Nadim", "Ladki"], ["B-PER", "I-PER"])


def test_conll_bio_file_reads_unchanged(tmp_path):
    path = tmp_path / "bio.txt"
    path.write_text("-DOCSTART- -X- -X- O\n\nReal B-ORG\nMadrid I-ORG\nReal B-ORG\n\nhello O\n", encoding="utf-8")
    assert read_conll2003(path) == [TaggedSentence(["Real", "Madrid", "Real"], ["B-ORG", "I-ORG", "B-ORG"]),
                                    TaggedSentence(["hello"], ["O"])]


# ----- broken files: the error names the file, the line and the format -----

def assert_error(call, path, line, *words):
    with pytest.raises(DataFormatError) as caught:
        call(path)
    message = str(caught.value)
    assert str(path) in message and "Expected" in message
    if line is not None:
        assert f"line {line}:" in message
    for word in words:
        assert word in message, message
    return message


def test_missing_file(tmp_path):
    assert_error(read_sst2, tmp_path / "nope.tsv", None, "no such file", "sentence<TAB>label")
    assert_error(read_conll2003, tmp_path, None, "a folder", "CoNLL-2003")


def test_wrong_column_count(tmp_path):
    path = tmp_path / "dev.tsv"
    path.write_text("sentence\tlabel\ngood film\t1\nbad\tfilm\t0\n", encoding="utf-8")
    assert_error(read_sst2, path, 3, "3 tab-separated columns", "2")
    path = tmp_path / "ids-sst-dev.csv"
    path.write_text("\tid\tsentence\tsentiment\n0\tab\t good\t3\n1\tcd\t bad\n", encoding="utf-8")
    assert_error(read_cs224n_sentiment, path, 3, "3 tab-separated columns", "minBERT")


def test_bad_label(tmp_path):
    path = tmp_path / "dev.tsv"
    path.write_text("sentence\tlabel\ngood film\t1\nbad film\tnegative\n", encoding="utf-8")
    assert_error(read_sst2, path, 3, "'negative'", "not a class number")
    path.write_text("sentence\tlabel\ngood film\t1\n\nbad film\t2\n", encoding="utf-8")
    assert_error(read_sst2, path, 4, "neither 0 nor 1")
    path = tmp_path / "eng.testb"
    path.write_text("EU NNP I-NP I-ORG\nrejects VBZ I-VP 0\n", encoding="utf-8")  # a zero, not the letter O
    assert_error(read_conll2003, path, 2, "'0' is not an NER tag")


def test_missing_header(tmp_path):
    path = tmp_path / "dev.tsv"
    path.write_text("good film\t1\nbad film\t0\n", encoding="utf-8")
    assert_error(read_sst2, path, 1, "no column 'sentence'", "header")
    path = tmp_path / "ids-sst-dev.csv"
    path.write_text("0\tab\t good\t3\n", encoding="utf-8")
    assert_error(read_cs224n_sentiment, path, 1, "'id'")
    path = tmp_path / "mine.csv"
    path.write_text("good film,1\nbad film,0\n", encoding="utf-8")
    assert_error(lambda p: read_table(p, "text", "label"), path, 2, "no column 'text' or 'label'")


def test_not_utf8(tmp_path):
    path = tmp_path / "dev.tsv"
    path.write_bytes("sentence\tlabel\ngood\t1\ncaf\u00e9 cr\u00e8me\t1\n".encode("latin-1"))
    assert_error(read_sst2, path, 3, "0xe9", "not UTF-8")
    path = tmp_path / "eng.train"
    path.write_bytes(b"M\xfcller NNP I-NP I-PER\n")
    assert_error(read_conll2003, path, 1, "0xfc")


def test_conll_mixed_columns(tmp_path):
    path = tmp_path / "eng.train"
    path.write_text("EU NNP I-NP I-ORG\n\nrejects\n", encoding="utf-8")
    assert_error(read_conll2003, path, 3, "1 column(s)")


# ----- a user's own table -----

def test_read_table_csv_tsv_jsonl(tmp_path):
    csv_path = tmp_path / "mine.csv"
    csv_path.write_text('premise,hypothesis,label\n"A man, a plan.",He plans.,entailment\n'
                        '"He said ""no""",He agreed.,contradiction\n', encoding="utf-8")
    assert read_table(csv_path, "premise", "label", pair_column="hypothesis") == [
        TextExample("A man, a plan.", "He plans.", "entailment"),
        TextExample('He said "no"', "He agreed.", "contradiction")]
    tsv_path = tmp_path / "mine.tsv"
    tsv_path.write_text('text\tscore\n"quoted" words\t3.5\nplain\t1\n', encoding="utf-8")
    assert read_table(tsv_path, "text", "score") == [TextExample('"quoted" words', None, 3.5),
                                                      TextExample("plain", None, 1)]
    jsonl_path = tmp_path / "mine.jsonl"
    jsonl_path.write_text('{"text": "one", "label": 1}\n\n{"text": "two", "label": 0, "extra": [1]}\n',
                          encoding="utf-8")
    assert read_table(jsonl_path, "text", "label") == [TextExample("one", None, 1), TextExample("two", None, 0)]
    assert read_table(jsonl_path, "text") == [TextExample("one"), TextExample("two")]


def test_read_table_csv_cell_over_two_lines(tmp_path):
    path = tmp_path / "mine.csv"
    path.write_text('text,label\n"first line\nsecond line",pos\nnext,neg\n', encoding="utf-8")
    assert read_table(path, "text", "label") == [TextExample("first line\nsecond line", None, "pos"),
                                                 TextExample("next", None, "neg")]
    path.write_text('text,label\n"two\nlines",pos\nnext,neg,extra\n', encoding="utf-8")
    assert_error(lambda p: read_table(p, "text", "label"), path, 4, "3 CSV columns")  # the file's line, not the row


def test_header_without_rows(tmp_path):
    path = tmp_path / "dev.tsv"
    path.write_text("sentence\tlabel\n", encoding="utf-8")
    assert_error(read_sst2, path, None, "no examples after the header")


def test_read_table_errors(tmp_path):
    path = tmp_path / "mine.jsonl"
    path.write_text('{"text": "one", "label": 1}\n{"text": "two", label: 0}\n', encoding="utf-8")
    assert_error(lambda p: read_table(p, "text", "label"), path, 2, "not a JSON object")
    path.write_text('{"text": "one", "label": 1}\n{"txt": "two", "label": 0}\n', encoding="utf-8")
    assert_error(lambda p: read_table(p, "text", "label"), path, 2, "no column 'text'", "['label', 'txt']")
    path = tmp_path / "mine.csv"
    path.write_text("text,label\none,1\ntwo,0,extra\n", encoding="utf-8")
    assert_error(lambda p: read_table(p, "text", "label"), path, 3, "3 CSV columns")
    path = tmp_path / "mine.xlsx"
    path.write_text("", encoding="utf-8")
    assert_error(lambda p: read_table(p, "text"), path, None, "'.xlsx'", ".jsonl")


def test_label_vocabulary_rules():
    def examples(*labels):
        return [TextExample("x", label=y) for y in labels]
    assert label_vocabulary(examples(2, 0, 1, 1, None)) == [0, 1, 2]
    assert label_vocabulary(examples(1.0, 0.0, 1.0)) == [0, 1]  # whole numbers written as floats: classes
    assert label_vocabulary(examples(0.5, 4.0, 3)) is None  # a score: regression
    assert label_vocabulary(examples(0, 1), regression=True) is None  # asked for
    assert label_vocabulary(examples(0.5, 1.5), regression=False) == [0.5, 1.5]
    assert label_vocabulary(examples("pos", "neg", "neutral")) == ["neg", "neutral", "pos"]
    assert label_vocabulary(examples(10, 2, 1)) == [1, 2, 10]  # numbers sort as numbers, not as text
    with pytest.raises(ValueError, match="no labels"):
        label_vocabulary(examples(None, None))


# ----- examples -> ids -----

def test_encode_texts_one_and_pair(tokenizer):
    examples = [TextExample("a lovely film", label="pos"), TextExample("dull", label="neg")]
    features = encode_texts(tokenizer, examples, {"neg": 0, "pos": 1}, max_length=16)
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    assert features[0] == {"input_ids": [cls, *tokenizer.convert_tokens_to_ids(["a", "lovely", "film"]), sep],
                           "token_type_ids": [0] * 5, "label": 1}
    assert features[1]["label"] == 0
    pair = encode_texts(tokenizer, [TextExample("a b c d e f", "g h", 2.5)], None, max_length=8)[0]
    # 8 = [CLS] + 3 + [SEP] + 2 + [SEP]: the longer text is cut first, down to 3 (8 - 3 special - 2)
    assert tokenizer.convert_ids_to_tokens(pair["input_ids"]) == ["[CLS]", "a", "b", "c", "[SEP]", "g", "h", "[SEP]"]
    assert pair["token_type_ids"] == [0] * 5 + [1] * 3
    assert pair["label"] == 2.5 and isinstance(pair["label"], float)
    assert "label" not in encode_texts(tokenizer, [TextExample("unlabeled")], {"neg": 0}, 16)[0]


def test_labels_found_as_a_checkpoint_names_them(tokenizer):
    """config.json's label2id has string keys; the readers give ints (and a table may give 1.0)."""
    examples = [TextExample("good", label=1), TextExample("bad", label=0.0)]
    assert [f["label"] for f in encode_texts(tokenizer, examples, {"0": 0, "1": 1}, 8)] == [1, 0]
    with pytest.raises(UnknownLabelError, match="'pos' is not a number"):
        encode_texts(tokenizer, [TextExample("good", label="pos")], None, 8)


def test_encode_texts_matches_transformers(tokenizer, checkpoint_dir, data_dir, transformers_lib):
    reference = transformers_lib.BertTokenizerFast.from_pretrained(str(checkpoint_dir))
    dev = read_cs224n_sentiment(data_dir / "cs224n-minbert" / "ids-cfimdb-dev.csv")[:20]
    examples = [TextExample(a.text, b.text, a.label) for a, b in zip(dev, dev[1:] + dev[:1])]
    features = encode_texts(tokenizer, examples, {0: 0, 1: 1}, max_length=128)
    expected = reference([e.text for e in examples], [e.pair for e in examples], max_length=128, truncation=True)
    assert [f["input_ids"] for f in features] == expected["input_ids"]
    assert [f["token_type_ids"] for f in features] == expected["token_type_ids"]


def test_unknown_label_names_it_and_the_known_ones(tokenizer):
    with pytest.raises(UnknownLabelError) as caught:
        encode_texts(tokenizer, [TextExample("ok", label=1), TextExample("meh", label=7)], {0: 0, 1: 1}, 16)
    assert "label 7" in str(caught.value) and "[0, 1]" in str(caught.value) and "example 1" in str(caught.value)
    with pytest.raises(UnknownLabelError, match="'B-DATE'.*'B-PER', 'I-PER', 'O'"):
        encode_tagged(tokenizer, [TaggedSentence(["May"], ["B-DATE"])], {"B-PER": 0, "I-PER": 1, "O": 2}, 16)


TAGS = ["B-LOC", "B-MISC", "B-ORG", "B-PER", "I-LOC", "I-MISC", "I-ORG", "I-PER", "O"]
TAG_ID = {t: i for i, t in enumerate(TAGS)}


def test_encode_tagged_by_hand(tokenizer):
    """'Nadim Ladki' (eng.testb): [CLS] nad ##im lad ##ki [SEP]; the tag on the first piece of each word."""
    sentence = TaggedSentence(["Nadim", "Ladki", "scored"], ["B-PER", "I-PER", "O"])
    feature = encode_tagged(tokenizer, [sentence], TAG_ID, max_length=32)[0]
    assert tokenizer.convert_ids_to_tokens(feature["input_ids"]) == ["[CLS]", "nad", "##im", "lad", "##ki",
                                                                     "scored", "[SEP]"]
    assert feature["word_ids"] == [None, 0, 0, 1, 1, 2, None]
    b_per, i_per, o = TAG_ID["B-PER"], TAG_ID["I-PER"], TAG_ID["O"]
    assert feature["labels"] == [-100, b_per, -100, i_per, -100, o, -100]
    assert feature["words_cut"] == 0
    every = encode_tagged(tokenizer, [sentence], TAG_ID, max_length=32, label_all_pieces=True)[0]
    assert every["labels"] == [-100, b_per, i_per, i_per, i_per, o, -100]  # a B- word's later pieces: I-


def test_encode_tagged_word_ids_match_transformers(tokenizer, checkpoint_dir, data_dir, transformers_lib):
    """transformers' is_split_into_words gives the same pieces and word_ids on 300 real sentences."""
    reference = transformers_lib.BertTokenizerFast.from_pretrained(str(checkpoint_dir))
    sentences = read_conll2003(data_dir / "conll2003" / "eng.testb")[:300]
    with pytest.warns(UserWarning, match="6 of 300 sentences"):  # truncation too: the same cut as transformers
        features = encode_tagged(tokenizer, sentences, TAG_ID, max_length=64)
    for sentence, feature in zip(sentences, features):
        expected = reference(sentence.words, is_split_into_words=True, max_length=64, truncation=True)
        assert feature["input_ids"] == expected["input_ids"]
        assert feature["word_ids"] == expected.word_ids()


@pytest.mark.parametrize("label_all_pieces", [False, True])
def test_encode_tagged_labels_as_run_ner(tokenizer, checkpoint_dir, data_dir, transformers_lib, label_all_pieces):
    """The labels of transformers' examples/pytorch/token-classification/run_ner.py (tokenize_and_align_labels,
    label_all_tokens with its B- -> I- map), rebuilt here from the reference tokenizer's word_ids."""
    reference = transformers_lib.BertTokenizerFast.from_pretrained(str(checkpoint_dir))
    sentences = read_conll2003(data_dir / "conll2003" / "eng.testa")[:200]
    features = encode_tagged(tokenizer, sentences, TAG_ID, max_length=128, label_all_pieces=label_all_pieces)
    b_to_i = [TAG_ID["I-" + tag[2:]] if tag.startswith("B-") else TAG_ID[tag] for tag in TAGS]
    for sentence, feature in zip(sentences, features):
        word_ids = reference(sentence.words, is_split_into_words=True, max_length=128, truncation=True).word_ids()
        expected, previous = [], None
        for word in word_ids:
            if word is None:
                expected.append(-100)
            elif word != previous:
                expected.append(TAG_ID[sentence.tags[word]])
            else:
                expected.append(b_to_i[TAG_ID[sentence.tags[word]]] if label_all_pieces else -100)
            previous = word
        assert feature["labels"] == expected


def test_encode_tagged_truncation_reports_cut_words(tokenizer):
    sentence = TaggedSentence(["Nadim", "Ladki", "scored", "twice", "today"], ["B-PER", "I-PER", "O", "O", "O"])
    with pytest.warns(UserWarning, match="1 of 1 sentences.*: 3 words"):
        feature = encode_tagged(tokenizer, [sentence], TAG_ID, max_length=6)[0]
    # [CLS] nad ##im lad ##ki [SEP]: words 2, 3, 4 have no token
    assert feature["word_ids"] == [None, 0, 0, 1, 1, None]
    assert feature["words_cut"] == 3
    predicted = word_predictions([0, 3, 5, 7, 1, 0], feature["word_ids"], num_words=5, fill=8)
    assert predicted == [3, 7, 8, 8, 8]


def test_word_predictions_first_piece():
    word_ids = [None, 0, 0, 1, 2, 2, 2, None]
    assert word_predictions([9, 4, 5, 6, 7, 8, 1, 9], word_ids) == [4, 6, 7]
    collated = torch.tensor([-1, 0, 0, 1, 2, 2, 2, -1, -1])  # as collate pads them
    assert word_predictions(torch.tensor([9, 4, 5, 6, 7, 8, 1, 9, 9]), collated) == [4, 6, 7]


# ----- batches -----

def test_collate_pads_to_the_longest():
    features = [{"input_ids": [101, 7, 8, 102], "token_type_ids": [0, 0, 0, 0], "word_ids": [None, 0, 1, None],
                 "labels": [-100, 3, 4, -100], "words_cut": 0},
                {"input_ids": [101, 9, 102], "token_type_ids": [0, 0, 0], "word_ids": [None, 0, None],
                 "labels": [-100, 5, -100], "words_cut": 0}]
    batch = collate(features, pad_token_id=0)
    assert set(batch) == {"input_ids", "token_type_ids", "attention_mask", "word_ids", "labels"}
    torch.testing.assert_close(batch["input_ids"], torch.tensor([[101, 7, 8, 102], [101, 9, 102, 0]]))
    torch.testing.assert_close(batch["attention_mask"], torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]]))
    torch.testing.assert_close(batch["token_type_ids"], torch.zeros(2, 4, dtype=torch.long))
    torch.testing.assert_close(batch["labels"], torch.tensor([[-100, 3, 4, -100], [-100, 5, -100, -100]]))
    torch.testing.assert_close(batch["word_ids"], torch.tensor([[-1, 0, 1, -1], [-1, 0, -1, -1]]))


def test_collate_sentence_labels(tokenizer):
    features = encode_texts(tokenizer, [TextExample("a", "b c", 1), TextExample("a b c d", "e", 0)], {0: 0, 1: 1},
                            32)
    batch = collate(features, tokenizer.pad_token_id)
    # [CLS] a [SEP] b c [SEP] and [CLS] a b c d [SEP] e [SEP]: 6 and 8 tokens
    assert batch["input_ids"].shape == (2, 8) and batch["labels"].dtype == torch.long
    torch.testing.assert_close(batch["labels"], torch.tensor([1, 0]))
    torch.testing.assert_close(batch["token_type_ids"], torch.tensor([[0, 0, 0, 1, 1, 1, 0, 0],
                                                                      [0, 0, 0, 0, 0, 0, 1, 1]]))
    torch.testing.assert_close(batch["attention_mask"], torch.tensor([[1, 1, 1, 1, 1, 1, 0, 0], [1] * 8]))
    assert batch["input_ids"][0, -2:].tolist() == [tokenizer.pad_token_id] * 2
    regression = collate(encode_texts(tokenizer, [TextExample("a", label=0.5), TextExample("b", label=3)], None, 8))
    assert regression["labels"].dtype == torch.float and regression["labels"].tolist() == [0.5, 3.0]
    with pytest.raises(ValueError, match="1 of 2 features have a 'label'"):
        collate([features[0], {k: v for k, v in features[1].items() if k != "label"}])


def padded_tokens(batches, lengths):
    return sum(len(b) * max(lengths[i] for i in b) for b in batches)


@settings(max_examples=60, deadline=None)
@given(lengths=st.lists(st.integers(1, 300), min_size=1, max_size=400), batch_size=st.integers(1, 9),
       seed=st.integers(0, 2**31))
def test_length_grouping_keeps_every_index_once(lengths, batch_size, seed):
    generator = torch.Generator().manual_seed(seed)
    for shuffle in (True, False):
        batches = length_grouped_batches(lengths, batch_size, generator, shuffle=shuffle)
        assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
        assert sorted(map(len, batches))[1:] == [batch_size] * (len(batches) - 1)  # one batch at most is smaller


@settings(max_examples=60, deadline=None)
@given(lengths=st.lists(st.integers(1, 300), min_size=1, max_size=20), batch_size=st.integers(1, 8),
       seed=st.integers(0, 2**31))
def test_length_grouping_never_pads_more_than_random_batches(lengths, batch_size, seed):
    """Within one mega-batch and with whole batches, sorted batches are the least padding any cut into batches of
    that size can give (swap any two examples across batches: it never lowers a maximum), so also less than
    random batches."""
    lengths = (lengths * batch_size)[:len(lengths) * batch_size]  # a multiple of batch_size
    generator = torch.Generator().manual_seed(seed)
    grouped = length_grouped_batches(lengths, batch_size, generator)
    order = torch.randperm(len(lengths), generator=generator).tolist()
    random_batches = [order[k:k + batch_size] for k in range(0, len(order), batch_size)]
    assert padded_tokens(grouped, lengths) <= padded_tokens(random_batches, lengths)


def test_length_grouping_on_real_lengths(tokenizer, data_dir):
    """SST-2 dev, 872 sentences in batches of 16: grouped batches carry far less padding than random ones, and
    their order is random (not longest first) but fixed by the seed."""
    dev = read_sst2(data_dir / "glue-sst2" / "dev.tsv")
    lengths = [len(f["input_ids"]) for f in encode_texts(tokenizer, dev, {0: 0, 1: 1}, 128)]
    grouped = length_grouped_batches(lengths, 16, torch.Generator().manual_seed(0))
    assert grouped == length_grouped_batches(lengths, 16, torch.Generator().manual_seed(0))
    order = torch.randperm(len(lengths), generator=torch.Generator().manual_seed(0)).tolist()
    random_batches = [order[k:k + 16] for k in range(0, len(order), 16)]
    real = sum(lengths)
    waste_grouped = padded_tokens(grouped, lengths) - real
    waste_random = padded_tokens(random_batches, lengths) - real
    assert waste_grouped < 0.1 * waste_random
    longest = [max(lengths[i] for i in b) for b in grouped]
    assert longest != sorted(longest, reverse=True)  # the batches come in random order
    evaluation = length_grouped_batches(lengths, 16, shuffle=False)
    assert [lengths[i] for b in evaluation for i in b] == sorted(lengths, reverse=True)


def test_length_grouping_matches_transformers_order(transformers_lib):
    """Before the batches are shuffled, the indices are those of transformers' LengthGroupedSampler for the
    same permutation: mega-batches of 50 batches, each sorted longest first."""
    from transformers.trainer_pt_utils import get_length_grouped_indices
    rng = random.Random(0)
    # one length in ten is the longest, so every mega-batch starts with one and transformers' final swap (the
    # longest example to the front) changes nothing
    lengths = [200 if rng.random() < 0.1 else rng.randint(1, 199) for _ in range(1_000)]
    expected = get_length_grouped_indices(lengths, 4, mega_batch_mult=50, generator=torch.Generator().manual_seed(3))
    batches = length_grouped_batches(lengths, 4, torch.Generator().manual_seed(3))
    assert sorted(batches) == sorted(expected[k:k + 4] for k in range(0, 1_000, 4))
