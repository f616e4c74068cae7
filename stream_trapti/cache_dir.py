"""Where stream-trapti keeps what it can reuse across runs: built CACTI, CACTI results and solved groups."""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "STREAM_TRAPTI_CACHE"
"""Environment variable that overrides the cache root (default ``~/.cache/stream-trapti``)."""


def cache_root() -> Path:
    """The stream-trapti cache directory: ``$STREAM_TRAPTI_CACHE`` or ``~/.cache/stream-trapti``."""
    override = os.environ.get(CACHE_ENV)
    return Path(override).expanduser() if override else Path.home() / ".cache" / "stream-trapti"
