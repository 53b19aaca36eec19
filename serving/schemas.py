"""Request and response bodies of the Serve HTTP API: the OpenAPI document is the contract.

The request rules are stated in the schema, not only checked in code: every number is finite
and within ``±VALUE_LIMIT`` (:mod:`serving.model`); an infer request carries exactly one of
``features`` (one step) or ``items`` (a batch; the previous posterior then goes in each item);
an alias follows the registry's naming rule (lower-case letters, digits, ``-``, ``_``, starting
with a letter, not shaped like a version number); a model ref is an alias, a version id or a
number. Error bodies are :class:`ErrorResponse`, and :class:`ValidationErrorResponse` for 422.

>>> InferRequest(schema_version="FEATURES_V1", features=[0.0, 1.0]).is_batch
False
>>> from pydantic import ValidationError
>>> try:
...     InferRequest(schema_version="FEATURES_V1", features=[0.0, 1e31])
... except ValidationError as exc:
...     print(exc.errors()[0]["loc"], exc.errors()[0]["type"])
('features', 1) less_than_equal
"""

from __future__ import annotations

import re
from typing import Annotated
from typing import Any
from typing import Literal

from pydantic import AfterValidator
from pydantic import BaseModel
from pydantic import ConfigDict
from pydantic import Field
from pydantic import Strict
from pydantic import StringConstraints
from pydantic import WithJsonSchema
from pydantic import field_validator
from pydantic import model_validator

from serving.model import VALUE_LIMIT
from training.artifacts.registry import _ALIAS_RE  # the registry owns the naming rules
from training.artifacts.registry import _NUMBER_REF_RE
from training.artifacts.registry import VERSION_RE

_STRICT = ConfigDict(extra="forbid", allow_inf_nan=False)
#: Most values in one vector (a feature schema has about ten).
MAX_VECTOR = 256


def _bare(rx: re.Pattern[str]) -> str:
    return rx.pattern.removeprefix("^").removesuffix("$")


ALIAS_PATTERN = _ALIAS_RE.pattern
NUMBER_PATTERN = _NUMBER_REF_RE.pattern
MODEL_REF_PATTERN = f"^(?:{_bare(_ALIAS_RE)}|{_bare(VERSION_RE)}|{_bare(_NUMBER_REF_RE)})$"
JOB_ID_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"


def _not_a_number_ref(v: str) -> str:
    if _NUMBER_REF_RE.match(v):
        raise ValueError(f"{v!r} is shaped like a version number (v7, 7): not an alias")
    return v


#: A finite JSON number the model can take (float32 policy head, float64 likelihoods); strict:
#: ``true`` or ``"1"`` is not a number. (Bounds checked in pydantic's core: a batch of 256
#: vectors validates 3x faster than with a Python validator per element.)
Number = Annotated[float, Strict(), Field(ge=-VALUE_LIMIT, le=VALUE_LIMIT)]
#: An alias name: what promote, partial_fit and rollback move.
Alias = Annotated[
    str,
    StringConstraints(pattern=ALIAS_PATTERN),
    AfterValidator(_not_a_number_ref),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": ALIAS_PATTERN,
            "not": {"pattern": NUMBER_PATTERN},
            "description": "lower-case letters, digits, '-' or '_', starting with a letter; "
            "not shaped like a version number (v7, 7)",
        }
    ),
]
#: An alias (``live``), a version id (``v0003-1a2b3c4d``) or a version number (``3``, ``v3``).
ModelRef = Annotated[str, StringConstraints(pattern=MODEL_REF_PATTERN, max_length=64)]
SchemaVersion = Annotated[str, StringConstraints(min_length=1, max_length=64)]
Vector = Annotated[list[Number], Field(min_length=1, max_length=MAX_VECTOR)]


def _exactly_one_form(schema: dict[str, Any]) -> None:
    """State in the schema what :meth:`InferRequest._one_form` checks: ``features`` xor
    ``items`` (neither may be null), and no top-level ``prev_log_posterior`` with ``items``."""
    props = schema["properties"]
    for name in ("features", "items"):
        field = props[name]
        (kept,) = [s for s in field.pop("anyOf") if s.get("type") != "null"]
        field.pop("default", None)
        field.update(kept)
    schema["examples"] = [
        {"schema_version": "FEATURES_V1", "model": "live", "features": [0.0] * 10},
        {"schema_version": "FEATURES_V1", "items": [{"features": [0.0] * 10}]},
    ]
    schema["oneOf"] = [
        {"required": ["features"], "properties": {"items": False}},
        {
            "required": ["items"],
            "properties": {"features": False, "prev_log_posterior": {"type": "null"}},
        },
    ]


class InferItem(BaseModel):
    """One step of a batch: a feature vector and the previous filtered log posterior."""

    model_config = _STRICT

    features: Vector
    prev_log_posterior: Vector | None = None


class InferRequest(BaseModel):
    """``POST /v1/infer``: exactly one of ``features`` (single) or ``items`` (batch).

    ``model`` is an alias (``live``, ``candidate``), a version id or a version number.
    """

    model_config = ConfigDict(
        extra="forbid", allow_inf_nan=False, json_schema_extra=_exactly_one_form
    )

    schema_version: SchemaVersion
    model: ModelRef = "live"
    features: Vector | None = None
    prev_log_posterior: Vector | None = None
    items: Annotated[list[InferItem], Field(min_length=1)] | None = None

    @field_validator("features", "items", mode="before")
    @classmethod
    def _not_null(cls, v: Any) -> Any:
        if v is None:
            raise ValueError("leave it out instead of null")
        return v

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
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"alias": "live"}]})

    alias: Alias = "live"


class AliasResponse(BaseModel):
    alias: str
    version: str
    previous: str | None


class ErrorResponse(BaseModel):
    """Every error body: ``detail`` says what, ``field`` names the input when there is one."""

    detail: str
    field: str | None


class FieldError(BaseModel):
    field: str
    msg: str


class ValidationErrorResponse(ErrorResponse):
    """A 422 for a body the schema refuses: the first bad field, then up to 20 of them."""

    errors: list[FieldError]


class HealthResponse(BaseModel):
    """``/healthz``: ``ok`` when the live version loads (``live`` is ``null`` before any
    promote), ``unavailable`` (503) with the reason when it cannot be served."""

    status: Literal["ok", "unavailable"]
    live: str | None
    detail: str | None = None


class LivenessResponse(BaseModel):
    """``/livez``: the replica answers (nothing else is checked)."""

    status: Literal["alive"]


class PartialFitRequest(BaseModel):
    """``POST /v1/partial_fit``: one guarded online-EM update of ``model`` from rows ``X``."""

    model_config = ConfigDict(
        extra="forbid",
        allow_inf_nan=False,
        json_schema_extra={
            "examples": [
                {
                    "schema_version": "FEATURES_V1",
                    "model": "live",
                    "X": [[((i * 7 + j) % 11 - 5) / 10 for j in range(10)] for i in range(12)],
                    "alias": "candidate",
                }
            ]
        },
    )

    schema_version: SchemaVersion
    model: ModelRef = "live"
    X: list[Vector] = Field(min_length=10)
    alias: Alias = "candidate"


class PartialFitResponse(BaseModel):
    """The guard's verdict; ``version`` is the registered child (``None`` when refused).
    ``guard`` is its whole account: held-out, window, reservoir and per-regime log-likelihoods
    before and after, forgetting, the policy head's agreement with the parent, the EM step."""

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
    guard: dict[str, Any] = Field(default_factory=dict)


#: One command-line argument: printable (no control characters), at most 4096 characters.
Arg = Annotated[str, StringConstraints(pattern=r"^[^\x00-\x1f\x7f]*$", max_length=4096)]


class TrainRequest(BaseModel):
    """``POST /v1/train``: arguments appended to the configured ``nhmm sweep`` command."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"args": ["--help"]}]}
    )

    args: list[Arg] = Field(default_factory=list, max_length=256)
    submission_id: str | None = Field(default=None, pattern=JOB_ID_PATTERN)


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
