"""Mutation fuzzer: `python -m analyzer.fuzz --packets N --seed S` (see run.py)."""

from .run import Report, fuzz, sources

__all__ = ["Report", "fuzz", "sources"]
