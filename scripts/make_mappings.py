"""Write the fixed Stream mapping of every committed ONNX workload: mappings/<ONNX stem>.yaml.

Usage: python scripts/make_mappings.py [--hardware hardware/trapti_edge.yaml] [--out mappings] [ONNX ...]
Without ONNX arguments it maps every one-layer block inputs/*_1layer.onnx (whole models replicate a block).
Regeneration is byte-identical (tests/test_mappings.py checks).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from stream_trapti.mappings import mapping_path_for, write_mapping

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("onnx", nargs="*", type=Path, help="ONNX workloads (default: inputs/*_1layer.onnx)")
    parser.add_argument("--hardware", type=Path, default=ROOT / "hardware" / "trapti_edge.yaml")
    parser.add_argument("--out", type=Path, default=ROOT / "mappings", help="directory for the mapping YAMLs")
    args = parser.parse_args(argv)
    workloads = args.onnx or sorted((ROOT / "inputs").glob("*_1layer.onnx"))
    if not workloads:
        print("no ONNX workloads given and none in inputs/ (run scripts/make_workloads.py first)", file=sys.stderr)
        return 1
    for onnx_path in workloads:
        out = write_mapping(onnx_path, args.hardware, mapping_path_for(onnx_path, args.out))
        print(f"wrote {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
