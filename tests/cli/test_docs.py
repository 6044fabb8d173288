"""The project's own documentation stays true to the code it describes."""

from __future__ import annotations

import re
from pathlib import Path

from analyzer.topology.profile import KEYS

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_profile_reference_names_every_key():
    text = (DOCS / "profile.md").read_text()
    rows = set(re.findall(r"^\| `\[(\w+)\]` \| `(\w+)` \|", text, re.M))
    assert rows == {(s, k) for s, keys in KEYS.items() for k in keys}
