"""The trace of one step of an imported decoder, composed as :mod:`stream_trapti.inference` composes the builder's:
the embedding, the first decoder layer and the head solved once, the layer's groups repeated over the export's depth.
"""

from __future__ import annotations

from pathlib import Path

from stream_trapti.api import TraceOptions, TraceResult
from stream_trapti.importer.cached import import_cached, imported_depth, is_decode_export
from stream_trapti.inference import repeat_layers
from stream_trapti.provenance import file_identity, hardware_identity
from stream_trapti.scratch import scratch_directory, scratch_root
from stream_trapti.tracker.compose import compose
from stream_trapti.tracker.estimate import StreamEstimate
from stream_trapti.tracker.solve import solve_groups_cached


def trace_export(
    hardware: str | Path,
    export: str | Path,
    length: int,
    precision_bits: int = 8,
    options: TraceOptions | None = None,
    work_dir: str | Path | None = None,
) -> TraceResult:
    """The trace on ``hardware`` of the Hugging Face export ``export`` run for a prefill of ``length`` tokens (a
    decode export: one decode step after ``length`` cached ones), every decoder layer included, the LM head over the
    last position. Stream's outputs and
    the imported graph go under ``work_dir`` (default: a scratch directory under the cache root)."""
    options = options or TraceOptions()
    with scratch_directory(scratch_root(), "import") as scratch:
        root = Path(work_dir) if work_dir is not None else scratch
        one_layer = root / f"{Path(export).stem}_one_layer.onnx"
        # One layer, the LM head over the last position (as generation runs it), as trace_inference builds presets.
        import_cached(export, one_layer, length, precision_bits, first_layer_only=True, last_logits=True)
        groups = solve_groups_cached(hardware, one_layer, root / "stream", None, options.solve, options.cache())
        depth = imported_depth(one_layer)
    composed = repeat_layers(groups, depth)
    stream = StreamEstimate.of(composed)
    step = f"decode_P{length}" if is_decode_export(export) else f"prefill_L{length}"
    meta = {
        **stream.metadata(),
        "hardware": hardware_identity(hardware),
        "export": file_identity(export),
        "layers": str(depth),
        "precision_bits": str(precision_bits),
        "steps": step,
    }
    return TraceResult(compose(composed, window=options.window, metadata=meta), stream, tuple(composed))
