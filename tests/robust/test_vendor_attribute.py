"""Issue 14: a WhatsApp Allocate request whose last attribute (vendor range 0x4000) is sent without
padding is STUN, as tshark reads it; an unknown attribute is kept as unknown, not a reason to reject."""

from __future__ import annotations

import struct

from analyzer import analyze
from analyzer.dissect.stun import looks_like_stun, parse_stun
from tests.conftest import tshark_fields
from tests.robust.crafted import CLIENT, udp, write

META = "157.240.20.51"  # a WhatsApp relay address (nDPI's list)
TID = bytes(range(1, 13))


def _allocate() -> bytes:
    body = (
        struct.pack("!HH", 0x0019, 4)
        + b"\x11\x00\x00\x00"  # REQUESTED-TRANSPORT UDP
        + struct.pack("!HH", 0x4002, 6)
        + b"\x00\x01\x02\x03\x04\x05\x00\x00"  # padded vendor attribute
        + struct.pack("!HH", 0x4000, 3)
        + b"\x0a\x0b\x0c"  # the last one unpadded: length 27
    )
    return struct.pack("!HHI", 0x0003, len(body), 0x2112A442) + TID + body


def test_whatsapp_allocate_is_stun(tmp_path):
    data = _allocate()
    assert looks_like_stun(data)
    m = parse_stun(data)
    assert (m.method_name, m.cls, m.malformed) == ("Allocate", "request", None)
    assert [a.name for a in m.attributes] == ["REQUESTED-TRANSPORT", "unknown-0x4002", "unknown-0x4000"]
    assert m.attributes[2].raw == b"\x0a\x0b\x0c"
    p = write(tmp_path / "wa.pcap", [udp(CLIENT, 41000, META, 3478, data)])
    # tshark: an Allocate request, REQUESTED-TRANSPORT and two unknown attributes with their values
    rows = tshark_fields(p, ["stun.type", "stun.attribute", "stun.att.length", "stun.value", "stun.id"])
    assert rows == [["0x0003", "0x0019", "4,6,3", "000102030405,0a0b0c", TID.hex()]]
    a = analyze(p)
    assert a.captures[0].messages == {"TURN Allocate request": 1}
    assert a.captures[0].rejected == {}
    row = a.stun.iloc[0]
    assert (row.method, row.cls, row.transaction_id) == ("Allocate", "request", TID.hex())
    assert row.attributes == "REQUESTED-TRANSPORT,unknown-0x4002,unknown-0x4000"
    assert row.requested_transport == 17


def test_a_length_the_attributes_do_not_tile_is_still_rejected():
    data = _allocate()
    stray = data[:3] + bytes([data[3] + 2]) + data[4:] + b"\x00\x00"  # two bytes past the last attribute
    assert not looks_like_stun(stray)
    cut = data[:3] + bytes([data[3] - 1]) + data[4:-1]  # the last attribute runs past the end
    assert not looks_like_stun(cut)
