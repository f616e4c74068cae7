"""The disk caches heal themselves: an unusable entry (cut short, not an entry, of another schema, altered, or
rejected by its decoder) is logged once with its path, deleted, recomputed and rewritten, and the run gives the
same result as with a sound cache."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from stream_trapti import cache_entry
from stream_trapti.api import TraceOptions, TraceResult, trace_workload
from stream_trapti.cache_dir import cache_root
from stream_trapti.cli import main
from stream_trapti.sram import cacti_build
from stream_trapti.sram.cacti import SramConfig, cacti_process_count
from stream_trapti.sram.cacti_build import ensure_cacti
from stream_trapti.sram.cacti_cache import ENTRY_SCHEMA, query, result_path
from stream_trapti.tracker import cache as groups_cache

from conftest import FUSEMAX, make_trace

KIB = 1024


def _truncated(entry: bytes, schema: str) -> bytes:
    return entry[: len(entry) // 2]


def _empty_json(entry: bytes, schema: str) -> bytes:
    return b"{}"


def _garbage(entry: bytes, schema: str) -> bytes:
    return bytes(range(256)) * 8


def _unsealed(entry: bytes, schema: str) -> bytes:
    """The bare payload, as a stream-trapti without entry headers wrote it."""
    return cache_entry.unseal(entry, schema)


def _other_version(entry: bytes, schema: str) -> bytes:
    return cache_entry.seal(cache_entry.unseal(entry, schema), schema.split()[0] + " 1")


def _altered(entry: bytes, schema: str) -> bytes:
    """One payload byte changed behind the original header: the checksum no longer matches."""
    return entry[:-1] + bytes([entry[-1] ^ 1])


def _undecodable(entry: bytes, schema: str) -> bytes:
    """A sound entry of the right schema whose payload the decoder rejects."""
    return cache_entry.seal(b"{}", schema)


DAMAGES: dict[str, Callable[[bytes, str], bytes]] = {
    "truncated": _truncated,
    "empty-json": _empty_json,
    "garbage": _garbage,
    "unsealed": _unsealed,
    "other-version": _other_version,
    "altered": _altered,
    "undecodable": _undecodable,
}
# A solve takes seconds, so the groups cache is tried on a subset; the CACTI results, read through the same
# cache_entry.load, are tried on every damage.
GROUP_DAMAGES = {name: DAMAGES[name] for name in ("truncated", "empty-json", "garbage", "other-version", "undecodable")}


def _healing_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage() for r in caplog.records if r.name == cache_entry.logger.name and r.levelno == logging.WARNING
    ]


# ------------------------------------------------------------------------------------------------ the envelope
ENTRY = cache_entry.seal(b"payload\nwith a newline", "thing 2")


def test_an_entry_round_trips() -> None:
    assert cache_entry.unseal(ENTRY, "thing 2") == b"payload\nwith a newline"


@pytest.mark.parametrize(
    ("data", "schema", "reason"),
    [
        (ENTRY[:20], "thing 2", "not a stream-trapti cache entry, or cut short"),
        (b"{}", "thing 2", "not a stream-trapti cache entry, or cut short"),
        (ENTRY, "thing 3", "written as 'thing 2', this version reads 'thing 3'"),
        (ENTRY[:-1], "thing 2", "its checksum does not match"),
    ],
)
def test_unseal_says_what_is_wrong(data: bytes, schema: str, reason: str) -> None:
    with pytest.raises(cache_entry.CorruptEntry, match=reason):
        cache_entry.unseal(data, schema)


# ------------------------------------------------------------------------------------------------ solved groups
@pytest.fixture(scope="module")
def cached_solve(mha_onnx: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[TraceResult, Path]:
    """A small real solve and the cache directory that holds its one groups entry."""
    root = tmp_path_factory.mktemp("solve")
    result = trace_workload(FUSEMAX, mha_onnx, root / "stream", options=TraceOptions(cache_dir=root / "cache"))
    return result, root / "cache"


def test_a_cached_solve_reads_back_field_for_field(cached_solve: tuple[TraceResult, Path]) -> None:
    solved, directory = cached_solve
    (entry,) = (directory / "groups").iterdir()
    loaded = groups_cache.load_groups(directory, entry.stem)
    assert loaded is not None and len(loaded) == len(solved.groups)
    for fresh, read in zip(solved.groups, loaded, strict=True):
        for name, value in vars(fresh).items():
            again = getattr(read, name)
            if isinstance(value, np.ndarray):
                # Same values and kind: a float array read back as int64 would truncate Stream's pJ.
                assert again.dtype.kind == value.dtype.kind, name
                np.testing.assert_array_equal(again, value, err_msg=name)
            else:
                assert again == value, name


@pytest.mark.parametrize("damage", GROUP_DAMAGES.values(), ids=GROUP_DAMAGES.keys())
def test_a_bad_groups_entry_is_solved_again(
    damage: Callable[[bytes, str], bytes],
    cached_solve: tuple[TraceResult, Path],
    mha_onnx: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    first, sound_cache = cached_solve
    (sound_entry,) = (sound_cache / "groups").iterdir()
    entry = tmp_path / "cache" / "groups" / sound_entry.name
    entry.parent.mkdir(parents=True)
    entry.write_bytes(damage(sound_entry.read_bytes(), groups_cache.ENTRY_SCHEMA))

    caplog.set_level(logging.WARNING)
    second = trace_workload(FUSEMAX, mha_onnx, tmp_path / "stream", options=TraceOptions(cache_dir=tmp_path / "cache"))

    assert second.trace == first.trace
    assert second.stream == first.stream
    np.testing.assert_array_equal(second.trace.occupancy, first.trace.occupancy)
    (warning,) = _healing_warnings(caplog)
    assert f"cache entry {entry} is unusable" in warning
    assert entry.read_bytes() == sound_entry.read_bytes()  # rewritten whole


# ------------------------------------------------------------------------------------------------ CACTI results
# 350 K and 16 KiB: used by no other test, so the first query of this module really runs CACTI.
SMALL = SramConfig(16 * KIB, temperature_k=350)


@pytest.mark.parametrize("damage", DAMAGES.values(), ids=DAMAGES.keys())
def test_a_bad_cacti_entry_is_computed_again(
    damage: Callable[[bytes, str], bytes], caplog: pytest.LogCaptureFixture
) -> None:
    sound = query(SMALL)
    path = result_path(SMALL, ensure_cacti())
    sound_entry = path.read_bytes()
    path.write_bytes(damage(sound_entry, ENTRY_SCHEMA))

    caplog.set_level(logging.WARNING)
    before = cacti_process_count()
    assert query(SMALL) == sound
    assert cacti_process_count() == before + 1
    (warning,) = _healing_warnings(caplog)
    assert f"cache entry {path} is unusable" in warning
    assert path.read_bytes() == sound_entry
    assert query(SMALL) == sound and cacti_process_count() == before + 1  # healed: served from the cache again


def test_a_cacti_entry_holding_another_configuration_is_computed_again(caplog: pytest.LogCaptureFixture) -> None:
    other = SramConfig(32 * KIB, temperature_k=350)
    sound, path = query(SMALL), result_path(SMALL, ensure_cacti())
    sound_entry = path.read_bytes()
    query(other)
    shutil.copyfile(result_path(other, ensure_cacti()), path)

    caplog.set_level(logging.WARNING)
    assert query(SMALL) == sound
    (warning,) = _healing_warnings(caplog)
    assert (
        f"cache entry {path} is unusable (ValueError: it holds the result of SramConfig(capacity_bytes=32768" in warning
    )
    assert path.read_bytes() == sound_entry


def test_explore_heals_the_cacti_entries_it_reads(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    trace = make_trace([0, 100, 300], [0, 12 * KIB, 0], 1000, 16 * KIB, read_bytes=4096, write_bytes=2048)
    trace.save(tmp_path / "trace.npz")
    # 370 K: used by no other test, so the first run writes the entries the second one finds damaged.
    (tmp_path / "sweep.yaml").write_text("banks: [1, 2]\npolicies: [always_on, immediate]\ntemperature_k: 370\n")
    command = ["explore", "--trace", str(tmp_path / "trace.npz"), "--sweep", str(tmp_path / "sweep.yaml"), "--out"]

    before = set((cache_root() / "cacti-results").rglob("*.json"))
    assert main([*command, str(tmp_path / "first")]) == 0
    written = sorted(set((cache_root() / "cacti-results").rglob("*.json")) - before)
    assert written
    for path in written:
        path.write_bytes(path.read_bytes()[:-10])

    caplog.set_level(logging.WARNING)
    assert main([*command, str(tmp_path / "second")]) == 0
    warnings = _healing_warnings(caplog)
    assert len(warnings) == len(written)
    assert all(any(f"cache entry {path} is unusable" in w for w in warnings) for path in written)
    for name in ("configs.csv", "exploration.json"):
        assert (tmp_path / "second" / name).read_bytes() == (tmp_path / "first" / name).read_bytes()


# ------------------------------------------------------------------------------------------------ the CACTI build
def test_the_session_build_is_whole() -> None:
    assert cacti_build._damage(ensure_cacti().binary.parent) is None


@pytest.fixture
def fake_compiles(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """The staging directories compiled into, by a stand-in for the 30-60 s compile that writes a binary and a
    technology file (all the build check looks at)."""
    compiles: list[Path] = []

    def fake_compile(staging: Path, source: Path) -> None:
        compiles.append(staging)
        (staging / "tech_params").mkdir()
        (staging / "tech_params" / "90nm.dat").write_text("technology\n")
        (staging / "cacti").write_bytes(b"\x7fELF a CACTI binary")

    monkeypatch.setattr(cacti_build, "_compile", fake_compile)
    return compiles


def _remove_binary(build: Path) -> None:
    (build / "cacti").unlink()


def _truncate_binary(build: Path) -> None:
    (build / "cacti").write_bytes(b"\x7fELF")


def _remove_technology_file(build: Path) -> None:
    (build / "tech_params" / "90nm.dat").unlink()


def _remove_manifest(build: Path) -> None:
    """What a build by a stream-trapti without manifests looks like."""
    (build / cacti_build.MANIFEST).unlink()


def _truncate_manifest(build: Path) -> None:
    manifest = build / cacti_build.MANIFEST
    manifest.write_bytes(manifest.read_bytes()[:-5])


FILES_DIFFER = "its binary or technology files differ from those it was built with"
BUILD_DAMAGES: dict[str, tuple[Callable[[Path], None], str]] = {
    "no-binary": (_remove_binary, FILES_DIFFER),
    "truncated-binary": (_truncate_binary, FILES_DIFFER),
    "no-technology-file": (_remove_technology_file, FILES_DIFFER),
    "no-manifest": (_remove_manifest, "no build manifest"),
    "truncated-manifest": (_truncate_manifest, "its manifest is unreadable: its checksum does not match"),
}


@pytest.mark.parametrize(("damage", "reason"), BUILD_DAMAGES.values(), ids=BUILD_DAMAGES.keys())
def test_a_damaged_cacti_build_is_built_again(
    damage: Callable[[Path], None],
    reason: str,
    fake_compiles: list[Path],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    ensure_at = cacti_build._ensure_at.__wrapped__  # not the per-process memo: every call checks the build
    install = ensure_at(tmp_path)
    sound_binary = install.binary.read_bytes()
    assert ensure_at(tmp_path) == install and len(fake_compiles) == 1  # a whole build is reused

    damage(install.binary.parent)
    caplog.set_level(logging.WARNING)
    assert ensure_at(tmp_path) == install
    assert len(fake_compiles) == 2
    (warning,) = [r.getMessage() for r in caplog.records if r.name == cacti_build.logger.name]
    assert f"the CACTI build in {install.binary.parent} is unusable ({reason}" in warning
    assert install.binary.read_bytes() == sound_binary
    assert cacti_build._damage(install.binary.parent) is None
