"""Extractive QA metrics, written out: exact match and F1, for English (SQuAD) and Chinese (CMRC 2018 / DRCD).

Lecture 2.2 (outputs: copying a span out of the input); the extractive QA notebook (planned).
A prediction is scored against every gold answer of its question and keeps the best; a question without a
prediction scores 0 (both official scripts count it in the total). Scores are percentages.

English, the official SQuAD v1.1 script (evaluate-v1.1.py): both texts are normalised (lower-case, drop
ASCII punctuation, drop the words a/an/the, collapse whitespace); EM is equality, F1 the harmonic mean of
precision and recall of the bag of normalised words (0 when no word is shared, also when both are empty:
that special case is SQuAD v2's, not v1.1's).

Chinese, the CMRC 2018 script (cmrc2018_evaluate.py, v5), which is also how DRCD is usually scored: DRCD's
own repository ships no scorer, and Chinese BERT papers report DRCD with this one. F1: both texts
lower-cased, stripped, with the script's punctuation list removed, segmented into tokens (each CJK character
U+4E00..U+9FA5 one token, the other text between them cut into words), then precision and recall from the
length of the longest common SUBSTRING of the two token lists (the script names it "lcs" and it is a
contiguous match, not a subsequence: "ABXCD" against "ABCD" shares 2, not 4). EM: lower-cased, stripped,
punctuation removed, then equal. One departure, said here: the script cuts non-CJK text with NLTK's
word_tokenize; minibert has no NLTK and cuts it into runs of ASCII letters and digits and single other
characters ("BERT base" -> "bert", "base" in both; "3.5" -> "3", ".", "5" where NLTK keeps "3.5"; "don't"
-> "don", "'", "t" where NLTK gives "do", "n't"), which can change F1 on partial matches of such text, never EM.
"""
from __future__ import annotations

import re
import string
import warnings
from collections import Counter
from typing import Mapping, Sequence

from .data import QAExample

ARTICLES = re.compile(r"\b(a|an|the)\b")
SQUAD_PUNCTUATION = set(string.punctuation)
# The CMRC 2018 script's list, as it is ("……" is two characters, so as written it never matches one).
CMRC_PUNCTUATION = {"-", ":", "_", "*", "^", "/", "\\", "~", "`", "+", "=", "，", "。", "：", "？", "！", "“", "”",
                    "；", "’", "《", "》", "……", "·", "、", "「", "」", "（", "）", "－", "～", "『", "』"}
CJK = re.compile(r"[\u4e00-\u9fa5]")
NON_CJK_WORD = re.compile(r"[0-9A-Za-z]+|\S")


# ---- English: SQuAD v1.1 ----

def normalize_answer(text: str) -> str:
    """Lower-case, no punctuation, no articles, single spaces (the order of the official script)."""
    text = "".join(char for char in text.lower() if char not in SQUAD_PUNCTUATION)
    return " ".join(ARTICLES.sub(" ", text).split())


def exact_match(prediction: str, gold: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(gold))


def f1(prediction: str, gold: str) -> float:
    """Harmonic mean of word precision and recall after normalisation, words counted with repeats."""
    predicted, wanted = normalize_answer(prediction).split(), normalize_answer(gold).split()
    shared = sum((Counter(predicted) & Counter(wanted)).values())
    if shared == 0:
        return 0.0
    precision, recall = shared / len(predicted), shared / len(wanted)
    return 2 * precision * recall / (precision + recall)


def squad_scores(predictions: Mapping[str, str], examples: Sequence[QAExample]) -> dict[str, float]:
    """{"exact_match": %, "f1": %} over the examples, each the best over its gold answers (SQuAD v1.1)."""
    return _scores(predictions, examples, exact_match, f1)


# ---- Chinese: CMRC 2018 (and DRCD) ----

def mixed_segmentation(text: str, remove_punctuation: bool = False) -> list[str]:
    """Tokens for the Chinese F1: every CJK character alone, other text cut into words (see the module)."""
    tokens, pending = [], ""
    for char in text.lower().strip():
        if remove_punctuation and char in CMRC_PUNCTUATION:
            continue
        if CJK.match(char) or char in CMRC_PUNCTUATION:
            tokens += NON_CJK_WORD.findall(pending)
            pending = ""
            tokens.append(char)
        else:
            pending += char
    return tokens + NON_CJK_WORD.findall(pending)


def strip_cmrc_punctuation(text: str) -> str:
    """The CMRC script's normalisation for EM: lower-cased, stripped, its punctuation removed."""
    return "".join(char for char in text.lower().strip() if char not in CMRC_PUNCTUATION)


def longest_common_substring(a: Sequence[str], b: Sequence[str]) -> int:
    """Length of the longest run of tokens that a and b share contiguously (the CMRC script's "lcs")."""
    best, previous = 0, [0] * (len(b) + 1)
    for token_a in a:
        current = [0] * (len(b) + 1)
        for j, token_b in enumerate(b):
            if token_a == token_b:
                current[j + 1] = previous[j] + 1
                best = max(best, current[j + 1])
        previous = current
    return best


def chinese_exact_match(prediction: str, gold: str) -> float:
    return float(strip_cmrc_punctuation(prediction) == strip_cmrc_punctuation(gold))


def chinese_f1(prediction: str, gold: str) -> float:
    predicted = mixed_segmentation(prediction, remove_punctuation=True)
    wanted = mixed_segmentation(gold, remove_punctuation=True)
    shared = longest_common_substring(wanted, predicted)
    if shared == 0:
        return 0.0
    precision, recall = shared / len(predicted), shared / len(wanted)
    return 2 * precision * recall / (precision + recall)


def chinese_scores(predictions: Mapping[str, str], examples: Sequence[QAExample]) -> dict[str, float]:
    """{"exact_match": %, "f1": %}, character-level as the CMRC 2018 script scores CMRC and DRCD."""
    return _scores(predictions, examples, chinese_exact_match, chinese_f1)


def _scores(predictions: Mapping[str, str], examples: Sequence[QAExample], em_of, f1_of) -> dict[str, float]:
    examples = list(examples)
    if not examples:
        raise ValueError("no examples to score")
    unlabeled = [example.id for example in examples if not example.answers]
    if unlabeled:
        raise ValueError(f"{len(unlabeled)} examples have no gold answer (the first: {unlabeled[0]}); "
                         f"an unlabeled file (a homework's test set) cannot be scored")
    missing = [example.id for example in examples if example.id not in predictions]
    if missing:
        warnings.warn(f"{len(missing)} of {len(examples)} questions have no prediction (the first: {missing[0]}); "
                      f"they score 0, as in the official scripts", stacklevel=3)
    total_em = total_f1 = 0.0
    for example in examples:
        if example.id in predictions:
            golds = [answer.text for answer in example.answers]
            total_em += max(em_of(predictions[example.id], gold) for gold in golds)
            total_f1 += max(f1_of(predictions[example.id], gold) for gold in golds)
    return {"exact_match": 100 * total_em / len(examples), "f1": 100 * total_f1 / len(examples)}
