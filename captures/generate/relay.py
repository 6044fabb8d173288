"""The cloud relay: Debian's coturn with long-term credentials on UDP 3478 and TCP/TLS 443.

The TLS certificate is self-signed for the relay's IP address (an IP SAN); peers that use TURN over TLS
trust it through SSL_CERT_FILE. coturn accepts plain TCP on its TLS port too, so 443 serves both the
TCP and the TLS fallback.
"""

from __future__ import annotations

import datetime
import ipaddress
import subprocess
import time
from pathlib import Path

from . import world
from .netns import Lab, LabError


def address() -> str:
    """The relay's address in the current plan (world.use)."""
    return world.HOSTS["relay"][1]


USER, PASSWORD, REALM = "callflow", "callflow-secret", "relay.cloud.example"
RELAY_PORTS = (49152, 49251)

CONFIG = """\
listening-ip={address}
relay-ip={address}
listening-port=3478
tls-listening-port=443
min-port={min_port}
max-port={max_port}
lt-cred-mech
user={user}:{password}
realm={realm}
fingerprint
cert={cert}
pkey={key}
no-cli
no-dtls
no-rfc5780
no-stun-backward-compatibility
response-origin-only-with-rfc5780
no-multicast-peers
no-software-attribute
pidfile={dir}/turnserver.pid
log-file={dir}/turnserver.log
simple-log
"""


def make_certificate(directory: Path, ip: str | None = None) -> tuple[Path, Path]:
    """Self-signed certificate and key (PEM) for `ip` (default the relay's), with the address as an IP SAN."""
    ip = ip or address()
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, REALM)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "relay-cert.pem", directory / "relay-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


def start(lab: Lab, ns: str, directory: Path) -> tuple[subprocess.Popen, Path]:
    """Run coturn in `ns`; returns the process and the certificate peers must trust."""
    cert, key = make_certificate(directory)
    conf = directory / "turnserver.conf"
    conf.write_text(
        CONFIG.format(
            address=address(),
            min_port=RELAY_PORTS[0],
            max_port=RELAY_PORTS[1],
            user=USER,
            password=PASSWORD,
            realm=REALM,
            cert=cert,
            key=key,
            dir=directory,
        )
    )
    p = lab.popen(ns, ["turnserver", "-c", str(conf)], "coturn", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        listening = lab.run(ns, "ss", "-Hlntu", check=False)
        if ":443 " in listening and ":3478 " in listening:
            return p, cert
        if p.poll() is not None:
            break
        time.sleep(0.05)
    log = (directory / "turnserver.log").read_text() if (directory / "turnserver.log").exists() else ""
    raise LabError(f"coturn did not start listening: {log[-2000:]}")


def ice_server(transport: str) -> dict:
    """The RTCIceServer (as a dict) for TURN over `transport` ('udp', 'tcp' or 'tls')."""
    ip = address()
    url = {
        "udp": f"turn:{ip}:3478?transport=udp",
        "tcp": f"turn:{ip}:443?transport=tcp",
        "tls": f"turns:{ip}:443?transport=tcp",
    }[transport]
    return {"urls": url, "username": USER, "credential": PASSWORD}


def stun_url() -> str:
    return f"stun:{address()}:3478"
