"""Signing credentials for the C2PA manifest: a development CA + signer, or the configured ones.

C2PA (c2pa-python 0.38.1, c2pa-rs 0.91) refuses self-signed end-entity certificates, so the
development credentials are a small chain, generated offline with ``cryptography``:

* a CA certificate (``basicConstraints CA:TRUE, pathlen 0``, ``keyCertSign``), and
* an end-entity signing certificate issued by it (``CA:FALSE``, ``digitalSignature`` critical,
  extended key usage ``emailProtection`` - one C2PA accepts - with subject/authority key ids),

both ECDSA P-256 (C2PA ``es256``). ``transfigure provenance-cert`` writes them to the git-ignored
``conf/local/provenance/``; stamping creates them on first use when nothing else is configured.
The verifier trusts the CA of the configured chain (or ``$TRANSFIGURE_TRUST_ANCHORS``).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["DEV_CA", "DEV_CHAIN", "DEV_KEY", "SignerMaterial", "create_dev_credentials", "load_signer_material"]

logger = logging.getLogger(__name__)

DEV_KEY: Final = "dev_signer.key"
DEV_CHAIN: Final = "dev_signer_chain.pem"
DEV_CA: Final = "dev_ca.pem"
DEV_SIGNING_WARNING: Final = (
    "No signing key configured ($TRANSFIGURE_SIGNING_KEY / $TRANSFIGURE_SIGNING_CERT): manifests are signed "
    "with the DEVELOPMENT certificate in {dir}; its CA is trusted only where that folder exists. Configure a "
    "real key and certificate chain for production."
)


@dataclass(frozen=True)
class SignerMaterial:
    """PEM private key, PEM chain (end-entity first) and the C2PA algorithm name."""

    key_pem: bytes
    chain_pem: bytes
    algorithm: str
    source: str  # where it came from, for messages

    @property
    def certificates(self) -> list[x509.Certificate]:
        return x509.load_pem_x509_certificates(self.chain_pem)


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "transfigure (development)"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _dev_chain(days: int) -> tuple[bytes, bytes, bytes]:
    """(signer key PEM, chain PEM = signer + CA, CA PEM), freshly generated."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("transfigure development CA")
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=days))
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
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    signer = (
        x509.CertificateBuilder()
        .subject_name(_name("transfigure development signer"))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
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
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    key_pem = key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    ca_pem = ca.public_bytes(pem)
    return key_pem, signer.public_bytes(pem) + ca_pem, ca_pem


def create_dev_credentials(directory: Path, *, force: bool = False, days: int = 3650) -> Path:
    """Write a development CA and signer into ``directory`` (atomically; kept if already there).

    Concurrent callers (several service workers) all end up with the same complete set: the files
    are written to a temporary folder that is renamed into place; the loser of a race discards its own.
    Returns ``directory``.
    """
    directory = Path(directory)
    if (directory / DEV_KEY).exists() and not force:
        return directory
    directory.parent.mkdir(parents=True, exist_ok=True)
    key_pem, chain_pem, ca_pem = _dev_chain(days)
    staging = Path(tempfile.mkdtemp(prefix=".provenance-", dir=directory.parent))
    try:
        (staging / DEV_CHAIN).write_bytes(chain_pem)
        (staging / DEV_CA).write_bytes(ca_pem)
        key_file = staging / DEV_KEY
        key_file.write_bytes(key_pem)
        key_file.chmod(0o600)
        if force and directory.exists():
            shutil.rmtree(directory)
        try:
            os.rename(staging, directory)
        except OSError:
            if not (directory / DEV_KEY).exists():  # an empty folder was in the way: fill it
                for f in staging.iterdir():
                    os.replace(f, directory / f.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return directory


def algorithm_of(key_pem: bytes) -> str:
    """The C2PA signing algorithm for a PEM private key (ES256/384/512 by curve, or Ed25519)."""
    key = serialization.load_pem_private_key(key_pem, password=None)
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return "ed25519"
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return {"secp256r1": "es256", "secp384r1": "es384", "secp521r1": "es512"}[key.curve.name]
    raise ValueError(f"unsupported signing key type {type(key).__name__}: use an EC P-256/384/521 or Ed25519 key")


def load_signer_material(key_path: Path | None, cert_path: Path | None, dev_dir: Path) -> SignerMaterial:
    """The configured key + chain, or the development ones (created if missing, with a warning).

    Raises:
        ValueError: only one of key/cert configured, unreadable files, or an unsupported key type.
    """
    if (key_path is None) != (cert_path is None):
        raise ValueError(
            "set both $TRANSFIGURE_SIGNING_KEY and $TRANSFIGURE_SIGNING_CERT (PEM key and PEM "
            "certificate chain, end-entity first), or neither to use the development certificate"
        )
    if key_path is None or cert_path is None:
        create_dev_credentials(dev_dir)
        message = DEV_SIGNING_WARNING.format(dir=dev_dir)
        logger.warning(message)
        key_path, cert_path, source = dev_dir / DEV_KEY, dev_dir / DEV_CHAIN, f"development certificate ({dev_dir})"
    else:
        source = f"{cert_path}"
    try:
        key_pem, chain_pem = Path(key_path).read_bytes(), Path(cert_path).read_bytes()
    except OSError as exc:
        raise ValueError(f"cannot read the signing key/certificate: {exc}") from exc
    return SignerMaterial(key_pem=key_pem, chain_pem=chain_pem, algorithm=algorithm_of(key_pem), source=source)
