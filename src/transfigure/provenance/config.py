"""Provenance configuration: watermark key, signing credentials, trust anchors, ledger path.

Environment variables (all optional; the defaults make the offline development workflow run):

==================================  ==================================================================
``TRANSFIGURE_WATERMARK_KEY``       secret string for the watermark (HKDF-stretched); default: the
                                    public development key, with a warning
``TRANSFIGURE_SIGNING_KEY``         PEM private key (EC P-256/384/521 or Ed25519) for the manifest
``TRANSFIGURE_SIGNING_CERT``        PEM certificate chain for it, end-entity first (not self-signed)
``TRANSFIGURE_TRUST_ANCHORS``       PEM bundle of CA certificates the verifier trusts; default: the
                                    CA at the end of the configured chain and the development CA
``TRANSFIGURE_LEDGER``              the ledger: a sqlite file (path or ``sqlite:///path``; default
                                    ``data/provenance/ledger.sqlite``) or a shared PostgreSQL database
                                    (``postgresql://user:pw@host:port/db``, ``postgresql+psycopg2://...``)
==================================  ==================================================================

Relative paths are taken from the project root (the nearest folder above the working directory
that holds ``pyproject.toml`` and ``conf/``; else the working directory). Without a signing key,
stamping creates and uses a development CA + signer in ``conf/local/provenance/`` (git-ignored).
:attr:`ProvenanceConfig.uses_dev_keys` tells whether either development key is in use: ``bentoml
serve`` refuses to listen beyond loopback with them (``transfigure.serving.config``).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from transfigure.data.rules import MAX_PIXELS
from transfigure.provenance.keys import (
    WATERMARK_KEY_ENV,
    derive,
    dev_watermark_key,
    is_dev_watermark_key,
    watermark_key_from_text,
)
from transfigure.provenance.ledger import is_database_url
from transfigure.provenance.signing import DEV_CA, DEV_CHAIN, SignerMaterial, load_signer_material

__all__ = ["DEFAULT_LEDGER", "DEV_CREDENTIALS_DIR", "ProvenanceConfig", "project_root"]

SIGNING_KEY_ENV: Final = "TRANSFIGURE_SIGNING_KEY"
SIGNING_CERT_ENV: Final = "TRANSFIGURE_SIGNING_CERT"
TRUST_ANCHORS_ENV: Final = "TRANSFIGURE_TRUST_ANCHORS"
LEDGER_ENV: Final = "TRANSFIGURE_LEDGER"
DEFAULT_LEDGER: Final = Path("data/provenance/ledger.sqlite")
DEV_CREDENTIALS_DIR: Final = Path("conf/local/provenance")


def project_root(start: Path | None = None) -> Path:
    """The nearest folder at or above ``start`` (default: cwd) with pyproject.toml and conf/; else ``start``."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "pyproject.toml").is_file() and (folder / "conf").is_dir():
            return folder
    return here


def _path(value: str | None, root: Path) -> Path | None:
    if not value:
        return None
    p = Path(value).expanduser()
    return p if p.is_absolute() else root / p


def _ledger(value: str | None, root: Path) -> Path | str:
    """``TRANSFIGURE_LEDGER`` -> a sqlite file (relative to ``root``) or a database URL (kept as given)."""
    if value and is_database_url(value):
        if not value.lower().startswith("sqlite"):
            return value
        value = value.split(":///", 1)[1] if ":///" in value else ""
        if not value:
            raise ValueError(f"{LEDGER_ENV}: a sqlite URL needs a file path (sqlite:///path)")
    return _path(value, root) or root / DEFAULT_LEDGER


@dataclass(frozen=True)
class ProvenanceConfig:
    """Everything stamping and verification need. Build it with :meth:`from_env` (or directly in tests)."""

    watermark_key: bytes = field(repr=False)
    #: the ledger: a sqlite file (Path) or a PostgreSQL URL (str); ``Ledger(ledger_path)`` opens either
    ledger_path: Path | str
    signing_key_path: Path | None = None
    signing_cert_path: Path | None = None
    trust_anchors_path: Path | None = None
    dev_credentials_dir: Path = DEV_CREDENTIALS_DIR
    #: largest image (pixels) verification decodes; bigger ones are refused as possible bombs
    max_pixels: int = MAX_PIXELS
    #: wall-clock time (``time.time()``) after which :func:`~transfigure.provenance.stamp_output` records
    #: nothing and raises :class:`~transfigure.provenance.stamp.DeadlinePassed`: the service sets it per
    #: batch, so that an output whose requester stopped waiting never gets a ledger row
    deadline: float | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, *, root: Path | None = None) -> ProvenanceConfig:
        """Read the ``TRANSFIGURE_*`` variables (see the module doc); cheap, touches no files."""
        env = os.environ if env is None else env
        root = project_root(root)
        key_text = env.get(WATERMARK_KEY_ENV)
        return cls(
            watermark_key=watermark_key_from_text(key_text) if key_text else dev_watermark_key(),
            ledger_path=_ledger(env.get(LEDGER_ENV), root),
            signing_key_path=_path(env.get(SIGNING_KEY_ENV), root),
            signing_cert_path=_path(env.get(SIGNING_CERT_ENV), root),
            trust_anchors_path=_path(env.get(TRUST_ANCHORS_ENV), root),
            dev_credentials_dir=root / DEV_CREDENTIALS_DIR,
        )

    @property
    def uses_dev_keys(self) -> bool:
        """True unless a watermark key AND a signing key + certificate chain are configured: outputs
        would carry the public development watermark key or the self-made development certificate."""
        return (
            is_dev_watermark_key(self.watermark_key) or self.signing_key_path is None or self.signing_cert_path is None
        )

    def dev_key_problems(self) -> list[str]:
        """What is missing for real provenance keys, each naming its variable ([] when none is)."""
        problems = []
        if is_dev_watermark_key(self.watermark_key):
            problems.append(f"{WATERMARK_KEY_ENV} is not set (the public development watermark key would be used)")
        if self.signing_key_path is None or self.signing_cert_path is None:
            problems.append(
                f"{SIGNING_KEY_ENV} and {SIGNING_CERT_ENV} are not both set (manifests would be signed with "
                "the self-made development certificate)"
            )
        return problems

    @property
    def key_id(self) -> str:
        """A public fingerprint of the watermark key (names it in manifests and the ledger, reveals nothing)."""
        return derive(self.watermark_key, "watermark/key-id").hex()[:16]

    def signer_material(self) -> SignerMaterial:
        """The signing key and chain (the development ones, created on first use, if none configured)."""
        return _signer_material(self.signing_key_path, self.signing_cert_path, self.dev_credentials_dir)

    def trust_anchors_pem(self) -> str | None:
        """PEM of the CA certificates the verifier trusts, or None when there are none (nothing is created)."""
        parts: list[bytes] = []
        if self.trust_anchors_path is not None:
            parts.append(self.trust_anchors_path.read_bytes())
        else:
            if self.signing_cert_path is not None and self.signing_cert_path.is_file():
                parts.append(_last_certificate(self.signing_cert_path.read_bytes()))
            dev_ca = self.dev_credentials_dir / DEV_CA
            if dev_ca.is_file():
                parts.append(dev_ca.read_bytes())
        text = b"\n".join(p.strip() for p in parts if p.strip()).decode("ascii")
        return text + "\n" if text else None


def _last_certificate(chain_pem: bytes) -> bytes:
    marker = b"-----BEGIN CERTIFICATE-----"
    return marker + chain_pem.split(marker)[-1] if marker in chain_pem else b""


@functools.lru_cache(maxsize=8)
def _signer_material(key: Path | None, cert: Path | None, dev_dir: Path) -> SignerMaterial:
    material = load_signer_material(key, cert, dev_dir)
    if key is None and not (dev_dir / DEV_CHAIN).is_file():  # pragma: no cover - created above
        raise ValueError(f"could not create development signing credentials in {dev_dir}")
    return material
