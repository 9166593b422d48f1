"""Fine-tuning BERT on a task (lecture 2.1 inputs, 2.2 outputs).

data.py reads the standard task files (SST-2, SST-5/CFIMDB, CoNLL-2003, a user's own table); batching.py turns
examples into token ids, labels aligned to word pieces, and padded batches of similar length; metrics.py scores
predictions (accuracy, confusion matrix, entity-level precision/recall/F1); qa/ is extractive QA (readers,
windows, span search, metrics, the leakage guard).
"""
