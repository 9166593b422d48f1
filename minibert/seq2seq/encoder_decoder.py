"""BertEncoderDecoder (v1): the pre-trained BERT reads the source, a decoder writes the target token by token.

Lecture 2.2 (outputs: a general sequence, v1); notebook notebooks/06_general_sequence.ipynb. Matches
transformers' `EncoderDecoderModel` with a BERT encoder and a `BertLMHeadModel` decoder: the same module names
(`encoder.*`, `decoder.bert.*`, `decoder.cls.*`, `enc_to_dec_proj` when the two sizes differ), the same
config.json, the same logits to 1e-5 (tests/test_seq2seq_parity.py). Two ways to build one from a BERT:
- `from_encoder_pretrained(folder)`: BERT2BERT (Rothe et al. 2020), the decoder warm-started from the same
  BERT weights with only the cross-attention new, as `EncoderDecoderModel.from_encoder_decoder_pretrained` does;
- `from_encoder_pretrained(folder, decoder_config=BertConfig(...))`: a decoder of its own size, never pre-trained.

Shape legend: b batch, s source tokens, t target tokens, (h d) hidden size, v vocabulary size.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .. import checkpoint
from ..config import BertConfig
from ..model.bert import BertModel
from ..model.pretraining import IGNORE_INDEX
from .cache import KeyValueCache
from .config import EncoderDecoderConfig
from .decoder import BertLMHeadModel
from .generate import SpecialTokens


@dataclass
class Seq2SeqLMOutput:
    logits: Tensor                       # b t v: scores of the next target token after each decoder input
    loss: Tensor | None = None           # mean cross-entropy over the labelled target tokens
    encoder_last_hidden_state: Tensor | None = None  # b s (h d) (the decoder's size, after enc_to_dec_proj)
    cache: KeyValueCache | None = None


@dataclass
class EncoderDecoderState:
    """What generation keeps between steps: the encoded source and the decoder's cache (None: no cache)."""
    memory: Tensor                       # b s (h d)
    memory_mask: Tensor | None           # b s: 1 for real source tokens
    cache: KeyValueCache | None

    def reorder(self, index: Tensor, among_beams: bool = False) -> None:
        """Keep the rows `index`; `among_beams`: only beams of the same source trade places (see KeyValueCache)."""
        if not among_beams:  # the beams of one source share its encoding
            self.memory = self.memory.index_select(0, index)
            if self.memory_mask is not None:
                self.memory_mask = self.memory_mask.index_select(0, index)
        if self.cache is not None:
            self.cache.reorder(index, among_beams)


def shift_tokens_right(labels: Tensor, pad_token_id: int, decoder_start_token_id: int) -> Tensor:
    """Teacher forcing: the decoder reads [start] y1 ... y(t-1) and is asked for y1 ... yt (as transformers)."""
    shifted = labels.new_full(labels.shape, decoder_start_token_id)
    shifted[:, 1:] = labels[:, :-1]
    return shifted.masked_fill(shifted == IGNORE_INDEX, pad_token_id)


class BertEncoderDecoder(nn.Module):
    base_model_prefix = "encoder_decoder"  # transformers' name, which no key starts with: names map one to one
    tied_weights = {"decoder.cls.predictions.decoder.weight": "decoder.bert.embeddings.word_embeddings.weight",
                    "decoder.cls.predictions.decoder.bias": "decoder.cls.predictions.bias"}
    fresh_prefixes: tuple[str, ...] = ()
    ignored_prefixes: tuple[str, ...] = ()

    def __init__(self, config: EncoderDecoderConfig, encoder: BertModel | None = None,
                 decoder: BertLMHeadModel | None = None):
        super().__init__()
        self.config = config
        self.encoder = encoder if encoder is not None else BertModel(config.encoder)
        self.decoder = decoder if decoder is not None else BertLMHeadModel(config.decoder)
        if config.encoder.hidden_size != config.decoder.hidden_size:
            # a decoder of another size: its cross-attention reads the encoder's output through this projection
            self.enc_to_dec_proj = nn.Linear(config.encoder.hidden_size, config.decoder.hidden_size)
            self.decoder._init_module(self.enc_to_dec_proj)

    # ----- building and saving -----
    @classmethod
    def from_encoder_pretrained(cls, folder: str | Path, decoder_config: BertConfig | None = None,
                                **config_overrides) -> BertEncoderDecoder:
        """The encoder from a BERT folder; the decoder warm-started from it (decoder_config None) or fresh.

        [CLS] starts the target, [SEP] ends it, [PAD] fills after it: ids from the folder's vocab.txt.
        `config_overrides` change fields of both configs, e.g. hidden_dropout_prob=0.
        """
        from ..tokenizer import WordPieceTokenizer

        encoder = BertModel.from_pretrained(folder, **config_overrides)
        if decoder_config is None:
            decoder = BertLMHeadModel.from_pretrained(folder, **config_overrides)
        else:
            if decoder_config.vocab_size != encoder.config.vocab_size:
                raise ValueError(f"the decoder's vocab_size is {decoder_config.vocab_size} but the encoder's "
                                 f"vocabulary has {encoder.config.vocab_size} tokens: the decoder writes with the "
                                 "same tokenizer, so give it vocab_size=encoder.config.vocab_size.")
            decoder = BertLMHeadModel(decoder_config)
        tokenizer = WordPieceTokenizer.from_pretrained(folder)
        config = EncoderDecoderConfig(encoder.config, decoder.config, tokenizer.cls_token_id,
                                      tokenizer.pad_token_id, tokenizer.sep_token_id)
        return cls(config, encoder, decoder).train(False)

    @classmethod
    def from_pretrained(cls, folder: str | Path, **config_overrides) -> BertEncoderDecoder:
        """Read a folder written by `save_pretrained` or by transformers' `EncoderDecoderModel.save_pretrained`."""
        config = EncoderDecoderConfig.from_json(Path(folder) / "config.json")
        config.encoder = dataclasses.replace(config.encoder, **config_overrides)
        config.decoder = dataclasses.replace(config.decoder, **config_overrides)
        model = cls(config)
        model.fresh_weights = checkpoint.load_weights(model, checkpoint.read_state_dict(folder))
        return model.eval()

    def save_pretrained(self, folder: str | Path, overwrite: bool = False) -> Path:
        """Write config.json and model.safetensors; transformers' `EncoderDecoderModel.from_pretrained` reads them."""
        folder = Path(folder)
        checkpoint.refuse_to_overwrite(folder / "config.json", overwrite)
        state = {k: v for k, v in self.state_dict().items() if k not in self.tied_weights}
        checkpoint.write_weights(state, folder, overwrite)
        with checkpoint.atomic_path(folder / "config.json") as tmp:
            self.config.to_json(tmp)
        return folder

    # ----- running -----
    def encode(self, input_ids: Tensor, attention_mask: Tensor | None = None) -> Tensor:
        """The source (b s) -> the encoder's output in the decoder's size (b s (h d)). Computed once per source."""
        memory = self.encoder(input_ids, attention_mask).last_hidden_state
        return self.enc_to_dec_proj(memory) if hasattr(self, "enc_to_dec_proj") else memory

    def forward(self, input_ids: Tensor, attention_mask: Tensor | None = None,
                decoder_input_ids: Tensor | None = None, decoder_attention_mask: Tensor | None = None,
                labels: Tensor | None = None, encoder_hidden_states: Tensor | None = None,
                cache: KeyValueCache | None = None) -> Seq2SeqLMOutput:
        """Teacher forcing: give `labels` (b t: the target ids, -100 where nothing is to be predicted) and the
        decoder reads them shifted right behind the start token, as in transformers; or give `decoder_input_ids`.
        """
        if labels is not None and decoder_input_ids is None:
            decoder_input_ids = shift_tokens_right(labels, self.config.pad_token_id, self.config.decoder_start_token_id)
            if decoder_attention_mask is None:
                decoder_attention_mask = (decoder_input_ids != self.config.pad_token_id).long()
        if decoder_input_ids is None:
            raise ValueError("give the target: labels (b t) for training, or decoder_input_ids (b t).")
        memory = self.encode(input_ids, attention_mask) if encoder_hidden_states is None else encoder_hidden_states
        out = self.decoder(decoder_input_ids, memory, decoder_attention_mask, attention_mask, cache)
        loss = None
        if labels is not None:
            loss = F.cross_entropy(out.logits.flatten(0, 1), labels.flatten(), ignore_index=IGNORE_INDEX)
        return Seq2SeqLMOutput(out.logits, loss, memory, out.cache)

    # ----- what generate.py asks of a model -----
    @property
    def special_tokens(self) -> SpecialTokens:
        return SpecialTokens(self.config.decoder_start_token_id, self.config.eos_token_id, self.config.pad_token_id)

    def start_generation(self, input_ids: Tensor, attention_mask: Tensor | None, use_cache: bool = True
                         ) -> EncoderDecoderState:
        cache = self.decoder.new_cache() if use_cache else None
        return EncoderDecoderState(self.encode(input_ids, attention_mask), attention_mask, cache)

    def next_token_logits(self, state: EncoderDecoderState, prefix: Tensor) -> Tensor:
        """The target so far (b t, the start token first) -> scores of the token after it (b v).

        With the cache only the tokens it has not seen yet go through the decoder: one per step."""
        new = prefix[:, state.cache.length:] if state.cache is not None else prefix
        out = self.decoder(new, state.memory, encoder_attention_mask=state.memory_mask, cache=state.cache,
                           logits_to_keep=1)
        return out.logits[:, -1]

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
