"""Protocol tables for RTP and RTCP: static payload types, RTCP packet types, feedback formats.

Sources: RFC 3551 section 6 (tables 4 and 5) for the static payload types; RFC 3550 (SR 200 .. APP 204),
RFC 4585 (RTPFB 205, PSFB 206), RFC 3611 (XR 207), RFC 5450 (IJ 195), RFC 5104 (TMMBR/TMMBN, FIR, TSTR,
TSTN, VBCM), RFC 6642 (TLLEI/PSLEI), RFC 6679 (ECN), RFC 6285 (RAMS), RFC 7728 (PAUSE-RESUME),
draft-holmer-rmcat-transport-wide-cc-extensions (transport-cc, RTPFB 15),
draft-alvestrand-rmcat-remb (REMB, carried as PSFB 15 "application layer feedback").

Header-extension URIs (RFC 8285) are negotiated in SDP and never appear on the wire, so no table here.
"""

from __future__ import annotations

from typing import NamedTuple


class PayloadType(NamedTuple):
    encoding: str
    clock_rate: int
    media: str  # 'audio' | 'video'


# RFC 3551 table 4 (audio) and table 5 (video). 1, 2, 19 and 20-24 are reserved/unassigned.
STATIC_PAYLOAD_TYPES: dict[int, PayloadType] = {
    0: PayloadType("PCMU", 8000, "audio"),
    3: PayloadType("GSM", 8000, "audio"),
    4: PayloadType("G723", 8000, "audio"),
    5: PayloadType("DVI4", 8000, "audio"),
    6: PayloadType("DVI4", 16000, "audio"),
    7: PayloadType("LPC", 8000, "audio"),
    8: PayloadType("PCMA", 8000, "audio"),
    9: PayloadType("G722", 8000, "audio"),  # clock rate 8000 by the RFC's historic error; sampled at 16 kHz
    10: PayloadType("L16", 44100, "audio"),  # 2 channels
    11: PayloadType("L16", 44100, "audio"),  # 1 channel
    12: PayloadType("QCELP", 8000, "audio"),
    13: PayloadType("CN", 8000, "audio"),
    14: PayloadType("MPA", 90000, "audio"),
    15: PayloadType("G728", 8000, "audio"),
    16: PayloadType("DVI4", 11025, "audio"),
    17: PayloadType("DVI4", 22050, "audio"),
    18: PayloadType("G729", 8000, "audio"),
    25: PayloadType("CelB", 90000, "video"),
    26: PayloadType("JPEG", 90000, "video"),
    28: PayloadType("nv", 90000, "video"),
    31: PayloadType("H261", 90000, "video"),
    32: PayloadType("MPV", 90000, "video"),
    33: PayloadType("MP2T", 90000, "video"),  # audio/video transport stream
    34: PayloadType("H263", 90000, "video"),
}

DYNAMIC_PT_FIRST, DYNAMIC_PT_LAST = 96, 127


def payload_type_info(pt: int) -> PayloadType | None:
    """The static assignment of a payload type, or None for dynamic/unassigned ones."""
    return STATIC_PAYLOAD_TYPES.get(pt)


# RTCP packet types (second byte of an RTCP header)
RTCP_SMPTETC, RTCP_IJ = 194, 195
RTCP_SR, RTCP_RR, RTCP_SDES, RTCP_BYE, RTCP_APP, RTCP_RTPFB, RTCP_PSFB, RTCP_XR = range(200, 208)
RTCP_AVB, RTCP_RSI, RTCP_TOKEN = 208, 209, 210

RTCP_TYPES: dict[int, str] = {
    RTCP_SMPTETC: "SMPTETC",
    RTCP_IJ: "IJ",
    RTCP_SR: "SR",
    RTCP_RR: "RR",
    RTCP_SDES: "SDES",
    RTCP_BYE: "BYE",
    RTCP_APP: "APP",
    RTCP_RTPFB: "RTPFB",
    RTCP_PSFB: "PSFB",
    RTCP_XR: "XR",
    RTCP_AVB: "AVB",
    RTCP_RSI: "RSI",
    RTCP_TOKEN: "TOKEN",
}

# RFC 5761: a second byte (marker bit + PT) in this range on a muxed port means RTCP
RTCP_MUX_PT_FIRST, RTCP_MUX_PT_LAST = 192, 223

# Transport-layer feedback (PT 205), FMT field
RTPFB_FMT: dict[int, str] = {
    1: "NACK",
    3: "TMMBR",
    4: "TMMBN",
    5: "RTCP-SR-REQ",
    6: "RAMS",
    7: "TLLEI",
    8: "RTCP-ECN-FB",
    9: "PAUSE-RESUME",
    15: "TCC",  # transport-wide congestion control (transport-cc)
}

# Payload-specific feedback (PT 206), FMT field. 15 is AFB; REMB is the common AFB (identifier "REMB").
PSFB_FMT: dict[int, str] = {
    1: "PLI",
    2: "SLI",
    3: "RPSI",
    4: "FIR",
    5: "TSTR",
    6: "TSTN",
    7: "VBCM",
    8: "PSLEI",
    9: "ROI",
    15: "AFB",
}

# SDES item types (RFC 3550 6.5)
SDES_ITEMS: dict[int, str] = {
    1: "CNAME",
    2: "NAME",
    3: "EMAIL",
    4: "PHONE",
    5: "LOC",
    6: "TOOL",
    7: "NOTE",
    8: "PRIV",
    9: "H323-CADDR",
    10: "APSI",
    11: "RGRP",
    12: "MID",
    13: "RTP-STREAM-ID",
    14: "REPAIRED-RTP-STREAM-ID",
}

# RFC 8285 header extension profiles
EXT_ONE_BYTE = 0xBEDE
EXT_TWO_BYTE_MASK, EXT_TWO_BYTE = 0xFFF0, 0x1000

# SRTCP trailers tried when detecting SRTCP (RFC 3711 3.4, RFC 7714): (bytes after the RTCP packets,
# offset of the E-flag+index word from the end). HMAC-SHA1-80, HMAC-SHA1-32, AEAD (16-byte tag inside).
SRTCP_TRAILERS: tuple[tuple[int, int], ...] = ((14, 14), (8, 8), (20, 4))


def fb_name(pt: int, fmt: int) -> str | None:
    """Name of a feedback message type (RTPFB/PSFB), None when unknown or not a feedback packet."""
    if pt == RTCP_RTPFB:
        return RTPFB_FMT.get(fmt)
    if pt == RTCP_PSFB:
        return PSFB_FMT.get(fmt)
    return None
