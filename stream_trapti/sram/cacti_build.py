"""Build our own, patched copy of the CACTI 7 source that zigzag-dse ships.

ZigZag's prebuilt ``cacti`` is an unoptimised debug build and its power-gating model aborts at 22-65 nm, and ZigZag
runs it inside site-packages. We therefore copy the source into a cache directory of ours, patch it, and compile it
once per (source, patch, flags) fingerprint. Builds are serialised with a file lock and published with an atomic
rename, so a concurrent process never sees a half-built binary. A finished build records a manifest, the checksums of
its binary and technology files: a build without one, or whose files no longer match it, is logged, removed and built
again.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.util
import json
import logging
import os
import platform
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from stream_trapti import cache_entry
from stream_trapti.atomic import atomic_directory
from stream_trapti.cache_dir import CACHE_ENV, cache_root
from stream_trapti.subprocesses import run_child

X86_MACHINES = frozenset({"x86_64", "amd64", "i386", "i486", "i586", "i686", "x86"})
"""``platform.machine()`` names of the x86 family, whose compilers take ``-msse2 -mfpmath=sse``."""


def compiler_flags(machine: str) -> str:
    """The ``OPT`` flags CACTI is compiled with on ``machine`` (a ``platform.machine()`` name).

    CACTI's own makefile ("make opt") compiles without -O; -O2 makes each query several times faster. On x86,
    ``-msse2 -mfpmath=sse`` (from CACTI's makefile) computes doubles in SSE registers rather than the x87's 80-bit
    ones (the default of 32-bit x86 only), so no figure depends on where the compiler spills a register. Other
    compilers reject those flags; their FPUs compute doubles in double precision already, and ``-ffp-contract=off``
    stops GCC from fusing a multiply and an add into one rounding (its default wherever the target has fused
    multiply-add: ARM64, POWER, RISC-V), which x86-64 without ``-march`` never does. ``NTHREADS`` is the number of
    threads one CACTI query searches its organisations with.
    """
    if machine.lower() in X86_MACHINES:
        return "-O2 -msse2 -mfpmath=sse -DNTHREADS=2"
    return "-O2 -ffp-contract=off -DNTHREADS=2"


def make_variables(machine: str) -> dict[str, str]:
    """The variables ``make opt`` is given on ``machine``. CACTI's makefile sets ``CXX = g++ -m64``, and ``-m64`` is
    an x86 and POWER option; plain ``g++`` compiles for its own target (64-bit on x86-64, as before)."""
    return {"CXX": "g++", "OPT": compiler_flags(machine)}


MAKE_VARIABLES = make_variables(platform.machine())
"""This machine's CACTI build variables; :func:`fingerprint` covers them, so each set has its own build and results."""


def available_cpus() -> int:
    """CPUs this process may run on: its affinity mask where the OS has one, else ``os.cpu_count()``."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


MANIFEST = "stream-trapti-build.json"
MANIFEST_SCHEMA = "cacti-build 1"

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SourcePatch:
    """A literal replacement in one CACTI source file; ``old`` must occur exactly once."""

    path: str
    old: str
    new: str
    reason: str


# CACTI's power-gating model aborts at 22-65 nm ("component.cc: Assertion `w_folded_pmos > 0'"). Backtrace:
# Decoder::compute_power_gating (decoder.cc) passes the decoder's own footprint to Sleep_tx, whose constructor
# (powergating.cc) lays the sleep transistor out with a gate height of 2 * footprint.w. For a narrow decoder that
# height is below the two power rails plus the p/n gap, so Component::compute_gate_area gets a negative
# transistor region. We clamp the gate height to the decoder's cell height (area.h = h_dec memory-cell heights, the
# height the decoder's own gates are laid out at). The footprint area is unchanged (Sleep_tx keeps w * h constant)
# and the code only runs with power gating on, so non-gated results are bit-identical.
POWER_GATING_PATCH = SourcePatch(
    path="decoder.cc",
    old=(
        "  if (g_ip->power_gating)\n"
        "    sleeptx = new Sleep_tx(g_ip->perfloss, Isat_subarray, is_footer, c_wakeup,\n"
        "                           detalV, nodes_DSTN, area);\n"
    ),
    new=(
        "  // stream-trapti patch: Sleep_tx uses 2 * w as the gate height; keep it at least the decoder cell height\n"
        "  // (area.h) so it never falls below the power rails (Assertion `w_folded_pmos > 0' at 22-65 nm).\n"
        "  Area sleep_tx_footprint = area;\n"
        "  sleep_tx_footprint.w = MAX(area.w, area.h / 2);\n"
        "  if (g_ip->power_gating)\n"
        "    sleeptx = new Sleep_tx(g_ip->perfloss, Isat_subarray, is_footer, c_wakeup,\n"
        "                           detalV, nodes_DSTN, sleep_tx_footprint);\n"
    ),
    reason="clamp the decoder sleep transistor's gate height (power-gating assertion at 22-65 nm)",
)

# CACTI prints the leakage of the H-trees only as one sum of the in-bank trees (part of every bank) and the routing
# between the banks of a UCA (one network, shared by all banks, which its "leakage of a bank" also includes). We print
# the routing on its own so it can be counted once. Output only: no figure CACTI computes changes.
ROUTING_LEAKAGE_PATCH = SourcePatch(
    path="io.cc",
    old=(
        "                 fr->data_array2->power_routing_to_bank.readOp.gate_leakage) *\n"
        "                    1e3\n"
        "             << endl;\n"
    ),
    new=(
        "                 fr->data_array2->power_routing_to_bank.readOp.gate_leakage) *\n"
        "                    1e3\n"
        "             << endl;\n"
        "        // stream-trapti patch: the routing between banks on its own (shared by all banks of the UCA).\n"
        '        cout << "\\tLeakage power of the routing to banks (mW): "\n'
        "             << fr->data_array2->power_routing_to_bank.readOp.leakage * 1e3 << endl;\n"
        '        cout << "\\tGate leakage power of the routing to banks (mW): "\n'
        "             << fr->data_array2->power_routing_to_bank.readOp.gate_leakage * 1e3 << endl;\n"
    ),
    reason="print the leakage of the routing between banks on its own",
)

PATCHES: tuple[SourcePatch, ...] = (POWER_GATING_PATCH, ROUTING_LEAKAGE_PATCH)


class CactiBuildError(RuntimeError):
    """CACTI could not be built (no compiler, unexpected source, compile failure)."""


@dataclass(frozen=True)
class CactiInstall:
    """A built CACTI: the binary, the technology files it reads relative to its working directory, and the
    fingerprint of source + patches + flags that results computed with it are keyed by."""

    binary: Path
    tech_params: Path
    fingerprint: str


def shipped_source_dir() -> Path:
    """The CACTI source directory inside the installed zigzag-dse (read only: we never write there)."""
    # Located, not imported: Stage II runs without loading ZigZag (zigzag-dse is a dependency, so it is found).
    return Path(importlib.util.find_spec("zigzag").origin).resolve().parent / "cacti" / "cacti_master"


def _source_files(source: Path) -> list[Path]:
    """Files needed to build and run CACTI, relative to ``source``, in a stable order."""
    names = [p for p in source.iterdir() if p.suffix in {".cc", ".h"}]
    names += [source / "makefile", source / "cacti.mk", source / "contention.dat"]
    names += list((source / "tech_params").glob("*.dat"))
    missing = [p for p in names if not p.is_file()]
    if missing:
        raise CactiBuildError(
            f"CACTI source at {source} is incomplete (missing {missing[0].name}); reinstall zigzag-dse."
        )
    return sorted(p.relative_to(source) for p in names)


def fingerprint(source: Path) -> str:
    """Hash of the CACTI source, our patches and the make variables (compiler, flags): it names the build and keys
    cached results."""
    digest = hashlib.sha256()
    for rel in _source_files(source):
        digest.update(str(rel).encode() + b"\0" + (source / rel).read_bytes() + b"\0")
    for patch in PATCHES:
        digest.update(f"{patch.path}\0{patch.old}\0{patch.new}\0".encode())
    for name, value in sorted(MAKE_VARIABLES.items()):
        digest.update(f"{name}={value}\0".encode())
    return digest.hexdigest()[:16]


def apply_patch(directory: Path, patch: SourcePatch) -> None:
    """Apply ``patch`` to the copy in ``directory``; fail loudly if the shipped source is not the one we patch."""
    target = directory / patch.path
    text = target.read_text()
    count = text.count(patch.old)
    if count != 1:
        raise CactiBuildError(
            f"cannot apply the stream-trapti CACTI patch ({patch.reason}): expected the original code once in "
            f"{patch.path}, found it {count} times. The zigzag-dse CACTI source changed; pin zigzag-dse==3.9.1."
        )
    target.write_text(text.replace(patch.old, patch.new))


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """Exclusive advisory lock held while the block runs (released by the kernel if the process dies)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _check_toolchain() -> None:
    missing = [tool for tool in ("make", "g++") if shutil.which(tool) is None]
    if missing:
        raise CactiBuildError(
            f"building CACTI needs a C++ toolchain but {', '.join(missing)} is not on PATH; install one "
            "(e.g. `apt-get install build-essential`) or point "
            f"{CACHE_ENV} at a cache that already holds a built CACTI."
        )


def _compile(staging: Path, source: Path) -> None:
    for rel in _source_files(source):
        (staging / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source / rel, staging / rel)
    for patch in PATCHES:
        apply_patch(staging, patch)
    # make and its compilers die with us, and keep their temporary files in the staging directory: a killed build
    # leaves only the staging directory, which the next run removes.
    variables = [f"{name}={value}" for name, value in MAKE_VARIABLES.items()]
    result = run_child(["make", "opt", f"-j{available_cpus()}", *variables], cwd=staging)
    if result.returncode != 0 or not (staging / "cacti").is_file():
        tail = "\n".join((result.stdout + result.stderr).splitlines()[-20:])
        raise CactiBuildError(f"compiling CACTI in {staging} failed (exit {result.returncode}):\n{tail}")
    # Objects are only needed by make; the binary and the technology files are what queries use.
    shutil.rmtree(staging / "obj_opt", ignore_errors=True)


def ensure_cacti() -> CactiInstall:
    """Return the built CACTI for this source and patch set under ``cache_root()``, compiling it first if no process
    has yet (about 30-60 s on two cores).

    Raises CactiBuildError if there is no C++ toolchain or the build fails.
    """
    return _ensure_at(cache_root())


@cache
def _ensure_at(root: Path) -> CactiInstall:
    source = shipped_source_dir()
    key = fingerprint(source)
    final = root / "cacti" / key
    install = CactiInstall(binary=final / "cacti", tech_params=final / "tech_params", fingerprint=key)
    if _damage(final) is None:
        return install
    with _file_lock(root / "cacti" / f"{key}.lock"):
        damage = _damage(final)
        if damage is None:  # another process built it while we waited for the lock
            return install
        if final.exists():
            logger.warning("the CACTI build in %s is unusable (%s); deleting it and building it again", final, damage)
            shutil.rmtree(final)
        _check_toolchain()
        with atomic_directory(final) as staging:
            _compile(staging, source)
            _write_manifest(staging)
    return install


def _build_digests(directory: Path) -> dict[str, str]:
    """The sha256 of each file a query uses (the binary and the technology files), by path relative to ``directory``."""
    files = sorted(p for p in [directory / "cacti", *(directory / "tech_params").rglob("*")] if p.is_file())
    return {str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def _write_manifest(directory: Path) -> None:
    payload = json.dumps(_build_digests(directory), indent=1, sort_keys=True).encode()
    cache_entry.store(directory / MANIFEST, payload, MANIFEST_SCHEMA)


def _damage(directory: Path) -> str | None:
    """Why the build in ``directory`` cannot be used, or None when it is whole: its manifest is sound and matches the
    binary and technology files."""
    try:
        recorded = json.loads(cache_entry.unseal((directory / MANIFEST).read_bytes(), MANIFEST_SCHEMA))
    except FileNotFoundError:
        return "no build manifest: the build never finished, or an older stream-trapti made it"
    except (OSError, ValueError) as error:  # CorruptEntry and bad JSON are ValueErrors
        return f"its manifest is unreadable: {error}"
    if recorded != _build_digests(directory):
        return "its binary or technology files differ from those it was built with"
    return None
