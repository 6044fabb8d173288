"""Shared test helpers: where the public sample captures live, and tshark as the oracle."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared" / "captures" / "public"
CAPTURES = REPO / "captures"


def public_capture(rel: str) -> Path:
    """Path of a shared public capture, or skip the test when the shared folder is absent."""
    p = SHARED / rel
    if not p.exists():
        pytest.skip(f"shared capture {rel} not present (../shared/captures/public is only on the dev machines)")
    return p


def public_captures() -> list[Path]:
    """Every shared capture (empty when the folder is absent)."""
    if not SHARED.is_dir():
        return []
    return sorted(p for p in SHARED.rglob("*") if p.suffix in (".pcap", ".pcapng", ".gz"))


def need_tshark() -> str:
    exe = shutil.which("tshark")
    if exe is None:
        pytest.skip("tshark not installed (.ci/run installs it)")
    return exe


def tshark_fields(
    path: Path, fields: list[str], *, display_filter: str = "", extra: list[str] | None = None
) -> list[list[str]]:
    """Rows of `tshark -T fields` (one list of strings per frame, empty string for an absent field)."""
    exe = need_tshark()
    cmd = [exe, "-n", "-r", str(path), "-T", "fields", "-E", "separator=\t", "-E", "occurrence=a", "-E", "aggregator=,"]
    for f in fields:
        cmd += ["-e", f]
    if display_filter:
        cmd += ["-Y", display_filter]
    cmd += extra or []
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return [line.split("\t") for line in out.splitlines()]
