"""The signed provenance manifest: C2PA content credentials, signed and validated offline.

``c2pa-python`` 0.38.1 (c2pa-rs 0.91) embeds a manifest store (JUMBF) in PNG, JPEG and WebP and
signs it with a local certificate chain (see :mod:`.signing`); no timestamp authority, OCSP or
remote manifest is ever contacted. The manifest carries:

* the transfigure assertion ``org.transfigure.provenance`` (:data:`ASSERTION`): provenance id
  (= the watermark payload), model name / registry version / variant / MLflow run id, creation
  time, the watermark algorithm and key fingerprint, size and a SHA-256 of the decoded pixels;
* a ``c2pa.actions`` assertion: ``c2pa.created`` by transfigure with the IPTC digital source
  type *trainedAlgorithmicMedia*;
* C2PA's own hard binding: a SHA-256 over the file's bytes (except the manifest itself).

Reading validates the signature, the certificate chain against the trust anchors, every
assertion's hash and the hard binding. Status: ``valid`` (all of that holds and the signer is
trusted), ``invalid`` (with the reason: changed pixels/bytes, a changed manifest, an untrusted
or broken signature) or ``absent`` (no manifest: stripped by a re-encode or never there).
"""

from __future__ import annotations

import io
import json
from typing import Any, Final

import c2pa

from transfigure.provenance.signing import SignerMaterial

__all__ = ["ASSERTION", "MANIFEST_MEDIA_TYPES", "read_manifest", "sign_manifest"]

ASSERTION: Final = "org.transfigure.provenance"
MANIFEST_MEDIA_TYPES: Final = ("image/png", "image/jpeg", "image/webp")
_TRAINED_ALGORITHMIC: Final = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
_OFFLINE: Final = {"ocsp_fetch": False, "remote_manifest_fetch": False}
_EXPLANATIONS: Final = {
    "assertion.dataHash.mismatch": "the image bytes were changed after signing (pixels or data outside the manifest)",
    "assertion.hashedURI.mismatch": "the manifest's assertions were changed after signing",
    "claimSignature.mismatch": "the manifest's signature does not match its claim",
    "signingCredential.untrusted": "the signing certificate does not chain to a trusted anchor "
    "(configure TRANSFIGURE_TRUST_ANCHORS or the signing chain)",
    "signingCredential.expired": "the signing certificate has expired",
    "signingCredential.invalid": "the signing certificate is not valid for C2PA signing",
}


def sign_manifest(data: bytes, media_type: str, claims: dict[str, Any], signer: SignerMaterial) -> bytes:
    """Return ``data`` (an encoded PNG/JPEG/WebP) with a signed C2PA manifest holding ``claims``."""
    if media_type not in MANIFEST_MEDIA_TYPES:
        raise ValueError(f"cannot embed a manifest in {media_type}: use one of {', '.join(MANIFEST_MEDIA_TYPES)}")
    definition = {
        "claim_generator_info": [{"name": "transfigure", "version": str(claims.get("transfigure_version", ""))}],
        "title": f"transfigure-{claims.get('provenance_id', '')}",
        "format": media_type,
        "assertions": [
            {"label": ASSERTION, "data": claims},
            {
                "label": "c2pa.actions",
                "data": {
                    "actions": [
                        {
                            "action": "c2pa.created",
                            "digitalSourceType": _TRAINED_ALGORITHMIC,
                            "softwareAgent": {
                                "name": "transfigure",
                                "version": str(claims.get("transfigure_version", "")),
                            },
                        }
                    ]
                },
            },
        ],
    }
    context = c2pa.Context.from_dict({"builder": {"thumbnail": {"enabled": False}}, "verify": _OFFLINE})
    info = c2pa.C2paSignerInfo(signer.algorithm, signer.chain_pem, signer.key_pem, None)
    out = io.BytesIO()
    with c2pa.Signer.from_info(info) as c2pa_signer, c2pa.Builder(definition, context=context) as builder:
        builder.sign(c2pa_signer, media_type, io.BytesIO(data), out)
    return out.getvalue()


def read_manifest(data: bytes, media_type: str, trust_anchors_pem: str | None) -> dict[str, Any]:
    """Validate the manifest in ``data``: ``{"status", "reason", "trusted", "signer", "claims", "issues"}``."""
    if media_type not in MANIFEST_MEDIA_TYPES:
        return {"status": "absent", "reason": f"{media_type} files do not carry a transfigure manifest"}
    settings: dict[str, Any] = {"verify": {**_OFFLINE, "verify_trust": True}}
    if trust_anchors_pem:
        settings["trust"] = {"trust_anchors": trust_anchors_pem}
    try:
        with c2pa.Reader(media_type, io.BytesIO(data), context=c2pa.Context.from_dict(settings)) as reader:
            store = json.loads(reader.json())
            state = reader.get_validation_state()
    except c2pa.C2paError as exc:
        text = str(exc)
        if "ManifestNotFound" in type(exc).__name__ or "ManifestNotFound" in text or "no JUMBF" in text:
            return {"status": "absent", "reason": "no C2PA manifest in the file (stripped, re-encoded or never signed)"}
        return {"status": "invalid", "reason": f"the manifest cannot be read: {text}"}
    return _summarise(store, state, trusted_anchors=bool(trust_anchors_pem))


def _summarise(store: dict[str, Any], state: str | None, trusted_anchors: bool) -> dict[str, Any]:
    active = store.get("manifests", {}).get(store.get("active_manifest", ""), {})
    failures = store.get("validation_results", {}).get("activeManifest", {}).get("failure", [])
    codes = [f.get("code", "") for f in failures]
    claims = next((a.get("data") for a in active.get("assertions", []) if a.get("label") == ASSERTION), None)
    signature = active.get("signature_info", {})
    result: dict[str, Any] = {
        "signer": {k: signature.get(k) for k in ("issuer", "common_name", "alg") if signature.get(k)},
        "trusted": state == "Trusted",
        "claims": claims,
        "issues": [f"{f.get('code')}: {f.get('explanation', '')}".strip() for f in failures],
    }
    if state == "Trusted" and not codes:
        if claims is None:
            return {
                "status": "invalid",
                "reason": f"a valid C2PA manifest, but without the {ASSERTION} assertion (not made by transfigure)",
                **result,
            }
        return {"status": "valid", "reason": "signature, certificate chain and all hashes verified", **result}
    reasons = [_EXPLANATIONS.get(c, c) for c in codes] or [f"validation state {state}"]
    if not trusted_anchors and set(codes) <= {"signingCredential.untrusted"}:
        reasons = [
            "no trust anchors are configured, so the signer cannot be trusted "
            "(set TRANSFIGURE_TRUST_ANCHORS, or create/keep the development certificate)"
        ]
    return {"status": "invalid", "reason": "; ".join(dict.fromkeys(reasons)), **result}
