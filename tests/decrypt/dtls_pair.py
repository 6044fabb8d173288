"""An in-memory DTLS-SRTP handshake between two OpenSSL endpoints (pyOpenSSL), with the key log lines
OpenSSL writes and the keying material OpenSSL itself exports: the oracle for our derivation."""

from __future__ import annotations

import contextlib
import datetime
from typing import NamedTuple

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from OpenSSL import SSL


class Handshake(NamedTuple):
    keylog: list[bytes]
    client_random: bytes
    server_random: bytes
    exported: bytes  # RFC 5705 exporter output, label EXTRACTOR-dtls_srtp, as OpenSSL computes it
    profile: bytes  # the SRTP profile OpenSSL selected
    cipher: str


def _cert():
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256()))
    return cert, key


def handshake(profile: bytes = b"SRTP_AES128_CM_SHA1_80", ciphers: bytes = b"ECDHE-ECDSA-AES128-GCM-SHA256",
              exported_len: int = 60) -> Handshake:
    cert, key = _cert()
    lines: list[bytes] = []

    def ctx():
        c = SSL.Context(SSL.DTLS_METHOD)
        c.set_verify(SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT, lambda *a: True)
        c.use_certificate(cert)
        c.use_privatekey(key)
        c.set_cipher_list(ciphers)
        c.set_tlsext_use_srtp(profile)
        c.set_keylog_callback(lambda conn, line: lines.append(line))
        return c

    client, server = SSL.Connection(ctx(), None), SSL.Connection(ctx(), None)
    client.set_connect_state()
    server.set_accept_state()
    for _ in range(20):
        for a, b in ((client, server), (server, client)):
            with contextlib.suppress(SSL.WantReadError):
                a.do_handshake()
            while True:
                try:
                    data = a.bio_read(65536)
                except SSL.WantReadError:
                    break
                b.bio_write(data)
    return Handshake(lines, client.client_random(), client.server_random(),
                     client.export_keying_material(b"EXTRACTOR-dtls_srtp", exported_len),
                     client.get_selected_srtp_profile(), client.get_cipher_name())
