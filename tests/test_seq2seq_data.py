"""Multi30k pairs: read line-aligned files, refuse misaligned ones, and build the batches v1 and v2 train on.

Lecture 2.2 (general sequence output); run with `pytest -m outputs`.
"""
import pytest
import torch

from minibert.model.pretraining import IGNORE_INDEX
from minibert.seq2seq.data import encode_pairs, multi30k, read_pairs
from minibert.tokenizer import WordPieceTokenizer

pytestmark = pytest.mark.outputs


def test_multi30k_splits_are_aligned(data_dir):
    folder = data_dir / "multi30k" / "raw"
    assert [len(multi30k(split, folder=folder)) for split in ("train", "val", "test")] == [29000, 1014, 1000]
    test = multi30k("test", folder=folder)
    assert test.sources[0] == "Ein Mann mit einem orangefarbenen Hut, der etwas anstarrt."
    assert test.targets[0] == "A man in an orange hat starring at something."
    assert len(test[:10]) == 10 and test[:10].targets[9] == test.targets[9]


def test_misaligned_pair_files_say_so(tmp_path):
    (tmp_path / "a.de").write_text("Ein Hund.\nZwei Katzen.\n", encoding="utf-8")
    (tmp_path / "a.en").write_text("A dog.\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"not aligned: .*a.de has 2 lines, .*a.en has 1"):
        read_pairs(tmp_path / "a.de", tmp_path / "a.en")


def test_missing_pair_file_lists_what_is_there(tmp_path):
    (tmp_path / "train.de").write_text("Ein Hund.\n", encoding="utf-8")
    with pytest.raises(FileNotFoundError, match=r"no pair file .*train.en.*train.de"):
        read_pairs(tmp_path / "train.de", tmp_path / "train.en")
    with pytest.raises(ValueError, match="unknown Multi30k split"):
        multi30k("dev", folder=tmp_path)


def test_empty_line_on_one_side_is_refused(tmp_path):
    (tmp_path / "a.de").write_text("Ein Hund.\n\n", encoding="utf-8")
    (tmp_path / "a.en").write_text("A dog.\nTwo cats.\n", encoding="utf-8")
    with pytest.raises(ValueError, match="line 2"):
        read_pairs(tmp_path / "a.de", tmp_path / "a.en")


def test_batch_labels_are_target_then_sep_then_ignored(checkpoint_dir, data_dir):
    tokenizer = WordPieceTokenizer.from_pretrained(checkpoint_dir)
    pairs = multi30k("test", folder=data_dir / "multi30k" / "raw")[:3]
    batch = encode_pairs(tokenizer, pairs, max_source_length=12, max_target_length=8)
    assert batch.input_ids.shape[1] <= 12 and batch.labels.shape[1] <= 8
    assert (batch.input_ids[:, 0] == tokenizer.cls_token_id).all()
    for row, target in enumerate(pairs.targets):
        labels = [i for i in batch.labels[row].tolist() if i != IGNORE_INDEX]
        assert labels[-1] == tokenizer.sep_token_id and tokenizer.cls_token_id not in labels
        expected = tokenizer(target, max_length=9, truncation=True).input_ids[1:]  # no [CLS]; cut, [SEP] kept
        assert labels == expected
    assert torch.equal(batch.attention_mask.sum(1) > 0, torch.ones(3, dtype=torch.bool))
