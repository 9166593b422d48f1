"""ALBERT's options (minibert/smaller/albert.py): transformers' AlbertModel is the reference, the formulas count.

Lecture 1.2; run with `pytest -m smaller`.
"""
import dataclasses

import pytest
import torch
from torch.testing import assert_close

import minibert
from minibert import BertModel
from minibert.smaller import AlbertConfig, AlbertModel
from reference import random_batch

pytestmark = pytest.mark.smaller
TOL = dict(atol=1e-5, rtol=0)
V, E, H, I, P, T = 99, 24, 48, 80, 40, 2  # vocabulary, embedding width, hidden, intermediate, positions, segments


def reference_config(transformers, layers=3, groups=1, **changes):
    """Unusual sizes: E != H, 4 heads of 12, an odd vocabulary."""
    return transformers.AlbertConfig(vocab_size=V, embedding_size=E, hidden_size=H, num_hidden_layers=layers,
                                     num_hidden_groups=groups, num_attention_heads=4, intermediate_size=I,
                                     max_position_embeddings=P, type_vocab_size=T, **changes)


def saved_reference(transformers, folder, model_class="AlbertModel", **config):
    """A random transformers ALBERT, its LayerNorms and biases moved off 1 / 0 so that they count, saved."""
    torch.manual_seed(0)
    model = getattr(transformers, model_class)(reference_config(transformers, **config))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    model.save_pretrained(folder)
    return transformers.AlbertModel.from_pretrained(folder, attn_implementation="eager").eval()


@pytest.mark.parametrize("layers,groups", [(3, 1), (4, 2), (3, 3)])
@pytest.mark.parametrize("attention", ["eager", "sdpa"])
def test_reads_transformers_checkpoints(transformers_lib, tmp_path, layers, groups, attention):
    reference = saved_reference(transformers_lib, tmp_path, layers=layers, groups=groups)
    ours = minibert.AlbertModel.from_pretrained(tmp_path, attn_implementation=attention)
    batch = random_batch(V, 4, 17, T)
    assert batch["attention_mask"].eq(0).any()
    # the textbook path also returns every layer's output and attention map; the fast path is timed without them
    flags = dict(output_hidden_states=True, output_attentions=True) if attention == "eager" else {}
    with torch.no_grad():
        mine, theirs = ours(**batch, **flags), reference(**batch, **flags)
    real = batch["attention_mask"].bool()  # the fast path leaves zeros at the padding (tests/test_fast_path.py)
    assert_close(mine.last_hidden_state[real], theirs.last_hidden_state[real], **TOL)
    assert_close(mine.pooler_output, theirs.pooler_output, **TOL)
    if flags:  # embeddings after the projection, then each layer; attention maps at every real query
        assert len(mine.hidden_states) == len(theirs.hidden_states) == layers + 1
        for ours_, theirs_ in zip(mine.hidden_states, theirs.hidden_states):
            assert_close(ours_[real], theirs_[real], **TOL)
        assert len(mine.attentions) == len(theirs.attentions) == layers
        for ours_, theirs_ in zip(mine.attentions, theirs.attentions):
            assert_close(ours_.transpose(1, 2)[real], theirs_.transpose(1, 2)[real], **TOL)
    assert ours.fresh_weights == []
    assert ours.num_parameters() == reference.num_parameters()


def test_what_it_saves_transformers_reads(transformers_lib, tmp_path):
    config = AlbertConfig(vocab_size=V, embedding_size=E, hidden_size=H, num_hidden_layers=4, num_hidden_groups=2,
                          num_attention_heads=4, intermediate_size=I, max_position_embeddings=P)
    torch.manual_seed(1)
    ours = AlbertModel(config).eval()
    ours.save_pretrained(tmp_path)
    theirs = transformers_lib.AlbertModel.from_pretrained(tmp_path, attn_implementation="eager").eval()
    batch = random_batch(V, 3, 11, T, seed=2)
    with torch.no_grad():
        mine, ref = ours(**batch), theirs(**batch)
    real = batch["attention_mask"].bool()
    assert_close(mine.last_hidden_state[real], ref.last_hidden_state[real], **TOL)
    assert_close(mine.pooler_output, ref.pooler_output, **TOL)
    again = AlbertModel.from_pretrained(tmp_path)
    assert all(torch.equal(a, b) for a, b in zip(again.state_dict().values(), ours.state_dict().values()))


def test_reads_the_encoder_out_of_a_model_with_heads(transformers_lib, tmp_path):
    """AlbertForPreTraining saves `albert.`-prefixed names and MLM / sentence-order heads, which are skipped."""
    reference = saved_reference(transformers_lib, tmp_path, model_class="AlbertForPreTraining")
    ours = AlbertModel.from_pretrained(tmp_path)
    batch = random_batch(V, 2, 9, T, seed=3)
    with torch.no_grad():
        assert_close(ours(**batch).pooler_output, reference(**batch).pooler_output, **TOL)


def layer_parameters(hidden, intermediate):
    attention = 4 * (hidden * hidden + hidden) + 2 * hidden  # q, k, v, output dense; LayerNorm
    ffn = (hidden * intermediate + intermediate) + (intermediate * hidden + hidden) + 2 * hidden
    return attention, ffn


@pytest.mark.parametrize("sharing", ["all", "attention", "ffn", "none"])
@pytest.mark.parametrize("embedding_size", [E, None])
@pytest.mark.parametrize("layers,groups", [(6, 1), (6, 2)])
def test_parameter_counts_equal_the_formulas(sharing, embedding_size, layers, groups):
    config = AlbertConfig(vocab_size=V, embedding_size=embedding_size, hidden_size=H, num_hidden_layers=layers,
                          num_hidden_groups=groups, num_attention_heads=4, intermediate_size=I,
                          max_position_embeddings=P, sharing=sharing)
    width = embedding_size or H
    embeddings = (V + P + T) * width + 2 * width + (width * H + H if embedding_size else 0)
    attention, ffn = layer_parameters(H, I)
    distinct_attention = layers if sharing in ("ffn", "none") else groups
    distinct_ffn = layers if sharing in ("attention", "none") else groups
    pooler = H * H + H
    expected = embeddings + distinct_attention * attention + distinct_ffn * ffn + pooler
    model = AlbertModel(config)
    assert model.num_parameters() == expected
    assert len(list(model.parameters())) == len(set(map(id, model.parameters())))  # an optimiser sees each once


def test_albert_base_sizes_by_formula():
    """The paper's numbers: ALBERT-base 12M parameters against BERT-base 108M (Lan et al. 2019, table 1)."""
    albert = AlbertModel(AlbertConfig(vocab_size=30000))  # albert-base-v2: E 128, H 768, 12 layers all shared
    attention, ffn = layer_parameters(768, 3072)
    assert albert.num_parameters() == (30000 + 512 + 2) * 128 + 2 * 128 + 128 * 768 + 768 + attention + ffn + \
        768 * 768 + 768
    assert round(albert.num_parameters() / 1e6) == 12


@pytest.mark.parametrize("sharing", ["all", "attention", "ffn"])
def test_sharing_is_bert_with_copied_layers(sharing):
    """A shared model computes what BERT computes when the shared parts of every layer hold the same numbers."""
    config = AlbertConfig(vocab_size=V, embedding_size=None, hidden_size=H, num_hidden_layers=3, num_attention_heads=4,
                          intermediate_size=I, max_position_embeddings=P, sharing=sharing, hidden_act="gelu")
    torch.manual_seed(4)
    albert = AlbertModel(config).eval()
    bert = BertModel(minibert.BertConfig(**{f.name: getattr(config, f.name)
                                            for f in dataclasses.fields(minibert.BertConfig)})).eval()
    bert.load_state_dict(albert.state_dict())  # every layer's name is in both; shared ones repeat the numbers
    first, last = bert.encoder.layer[0], bert.encoder.layer[2]
    same_attention = torch.equal(first.attention.self.query.weight, last.attention.self.query.weight)
    same_ffn = torch.equal(first.intermediate.dense.weight, last.intermediate.dense.weight)
    expected = {"all": (True, True), "attention": (True, False), "ffn": (False, True)}[sharing]
    assert (same_attention, same_ffn) == expected
    batch = random_batch(V, 3, 10, T, seed=5)
    with torch.no_grad():
        assert_close(albert(**batch).last_hidden_state, bert(**batch).last_hidden_state, **TOL)


def test_a_shared_weight_gets_the_gradient_of_every_layer_that_uses_it():
    config = AlbertConfig(vocab_size=V, embedding_size=E, hidden_size=H, num_hidden_layers=3, num_attention_heads=4,
                          intermediate_size=I, max_position_embeddings=P)
    torch.manual_seed(6)
    albert = AlbertModel(config)
    assert albert.encoder.layer[0] is albert.encoder.layer[2]
    batch = random_batch(V, 2, 8, T, seed=7)
    albert(**batch).last_hidden_state.sum().backward()
    shared = albert.encoder.layer[0].intermediate.dense.weight.grad.clone()
    # the same sum, by hand: three unshared copies, gradients added
    unshared = AlbertModel(dataclasses.replace(config, sharing="none"))
    state = {k: v for k, v in albert.state_dict().items()}
    unshared.load_state_dict(state)
    unshared(**batch).last_hidden_state.sum().backward()
    by_hand = sum(unshared.encoder.layer[i].intermediate.dense.weight.grad for i in range(3))
    assert_close(shared, by_hand, atol=1e-5, rtol=1e-4)


def test_what_has_no_transformers_form_is_refused_clearly(tmp_path, transformers_lib):
    config = AlbertConfig(vocab_size=V, embedding_size=E, hidden_size=H, num_hidden_layers=2, num_attention_heads=4,
                          intermediate_size=I, max_position_embeddings=P, sharing="attention")
    with pytest.raises(ValueError, match="no transformers form"):
        AlbertModel(config).save_pretrained(tmp_path)
    assert not (tmp_path / "model.safetensors").exists()
    transformers_lib.AlbertConfig(**{**reference_config(transformers_lib).to_dict(), "inner_group_num": 2}) \
        .save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="inner_group_num"):
        AlbertModel.from_pretrained(tmp_path)
