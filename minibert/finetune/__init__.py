"""Fine-tuning BERT: heads on top of the encoder, the task data, one training loop (lecture 2.2 and 2.3)."""
