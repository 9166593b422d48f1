"""Fine-tuning BERT on a task: the data readers and batching (lecture 2.1, inputs: one sentence, or two joined by
[SEP]) and the scores of what comes out (lecture 2.2, outputs: one class, a class per token).

data.py reads the standard task files (SST-2, SST-5/CFIMDB, CoNLL-2003, a user's own table); batching.py turns
examples into token ids, labels aligned to word pieces, and padded batches of similar length; metrics.py scores
predictions (accuracy, confusion matrix, entity-level precision/recall/F1).
"""
