"""Generation: greedy, beam search and sampling agree with each other where they must, with and without the cache.

Lecture 2.2 (general sequence output); run with `pytest -m outputs`. A small random minibert encoder-decoder
(weights scaled so that the logits spread); its [SEP] is a token it writes after a different number of
steps for each source. Beam search against transformers': test_seq2seq_parity.py.
"""
import math

import pytest
import torch
from torch.testing import assert_close

from minibert.config import BertConfig
from minibert.seq2seq import BertEncoderDecoder, EncoderDecoderConfig
from minibert.seq2seq.generate import beam_search, generate, greedy_search, sample, warp

pytestmark = pytest.mark.outputs


@pytest.fixture(scope="module")
def model():
    sizes = dict(vocab_size=50, max_position_embeddings=40, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    encoder = BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=48, **sizes)
    decoder = BertConfig(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=24, **sizes)
    torch.manual_seed(0)
    # [SEP] is 8: this random model writes it after 4, 3 and 6 tokens for the three sources
    model = BertEncoderDecoder(EncoderDecoderConfig(encoder, decoder, decoder_start_token_id=2, pad_token_id=0,
                                                    eos_token_id=8)).eval()
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for name, weight in model.named_parameters():
            if "LayerNorm" not in name and not name.endswith("bias"):
                weight.copy_(torch.randn(weight.shape, generator=g) / weight.shape[-1] ** 0.5)
    return model


def sources():
    input_ids = torch.randint(5, 50, (3, 6), generator=torch.Generator().manual_seed(1))
    attention_mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 0, 0]])
    return input_ids * attention_mask, attention_mask


def test_batched_greedy_equals_each_source_alone(model):
    input_ids, attention_mask = sources()
    batch = greedy_search(model, input_ids, attention_mask, max_new_tokens=10).sequences
    lengths = set()
    for row in range(3):
        real = attention_mask[row].bool()
        alone = greedy_search(model, input_ids[row, real][None], None, max_new_tokens=10).sequences[0]
        assert torch.equal(batch[row, :len(alone)], alone)
        assert (batch[row, len(alone):] == model.config.pad_token_id).all()  # [PAD] after its [SEP]
        lengths.add(len(alone))
    assert lengths == {6, 5, 8}  # start, the tokens, [SEP]: finished at different steps


@pytest.mark.parametrize("strategy", ["greedy", "beam", "sample"])
def test_cache_changes_nothing_but_the_cost(model, strategy):
    input_ids, attention_mask = sources()
    options = {"greedy": {}, "beam": dict(num_beams=3, length_penalty=0.6),
               "sample": dict(do_sample=True, temperature=1.5, top_k=20, top_p=0.9)}[strategy]

    def run(use_cache):
        generator = torch.Generator().manual_seed(7)
        return generate(model, input_ids, attention_mask, max_new_tokens=12, use_cache=use_cache,
                        generator=generator, **options)

    cached, uncached = run(True), run(False)
    assert torch.equal(cached.sequences, uncached.sequences)
    if strategy == "beam":
        assert_close(cached.scores, uncached.scores)


def test_one_beam_is_greedy(model):
    input_ids, attention_mask = sources()
    beam = beam_search(model, input_ids, attention_mask, num_beams=1, max_new_tokens=10)
    greedy = greedy_search(model, input_ids, attention_mask, max_new_tokens=10)
    assert torch.equal(beam.sequences, greedy.sequences)


def test_more_beams_never_find_a_worse_best_hypothesis_here(model):
    """Not a law of beam search in general, but its purpose: with length_penalty=0 the score is the sequence's
    log-probability, and on this model a wider beam finds sequences at least as likely."""
    input_ids, attention_mask = sources()
    scores = [beam_search(model, input_ids, attention_mask, num_beams=k, max_new_tokens=6, length_penalty=0.0).scores
              for k in (1, 2, 4)]
    assert (scores[1] >= scores[0] - 1e-5).all() and (scores[2] >= scores[1] - 1e-5).all()
    assert (scores[2] > scores[0] + 1e-3).any()


def test_beam_score_is_log_probability_over_length(model):
    """The best hypothesis's score, recomputed by teacher forcing: sum of log p / (tokens written) ** penalty."""
    input_ids, attention_mask = sources()
    out = beam_search(model, input_ids, attention_mask, num_beams=3, max_new_tokens=8, length_penalty=1.5)
    eos, pad = model.config.eos_token_id, model.config.pad_token_id
    for row in range(3):
        tokens = out.sequences[row].tolist()
        length = tokens.index(eos) if eos in tokens else len(tokens) - 1
        target = out.sequences[row:row + 1, 1:length + 1]
        with torch.no_grad():
            logits = model(input_ids[row:row + 1], attention_mask[row:row + 1],
                           decoder_input_ids=out.sequences[row:row + 1, :length]).logits
        log_p = logits.log_softmax(-1).gather(-1, target[..., None]).sum()
        assert_close(out.scores[row], log_p / length ** 1.5, atol=1e-4, rtol=0)
        assert all(t == pad for t in tokens[length + 1:])


def test_top_k_one_sampling_is_greedy(model):
    input_ids, attention_mask = sources()
    sampled = sample(model, input_ids, attention_mask, max_new_tokens=10, top_k=1, temperature=0.7,
                     generator=torch.Generator().manual_seed(3))
    assert torch.equal(sampled.sequences, greedy_search(model, input_ids, attention_mask, max_new_tokens=10).sequences)


@pytest.mark.parametrize("top_p, kept", [(0.4, {2}), (0.6, {2, 0}), (0.8, {2, 0, 3}), (0.95, {2, 0, 3, 1}),
                                         (1.0, {2, 0, 3, 1})])
def test_top_p_keeps_the_smallest_set_whose_mass_reaches_p(top_p, kept):
    """Probabilities 0.25, 0.0625, 0.5, 0.1875 (ids 0-3): sorted 0.5 (id 2), 0.25 (id 0), 0.1875 (id 3), 0.0625
    (id 1); cumulative 0.5, 0.75, 0.9375, 1. The set must reach p: p = 0.6 needs ids 2 and 0, p = 0.8 also id 3."""
    logits = torch.tensor([[0.25, 0.0625, 0.5, 0.1875]]).log()
    warped = warp(logits, top_p=top_p)
    assert {i for i in range(4) if warped[0, i] > -math.inf} == kept
    assert_close(warped[warped > -math.inf], logits[warped > -math.inf])  # the survivors keep their scores


def test_temperature_and_top_k():
    logits = torch.tensor([[1.0, 3.0, 2.0, 0.0]])
    assert_close(warp(logits, temperature=0.5), logits * 2)
    assert (warp(logits, top_k=2) > -math.inf).tolist() == [[False, True, True, False]]
    with pytest.raises(ValueError, match="temperature"):
        warp(logits, temperature=0.0)


def test_sampling_follows_the_warped_distribution():
    """1,000 draws from probabilities 0.5 / 0.3 / 0.2 with top_k=2: the third never, the first about 5/8."""
    from minibert.seq2seq.generate import _draw
    logits = torch.tensor([[0.5, 0.3, 0.2]]).log().expand(1000, 3)
    draws = _draw(logits, temperature=1.0, top_k=2, top_p=None, generator=torch.Generator().manual_seed(0))
    counts = torch.bincount(draws, minlength=3)
    assert counts[2] == 0 and abs(counts[0].item() / 1000 - 0.625) < 0.05


def test_with_the_cache_each_step_runs_one_position(model):
    """What the cache is for: after the first step the decoder sees only the newest token, not the prefix."""
    input_ids, attention_mask = sources()
    lengths = {True: [], False: []}
    forward = model.decoder.forward

    def recording(use_cache):
        def run(input_ids, *args, **kwargs):
            lengths[use_cache].append(input_ids.shape[1])
            return forward(input_ids, *args, **kwargs)
        return run

    for use_cache in (True, False):
        model.decoder.forward = recording(use_cache)
        try:
            generate(model, input_ids, attention_mask, max_new_tokens=7, use_cache=use_cache)
        finally:
            del model.decoder.forward  # the class's forward again
    assert lengths[True] == [1] * 7
    assert lengths[False] == [1, 2, 3, 4, 5, 6, 7]
