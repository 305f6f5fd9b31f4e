"""What the two sides of the service hand each other: a :class:`TranslationJob` and its :class:`TranslationResult`.

The HTTP workers (:mod:`transfigure.serving.http`) read, check and decode a request into a job;
a model worker (:mod:`transfigure.serving.runner`) translates and stamps a batch of jobs and
answers one result per job. Both processes import this module; BentoML pickles the objects
over a local socket between them.
"""

from __future__ import annotations

import time
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class TranslationJob(BaseModel):
    """One image to translate, decoded and validated by the HTTP service."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    image: Any = Field(description="the decoded PIL image (a photo, or a label map for SPADE)")
    source: str = Field(description="where the image came from, for error messages")
    model: str | None = None
    direction: str | None = None
    width: int | None = None
    height: int | None = None
    fmt: str = "PNG"
    quality: int | None = None
    #: SPADE only: the instance-id map (decoded PIL image), a style image and the seed of z
    instance: Any = None
    style: Any = None
    #: a digest of the style image's bytes: jobs with different styles are never batched together
    style_key: str | None = None
    seed: int | None = None
    #: wall-clock time (``time.time()``) after which nobody waits for the result: the model worker
    #: drops the job instead of translating or stamping it (no image, no ledger row)
    deadline: float | None = None

    def expired(self, now: float | None = None) -> bool:
        return self.deadline is not None and (time.time() if now is None else now) > self.deadline

    @property
    def output_pixels(self) -> int:
        """Pixels the generator computes for this job: the requested size, else the input's."""
        if self.width and self.height:
            return self.width * self.height
        w, h = self.image.size
        return int(w) * int(h)


class TranslationResult(BaseModel):
    """The stamped output of one job, or why it was refused (``status`` >= 400, ``error`` and ``detail``)."""

    status: int = 200
    error: str | None = None
    detail: str | None = None
    data: bytes = b""
    media_type: str = ""
    provenance_id: str = ""
    manifest: dict[str, Any] = Field(default_factory=dict)
    model: str = ""
    version: str = ""
    variant: str | None = None
    run_id: str | None = None

    @classmethod
    def refused(cls, status: int, error: str, detail: str) -> TranslationResult:
        return cls(status=status, error=error, detail=detail)

    @property
    def ok(self) -> bool:
        return self.status == 200
