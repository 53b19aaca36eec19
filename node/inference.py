"""The strategy's view of the model: a small ``infer`` protocol and an in-process adapter.

:class:`InProcessModel` runs the bundle's forward filter and policy head in the strategy's
process (the backtest default). The Serve HTTP client will satisfy the same
:class:`InferenceClient` protocol, so the strategy never knows which one it has.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from training.bundle import ModelBundle
from training.hmm import ForwardFilter

__all__ = ["InProcessModel", "InferenceClient"]


class InferenceClient(Protocol):
    """``infer(features, prev_log_posterior)`` -> the inference result dict, or ``None`` on
    failure/timeout (the LATENCY guardrail blocks then)."""

    def infer(
        self, features: np.ndarray, prev_log_posterior: np.ndarray | None
    ) -> dict[str, Any] | None: ...


class InProcessModel:
    """Forward filter + policy head of one bundle; stateless per call (the caller carries the
    filtered log posterior), like a Serve replica.

    Result keys: ``model_version, state, posterior, log_posterior, confidence, action, score,
    adapting, drift`` (no drift monitor in process: ``adapting`` False, ``drift`` 0.0).
    """

    def __init__(self, bundle: ModelBundle, model_version: str = "") -> None:
        self.bundle = bundle
        self.schema = bundle.feature_schema()
        self.filter = ForwardFilter(bundle.hmm_params())
        self.policy = bundle.policy_head()
        self.model_version = model_version or str(bundle.metadata.get("version", ""))

    def infer(
        self, features: np.ndarray, prev_log_posterior: np.ndarray | None
    ) -> dict[str, Any] | None:
        x = np.asarray(features, dtype=np.float64)
        self.schema.check_vector(self.schema.version, x)
        try:
            step = self.filter.step(x, prev_log_posterior)
        except (ValueError, FloatingPointError):
            return None
        proba = self.policy.predict_row(np.concatenate([step.posterior, x]).astype(np.float32))
        action, score = self.policy.decide(proba)
        return {
            "model_version": self.model_version,
            "state": step.state,
            "posterior": step.posterior,
            "log_posterior": step.log_posterior,
            "confidence": step.confidence,
            "action": action,
            "score": score,
            "adapting": False,
            "drift": 0.0,
        }
