"""A keyed, invisible watermark carrying a 64-bit payload (transfigure's provenance id) that survives the
edits people make: re-encoding, resizing, crops at any offset, reframing, flips, quarter turns,
rotations, brightness and contrast.

* :mod:`.layout` - the cell lattice tied to the pixels, blocks, the tile, and what the key decides;
* :mod:`.planes` - any Pillow mode as float planes; the clamped read, saturation taper, channel mix;
* :mod:`.read` - the read shared by embedder and detector, exact for any geometry;
* :mod:`.embed` - QIM on every block's three channel values;
* :mod:`.decode` - soft values, pilot fitness, Viterbi, the keyed check, :class:`Detection`;
* :mod:`.sync` - the search for the geometry an image was edited with;
* :mod:`.legacy` - the previous release's watermark, still detected.
"""

from __future__ import annotations

from transfigure.provenance.watermark.decode import MAX_DECODES, Detection
from transfigure.provenance.watermark.embed import embed_watermark
from transfigure.provenance.watermark.layout import DELTA, MIN_SIDE, PAYLOAD_BYTES
from transfigure.provenance.watermark.planes import MIN_PSNR, psnr
from transfigure.provenance.watermark.sync import detect_watermark

__all__ = [
    "DELTA",
    "Detection",
    "MAX_DECODES",
    "MIN_PSNR",
    "MIN_SIDE",
    "PAYLOAD_BYTES",
    "detect_watermark",
    "embed_watermark",
    "psnr",
]
