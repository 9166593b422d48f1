import pytest

from minibert import BertConfig

pytestmark = pytest.mark.embeddings


@pytest.mark.parametrize("name, layers, hidden, heads", [
    ("tiny", 2, 128, 2), ("mini", 4, 256, 4), ("small", 4, 512, 8), ("base", 12, 768, 12)])
def test_presets_have_the_published_sizes(name, layers, hidden, heads):
    config = BertConfig.preset(name)
    assert (config.num_hidden_layers, config.hidden_size, config.num_attention_heads) == (layers, hidden, heads)
    assert config.intermediate_size == 4 * hidden and config.head_dim == 64


def test_config_json_round_trip_ignores_fields_minibert_does_not_use(tmp_path):
    config = BertConfig.preset("mini", vocab_size=1234, hidden_act="gelu_new")
    config.to_json(tmp_path / "config.json")
    text = (tmp_path / "config.json").read_text()
    assert '"model_type": "bert"' in text and '"architectures": [\n    "BertModel"' in text
    assert BertConfig.from_json(tmp_path / "config.json") == config
    assert BertConfig.from_dict({**config.to_dict(), "gradient_checkpointing": False, "use_cache": True}) == config


@pytest.mark.parametrize("values, message", [
    (dict(hidden_size=100, num_attention_heads=3), "divisible"),
    (dict(hidden_act="swish2"), "minibert knows gelu"),
])
def test_impossible_configs_are_refused(values, message):
    with pytest.raises(ValueError, match=message):
        BertConfig(**values)


def test_relative_positions_are_refused_rather_than_silently_ignored():
    with pytest.raises(ValueError, match="absolute positions only"):
        BertConfig.from_dict({"position_embedding_type": "relative_key"})
