"""Loading and saving Hugging Face folders: what happens when a file is missing, corrupt or does not fit.

Lecture 1.1; run with `pytest -m embeddings`.
"""
import json
from pathlib import Path

import pytest
import torch
from torch.testing import assert_close

from minibert import BertConfig, BertModel
from minibert.checkpoint import CheckpointMismatchError

pytestmark = pytest.mark.embeddings
SMALL = dict(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
             max_position_embeddings=12)


@pytest.fixture
def saved(tmp_path):
    torch.manual_seed(0)
    model = BertModel(BertConfig(**SMALL)).eval()
    folder = tmp_path / "model"
    model.save_pretrained(folder)
    return model, folder


def test_round_trip_keeps_every_weight(saved):
    model, folder = saved
    loaded = BertModel.from_pretrained(folder)
    assert loaded.config == model.config
    for (name, ours), (_, theirs) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert_close(ours, theirs, rtol=0, atol=0, msg=name)
    assert not loaded.training  # dropout off after loading, as in transformers


def test_missing_folder_and_missing_weights_say_what_is_needed(tmp_path, saved):
    with pytest.raises(FileNotFoundError, match="config.json"):
        BertModel.from_pretrained(tmp_path / "nowhere")
    _, folder = saved
    (folder / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="model.safetensors or pytorch_model.bin"):
        BertModel.from_pretrained(folder)


def test_corrupt_weights_are_reported_not_crashed_on(saved):
    _, folder = saved
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])  # a download cut short
    with pytest.raises(ValueError, match="corrupt, incomplete"):
        BertModel.from_pretrained(folder)


class NotWeights:  # torch.load(weights_only=True) must refuse to unpickle arbitrary objects
    pass


def test_pickle_that_is_not_plain_weights_is_refused(saved):
    _, folder = saved
    (folder / "model.safetensors").unlink()
    torch.save({"payload": NotWeights()}, folder / "pytorch_model.bin")
    with pytest.raises(ValueError, match="refused to read the weights") as err:
        BertModel.from_pretrained(folder)
    assert "NotWeights" in str(err.value)  # says what in the file was refused
    # PyTorch's own message advises weights_only=False, which would run the file's code: never passed on
    assert "weights_only" not in str(err.value) and err.value.__cause__ is None


class RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):  # what a malicious checkpoint does: unpickling calls a function of its choice
        return (Path.touch, (self.marker,))


def test_pickle_that_would_run_code_is_refused_without_running_it(saved, tmp_path):
    import pickle
    _, folder = saved
    (folder / "model.safetensors").unlink()
    marker = tmp_path / "the code ran"
    (folder / "pytorch_model.bin").write_bytes(pickle.dumps({"weight": RunsCode(marker)}))
    with pytest.raises(ValueError, match="could run code") as err:
        BertModel.from_pretrained(folder)
    assert not marker.exists()
    assert "weights_only" not in str(err.value) and "trust" not in str(err.value)


def test_a_pickle_that_holds_a_list_is_not_a_state_dict(saved):
    model, folder = saved
    (folder / "model.safetensors").unlink()
    torch.save(list(model.state_dict().values()), folder / "pytorch_model.bin")
    with pytest.raises(ValueError, match=r"pytorch_model.bin holds a list, not a state dict .*model.state_dict"):
        BertModel.from_pretrained(folder)


def test_a_sharded_checkpoint_with_a_broken_index_names_it(saved):
    _, folder = saved
    (folder / "model.safetensors").rename(folder / "model-00001-of-00001.safetensors")
    (folder / "model.safetensors.index.json").write_text("{\"metadata\": {}}")
    with pytest.raises(ValueError, match=r"model.safetensors.index.json is not a weight index .*weight_map"):
        BertModel.from_pretrained(folder)


def test_corrupt_config_is_reported(saved):
    _, folder = saved
    (folder / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        BertModel.from_pretrained(folder)


def test_weights_of_another_size_list_names_and_shapes(saved):
    _, folder = saved
    config = json.loads((folder / "config.json").read_text())
    config["vocab_size"] = 60  # config from one model, weights from another
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointMismatchError) as err:
        BertModel.from_pretrained(folder)
    message = str(err.value)
    assert "embeddings.word_embeddings.weight (50, 16) vs (60, 16)" in message
    assert "vocabulary" in message and "hidden_size" not in message


def test_a_config_whose_hidden_size_does_not_fit_blames_the_config_not_the_vocabulary(saved):
    _, folder = saved
    config = json.loads((folder / "config.json").read_text())
    config.update(hidden_size=32, intermediate_size=64)
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointMismatchError) as err:
        BertModel.from_pretrained(folder)
    message = str(err.value)
    assert "hidden_size is 32 in config.json but 16 in the weights" in message
    assert "intermediate_size is 64 in config.json but 32 in the weights" in message
    assert "vocabulary" not in message
    # 1 layer: 16 weights of each layer + 5 of the embeddings + 2 of the pooler, all of another shape
    assert "wrong shape, checkpoint vs model (23): " in message and "... and 3 more" in message


def test_a_config_with_more_layers_than_the_weights_says_so(saved):
    _, folder = saved
    config = json.loads((folder / "config.json").read_text())
    config["num_hidden_layers"] = 3
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointMismatchError) as err:
        BertModel.from_pretrained(folder)
    message = str(err.value)
    assert "num_hidden_layers is 3 in config.json but 1 in the weights" in message
    assert "missing from the checkpoint (32): " in message and "... and 12 more" in message


def test_a_vocabulary_smaller_than_the_embedding_table_loads_with_a_warning(saved):
    model, folder = saved
    (folder / "vocab.txt").write_text("".join(f"tok{i}\n" for i in range(40)))
    with pytest.warns(UserWarning, match=r"vocab.txt has 40 tokens but the word-embedding table has 50 rows: the "
                                         r"tokenizer never produces ids 40 to 49"):
        loaded = BertModel.from_pretrained(folder)
    assert_close(loaded.embeddings.word_embeddings.weight, model.embeddings.word_embeddings.weight, rtol=0, atol=0)


def test_missing_and_unexpected_weights_are_listed(saved):
    from safetensors.torch import load_file, save_file
    _, folder = saved
    state = load_file(folder / "model.safetensors")
    del state["pooler.dense.bias"]
    state["encoder.layer.7.output.dense.weight"] = torch.zeros(2, 2)
    save_file(state, folder / "model.safetensors")
    with pytest.raises(CheckpointMismatchError) as err:
        BertModel.from_pretrained(folder)
    assert "missing from the checkpoint (1): pooler.dense.bias (16,)" in str(err.value)
    assert "in the checkpoint but not in the model (1): encoder.layer.7.output.dense.weight" in str(err.value)


def test_vocab_larger_than_the_embedding_table_is_refused(saved):
    _, folder = saved
    (folder / "vocab.txt").write_text("\n".join(f"tok{i}" for i in range(80)) + "\n")
    with pytest.raises(ValueError, match="vocab.txt has 80 tokens but config.json says vocab_size=50"):
        BertModel.from_pretrained(folder)


def test_saving_never_overwrites_silently(saved):
    model, folder = saved
    before = (folder / "model.safetensors").read_bytes()
    with pytest.raises(FileExistsError, match="overwrite=True"):
        model.save_pretrained(folder)
    assert (folder / "model.safetensors").read_bytes() == before
    with torch.no_grad():
        model.pooler.dense.bias.fill_(1.0)
    model.save_pretrained(folder, overwrite=True)
    assert BertModel.from_pretrained(folder).pooler.dense.bias.eq(1.0).all()


def test_interrupted_save_leaves_the_old_checkpoint_intact(saved, monkeypatch):
    import safetensors.torch
    model, folder = saved
    before = (folder / "model.safetensors").read_bytes()

    def crash(tensors, filename, metadata=None):
        with open(filename, "wb") as half_written:
            half_written.write(b"partial")
        raise KeyboardInterrupt  # the user pressed Ctrl-C in the middle of the write

    monkeypatch.setattr(safetensors.torch, "save_file", crash)
    with pytest.raises(KeyboardInterrupt):
        model.save_pretrained(folder, overwrite=True)
    assert (folder / "model.safetensors").read_bytes() == before
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]  # no temp file left


def test_the_next_save_removes_what_killed_saves_left(saved):
    model, folder = saved
    leftovers = [folder / ".model.safetensors.k3j_9x2a.tmp", folder / ".model.safetensors.0abcdefg.tmp"]
    for path in leftovers:
        path.write_bytes(b"half a checkpoint")
    other = folder / ".config.json.zz11yy22.tmp"  # another file's leftover: the next save of config.json takes it
    other.write_bytes(b"{")
    notes = folder / ".my notes.tmp"  # not the pattern atomic_path writes: never touched
    notes.write_bytes(b"mine")
    model.save_pretrained(folder, overwrite=True)
    assert not any(p.exists() for p in [*leftovers, other])
    assert notes.read_bytes() == b"mine"
