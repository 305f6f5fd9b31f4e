"""``transfigure provenance-cert``: create the development signing CA + certificate (offline).

Writes ``dev_ca.pem``, ``dev_signer_chain.pem`` and ``dev_signer.key`` (mode 600) to
``conf/local/provenance/`` (git-ignored) of the project, or ``--dir``. Stamping uses them when no
``TRANSFIGURE_SIGNING_KEY``/``TRANSFIGURE_SIGNING_CERT`` is configured, and verification trusts
that CA. For production, configure a key and a certificate chain from a real CA instead.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dir", type=Path, default=None, help="output folder (default: conf/local/provenance)")
    parser.add_argument("--force", action="store_true", help="replace existing development credentials")
    parser.add_argument("--days", type=int, default=3650, help="validity in days (default 3650)")


def run(args: argparse.Namespace) -> int:
    from transfigure.provenance.config import DEV_CREDENTIALS_DIR, project_root
    from transfigure.provenance.signing import DEV_CA, DEV_CHAIN, DEV_KEY, create_dev_credentials

    directory = args.dir or project_root() / DEV_CREDENTIALS_DIR
    existed = (directory / DEV_KEY).exists()
    create_dev_credentials(directory, force=args.force, days=args.days)
    verb = "kept existing" if existed and not args.force else "created"
    print(f"{verb} development signing credentials in {directory}:")
    for name in (DEV_CA, DEV_CHAIN, DEV_KEY):
        print(f"  {directory / name}")
    if args.dir is not None:
        print("use them with:")
        print(
            f"  export TRANSFIGURE_SIGNING_KEY={directory / DEV_KEY} TRANSFIGURE_SIGNING_CERT={directory / DEV_CHAIN}"
        )
        print(f"  export TRANSFIGURE_TRUST_ANCHORS={directory / DEV_CA}")
    return 0
