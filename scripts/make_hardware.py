"""Generate Stream accelerator YAMLs from a hardware template, memory costs from CACTI 7.

Without arguments, regenerates the committed accelerators in ``hardware/`` byte for byte
(:data:`stream_trapti.hardware_generator.COMMITTED_HARDWARE`: ``trapti_edge.yaml`` and its 2 and 8 MiB variants, their
core files and CACTI configs). With ``--out``, writes one accelerator of the template, at ``--capacity-kib`` and
``--technology-nm`` when given, into that directory (created, or replaced whole if stream-trapti wrote it).

Usage: ``python scripts/make_hardware.py [--template T.yaml] [--capacity-kib N] [--technology-nm N] [--out DIR]``
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from stream_trapti.atomic import atomic_directory
from stream_trapti.cli import run_guarded
from stream_trapti.hardware_generator import HARDWARE_DIR, hardware_files, regenerate_committed, write_hardware


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--template", type=Path, default=HARDWARE_DIR / "templates" / "trapti_edge.yaml")
    parser.add_argument("--capacity-kib", type=int, help="shared SRAM capacity (default: the template's)")
    parser.add_argument("--technology-nm", type=int, help="CACTI technology node (default: the template's)")
    parser.add_argument("--out", type=Path, help="write one accelerator here instead of regenerating hardware/")
    args = parser.parse_args()
    start = time.perf_counter()
    if args.out is None:
        if args.capacity_kib is not None or args.technology_nm is not None:
            parser.error("--capacity-kib and --technology-nm need --out (hardware/ holds the committed accelerators)")
        files = regenerate_committed()
        write_hardware(files, HARDWARE_DIR)
        where = HARDWARE_DIR
    else:
        capacity = None if args.capacity_kib is None else args.capacity_kib * 1024
        files = hardware_files(args.template, capacity_bytes=capacity, technology_nm=args.technology_nm)
        with atomic_directory(args.out, inputs=[args.template]) as staging:
            write_hardware(files, staging)
        where = args.out
    accelerators = sorted(name for name in files if "/" not in name)
    print(f"wrote {len(files)} files ({', '.join(accelerators)}) to {where} in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    sys.exit(run_guarded("make_hardware", main))
