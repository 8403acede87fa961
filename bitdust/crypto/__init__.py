"""Thin wrappers over ``cryptography``: callers never see the library's types.

- :mod:`bitdust.crypto.keys`: RSA keys; RSA-PSS/SHA-256 signatures, RSA-OAEP/SHA-256 key wrap.
- :mod:`bitdust.crypto.packet_keys`: Ed25519 packet keys (sign packets; certified by the identity).
- :mod:`bitdust.crypto.aead`: AES-256-GCM with associated data.
- :mod:`bitdust.crypto.sealed`: hybrid encryption of a message to a public key.
"""
