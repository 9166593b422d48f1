"""Lecture 2.2, general sequence output: v1 BERT with a decoder, v2 BERT as the decoder, generation and BLEU."""
from .bleu import corpus_bleu
from .config import EncoderDecoderConfig
from .decoder import BertLMHeadModel
from .encoder_decoder import BertEncoderDecoder
from .generate import GenerationOutput, generate
from .unilm import BertForSeq2SeqLM
