"""In-process inference: one bundle, one causal forward-filter step and a policy decision.

The Serve replica and the node's in-process client run this same code, so an HTTP answer and an
in-process answer for the same input are equal number for number. Stateless per call: the
caller sends the previous filtered log posterior and gets the next one back.

Every number the model takes (features, the previous log posterior) must be finite with
``|v| <= VALUE_LIMIT``, or it is an :class:`InvalidInput` naming the element; the HTTP schema
(:mod:`serving.schemas`) states the same bound, for partial-fit rows too.

>>> import numpy as np
>>> float(np.exp(LOG_FLOOR)) > 0.0
True
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict
from dataclasses import dataclass
from typing import Any

import numpy as np

from serving.errors import http_status
from training.artifacts.bundle import ModelBundle
from training.artifacts.bundle import bundle_files
from training.artifacts.bundle import verify_files
from training.errors import BadInputError
from training.errors import SchemaMismatchError
from training.models.hmm import ForwardFilter

#: Lowest log probability returned: keeps ``log_posterior`` finite (JSON has no ``-inf``).
LOG_FLOOR = -700.0
#: Largest magnitude of any input number. The policy head casts its inputs to float32 (max
#: 3.4e38: past it a finite JSON number becomes inf); squared distances in the float64 HMM
#: likelihood and online EM must stay finite too ((1e30)^2 summed over rows is far from 1.8e308).
VALUE_LIMIT = 1e30
_LOGSUMEXP_TOL = 1e-6


class InferenceError(BadInputError):
    """A request the model refuses; ``field`` names the offending input. ``str()`` is
    ``"<field>: <message>"``; the HTTP ``status`` follows the class (:mod:`serving.errors`)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message, field=field)

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"

    @property
    def status(self) -> int:
        """The HTTP status of this error's kind: 409 for a schema mismatch, else 422."""
        return http_status(self)


class SchemaVersionMismatch(InferenceError, SchemaMismatchError):
    """The feature vector was computed under another schema version than the model's."""


class InvalidInput(InferenceError):
    """Wrong length, non-numeric or non-finite values, or a malformed previous posterior."""


@dataclass(frozen=True)
class InferenceResult:
    """What one inference step returns (the design's inference result contract)."""

    model_version: str
    state: int
    posterior: list[float]
    log_posterior: list[float]
    confidence: float
    action: str
    score: float
    adapting: bool
    drift: float
    loglik: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> InferenceResult:
        return cls(
            model_version=str(d["model_version"]),
            state=int(d["state"]),
            posterior=[float(v) for v in d["posterior"]],
            log_posterior=[float(v) for v in d["log_posterior"]],
            confidence=float(d["confidence"]),
            action=str(d["action"]),
            score=float(d["score"]),
            adapting=bool(d["adapting"]),
            drift=float(d.get("drift") or 0.0),
            loglik=float(d["loglik"]),
        )


def _vector(values: Any, field: str, length: int) -> np.ndarray:
    if isinstance(values, np.ndarray) and values.dtype == np.float64 and values.ndim == 1:
        out = values.copy()  # the in-process hot path: same numbers as the checked loop below
    elif type(values) is list and all(type(v) is float for v in values):
        out = np.array(values, dtype=np.float64)
    else:
        if isinstance(values, (str, bytes)) or not isinstance(values, (Sequence, np.ndarray)):
            raise InvalidInput(field, f"expected a list of {length} numbers")
        out = np.empty(len(values), dtype=np.float64)
        for i, v in enumerate(values):
            if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
                raise InvalidInput(f"{field}[{i}]", f"not a number ({type(v).__name__})")
            out[i] = float(v)
    if out.shape != (length,):
        raise InvalidInput(field, f"expected {length} values, got {len(out)}")
    _check_range(out, field)
    return out


def _check_range(values: np.ndarray, field: str) -> None:
    """Refuse a non-finite element or one past :data:`VALUE_LIMIT`, naming the first."""
    bad = np.flatnonzero(~(np.abs(values) <= VALUE_LIMIT))
    if bad.size:
        i = int(bad[0])
        v = float(values[i])
        why = f"not finite ({v})" if not np.isfinite(v) else f"{v:g} is outside {_RANGE}"
        raise InvalidInput(f"{field}[{i}]", why)


_RANGE = f"[{-VALUE_LIMIT:g}, {VALUE_LIMIT:g}]"


class InferenceModel:
    """A loaded bundle ready to infer: schema check, filter step, policy head, decision.

    ``version`` is the registry version id (default ``local-<bundle id[:8]>``). ``adapting`` and
    ``drift`` (overall score, 0.0 until known) are reported with every result; a drift monitor
    sets them. While adapting, the returned confidence is the raw one times
    ``confidence_factor`` (1.0 by default; the Serve app sets ``adapt_confidence_factor``).
    """

    def __init__(self, bundle: ModelBundle, version: str | None = None) -> None:
        self.bundle = bundle
        self.schema = bundle.feature_schema()
        self.params = bundle.hmm_params()
        self.filter = ForwardFilter(self.params)
        self.policy = bundle.policy_head()
        if self.params.n_features != len(self.schema.names):
            raise ValueError(
                f"bundle: HMM has {self.params.n_features} features, schema has "
                f"{len(self.schema.names)}"
            )
        if version is None:
            version = f"local-{verify_files(bundle_files(bundle)).bundle_id[:8]}"
        self.version = version
        self.adapting = False
        self.drift: float = 0.0
        self.confidence_factor = 1.0

    @property
    def n_states(self) -> int:
        return self.params.n_states

    @property
    def n_features(self) -> int:
        return self.params.n_features

    @property
    def schema_version(self) -> str:
        return self.schema.version

    def validate(
        self,
        features: Any,
        prev_log_posterior: Any,
        schema_version: Any,
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Checked ``(x, log_prev)`` arrays, or an :class:`InferenceError` naming the field."""
        if schema_version != self.schema.version:
            raise SchemaVersionMismatch(
                "schema_version",
                f"{schema_version!r} != model {self.version} schema {self.schema.version!r}",
            )
        x = _vector(features, "features", self.n_features)
        if prev_log_posterior is None:
            return x, None
        log_prev = _vector(prev_log_posterior, "prev_log_posterior", self.n_states)
        m = float(log_prev.max())
        lse = m + math.log(float(np.exp(log_prev - m).sum()))
        if abs(lse) > _LOGSUMEXP_TOL:
            raise InvalidInput(
                "prev_log_posterior",
                f"not a normalised log probability vector (logsumexp {lse:.3g} != 0)",
            )
        return x, log_prev

    def infer(
        self,
        features: Sequence[float] | np.ndarray,
        prev_log_posterior: Sequence[float] | np.ndarray | None,
        schema_version: str,
        adapting: bool | None = None,
        drift: float | None = None,
    ) -> InferenceResult:
        """One causal step from ``prev_log_posterior`` (``None``: sequence start).

        ``adapting``/``drift`` override the model's own state for this call (the Serve ingress
        passes its drift monitor's view); while adapting, confidence is scaled by
        ``confidence_factor``.
        """
        adapting = self.adapting if adapting is None else adapting
        drift = self.drift if drift is None else drift
        x, log_prev = self.validate(features, prev_log_posterior, schema_version)
        try:
            step = self.filter.step(x, log_prev)
        except FloatingPointError as exc:
            raise InvalidInput("features", str(exc)) from exc
        proba = self.policy.predict_row(np.concatenate([step.posterior, x]).astype(np.float32))
        action, score = self.policy.decide(proba)
        return InferenceResult(
            model_version=self.version,
            state=int(step.state),
            posterior=[float(v) for v in step.posterior],
            log_posterior=[float(v) for v in np.maximum(step.log_posterior, LOG_FLOOR)],
            confidence=float(step.confidence) * (self.confidence_factor if adapting else 1.0),
            action=action,
            score=float(score),
            adapting=bool(adapting),
            drift=float(drift),
            loglik=float(step.loglik),
        )
