"""Regenerate the committed default workloads in ``inputs/`` byte for byte.

Naming: ``<preset>_<phase>_<L|P><length>_<depth>.onnx`` (see :mod:`stream_trapti.workloads.defaults`), e.g.
``gpt2-xl_prefill_L128_1layer.onnx``: one block without embedding or LM head; ``..._full.onnx``: the whole model
with the embedding lookup and the LM head (all positions in prefill, the last one in decode). 8-bit elements.

Usage: ``python scripts/make_workloads.py [output_dir]`` (default: the repository's ``inputs/``).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from stream_trapti.workloads.defaults import write_defaults


def main(argv: list[str]) -> None:
    directory = Path(argv[0]) if argv else Path(__file__).resolve().parent.parent / "inputs"
    start = time.perf_counter()
    paths = write_defaults(directory)
    size = sum(path.stat().st_size for path in paths)
    print(f"wrote {len(paths)} workloads ({size / 1024:.0f} KiB) to {directory} in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main(sys.argv[1:])
