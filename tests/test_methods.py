"""The ways to fine-tune (minibert/methods/): each would fail here if its mechanism were wrong.

Lecture 2.3; run with `pytest -m finetuning`.
"""
import pytest
import torch
from torch.testing import assert_close

from minibert import BertConfig, BertModel
from minibert.methods import (METHODS, apply, count_parameters, load_trained, merge, save_trained, unmerge)
from minibert.methods.weighted import ScalarMix
from reference import random_batch

pytestmark = pytest.mark.finetuning
H, L, I, V, P = 32, 3, 48, 120, 24  # hidden, layers, intermediate, vocabulary, positions
CONFIG = BertConfig(vocab_size=V, hidden_size=H, num_hidden_layers=L, num_attention_heads=4, intermediate_size=I,
                    max_position_embeddings=P, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)


class TinyClassifier(torch.nn.Module):
    """A task model in transformers' shape: `bert` plus a head outside it."""
    base_model_prefix = "bert"

    def __init__(self, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.bert = BertModel(CONFIG)
        self.classifier = torch.nn.Linear(H, 2)

    def forward(self, input_ids, attention_mask=None, token_type_ids=None):
        return self.classifier(self.bert(input_ids, attention_mask, token_type_ids).pooler_output)


def batch(seed=0):
    return random_batch(V, batch=4, length=12, type_vocab_size=2, seed=seed)


def outputs(model, seed=0):
    model.eval()
    with torch.no_grad():
        return model.bert(**batch(seed)).last_hidden_state[batch(seed)["attention_mask"].bool()]


def train_steps(model, steps=3):
    model.train()
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
    labels = torch.tensor([0, 1, 1, 0])
    for step in range(steps):
        loss = torch.nn.functional.cross_entropy(model(**batch(step)), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


@pytest.mark.parametrize("method", [m for m in METHODS if m != "full"])
def test_frozen_base_weights_stay_bit_identical(method):
    model = TinyClassifier()
    before = [(name, p, p.detach().clone()) for name, p in model.bert.named_parameters()]  # the same tensors
    apply(model, method)
    train_steps(model)
    trains_in_encoder = {"adapter": ("LayerNorm",), "bitfit": ("bias",)}.get(method, ())
    changed = [name for name, p, old in before if not torch.equal(p, old)]
    if trains_in_encoder:
        assert changed, "the method's own encoder weights must have trained"
    for name in changed:
        assert any(part in name for part in trains_in_encoder), f"{method}: frozen weight {name} changed"
    head = model.classifier.weight
    assert head.requires_grad


def test_full_finetuning_trains_everything():
    model = apply(TinyClassifier(), "full")
    trainable, total = count_parameters(model)
    assert trainable == total


def test_trainable_counts_equal_their_formulas():
    head = H * 2 + 2
    layer_norms = (2 * L + 1) * 2 * H  # two per layer and the embeddings', weight and bias
    counts = {m: count_parameters(apply(TinyClassifier(), m, **({"r": 4} if m == "lora" else {})))[0]
              for m in METHODS if m != "prefix"}
    assert counts["frozen"] == head
    assert counts["lora"] == head + L * 2 * 4 * (H + H)                    # query and value: r (in + out)
    assert counts["adapter"] == head + layer_norms + L * 2 * (2 * H * 64 + 64 + H)  # two bottlenecks of 64
    assert counts["weighted"] == head + (L + 1) + 1                         # a weight per layer, and gamma
    biases = (L * (4 * H + I + H) + L * 2 * H + H  # q k v o, ffn in/out, the layers' LayerNorms, the pooler
              + H)                                 # the embeddings' LayerNorm
    assert counts["bitfit"] == head + biases
    pfeiffer = count_parameters(apply(TinyClassifier(), "adapter", placement="pfeiffer", bottleneck=8))[0]
    assert pfeiffer == head + layer_norms + L * (2 * H * 8 + 8 + H)
    prefix = count_parameters(apply(TinyClassifier(), "prefix", num_virtual_tokens=5, projection_size=16))[0]
    assert prefix == head + 5 * H + (H * 16 + 16) + (16 * L * 2 * H + L * 2 * H)


def test_lora_starts_as_the_base_model_and_merges_exactly():
    base = TinyClassifier()
    reference = outputs(base)
    model = apply(TinyClassifier(), "lora", r=4, alpha=8)
    assert_close(outputs(model), reference, atol=0, rtol=0)  # B = 0: the very same numbers
    train_steps(model)
    trained = outputs(model)
    assert not torch.allclose(trained, reference, atol=1e-4)
    query = model.bert.encoder.layer[0].attention.self.query
    weight_before = query.weight.clone()
    merge(model)
    assert_close(outputs(model), trained, atol=1e-5, rtol=0)      # W + s B A computes the same
    assert_close(query.weight, weight_before + query.delta_weight())
    unmerge(model)
    assert torch.equal(query.weight, weight_before)               # exactly the frozen weight again
    assert_close(outputs(model), trained, atol=1e-6, rtol=0)


def test_adapters_start_near_the_identity():
    """Weights drawn with std 1e-3: each adapter adds at most ~1e-4 here, so the model's outputs stay within 1e-2 of
    the base model's (after LayerNorms that rescale by about 1/std of the residual stream)."""
    reference = outputs(TinyClassifier())
    model = apply(TinyClassifier(), "adapter", bottleneck=16)
    difference = (outputs(model) - reference).abs().max().item()
    assert 0 < difference < 1e-2


def test_layer_weights_are_a_distribution_and_mix_the_layers():
    mix = ScalarMix(4)
    with torch.no_grad():
        mix.weights.copy_(torch.tensor([0.0, 1.0, -2.0, 3.0]))
        mix.gamma.fill_(2.0)
    weights = mix.layer_weights()
    assert_close(weights.sum(), torch.tensor(1.0))
    assert (weights > 0).all()
    layers = tuple(torch.full((1, 1, 2), float(i)) for i in range(4))
    assert_close(mix(layers), 2.0 * (weights * torch.arange(4.0)).sum().expand(1, 1, 2))
    model = apply(TinyClassifier(), "weighted")
    hidden = model.bert(**batch()).hidden_states
    equal_shares = torch.stack(hidden).mean(0)  # weights start at zero: softmax gives 1/(L+1) each
    assert_close(model.bert(**batch()).last_hidden_state, equal_shares, atol=1e-6, rtol=0)


def test_prefix_positions_are_seen_by_every_token():
    model = apply(TinyClassifier(), "prefix", num_virtual_tokens=3, projection_size=8)
    model.eval()
    ids = batch()["input_ids"][:1]
    out = model.bert(ids, output_attentions=True)
    attention = out.attentions[0]  # b h n (p + n)
    assert attention.shape[-1] == 3 + ids.shape[1]
    assert (attention[..., :3].sum(-1) > 0).all()
    # the mask grows by the prefix on the left: a padded batch gives each sequence what it gets alone
    padded = batch()
    alone = model.bert(padded["input_ids"][1:2, :9], token_type_ids=padded["token_type_ids"][1:2, :9])
    padded["attention_mask"][1, 9:] = 0
    together = model.bert(**padded).last_hidden_state[1, :9]
    assert_close(together, alone.last_hidden_state[0], atol=1e-5, rtol=0)
    # merged (the MLP computed away), it computes the same
    before = model.bert(ids).last_hidden_state
    merge(model)
    assert_close(model.bert(ids).last_hidden_state, before, atol=1e-6, rtol=0)


@pytest.mark.parametrize("method", ["lora", "adapter", "bitfit", "weighted", "prefix", "frozen"])
def test_saving_writes_only_what_trained_and_loading_restores_it(tmp_path, method):
    model = apply(TinyClassifier(), method)
    train_steps(model, steps=2)
    if method == "prefix":
        merge(model)
    model.eval()
    expected = model(**batch(5))
    save_trained(model, tmp_path)
    stored = (tmp_path / "method.safetensors").stat().st_size
    trainable, total = count_parameters(model)
    assert stored < 4 * trainable + 10_000 and trainable < total / 2
    again = load_trained(TinyClassifier(), tmp_path).eval()  # the same base weights (seed 0), a fresh head
    assert_close(again(**batch(5)), expected, atol=1e-6, rtol=0)
    with pytest.raises(FileExistsError):
        save_trained(model, tmp_path)


def test_unknown_method_and_double_apply_are_refused():
    with pytest.raises(ValueError, match="unknown method 'lorra'"):
        apply(TinyClassifier(), "lorra")
    model = apply(TinyClassifier(), "lora")
    with pytest.raises(ValueError, match="already has 'lora'"):
        apply(model, "adapter")
