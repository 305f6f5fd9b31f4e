"""Provenance for every transfigure output: invisible keyed watermark, signed C2PA manifest, ledger.

    from transfigure.provenance import stamp_output, verify_image_bytes, ModelInfo
    stamped = stamp_output(image, model=ModelInfo("cyclegan", "3", run_id="..."), fmt="PNG")
    report = verify_image_bytes(stamped.data)        # {"watermark": ..., "manifest": ..., "ledger": ...}

* :mod:`.watermark` - 64-bit payload, keyed, tied to the pixels (QIM per block on a tiled lattice), found
  after crops, reframing, flips and rotations; FPR <= 2e-8 per image by construction;
* :mod:`.manifest` - C2PA manifest signed offline with a local certificate chain;
* :mod:`.ledger` - append-only record of every provenance id (sqlite, or PostgreSQL for a team);
* :mod:`.stamp` / :mod:`.verify` - the two entry points; ``transfigure verify IMAGE...`` on the CLI;
* :mod:`.config` - keys, certificates, trust anchors and ledger from ``TRANSFIGURE_*`` variables.
"""

from __future__ import annotations

from transfigure.provenance.config import ProvenanceConfig
from transfigure.provenance.ledger import Ledger, LedgerRecord
from transfigure.provenance.stamp import DeadlinePassed, ModelInfo, Stamped, stamp_output
from transfigure.provenance.verify import ImageInputError, verify_image_bytes
from transfigure.provenance.watermark import Detection, detect_watermark, embed_watermark

__all__ = [
    "DeadlinePassed",
    "Detection",
    "ImageInputError",
    "Ledger",
    "LedgerRecord",
    "ModelInfo",
    "ProvenanceConfig",
    "Stamped",
    "detect_watermark",
    "embed_watermark",
    "stamp_output",
    "verify_image_bytes",
]
