"""Check that every fusion scope maps every default workload step on the default hardware and its 8 MiB variant.

Usage: python scripts/check_fusion.py [--scopes operator attention layer] [--hardware H ...] [ONNX ...]
For each one-layer block (default: inputs/*_1layer.onnx), hardware and scope it builds the fused mapping
(stream_trapti.mappings.generate_mapping, Stream's capacity tiler underneath, no solve) and prints one line: the
groups and steady-state tiles of each group, or the one-line reason the scope cannot fit.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

from stream.frontends import load_workload
from stream.stages.parsing.accelerator_parser import parse_accelerator

from stream_trapti.fusion import FUSIONS
from stream_trapti.mappings import FusionError, generate_mapping

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("onnx", nargs="*", type=Path, help="ONNX workloads (default: inputs/*_1layer.onnx)")
    parser.add_argument(
        "--hardware",
        nargs="+",
        type=Path,
        default=[ROOT / "hardware" / "trapti_edge.yaml", ROOT / "hardware" / "trapti_edge_8mib.yaml"],
    )
    scopes = [f for f in FUSIONS if f != "committed"]
    parser.add_argument("--scopes", nargs="+", choices=scopes, default=scopes)
    args = parser.parse_args(argv)
    failed = 0
    for hardware in args.hardware:
        accelerator = parse_accelerator(str(hardware))
        for onnx_path in args.onnx or sorted((ROOT / "inputs").glob("*_1layer.onnx")):
            workload = load_workload(str(onnx_path))
            for scope in args.scopes:
                start = time.perf_counter()
                try:
                    groups, mapping = generate_mapping(workload, accelerator, scope)
                except FusionError as error:
                    failed += 1
                    outcome = f"cannot fit: {error}"
                else:
                    tiles = [_tiles(workload, g["intra_core_tiling"]) for g in mapping["fused_groups"]]
                    outcome = f"{len(groups)} groups, steady-state tiles {tiles}"
                took = time.perf_counter() - start
                print(f"{hardware.name} {onnx_path.stem} {scope}: {outcome} ({took:.1f} s)", flush=True)
    return 1 if failed else 0


def _tiles(workload, tiling: list[dict]) -> int:
    """How many steady-state tiles a group's intra-core tiling cuts it into."""
    sizes = {}
    for entry in tiling:
        node, _, pos = str(entry["dim"]).rpartition(".D")
        dim = workload.get_dims(workload.get_node_by_name(node))[int(pos)]
        sizes[str(dim)] = workload.get_dimension_size(dim) // int(entry["tile"])
    return math.prod(sizes.values())


if __name__ == "__main__":
    sys.exit(main())
