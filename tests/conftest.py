"""Shared fixtures: small real Stream solves, run once per test session."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import stream

from stream_trapti.cache_dir import CACHE_ENV

STREAM_DIR = Path(stream.__file__).parent
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
