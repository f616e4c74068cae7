"""Hugging Face ONNX exports imported into shape-only workloads Stream 2.1.1 parses.

:func:`stream_trapti.importer.pipeline.import_export` is the entry point (``stream-trapti import`` on the command
line); :func:`stream_trapti.importer.compose.trace_export` traces an export with one decoder layer solved and
repeated. Kept free of imports so the command line's ``--help`` stays fast.
"""
