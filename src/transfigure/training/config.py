"""Typed training configuration shared by every variant."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

LRPolicy = Literal["linear", "step", "cosine", "plateau", "constant"]


class TrainingConfig(BaseModel):
    """How to train (not what): epochs, schedule, device, precision, checkpoints, logging.

    ``n_epochs`` at the initial LR then ``n_epochs_decay`` of linear decay to zero is the
    CycleGAN/pix2pix schedule (100 + 100 in the papers).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    batch_size: int = Field(1, ge=1)
    n_epochs: int = Field(100, ge=0)
    n_epochs_decay: int = Field(100, ge=0)
    lr_policy: LRPolicy = "linear"
    lr_decay_iters: int = Field(50, ge=1, description="epochs between decays for lr_policy 'step'")
    lr_gamma: float = Field(0.1, gt=0, lt=1.0 + 1e-9, description="decay factor for lr_policy 'step' and 'plateau'")
    plateau_metric: str = Field(
        "G", description="loss (epoch mean) watched by lr_policy 'plateau', e.g. 'G' or 'cycle_A'"
    )
    plateau_patience: int = Field(5, ge=0, description="epochs without improvement before 'plateau' decays the LR")
    max_steps: int | None = Field(None, ge=1, description="stop after this many steps (smoke runs, tests)")
    num_workers: int = Field(
        0, ge=0, description="DataLoader worker processes (0 = load in the training process; tests, CPU smoke runs)"
    )
    persistent_workers: bool = Field(
        True, description="keep the workers alive across epochs (only with num_workers > 0)"
    )
    prefetch_factor: int | None = Field(
        None, ge=1, description="batches each worker loads ahead; null = PyTorch's default (2); needs num_workers > 0"
    )
    pin_memory: bool | None = Field(
        None, description="page-locked host batches for faster copies to the GPU; null = on for CUDA only"
    )
    shuffle: bool = True
    device: str = Field("auto", description="'auto' (CUDA if present, else CPU), 'cpu', 'cuda', 'cuda:1', ...")
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        "auto",
        description=(
            "'auto': bf16 autocast where the hardware computes bf16 natively (CPUs with AVX512-BF16 or "
            "AMX-BF16, CUDA compute capability >= 8.0), fp32 elsewhere; explicit values are honoured"
        ),
    )
    channels_last: bool | Literal["auto"] = Field(
        "auto",
        description=(
            "NHWC memory format; 'auto': on where it measurably speeds up this variant's step in the resolved "
            "precision (the variant's channels_last_speedup table, benchmarks/train_throughput.py)"
        ),
    )
    compile: bool = Field(
        False, description="torch.compile the generators (off: on CPU its compile time outweighs a default run's gain)"
    )
    checkpoint_every: int = Field(500, ge=1, description="steps between checkpoints")
    keep_checkpoints: int = Field(2, ge=1, description="numbered checkpoints kept besides last.pt")
    resume: bool = Field(False, description="continue from <output_dir>/checkpoints/last.pt if it exists")
    remote_dir: str | None = Field(
        None,
        min_length=1,
        description=(
            "fsspec URL (s3://bucket/prefix/cyclegan, file:///shared/cyclegan ...) that mirrors checkpoints/ and "
            "the exported generator/; resume: true on another machine downloads its last.pt; null = local only"
        ),
    )
    log_every: int = Field(10, ge=1, description="steps between metric logs")
    sample_every: int = Field(200, ge=1, description="steps between sample grids")
    eval_every: int | None = Field(
        None, ge=1, description="epochs between evaluation callbacks (e.g. the FID curve); null = off"
    )
    seed: int = 0
    progress: bool = True

    @model_validator(mode="after")
    def _some_training(self) -> TrainingConfig:
        if self.n_epochs + self.n_epochs_decay < 1:
            raise ValueError("n_epochs + n_epochs_decay must be at least 1")
        if self.prefetch_factor is not None and self.num_workers == 0:
            raise ValueError("prefetch_factor needs num_workers > 0 (set it to null, or add workers)")
        return self

    @property
    def total_epochs(self) -> int:
        return self.n_epochs + self.n_epochs_decay
