"""stream-trapti: TRAPTI (time-resolved analysis for SRAM banking and power gating) on Stream and ZigZag."""

__version__ = "0.1.0"
