"""Corpus BLEU written out: clipped n-gram precisions (n = 1..4), their geometric mean, a brevity penalty.

Lecture 2.2 (outputs: a general sequence: how translations are scored); notebook
notebooks/06_general_sequence.ipynb. Papineni et al. 2002, computed as sacrebleu's `corpus_bleu` does with its
defaults (tests/test_bleu.py: equal within 0.01 on Multi30k): the text is split by the `13a` tokenizer of WMT's
mteval-v13a script, case is kept, and an n-gram order with no match at all is smoothed by the "exp" rule
(precision 100 / (2^k x total), k counting such orders) instead of zeroing the score.

Corpus BLEU is not the mean of sentence BLEUs: the counts are summed over the corpus first, then divided.
"""
from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass

MAX_ORDER = 4

# mteval-v13a's rules: symbols and punctuation become tokens of their own, except periods and commas that sit
# between digits (3.5, 1,000) and a hyphen that follows a digit is split off.
_13A_RULES = [
    (re.compile(r"([\{-\~\[-\` -\&\(-\+\:-\@\/])"), r" \1 "),
    (re.compile(r"([^0-9])([\.,])"), r"\1 \2 "),
    (re.compile(r"([\.,])([^0-9])"), r" \1 \2"),
    (re.compile(r"([0-9])(-)"), r"\1 \2 "),
]


def tokenize_13a(line: str) -> list[str]:
    line = line.replace("<skipped>", "").replace("-\n", "").replace("\n", " ")
    for entity, char in (("&quot;", '"'), ("&amp;", "&"), ("&lt;", "<"), ("&gt;", ">")):
        line = line.replace(entity, char)
    line = f" {line} "
    for pattern, replacement in _13A_RULES:
        line = pattern.sub(replacement, line)
    return line.split()


def ngrams(tokens: list[str], n: int) -> Counter:
    return Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))


@dataclass
class BLEUScore:
    score: float                  # 0 to 100
    precisions: list[float]       # clipped n-gram precision per order, in percent
    brevity_penalty: float        # exp(1 - r / c) when the hypotheses are shorter than the references, else 1
    sys_len: int                  # c: tokens in all hypotheses
    ref_len: int                  # r: tokens in the reference closest in length to each hypothesis, summed

    def __str__(self) -> str:
        return (f"BLEU = {self.score:.2f} {'/'.join(f'{p:.1f}' for p in self.precisions)} "
                f"(BP = {self.brevity_penalty:.3f} ratio = {self.sys_len / max(self.ref_len, 1):.3f})")


def corpus_bleu(hypotheses: list[str], references: list[list[str]] | list[str]) -> BLEUScore:
    """`hypotheses`: one line per source; `references`: one list of lines per reference set (as sacrebleu's
    `corpus_bleu(hyps, [refs])`), or a single list of lines."""
    if references and isinstance(references[0], str):
        references = [references]
    for refs in references:
        if len(refs) != len(hypotheses):
            raise ValueError(f"{len(hypotheses)} hypotheses but a reference set of {len(refs)} lines: each "
                             "reference set needs one line per hypothesis, in the same order.")
    correct, total = [0] * MAX_ORDER, [0] * MAX_ORDER
    sys_len = ref_len = 0
    for hypothesis, *line_refs in zip(hypotheses, *references):
        hyp = tokenize_13a(hypothesis)
        refs = [tokenize_13a(ref) for ref in line_refs]
        sys_len += len(hyp)
        # the reference length closest to the hypothesis's (the shorter on a tie)
        ref_len += min((abs(len(ref) - len(hyp)), len(ref)) for ref in refs)[1]
        for n in range(1, MAX_ORDER + 1):
            counts = ngrams(hyp, n)
            most_in_a_reference = Counter()
            for ref in refs:
                most_in_a_reference |= ngrams(ref, n)  # | keeps the larger count of each n-gram
            # clipped: an n-gram counts at most as often as it occurs in a reference ("the the the" scores 1/3)
            correct[n - 1] += sum(min(count, most_in_a_reference[gram]) for gram, count in counts.items())
            total[n - 1] += max(len(hyp) - n + 1, 0)
    return bleu_from_counts(correct, total, sys_len, ref_len)


def bleu_from_counts(correct: list[int], total: list[int], sys_len: int, ref_len: int) -> BLEUScore:
    """BLEU = BP x exp(mean over n of log p_n), in percent."""
    brevity_penalty = 1.0 if sys_len >= ref_len else (math.exp(1 - ref_len / sys_len) if sys_len else 0.0)
    precisions = [0.0] * MAX_ORDER
    if not any(correct):
        return BLEUScore(0.0, precisions, brevity_penalty, sys_len, ref_len)
    smoothing = 1.0
    for n in range(MAX_ORDER):
        if total[n] == 0:
            break  # hypotheses too short to have n-grams of this order: the later orders stay 0
        if correct[n] == 0:
            smoothing *= 2  # "exp" smoothing: 1/2, 1/4 ... of one match instead of none
            precisions[n] = 100.0 / (smoothing * total[n])
        else:
            precisions[n] = 100.0 * correct[n] / total[n]
    # a zero precision would make log undefined; as sacrebleu, count it as a vanishingly small one
    log_mean = sum(math.log(p) if p > 0 else -9999999999 for p in precisions) / MAX_ORDER
    return BLEUScore(brevity_penalty * math.exp(log_mean), precisions, brevity_penalty, sys_len, ref_len)
