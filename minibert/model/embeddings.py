"""BERT's input embeddings: token + position + segment, then LayerNorm and dropout.

Lecture 1.1 (contextualized word embeddings) and 2.1 (inputs: one sentence, or two joined by [SEP]: the
segment embedding is how the model tells the two apart); notebook notebooks/02_attention_and_encoder.ipynb.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from ..config import BertConfig


class BertEmbeddings(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.word_embeddings = nn.Embedding(config.vocab_size, config.hidden_size, padding_idx=config.pad_token_id)
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, input_ids: Tensor, token_type_ids: Tensor) -> Tensor:
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        x = self.word_embeddings(input_ids) + self.token_type_embeddings(token_type_ids)  # b n (h d)
        x = x + self.position_embeddings(positions)  # the same position table row for every sequence
        return self.dropout(self.LayerNorm(x))
