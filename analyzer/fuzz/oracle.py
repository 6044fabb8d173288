"""What the fuzzer checks besides exceptions: no raw control character reaches the console."""

from __future__ import annotations

import re

# C0 controls but newline, DEL, and C1 controls: what a terminal would act upon
_RAW = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f]")


def raw_controls(text: str) -> list[str]:
    """The raw control characters in `text` (empty when it is safe to print)."""
    return _RAW.findall(text)
