"""Writing a target token by token: greedy search, beam search and sampling, for v1 and v2 alike.

Lecture 2.2 (outputs: a general sequence: the token written is fed back in); notebook
notebooks/06_general_sequence.ipynb. The choices of transformers' `generate` (generation/utils.py), with the
same names and meanings: `max_new_tokens`, `num_beams`, `length_penalty`, `early_stopping`, `do_sample`,
`temperature`, `top_k`, `top_p`; greedy and beam outputs equal transformers' (tests/test_seq2seq_parity.py;
the properties in tests/test_seq2seq_generate.py).

A model plugs in with three things: `special_tokens` (which token starts a target, which ends it, which fills
after the end); `start_generation(input_ids, attention_mask, use_cache)`, which reads the source once and
returns a state with `reorder(index, among_beams)`; and `next_token_logits(state, prefix)`, the scores (b v)
of the token after the prefix (b t).
With the cache the model runs only the prefix's new token each step; without it, the whole prefix.

Shape legend: b batch, k beams, t target tokens so far, v vocabulary size.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class SpecialTokens:
    decoder_start_token_id: int  # the first token of every prefix
    eos_token_id: int            # [SEP]: a sequence that writes it is finished
    pad_token_id: int            # [PAD]: what a finished sequence gets while others go on


@dataclass
class GenerationOutput:
    sequences: Tensor             # b t: the start token, the tokens written, [PAD] after a sequence's [SEP]
    scores: Tensor | None = None  # b: beam search's score of each sequence, sum log p / length ** length_penalty


@torch.no_grad()
def generate(model, input_ids: Tensor, attention_mask: Tensor | None = None, *, max_new_tokens: int = 20,
             num_beams: int = 1, length_penalty: float = 1.0, early_stopping: bool = True, do_sample: bool = False,
             temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
             generator: torch.Generator | None = None, use_cache: bool = True) -> GenerationOutput:
    """Greedy search (the default), beam search (num_beams > 1) or sampling (do_sample=True)."""
    if num_beams > 1:
        if do_sample:
            raise ValueError("beam search with sampling is not implemented: choose num_beams > 1 or do_sample=True.")
        return beam_search(model, input_ids, attention_mask, num_beams=num_beams, max_new_tokens=max_new_tokens,
                           length_penalty=length_penalty, early_stopping=early_stopping, use_cache=use_cache)
    if do_sample:
        return sample(model, input_ids, attention_mask, max_new_tokens=max_new_tokens, temperature=temperature,
                      top_k=top_k, top_p=top_p, generator=generator, use_cache=use_cache)
    return greedy_search(model, input_ids, attention_mask, max_new_tokens=max_new_tokens, use_cache=use_cache)


@torch.no_grad()
def greedy_search(model, input_ids: Tensor, attention_mask: Tensor | None = None, *, max_new_tokens: int = 20,
                  use_cache: bool = True) -> GenerationOutput:
    """Each step writes the most likely next token."""
    return _one_token_at_a_time(model, input_ids, attention_mask, max_new_tokens, use_cache,
                                choose=lambda logits: logits.argmax(dim=-1))


@torch.no_grad()
def sample(model, input_ids: Tensor, attention_mask: Tensor | None = None, *, max_new_tokens: int = 20,
           temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
           generator: torch.Generator | None = None, use_cache: bool = True) -> GenerationOutput:
    """Each step draws the next token from the model's distribution, sharpened or narrowed as asked."""
    return _one_token_at_a_time(model, input_ids, attention_mask, max_new_tokens, use_cache,
                                choose=lambda logits: _draw(logits, temperature, top_k, top_p, generator))


def _draw(logits: Tensor, temperature: float, top_k: int | None, top_p: float | None,
          generator: torch.Generator | None) -> Tensor:
    """One token per row (b v -> b), drawn from softmax of the warped scores."""
    probs = warp(logits, temperature, top_k, top_p).softmax(dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(1)


def warp(logits: Tensor, temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None) -> Tensor:
    """Scores (b v) -> scores to sample from, in transformers' order: temperature, then top-k, then top-p.

    temperature < 1 sharpens the distribution, > 1 flattens it; top-k keeps the k most likely tokens; top-p
    (nucleus) keeps the smallest set of most likely tokens whose probabilities add up to at least p.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be positive; got {temperature}. For the most likely token use greedy "
                         "search (do_sample=False).")
    logits = logits / temperature
    if top_k is not None and top_k < logits.shape[-1]:
        kth_best = logits.topk(top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth_best, float("-inf"))
    if top_p is not None and top_p < 1.0:
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        probs = sorted_logits.softmax(dim=-1)
        mass_before = probs.cumsum(dim=-1) - probs      # what the more likely tokens already cover
        drop_sorted = mass_before >= top_p              # the set reached p before this token: not needed
        drop = drop_sorted.scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


def _one_token_at_a_time(model, input_ids, attention_mask, max_new_tokens, use_cache, choose) -> GenerationOutput:
    """The loop that greedy search and sampling share; a finished sequence gets [PAD] until all are finished."""
    special = model.special_tokens
    state = model.start_generation(input_ids, attention_mask, use_cache)
    prefix = input_ids.new_full((input_ids.shape[0], 1), special.decoder_start_token_id)  # b 1
    unfinished = torch.ones(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
    for _ in range(max_new_tokens):
        tokens = choose(model.next_token_logits(state, prefix).float())  # b
        tokens = tokens.masked_fill(~unfinished, special.pad_token_id)
        prefix = torch.cat([prefix, tokens[:, None]], dim=1)
        unfinished &= tokens != special.eos_token_id
        if not unfinished.any():
            break
    return GenerationOutput(prefix)


@torch.no_grad()
def beam_search(model, input_ids: Tensor, attention_mask: Tensor | None = None, *, num_beams: int = 4,
                max_new_tokens: int = 20, length_penalty: float = 1.0, early_stopping: bool = True,
                use_cache: bool = True) -> GenerationOutput:
    """Keep the `num_beams` most likely prefixes; a prefix that writes [SEP] becomes a finished hypothesis.

    A hypothesis scores sum log p / (tokens written, [SEP] included) ** length_penalty (transformers' rule:
    length_penalty > 0 favours longer ones, < 0 shorter ones). With early_stopping=True a source is done as
    soon as it has `num_beams` finished hypotheses; at max_new_tokens every running prefix counts as finished.
    Each step scores 2 x num_beams candidates, so that num_beams remain to continue even if all others end.
    """
    if not early_stopping:
        raise NotImplementedError("only early_stopping=True is implemented: a source is done when it has "
                                  "num_beams finished hypotheses.")
    special = model.special_tokens
    b, k = input_ids.shape[0], num_beams
    state = model.start_generation(input_ids, attention_mask, use_cache)  # each source is read once ...
    state.reorder(torch.arange(b, device=input_ids.device).repeat_interleave(k))  # ... and given to its k beams
    prefix = input_ids.new_full((b * k, 1), special.decoder_start_token_id)
    # All beams start as the same prefix: only the first may propose continuations, or they would be k copies.
    beam_scores = torch.zeros(b, k, device=input_ids.device)
    beam_scores[:, 1:] = -1e9
    finished: list[list[tuple[float, Tensor]]] = [[] for _ in range(b)]  # per source: (score, tokens)
    for step in range(max_new_tokens):
        log_probs = model.next_token_logits(state, prefix).float().log_softmax(dim=-1)  # (b k) v
        vocab = log_probs.shape[-1]
        totals = (log_probs.view(b, k, vocab) + beam_scores[:, :, None]).view(b, k * vocab)
        best_totals, best = totals.topk(2 * k, dim=-1)          # b 2k, best first
        # as Python lists, once: reading the tensors element by element would cost more than the bookkeeping
        cand_beam, cand_token, cand_score = (best // vocab).tolist(), (best % vocab).tolist(), best_totals.tolist()
        last_step = step == max_new_tokens - 1
        next_rows, next_tokens, next_scores = [], [], []
        for i in range(b):
            keep, done = [], len(finished[i]) == k  # a source with k hypotheses takes no more
            for rank in range(2 * k):
                beam, token, score = cand_beam[i][rank], cand_token[i][rank], cand_score[i][rank]
                if token == special.eos_token_id or last_step:
                    # only the k best candidates may end a hypothesis; the others are spares for the beams
                    if rank < k and not done:
                        hypothesis = torch.cat([prefix[i * k + beam], prefix.new_tensor([token])])
                        finished[i].append((score / (step + 1) ** length_penalty, hypothesis))
                elif len(keep) < k:
                    keep.append((beam, token, score))
            next_rows += [i * k + beam for beam, _, _ in keep]
            next_tokens += [token for _, token, _ in keep]
            next_scores.append([score for _, _, score in keep])
            finished[i] = sorted(finished[i], key=lambda entry: -entry[0])[:k]
        if all(len(hypotheses) == k for hypotheses in finished):
            break
        rows = torch.tensor(next_rows, device=prefix.device)
        prefix = torch.cat([prefix[rows], torch.tensor(next_tokens, device=prefix.device)[:, None]], dim=1)
        beam_scores = torch.tensor(next_scores, device=prefix.device)
        state.reorder(rows, among_beams=True)  # the cache follows its beams: one continued twice has two copies
    winners = [hypotheses[0] for hypotheses in finished]
    sequences = prefix.new_full((b, max(len(tokens) for _, tokens in winners)), special.pad_token_id)
    for i, (_, tokens) in enumerate(winners):
        sequences[i, :len(tokens)] = tokens
    return GenerationOutput(sequences, torch.tensor([score for score, _ in winners]))
