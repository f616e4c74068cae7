"""One file of stream-trapti's disk caches: written atomically, self-checking, and healed when it is unusable.

An entry is one ASCII header line, ``stream-trapti-cache <schema> sha256:<hex digest of the payload>``, followed by
the payload (JSON, an archive, ...). The schema names what the payload holds and its version, so an entry written
by another version of stream-trapti is recognised rather than misread; the checksum catches a truncated or altered
payload before anything parses it.

A cache entry is never worth failing a run for: :func:`load` logs an unusable entry once, as a warning naming the
file, deletes it and reports a miss, so the caller recomputes the value and :func:`store` writes a whole new entry.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from pathlib import Path

from stream_trapti.atomic import atomic_write

logger = logging.getLogger(__name__)

MAGIC = "stream-trapti-cache"


class CorruptEntry(ValueError):
    """The bytes of a cache entry are not one whole entry of the expected schema."""


def seal(payload: bytes, schema: str) -> bytes:
    """``payload`` behind the header line that names ``schema`` and the payload's checksum."""
    return f"{MAGIC} {schema} sha256:{_digest(payload)}\n".encode() + payload


def unseal(data: bytes, schema: str) -> bytes:
    """The payload of the entry ``data``; raises :class:`CorruptEntry`, saying why, unless ``data`` is a whole entry
    of ``schema``."""
    header, newline, payload = data.partition(b"\n")
    label, _, digest = header.decode(errors="replace").rpartition(" sha256:")
    if not newline or not label.startswith(f"{MAGIC} "):
        raise CorruptEntry("not a stream-trapti cache entry, or cut short")
    if label != f"{MAGIC} {schema}":
        raise CorruptEntry(f"written as {label.removeprefix(MAGIC + ' ')!r}, this version reads {schema!r}")
    if digest != _digest(payload):
        raise CorruptEntry("its checksum does not match: truncated or altered")
    return payload


def store(path: Path, payload: bytes, schema: str) -> Path:
    """Write ``payload`` as the entry ``path`` of ``schema``, atomically: readers see the old entry or the new one."""
    return atomic_write(path, seal(payload, schema))


def load[T](path: Path, schema: str, decode: Callable[[bytes], T]) -> T | None:
    """The decoded payload of the entry ``path``, or None on a miss: no entry, or an unusable one (unsealable, or
    rejected by ``decode``), which is logged as a warning naming ``path`` and deleted so it is rewritten."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    try:
        return decode(unseal(data, schema))
    # Whatever a bad entry makes the decoder raise (a missing key, a field this version does not know, a value it
    # now rejects), the cure is the same: recompute. A decoder bug still shows, as this warning on every run.
    except Exception as error:
        reason = error if isinstance(error, CorruptEntry) else f"{type(error).__name__}: {error}"
        logger.warning("cache entry %s is unusable (%s); deleting it and recomputing", path, reason)
        path.unlink(missing_ok=True)
        return None


def _digest(payload: bytes) -> str:
    return hashlib.sha256(payload).hexdigest()
