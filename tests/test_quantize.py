"""Symmetric int8 by hand (minibert/smaller/quantize.py): hand-derived values, the rounding bound, the layer bound.

Lecture 1.2; run with `pytest -m smaller`.
"""
import pytest
import torch
from torch import nn
from torch.testing import assert_close

from minibert import BertConfig, BertModel
from minibert.smaller import AlbertConfig, AlbertModel
from minibert.smaller.quantize import (QuantizedEmbedding, QuantizedLinear, dequantize, int8_matmul,
                                       library_int8_available, linear_error_bound, quantize, quantize_modules,
                                       quantized_model, rounding_error, symmetric_scale)
from minibert.smaller.bench import bytes_on_disk
from reference import random_batch

pytestmark = pytest.mark.smaller
CONFIG = BertConfig(vocab_size=120, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=48,
                    max_position_embeddings=24, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)


def test_per_tensor_by_hand():
    x = torch.tensor([0.5, -1.27, 0.004, 1.0])
    scale = symmetric_scale(x)                      # 1.27 / 127 = 0.01
    assert_close(scale, torch.tensor(0.01))
    q = quantize(x, scale)
    assert q.dtype == torch.int8 and q.tolist() == [50, -127, 0, 100]  # 0.004 / 0.01 = 0.4 rounds to 0
    assert_close(dequantize(q, scale), torch.tensor([0.5, -1.27, 0.0, 1.0]))
    assert_close(rounding_error(x), torch.tensor([0.0, 0.0, 0.004, 0.0]), atol=1e-7, rtol=0)


def test_per_row_keeps_small_rows_fine():
    """Row 2 is 50x smaller than row 1. Per tensor it gets row 1's step 1/127: -0.005 * 127 = -0.635 -> -1, an error
    of 0.00287. Per row its own step 0.02/127: -0.005 / (0.02/127) = -31.75 -> -32, an error of 0.0000394."""
    x = torch.tensor([[1.0, 0.5], [0.02, -0.005]])
    assert quantize(x, symmetric_scale(x)).tolist() == [[127, 64], [3, -1]]  # 0.5 * 127 = 63.5: ties go to even
    assert quantize(x, symmetric_scale(x, per_row=True)).tolist() == [[127, 64], [127, -32]]
    assert_close(rounding_error(x)[1, 1], torch.tensor(-0.005 + 1 / 127), atol=1e-7, rtol=0)
    assert_close(rounding_error(x, per_row=True)[1, 1], torch.tensor(-0.005 + 32 * 0.02 / 127), atol=1e-8, rtol=0)


@pytest.mark.parametrize("per_row", [False, True])
def test_rounding_error_is_at_most_half_a_step(per_row):
    x = torch.randn(64, 48, generator=torch.Generator().manual_seed(0)) * torch.logspace(-3, 1, 48)
    scale = symmetric_scale(x, per_row)
    error = rounding_error(x, per_row).abs()
    assert (error <= scale / 2 * (1 + 1e-5)).all()
    assert (error > scale / 2 * 0.95).any()  # and the bound is reached: it is not loose


def test_int8_matmul_is_exact():
    g = torch.Generator().manual_seed(1)
    a = torch.randint(-127, 128, (37, 1536), generator=g, dtype=torch.int8)
    b = torch.randint(-127, 128, (29, 1536), generator=g, dtype=torch.int8)  # sums up to 127 * 127 * 1536 > 2^24
    assert torch.equal(int8_matmul(a, b).long(), a.long() @ b.long().t())


@pytest.mark.parametrize("per_channel", [True, False])
def test_quantized_linear_within_the_derived_bound(per_channel):
    """The output is s_x s_w^T (q_x q_w^T) + b exactly (to float32 rounding), and within the bound of the two rounding
    errors, |y~ - y|_tj <= s_x,t / 2 sum_k |W~_jk| + s_w,j / 2 sum_k |x_tk| (derivation in quantize.py)."""
    torch.manual_seed(2)
    linear = nn.Linear(64, 24)
    x = torch.randn(5, 7, 64) * torch.linspace(0.1, 3, 7)[:, None]  # tokens of very different sizes
    layer = QuantizedLinear(linear, per_channel=per_channel)
    assert layer.weight_int8.dtype == torch.int8 and layer.weight_int8.shape == (24, 64)
    y, y_quantized = linear(x).detach(), layer(x)
    rows = x.reshape(-1, 64)
    x_scale = symmetric_scale(rows, per_row=True)
    by_formula = dequantize(quantize(rows, x_scale), x_scale) @ dequantize(layer.weight_int8, layer.weight_scale).t()
    assert_close(y_quantized.reshape(-1, 24), by_formula + linear.bias.detach(), atol=1e-5, rtol=1e-5)
    error = (y_quantized - y).abs().reshape(-1, 24)
    bound = linear_error_bound(layer, rows)
    assert (error <= bound + 1e-6).all()
    assert bound.max() < 0.2 * y.abs().max()  # a bound that says something: well below the outputs themselves


def test_quantize_modules_replaces_every_linear_and_embedding():
    torch.manual_seed(3)
    model = BertModel(CONFIG).eval()
    linears = sum(type(m) is nn.Linear for m in model.modules())
    quantized = quantized_model(model, "int8")
    assert not any(type(m) in (nn.Linear, nn.Embedding) for m in quantized.modules())
    assert sum(type(m) is QuantizedLinear for m in quantized.modules()) == linears == 2 * 6 + 1
    assert sum(type(m) is QuantizedEmbedding for m in quantized.modules()) == 3
    int8_numbers = sum(b.numel() for name, b in quantized.named_buffers() if name.endswith("weight_int8"))
    assert int8_numbers == sum(p.numel() for name, p in model.named_parameters()
                               if p.dim() == 2)  # every matrix and table, once
    batch = random_batch(120, 3, 12, 2)
    with torch.no_grad():
        reference, mine = model(**batch).last_hidden_state, quantized(**batch).last_hidden_state
    real = batch["attention_mask"].bool()  # the padding is zeros in both (the fast path)
    assert torch.cosine_similarity(reference[real], mine[real], dim=-1).min() > 0.999


def test_shared_layers_stay_shared():
    config = AlbertConfig(vocab_size=120, embedding_size=16, hidden_size=32, num_hidden_layers=3,
                          num_attention_heads=4, intermediate_size=48, max_position_embeddings=24)
    quantized = quantize_modules(AlbertModel(config).eval())
    layers = quantized.encoder.layer
    assert layers[0] is layers[2] and type(layers[1].intermediate.dense) is QuantizedLinear


def test_bfloat16_halves_the_weights():
    model = BertModel(CONFIG).eval()
    half = quantized_model(model, "bfloat16")
    assert {p.dtype for p in half.parameters()} == {torch.bfloat16}
    assert {p.dtype for p in model.parameters()} == {torch.float32}  # the original is left alone
    with torch.no_grad():
        batch = random_batch(120, 2, 10, 2, seed=4)
        assert_close(half(**batch).last_hidden_state.float(), model(**batch).last_hidden_state, atol=0.1, rtol=0)


def test_library_int8_works_or_says_why():
    reason = library_int8_available()
    if reason is not None:  # a torch without torch.ao.quantization: the message says what to do
        assert "torchao" in reason
        with pytest.raises(RuntimeError, match="hand-written path"):
            quantized_model(BertModel(CONFIG), "int8-library")
        return
    torch.manual_seed(5)
    model = BertModel(CONFIG).eval()
    library = quantized_model(model, "int8-library")
    assert not any(type(m) is nn.Linear for m in library.modules())
    with torch.no_grad():
        batch = random_batch(120, 3, 12, 2, seed=6)
        reference, theirs = model(**batch).last_hidden_state, library(**batch).last_hidden_state
    real = batch["attention_mask"].bool()
    assert torch.cosine_similarity(reference[real], theirs[real], dim=-1).min() > 0.99


def test_unknown_kind_is_refused():
    with pytest.raises(ValueError, match="int8-library"):
        quantized_model(BertModel(CONFIG), "int4")


def test_int8_takes_a_quarter_of_the_bytes_and_sharing_is_saved_once():
    """1 byte a number instead of 4, plus one float scale per row; a shared layer is written once."""
    config = BertConfig(vocab_size=2000, hidden_size=128, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=512, max_position_embeddings=64)
    model = BertModel(config).eval()
    ratio = bytes_on_disk(quantized_model(model, "int8")) / bytes_on_disk(model)
    assert 0.25 < ratio < 0.28
    assert 0.49 < bytes_on_disk(quantized_model(model, "bfloat16")) / bytes_on_disk(model) < 0.51
    sizes = dict(vocab_size=2000, embedding_size=64, hidden_size=128, num_attention_heads=2, intermediate_size=512,
                 max_position_embeddings=64)
    six_shared = AlbertModel(AlbertConfig(num_hidden_layers=6, **sizes))
    one = AlbertModel(AlbertConfig(num_hidden_layers=1, **sizes))
    assert abs(bytes_on_disk(six_shared) / bytes_on_disk(one) - 1) < 0.01


def test_the_benchmark_bookkeeping(tmp_path):
    """`python -m minibert bench smaller` on a tiny checkpoint and five sentences: the numbers it derives."""
    import json

    from minibert.smaller import bench

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "good", "bad", "film", "it", "is", "."]
    folder, data = tmp_path / "tiny", tmp_path / "data"
    torch.manual_seed(7)
    BertModel(BertConfig(**{**CONFIG.__dict__, "vocab_size": len(vocab)})).save_pretrained(folder)
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    (data / "glue-sst2").mkdir(parents=True)
    sentences = ["it is a good film .", "bad", "a bad , bad film", "good", "it is good ."]  # a word a token
    (data / "glue-sst2" / "dev.tsv").write_text("sentence\tlabel\n" + "".join(f"{s}\t1\n" for s in sentences))
    results = bench.run(folder, data, bench.Settings(sentences=5, batch_size=2, repeats=1))
    rows = {row["name"]: row for row in results["rows"]}
    kinds = ("float32", "bfloat16", "int8", "int8-library")
    assert set(rows) | set(results["missing"]) == {f"MiniLM {kind}" for kind in kinds} | {bench.ALBERT_NAME}
    assert results["tokens_per_run"] == sum(len(s.split()) + 2 for s in sentences)  # and [CLS], [SEP]
    assert rows["MiniLM float32"]["max_abs_diff"] == 0 and rows["MiniLM float32"]["min_cosine"] > 0.9999
    assert rows["MiniLM int8"]["parameters"] == rows["MiniLM float32"]["parameters"] == BertModel(
        BertConfig(**{**CONFIG.__dict__, "vocab_size": len(vocab)})).num_parameters()
    assert rows["MiniLM int8"]["bytes_on_disk"] < rows["MiniLM bfloat16"]["bytes_on_disk"] < \
        rows["MiniLM float32"]["bytes_on_disk"]
    json.dumps(results)  # what the command writes
    assert "MiniLM int8" in bench.format_table(results)
    bench.plot(results, tmp_path / "plot.png")
    assert (tmp_path / "plot.png").stat().st_size > 10_000
