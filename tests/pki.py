"""Test credentials made at test time: a CA with a server certificate (127.0.0.1/localhost) and
a client certificate, and an API keys file. The fixtures ``pki`` and ``keys_file`` in
tests/conftest.py hand them to the unit tier (settings, key files) and the service tier (TLS,
API keys on a running server)."""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

KEY = "k3y-for-tests-0123456789"
OTHER_KEY = "another-key-abcdef"


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _issue(subject: str, key, issuer_name, issuer_key, *, ca: bool, server: bool = False):
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
    return builder.sign(issuer_key, hashes.SHA256())


def _write(path: Path, cert=None, key=None) -> str:
    if cert is not None:
        path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    else:
        path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    return str(path)


def make_pki(d: Path) -> dict[str, str]:
    """A CA, a server certificate for 127.0.0.1/localhost, a client certificate: PEM paths."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _issue("a2v test CA", ca_key, _name("a2v test CA"), ca_key, ca=True)
    server_key = ec.generate_private_key(ec.SECP256R1())
    server = _issue("localhost", server_key, ca.subject, ca_key, ca=False, server=True)
    client_key = ec.generate_private_key(ec.SECP256R1())
    client = _issue("a2v test client", client_key, ca.subject, ca_key, ca=False)
    return {
        "ca": _write(d / "ca.pem", cert=ca),
        "server_cert": _write(d / "server.pem", cert=server),
        "server_key": _write(d / "server.key", key=server_key),
        "client_cert": _write(d / "client.pem", cert=client),
        "client_key": _write(d / "client.key", key=client_key),
    }


def write_keys_file(path: Path) -> str:
    """KEY and OTHER_KEY, with a comment, a blank line, padding and a commented-out key."""
    path.write_text(f"# a2v API keys\n\n{KEY}\n  {OTHER_KEY}  \n# retired-key\n")
    return str(path)
