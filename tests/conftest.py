"""Shared fixtures (small real Stream solves and the CACTI build, once per test session) and helpers that build
hand-made traces; test modules import the plain helpers as ``from conftest import ...``."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import stream

from stream_trapti.cache_dir import CACHE_ENV
from stream_trapti.mappings import build_mapping
from stream_trapti.sram.cacti_build import CactiInstall, ensure_cacti
from stream_trapti.sram.energy import BankCosts
from stream_trapti.trace import MemoryInfo, OccupancyTrace
from stream_trapti.workloads.builder import write_workload
from stream_trapti.workloads.config import preset
from stream_trapti.workloads.spec import WorkloadSpec

STREAM_DIR = Path(stream.__file__).parent
HARDWARE = Path(__file__).resolve().parent.parent / "hardware"
DEFAULT_HARDWARE = HARDWARE / "trapti_edge.yaml"
"""The project's default accelerator: two 64×64 arrays (cores 0, 1), a vector core (2), one shared 4 MiB SRAM."""
FUSEMAX = STREAM_DIR / "inputs/examples/hardware/fusemax.yaml"
"""Stream's shipped accelerator whose array and vector cores share one on-chip SRAM."""


@pytest.fixture(scope="session", autouse=True)
def isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Every test session starts from an empty cache of CACTI builds, CACTI results and solves, so no test passes on
    what an earlier version of the code left behind."""
    root = tmp_path_factory.getbasetemp() / "stream-trapti-cache"
    previous = os.environ.get(CACHE_ENV)
    os.environ[CACHE_ENV] = str(root)
    yield root
    if previous is None:
        os.environ.pop(CACHE_ENV, None)
    else:
        os.environ[CACHE_ENV] = previous


def stream_fixture(name: str):
    """A workload builder module from Stream's own test inputs."""
    path = STREAM_DIR / "inputs/testing/workload" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def mha_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Stream's multi-head attention fixture: 4 heads, seq 64, d_model 256, bf16."""
    path = tmp_path_factory.mktemp("mha") / "mha.onnx"
    stream_fixture("make_attention_head").make_multi_head_attention(str(path), seq=64, d_model=256, heads=4)
    return path


@pytest.fixture(scope="session")
def cacti() -> CactiInstall:
    """CACTI built once per session into the session's cache (see conftest.isolated_cache)."""
    return ensure_cacti()


def make_trace(
    times: list[int] | np.ndarray,
    needed: list[int] | np.ndarray,
    cycles: int,
    capacity: int,
    reserved: list[int] | np.ndarray | None = None,
    read_bytes: int = 0,
    write_bytes: int = 0,
    port_bits: int = 128,
) -> OccupancyTrace:
    """A one-memory trace whose bytes are all activations, with all accesses in one window."""
    occupancy = np.zeros((2, 1, 3, len(times)), dtype=np.int64)
    occupancy[1, 0, 1] = needed
    occupancy[0, 0, 1] = needed if reserved is None else reserved
    return OccupancyTrace(
        cycles=cycles,
        memories=(MemoryInfo("sram", (0,), capacity, port_bits, port_bits),),
        times=np.asarray(times, dtype=np.int64),
        occupancy=occupancy,
        window=cycles,
        accesses=np.array([[[[read_bytes]], [[write_bytes]]], [[[0]], [[0]]]], dtype=np.int64),
    )


def random_trace(seed: int, capacity: int = 1 << 16, points: int = 300, empty_share: float = 0.3) -> OccupancyTrace:
    """A random step function with idle stretches, for the laws that must hold on any trace."""
    rng = np.random.default_rng(seed)
    times = np.concatenate([[0], np.sort(rng.choice(np.arange(1, 50 * points), points - 1, replace=False))])
    needed = rng.integers(0, capacity + 1, points)
    needed[rng.random(points) < empty_share] = 0
    return make_trace(
        times,
        needed,
        int(times[-1]) + 1 + int(rng.integers(0, 100)),
        capacity,
        read_bytes=int(rng.integers(0, 10**6)),
        write_bytes=int(rng.integers(0, 10**6)),
    )


# The hand example: 4 banks of 100 B over 100 cycles; banks_on = [0, 2, 1, 4, 0].
HAND = dict(
    times=[0, 10, 30, 60, 80], needed=[0, 150, 50, 350, 0], cycles=100, capacity=400, read_bytes=64, write_bytes=32
)
HAND_COSTS = BankCosts(
    read_pj=1.0, write_pj=2.0, leakage_mw=1.0, gated_mw=0.25, wake_energy_pj=10.0, wake_cycles=2, area_mm2=1.0
)


@pytest.fixture(scope="session")
def tiny_block(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """``tiny_block(model, phase, length, layers=1)``: the ONNX file of that workload of a tiny preset, written once
    per session."""
    root = tmp_path_factory.mktemp("tiny")

    @cache
    def write(model: str, phase: str, length: int, layers: int = 1) -> Path:
        spec = WorkloadSpec(phase=phase, length=length, layers=layers)
        return write_workload(preset(model), spec, root / f"{model}_{phase}_{length}_{layers}.onnx")

    return write


@pytest.fixture(scope="session")
def tiny_mapping(tiny_block: Callable[..., Path]) -> Callable[..., dict[str, Any]]:
    """``tiny_mapping(model, phase, length, layers=1)``: the fixed mapping of ``tiny_block(...)`` on the default
    hardware, built once per session (building runs Stream's tiler). Shared between tests: do not modify it."""

    @cache
    def build(model: str, phase: str, length: int, layers: int = 1) -> dict[str, Any]:
        return build_mapping(tiny_block(model, phase, length, layers), DEFAULT_HARDWARE)

    return build
