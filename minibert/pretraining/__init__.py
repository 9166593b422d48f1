"""Pre-training BERT from raw text: documents -> sentence pairs -> masked batches -> the training loop."""
from .data import Batch, PretrainingData
from .masking import Masker
from .trainer import Pretrainer, TrainingConfig, TrainingDiverged
