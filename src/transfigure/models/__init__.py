"""Pure PyTorch models: no Kedro, MLflow or BentoML imports here.

Networks live by role (``layers``, ``generators``, ``discriminators``, ``losses``), each
variant's file (``pix2pix``, ``cyclegan``, ``unit``, ``spade``) holds its typed config and its
:class:`TranslationModel` (training step, ``translate``) built from them.
"""

from transfigure.models.base import Precision, TranslationModel, VariantConfig
from transfigure.models.cyclegan import CycleGAN, CycleGANConfig
from transfigure.models.discriminators import (
    MsImageDiscriminator,
    MultiscaleDiscriminator,
    NLayerDiscriminator,
    PixelDiscriminator,
    build_discriminator,
)
from transfigure.models.generators import ResnetGenerator, SPADEGenerator, UnetGenerator, UNITGenerator, build_generator
from transfigure.models.losses import GANLoss, ImagePool
from transfigure.models.pix2pix import Pix2Pix, Pix2PixConfig
from transfigure.models.spade import SPADE, SPADEConfig
from transfigure.models.unit import UNIT, UNITConfig

#: variant name -> model class
VARIANTS: dict[str, type[TranslationModel]] = {m.variant: m for m in (CycleGAN, Pix2Pix, UNIT, SPADE)}

__all__ = [
    "VARIANTS",
    "CycleGAN",
    "CycleGANConfig",
    "GANLoss",
    "ImagePool",
    "NLayerDiscriminator",
    "Pix2Pix",
    "Pix2PixConfig",
    "PixelDiscriminator",
    "Precision",
    "ResnetGenerator",
    "TranslationModel",
    "UNIT",
    "UNITConfig",
    "UNITGenerator",
    "MsImageDiscriminator",
    "MultiscaleDiscriminator",
    "SPADE",
    "SPADEConfig",
    "SPADEGenerator",
    "UnetGenerator",
    "VariantConfig",
    "build_discriminator",
    "build_generator",
]
