"""Extractive QA, the way real systems do it: readers, windows over long contexts, span search, metrics, leakage."""
from .data import Answer, QAData, QAExample, read_drcd, read_hw7, read_squad, split_by_title, write_hw7_submission
from .leakage import DataLeakError, check_no_overlap, find_overlap
from .metrics import chinese_scores, squad_scores
from .postprocess import QAPrediction, Span, best_spans, predictions_by_id
from .windows import QABatch, QAWindow, QAWindows, collate, make_windows
