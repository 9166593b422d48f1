"""Quantization (Q8BERT, Zafrir et al. 2019): weights and activations as 8-bit integers, by hand; then a library.

Lecture 1.2 (making BERT smaller: network compression); notebook notebooks/05_smaller.ipynb.

Symmetric int8: a tensor x is stored as integers q in [-127, 127] and one float scale s,
    s = max|x| / 127,   q = round(x / s),   x ~ s q,   |x - s q| <= s / 2  (the rounding error).
The scale is per tensor, or per row (`per_row=True`): per output channel for a weight (out, in), per token for an
activation (tokens, in). A row with small numbers then keeps its own fine grid instead of the largest row's.

A Linear layer y = x W^T + b becomes, with x ~ s_x q_x (activations, quantized on the fly: dynamic quantization)
and W ~ s_w q_w (weights, quantized once):
    y ~ s_x s_w^T * (q_x q_w^T) + b,
where q_x q_w^T is a matmul of int8 numbers summed in int32: exact, and on a CPU with int8 instructions faster
than float32. The error of one output, from the two rounding errors (`linear_error_bound`):
    y~ - y = (x~ - x) W~^T + x (W~ - W)^T,  so  |y~ - y|_tj <= s_x,t / 2 * sum_k |W~_jk|  +  s_w,j / 2 * sum_k |x_tk|.

Three ways to run a model smaller (`quantized_model`): "int8" these modules (QuantizedLinear, QuantizedEmbedding),
"int8-library" PyTorch's `torch.ao.quantization.quantize_dynamic` (fbgemm / x86 kernels; deprecated in favour
of torchao, which is not installed here, but still working in torch 2.13 and faster than float32 on an AVX-512
CPU), and "bfloat16" (every weight in 16 bits: float32's range, 8 bits of mantissa).
"""
from __future__ import annotations

import copy
import warnings

import torch
import torch.nn.functional as F
from torch import Tensor, nn

INT8_MAX = 127  # symmetric: -127..127, so that 0 is exact and q and -q both exist (-128 stays unused)
KINDS = ("float32", "bfloat16", "int8", "int8-library")


def symmetric_scale(x: Tensor, per_row: bool = False) -> Tensor:
    """s = max|x| / 127, for the whole tensor (a 0-d tensor) or for each row (shape (..., 1))."""
    largest = x.abs().amax(dim=-1, keepdim=True) if per_row else x.abs().amax()
    return largest.float().clamp(min=torch.finfo(torch.float32).tiny) / INT8_MAX  # a row of zeros: any scale works


def quantize(x: Tensor, scale: Tensor) -> Tensor:
    """round(x / s), clipped to [-127, 127], as int8."""
    return (x / scale).round_().clamp_(-INT8_MAX, INT8_MAX).to(torch.int8)  # in place: one new tensor, not three


def dequantize(q: Tensor, scale: Tensor) -> Tensor:
    return q.float() * scale


def rounding_error(x: Tensor, per_row: bool = False) -> Tensor:
    """x - dequantize(quantize(x)): at most half a step, s / 2, in every entry."""
    scale = symmetric_scale(x, per_row)
    return x - dequantize(quantize(x, scale), scale)


def int8_matmul(a: Tensor, b_transposed: Tensor) -> Tensor:
    """a (t k) int8 times b (n k) int8, transposed: (t n) int32, exact. torch._int_mm is PyTorch's int8 GEMM (the
    one torchao calls); where it refuses the shapes, the same sum in int32 on the slow generic path."""
    try:
        return torch._int_mm(a, b_transposed.t())
    except RuntimeError:
        return a.to(torch.int32) @ b_transposed.to(torch.int32).t()


class QuantizedLinear(nn.Module):
    """nn.Linear with int8 weights (per output channel, or per tensor) and activations quantized per token on the
    fly. Stores `weight_int8` (out, in), `weight_scale` (out, 1) or (), and the float bias."""

    def __init__(self, linear: nn.Linear, per_channel: bool = True):
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        weight = linear.weight.detach().float()
        self.register_buffer("weight_scale", symmetric_scale(weight, per_row=per_channel))
        self.register_buffer("weight_int8", quantize(weight, self.weight_scale))
        self.register_buffer("bias", None if linear.bias is None else linear.bias.detach().float().clone())

    def forward(self, x: Tensor) -> Tensor:
        rows = x.reshape(-1, self.in_features).float()   # (t in): every token of the batch, one per row
        x_scale = symmetric_scale(rows, per_row=True)      # t 1: each token its own scale, computed now
        accumulated = int8_matmul(quantize(rows, x_scale), self.weight_int8)  # t out, int32, exact
        y = accumulated.float().mul_(x_scale).mul_(self.weight_scale.reshape(1, -1))  # s_x s_w^T (q_x q_w^T)
        if self.bias is not None:
            y += self.bias
        return y.reshape(*x.shape[:-1], self.out_features).to(x.dtype)

    def extra_repr(self) -> str:
        per = "channel" if self.weight_scale.dim() else "tensor"
        return f"in_features={self.in_features}, out_features={self.out_features}, int8 per {per}"


def linear_error_bound(layer: QuantizedLinear, x: Tensor) -> Tensor:
    """The bound above, for x (t in): |x W^T - QuantizedLinear(x) without bias| <= this (t out), entry by entry."""
    weight = dequantize(layer.weight_int8, layer.weight_scale)  # W~, what the layer multiplies
    x_scale = symmetric_scale(x, per_row=True)                  # t 1
    weight_scale = layer.weight_scale.reshape(1, -1)            # 1 out (or 1 1 per tensor)
    # y~ - y = (x~ - x) W~^T + x (W~ - W)^T, and each difference is at most half a step in each entry
    return x_scale / 2 * weight.abs().sum(-1) + weight_scale / 2 * x.abs().sum(-1, keepdim=True)


class QuantizedEmbedding(nn.Module):
    """nn.Embedding with each row stored as int8 with its own scale; a lookup dequantizes the rows it reads.
    MiniLM's token table is half its weights: left in float32, it would keep the model at two thirds of its bytes."""

    def __init__(self, embedding: nn.Embedding):
        super().__init__()
        weight = embedding.weight.detach().float()
        self.padding_idx = embedding.padding_idx
        self.register_buffer("weight_scale", symmetric_scale(weight, per_row=True))  # (vocab, 1)
        self.register_buffer("weight_int8", quantize(weight, self.weight_scale))

    def forward(self, ids: Tensor) -> Tensor:
        return F.embedding(ids, self.weight_int8).float() * F.embedding(ids, self.weight_scale)


def quantize_modules(model: nn.Module, per_channel: bool = True, embeddings: bool = True) -> nn.Module:
    """Replace, in place, every nn.Linear by a QuantizedLinear (and every nn.Embedding by a QuantizedEmbedding).
    A module used in several places (ALBERT's shared layers) is replaced by one quantized module."""
    replaced: dict[int, nn.Module] = {}
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if id(child) not in replaced:
                if type(child) is nn.Linear:
                    replaced[id(child)] = QuantizedLinear(child, per_channel)
                elif type(child) is nn.Embedding and embeddings:
                    replaced[id(child)] = QuantizedEmbedding(child)
            if id(child) in replaced:
                setattr(parent, name, replaced[id(child)])
    return model


def library_int8(model: nn.Module) -> nn.Module:
    """PyTorch's dynamic int8 quantization (Linear: int8 weights per channel, activations uint8 per tensor with a
    zero point, fbgemm / x86 kernels; Embedding: 8-bit rows). Raises RuntimeError, saying what to do, where this
    torch has none."""
    try:
        from torch.ao.quantization import (float_qparams_weight_only_qconfig, per_channel_dynamic_qconfig,
                                           quantize_dynamic)
        with warnings.catch_warnings():  # deprecated (torchao replaces it), still working in torch 2.13
            warnings.simplefilter("ignore")
            # weights per output channel, as the hand-written path (per tensor: min cosine 0.78 against 0.89 on
            # MiniLM); the activations stay per tensor, which is where this path loses to the hand-written one
            spec = {nn.Linear: per_channel_dynamic_qconfig, nn.Embedding: float_qparams_weight_only_qconfig}
            return quantize_dynamic(model, spec, dtype=torch.qint8)
    except (ImportError, AttributeError, RuntimeError, AssertionError) as err:
        raise RuntimeError(
            f"this torch {torch.__version__} has no working dynamic int8 quantization ({type(err).__name__}: {err}). "
            "torch.ao.quantization is deprecated and removed in newer releases; its successor is torchao "
            "(pip install torchao; torchao.quantization.quantize_(model, Int8DynamicActivationInt8WeightConfig())). "
            "The hand-written path, kind 'int8', needs neither.") from err


def quantized_model(model: nn.Module, kind: str) -> nn.Module:
    """A copy of `model` in `kind`: float32, bfloat16, int8 (this module's) or int8-library (PyTorch's)."""
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; choose one of {', '.join(KINDS)}.")
    copied = copy.deepcopy(model).eval()
    if kind == "bfloat16":
        return copied.to(torch.bfloat16)
    if kind == "int8":
        return quantize_modules(copied)
    if kind == "int8-library":
        return library_int8(copied)
    return copied


def library_int8_available() -> str | None:
    """None if `library_int8` works here, else the reason it does not."""
    try:
        library_int8(nn.Sequential(nn.Linear(2, 2)))
        return None
    except RuntimeError as err:
        return str(err)
