"""Fine-tuning BERT on a task (lecture 2.1, inputs: one sentence, or two joined by [SEP]; lecture 2.2, outputs:
one class, a class per token, a span copied out).

data.py reads the standard task files (SST-2, SST-5/CFIMDB, CoNLL-2003, a user's own table); batching.py turns
examples into token ids, labels aligned to word pieces, and padded batches of similar length; metrics.py scores
predictions (accuracy, confusion matrix, entity-level precision/recall/F1); qa/ is extractive question answering
(readers, windows, span search, SQuAD and CMRC metrics, the leakage guard). tasks.py and qa_task.py turn them
into tasks for the one training loop, trainer.py; cli.py, evaluate.py and predict.py are the commands.
"""
