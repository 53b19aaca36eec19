"""Request and response bodies of the Serve HTTP API (pydantic; NaN/inf refused at parse time).

>>> InferRequest(schema_version="FEATURES_V1", features=[0.0, 1.0]).is_batch
False
"""

from __future__ import annotations

from typing import Any
from typing import Literal

from pydantic import BaseModel
from pydantic import ConfigDict
from pydantic import Field
from pydantic import model_validator

_STRICT = ConfigDict(extra="forbid", allow_inf_nan=False)


class InferItem(BaseModel):
    """One step of a batch: a feature vector and the previous filtered log posterior."""

    model_config = _STRICT

    features: list[float]
    prev_log_posterior: list[float] | None = None


class InferRequest(BaseModel):
    """``POST /v1/infer``: either ``features`` (single) or ``items`` (batch), never both.

    ``model`` is an alias (``live``, ``candidate``), a version id or a version number.
    """

    model_config = _STRICT

    schema_version: str
    model: str = Field(default="live", min_length=1, max_length=64)
    features: list[float] | None = None
    prev_log_posterior: list[float] | None = None
    items: list[InferItem] | None = None

    @model_validator(mode="after")
    def _one_form(self) -> InferRequest:
        if (self.features is None) == (self.items is None):
            raise ValueError("give exactly one of 'features' (single) or 'items' (batch)")
        if self.items is not None and self.prev_log_posterior is not None:
            raise ValueError("prev_log_posterior goes inside each item of a batch")
        return self

    @property
    def is_batch(self) -> bool:
        return self.items is not None

    def payload_items(self) -> list[dict[str, Any]]:
        """The steps as plain dicts for the model replica."""
        if self.items is not None:
            return [i.model_dump() for i in self.items]
        return [{"features": self.features, "prev_log_posterior": self.prev_log_posterior}]


class InferResponse(BaseModel):
    """One inference result (see :class:`serving.model.InferenceResult`)."""

    model_version: str
    state: int
    posterior: list[float]
    log_posterior: list[float]
    confidence: float
    action: Literal["buy", "sell", "flat"]
    score: float
    adapting: bool
    drift: float
    loglik: float


class BatchInferResponse(BaseModel):
    """Results of a batch, in request order."""

    model_version: str
    results: list[InferResponse]


class ModelInfo(BaseModel):
    """One registry version as listed by ``GET /v1/models``."""

    version: str
    number: int
    bundle_id: str
    created_at: str | None
    parent: str | None
    aliases: list[str]
    metrics: dict[str, Any]


class ModelsResponse(BaseModel):
    aliases: dict[str, str]
    versions: list[ModelInfo]


class PromoteRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    alias: str = "live"


class AliasResponse(BaseModel):
    alias: str
    version: str
    previous: str | None


class ErrorResponse(BaseModel):
    """Every error body: ``detail`` says what, ``field`` names the input when there is one."""

    detail: str
    field: str | None = None


class PartialFitRequest(BaseModel):
    """``POST /v1/partial_fit``: one guarded online-EM update of ``model`` from rows ``X``."""

    model_config = _STRICT

    schema_version: str
    model: str = Field(default="live", min_length=1, max_length=64)
    X: list[list[float]] = Field(min_length=10)
    alias: str = "candidate"


class PartialFitResponse(BaseModel):
    """The guard's verdict; ``version`` is the registered child (``None`` when refused)."""

    accepted: bool
    reason: str
    parent: str
    version: str | None
    alias: str | None
    heldout_ll_before: float | None
    heldout_ll_after: float | None
    n_samples: int
    promoted: bool = False
    fit_ms: float | None = None
    total_ms: float | None = None


class TrainRequest(BaseModel):
    """``POST /v1/train``: arguments appended to the configured ``nhmm sweep`` command."""

    model_config = ConfigDict(extra="forbid")

    args: list[str] = Field(default_factory=list, max_length=256)
    submission_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.-]{1,64}$")


class TrainResponse(BaseModel):
    """The Ray job running the sweep: its id, status and the command it runs."""

    job_id: str
    status: str
    entrypoint: str
    message: str | None = None


class AdaptationRecord(BaseModel):
    """One drift-triggered adaptation: when, from which version, to which child, and why."""

    time: str
    parent: str
    alias: str | None
    child: str | None
    accepted: bool
    promoted: bool
    reason: str
    triggers: list[str]
    scores: dict[str, Any]
    n_rows: int
    fit_ms: float | None = None


class DriftResponse(BaseModel):
    """``GET /v1/drift``: the version's drift report and the adaptation history."""

    model_version: str
    n_samples: int
    n_window: int
    kl: dict[str, float]
    max_kl: float | None
    drifted: list[str]
    loglik_changes: int
    loglik_mean: float | None
    adapting: bool
    drift: float
    triggers: list[str]
    auto_adapt: bool
    history: list[AdaptationRecord]
