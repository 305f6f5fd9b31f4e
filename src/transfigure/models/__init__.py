"""Pure PyTorch models: no Kedro, MLflow or BentoML imports here."""

from transfigure.models.base import Precision, TranslationModel, VariantConfig
from transfigure.models.cyclegan import CycleGAN, CycleGANConfig
from transfigure.models.discriminators import NLayerDiscriminator, PixelDiscriminator, build_discriminator
from transfigure.models.generators import ResnetGenerator, build_generator
from transfigure.models.losses import GANLoss, ImagePool

#: variant name -> model class
VARIANTS: dict[str, type[TranslationModel]] = {CycleGAN.variant: CycleGAN}

__all__ = [
    "VARIANTS",
    "CycleGAN",
    "CycleGANConfig",
    "GANLoss",
    "ImagePool",
    "NLayerDiscriminator",
    "PixelDiscriminator",
    "Precision",
    "ResnetGenerator",
    "TranslationModel",
    "VariantConfig",
    "build_discriminator",
    "build_generator",
]
