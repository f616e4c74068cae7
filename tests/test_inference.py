"""Whole-inference composition on real Stream solves of the tiny presets."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from stream_trapti.api import TraceOptions, trace_workload
from stream_trapti.inference import Phases, trace_inference
from stream_trapti.workloads.builder import write_workload
from stream_trapti.workloads.config import preset
from stream_trapti.workloads.spec import WorkloadSpec

HARDWARE = Path(__file__).resolve().parent.parent / "hardware" / "trapti_edge.yaml"
FRESH = TraceOptions(use_cache=False, progress=False)


@pytest.mark.parametrize("model", ["tiny-mha", "tiny-gqa"])
def test_composed_two_layer_trace_equals_a_direct_two_layer_solve(model: str, tmp_path: Path) -> None:
    config = preset(model)
    two_layers = write_workload(config, WorkloadSpec("prefill", 16, 2, lm_head="last"), tmp_path / "two.onnx")
    direct = trace_workload(HARDWARE, two_layers, tmp_path / "direct", options=FRESH).trace
    composed = trace_inference(HARDWARE, config, Phases(16), layers=2, options=FRESH, work_dir=tmp_path / "c").trace
    assert composed.cycles == direct.cycles
    assert [g.name.split("/", 1)[1] for g in composed.groups] == [g.name for g in direct.groups]
    assert [(g.start, g.end, g.reserved_bytes) for g in composed.groups] == [
        (g.start, g.end, g.reserved_bytes) for g in direct.groups
    ]
    np.testing.assert_array_equal(composed.times, direct.times)
    np.testing.assert_array_equal(composed.occupancy, direct.occupancy)
    np.testing.assert_array_equal(composed.accesses, direct.accesses)
    assert composed.tensors == direct.tensors


def test_inference_is_a_prefill_followed_by_its_decode_steps(tmp_path: Path) -> None:
    config = preset("tiny-gqa")
    options = TraceOptions(cache_dir=tmp_path / "cache", progress=False)
    whole = trace_inference(HARDWARE, config, Phases(16, 2), layers=2, options=options)
    parts = [
        trace_inference(HARDWARE, config, phases, layers=2, options=options).trace
        for phases in (Phases(16), Phases(0, 1, decode_from=16), Phases(0, 1, decode_from=17))
    ]
    assert whole.trace.cycles == sum(p.cycles for p in parts)
    assert [g.name.split("/")[0] for g in whole.trace.groups][-1] == "decode_P17"
    assert whole.trace.metadata["steps"] == "prefill_L16,decode_P16,decode_P17"
    # The decode steps read the cache every layer wrote: KV-cache bytes are on chip during them.
    decode_start = next(g.start for g in whole.trace.groups if g.name.startswith("decode_P16/"))
    kv = whole.trace.series(0, "needed", "kv_cache")[whole.trace.times >= decode_start]
    assert kv.max() > 0


def test_kv_cache_bytes_match_the_tiles_stream_chose(tmp_path: Path) -> None:
    """In decode the K cache after the append is a [kv_heads, P+1, head_dim] input: 2·17·16 bytes at 8 bits for
    tiny-gqa at P=16. Whatever tiling Stream picks, the bytes it keeps of it on chip in the scores group are a
    whole number of its tiles and never more than the tensor."""
    config = preset("tiny-gqa")
    result = trace_inference(HARDWARE, config, Phases(0, 1, decode_from=16), layers=1, options=FRESH)
    cache_bytes = config.kv_heads * 17 * config.head_dim
    scores = [g for g in result.groups if g.name.endswith("layer0.attn.scores")]
    assert len(scores) == 1
    group = scores[0]
    kv = [(t, b) for m, t, c, b in group.reserved_tensors if c == "kv_cache"]
    assert kv, "the scores group holds no KV cache"
    for tensor, reserved in kv:
        assert tensor in ("layer0.attn.k_appended", "layer0.attn.k_cache")
        assert 0 < reserved <= 2 * cache_bytes  # at most double-buffered
    live = group.needed_bytes[group.needed_class == 2]
    assert live.max() <= cache_bytes
    assert cache_bytes % live.max() == 0


@pytest.mark.parametrize("model", ["tiny-mha", "tiny-gqa"])
@pytest.mark.parametrize("phases", [Phases(16), Phases(0, 1, decode_from=16)], ids=["prefill", "decode"])
def test_zigzag_costs_every_operator_of_the_bundled_models(
    model: str, phases: Phases, caplog: pytest.LogCaptureFixture
) -> None:
    """Stream falls back to an ideal-cycle guess, with a warning, when ZigZag cannot cost a node; on the models this
    package builds that must never happen (it did for RMSNorm's square while it read one tensor twice)."""
    with caplog.at_level(logging.WARNING, logger="stream"):
        trace_inference(HARDWARE, model, phases, layers=1, options=FRESH)
    fallbacks = [r.getMessage() for r in caplog.records if "ZigZag estimation failed" in r.getMessage()]
    assert not fallbacks
