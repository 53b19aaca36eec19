"""InferenceModel: causal filtering, policy decision, typed validation errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from serving.model import LOG_FLOOR
from serving.model import VALUE_LIMIT
from serving.model import InferenceModel
from serving.model import InferenceResult
from serving.model import InvalidInput
from serving.model import SchemaVersionMismatch
from training.models.hmm import ForwardFilter
from training.models.policy import policy_inputs

ACTIONS = ("buy", "sell", "flat")


@pytest.fixture(scope="module")
def model(bundles) -> InferenceModel:
    return InferenceModel(bundles[0][0], version="v0001-test")


def test_chained_steps_equal_the_forward_filter_and_policy(model, bundles) -> None:
    X = bundles[0][1][:200]
    run = ForwardFilter(model.params).run(X)
    proba = model.policy.predict_proba(policy_inputs(run.posteriors, X))
    actions, scores = model.policy.decide_many(proba)
    prev = None
    for t, x in enumerate(X):
        r = model.infer(x.tolist(), prev, "FEATURES_V1")
        prev = r.log_posterior
        np.testing.assert_allclose(r.posterior, run.posteriors[t], atol=1e-9)
        assert r.state == run.states[t]
        assert r.confidence == pytest.approx(run.confidence[t], abs=1e-9)
        assert r.loglik == pytest.approx(run.loglik[t], abs=1e-7)
        assert r.action == ("sell", "flat", "buy")[actions[t]]
        assert r.score == pytest.approx(scores[t], abs=1e-5)
        assert r.model_version == "v0001-test" and not r.adapting and r.drift == 0.0
        assert min(r.log_posterior) >= LOG_FLOOR
    assert {"buy", "sell", "flat"} & {("sell", "flat", "buy")[a] for a in actions}


def test_stateless_same_input_same_answer(model, bundles) -> None:
    x = bundles[0][1][5]
    first = model.infer(x, None, "FEATURES_V1")
    prev = first.log_posterior
    a = model.infer(x, prev, "FEATURES_V1")
    model.infer(bundles[0][1][9], None, "FEATURES_V1")  # unrelated call in between
    b = model.infer(x, prev, "FEATURES_V1")
    assert a == b
    assert a != first  # the carried posterior matters: the transition matrix is used


def test_adapting_scales_confidence_only(bundles) -> None:
    m = InferenceModel(bundles[0][0], version="v0001-test")
    x = bundles[0][1][5]
    plain = m.infer(x, None, "FEATURES_V1")
    same = m.infer(x, None, "FEATURES_V1", adapting=True, drift=2.5)  # factor 1.0
    assert same.confidence == plain.confidence and same.adapting
    m.confidence_factor = 0.25
    r = m.infer(x, None, "FEATURES_V1", adapting=True, drift=2.5)
    assert r.adapting and r.drift == 2.5 and r.confidence == plain.confidence * 0.25
    assert (r.posterior, r.state, r.action, r.score) == (
        plain.posterior,
        plain.state,
        plain.action,
        plain.score,
    )
    m.adapting, m.drift = True, 1.0  # the model's own state, used when no override is given
    assert m.infer(x, None, "FEATURES_V1").confidence == plain.confidence * 0.25
    assert m.infer(x, None, "FEATURES_V1", adapting=False).confidence == plain.confidence


def test_result_round_trips_through_json(model, bundles) -> None:
    r = model.infer(bundles[0][1][0], None, "FEATURES_V1")
    back = InferenceResult.from_dict(json.loads(json.dumps(r.to_dict())))
    assert back == r


def test_default_version_is_bundle_id(bundles) -> None:
    m = InferenceModel(bundles[1][0])
    assert m.version.startswith("local-") and len(m.version) == 14


def test_values_up_to_the_limit_are_scored_finitely(model) -> None:
    x = [0.0] * 10
    x[5] = VALUE_LIMIT  # float32 holds it; squared distances stay finite in float64
    r = model.infer(x, None, "FEATURES_V1")
    assert np.isfinite(r.loglik) and np.isfinite(r.posterior).all() and r.action in ACTIONS
    with pytest.raises(InvalidInput, match=r"outside \[-1e\+30, 1e\+30\]"):
        model.infer(
            [0.0] * 5 + [np.nextafter(VALUE_LIMIT, np.inf)] + [0.0] * 4, None, "FEATURES_V1"
        )


@pytest.mark.parametrize(
    ("features", "prev", "version", "exc", "field"),
    [
        ([0.0] * 10, None, "FEATURES_V0", SchemaVersionMismatch, "schema_version"),
        ([0.0] * 9, None, "FEATURES_V1", InvalidInput, "features"),
        ([0.0] * 11, None, "FEATURES_V1", InvalidInput, "features"),
        ([0.0] * 9 + [float("nan")], None, "FEATURES_V1", InvalidInput, "features[9]"),
        ([float("inf")] + [0.0] * 9, None, "FEATURES_V1", InvalidInput, "features[0]"),
        ([0.0] * 9 + ["1"], None, "FEATURES_V1", InvalidInput, "features[9]"),
        ([0.0] * 5 + [1e39] + [0.0] * 4, None, "FEATURES_V1", InvalidInput, "features[5]"),
        (
            np.array([0.0] * 5 + [-3.3e38] + [0.0] * 4),
            None,
            "FEATURES_V1",
            InvalidInput,
            "features[5]",
        ),
        ([0.0] * 10, [0.0, -1e31, -1e31], "FEATURES_V1", InvalidInput, "prev_log_posterior[1]"),
        ([0.0] * 9 + [True], None, "FEATURES_V1", InvalidInput, "features[9]"),
        ("0000000000", None, "FEATURES_V1", InvalidInput, "features"),
        ([0.0] * 10, [0.0, 0.0], "FEATURES_V1", InvalidInput, "prev_log_posterior"),
        ([0.0] * 10, [0.0, 0.0, 0.0], "FEATURES_V1", InvalidInput, "prev_log_posterior"),
        (
            [0.0] * 10,
            [0.0, float("-inf"), 0.0],
            "FEATURES_V1",
            InvalidInput,
            "prev_log_posterior[1]",
        ),
    ],
)
def test_bad_input_raises_typed_error_naming_the_field(
    model, features, prev, version, exc, field
) -> None:
    with pytest.raises(exc) as info:
        model.infer(features, prev, version)
    assert info.value.field == field
    assert info.value.status == (409 if exc is SchemaVersionMismatch else 422)
    assert str(info.value).startswith(field)
