"""BertForSeq2SeqLM (v2): UniLM's sequence-to-sequence mask, and generation with the cache equal to without.

Lecture 2.2 (general sequence output, v2); run with `pytest -m outputs`. A small random BERT whose weights are
scaled so that every token's output depends visibly on what it sees.
"""
import pytest
import torch
from torch.testing import assert_close

from minibert.config import BertConfig
from minibert.model.pretraining import IGNORE_INDEX
from minibert.seq2seq import BertForSeq2SeqLM, generate
from minibert.seq2seq.unilm import join, seq2seq_mask

pytestmark = pytest.mark.outputs
CLS, SEP, PAD = 3, 4, 0
TOL = dict(atol=1e-5, rtol=0)


@pytest.fixture(scope="module")
def model():
    config = BertConfig(vocab_size=40, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=48, max_position_embeddings=48, hidden_dropout_prob=0.0,
                        attention_probs_dropout_prob=0.0)
    torch.manual_seed(0)
    model = BertForSeq2SeqLM(config, cls_token_id=CLS, sep_token_id=SEP).eval()
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, weight in model.named_parameters():
            if "LayerNorm" not in name and not name.endswith("bias"):
                weight.copy_(torch.randn(weight.shape, generator=g) / weight.shape[-1] ** 0.5)
    return model


def sources():
    """[CLS] source [SEP] of 3, 5 and 6 tokens, padded."""
    ids = torch.randint(5, 40, (3, 6), generator=torch.Generator().manual_seed(1))
    lengths = torch.tensor([6, 3, 5])
    mask = (torch.arange(6)[None] < lengths[:, None]).long()
    ids[:, 0] = CLS
    ids[torch.arange(3), lengths - 1] = SEP
    return ids * mask, mask


def test_mask_by_hand():
    """[CLS] a [SEP] x y [PAD]: segments 0 0 0 1 1 0."""
    token_type_ids = torch.tensor([[0, 0, 0, 1, 1, 0]])
    attention_mask = torch.tensor([[1, 1, 1, 1, 1, 0]])
    expected = torch.tensor([[1, 1, 1, 0, 0, 0],   # source tokens see the source, all of it
                             [1, 1, 1, 0, 0, 0],
                             [1, 1, 1, 0, 0, 0],
                             [1, 1, 1, 1, 0, 0],   # x sees the source and itself
                             [1, 1, 1, 1, 1, 0],   # y sees the source, x and itself
                             [1, 1, 1, 0, 0, 0]])  # padding (its output unused) sees the source; nobody sees it
    assert torch.equal(seq2seq_mask(token_type_ids, attention_mask)[0], expected)


def hidden_states(model, source_ids, source_mask, target_ids):
    joined = join(source_ids, source_mask, target_ids, torch.ones_like(target_ids), PAD)
    with torch.no_grad():
        out = model.bert(joined.input_ids, seq2seq_mask(joined.token_type_ids, joined.attention_mask),
                         joined.token_type_ids)
    return out.last_hidden_state, joined


def test_source_tokens_do_not_see_the_target(model):
    source_ids, source_mask = sources()
    target = torch.randint(5, 40, (3, 4), generator=torch.Generator().manual_seed(2))
    changed = target.clone()
    changed[:, 0] = (changed[:, 0] + 7) % 35 + 5  # every target token changes from the first on
    before, joined = hidden_states(model, source_ids, source_mask, target)
    after, _ = hidden_states(model, source_ids, source_mask, changed)
    source = joined.token_type_ids.eq(0) & joined.attention_mask.bool()
    assert_close(after[source], before[source], **TOL)
    target_rows = joined.token_type_ids.eq(1)
    assert (after[target_rows] - before[target_rows]).abs().amax() > 0.1  # the change is there to be seen


def test_target_tokens_do_not_see_later_target_tokens(model):
    source_ids, source_mask = sources()
    labels = torch.randint(5, 40, (3, 5), generator=torch.Generator().manual_seed(3))
    changed = labels.clone()
    changed[:, 2] = (changed[:, 2] + 7) % 35 + 5  # the third target token: fed as input at position 3
    with torch.no_grad():
        before = model(source_ids, source_mask, labels=labels).logits
        after = model(source_ids, source_mask, labels=changed).logits
    assert_close(after[:, :3], before[:, :3], **TOL)  # predicted from the source's [SEP] and target tokens 1, 2
    assert (after[:, 3:] - before[:, 3:]).abs().amax() > 0.1  # from target token 3 on, the change is seen


def test_labels_are_the_shifted_target_and_padding_counts_for_nothing(model):
    source_ids, source_mask = sources()
    labels = torch.randint(5, 40, (3, 4), generator=torch.Generator().manual_seed(4))
    labels[1, 2:] = IGNORE_INDEX
    with torch.no_grad():
        out = model(source_ids, source_mask, labels=labels)
        alone = model(source_ids[1:2, :3], source_mask[1:2, :3], labels=labels[1:2, :2])
    assert out.logits.shape == (3, 4, 40)
    assert_close(out.logits[1, :2], alone.logits[0], **TOL)  # padding in the batch changes nothing
    real = labels != IGNORE_INDEX
    by_hand = -out.logits.log_softmax(-1)[real].gather(1, labels[real][:, None]).mean()
    assert_close(out.loss, by_hand, **TOL)


def test_cached_steps_equal_the_whole_sequence(model):
    """Step by step with the cache (source padded, targets after it) against the joined rows of training."""
    source_ids, source_mask = sources()
    prefix = torch.randint(5, 40, (3, 5), generator=torch.Generator().manual_seed(5))
    prefix[:, 0] = SEP
    with torch.no_grad():
        full = model(source_ids, source_mask, decoder_input_ids=prefix).logits
        state = model.start_generation(source_ids, source_mask, use_cache=True)
        steps = torch.stack([model.next_token_logits(state, prefix[:, :t + 1]) for t in range(5)], dim=1)
    assert state.cache.length == 6 + 4  # the padded source, then one position per target token
    assert_close(steps, full, **TOL)


@pytest.mark.parametrize("options", [dict(), dict(num_beams=3, length_penalty=1.0),
                                     dict(do_sample=True, top_p=0.9, temperature=1.3)])
def test_generation_with_the_cache_equals_without(model, options):
    source_ids, source_mask = sources()

    def run(use_cache):
        return generate(model, source_ids, source_mask, max_new_tokens=8, use_cache=use_cache,
                        generator=torch.Generator().manual_seed(0), **options)

    cached, uncached = run(True), run(False)
    assert torch.equal(cached.sequences, uncached.sequences)
    assert cached.sequences.shape[1] > 2


def test_warm_start_from_bert_keeps_every_encoder_weight(checkpoint_dir):
    model = BertForSeq2SeqLM.from_pretrained(checkpoint_dir)
    assert all(name.startswith("cls.") for name in model.fresh_weights)  # only a head the checkpoint lacks
    assert (model.cls_token_id, model.sep_token_id) == (101, 102)
    assert model.cls.predictions.decoder.weight is model.bert.embeddings.word_embeddings.weight
