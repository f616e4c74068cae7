"""The importer on real Hugging Face exports (committed shape-only by scripts/export_fixtures.py): GPT-2, Llama (GQA,
RoPE, SwiGLU, RMSNorm), Qwen2 (q/k/v biases) and Mistral, each through torch's legacy and dynamo exporters, prefill
and decode, at the fixtures' size and at the real models' widths. Imported graphs must have the MACs of the closed
form and of our builder's graph of the same architecture, K/V tensors classed as KV cache, only operators Stream
parses, and must solve in Stream."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from stream_trapti.api import TraceOptions
from stream_trapti.cache_dir import cache_root
from stream_trapti.cli import main
from stream_trapti.errors import ConfigError, InputFileError
from stream_trapti.experiment import parse_experiment, run_experiment
from stream_trapti.importer.cached import import_cached, imported_depth, is_decode_export, is_export
from stream_trapti.importer.compose import trace_export
from stream_trapti.importer.inputs import Step
from stream_trapti.importer.pipeline import IMPORT_METADATA_KEY, import_export, import_model
from stream_trapti.tracker.inputs import check_onnx_workload
from stream_trapti.workloads.analytics import graph_input_bytes, graph_mac_count, mac_count
from stream_trapti.workloads.builder import build_model
from stream_trapti.workloads.config import DecoderConfig
from stream_trapti.workloads.spec import WorkloadSpec
from stream_trapti.workloads.tensors import TensorClass, classify_tensor, graph_tensor_classes

from conftest import DEFAULT_HARDWARE

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "hf"
FAMILIES = ("gpt2", "llama", "qwen2", "mistral")
EXPORTERS = ("legacy", "dynamo")
LENGTH = {"tiny": 16, "full": 128}
"""The step each size is imported at: L (prefill) or P (decode); full-width exports at the issue's L = 128."""


def fixture(family: str, size: str, phase: str, exporter: str) -> Path:
    return FIXTURES / f"{family}_{size}_{phase}_{exporter}.onnx"


def dims_of(value: onnx.ValueInfoProto) -> list[int]:
    return [d.dim_value for d in value.type.tensor_type.shape.dim]


def config_of(path: Path) -> DecoderConfig:
    fields = json.loads(path.with_suffix(".json").read_text())
    return DecoderConfig(**{**fields, "biases": frozenset(fields["biases"])})


def spec_of(config: DecoderConfig, phase: str, length: int, precision_bits: int = 8) -> WorkloadSpec:
    # Exports hold the embedding and the LM head over every position, as HF's forward computes logits.
    return WorkloadSpec(phase, length, config.layers, precision_bits, embedding=True, lm_head="all")


def step_of(phase: str, length: int) -> tuple[int, int]:
    return (length, 0) if phase == "prefill" else (1, length)


CASES = sorted(path.stem for path in FIXTURES.glob("*.onnx"))
"""Every fixture: ``<family>_<size>_<phase>_<exporter>[_sdpa]`` (``_sdpa``: torch's fused attention, not eager)."""


def test_every_family_has_both_phases_and_exporters_at_both_sizes() -> None:
    for family in FAMILIES:
        for phase in ("prefill", "decode"):
            for exporter in EXPORTERS:
                assert fixture(family, "tiny", phase, exporter).exists(), (family, phase, exporter)
    for family in FAMILIES:
        for phase in ("prefill", "decode"):
            for exporter in EXPORTERS:
                assert fixture(family, "full", phase, exporter).exists(), (family, phase, exporter)


@pytest.mark.parametrize("name", CASES)
def test_import_matches_the_closed_form_and_the_builder(name: str, tmp_path: Path) -> None:
    path = FIXTURES / f"{name}.onnx"
    _, size, phase, *_ = name.split("_")
    config = config_of(path)
    length = LENGTH[size]
    seq, past = step_of(phase, length)
    out = tmp_path / "imported.onnx"
    result = import_export(path, out, seq, past)
    model = check_onnx_workload(out)  # every operator has a Stream parser; no int64 input, no dynamic dim
    spec = spec_of(config, phase, length)

    macs = graph_mac_count(model)
    assert macs == mac_count(config, spec) == graph_mac_count(build_model(config, spec))

    # The K/V tensors: found by structure, named by the builder's rule, classed as KV cache by both classifiers.
    kinds = ("cache",) if phase == "prefill" else ("cache", "new", "appended")
    expected = [f"layer{i}.attn.{kv}_{kind}" for i in range(config.layers) for kv in "kv" for kind in kinds]
    assert list(result.kv_tensors) == expected
    classes = graph_tensor_classes(model)
    assert {name for name, c in classes.items() if c is TensorClass.KV_CACHE} == set(expected)
    assert all(classify_tensor(name) is c for name, c in classes.items())
    if phase == "decode":
        # The cache after the append, as the builder's: kv_heads × (P+1) × head_dim elements of one byte each.
        caches = [n for n in expected if n.endswith("_cache")]
        assert graph_input_bytes(model, caches) == len(caches) * config.kv_dim * (past + 1)
    rewrites = json.loads({p.key: p.value for p in model.metadata_props}[IMPORT_METADATA_KEY])
    assert rewrites["seq"] == seq and rewrites["past"] == past and rewrites["rewrites"] == list(result.log)


def test_the_embedding_is_an_input_unless_kept(tmp_path: Path) -> None:
    export = fixture("gpt2", "tiny", "prefill", "dynamo")
    default = import_export(export, tmp_path / "a.onnx", 16).model
    kept = import_export(export, tmp_path / "b.onnx", 16, embedding=True).model
    assert [(i.name, i.type.tensor_type.elem_type, dims_of(i)) for i in default.graph.input] == [
        ("hidden_states", TensorProto.INT8, [1, 16, 64])
    ]
    assert [(i.name, i.type.tensor_type.elem_type, dims_of(i)) for i in kept.graph.input] == [
        ("input_ids", TensorProto.INT32, [16])
    ]
    # The token and the position lookups (each a Gather and its view) and their Add are all the difference.
    extra = Counter(n.op_type for n in kept.graph.node) - Counter(n.op_type for n in default.graph.node)
    assert extra == Counter({"Gather": 2, "Reshape": 2, "Add": 1})
    assert graph_mac_count(default) == graph_mac_count(kept)


@pytest.mark.parametrize("name", ["gpt2_full_prefill_legacy", "qwen2_full_prefill_dynamo", "llama_tiny_prefill_legacy"])
def test_last_logits_project_one_position(name: str, tmp_path: Path) -> None:
    export = FIXTURES / f"{name}.onnx"
    config, length = config_of(export), LENGTH[name.split("_")[1]]
    result = import_export(export, tmp_path / "a.onnx", length, last_logits=True)
    last = WorkloadSpec("prefill", length, config.layers, lm_head="last")
    assert graph_mac_count(result.model) == mac_count(config, last) == graph_mac_count(build_model(config, last))
    assert dims_of(result.model.graph.output[0]) == [1, config.vocab]


def test_precision_bits_set_every_data_tensor(tmp_path: Path) -> None:
    result = import_export(fixture("llama", "tiny", "prefill", "legacy"), tmp_path / "a.onnx", 16, precision_bits=16)
    graph = result.model.graph
    types = {i.data_type for i in graph.initializer} | {o.type.tensor_type.elem_type for o in graph.output}
    assert types == {TensorProto.FLOAT16, TensorProto.INT64}
    assert all(not i.raw_data and not i.float_data for i in graph.initializer if i.data_type != TensorProto.INT64)


def test_the_log_names_each_rewritten_pattern(tmp_path: Path) -> None:
    log = import_export(fixture("qwen2", "tiny", "decode", "legacy"), tmp_path / "a.onnx", 1, 16).log
    text = "\n".join(log)
    for pattern in ("attention mask", "Pow(v, -0.5)", "rotate_half", "repeat_kv", "KV append", "int64 [1, 1]"):
        assert pattern in text, pattern
    # One line per rewritten node: 2 layers × (q and k rotate_half, k and v repeat_kv, k and v appends).
    assert sum("rotate_half" in line for line in log) == 4
    assert sum("repeat_kv" in line for line in log) == 4
    assert sum("KV append" in line for line in log) == 4
    nodes = [line.split("'")[1] for line in log]
    assert len(nodes) == len(set(nodes))  # each node rewritten, and logged, once


def test_an_unknown_pattern_is_one_line_naming_node_op_and_pattern() -> None:
    # A Concat of two computed tensors: neither the KV append nor rotate_half.
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 8])
    graph = helper.make_graph(
        [
            helper.make_node("Relu", ["x"], ["a"], name="left"),
            helper.make_node("Sigmoid", ["x"], ["b"], name="right"),
            helper.make_node("Concat", ["a", "b"], ["y"], name="joins_two", axis=-1),
        ],
        "g",
        [x],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    with pytest.raises(InputFileError) as error:
        import_model(model, Step(4), source="my.onnx")
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith("my.onnx: node 'joins_two' is an ONNX 'Concat'")
    assert "KV-cache append" in message and "rotate_half" in message


def test_a_decode_export_runs_a_prefill_with_an_empty_past(tmp_path: Path) -> None:
    # optimum's with-past exports serve the prefill too, with a past of length 0.
    export = fixture("qwen2", "tiny", "decode", "dynamo")
    result = import_export(export, tmp_path / "a.onnx", 16)
    config = config_of(export)
    assert graph_mac_count(result.model) == mac_count(config, spec_of(config, "prefill", 16))
    assert result.kv_tensors == tuple(f"layer{i}.attn.{kv}_cache" for i in range(2) for kv in "kv")
    assert [i.name for i in result.model.graph.input] == ["hidden_states"]
    assert not any("KV append" in line for line in result.log)
    with pytest.raises(ConfigError, match="no past key/value inputs"):
        import_export(fixture("gpt2", "tiny", "prefill", "legacy"), tmp_path / "a.onnx", 1, past=16)


def test_cli_import_prints_rewrites_and_errors_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "gpt2.onnx"
    assert main(["import", str(fixture("gpt2", "tiny", "prefill", "legacy")), "--seq", "16", "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "Gemm" in printed and "Split" in printed and f"wrote {out}" in printed
    assert "2,162,688 MACs" in printed  # 2 layers × 16 × 51 200 + 16 × 64 × 512
    prefill = str(fixture("gpt2", "tiny", "prefill", "legacy"))
    assert main(["import", prefill, "--seq", "1", "--past", "16", "-o", str(out)]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_cli_import_replaces_its_own_workload_but_never_another_file(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    export = str(fixture("gpt2", "tiny", "prefill", "legacy"))
    out = tmp_path / "gpt2.onnx"
    assert main(["import", export, "--seq", "16", "-o", str(out)]) == 0
    assert main(["import", export, "--seq", "8", "-o", str(out)]) == 0  # its own earlier workload: replaced
    assert f"wrote {out}" in capsys.readouterr().out
    for mine, data in (("notes.txt", b"mine"), ("model.onnx", Path(export).read_bytes())):
        (tmp_path / mine).write_bytes(data)
        assert main(["import", export, "--seq", "16", "-o", str(tmp_path / mine)]) == 2
        assert "is not a workload stream-trapti import wrote" in capsys.readouterr().err
        assert (tmp_path / mine).read_bytes() == data


SOLVES = [
    "gpt2_tiny_prefill_legacy",
    "llama_tiny_decode_dynamo",
    "qwen2_tiny_decode_legacy_sdpa",
    "mistral_tiny_decode_dynamo",  # one K/V head: repeat_kv as a Mul by ones
]


@pytest.mark.slow
@pytest.mark.parametrize("name", SOLVES)
def test_imported_fixture_solves_in_stream(name: str, tmp_path: Path) -> None:
    """One layer of each family (the composition repeats it; see the test below), traced on the default hardware."""
    from stream_trapti.api import trace_workload

    seq, past = step_of(name.split("_")[2], LENGTH["tiny"])
    out = tmp_path / "w.onnx"
    result = import_export(FIXTURES / f"{name}.onnx", out, seq, past, first_layer_only=True)
    trace = trace_workload(DEFAULT_HARDWARE, out, tmp_path / "stream", None, TraceOptions(progress=False)).trace
    assert trace.cycles > 0
    # The K/V tensors the import named are what the tracker counts as KV cache, beside weights and activations.
    for tensor_class in ("kv_cache", "weight", "activation"):
        assert trace.peak(0, "needed", tensor_class)[0] > 0, tensor_class
    assert all(name.startswith("layer0.") for name in result.kv_tensors)


def test_an_experiment_takes_an_export_with_prefill_and_precision() -> None:
    export = fixture("llama", "tiny", "decode", "legacy")
    base = {"experiment_id": "x", "hardware": str(DEFAULT_HARDWARE), "onnx": str(export)}
    experiment = parse_experiment(base | {"prefill": 16, "precision_bits": 16})
    assert (experiment.prefill, experiment.precision_bits) == (16, 16)
    with pytest.raises(ConfigError, match="key 'layers': applies to model presets only"):
        parse_experiment(base | {"layers": 1}, "exp.yaml")


def test_imports_are_cached_by_content_and_step(tmp_path: Path) -> None:
    export = fixture("qwen2", "tiny", "decode", "dynamo")
    assert is_export(export) and is_decode_export(export)
    assert not is_export(import_cached(export, tmp_path / "first.onnx", 16))
    entries = list((cache_root() / "imports").glob("*.entry"))
    second = import_cached(export, tmp_path / "second.onnx", 16)
    assert list((cache_root() / "imports").glob("*.entry")) == entries  # a hit writes no new entry
    assert second.read_bytes() == (tmp_path / "first.onnx").read_bytes()
    import_cached(export, tmp_path / "third.onnx", 17)  # another step is another entry
    assert len(list((cache_root() / "imports").glob("*.entry"))) == len(entries) + 1
    assert graph_mac_count(onnx.load(str(second))) == mac_count(
        config_of(export), spec_of(config_of(export), "decode", 16)
    )


@pytest.mark.slow
def test_an_experiment_runs_an_export(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text("banks: [1, 4]\ntimeouts_cycles: [100]\ntechnology_nm: 45\n")
    export = fixture("qwen2", "tiny", "prefill", "dynamo")  # the composition test's: its solve is cached
    experiment = parse_experiment(
        {
            "experiment_id": "byo",
            "hardware": str(DEFAULT_HARDWARE),
            "onnx": str(export),
            "prefill": 16,
            "sweep": str(sweep),
            "output_dir": str(tmp_path / "out"),
        }
    )
    summary = run_experiment(experiment, TraceOptions(progress=False))
    (name,) = summary.workloads
    assert name == export.stem
    assert summary.experiment.prefill == 16
    assert summary.workloads[name].trace.cycles > 0


@pytest.mark.parametrize("family", FAMILIES)
def test_the_repeated_layer_is_found_and_one_is_kept(family: str, tmp_path: Path) -> None:
    export = fixture(family, "tiny", "decode", "legacy")
    config = config_of(export)
    whole = import_export(export, tmp_path / "whole.onnx", 1, 16)
    one = import_export(export, tmp_path / "one.onnx", 1, 16, first_layer_only=True)
    assert whole.depth == one.depth == config.layers == 2
    assert imported_depth(tmp_path / "one.onnx") == 2
    one_spec = WorkloadSpec("decode", 16, 1, embedding=True, lm_head="all")
    assert graph_mac_count(one.model) == mac_count(config, one_spec)
    assert one.kv_tensors == tuple(n for n in whole.kv_tensors if n.startswith("layer0."))
    # Every node of a layer is named after it; the rest is the embedding and the head, the same in both graphs.
    for result in (whole, one):
        names = [node.name for node in result.model.graph.node]
        assert {n.split(".")[0] for n in names if n.startswith("layer")} == {
            f"layer{i}" for i in range(config.layers if result is whole else 1)
        }
    outside = [n.name for n in whole.model.graph.node if not n.name.startswith("layer")]
    assert outside == [n.name for n in one.model.graph.node if not n.name.startswith("layer")]
    layer = sorted(n.op_type for n in whole.model.graph.node if n.name.startswith("layer1."))
    assert layer == sorted(n.op_type for n in one.model.graph.node if n.name.startswith("layer0."))


@pytest.mark.slow
def test_one_layer_repeated_traces_as_the_whole_export(tmp_path: Path) -> None:
    from stream_trapti.api import trace_workload

    export = fixture("qwen2", "tiny", "prefill", "dynamo")
    options = TraceOptions(progress=False)
    composed = trace_export(DEFAULT_HARDWARE, export, 16, options=options, work_dir=tmp_path / "composed")
    import_export(export, tmp_path / "whole.onnx", 16, last_logits=True)  # as trace_export runs the head
    whole = trace_workload(DEFAULT_HARDWARE, tmp_path / "whole.onnx", tmp_path / "stream", None, options)
    # One fused group per layer, each through DRAM: the layers solve alike, so repeating one is exact.
    assert composed.trace.cycles == whole.trace.cycles
    assert [g.name.split(".")[0] for g in composed.groups] == [g.name.split(".")[0] for g in whole.groups]
    assert composed.trace.metadata["layers"] == "2"


@pytest.mark.slow
@pytest.mark.parametrize(
    "name",
    ["gpt2_full_decode_dynamo", "qwen2_full_decode_dynamo", "llama_full_decode_dynamo", "mistral_full_decode_dynamo"],
)
def test_full_width_exports_solve_composed(name: str, tmp_path: Path) -> None:
    """GPT-2 (124M), Qwen2-0.5B, TinyLlama-1.1B and Mistral-7B widths, one decode step after 128 tokens, as an
    experiment traces an export."""
    export = FIXTURES / f"{name}.onnx"
    result = trace_export(DEFAULT_HARDWARE, export, 128, options=TraceOptions(progress=False), work_dir=tmp_path)
    assert result.trace.cycles > 0
    assert result.trace.metadata["steps"] == "decode_P128"
    # The layer's groups, then the head's: one layer, as the export holds.
    assert {g.name.split(".")[0] for g in result.groups if g.name.startswith("layer")} == {"layer0"}


@pytest.mark.parametrize("name", ["gpt2_tiny_decode_legacy", "qwen2_tiny_prefill_dynamo"])
def test_weights_inline_or_external_import_as_stripped(name: str, tmp_path: Path) -> None:
    """A real export carries its weights (inline, or in an external file past 2 GB): the import reads none of them
    and writes the same bytes as from the committed stripped fixture."""
    stripped = FIXTURES / f"{name}.onnx"
    seq, past = step_of(name.split("_")[2], 16)
    expected = import_export(stripped, tmp_path / "expected.onnx", seq, past).model.SerializeToString()
    model = onnx.load(str(stripped))
    for init in model.graph.initializer:
        if not init.raw_data and init.data_type == TensorProto.FLOAT:
            init.raw_data = bytes(4 * int(np.prod(init.dims)))  # zero weights, as the model's init gives its biases
    inline, external = tmp_path / "inline.onnx", tmp_path / "external.onnx"
    onnx.save(model, str(inline))
    onnx.save(model, str(external), save_as_external_data=True, location="weights.bin", size_threshold=0)
    for path in (inline, external):
        assert import_export(path, tmp_path / "out.onnx", seq, past).model.SerializeToString() == expected
