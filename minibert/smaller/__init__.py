"""Making BERT smaller (lecture 1.2; notebook notebooks/05_smaller.ipynb): ALBERT's parameter sharing and
factorised embedding (albert.py), int8 and bfloat16 quantization (quantize.py), distillation's student and losses
(distill.py), and the benchmark (bench.py)."""
from .albert import AlbertConfig, AlbertModel
