"""SRTP keying material: from a DTLS 1.2 handshake's master secret (RFC 5764 4.2 over the RFC 5705
exporter) or from an SDES inline key (RFC 4568). Pure functions over bytes; no I/O.

Profiles (RFC 5764 4.1.2, RFC 7714 12): master key and salt lengths and pylibsrtp's profile number.
The TLS 1.2 PRF is P_SHA256 unless the cipher suite names SHA384 (RFC 5246 5); DTLS 1.0 (TLS 1.1) uses
the MD5 xor SHA-1 PRF of RFC 4346.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import re
from dataclasses import dataclass, field
from typing import NamedTuple

EXPORTER_LABEL = b"EXTRACTOR-dtls_srtp"


class Profile(NamedTuple):
    name: str  # as the ServerHello's use_srtp names it (dissect.dtls_tables.SRTP_PROFILES)
    key_len: int
    salt_len: int
    libsrtp: int  # pylibsrtp.Policy.SRTP_PROFILE_* value
    sdes: str  # the SDES crypto-suite name (RFC 4568, RFC 7714)


# use_srtp code -> profile; pylibsrtp's numbers equal the use_srtp codes for these four
PROFILES: dict[int, Profile] = {
    0x0001: Profile("SRTP_AES128_CM_HMAC_SHA1_80", 16, 14, 1, "AES_CM_128_HMAC_SHA1_80"),
    0x0002: Profile("SRTP_AES128_CM_HMAC_SHA1_32", 16, 14, 2, "AES_CM_128_HMAC_SHA1_32"),
    0x0007: Profile("SRTP_AEAD_AES_128_GCM", 16, 12, 7, "AEAD_AES_128_GCM"),
    0x0008: Profile("SRTP_AEAD_AES_256_GCM", 32, 12, 8, "AEAD_AES_256_GCM"),
}
BY_NAME = {p.name: code for code, p in PROFILES.items()} | {p.sdes: code for code, p in PROFILES.items()}


class KeyError_(ValueError):
    """A key file or key option that cannot be used (the CLI makes it a one-line error, exit 2)."""


class SrtpKeys(NamedTuple):
    """One direction's master key and salt, and the profile they are for."""

    profile: int
    key: bytes
    salt: bytes

    @property
    def policy_key(self) -> bytes:
        return self.key + self.salt


class KeyLog(NamedTuple):
    secrets: dict[bytes, bytes]  # client random (32 bytes) -> master secret (48 bytes)
    lines: int
    ignored: int  # other labels (TLS 1.3 traffic secrets, RSA pre-master...) and blank or comment lines
    malformed: list[int]  # line numbers of CLIENT_RANDOM lines that do not parse


def parse_keylog(text: str) -> KeyLog:
    """NSS key log format: `CLIENT_RANDOM <64 hex> <96 hex>` lines (what Firefox, OpenSSL's keylog
    callback, Pion and webrtc-rs write). Other labels are counted, not errors."""
    secrets: dict[bytes, bytes] = {}
    ignored, malformed = 0, []
    lines = text.splitlines()
    for n, line in enumerate(lines, 1):
        parts = line.split()
        if not parts or parts[0].startswith("#") or parts[0] != "CLIENT_RANDOM":
            ignored += 1
            continue
        try:
            if len(parts) != 3:
                raise ValueError
            cr, ms = bytes.fromhex(parts[1]), bytes.fromhex(parts[2])
            if len(cr) != 32 or len(ms) != 48:
                raise ValueError
        except ValueError:
            malformed.append(n)
            continue
        secrets[cr] = ms
    return KeyLog(secrets, len(lines), ignored, malformed)


def _p_hash(digest: str, secret: bytes, seed: bytes, size: int) -> bytes:
    out, a = b"", seed
    while len(out) < size:
        a = hmac.new(secret, a, digest).digest()
        out += hmac.new(secret, a + seed, digest).digest()
    return out[:size]


def prf(secret: bytes, label: bytes, seed: bytes, size: int, *, digest: str = "sha256", tls10: bool = False) -> bytes:
    """The TLS PRF: TLS 1.2's P_<hash> (RFC 5246 5), or TLS 1.0/1.1's MD5 xor SHA-1 (RFC 4346 5)."""
    if not tls10:
        return _p_hash(digest, secret, label + seed, size)
    half = (len(secret) + 1) // 2
    md5 = _p_hash("md5", secret[:half], label + seed, size)
    sha = _p_hash("sha1", secret[len(secret) - half :], label + seed, size)
    return bytes(x ^ y for x, y in zip(md5, sha, strict=True))


def prf_digest(cipher_suite: str | None) -> str:
    """The PRF hash of a TLS 1.2 cipher suite, by its name (the dtls table's names)."""
    return "sha384" if cipher_suite and cipher_suite.upper().endswith("SHA384") else "sha256"


def derive_dtls_srtp(master_secret: bytes, client_random: bytes, server_random: bytes, profile: int, *,
                     cipher_suite: str | None = None, version: str | None = None) -> tuple[SrtpKeys, SrtpKeys]:
    """(client's keys, server's keys) for the SRTP each side sends (RFC 5764 4.2: the exporter output is
    client key, server key, client salt, server salt)."""
    p = PROFILES.get(profile)
    if p is None:
        raise KeyError_(f"SRTP profile 0x{profile:04x} is not supported for decryption")
    size = 2 * (p.key_len + p.salt_len)
    tls10 = version is not None and version.replace(" ", "").upper() in ("DTLS1.0", "DTLS10")
    block = prf(master_secret, EXPORTER_LABEL, client_random + server_random, size,
                digest=prf_digest(cipher_suite), tls10=tls10)
    k, s = p.key_len, p.salt_len
    ck, sk = block[:k], block[k : 2 * k]
    cs, ss = block[2 * k : 2 * k + s], block[2 * k + s :]
    return SrtpKeys(profile, ck, cs), SrtpKeys(profile, sk, ss)


_CRYPTO = re.compile(r"(?:a=crypto:\s*\d+\s+)?(?:(?P<suite>[A-Z0-9_]+)\s+)?(?:inline:)?(?P<b64>[A-Za-z0-9+/=]+)")


def parse_sdes(text: str, default_suite: str = "AES_CM_128_HMAC_SHA1_80") -> SrtpKeys:
    """An SDES key as SDP's a=crypto carries it: `[a=crypto:1] [SUITE] [inline:]BASE64[|lifetime|MKI]`."""
    m = _CRYPTO.fullmatch(text.strip().split("|")[0].strip())
    if m is None:
        raise KeyError_(f"not an SDES key (expected [SUITE] inline:BASE64): {text!r}")
    suite = m.group("suite") or default_suite
    code = BY_NAME.get(suite)
    if code is None:
        raise KeyError_(f"unknown SRTP crypto suite {suite!r} (known: {', '.join(p.sdes for p in PROFILES.values())})")
    try:
        raw = base64.b64decode(m.group("b64"), validate=True)
    except (binascii.Error, ValueError):
        raise KeyError_(f"the inline key is not base64: {m.group('b64')!r}") from None
    p = PROFILES[code]
    if len(raw) != p.key_len + p.salt_len:
        raise KeyError_(f"{suite} needs {p.key_len + p.salt_len} bytes of key and salt, the inline key has {len(raw)}")
    return SrtpKeys(code, raw[: p.key_len], raw[p.key_len :])




Endpoint = tuple[str, int]


@dataclass
class Keyring:
    """The user's keys: a key log's master secrets and SDES keys by sender endpoint, SSRC or for all."""

    keylog: KeyLog | None = None
    by_endpoint: dict[Endpoint, SrtpKeys] = field(default_factory=dict)
    by_ssrc: dict[int, SrtpKeys] = field(default_factory=dict)
    default: SrtpKeys | None = None

    def __bool__(self) -> bool:
        return bool(self.keylog and self.keylog.secrets) or bool(self.by_endpoint or self.by_ssrc or self.default)

    def add_sdes(self, spec: str) -> None:
        """`[ADDRESS:PORT=|0xSSRC=]SDES-KEY`: for one sender, one SSRC, or (no prefix) every stream."""
        target, sep, key = spec.partition("=")
        if not sep or key.startswith("="):  # base64 may end with '=': no target given
            self.default = parse_sdes(spec)
            return
        keys = parse_sdes(key)
        target = target.strip()
        if target.lower().startswith("0x"):
            try:
                self.by_ssrc[int(target, 16)] = keys
            except ValueError:
                raise KeyError_(f"not an SSRC: {target!r}") from None
            return
        host, _, port = target.rpartition(":")
        host = host.strip("[]")
        if not host or not port.isdigit():
            raise KeyError_(f"expected ADDRESS:PORT= or 0xSSRC= before the key, got {target!r}")
        self.by_endpoint[(host, int(port))] = keys
