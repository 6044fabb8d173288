"""Streaming a capture into PacketBatches, and the capture summary built from running aggregates."""

from __future__ import annotations

import os
import queue
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from .addresses import addr_strs
from .decode import (
    CLASS_NAMES,
    CLASS_NONE,
    PROTO_ESP,
    PROTO_ICMP,
    PROTO_ICMP6,
    PROTO_TCP,
    PROTO_UDP,
    ST_BAD_TIME,
    ST_EMPTY,
    ST_FRAGMENT,
    ST_MALFORMED,
    ST_SNAPLEN,
    ST_TRUNCATED,
    ST_UNKNOWN_LINK,
    PacketBatch,
    decode,
)
from .formats import LINKTYPE_NAMES, CaptureFile
from .timespan import TimeClusters
from .tunnels import ENC_NAMES

Progress = Callable[[int, int], None]  # (bytes done, bytes total)


def iter_batches(cap: CaptureFile, progress: Progress | None = None, *, ahead: bool = False) -> Iterator[PacketBatch]:
    """Decoded batches of an open capture, in frame order.

    With `ahead`, a second thread walks and decodes the next chunk while the caller works on this one:
    numpy lets go of the interpreter lock in its loops, so on two cores the capture layer mostly hides
    behind the stages. The thread is joined before this generator ends, however it ends."""
    batches = _read_ahead(cap) if ahead else _batches(cap)
    try:
        for batch, done in batches:
            if progress is not None and done:
                progress(min(done, cap.size), cap.size)
            yield batch
    finally:  # however this ends (a failing progress callback too), the read-ahead thread stops here
        batches.close()


def _batches(cap: CaptureFile, release: bool = True) -> Iterator[tuple[PacketBatch, int]]:
    for chunk in cap.chunks(release=release):
        batch = decode(chunk)
        flow_keys(batch)
        done = cap._src.base + int(chunk.data_off[-1] + chunk.caplen[-1]) if len(chunk) else 0
        yield batch, done


def _read_ahead(cap: CaptureFile, in_memory: int = 2) -> Iterator[tuple[PacketBatch, int]]:
    """At most `in_memory` chunks mapped at once: the caller's and the one the thread is building."""
    q: queue.Queue = queue.Queue()
    slots = threading.Semaphore(in_memory)
    stop = threading.Event()

    def produce() -> None:
        try:
            batches = _batches(cap, release=False)  # the caller's thread releases what it is done with
            while True:
                while not slots.acquire(timeout=0.05):
                    if stop.is_set():
                        return
                if stop.is_set():
                    return
                item = next(batches, None)
                q.put(_END if item is None else item)
                if item is None:
                    return
        except BaseException as exc:  # handed to the caller's thread, raised there
            q.put(_Failed(exc))

    worker = threading.Thread(target=produce, name="callflow-read-ahead", daemon=True)
    worker.start()
    try:
        while True:
            item = q.get()
            if item is _END:
                return
            if isinstance(item, _Failed):
                raise item.exc
            yield item
            if item[1]:  # the caller is done with this batch: its pages may go, not the next one's
                cap.release_before(item[1])
            slots.release()
    finally:
        stop.set()
        worker.join()


class _Failed(NamedTuple):
    exc: BaseException


_END = object()


def flow_keys(b: PacketBatch) -> np.ndarray:
    """A 64-bit key per packet for its bidirectional 5-tuple (same key both ways). Computed once per
    batch: the summary, the dissect stage and the flow table all ask for it."""
    cached = b.__dict__.get("_flow_keys")
    if cached is None:
        cached = b.__dict__["_flow_keys"] = _flow_keys(b)
    return cached


def _flow_keys(b: PacketBatch) -> np.ndarray:
    a = _mix(b.src_hi, b.src_lo, b.sport)
    c = _mix(b.dst_hi, b.dst_lo, b.dport)
    lo_ep = np.minimum(a, c)
    hi_ep = np.maximum(a, c)
    with np.errstate(over="ignore"):
        return (lo_ep * np.uint64(0x9E3779B97F4A7C15)) ^ (
            hi_ep + b.proto.astype(np.uint64) * np.uint64(0xBF58476D1CE4E5B9)
        )


def _mix(hi: np.ndarray, lo: np.ndarray, port: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        x = hi * np.uint64(0xFF51AFD7ED558CCD) ^ lo
        x = x * np.uint64(0xC4CEB9FE1A85EC53) ^ (port.astype(np.uint64) << np.uint64(17))
        x ^= x >> np.uint64(29)
        return x * np.uint64(0x94D049BB133111EB)


@dataclass
class CaptureSummary:
    """What `callflow summary` prints for one file."""

    file: str
    format: str
    compressed: bool
    size: int
    link_types: dict[str, int] = field(default_factory=dict)
    packets: int = 0
    bytes_captured: int = 0
    bytes_original: int = 0
    first_ts_ns: int | None = None
    last_ts_ns: int | None = None
    damaged: dict[str, int] = field(default_factory=dict)
    damage_notes: list[str] = field(default_factory=list)
    ip: dict[str, int] = field(default_factory=dict)
    udp_flows: int = 0
    tcp_flows: int = 0
    classes: dict[str, int] = field(default_factory=dict)
    vpn_candidates: int = 0
    blocks: dict[str, int] = field(default_factory=dict)
    encapsulations: dict[str, int] = field(default_factory=dict)  # packets found inside each kind of tunnel
    # time: the span above leaves out outliers; gaps and outliers are named by frame
    time_gaps: list[dict] = field(default_factory=list)
    time_outliers: list[dict] = field(default_factory=list)
    time_warnings: list[str] = field(default_factory=list)
    time_unknown: int = 0
    # from the dissect stage: classes confirmed / rejected by structure, and messages by name
    confirmed: dict[str, int] = field(default_factory=dict)
    rejected: dict[str, int] = field(default_factory=dict)
    messages: dict[str, int] = field(default_factory=dict)

    @property
    def duration_s(self) -> float:
        if self.first_ts_ns is None or self.last_ts_ns is None:
            return 0.0
        return (self.last_ts_ns - self.first_ts_ns) / 1e9

    def to_dict(self) -> dict:
        d = {k: v for k, v in self.__dict__.items()}
        d["duration_s"] = round(self.duration_s, 9)
        d["first_time"] = _iso(self.first_ts_ns)
        d["last_time"] = _iso(self.last_ts_ns)
        d["damaged_total"] = sum(self.damaged.values())
        return d


def _iso(ns: int | None) -> str | None:
    if ns is None:
        return None
    import datetime as _dt

    s, frac = divmod(ns, 1_000_000_000)
    t = _dt.datetime.fromtimestamp(s, tz=_dt.UTC)
    return t.strftime("%Y-%m-%dT%H:%M:%S") + f".{frac:09d}Z"


VPN_PORTS_UDP = (500, 4500, 51820, 1194)


class SummaryBuilder:
    """Running aggregates over batches: memory grows with the number of flows only."""

    def __init__(self, cap: CaptureFile) -> None:
        self.cap = cap
        self.s = CaptureSummary(cap.path, cap.format, cap._src.compressed, cap.size)
        self._lt: Counter = Counter()
        self._cls = np.zeros(len(CLASS_NAMES), dtype=np.int64)
        self._flows_udp: set[int] = set()
        self._flows_tcp: set[int] = set()
        self._dmg: Counter = Counter()
        self._ip: Counter = Counter()
        self._times = TimeClusters()
        self._enc = np.zeros(256, dtype=np.int64)

    def add(self, b: PacketBatch) -> None:
        s = self.s
        n = len(b)
        if n == 0:
            return
        s.packets += n
        s.bytes_captured += int(b.caplen.sum())
        s.bytes_original += int(b.origlen.sum())
        if b.encap.any():
            self._enc += np.bincount(b.encap, minlength=256)
        timed = (b.status & ST_BAD_TIME) == 0
        if timed.all():
            self._times.add(b.ts_ns, b.frame)
        else:
            self._times.add(b.ts_ns[timed], b.frame[timed])
            s.time_unknown += int(n - np.count_nonzero(timed))
        for lt, c in zip(*np.unique(b.linktype, return_counts=True), strict=True):
            self._lt[int(lt)] += int(c)
        st = b.status
        for bit, name in (
            (ST_SNAPLEN, "snaplen cut"),
            (ST_TRUNCATED, "header cut short"),
            (ST_MALFORMED, "malformed header"),
            (ST_EMPTY, "zero-length record"),
            (ST_FRAGMENT, "IP fragment (not reassembled)"),
            (ST_UNKNOWN_LINK, "unsupported link type"),
        ):
            k = int(np.count_nonzero(st & bit))
            if k:
                self._dmg[name] += k
        self._ip["ipv4"] += int(np.count_nonzero(b.ip_version == 4))
        self._ip["ipv6"] += int(np.count_nonzero(b.ip_version == 6))
        isip = b.ip_version > 0
        p = b.proto
        self._ip["udp"] += int(np.count_nonzero(isip & (p == PROTO_UDP)))
        self._ip["tcp"] += int(np.count_nonzero(isip & (p == PROTO_TCP)))
        self._ip["icmp"] += int(np.count_nonzero(isip & ((p == PROTO_ICMP) | (p == PROTO_ICMP6))))
        self._ip["esp"] += int(np.count_nonzero(isip & (p == PROTO_ESP)))
        udp = isip & (p == PROTO_UDP) & (b.sport > 0)
        tcp = isip & (p == PROTO_TCP) & (b.sport > 0)
        keys = flow_keys(b)
        if udp.any():
            self._flows_udp.update(np.unique(keys[udp]).tolist())
        if tcp.any():
            self._flows_tcp.update(np.unique(keys[tcp]).tolist())
        self._cls += np.bincount(b.cls, minlength=len(CLASS_NAMES))
        vpn = isip & (
            (p == PROTO_ESP)
            | (p == 51)
            | ((p == PROTO_UDP) & (np.isin(b.sport, VPN_PORTS_UDP) | np.isin(b.dport, VPN_PORTS_UDP)))
            | ((p == PROTO_TCP) & ((b.sport == 1194) | (b.dport == 1194)))
        )
        s.vpn_candidates += int(np.count_nonzero(vpn))

    def finish(self) -> CaptureSummary:
        s = self.s
        s.link_types = {f"{LINKTYPE_NAMES.get(lt, 'unsupported')} ({lt})": c for lt, c in sorted(self._lt.items())}
        dmg = Counter(self.cap.damage.counts)
        dmg.update(self._dmg)
        s.damaged = dict(dmg)
        s.damage_notes = list(self.cap.damage.notes)
        s.ip = {k: v for k, v in self._ip.items() if v}
        s.udp_flows = len(self._flows_udp)
        s.tcp_flows = len(self._flows_tcp)
        s.classes = {name: int(self._cls[i]) for i, name in enumerate(CLASS_NAMES) if i != CLASS_NONE}
        s.blocks = dict(self.cap.block_counts)
        s.encapsulations = {
            name: int(self._enc[[k for k in range(256) if k & bit]].sum()) for bit, name in ENC_NAMES.items()
        }
        s.encapsulations = {k: v for k, v in s.encapsulations.items() if v}
        tr = self._times.report()
        s.first_ts_ns, s.last_ts_ns = tr.first_ns, tr.last_ns
        s.time_gaps, s.time_outliers, s.time_warnings = tr.gaps, tr.outliers, tr.warnings
        if s.time_unknown:
            s.time_warnings.append(
                f"{s.time_unknown} packet{'s' if s.time_unknown > 1 else ''} without a usable timestamp "
                "(shown at the time of the packet before)"
            )
        return s


def summarize(path: str | os.PathLike, progress: Progress | None = None) -> CaptureSummary:
    """Read a whole capture and return its summary (raises CaptureError if unreadable)."""
    with CaptureFile(path) as cap:
        sb = SummaryBuilder(cap)
        for b in iter_batches(cap, progress, ahead=True):
            sb.add(b)
        return sb.finish()


class Payload(NamedTuple):
    """One transport payload with its addressing: the unit the per-packet dissectors consume."""

    frame: int
    ts_ns: int
    src: str
    sport: int
    dst: str
    dport: int
    proto: int  # 6 TCP, 17 UDP
    payload: bytes
    tcp_seq: int
    tcp_flags: int


def iter_payloads(path: str | os.PathLike, classes: set[str] | None = None) -> Iterator[Payload]:
    """UDP and TCP payloads of a capture in frame order, optionally only those whose RFC 7983 class
    is in `classes`. Meant for control traffic and tests; the bulk path stays columnar."""
    want = None if classes is None else np.array([CLASS_NAMES.index(c) for c in classes], dtype=np.uint8)
    with CaptureFile(path) as cap:
        for b in iter_batches(cap):
            ok = (b.ip_version > 0) & ((b.proto == PROTO_UDP) | (b.proto == PROTO_TCP))
            ok &= (b.status & (ST_FRAGMENT | ST_MALFORMED)) == 0
            if want is not None:
                ok &= np.isin(b.cls, want)
            idx = np.flatnonzero(ok)
            if idx.size == 0:
                continue
            srcs = addr_strs(b.src_hi[idx], b.src_lo[idx])
            dsts = addr_strs(b.dst_hi[idx], b.dst_lo[idx])
            for j, i in enumerate(idx.tolist()):
                yield Payload(
                    int(b.frame[i]),
                    int(b.ts_ns[i]),
                    srcs[j],
                    int(b.sport[i]),
                    dsts[j],
                    int(b.dport[i]),
                    int(b.proto[i]),
                    b.payload(i),
                    int(b.tcp_seq[i]),
                    int(b.tcp_flags[i]),
                )
