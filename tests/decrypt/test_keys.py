"""Keying material: our TLS PRF and RFC 5764 exporter against OpenSSL's own export on real handshakes;
the key log and SDES parsers."""

from __future__ import annotations

import base64

import pytest

from analyzer.decrypt.keys import PROFILES, KeyError_, derive_dtls_srtp, parse_keylog, parse_sdes
from tests.decrypt.dtls_pair import handshake


@pytest.mark.parametrize(
    ("openssl_profile", "code", "ciphers"),
    [
        (b"SRTP_AES128_CM_SHA1_80", 0x0001, b"ECDHE-ECDSA-AES128-GCM-SHA256"),
        (b"SRTP_AES128_CM_SHA1_32", 0x0002, b"ECDHE-ECDSA-AES128-SHA"),
        (b"SRTP_AEAD_AES_128_GCM", 0x0007, b"ECDHE-ECDSA-AES128-GCM-SHA256"),
        (b"SRTP_AEAD_AES_256_GCM", 0x0008, b"ECDHE-ECDSA-AES256-GCM-SHA384"),  # a SHA-384 PRF
    ],
)
def test_exporter_equals_openssl(openssl_profile, code, ciphers):
    p = PROFILES[code]
    hs = handshake(openssl_profile, ciphers, exported_len=2 * (p.key_len + p.salt_len))
    assert hs.profile == openssl_profile
    log = parse_keylog(b"\n".join(hs.keylog).decode())
    assert log.malformed == [] and hs.client_random in log.secrets
    cipher = "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384" if b"SHA384" in ciphers else "TLS_ECDHE_ECDSA_WITH_AES_128_GCM"
    client, server = derive_dtls_srtp(log.secrets[hs.client_random], hs.client_random, hs.server_random, code,
                                      cipher_suite=cipher)
    k, s = p.key_len, p.salt_len
    e = hs.exported
    assert (client.key, server.key, client.salt, server.salt) == (e[:k], e[k : 2 * k], e[2 * k : 2 * k + s],
                                                                  e[2 * k + s :])


def test_sha256_prf_differs_from_sha384():
    """The PRF hash matters: the wrong one gives other keys (so choosing it by suite is not a no-op)."""
    hs = handshake(b"SRTP_AEAD_AES_256_GCM", b"ECDHE-ECDSA-AES256-GCM-SHA384", exported_len=88)
    secret = parse_keylog(b"\n".join(hs.keylog).decode()).secrets[hs.client_random]
    wrong, _ = derive_dtls_srtp(secret, hs.client_random, hs.server_random, 8, cipher_suite="X_SHA256")
    assert wrong.key != hs.exported[:32]


def test_keylog_lines():
    cr, ms = "ab" * 32, "cd" * 48
    text = "\n".join([
        "# comment", "", f"CLIENT_RANDOM {cr} {ms}", f"CLIENT_HANDSHAKE_TRAFFIC_SECRET {cr} {'ee' * 32}",
        f"CLIENT_RANDOM {cr[:-2]} {ms}", "CLIENT_RANDOM zz",
    ])
    log = parse_keylog(text)
    assert log.secrets == {bytes.fromhex(cr): bytes.fromhex(ms)}
    assert log.lines == 6 and log.ignored == 3 and log.malformed == [5, 6]


def test_sdes_inline_keys():
    raw = bytes(range(30))
    b64 = base64.b64encode(raw).decode()
    for text in (f"inline:{b64}", b64, f"AES_CM_128_HMAC_SHA1_80 inline:{b64}|2^20|1:32",
                 f"a=crypto:1 AES_CM_128_HMAC_SHA1_32 inline:{b64}"):
        k = parse_sdes(text)
        assert (k.key, k.salt) == (raw[:16], raw[16:])
    assert parse_sdes(f"a=crypto:1 AES_CM_128_HMAC_SHA1_32 inline:{b64}").profile == 2
    gcm = base64.b64encode(bytes(28)).decode()
    assert parse_sdes(f"AEAD_AES_128_GCM inline:{gcm}").profile == 7
    with pytest.raises(KeyError_, match="needs 30 bytes"):
        parse_sdes(f"inline:{gcm}")
    with pytest.raises(KeyError_, match="unknown SRTP crypto suite"):
        parse_sdes(f"F8_128_HMAC_SHA1_80 inline:{b64}")
