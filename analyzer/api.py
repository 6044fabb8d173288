"""The Python API: `analyze()` reads one or more captures of a call and returns an `Analysis`.

One pass over each file feeds every stage batch by batch; each stage keeps running state bounded by
flows and streams. The tables are built from that state when first asked for, so `callflow summary`
never pays for pandas.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .capture import CaptureFile, CaptureSummary, SummaryBuilder, iter_batches
from .capture.icmp import IcmpCollector
from .capture.memory import give_back_memory
from .dissect.stage import DissectResult, DissectStage
from .ice.paths import PathCounter
from .media.streams import MediaStage
from .topology.flows import FlowTable
from .topology.profile import NetworkProfile

if TYPE_CHECKING:  # pandas is imported only when a table is asked for
    import pandas as pd

PathLike = str | os.PathLike
Progress = Callable[[int, int], None]

DISSECT_TABLES = frozenset(("summary", "stun", "dtls", "transactions", "dtls_sessions", "icmp"))
# table name -> builder(analysis) ; the stages register theirs here
_BUILDERS: dict[str, Callable[[Analysis], Any]] = {}


def _table(name: str):
    def register(fn):
        _BUILDERS[name] = fn
        return fn

    return register


@dataclass
class Analysis:
    """Everything learned from the captures. Tables (pandas DataFrames, columns in docs/tables.md)
    are attributes: `a.stun`, `a.dtls`, `a.transactions`, `a.dtls_sessions`, `a.summary`. Rows that come
    from packets carry `file` (index into `files`) and `frame` (Wireshark's frame number)."""

    files: list[str]
    captures: list[CaptureSummary]
    dissect: list[DissectResult]
    paths: PathCounter = field(default_factory=PathCounter)
    profile: NetworkProfile = field(default_factory=NetworkProfile)
    flow_tables: list[FlowTable] = field(default_factory=list)
    stages: str = "all"
    media: list = field(default_factory=list)  # MediaResult per file
    icmp_errors: list = field(default_factory=list)  # IcmpCollector per file
    decrypt: list = field(default_factory=list)  # DecryptStage per file, when keys were given
    audio_payloads: list = field(default_factory=list)  # AudioCollector per file, when audio was asked for
    _cache: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def tables(self) -> list[str]:
        """Names of the tables this analysis can give."""
        if self.stages != "all":
            return sorted(DISSECT_TABLES)
        return sorted(_BUILDERS)

    def __getattr__(self, name: str) -> Any:
        builders = _BUILDERS
        if name.startswith("_") or name not in builders:
            raise AttributeError(f"Analysis has no table {name!r} (tables: {', '.join(sorted(builders))})")
        if self.__dict__.get("stages", "all") != "all" and name not in DISSECT_TABLES:
            raise AttributeError(f"table {name!r} needs analyze(..., stages='all')")
        cache = self.__dict__["_cache"]
        if name not in cache:
            cache[name] = _normalize(self._build(name))
            give_back_memory()  # building a table leaves freed temporaries in the heap
        return cache[name]

    def __getitem__(self, name: str) -> Any:
        """`a["calls"]` is `a.calls`."""
        if not isinstance(name, str) or name not in self.tables:
            raise KeyError(name)
        return getattr(self, name)

    def __dir__(self) -> list[str]:
        """The tables too, so Jupyter completes `a.<tab>`."""
        return sorted(set(super().__dir__()) | set(self.tables))

    def __repr__(self) -> str:
        """A few lines: files, packets, calls and findings (the tables are built only if already built)."""
        files = ", ".join(os.path.basename(f) for f in self.files)
        lines = [f"<Analysis of {len(self.files)} capture(s): {files}>",
                 f"  packets: {sum(c.packets for c in self.captures):,}"]
        if self.stages == "all":
            calls, findings = self.calls, self.findings
            verdicts = ", ".join(f"{r.call}: {r.topology}" for r in calls.itertuples()) or "none"
            lines.append(f"  calls: {len(calls)} ({verdicts})")
            by = findings.severity.value_counts().to_dict() if len(findings) else {}
            lines.append(f"  findings: {len(findings)}" + (f" ({', '.join(f'{v} {k}' for k, v in by.items())})"
                                                          if by else ""))
        lines.append(f"  tables: {', '.join(self.tables)}")
        return "\n".join(lines)
    def _build(self, name: str) -> Any:
        """Build one table. A failure of the outermost build is salvaged: the rows it cannot handle are
        left out and counted as damaged (analyzer/salvage.py), so one bad row never ends the analysis."""
        d = self.__dict__
        d["_depth"] = d.get("_depth", 0) + 1
        try:
            return _BUILDERS[name](self)
        except Exception as exc:
            if d["_depth"] > 1 or name in DISSECT_TABLES:
                raise
            from .salvage import salvage

            return salvage(self, name, lambda: _BUILDERS[name](self), exc)
        finally:
            d["_depth"] -= 1

    def timeline(self):
        """Plotly figure: lanes per endpoint pair with STUN/TURN messages (success green, error red,
        unanswered hollow), DTLS flights and media spans; ICE connected/nominated/first-media marks; per-stream
        bitrate, loss and jitter from the 1-second series below. x: seconds from the capture start."""
        from .report.timeline import timeline

        return timeline(self)

    def ladder(self):
        """Plotly sequence diagram: endpoints as columns (zone, candidate type), arrows for Allocate, Refresh,
        CreatePermission, ChannelBind, USE-CANDIDATE checks and DTLS flights; media as shaded bands."""
        from .report.ladder import ladder

        return ladder(self)

    def path_diagram(self):
        """Plotly figure: each call's selected path across the zones (customer network, VPN, internet,
        cloud) with hops, transports, flow labels and the findings on the hop they concern."""
        from .report.path import path_diagram

        return path_diagram(self)

    def to_json(self, path: PathLike | None = None, *, indent: int | None = None) -> str:
        """Every table as JSON ({"files", "captures", "tables": {name: [rows]}}); written to `path` if given."""
        from .report.export import to_json

        return to_json(self, path, indent=indent)

    def to_parquet(self, folder: PathLike) -> list:
        """One Parquet file per table in `folder` (dtypes kept); returns the paths written."""
        from .report.export import to_parquet

        return to_parquet(self, folder)

    def write_decrypted(self, outputs: list[PathLike]) -> list:
        """Each capture as pcapng with its SRTP/SRTCP replaced by the plaintext (analyze(..., plaintext=True)
        with keys): the tag's bytes become RTP padding, so every length stays and Wireshark plays the
        audio. Returns the copies' reports (annotate.copy.CopyReport)."""
        from .annotate.copy import copy_with_comments

        spills = [d.spill for d in self.decrypt]
        if not spills or any(s is None for s in spills):
            raise ValueError("write_decrypted needs analyze(..., keylog=... or srtp_keys=..., plaintext=True)")
        reports = []
        for path, out, spill in zip(self.files, outputs, spills, strict=True):
            note = (f"callflow-analyzer: {spill.count:,} SRTP/SRTCP packets replaced by their plaintext; the "
                    "authentication tag's bytes are now RTP/RTCP padding (lengths unchanged)")
            rep = copy_with_comments(os.fspath(path), os.fspath(out), {}, [note], patches=spill)
            rep.not_rewritable = spill.not_rewritable
            reports.append(rep)
        return reports

    def write_audio(self, folder: PathLike) -> list:
        """One WAV file per decoded audio stream in `folder` (analyze(..., audio=True) or with keys);
        returns the paths written."""
        from pathlib import Path

        from .decrypt.audio import write_wav

        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        table, decoded, _ = _audio(self)
        written = []
        for r in table.itertuples(index=False):
            base = os.path.splitext(os.path.basename(self.files[r.file]))[0]
            name = f"{base}-stream{r.stream}-ssrc{r.ssrc:08x}-{r.src}-{r.sport}.wav"
            written.append(write_wav(decoded[(r.file, r.stream)], out / name.replace(":", "_")))
        return written

    def to_html(self, path: PathLike):
        """The self-contained HTML report (verdict, findings, the three figures, the tables) at `path`."""
        from .report.html import write_html

        return write_html(self, path)


@_table("summary")
def _summary(a: Analysis) -> pd.DataFrame:
    import pandas as pd

    rows = []
    for i, s in enumerate(a.captures):
        d = s.to_dict()
        rows.append({
            "file": i, "path": s.file, "format": s.format, "packets": s.packets, "bytes": s.bytes_captured,
            "first_time": d["first_time"], "last_time": d["last_time"], "duration_s": d["duration_s"],
            "damaged": d["damaged_total"], "udp_flows": s.udp_flows, "tcp_flows": s.tcp_flows,
            **{f"class_{k}": v for k, v in s.classes.items()},
        })
    return pd.DataFrame(rows)


@_table("stun")
def _stun(a: Analysis) -> pd.DataFrame:
    from .dissect.tables import stun_table

    return stun_table([d.control for d in a.dissect])


@_table("dtls")
def _dtls(a: Analysis) -> pd.DataFrame:
    from .dissect.tables import dtls_table

    return dtls_table([d.control for d in a.dissect])


@_table("transactions")
def _transactions(a: Analysis) -> pd.DataFrame:
    from .dissect.tables import transactions_table

    return transactions_table([d.control for d in a.dissect])


@_table("dtls_sessions")
def _dtls_sessions(a: Analysis) -> pd.DataFrame:
    from .dissect.tables import dtls_sessions_table

    df = dtls_sessions_table([d.control for d in a.dissect])
    if a.decrypt:
        from .decrypt.tables import with_keys

        df = with_keys(df, a.decrypt)
    return df


@_table("icmp")
def _icmp(a: Analysis) -> pd.DataFrame:
    from .capture.icmp import icmp_table

    return icmp_table(a.icmp_errors)


@_table("allocations")
def _allocations(a: Analysis) -> pd.DataFrame:
    from .ice.allocations import build_allocations

    return build_allocations(a.stun, [d.control.relay_traffic for d in a.dissect])


def _ice(a: Analysis) -> tuple[pd.DataFrame, ...]:
    if "_ice" not in a._cache:
        from .ice import sessions
        from .ice.candidates import CandidateBook

        book = CandidateBook(a.profile)
        book.learn_servers(a.stun, a.allocations)
        end = max((c.last_ts_ns or 0) for c in a.captures) if a.captures else 0
        ice = sessions.build(a.stun, book, a.paths.paths(), _dtls_paths(a), end)
        a._cache["_ice"] = (book.table(), ice.sessions, ice.pairs, ice.nominations, ice.path_history)
    return a._cache["_ice"]


def _dtls_paths(a: Analysis) -> list:
    """DTLS datagrams per 5-tuple (inner when relayed): evidence of the pair that was used."""
    from .ice.paths import MediaPath

    d = a.dtls
    out = []
    if len(d) == 0:
        return out
    g = d.groupby(["src", "sport", "dst", "dport"], observed=True, dropna=False)
    for (src, sport, dst, dport), rows in g:
        out.append(MediaPath(src, int(sport), dst, int(dport), "", 0, "", 0, bool(rows.relayed.iloc[0]), 0, len(rows),
                             int(rows.length.sum()), int(rows.frame.iloc[0]), int(rows.ts_ns.iloc[0]),
                             int(rows.frame.iloc[-1]), int(rows.ts_ns.iloc[-1])))
    return out


@_table("candidates")
def _candidates(a: Analysis) -> pd.DataFrame:
    return _ice(a)[0]


@_table("sessions")
def _sessions(a: Analysis) -> pd.DataFrame:
    return _ice(a)[1]


@_table("pairs")
def _pairs(a: Analysis) -> pd.DataFrame:
    from .topology.icmp_evidence import with_pair_icmp

    return with_pair_icmp(_ice(a)[2], a.icmp)


@_table("nominations")
def _nominations(a: Analysis) -> pd.DataFrame:
    return _ice(a)[3]


@_table("path_history")
def _path_history(a: Analysis) -> pd.DataFrame:
    return _ice(a)[4]


def _zones(a: Analysis):
    if "_zones" not in a._cache:
        from .topology.zones import ZoneMap

        zm = ZoneMap(a.profile)
        zm.learn([f for t in a.flow_tables for f in t.rows()], a.stun, a.allocations)
        a._cache["_zones"] = zm
    return a._cache["_zones"]


@_table("flows")
def _flows(a: Analysis) -> pd.DataFrame:
    from .topology.icmp_evidence import with_flow_icmp
    from .topology.labels import build_flows

    flows = build_flows([f for t in a.flow_tables for f in t.rows()], _zones(a), a.stun, a.paths.paths(), a.dtls)
    return with_flow_icmp(flows, a.icmp, a.files)


@_table("streams")
def _streams(a: Analysis) -> pd.DataFrame:
    from .media.tables import streams_table

    df = streams_table(a.media)
    if a.decrypt:
        from .decrypt.tables import with_decryption

        df = with_decryption(df, a.decryption)
    return df


@_table("decryption")
def _decryption(a: Analysis) -> pd.DataFrame:
    from .decrypt.tables import decryption_table

    return decryption_table(a.decrypt)


@_table("media_timeseries")
def _media_timeseries(a: Analysis) -> pd.DataFrame:
    from .media.tables import timeseries_table

    df = timeseries_table(a.media)
    if a.audio_payloads:  # the decoded audio's level beside the packet counts of the same second
        df = df.merge(_audio(a)[2], on=["file", "stream", "second"], how="left")
    return df


def _audio(a: Analysis):
    if "_audio" not in a._cache:
        from .decrypt.tables import decode_streams

        a._cache["_audio"] = decode_streams(a.streams, a.audio_payloads)
    return a._cache["_audio"]


@_table("audio")
def _audio_table(a: Analysis) -> pd.DataFrame:
    """Per audio stream: codec, decoded seconds, level, silence, dominant frequency (empty without audio)."""
    return _audio(a)[0]


@_table("rtcp_reports")
def _rtcp_reports(a: Analysis) -> pd.DataFrame:
    from .media.tables import rtcp_reports_table

    return rtcp_reports_table(a.media)


@_table("round_trips")
def _round_trips(a: Analysis) -> pd.DataFrame:
    from .topology.quality import round_trips

    return round_trips(a)


@_table("media_directions")
def _media_directions(a: Analysis) -> pd.DataFrame:
    from .media.tables import directions_table

    return directions_table(a.media)


def _topology(a: Analysis):
    if "_topology" not in a._cache:
        from .topology.calls import build_calls, calls_table
        from .topology.findings import build_findings, findings_table, tunnel_findings

        zm = _zones(a)
        calls = build_calls(a, zm, a.paths.paths())
        found = build_findings(a, calls, zm)
        found += tunnel_findings(a, zm, calls, found)
        if a.audio_payloads:
            from .topology.content import content_findings

            found += content_findings(a, calls)
        a._cache["_topology"] = (calls_table(calls, a.flows, zm), findings_table(found, a.files))
    return a._cache["_topology"]


@_table("calls")
def _calls(a: Analysis) -> pd.DataFrame:
    return _topology(a)[0]


@_table("findings")
def _findings(a: Analysis) -> pd.DataFrame:
    from .annotate.filters import add_display_filters

    return add_display_filters(_topology(a)[1], a)  # a Wireshark filter per finding, for pasting


_ADDRESS = re.compile(r"^(src|dst|address|client|server|sender|receiver)$|_(src|dst|address)$")
_PORT = re.compile(r"(^|_)[sd]?port$")


def _normalize(df):
    """Stable dtypes whatever the rows: every time column is datetime64[ns, UTC], even when empty; every
    address one string dtype (never categorical in one table and text in the next), every port Int64."""
    import pandas as pd

    if not isinstance(df, pd.DataFrame):
        return df
    for c in df.columns:
        if not isinstance(c, str):
            continue
        try:
            if _ADDRESS.search(c) and df[c].dtype != "str":
                df[c] = df[c].astype("str")
            elif _PORT.search(c) and df[c].dtype != "Int64":
                df[c] = pd.to_numeric(df[c], errors="coerce").astype("Int64")
        except (TypeError, ValueError):
            pass  # a column of another kind under a like name keeps its dtype
        if c == "ts" or c.endswith("_ts") or c in ("first_time", "last_time"):
            col = df[c]
            if pd.api.types.is_integer_dtype(col.dtype):  # sr_rtp_ts: RTP clock ticks, not a time
                continue
            if isinstance(col.dtype, pd.DatetimeTZDtype) and str(col.dtype.unit) == "ns":
                continue
            if c in ("first_time", "last_time"):
                continue
            df[c] = pd.to_datetime(col, utc=True).astype("datetime64[ns, UTC]")
    return df


def _as_list(paths: PathLike | Iterable[PathLike]) -> list[str]:
    if isinstance(paths, str | os.PathLike):
        return [os.fspath(paths)]
    return [os.fspath(p) for p in paths]


def analyze(
    paths: PathLike | Iterable[PathLike],
    *,
    network: PathLike | NetworkProfile | None = None,
    progress: Callable[[str], Progress | None] | None = None,
    stages: str = "all",
    keylog: PathLike | None = None,
    srtp_keys: Iterable[str] = (),
    audio: bool | None = None,
    plaintext: bool = False,
) -> Analysis:
    """Analyse one capture, or several captures of the same call taken at different points.

    `network` is an optional network-profile TOML file (docs/profile.md) or a NetworkProfile; a bad
    profile raises ValueError before any capture is read. `stages="dissect"` stops after the
    dissectors (what `callflow summary` needs); the flow, media, ICE and topology tables need "all".
    Raises analyzer.capture.CaptureError for a file that cannot be read at all; damaged packets are
    counted in the capture's summary instead.

    `keylog` (an NSS key log: CLIENT_RANDOM lines) and `srtp_keys` (SDES keys, `[ADDRESS:PORT=|0xSSRC=]
    [SUITE] inline:BASE64`) open SRTP and SRTCP: the media tables then measure the plaintext, and the
    `decryption` table counts what each key opened (docs/decrypt.md). A key that cannot be used raises
    analyzer.decrypt.KeyError_ before any capture is read. `audio` (default: when keys are given) keeps
    the audio payloads to decode: the `audio` table, `level_dbfs` in media_timeseries, `write_audio()`.
    `plaintext` keeps what the keys opened (in a temporary file) for `write_decrypted()`.

    >>> a = analyze("captures/loopback-call/call.pcap")
    >>> a.calls, a.findings, a.sessions, a.pairs, a.streams   # pandas DataFrames
    """
    files = _as_list(paths)
    # the profile first: a bad one is an error before minutes of reading
    profile = network if isinstance(network, NetworkProfile) else NetworkProfile.load(network)
    full = stages == "all"
    keyring = _keyring(keylog, srtp_keys) if full else None
    decrypters: list = []
    collect_audio = full and (bool(keyring) if audio is None else audio)
    collectors: list = []
    summaries, dissected = [], []
    media_results: list = []
    path_counter = PathCounter()
    flow_tables: list[FlowTable] = []
    icmp_errors: list[IcmpCollector] = []
    for index, path in enumerate(files):
        with CaptureFile(path) as cap:
            sb = SummaryBuilder(cap)
            stage = DissectStage(index, emit_media=full)
            media = MediaStage(index)
            flows = FlowTable(index)
            icmp = IcmpCollector(index)
            decrypt = _decrypt_stage(keyring, index, plaintext)
            collector = _audio_collector(collect_audio, index)
            for batch in iter_batches(cap, progress(path) if progress else None, ahead=True):
                sb.add(batch)
                icmp.add(batch)
                media_batches = stage.add(batch)
                if not full:
                    continue
                flows.add(batch)
                for mb in media_batches:
                    if decrypt is not None:
                        mb = decrypt.add(mb, stage.control.dtls)
                    if collector is not None:
                        collector.add(mb)
                    path_counter.add(mb)
                    media.add(mb)
            flow_tables.append(flows)
            icmp_errors.append(icmp)
            if decrypt is not None:
                decrypters.append(decrypt)
            if collector is not None:
                collectors.append(collector)
            summary = sb.finish()
            result = stage.finish()
            if full:
                media_results.append(media.finish(result.control.dtls.summary(), result.control.stun_rows))
            summary.messages = result.messages
            summary.confirmed = result.confirmed
            summary.rejected = result.rejected
            if result.damaged:
                from .dissect.stage import DAMAGE_KIND

                summary.damaged[DAMAGE_KIND] = result.damaged_total
                summary.damage_notes.extend(result.damaged)
            summaries.append(summary)
            dissected.append(result)
    give_back_memory()  # the capture pass's per-chunk temporaries
    return Analysis(
        files=files, captures=summaries, dissect=dissected, paths=path_counter, profile=profile,
        flow_tables=flow_tables, media=media_results, stages=stages, icmp_errors=icmp_errors, decrypt=decrypters,
        audio_payloads=collectors,
    )


def _keyring(keylog: PathLike | None, srtp_keys: Iterable[str]):
    if keylog is None and not srtp_keys:
        return None
    from .decrypt import KeyError_, Keyring, parse_keylog

    ring = Keyring()
    if keylog is not None:
        try:
            with open(keylog, encoding="utf-8", errors="replace") as f:
                ring.keylog = parse_keylog(f.read())
        except OSError as e:
            raise KeyError_(f"{keylog}: cannot read the key log: {e.strerror or e}") from None
        if not ring.keylog.secrets:
            raise KeyError_(f"{keylog}: no CLIENT_RANDOM line in this key log")
    for spec in srtp_keys:
        ring.add_sdes(spec)
    return ring


def _audio_collector(wanted: bool, index: int):
    if not wanted:
        return None
    from .decrypt.audio import AudioCollector  # PyAV is imported only when the audio is decoded

    return AudioCollector(index)


def _decrypt_stage(keyring, index: int, plaintext: bool = False):
    if keyring is None:
        return None
    try:
        from .decrypt.stage import DecryptStage
    except ImportError as e:
        from .decrypt import KeyError_

        raise KeyError_(f"decryption needs {e.name}: pip install 'callflow-analyzer[decrypt]'") from None
    if plaintext:
        from .decrypt.rewrite import Spill

        return DecryptStage(keyring, index, Spill())
    return DecryptStage(keyring, index)
