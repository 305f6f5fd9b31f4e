"""GAN objectives and the image history buffer."""

from __future__ import annotations

import random
from typing import Any, Literal

import torch
from torch import nn

GANMode = Literal["lsgan", "vanilla"]


class GANLoss(nn.Module):
    """Adversarial loss against a constant real/fake target, as in the reference ``GANLoss``.

    * ``lsgan``: least squares, ``E[(D(x) - 1)^2]`` / ``E[D(G(z))^2]`` (Mao et al. 2017), the
      CycleGAN paper's choice (section 4, "Training details").
    * ``vanilla``: the original cross-entropy GAN on logits (``BCEWithLogitsLoss``).

    The loss is computed in float32 even under autocast, so bf16 logits do not lose
    precision in the squared error.
    """

    def __init__(self, gan_mode: GANMode = "lsgan", target_real: float = 1.0, target_fake: float = 0.0) -> None:
        super().__init__()
        if gan_mode == "lsgan":
            self.loss: nn.Module = nn.MSELoss()
        elif gan_mode == "vanilla":
            self.loss = nn.BCEWithLogitsLoss()
        else:
            raise ValueError(f"unknown gan_mode {gan_mode!r}: use 'lsgan' or 'vanilla'")
        self.gan_mode = gan_mode
        self.register_buffer("real_label", torch.tensor(target_real), persistent=False)
        self.register_buffer("fake_label", torch.tensor(target_fake), persistent=False)

    def forward(self, prediction: torch.Tensor, target_is_real: bool) -> torch.Tensor:
        prediction = prediction.float()
        target = (self.real_label if target_is_real else self.fake_label).to(prediction.device)
        return self.loss(prediction, target.expand_as(prediction))


class ImagePool:
    """History of generated images (Shrivastava et al. 2017), CycleGAN's size-50 buffer.

    Until the pool is full every image is stored and returned; afterwards each
    query returns, with probability 1/2, a stored image (replacing it with the new
    one) and otherwise the new image. The discriminator therefore sees a history
    of fakes, not only the latest generator's. Its random draws come from its own
    ``random.Random`` so that a resumed run continues the same sequence.
    """

    def __init__(self, pool_size: int = 50, seed: int = 0) -> None:
        self.pool_size = pool_size
        self.images: list[torch.Tensor] = []
        self.rng = random.Random(seed)

    def query(self, images: torch.Tensor) -> torch.Tensor:
        if self.pool_size == 0:
            return images
        out = []
        for image in images.detach():
            image = image.unsqueeze(0)
            if len(self.images) < self.pool_size:
                self.images.append(image.clone())
                out.append(image)
            elif self.rng.uniform(0, 1) > 0.5:
                idx = self.rng.randint(0, self.pool_size - 1)
                out.append(self.images[idx].clone())
                self.images[idx] = image.clone()
            else:
                out.append(image)
        return torch.cat(out, 0)

    def state_dict(self) -> dict[str, Any]:
        return {"pool_size": self.pool_size, "images": [t.cpu() for t in self.images], "rng": self.rng.getstate()}

    def load_state_dict(self, state: dict[str, Any], device: torch.device | str = "cpu") -> None:
        self.pool_size = state["pool_size"]
        self.images = [t.to(device) for t in state["images"]]
        rng_state = state["rng"]
        # torch.load(weights_only=True) turns tuples into lists; random wants tuples.
        self.rng.setstate((rng_state[0], tuple(rng_state[1]), rng_state[2]))
