"""Segment pairs -> masked, padded batches, in a seeded order that any process can recompute on its own.

Lecture lectures/pretraining.md, section "The training loop"; notebook notebooks/03_pretraining.ipynb.
Everything random here is a function of (seed, epoch, example), never of what ran before:
- the segment pairs of epoch e are drawn from (seed, e): each epoch cuts the documents at other places and
  gives them other NotNext partners, so the model cannot learn pairs by heart (Google's code made ten copies
  offline, `dupe_factor=10`);
- the order of epoch e is a permutation drawn from (seed, e);
- the masks of example i in epoch e are drawn from (seed, e, i), when its batch is made (dynamic masking).
So step s always gets the same batch, and a resumed run or one of several processes (which reads only its
own share of each batch) sees exactly what one uninterrupted process would have seen.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

import torch
from torch import Tensor

from ..model.pretraining import IGNORE_INDEX
from ..tokenizer import WordPieceTokenizer, train_wordpiece
from .documents import read_documents, read_documents_by_file
from .masking import Masker
from .pairs import WIKI_UNKNOWN, SegmentPair, create_pairs, tokenize_documents

LENGTH_GROUP = 50  # batches whose examples are sorted by length together, so that little padding is needed


def learn_vocabulary(paths: list[str | Path], vocab_size: int) -> WordPieceTokenizer:
    """A lower-cased WordPiece tokenizer whose vocabulary is learnt from the sentences of the corpus files."""
    # WikiText's <unk> placeholder is not a word of the language: keep it out of the vocabulary
    sentences = [s.replace(WIKI_UNKNOWN, " ") for document in read_documents(paths) for s in document]
    return WordPieceTokenizer(train_wordpiece(sentences, vocab_size, lowercase=True), lowercase=True)


@dataclass
class Batch:
    input_ids: Tensor            # b n, after masking
    attention_mask: Tensor       # b n: 1 token, 0 padding
    token_type_ids: Tensor       # b n: 0 [CLS] A [SEP], 1 B [SEP]
    labels: Tensor               # b n: the original id where a token was selected, -100 elsewhere
    next_sentence_label: Tensor  # b: 0 IsNext (or in order), 1 NotNext (or swapped)

    def to(self, device) -> "Batch":
        return Batch(*(getattr(self, f.name).to(device) for f in fields(self)))

    @property
    def num_tokens(self) -> int:
        return int(self.attention_mask.sum())

    @property
    def num_targets(self) -> int:
        return int((self.labels != IGNORE_INDEX).sum())


class PretrainingData:
    """Tokenized documents and the rules to turn any step into the same batch, anywhere."""

    def __init__(self, documents: list[list[list[int]]], masker: Masker, cls_token_id: int, sep_token_id: int,
                 pad_token_id: int, batch_size: int, max_length: int = 128, seed: int = 0, task: str = "nsp",
                 short_seq_prob: float = 0.1, group_by_length: bool = True, sources: list[int] | None = None,
                 repeats: list[int] | None = None):
        """`sources[i]`: the file document i came from (NotNext text is drawn from the same file);
        `repeats[k]`: how many times file k's documents make pairs in each epoch (pairs.py, create_pairs)."""
        self.documents, self.masker, self.batch_size, self.seed = documents, masker, batch_size, seed
        self.sources, self.repeats = sources, repeats
        self.max_length, self.task, self.short_seq_prob = max_length, task, short_seq_prob
        self.cls, self.sep, self.pad = cls_token_id, sep_token_id, pad_token_id
        self.group_by_length = group_by_length
        self._pairs, self._batches = {}, {}  # the epochs in use, by number
        if len(self.pairs) < batch_size:
            raise ValueError(f"the corpus gives {len(self.pairs)} training examples, fewer than one batch of "
                             f"{batch_size}; give more text or a smaller --batch-size.")
        self.batches_per_epoch = len(self.pairs) // batch_size  # fixed by epoch 0; later ones differ a little

    @classmethod
    def from_files(cls, paths: list[str | Path], tokenizer, max_length: int = 128, batch_size: int = 32,
                   seed: int = 0, task: str = "nsp", short_seq_prob: float = 0.1, whole_word: bool = False,
                   mlm_probability: float = 0.15, group_by_length: bool = True,
                   min_document_words: int = 0, repeats: list[int] | None = None) -> "PretrainingData":
        """`min_document_words`: in files without WikiText headings, gather blank-line blocks into documents
        of at least this many words (for books and plays, whose blank lines end paragraphs; documents.py).
        `repeats`: one whole number per file, how many times its text is used in an epoch (default: once)."""
        if repeats is not None and (len(repeats) != len(paths) or any(int(r) != r or r < 1 for r in repeats)):
            raise ValueError(f"repeats={repeats} must give one whole number of at least 1 for each of the "
                             f"{len(paths)} files, in the same order.")
        files = [tokenize_documents(documents, tokenizer)
                 for documents in read_documents_by_file(paths, min_document_words)]
        documents = [document for file in files for document in file]
        sources = [k for k, file in enumerate(files) for _ in file]
        masker = Masker.from_tokenizer(tokenizer, whole_word, mlm_probability)
        return cls(documents, masker, tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.pad_token_id,
                   batch_size, max_length, seed, task, short_seq_prob, group_by_length, sources, repeats)

    def epoch_pairs(self, epoch: int) -> list[SegmentPair]:
        """The segment pairs of one epoch (the two most recently made epochs are kept; any other is made again,
        the same, when asked for)."""
        if epoch not in self._pairs:
            self._pairs[epoch] = create_pairs(self.documents, self.max_length, self.generator(epoch, 0), self.task,
                                              self.short_seq_prob, self.sources, self.repeats)
            while len(self._pairs) > 2:
                del self._pairs[next(iter(self._pairs))]  # the oldest made, never the one just made
        return self._pairs[epoch]

    @property
    def pairs(self) -> list[SegmentPair]:
        """The pairs of epoch 0: what `describe`, the held-out batches and the examples below show."""
        return self.epoch_pairs(0)

    def __len__(self) -> int:
        return len(self.pairs)

    def describe(self) -> str:
        lengths = torch.tensor([len(p.tokens_a) + len(p.tokens_b) + 3 for p in self.pairs], dtype=torch.float)
        not_next = sum(p.label for p in self.pairs) / len(self.pairs)
        text = (f"{len(self.pairs):,} examples, {int(lengths.sum()):,} tokens (mean length {lengths.mean():.0f}), "
                f"{not_next:.1%} labelled 1 (NotNext / swapped), {self.batches_per_epoch:,} batches per epoch")
        document_tokens = sum(len(s) for d in self.documents for s in d) / len(self.documents)
        if self.task == "nsp" and document_tokens < self.max_length:
            text += (f"\nnote: documents hold {document_tokens:.0f} tokens on average, less than one example of "
                     f"{self.max_length}; if blank lines in this text end paragraphs rather than documents, "
                     "gather them with --min-document-words 1000, or NSP will learn input lengths (documents.py)")
        return text

    # ----- which examples make step s -----
    def epoch_batches(self, epoch: int) -> list[list[int]]:
        """The batches of one epoch, as lists of indices into `epoch_pairs(epoch)`."""
        if epoch not in self._batches:
            pairs = self.epoch_pairs(epoch)
            generator = self.generator(epoch, 1)
            order = torch.randperm(len(pairs), generator=generator).tolist()
            size, needed = self.batch_size, self.batches_per_epoch * self.batch_size
            order = (order * (needed // len(order) + 1))[:needed]  # an epoch with fewer pairs reuses a few
            if self.group_by_length:
                group = size * LENGTH_GROUP
                length = [len(p.tokens_a) + len(p.tokens_b) for p in pairs]
                order = [i for k in range(0, len(order), group)
                         for i in sorted(order[k:k + group], key=length.__getitem__, reverse=True)]
            batches = [order[k:k + size] for k in range(0, needed, size)]
            if self.group_by_length:  # otherwise each length group's batches would come in a row, longest first
                batches = [batches[k] for k in torch.randperm(len(batches), generator=generator).tolist()]
            self._batches = {epoch: batches}
        return self._batches[epoch]

    def timed_stages(self) -> list[tuple[int, int | None, "PretrainingData"]]:
        """One stage for all steps (StagedData has several): what the trainer times to fit --minutes."""
        return [(0, None, self)]

    def mean_padded_tokens(self) -> float:
        """Tokens per step once each batch is padded to its longest example (what the model computes on)."""
        batches = self.epoch_batches(0)
        length = [len(p.tokens_a) + len(p.tokens_b) + 3 for p in self.epoch_pairs(0)]
        return sum(len(b) * max(length[i] for i in b) for b in batches) / len(batches)

    def global_batch(self, step: int) -> tuple[int, list[int]]:
        epoch, k = divmod(step, self.batches_per_epoch)
        return epoch, self.epoch_batches(epoch)[k]

    def micro_batches(self, step: int, accumulation: int = 1, rank: int = 0, world_size: int = 1) -> list[Batch]:
        """This process's share of step `step`: `accumulation` micro-batches of
        batch_size / (accumulation x world_size) examples. Micro-batch m of rank r holds the examples
        [(m x world_size + r) x per, ... + per) of the global batch."""
        parts = accumulation * world_size
        if self.batch_size % parts:
            raise ValueError(f"batch size {self.batch_size} cannot be split into {accumulation} accumulation steps "
                             f"x {world_size} processes; choose a batch size divisible by {parts}.")
        per = self.batch_size // parts
        epoch, indices = self.global_batch(step)
        return [self.collate(epoch, indices[(m * world_size + rank) * per:][:per]) for m in range(accumulation)]

    # ----- from examples to tensors -----
    def example(self, epoch: int, index: int) -> tuple[Tensor, Tensor, Tensor, int]:
        """[CLS] A [SEP] B [SEP] of pair `index` of epoch `epoch`, masked with the generator of
        (seed, epoch, index)."""
        pair = self.epoch_pairs(epoch)[index]
        ids = torch.tensor([self.cls, *pair.tokens_a, self.sep, *pair.tokens_b, self.sep])
        segment = torch.tensor([0] * (len(pair.tokens_a) + 2) + [1] * (len(pair.tokens_b) + 1))
        masked, labels = self.mask(ids, epoch, index)
        return masked, segment, labels, pair.label

    def mask(self, ids: Tensor, epoch: int, index: int) -> tuple[Tensor, Tensor]:
        """(masked ids, labels) for example `index` of epoch `epoch`: new masks every epoch (dynamic masking),
        the same ones whenever the same example of the same epoch is asked for again."""
        masked, labels = self.masker(ids[None], self.generator(epoch, 2, index))
        return masked[0], labels[0]

    def generator(self, *parts: int) -> torch.Generator:
        """A generator seeded by (seed, *parts): the same numbers in every process and after every resume."""
        value = self.seed
        for part in parts:
            value = (value * 1_000_003 + part) % 2**63
        return torch.Generator().manual_seed(value)

    def collate(self, epoch: int, indices: list[int]) -> Batch:
        examples = [self.example(epoch, i) for i in indices]
        n = max(len(ids) for ids, *_ in examples)
        batch = Batch(input_ids=torch.full((len(examples), n), self.pad),
                      attention_mask=torch.zeros(len(examples), n, dtype=torch.long),
                      token_type_ids=torch.zeros(len(examples), n, dtype=torch.long),
                      labels=torch.full((len(examples), n), IGNORE_INDEX),
                      next_sentence_label=torch.tensor([label for *_, label in examples]))
        for row, (ids, segment, labels, _) in enumerate(examples):
            batch.input_ids[row, :len(ids)] = ids
            batch.attention_mask[row, :len(ids)] = 1
            batch.token_type_ids[row, :len(ids)] = segment
            batch.labels[row, :len(ids)] = labels
        return batch

    def fixed_batches(self, limit: int | None = None, batch_size: int | None = None) -> list[Batch]:
        """Held-out batches with masks that never change (epoch 0), so evaluations compare like with like.
        `limit` examples drawn evenly at random from all documents, in batches of similar length."""
        order = torch.randperm(len(self.pairs), generator=self.generator(0, 3)).tolist()
        chosen = sorted(order[:limit], key=lambda i: len(self.pairs[i].tokens_a) + len(self.pairs[i].tokens_b))
        size = batch_size or self.batch_size
        return [self.collate(0, chosen[k:k + size]) for k in range(0, len(chosen), size)]


class StagedData:
    """Short examples first, then long ones: each stage's PretrainingData serves a run of steps.

    `stages`: [(steps, data), ..., (None, data)]; the last stage takes every step after the others. Stage k
    starts at its own step 0, so it sees its epochs from the beginning. A small BERT on 32-token examples
    learns to use the neighbouring tokens within a thousand steps, while at 128 it can stay for thousands
    on the frequent-word plateau (lecture note, "The plateau"); staged training (Press et al., Shortformer,
    2021) keeps that head start and still trains on long inputs. The trainer times each stage on its own
    first batches to fit the schedule to --minutes (a 128-token step costs more than a 32-token one).
    """

    def __init__(self, stages: list[tuple[int | None, PretrainingData]]):
        if not stages or stages[-1][0] is not None or any(s is None or s < 1 for s, _ in stages[:-1]):
            raise ValueError("stages are [(steps, data), ..., (None, data)]: a positive number of steps for "
                             "each stage but the last, which takes the rest.")
        self.stages = stages

    @classmethod
    def short_then_long(cls, paths: list[str | Path], short_steps: int, short_length: int, max_length: int,
                        batch_size: int, **options) -> "StagedData":
        """`short_steps` steps of `short_length`-token examples, then `max_length` ones for the rest. The short
        stage has max_length / short_length times the batch size: about as many tokens in every step.
        `options`: the rest of PretrainingData.from_files's arguments."""
        short = PretrainingData.from_files(paths, max_length=short_length,
                                           batch_size=batch_size * max_length // short_length, **options)
        return cls([(short_steps, short),
                    (None, PretrainingData.from_files(paths, max_length=max_length, batch_size=batch_size, **options))])

    @property
    def last(self) -> PretrainingData:
        return self.stages[-1][1]

    def stage(self, step: int) -> tuple[int, PretrainingData]:
        """(first step, data) of the stage that step `step` belongs to."""
        first, _, data = next(stage for stage in reversed(self.timed_stages()) if step >= stage[0])
        return first, data

    @property
    def batch_size(self) -> int:
        return self.stages[0][1].batch_size

    def micro_batches(self, step: int, accumulation: int = 1, rank: int = 0, world_size: int = 1) -> list[Batch]:
        start, data = self.stage(step)
        return data.micro_batches(step - start, accumulation, rank, world_size)

    def timed_stages(self) -> list[tuple[int, int | None, PretrainingData]]:
        """(first step, steps or None for the rest, data) of each stage: the trainer times each to fit --minutes."""
        firsts = [sum(steps for steps, _ in self.stages[:k]) for k in range(len(self.stages))]
        return [(first, steps, data) for first, (steps, data) in zip(firsts, self.stages)]

    def describe(self) -> str:
        return "\n".join(f"stage {k + 1} ({f'{steps:,} steps' if steps else 'the rest'}, {data.max_length} tokens): "
                         f"{data.describe()}" for k, (steps, data) in enumerate(self.stages))
