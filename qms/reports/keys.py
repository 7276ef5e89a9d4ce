"""The key that signs reports: where it is configured, and the demonstration CA.

A site signs its reports with a PKCS#12 file (key and certificate) and its passphrase:
`QMS_REPORT_PKCS12` and `QMS_REPORT_PKCS12_PASSPHRASE` (or `..._PASSPHRASE_FILE`),
by default `<instance>/keys/signing.p12` and `<instance>/keys/signing.pass`. The
certificates that verification trusts are `QMS_REPORT_TRUST_ROOTS` (a PEM file), by
default `<instance>/keys/ca.pem`. `qms keys demo` makes a demonstration CA and a site
certificate there: never use them outside a demonstration.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from qms.config import Settings
from qms.core.errors import Conflict
from qms.core.i18n import _


@dataclass(frozen=True)
class SigningKey:
    pkcs12: Path
    passphrase: bytes
    trust_roots: Path


def keys_dir(settings: Settings) -> Path:
    return settings.instance_path / "keys"


def signing_key(settings: Settings, environ: dict[str, str] | None = None) -> SigningKey:
    """The configured signing key; Conflict with what to do if there is none."""
    env = os.environ if environ is None else environ
    folder = keys_dir(settings)
    pkcs12 = Path(env.get("QMS_REPORT_PKCS12") or folder / "signing.p12")
    passphrase_file = Path(env.get("QMS_REPORT_PKCS12_PASSPHRASE_FILE") or folder / "signing.pass")
    trust_roots = Path(env.get("QMS_REPORT_TRUST_ROOTS") or folder / "ca.pem")
    if not pkcs12.is_file():
        raise Conflict(
            _(
                "no key to sign reports: %(path)s does not exist (set QMS_REPORT_PKCS12, or run "
                "`qms keys demo` for a demonstration key)",
                path=str(pkcs12),
            )
        )
    if env.get("QMS_REPORT_PKCS12_PASSPHRASE"):
        passphrase = env["QMS_REPORT_PKCS12_PASSPHRASE"].encode("utf-8")
    elif passphrase_file.is_file():
        passphrase = passphrase_file.read_bytes().strip()
    else:
        raise Conflict(
            _(
                "no passphrase for the signing key: set QMS_REPORT_PKCS12_PASSPHRASE or write "
                "it to %(path)s",
                path=str(passphrase_file),
            )
        )
    return SigningKey(pkcs12, passphrase, trust_roots)


def trust_roots_path(settings: Settings, environ: dict[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    return Path(env.get("QMS_REPORT_TRUST_ROOTS") or keys_dir(settings) / "ca.pem")


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def make_demo_keys(settings: Settings, *, site_name: str, force: bool = False) -> list[Path]:
    """A demonstration CA and a site signing certificate (PKCS#12 + passphrase) in keys/.

    Keeps existing keys unless `force`: reports signed with them stay verifiable.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import pkcs12
    from cryptography.x509.oid import NameOID

    folder = keys_dir(settings)
    p12_path, pass_path, ca_path = (
        folder / "signing.p12",
        folder / "signing.pass",
        folder / "ca.pem",
    )
    if p12_path.exists() and not force:
        return [ca_path, p12_path, pass_path]
    folder.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC) - timedelta(minutes=5)

    def name(common: str) -> x509.Name:
        return x509.Name(
            [
                x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "qms demonstration"),
                x509.NameAttribute(NameOID.COMMON_NAME, common),
            ]
        )

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = name("qms demonstration CA (not for real use)")
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    site_key = ec.generate_private_key(ec.SECP256R1())
    site_cert = (
        x509.CertificateBuilder()
        .subject_name(name(f"{site_name}: reports"))
        .issuer_name(ca_name)
        .public_key(site_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=1825))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=True,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    passphrase = secrets.token_urlsafe(18).encode("ascii")
    bundle = pkcs12.serialize_key_and_certificates(
        b"qms reports",
        site_key,
        site_cert,
        [ca_cert],
        serialization.BestAvailableEncryption(passphrase),
    )
    ca_path.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    _write_private(p12_path, bundle)
    _write_private(pass_path, passphrase + b"\n")
    return [ca_path, p12_path, pass_path]
