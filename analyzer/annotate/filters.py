"""A Wireshark display filter per finding, showing its evidence, for the user to paste.

A finding with frames gets `frame.number in {9, 10, 15}` (commas: Wireshark 4 requires them), exactly
those frames in the capture they come from (`frames_file`; with several captures, a filter per file when
the frames are spread over them). A finding without frames that names a 5-tuple in its evidence gets a
filter on that conversation, both directions.
"""

from __future__ import annotations

import ipaddress
import os
import re

import pandas as pd

from .notes import finding_frame_files

_ADDR = r"(?:\[([0-9A-Fa-f:.]+)\]|(\d+\.\d+\.\d+\.\d+))"  # [IPv6] or IPv4: an unbracketed IPv6:port is ambiguous
_TUPLE_ARROW = re.compile(_ADDR + r":(\d+) <?-> " + _ADDR + r":(\d+)")
_TUPLE_REPR = re.compile(r"\('([0-9A-Fa-f:.]+)', (\d+), '([0-9A-Fa-f:.]+)', (\d+)\)")


def _ip_field(addr: str) -> str | None:
    try:
        return "ip.addr" if ipaddress.ip_address(addr).version == 4 else "ipv6.addr"
    except ValueError:
        return None


def conversation_filter(a: str, ap: int, b: str, bp: int, transport: str = "udp") -> str:
    """Both directions of one conversation (addresses and ports in either order)."""
    fa, fb = _ip_field(a), _ip_field(b)
    if fa is None or fb is None or transport not in ("udp", "tcp"):
        return ""
    addr = f"{fa} == {a}" if a == b else f"{fa} == {a} && {fb} == {b}"
    ports = f"{transport}.port == {ap}" if ap == bp else f"{transport}.port == {ap} && {transport}.port == {bp}"
    return f"{addr} && {ports}"


def display_filter(frames: list[int], evidence: str = "", flows: pd.DataFrame | None = None) -> str:
    """The filter for one finding: its frames, else the conversation its evidence names ("" if none)."""
    if frames:
        return "frame.number in {" + ", ".join(str(int(f)) for f in sorted(set(frames))) + "}"
    m = _TUPLE_ARROW.search(evidence or "")
    if m:
        g = m.groups()
        a, ap, b, bp = g[0] or g[1], int(g[2]), g[3] or g[4], int(g[5])
    elif m := _TUPLE_REPR.search(evidence or ""):
        a, ap, b, bp = m.group(1), int(m.group(2)), m.group(3), int(m.group(4))
    else:
        return ""
    if ap > 65535 or bp > 65535:
        return ""
    transport = "udp"
    if flows is not None and len(flows) and "transport" in flows.columns:
        hit = flows[
            ((flows.src == a) & (flows.sport == ap) & (flows.dst == b) & (flows.dport == bp))
            | ((flows.src == b) & (flows.sport == bp) & (flows.dst == a) & (flows.dport == ap))
        ]
        if len(hit):
            transport = str(hit.transport.iloc[0])
    return conversation_filter(a, ap, b, bp, transport)


def add_display_filters(findings: pd.DataFrame, a) -> pd.DataFrame:
    """The findings table with `display_filter` and `frames_file` (index into `files` of the capture the
    frame numbers belong to; missing when several captures were read and the frames are not all of one
    known file: the filter then names each file's frames, "client-a.pcap: frame.number in {9, 10};
    relay.pcap: frame.number in {41}", and frames whose file is unknown as "capture unknown: ...")."""
    findings = findings.copy()
    flows = a.flows if "flows" in a.tables else None
    filters, files = [], []
    for r in findings.itertuples(index=False):
        frames = [int(f) for f in (r.frames if isinstance(r.frames, list) else [])]
        named = getattr(r, "frame_files", None)
        if isinstance(named, list) and len(named) == len(frames) and any(n is not None for n in named):
            index = {os.path.basename(str(f)): i for i, f in enumerate(a.files)}  # the rules said which file
            pairs = [(f, index.get(n)) for f, n in zip(frames, named, strict=True)]
        else:
            where = finding_frame_files(a, r)
            pairs = [(f, where.get(f)) for f in frames]
        kinds = {i for _f, i in pairs}
        if len(a.files) == 1 or not frames or (len(kinds) == 1 and None not in kinds):
            filters.append(display_filter(frames, str(r.evidence), flows))
            files.append(0 if len(a.files) == 1 else (next(iter(kinds)) if frames else None))
            continue
        parts = []
        for i in sorted(k for k in kinds if k is not None) + ([None] if None in kinds else []):
            name = os.path.basename(a.files[i]) if i is not None else "capture unknown"
            parts.append(f"{name}: {display_filter([f for f, j in pairs if j == i])}")
        filters.append("; ".join(parts))
        files.append(None)
    findings["display_filter"] = filters  # the same string dtype as the other text columns
    findings["frames_file"] = pd.array(files, dtype="Int64")
    return findings
