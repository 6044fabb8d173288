"""Nominations: which pair the controlling agent nominated, when, and each renomination.

A check nominates its pair with USE-CANDIDATE (RFC 8445 7.2.2) or with libwebrtc's NOMINATION attribute
(0xC001), whose number grows each time the controlling side renominates another pair; the nomination
takes effect when the check is answered with a success. A copy of a request that reuses an earlier
transaction id (a retransmission) nominates as well when it carries the flag, even if the first copy
did not. The component of a pair comes from the checks' PRIORITY (RFC 8445 5.1.2.1: the low byte is
256 minus the component id), so an RTCP component (2) is never taken for the media pair.
"""

from __future__ import annotations

from typing import NamedTuple

import pandas as pd


class Nomination(NamedTuple):
    session: int
    pair: int
    agent: str
    via: str  # 'USE-CANDIDATE' or 'NOMINATION'
    value: int | None  # the NOMINATION number, None for USE-CANDIDATE
    frame: int  # the request copy that carried it
    ts_ns: int
    response_frame: int  # the success that made it take effect
    renomination: bool = False  # a NOMINATION number above an earlier one of the session


def nominating(use_candidate, nomination) -> tuple[str, int | None] | None:
    """('USE-CANDIDATE', None) or ('NOMINATION', n) for a check that nominates, else None.
    A NOMINATION of 0 is no nomination (libwebrtc rejects it)."""
    if pd.notna(nomination) and int(nomination) > 0:
        return "NOMINATION", int(nomination)
    if bool(use_candidate):
        return "USE-CANDIDATE", None
    return None


def component(priority) -> int | None:
    """The ICE component id a check's PRIORITY carries (1 RTP, 2 RTCP), or None without PRIORITY."""
    if pd.isna(priority):
        return None
    return 256 - (int(priority) & 0xFF)


def mark_renominations(noms: list[Nomination]) -> list[Nomination]:
    """In time order; a NOMINATION number above the session's earlier highest is a renomination."""
    out, best = [], {}
    for n in sorted(noms, key=lambda n: (n.ts_ns, n.frame)):
        top = best.get(n.session)
        if n.value is not None:
            n = n._replace(renomination=top is not None and n.value > top)
            best[n.session] = n.value if top is None else max(top, n.value)
        out.append(n)
    return out


def describe(noms: list[Nomination]) -> str:
    """'pair 0 frame 7 USE-CANDIDATE; pair 3 frame 60 NOMINATION 2 (renomination)' for a session."""
    return "; ".join(
        f"pair {n.pair} frame {n.frame} {n.via}"
        + (f" {n.value}" if n.value is not None else "")
        + (" (renomination)" if n.renomination else "")
        for n in noms
    )


COLUMNS = ["session", "pair", "agent", "via", "value", "frame", "ts", "response_frame", "renomination"]


def table(noms: list[Nomination]) -> pd.DataFrame:
    """One row per nomination that took effect: the first of each pair by USE-CANDIDATE (aggressive
    nomination repeats it on every check), and each distinct NOMINATION number."""
    df = pd.DataFrame(
        [
            {
                "session": n.session,
                "pair": n.pair,
                "agent": n.agent,
                "via": n.via,
                "value": n.value,
                "frame": n.frame,
                "ts": pd.Timestamp(n.ts_ns, unit="ns", tz="UTC"),
                "response_frame": n.response_frame,
                "renomination": n.renomination,
            }
            for n in noms
        ],
        columns=COLUMNS,
    )
    df["value"] = df["value"].astype("Int64")
    return df
