"""Examples -> token ids and labels -> padded batches of similar length.

Lecture 2.1 (inputs: one sentence, or two joined by [SEP]) and 2.2 (outputs: a class per token).
The counterparts are the transformers example scripts' preprocessing (run_glue.py, run_ner.py's
`tokenize_and_align_labels`), `DataCollatorWithPadding` / `DataCollatorForTokenClassification` and
`LengthGroupedSampler`.

A tagger predicts one class per token, but the labels belong to words, and WordPiece cuts a word into pieces:
"Lichtenstein" -> "lichtenstein" is one piece, "Ssangyong" -> "ss", "##ang", "##yon", "##g" four. The word's
tag goes on its first piece and -100 (ignored by the loss) on the others, and at evaluation the prediction of
the first piece is the word's.
"""
from __future__ import annotations

import bisect
import warnings

import torch
from torch import Tensor

from ..model.pretraining import IGNORE_INDEX
from .data import TaggedSentence, TextExample, UnknownLabelError, label_id

MEGA_BATCH = 50  # batches sorted by length together, as transformers' LengthGroupedSampler (mega_batch_mult=50)
NO_WORD = -1  # word_ids of [CLS], [SEP] and padding in a collated batch


def encode_texts(tokenizer, examples: list[TextExample], label_to_id: dict | None,
                 max_length: int | None) -> list[dict]:
    """[CLS] text [SEP] (pair [SEP]) ids, cut to max_length (the longer text first, as transformers), and the
    label: its class id, or a float when label_to_id is None (regression). Unlabeled examples get no "label"."""
    texts = [e.text for e in examples]
    pairs = [e.pair for e in examples]
    if any(p is not None for p in pairs) and any(p is None for p in pairs):
        raise ValueError("some examples have a second text (pair) and some do not; a task is either one or the other")
    if not examples:
        return []
    encoding = tokenizer(texts, pairs if pairs[0] is not None else None, max_length=max_length,
                         truncation=max_length is not None)
    features = []
    for index, (example, ids, types) in enumerate(zip(examples, encoding.input_ids, encoding.token_type_ids)):
        feature = {"input_ids": ids, "token_type_ids": types}
        if example.label is not None:
            if label_to_id is None:
                if isinstance(example.label, str) or isinstance(example.label, bool):
                    raise UnknownLabelError(f"example {index} ({example.text[:40]!r}): the label {example.label!r} "
                                            f"is not a number, and regression (label_to_id=None) needs numbers; "
                                            f"pass the label list for classification")
                feature["label"] = float(example.label)
            else:
                feature["label"] = label_id(example.label, label_to_id, f"example {index} ({example.text[:40]!r}): ")
        features.append(feature)
    return features


def encode_tagged(tokenizer, sentences: list[TaggedSentence], label_to_id: dict | None, max_length: int | None,
                  label_all_pieces: bool = False) -> list[dict]:
    """Token ids of each sentence with `word_ids` (the word each token comes from, None for [CLS] and [SEP])
    and `labels`: the word's tag id on its first piece, -100 on the other pieces and on [CLS]/[SEP].

    label_all_pieces=True labels every piece, the later pieces of a B-X word with I-X (as run_ner.py's
    label_all_tokens), so that a piece is never taught to open a second entity. Words that truncation cuts off
    have no token: each feature says how many in `words_cut`, and one warning sums them up."""
    features, cut_sentences, cut_words = [], 0, 0
    for index, sentence in enumerate(sentences):
        # one text with the words separated by spaces: BERT's pre-tokenizer splits at spaces anyway, so each word
        # is cut exactly as on its own (transformers' is_split_into_words), and the offsets say which word
        starts, position = [], 0
        for word in sentence.words:
            starts.append(position)
            position += len(word) + 1
        encoding = tokenizer(" ".join(sentence.words), max_length=max_length, truncation=max_length is not None)
        last = len(encoding.input_ids) - 1
        word_ids = [None if i in (0, last) else bisect.bisect_right(starts, start) - 1
                    for i, (start, _) in enumerate(encoding.offsets)]
        feature = {"input_ids": encoding.input_ids, "token_type_ids": encoding.token_type_ids, "word_ids": word_ids}
        last_word = max((w for w in word_ids if w is not None), default=-1)
        feature["words_cut"] = len(sentence.words) - 1 - last_word  # the words after the last one with a token
        if feature["words_cut"]:
            cut_sentences, cut_words = cut_sentences + 1, cut_words + feature["words_cut"]
        if sentence.tags is not None and label_to_id is not None:
            if len(sentence.tags) != len(sentence.words):
                raise ValueError(f"sentence {index} has {len(sentence.words)} words but {len(sentence.tags)} tags")
            feature["labels"] = _token_labels(sentence, index, word_ids, label_to_id, label_all_pieces)
        features.append(feature)
    if cut_words:
        warnings.warn(f"{cut_sentences} of {len(sentences)} sentences are longer than max_length={max_length} "
                      f"tokens: {cut_words} words at their ends have no token, so no prediction (word_predictions "
                      f"fills them in). Raise max_length to keep them.", stacklevel=2)
    return features


def _token_labels(sentence: TaggedSentence, index: int, word_ids: list, label_to_id: dict,
                  label_all_pieces: bool) -> list[int]:
    labels, previous = [], None
    where = f"sentence {index}: "
    for word in word_ids:
        if word is None:
            labels.append(IGNORE_INDEX)
        elif word != previous:
            labels.append(label_id(sentence.tags[word], label_to_id, where))
        elif label_all_pieces:
            tag = sentence.tags[word]
            inside = "I-" + tag[2:] if tag.startswith("B-") else tag
            labels.append(label_id(inside if inside in label_to_id else tag, label_to_id, where))
        else:
            labels.append(IGNORE_INDEX)
        previous = word
    return labels


def word_predictions(token_predictions, word_ids, num_words: int | None = None, fill: int = IGNORE_INDEX) -> list[int]:
    """One prediction per word, that of its first piece. `word_ids` as encode_tagged gives them (None, or -1
    in a collated batch, for tokens of no word). Words without a token (cut by truncation; give num_words to
    include the ones at the end) get `fill`: map it to "O" to score a cut entity as missed."""
    predictions = token_predictions.tolist() if isinstance(token_predictions, Tensor) else list(token_predictions)
    word_ids = word_ids.tolist() if isinstance(word_ids, Tensor) else list(word_ids)
    if len(predictions) < len(word_ids) and any(w is not None and w >= 0 for w in word_ids[len(predictions):]):
        raise ValueError(f"{len(predictions)} token predictions for {len(word_ids)} tokens")
    known = [w for w in word_ids if w is not None and w >= 0]
    if num_words is None:
        num_words = max(known, default=-1) + 1
    words = [fill] * num_words
    seen = set()
    for prediction, word in zip(predictions, word_ids):
        if word is not None and word >= 0 and word not in seen:
            seen.add(word)
            words[word] = int(prediction)
    return words


def collate(features: list[dict], pad_token_id: int = 0) -> dict[str, Tensor]:
    """Stack features into tensors padded on the right to the longest of this batch (dynamic padding):
    input_ids with [PAD], token_type_ids with 0, attention_mask 1 on tokens and 0 on padding, token labels with
    -100 (ignored by the loss), word_ids with -1. A "label" per example becomes "labels" of shape (b,): long for
    classes, float for regression. Other keys (words_cut) stay on the features."""
    if not features:
        raise ValueError("cannot collate an empty batch")
    longest = max(len(f["input_ids"]) for f in features)
    batch = {"input_ids": _padded([f["input_ids"] for f in features], longest, pad_token_id),
             "token_type_ids": _padded([f["token_type_ids"] for f in features], longest, 0),
             "attention_mask": _padded([[1] * len(f["input_ids"]) for f in features], longest, 0)}
    if "word_ids" in features[0]:
        batch["word_ids"] = _padded([[NO_WORD if w is None else w for w in f["word_ids"]] for f in features],
                                    longest, NO_WORD)
    for key in ("labels", "label"):
        have = sum(key in f for f in features)
        if have not in (0, len(features)):
            raise ValueError(f"{have} of {len(features)} features have a {key!r}; a batch is all labeled or none")
    if "labels" in features[0]:  # a label per token
        batch["labels"] = _padded([f["labels"] for f in features], longest, IGNORE_INDEX)
    elif "label" in features[0]:  # a label per example
        labels = [f["label"] for f in features]
        dtype = torch.float if any(isinstance(x, float) for x in labels) else torch.long
        batch["labels"] = torch.tensor(labels, dtype=dtype)
    return batch


def _padded(rows: list[list[int]], length: int, value: int) -> Tensor:
    # one tensor from padded lists: several times faster than filling a tensor row by row
    return torch.tensor([row + [value] * (length - len(row)) for row in rows], dtype=torch.long)  # b n


def length_grouped_batches(lengths: list[int], batch_size: int, generator: torch.Generator | None = None,
                           shuffle: bool = True) -> list[list[int]]:
    """Batches of indices into `lengths` whose examples have similar lengths, so that padding costs little.

    shuffle=True (training): a random order, cut into mega-batches of 50 batches, each sorted by length,
    longest first, then cut into batches, and the batches put in random order (transformers'
    LengthGroupedSampler does the first three; without the last step the batches of each mega-batch would come
    longest to shortest). shuffle=False (evaluation): all examples sorted by length, longest first, the order
    then fixed. Every index appears exactly once; the last batch may be smaller."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if shuffle and generator is None:
        raise ValueError("shuffle=True needs a torch.Generator (seeded), so that the order can be reproduced")
    if shuffle:
        order = torch.randperm(len(lengths), generator=generator).tolist()
        group = batch_size * MEGA_BATCH
        order = [i for k in range(0, len(order), group)
                 for i in sorted(order[k:k + group], key=lambda i: -lengths[i])]
    else:
        order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches = [order[k:k + batch_size] for k in range(0, len(order), batch_size)]
    if shuffle:
        batches = [batches[k] for k in torch.randperm(len(batches), generator=generator).tolist()]
    return batches
