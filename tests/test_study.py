"""The MHA-vs-GQA study on the smallest study there is: one tiny model, one prefill length, one variant each."""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image

from stream_trapti.atomic import OUTPUT_MARKER
from stream_trapti.sram.sweep_config import SweepSpec
from stream_trapti.study import Study, run_study
from stream_trapti.trace import OccupancyTrace

ROOT = Path(__file__).resolve().parent.parent


def test_a_small_study_writes_every_output_about_the_swept_memory(tmp_path: Path) -> None:
    hardware = ROOT / "hardware" / "trapti_edge.yaml"
    study = Study(
        hardware=hardware,
        models=("tiny-gqa",),
        prefill_lengths=(16,),
        decode_past=(),
        sweep=SweepSpec(memory="sram@core0", banks=(1, 4), timeouts_cycles=(100,), technology_nm=45),
        capacity_variants={4: hardware},
        sensitivity_prefill=16,
        flavours=("lstp",),
        gated_leakage_fractions=(0.5,),
    )
    result = run_study(study, tmp_path / "study")
    assert sorted(p.name for p in (tmp_path / "study").iterdir()) == sorted(
        [OUTPUT_MARKER, "report.md", "scaling.png", "study.csv", "study.json", "traces"]
    )
    (case,) = result.cases
    trace = OccupancyTrace.load(tmp_path / "study" / "traces" / "tiny-gqa_prefill16.npz")
    assert case.memory == "sram@core0"
    assert case.peak_needed_bytes == trace.peak("sram@core0", "needed")[0]
    assert case.peak_reserved_bytes == trace.peak("sram@core0", "reserved")[0]
    assert [s.key for s in result.sensitivities] == ["capacity_mib", "flavour", "gated_leakage_fraction"]
    assert [value for s in result.sensitivities for value, _ in s.rows] == [4, "lstp", 0.5]
    assert json.loads((tmp_path / "study" / "study.json").read_text()) == json.loads(result.to_json())
    report = (tmp_path / "study" / "report.md").read_text()
    assert "figures are of memory `sram@core0`" in report
    assert "| tiny-gqa | prefill L=16 |" in report
    assert "| lstp | tiny-gqa | prefill L=16 |" in report
    assert Image.open(tmp_path / "study" / "scaling.png").size[0] > 0
