"""BertForSeq2SeqLM (v2): one pre-trained BERT reads the source and writes the target, under UniLM's mask.

Lecture 2.2 (outputs: a general sequence, v2: BERT itself is the decoder); notebook
notebooks/06_general_sequence.ipynb. UniLM (Dong et al. 2019): the input is `[CLS] source [SEP] target`, source in
segment 0 and target in segment 1, and one (b n n) mask decides who sees whom: a source token sees the whole
source (as in BERT), a target token sees the source and the target up to itself (as in a decoder). No new weights:
the encoder, the embeddings and the MLM head (`cls.predictions`, tied to the word embeddings) are BERT's. (A
checkpoint without its MLM head, as the installed MiniLM, gives the head's small transform fresh; the output
vectors are the pre-trained word embeddings all the same.)

Which token predicts what: shifted, as a decoder does. The source's [SEP] predicts the first target token, each
target token the next one, the last one [SEP]. UniLM instead replaces some target tokens by [MASK] and predicts
them, as in pre-training, which keeps the head's pre-trained job; to generate, it appends a [MASK], predicts
it, and puts the word in its place. Shifted is chosen for two reasons: each training pass scores every target
token (UniLM: only the masked ones), and generation is the training computation one position at a time, so the
cache holds exactly what training computed and each step costs one position (with [MASK] the position must be
run again with its word: two a step). The price: the head learns a new job, reading the vector of the token
before instead of the vector of a [MASK].

Shape legend: b batch, s source tokens ([CLS] source [SEP], padded), t target tokens, n joined tokens,
m keys, (h d) hidden size, v vocabulary size.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from ..config import BertConfig
from ..model.attention import additive_mask
from ..model.bert import BertModel, BertPreTrainedModel
from ..model.pretraining import IGNORE_INDEX, TIED_DECODER, BertOnlyMLMHead, _tie_decoder
from .cache import KeyValueCache
from .encoder_decoder import Seq2SeqLMOutput, shift_tokens_right
from .generate import SpecialTokens
from .layers import cached_self_attention, embed


def seq2seq_mask(token_type_ids: Tensor, attention_mask: Tensor) -> Tensor:
    """UniLM's mask (b n n) of 1 = may see, 0 = may not: every query sees the source (segment 0); a target query
    (segment 1) also sees the target up to its own position; nobody sees padding."""
    n = token_type_ids.shape[1]
    real = attention_mask.bool()
    source_key = (token_type_ids == 0) & real                                          # b n
    causal = torch.ones(n, n, dtype=torch.bool, device=token_type_ids.device).tril()  # n n
    target_query = (token_type_ids == 1)[:, :, None]                                  # b n 1
    return (source_key[:, None, :] | (target_query & causal & real[:, None, :])).long()


@dataclass
class JoinedBatch:
    """`[CLS] source [SEP] target` per row, the padding at the end."""
    input_ids: Tensor        # b n
    token_type_ids: Tensor   # b n: 0 for the source, 1 for the target
    attention_mask: Tensor   # b n: 1 for real tokens
    source_lengths: Tensor   # b: where each target starts


def join(source_ids: Tensor, source_mask: Tensor, target_ids: Tensor, target_mask: Tensor, pad_token_id: int
         ) -> JoinedBatch:
    """Sources (b s) and targets (b t), each padded on its own, -> one row per pair with its real tokens only."""
    rows = [(s[sm.bool()], t[tm.bool()]) for s, sm, t, tm in zip(source_ids, source_mask, target_ids, target_mask)]
    n = max(len(s) + len(t) for s, t in rows)
    input_ids = source_ids.new_full((len(rows), n), pad_token_id)
    token_type_ids = torch.zeros_like(input_ids)
    attention_mask = torch.zeros_like(input_ids)
    for i, (s, t) in enumerate(rows):
        input_ids[i, :len(s) + len(t)] = torch.cat([s, t])
        token_type_ids[i, len(s):len(s) + len(t)] = 1
        attention_mask[i, :len(s) + len(t)] = 1
    return JoinedBatch(input_ids, token_type_ids, attention_mask, source_mask.sum(dim=1))


@dataclass
class UniLMState:
    """What generation keeps: the source, and with the cache its keys and values and its first prediction."""
    source_ids: Tensor              # b s
    source_mask: Tensor             # b s
    cache: KeyValueCache | None
    first_logits: Tensor | None     # b v: what the source's [SEP] predicts, the first target token

    def reorder(self, index: Tensor, among_beams: bool = False) -> None:
        """Keep the rows `index`. The source's keys and values sit in the self-attention cache beside the
        target's, so they move with them even among the beams of one source."""
        self.source_ids, self.source_mask = self.source_ids[index], self.source_mask[index]
        if self.cache is not None:
            self.cache.reorder(index)
            self.first_logits = self.first_logits[index]


class BertForSeq2SeqLM(BertPreTrainedModel):
    tied_weights = TIED_DECODER
    fresh_prefixes = ("cls.",)  # a bare encoder (MiniLM) has no MLM head: it starts fresh
    ignored_prefixes = ("cls.seq_relationship.", "bert.pooler.")

    def __init__(self, config: BertConfig, cls_token_id: int = 101, sep_token_id: int = 102):
        super().__init__(config)
        self.bert = BertModel(config, add_pooling_layer=False)
        self.cls = BertOnlyMLMHead(config)
        self.cls.apply(self._init_module)
        _tie_decoder(self)
        self.cls_token_id, self.sep_token_id = cls_token_id, sep_token_id

    @classmethod
    def from_pretrained(cls, folder: str | Path, **config_overrides) -> BertForSeq2SeqLM:
        """Any BERT folder; [CLS] and [SEP] ids from its vocab.txt when it has one."""
        model = super().from_pretrained(folder, **config_overrides)
        if (Path(folder) / "vocab.txt").is_file():
            from ..tokenizer import WordPieceTokenizer
            tokenizer = WordPieceTokenizer.from_pretrained(folder)
            model.cls_token_id, model.sep_token_id = tokenizer.cls_token_id, tokenizer.sep_token_id
        return model

    @property
    def special_tokens(self) -> SpecialTokens:
        # The source's own [SEP] starts every prefix: it is the token whose output predicts the first target token.
        return SpecialTokens(self.sep_token_id, self.sep_token_id, self.config.pad_token_id)

    def forward(self, input_ids: Tensor, attention_mask: Tensor | None = None, labels: Tensor | None = None,
                decoder_input_ids: Tensor | None = None, decoder_attention_mask: Tensor | None = None
                ) -> Seq2SeqLMOutput:
        """The interface of BertEncoderDecoder: input_ids (b s) is `[CLS] source [SEP]`; labels (b t) the target
        ending in [SEP], -100 after it; or decoder_input_ids (b t), the start token then the target so far.
        logits (b t v): at j, the scores of target token j + 1, from the source's [SEP] (j = 0) or target token j.
        """
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        if decoder_input_ids is None:
            if labels is None:
                raise ValueError("give the target: labels (b t) for training, or decoder_input_ids (b t).")
            decoder_input_ids = shift_tokens_right(labels, self.config.pad_token_id, self.sep_token_id)
        if decoder_attention_mask is None:
            decoder_attention_mask = torch.ones_like(decoder_input_ids)
            if labels is not None:
                decoder_attention_mask[:, 1:] = labels[:, :-1] != IGNORE_INDEX
        # the start token is not a target token: the source's [SEP] plays its part
        joined = join(input_ids, attention_mask, decoder_input_ids[:, 1:], decoder_attention_mask[:, 1:],
                      self.config.pad_token_id)
        mask = seq2seq_mask(joined.token_type_ids, joined.attention_mask)
        hidden = self.bert(joined.input_ids, mask, joined.token_type_ids).last_hidden_state  # b n (h d)
        t = decoder_input_ids.shape[1]
        # the outputs that predict: from the source's [SEP] (at source_length - 1) on, t of them
        where = (joined.source_lengths[:, None] - 1 + torch.arange(t, device=hidden.device)).clamp(
            max=hidden.shape[1] - 1)                                                           # b t
        logits = self.cls.predictions(hidden.gather(1, where[..., None].expand(-1, -1, hidden.shape[-1])))
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=IGNORE_INDEX)
        return Seq2SeqLMOutput(logits, loss)

    # ----- what generate.py asks of a model -----
    def start_generation(self, input_ids: Tensor, attention_mask: Tensor | None, use_cache: bool = True
                         ) -> UniLMState:
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        state = UniLMState(input_ids, attention_mask, None, None)
        if use_cache:
            # The source once, as BERT reads it (padding mask only); its keys and values stay in the cache.
            state.cache = KeyValueCache(self.config.num_hidden_layers)
            positions = torch.arange(input_ids.shape[1], device=input_ids.device)
            hidden = self._layers(input_ids, torch.zeros_like(input_ids), positions,
                                  additive_mask(attention_mask, torch.float32), state.cache)
            last = attention_mask.sum(dim=1) - 1                                   # each source's [SEP]
            state.first_logits = self.cls.predictions(hidden[torch.arange(len(last)), last])
        return state

    def next_token_logits(self, state: UniLMState, prefix: Tensor) -> Tensor:
        """The target so far (b t, the start token first) -> scores of the next token (b v)."""
        if state.cache is None:  # the whole joined sequence again, as in training
            return self(state.source_ids, state.source_mask, decoder_input_ids=prefix).logits[:, -1]
        if prefix.shape[1] == 1:
            return state.first_logits
        source_length = state.source_ids.shape[1]
        seen = state.cache.length - source_length                                  # target tokens in the cache
        new = prefix[:, 1 + seen:]                                                 # b n
        n = new.shape[1]
        # each target right after its own source: positions source_length_i + j, as in the joined training rows
        positions = state.source_mask.sum(dim=1, keepdim=True) + torch.arange(seen, seen + n, device=new.device)
        if int(positions.max()) >= self.config.max_position_embeddings:
            raise ValueError(f"source and target together reach position {int(positions.max())} but the position "
                             f"table has {self.config.max_position_embeddings} rows: shorten the source or lower "
                             "max_new_tokens.")
        keep_target = torch.ones(n, seen + n, dtype=torch.bool, device=new.device).tril(diagonal=seen)  # n m_t
        keep = torch.cat([state.source_mask.bool()[:, None, :].expand(-1, n, -1),
                          keep_target[None].expand(len(new), -1, -1)], dim=2)      # b n (s + m_t)
        hidden = self._layers(new, torch.ones_like(new), positions, additive_mask(keep, torch.float32), state.cache)
        return self.cls.predictions(hidden[:, -1])

    def _layers(self, input_ids: Tensor, token_type_ids: Tensor, positions: Tensor, mask: Tensor,
                cache: KeyValueCache) -> Tensor:
        """BERT's layers over new tokens whose keys and values join the cache (minibert's BertLayer, called
        through its parts so that keys and values can come from the cache)."""
        x = embed(self.bert.embeddings, input_ids, token_type_ids, positions)
        for i, layer in enumerate(self.bert.encoder.layer):
            x = cached_self_attention(layer.attention, x, mask, cache, i)
            x = layer.output(layer.intermediate(x), residual=x)
        return x
