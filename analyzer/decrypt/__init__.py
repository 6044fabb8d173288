"""The decrypt stage: SRTP and SRTCP opened with the user's keys, between dissect/ and media/.

Keys come from an NSS key log (DTLS-SRTP: the exporter of RFC 5764 over each handshake's master
secret) or from SDES inline keys (RFC 4568). The stage (decrypt.stage, which needs pylibsrtp: the
`decrypt` extra) takes the dissect stage's media rows and hands the media stage the same rows with the
plaintext in place of the ciphertext, so decrypted RTCP feeds the receiver reports exactly as plain RTCP
does. This module imports no optional dependency.
"""

from .keys import KeyError_, Keyring, SrtpKeys, derive_dtls_srtp, parse_keylog, parse_sdes

__all__ = ["KeyError_", "Keyring", "SrtpKeys", "derive_dtls_srtp", "parse_keylog", "parse_sdes"]
