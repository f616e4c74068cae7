"""Workload builders: Stream parses them, their counts match the closed forms, regeneration is byte-identical."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
from stream.frontends import load_workload

from stream_trapti.errors import ConfigError
from stream_trapti.workloads.analytics import (
    graph_input_bytes,
    graph_mac_count,
    graph_parameter_count,
    kv_cache_bytes,
    mac_count,
    model_parameter_count,
    parameter_count,
)
from stream_trapti.workloads.builder import build_model, write_workload
from stream_trapti.workloads.config import DecoderConfig, preset
from stream_trapti.workloads.defaults import default_workloads, workload_filename, write_defaults
from stream_trapti.workloads.spec import WorkloadSpec
from stream_trapti.workloads.tensors import TensorClass, classify_tensor, graph_tensor_classes, kv_cache_name

INPUTS = Path(__file__).resolve().parent.parent / "inputs"
GPT2, QWEN = preset("gpt2-xl"), preset("deepseek-r1-distill-qwen-1.5b")
DEFAULTS = default_workloads()


def _default_id(item: tuple[DecoderConfig, WorkloadSpec]) -> str:
    return workload_filename(*item)


@pytest.mark.parametrize(
    ("config", "parameters"), [(GPT2, 1_557_611_200), (QWEN, 1_777_088_000)], ids=["gpt2-xl", "qwen"]
)
def test_reference_parameter_counts(config: DecoderConfig, parameters: int) -> None:
    assert model_parameter_count(config) == parameters
    spec = WorkloadSpec("prefill", 8, config.layers, embedding=True, lm_head="all")
    assert graph_parameter_count(build_model(config, spec)) == parameters


# MACs of the whole model at 128 tokens, written out from the models' published shapes (Hugging Face config.json),
# not from DecoderConfig: per layer, the projections and MLP once per query token and Q·Kᵀ plus attention·V over
# every context position, then the LM head over all 128 rows (prefill) or the last one (decode, context P + 1 = 129).
# GPT-2 XL: 48 layers, hidden 1600, MLP 6400 (GELU, two matrices), Q/K/V/O all 1600 wide, vocab 50257.
GPT2_LAYER = 4 * 1600 * 1600 + 2 * 1600 * 6400
GPT2_PREFILL_MACS = 48 * (128 * GPT2_LAYER + 2 * 128 * 128 * 1600) + 128 * 1600 * 50257
GPT2_DECODE_MACS = 48 * (GPT2_LAYER + 2 * 129 * 1600) + 1600 * 50257
# DeepSeek-R1-Distill-Qwen-1.5B: 28 layers, hidden 1536, 12 query heads and 2 KV heads of 128 (K and V 256 wide),
# MLP 8960 (SwiGLU, three matrices), vocab 151936.
QWEN_LAYER = 2 * 1536 * 1536 + 2 * 1536 * 256 + 3 * 1536 * 8960
QWEN_PREFILL_MACS = 28 * (128 * QWEN_LAYER + 2 * 128 * 128 * 1536) + 128 * 1536 * 151936
QWEN_DECODE_MACS = 28 * (QWEN_LAYER + 2 * 129 * 1536) + 1536 * 151936


@pytest.mark.parametrize(
    ("config", "prefill", "decode"),
    [(GPT2, GPT2_PREFILL_MACS, GPT2_DECODE_MACS), (QWEN, QWEN_PREFILL_MACS, QWEN_DECODE_MACS)],
    ids=["gpt2-xl", "qwen"],
)
def test_reference_mac_counts(config: DecoderConfig, prefill: int, decode: int) -> None:
    full = {"layers": config.layers, "embedding": True}
    specs = [WorkloadSpec("prefill", 128, lm_head="all", **full), WorkloadSpec("decode", 128, lm_head="last", **full)]
    for spec, expected in zip(specs, (prefill, decode), strict=True):
        assert mac_count(config, spec) == expected
        assert graph_mac_count(build_model(config, spec)) == expected


@pytest.mark.parametrize("name", ["gpt2-xl", "deepseek-r1-distill-qwen-1.5b", "tiny-mha", "tiny-gqa"])
@pytest.mark.parametrize(
    "spec",
    [
        WorkloadSpec("prefill", 64, 1),
        WorkloadSpec("prefill", 96, 2, embedding=True, lm_head="last"),
        WorkloadSpec("decode", 200, 2, lm_head="all", gqa="repeat_kv"),
        WorkloadSpec("decode", 7, 1, precision_bits=16, embedding=True, lm_head="last"),
    ],
    ids=["prefill-1", "prefill-2-head", "decode-repeat", "decode-16bit"],
)
def test_graph_counts_equal_formulas(name: str, spec: WorkloadSpec) -> None:
    config = preset(name)
    model = build_model(config, spec)
    assert graph_mac_count(model) == mac_count(config, spec)
    assert graph_parameter_count(model) == parameter_count(config, spec)


@pytest.mark.parametrize(("config", "bits"), [(GPT2, 8), (QWEN, 8), (QWEN, 16), (GPT2, 32)])
def test_kv_cache_bytes_of_a_layer(config: DecoderConfig, bits: int) -> None:
    past = 300
    spec = WorkloadSpec("decode", past, 2, precision_bits=bits)
    cache = [kv_cache_name(1, "k"), kv_cache_name(1, "v")]
    # The graph input is the cache after the append: P + 1 positions.
    assert graph_input_bytes(build_model(config, spec), cache) == kv_cache_bytes(config, past + 1, bits)
    assert kv_cache_bytes(config, past, bits) == 2 * past * config.kv_heads * config.head_dim * bits // 8
    # KV-cache elements per token of the whole model (8-bit: one byte each): K and V × layers × KV heads × head
    # dimension, from the published shapes (GPT-2 XL: 48 layers, 25 heads of 64; Qwen: 28 layers, 2 KV heads of 128).
    assert GPT2.layers * kv_cache_bytes(GPT2, 1) == 2 * 48 * 25 * 64 == 153_600
    assert QWEN.layers * kv_cache_bytes(QWEN, 1) == 2 * 28 * 2 * 128 == 14_336


def test_stream_keeps_names_precision_and_kv_cache() -> None:
    """8-bit elements reach Stream as 8-bit operands, Stream keeps the builder's tensor names, and the name rule
    agrees with the graph's own classification (initializers, K/V metadata) on every tensor Stream keeps."""
    path = str(INPUTS / "deepseek-r1-distill-qwen-1.5b_decode_P128_1layer.onnx")
    model = onnx.load(path)
    workload = load_workload(path)
    tensors = {
        t.name: t for node in workload.nodes() for t in (*getattr(node, "inputs", ()), *getattr(node, "outputs", ()))
    }
    assert {t.operand_type.bitwidth for t in tensors.values()} == {8}
    structural = graph_tensor_classes(model)
    assert set(tensors) <= set(structural)
    assert all(classify_tensor(name) is structural[name] for name in tensors)
    k_cache = tensors[kv_cache_name(0, "k")]
    assert k_cache.size_bits() // 8 * 2 == kv_cache_bytes(QWEN, 129)
    assert classify_tensor("layer0.attn.q_proj.weight") is TensorClass.WEIGHT
    assert classify_tensor("layer0.attn.scores.out") is TensorClass.ACTIVATION
    assert classify_tensor("layer0.attn.v_new") is TensorClass.KV_CACHE
    names = {node.name for node in workload.nodes()}
    assert {"layer0.attn.q_proj", "layer0.attn.k_proj", "layer0.attn.scores", "layer0.mlp.down_proj"} <= names


@pytest.mark.parametrize("item", [d for d in DEFAULTS if d[1].layers == 1], ids=_default_id)
def test_committed_block_loads_in_stream(item: tuple[DecoderConfig, WorkloadSpec]) -> None:
    config, spec = item
    workload = load_workload(str(INPUTS / workload_filename(config, spec)))
    assert any(node.name == "layer0.attn.scores" for node in workload.nodes())


@pytest.mark.slow
@pytest.mark.parametrize("item", [d for d in DEFAULTS if d[1].layers > 1], ids=_default_id)
def test_committed_full_model_loads_in_stream(item: tuple[DecoderConfig, WorkloadSpec]) -> None:
    config, spec = item
    workload = load_workload(str(INPUTS / workload_filename(config, spec)))
    assert any(node.name == "lm_head" for node in workload.nodes())


def test_regeneration_is_byte_identical(tmp_path: Path) -> None:
    written = write_defaults(tmp_path)
    assert sorted(p.name for p in written) == sorted(p.name for p in INPUTS.glob("*.onnx"))
    for path in written:
        assert path.read_bytes() == (INPUTS / path.name).read_bytes(), path.name


def test_write_is_deterministic_and_shape_only(tmp_path: Path) -> None:
    spec = WorkloadSpec("prefill", 32, 1, precision_bits=16)
    first = write_workload(QWEN, spec, tmp_path / "a.onnx").read_bytes()
    assert write_workload(QWEN, spec, tmp_path / "b.onnx").read_bytes() == first
    model = onnx.load_from_string(first)
    weights = [i for i in model.graph.initializer if i.data_type != onnx.TensorProto.INT64]
    assert weights and not any(i.raw_data or i.int32_data or i.float_data for i in weights)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"hidden": 100}, r"hidden \(100\) must be divisible by heads \(12\)"),
        ({"kv_heads": 5}, r"heads \(12\) must be divisible by kv_heads \(5\)"),
        ({"layers": 0}, r"layers must be an integer >= 1, got 0"),
        ({"head_dim": 64}, r"head_dim must be hidden / heads = 128, got 64"),
        ({"mlp": "relu"}, r"mlp must be one of \['gelu', 'swiglu'\], got 'relu'"),
        ({"norm_eps": 0.0}, r"norm_eps must be > 0"),
        ({"rope_theta": None}, r"rope_theta must be > 0 with position='rope'"),
        ({"biases": frozenset({"c_attn"})}, r"unknown linear layers \['c_attn'\]"),
    ],
)
def test_bad_configs_are_rejected(changes: dict, message: str) -> None:
    fields = {**QWEN.__dict__, **changes}
    with pytest.raises(ValueError, match=message):
        DecoderConfig(**fields)


def test_bad_specs_are_rejected() -> None:
    with pytest.raises(ValueError, match=r"length must be an integer >= 1, got 0"):
        WorkloadSpec("prefill", 0, 1)
    with pytest.raises(ValueError, match=r"phase must be one of \['prefill', 'decode'\], got 'train'"):
        WorkloadSpec("train", 8, 1)
    with pytest.raises(ValueError, match=r"precision_bits must be one of \[8, 16, 32\], got 4"):
        WorkloadSpec("prefill", 8, 1, precision_bits=4)
    with pytest.raises(ConfigError, match=r"layers must be <= 48 for gpt2-xl, got 49"):
        build_model(GPT2, WorkloadSpec("prefill", 8, 49))
    with pytest.raises(ConfigError, match=r"decode attends to 1025 positions, more than gpt2-xl's max_positions=1024"):
        build_model(GPT2, WorkloadSpec("decode", 1024, 1))
    with pytest.raises(ConfigError, match=r"unknown model preset 'gpt3'; known presets: gpt2-xl, "):
        preset("gpt3")
