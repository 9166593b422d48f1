"""Sentences -> two-segment training examples, packed as BERT packs them: NSP, or ALBERT's SOP.

Lecture lectures/pretraining.md, section "From raw text to sentence pairs"; notebook notebooks/03_pretraining.ipynb.
A port of `create_instances_from_document` in Google's create_pretraining_data.py:
- sentences of one document are gathered into a chunk until it holds `target_length` tokens (the maximum,
  or with probability `short_seq_prob` a random shorter length, so the model also sees short inputs);
- the chunk is cut at a random sentence boundary into segment A and segment B;
- NSP: with probability 0.5 segment B is replaced by text from another document (label 1, NotNext);
  the sentences it displaced go back to the document and start the next chunk, so no text is wasted;
- SOP: with probability 0.5 the two segments swap places (label 1, wrong order);
- the longer segment is trimmed, from the front or the back at random, until [CLS] A [SEP] B [SEP] fits.
Three differences from Google's code. A NotNext segment B comes from the same file as A (Google's draws from
the whole corpus; on a mix of Wikipedia, Shakespeare and novels the model would learn to spot a change of
style, which says nothing on held-out Wikipedia). It is as long as the true B it replaces, not as long as the
room left (see the comment in `pairs_from_document`). And a chunk of a single sentence is cut inside that
sentence, so that short documents still give true pairs (Google's code turns every such chunk into a NotNext
example, which tilts the labels on text made of short paragraphs, like a play).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

IS_NEXT, NOT_NEXT = 0, 1  # Hugging Face's next_sentence_label: 0 = B continues A; SOP: 0 = right order
TASKS = ("nsp", "sop")
WIKI_UNKNOWN = "<unk>"    # WikiText's stand-in for a rare word


@dataclass
class SegmentPair:
    tokens_a: list[int]
    tokens_b: list[int]
    label: int                # IS_NEXT or NOT_NEXT (for SOP: 0 in order, 1 swapped)


def tokenize_documents(documents: list[list[str]], tokenizer) -> list[list[list[int]]]:
    """Documents of sentences -> documents of token-id lists. WikiText's `<unk>` becomes the [UNK] id."""
    def ids(sentence: str) -> list[int]:
        pieces = [tokenizer.convert_tokens_to_ids(tokenizer.tokenize(part)) for part in sentence.split(WIKI_UNKNOWN)]
        return [i for k, piece in enumerate(pieces) for i in ([tokenizer.unk_token_id] if k else []) + piece]

    tokenized = [[s for s in map(ids, document) if s] for document in documents]
    return [document for document in tokenized if document]


def create_pairs(documents: list[list[list[int]]], max_length: int, generator: torch.Generator,
                 task: str = "nsp", short_seq_prob: float = 0.1, sources: list[int] | None = None,
                 repeats: list[int] | None = None) -> list[SegmentPair]:
    """All the segment pairs of a tokenized corpus, in document order; each fits in `max_length` with
    its three special tokens. `sources[i]`: which file document i came from; a NotNext segment is drawn from
    another document of the same file (when it has two or more), so that telling Shakespeare from Wikipedia
    does not answer NSP. `repeats[k]`: how many times the documents of file k are turned into pairs (each time
    cut at other places, with other NotNext partners): more of the text that is most like the held-out text."""
    if task not in TASKS:
        raise ValueError(f"task is {task!r}; choose 'nsp' (next-sentence prediction, BERT) or 'sop' "
                         "(sentence-order prediction, ALBERT).")
    if max_length < 5:
        raise ValueError(f"max_length={max_length} leaves no room for two segments beside [CLS] A [SEP] B [SEP].")
    if task == "nsp" and len(documents) < 2:
        raise ValueError("next-sentence prediction needs at least two documents to draw NotNext segments "
                         "from; give more text, or separate documents by blank lines.")
    sources = sources or [0] * len(documents)
    by_source: dict[int, list[int]] = {}
    for index, source in enumerate(sources):
        by_source.setdefault(source, []).append(index)
    everything = list(range(len(documents)))
    pairs = []
    for index in range(len(documents)):
        partners = by_source[sources[index]] if len(by_source[sources[index]]) > 1 else everything
        for _ in range(repeats[sources[index]] if repeats else 1):
            pairs += pairs_from_document(documents, index, max_tokens=max_length - 3, generator=generator,
                                         task=task, short_seq_prob=short_seq_prob, partners=partners)
    return pairs


def pairs_from_document(documents, index, max_tokens, generator, task, short_seq_prob,
                        partners: list[int]) -> list[SegmentPair]:
    document = documents[index]
    target_length = max_tokens
    if uniform(generator) < short_seq_prob:
        target_length = randint(generator, 2, max_tokens)
    pairs, chunk, chunk_length, i = [], [], 0, 0
    while i < len(document):
        chunk.append(document[i])
        chunk_length += len(document[i])
        if i == len(document) - 1 or chunk_length >= target_length:
            segments = chunk if len(chunk) > 1 else split_in_two(chunk[0], generator)
            a_end = randint(generator, 1, len(segments) - 1) if len(segments) > 1 else 1
            tokens_a = [t for segment in segments[:a_end] for t in segment]
            tokens_b = [t for segment in segments[a_end:] for t in segment]
            ### BEGIN SOLUTION nsp_pairs
            label = IS_NEXT
            if task == "nsp" and (not tokens_b or uniform(generator) < 0.5):
                # as long as the B it replaces, so that length tells nothing about the label (Google's code
                # fills up to the target, which on short documents makes every NotNext input the long one)
                length = len(tokens_b) if tokens_b else target_length - len(tokens_a)
                tokens_b = random_segment(documents, partners, index, length, generator)
                label = NOT_NEXT
                if len(chunk) > 1:
                    i -= len(chunk) - a_end  # the sentences B displaced go back: they start the next chunk
            elif task == "sop" and tokens_b and uniform(generator) < 0.5:
                tokens_a, tokens_b, label = tokens_b, tokens_a, NOT_NEXT
            ### END SOLUTION
            if tokens_b:  # SOP cannot use a one-token document
                truncate_pair(tokens_a, tokens_b, max_tokens, generator)
                pairs.append(SegmentPair(tokens_a, tokens_b, label))
            chunk, chunk_length = [], 0
        i += 1
    return pairs


def split_in_two(sentence: list[int], generator: torch.Generator) -> list[list[int]]:
    """A lone sentence cut at a random token into two segments (kept whole if it is a single token)."""
    if len(sentence) < 2:
        return [sentence]
    cut = randint(generator, 1, len(sentence) - 1)
    return [sentence[:cut], sentence[cut:]]


def random_segment(documents, partners: list[int], avoid: int, length: int, generator: torch.Generator) -> list[int]:
    """About `length` tokens of consecutive sentences from a random document of `partners` other than `avoid`."""
    for _ in range(10):  # as Google's code: ten tries to draw another document, then take what came
        other = partners[randint(generator, 0, len(partners) - 1)]
        if other != avoid:
            break
    document = documents[other]
    tokens = []
    for sentence in document[randint(generator, 0, len(document) - 1):]:
        tokens += sentence
        if len(tokens) >= length:
            break
    return tokens


def truncate_pair(tokens_a: list[int], tokens_b: list[int], max_tokens: int, generator: torch.Generator) -> None:
    """Trim the longer segment, one token at a time from a random end, until both fit (in place)."""
    while len(tokens_a) + len(tokens_b) > max_tokens:
        longer = tokens_a if len(tokens_a) > len(tokens_b) else tokens_b
        if uniform(generator) < 0.5:
            del longer[0]  # cutting the front too keeps the model from learning that text ends at [SEP]
        else:
            longer.pop()


def uniform(generator: torch.Generator) -> float:
    return torch.rand((), generator=generator).item()


def randint(generator: torch.Generator, low: int, high: int) -> int:
    """A whole number in [low, high], both ends included (like Python's random.randint)."""
    return int(torch.randint(low, high + 1, (), generator=generator))
