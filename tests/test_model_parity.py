"""BertModel agrees with transformers' BertModel: the argument that the teaching code is right.

Lecture 1.1; run with `pytest -m embeddings`.
"""
import pytest
import torch
from torch.testing import assert_close

from minibert import BertModel
from reference import random_batch, reference_batches

pytestmark = pytest.mark.embeddings
TOL = dict(atol=1e-5, rtol=0)  # float32, absolute: the 1e-5


def run_both(ours, theirs, batch, **flags):
    with torch.no_grad():
        return ours(**batch, **flags), theirs(**batch, **flags)


def assert_match_at_real_tokens(mine, theirs, real):
    """(b n ...) tensors: equal where real is True. Values at the padding are not compared: nothing reads them,
    and the fast path does not compute them (it returns zeros there: tests/test_fast_path.py)."""
    assert mine.shape == theirs.shape
    assert_close(mine[real], theirs[real], **TOL)


def assert_outputs_match(mine, ref, attention_mask):
    real = attention_mask.bool()
    assert_match_at_real_tokens(mine.last_hidden_state, ref.last_hidden_state, real)
    assert_close(mine.pooler_output, ref.pooler_output, **TOL)
    assert len(mine.hidden_states) == len(ref.hidden_states)
    for ours, theirs in zip(mine.hidden_states, ref.hidden_states):
        assert_match_at_real_tokens(ours, theirs, real)
    assert len(mine.attentions) == len(ref.attentions)
    for ours, theirs in zip(mine.attentions, ref.attentions):  # b h n m: the rows of real queries, every key
        assert_close(ours.transpose(1, 2)[real], theirs.transpose(1, 2)[real], **TOL)


@pytest.fixture(scope="module")
def real_models(checkpoint_dir, transformers_lib):
    """The textbook path (attn_implementation="eager"), which the notebooks and the exercises run."""
    ours = BertModel.from_pretrained(checkpoint_dir, attn_implementation="eager")
    theirs = transformers_lib.BertModel.from_pretrained(checkpoint_dir, attn_implementation="eager").eval()
    return ours, theirs


@pytest.mark.parametrize("kind", ["singles", "pairs"])
def test_real_weights_every_output_matches(real_models, checkpoint_dir, transformers_lib, kind):
    batch = dict(reference_batches(checkpoint_dir, transformers_lib)[kind])
    assert batch["attention_mask"].eq(0).any(), "the batch must contain padding to test the mask"
    mine, ref = run_both(*real_models, batch, output_hidden_states=True, output_attentions=True)
    assert mine.last_hidden_state.shape == (batch["input_ids"].shape[0], batch["input_ids"].shape[1], 384)
    assert_outputs_match(mine, ref, batch["attention_mask"])


def test_fast_path_matches_reference(real_models, checkpoint_dir, transformers_lib):
    """The default, fast path (model/fast/: the real tokens only, scaled_dot_product_attention one sequence at a
    time) must agree too."""
    batch = dict(reference_batches(checkpoint_dir, transformers_lib)["pairs"])
    fast = BertModel.from_pretrained(checkpoint_dir)
    assert fast.config.attn_implementation == "sdpa"
    mine, ref = run_both(fast, real_models[1], batch)
    assert mine.attentions is None and mine.hidden_states is None
    assert_match_at_real_tokens(mine.last_hidden_state, ref.last_hidden_state, batch["attention_mask"].bool())
    assert_close(mine.pooler_output, ref.pooler_output, **TOL)


@pytest.mark.parametrize("attention", ["eager", "sdpa"])
def test_parameter_gradients_match(checkpoint_dir, transformers_lib, attention):
    no_dropout = dict(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    ours = BertModel.from_pretrained(checkpoint_dir, attn_implementation=attention, **no_dropout).train()
    theirs = transformers_lib.BertModel.from_pretrained(
        checkpoint_dir, attn_implementation="eager", **no_dropout).train()
    batch = dict(reference_batches(checkpoint_dir, transformers_lib)["pairs"])
    probe = torch.randn(384, generator=torch.Generator().manual_seed(0))

    def loss_of(model):  # touches every real token's output and the pooler, as a task's loss would
        out = model(**batch)
        return (out.last_hidden_state @ probe)[batch["attention_mask"].bool()].square().mean() + out.pooler_output.sum()

    loss_of(ours).backward()
    loss_of(theirs).backward()
    their_params = dict(theirs.named_parameters())
    assert {name for name, _ in ours.named_parameters()} == set(their_params)
    for name, param in ours.named_parameters():
        reference = their_params[name].grad
        # Gradients here reach ~80, so "within 1e-5" is taken relative to the tensor's scale (at least 1).
        scale = max(1.0, reference.abs().max().item())
        difference = (param.grad - reference).abs().max().item()
        assert difference <= 1e-5 * scale, f"{name}: gradients differ by {difference:.3g} (scale {scale:.3g})"
        if name.endswith("attention.self.key.bias"):
            # softmax ignores a shift shared by all scores, and q.b_k shifts them all: no gradient, up to rounding
            assert param.grad.abs().max() < 1e-5 * scale


UNUSUAL_SIZES = dict(vocab_size=1000, hidden_size=96, num_hidden_layers=3, num_attention_heads=6,
                     intermediate_size=200, max_position_embeddings=40, type_vocab_size=3, layer_norm_eps=1e-7)


@pytest.mark.parametrize("activation", ["gelu", "gelu_new", "relu", "silu"])
def test_random_reference_with_unusual_sizes_loads_and_matches(tmp_path, transformers_lib, activation):
    """The loader reads the sizes from config.json instead of assuming MiniLM's."""
    torch.manual_seed(0)
    config = transformers_lib.BertConfig(hidden_act=activation, attn_implementation="eager", **UNUSUAL_SIZES)
    theirs = transformers_lib.BertModel(config, add_pooling_layer=True).eval()
    theirs.save_pretrained(tmp_path)
    ours = BertModel.from_pretrained(tmp_path, attn_implementation="eager")
    assert ours.config.num_attention_heads == 6 and ours.config.type_vocab_size == 3
    assert ours.config.hidden_act == activation
    batch = random_batch(1000, batch=3, length=40, type_vocab_size=3)
    mine, ref = run_both(ours, theirs, batch, output_hidden_states=True, output_attentions=True)
    assert_outputs_match(mine, ref, batch["attention_mask"])


def test_any_padding_pattern_matches(tmp_path, transformers_lib):
    """Left padding, a hole in the middle, a sequence of padding only: the textbook path and the fast path (which
    packs the real tokens: model/fast/packing.py) follow the mask wherever its zeros are."""
    torch.manual_seed(3)
    theirs = transformers_lib.BertModel(transformers_lib.BertConfig(attn_implementation="eager", **UNUSUAL_SIZES))
    theirs.eval().save_pretrained(tmp_path)
    ours = BertModel.from_pretrained(tmp_path)
    batch = random_batch(1000, batch=4, length=12, type_vocab_size=3, seed=5)
    batch["attention_mask"] = torch.tensor([[1] * 12, [0] * 3 + [1] * 9, [1, 1, 1, 0, 0, 1, 1, 1, 1, 1, 0, 0], [0] * 12])
    real = batch["attention_mask"].bool()
    for attention in ("sdpa", "eager"):
        ours.config.attn_implementation = attention
        mine, ref = run_both(ours, theirs, batch)
        assert_match_at_real_tokens(mine.last_hidden_state, ref.last_hidden_state, real)
        assert_close(mine.pooler_output[[0, 2]], ref.pooler_output[[0, 2]], **TOL)  # the rows whose [CLS] is real


def test_pytorch_model_bin_with_legacy_names_loads(tmp_path, transformers_lib):
    """Old checkpoints: pytorch_model.bin, a `bert.` prefix, LayerNorm gamma/beta and a saved position_ids."""
    torch.manual_seed(1)
    config = transformers_lib.BertConfig(**UNUSUAL_SIZES)
    theirs = transformers_lib.BertModel(config).eval()
    state = {}
    for key, value in theirs.state_dict().items():
        key = key.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta")
        state["bert." + key] = value
    state["bert.embeddings.position_ids"] = torch.arange(40)[None]
    state["cls.seq_relationship.weight"] = torch.zeros(2, 96)  # a pre-training head BertModel does not use
    torch.save(state, tmp_path / "pytorch_model.bin")
    config.to_json_file(tmp_path / "config.json")
    ours = BertModel.from_pretrained(tmp_path)
    batch = random_batch(1000, batch=2, length=16, type_vocab_size=3, seed=3)
    mine, ref = run_both(ours, theirs, batch)
    assert_match_at_real_tokens(mine.last_hidden_state, ref.last_hidden_state, batch["attention_mask"].bool())


def test_saved_folder_loads_in_transformers(tmp_path, transformers_lib):
    torch.manual_seed(2)
    from minibert import BertConfig
    ours = BertModel(BertConfig(**UNUSUAL_SIZES, hidden_act="gelu_new")).eval()
    ours.save_pretrained(tmp_path)
    theirs = transformers_lib.BertModel.from_pretrained(tmp_path, attn_implementation="eager").eval()
    batch = random_batch(1000, batch=2, length=24, type_vocab_size=3, seed=4)
    mine, ref = run_both(ours, theirs, batch, output_attentions=True)
    assert_match_at_real_tokens(mine.last_hidden_state, ref.last_hidden_state, batch["attention_mask"].bool())
    assert_close(mine.pooler_output, ref.pooler_output, **TOL)
