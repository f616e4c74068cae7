"""The MHA-vs-GQA study on the smallest study there is: the two tiny models, one prefill and one decode length, the
streamed and resident cache, two SRAM capacities."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from stream_trapti.atomic import OUTPUT_MARKER
from stream_trapti.sram.sweep_config import SweepSpec
from stream_trapti.study import Growth, Study, run_study
from stream_trapti.trace import OccupancyTrace

ROOT = Path(__file__).resolve().parent.parent
MODELS = ("tiny-mha", "tiny-gqa")


@pytest.mark.slow
def test_a_small_study_writes_every_output_about_the_swept_memory(tmp_path: Path) -> None:
    study = Study(
        hardware=ROOT / "hardware" / "trapti_edge.yaml",
        models=MODELS,
        prefill_lengths=(16,),
        decode_past=(16,),
        sweep=SweepSpec(memory="sram@core0", banks=(1, 4), timeouts_cycles=(100,), technology_nm=45),
        sensitivity_prefill=16,
        policies=("streamed", "resident"),
        capacities_mib=(2,),
        growth=Growth("tiny-gqa", past=16, steps=2, capacity_mib=2),
        flavours=("lstp",),
        gated_leakage_fractions=(0.5,),
        schedules=("committed", "layer"),
        schedule_steps=(("decode", 16),),
    )
    out = tmp_path / "study"
    result = run_study(study, out)
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [OUTPUT_MARKER, "growth", "ratio.png", "report.md", "scaling.png", "study.csv", "study.json", "traces"]
    )
    # A row per model × policy × capacity × step: prefill and decode on the 4 MiB accelerator and at 2 MiB.
    points = [(c.model, c.policy, c.capacity_mib, c.phase) for c in result.cases]
    assert len(points) == len(set(points)) == 2 * 2 * 2 * 2
    assert not any(c.skipped for c in result.cases)
    by = {(c.model, c.policy, c.capacity_mib, c.phase): c for c in result.cases}
    for model in MODELS:
        streamed, resident = by[(model, "streamed", 2, "decode")], by[(model, "resident", 2, "decode")]
        assert streamed.dram_kv_bytes > 0 and resident.dram_kv_bytes == 0
        assert resident.dram_bytes == streamed.dram_bytes - streamed.dram_kv_bytes
        assert resident.cycles <= streamed.cycles
    case = by[("tiny-gqa", "streamed", 4, "prefill")]
    trace = OccupancyTrace.load(out / "traces" / "tiny-gqa_streamed_prefill16.npz")
    assert case.memory == "sram@core0"
    assert case.peak_needed_bytes == trace.peak("sram@core0", "needed")[0]
    assert case.peak_reserved_bytes == trace.peak("sram@core0", "reserved")[0]
    assert [s.key for s in result.sensitivities] == ["flavour", "gated_leakage_fraction"]
    assert json.loads((out / "study.json").read_text()) == json.loads(result.to_json())
    report = (out / "report.md").read_text()
    assert "figures are of memory `sram@core0`" in report
    mha, gqa = by[("tiny-mha", "resident", 2, "decode")], by[("tiny-gqa", "resident", 2, "decode")]
    ratio = mha.peak_needed_bytes / gqa.peak_needed_bytes
    assert f"| tiny-mha | resident | 2 | decode P=16 | {mha.cycles:,} |" in report
    assert f"| resident | 2 | {ratio:.2f} |" in report
    mha, gqa = by[("tiny-mha", "resident", 2, "prefill")], by[("tiny-gqa", "resident", 2, "prefill")]
    assert f"| resident | 2 | {mha.peak_needed_bytes / gqa.peak_needed_bytes:.2f} |" in report.split("## Decode")[0]
    assert "| lstp | tiny-mha | streamed | 4 | prefill L=16 |" in report
    # A fused layer keeps its intermediate tensors on chip: they no longer cross the DRAM interface.
    fused = {(c.model, c.policy, c.fusion): c for c in result.schedule}
    assert len(fused) == len(result.schedule) == 2 * 2 * 2 and not any(c.skipped for c in result.schedule)
    for model in MODELS:
        for policy in ("streamed", "resident"):
            assert fused[(model, policy, "committed")].cycles == by[(model, policy, 4, "decode")].cycles
            assert fused[(model, policy, "layer")].dram_bytes < fused[(model, policy, "committed")].dram_bytes
    layer = fused[("tiny-mha", "resident", "layer")]
    assert f"| layer | tiny-mha | resident | 4 | decode P=16 | {layer.cycles:,} |" in report
    for image in ("scaling.png", "ratio.png", "growth/trace/occupancy.png", "growth/sram/bank_heatmap.png"):
        assert Image.open(out / image).size[0] > 0
