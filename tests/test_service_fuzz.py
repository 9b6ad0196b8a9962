"""Fuzz the scoring API from its own OpenAPI spec with schemathesis: no 5xx, responses match the spec,
authentication is enforced; valid and invalid (negative) inputs for every operation."""
from __future__ import annotations

import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings as hypothesis_settings
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from scoring_support import API_KEY, scoring_dataset, settings, working_copy  # noqa: F401
from service.app import create_app

EXAMPLES = 25  # per operation and mode: keeps the run in seconds


def test_api_survives_generated_requests(scoring_dataset, tmp_path):
    app = create_app(settings(serve_max_batch=20), working_copy(scoring_dataset, tmp_path / "data"), watch=False)
    with TestClient(app):  # the lifespan loads the twin and the champion once
        schema = schemathesis.openapi.from_asgi("/openapi.json", app)
        operations = [result.ok() for result in schema.get_all_operations()]
        assert {op.path for op in operations} >= {"/v1/score", "/v1/score/batch", "/v1/customers/{customer_id}/twin"}
        for operation in operations:
            has_inputs = bool(operation.body) or bool(operation.path_parameters)
            # A parameterless operation (healthz) has no invalid input to generate.
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE) if has_inputs else (GenerationMode.POSITIVE,):

                @given(case=operation.as_strategy(generation_mode=mode))
                @hypothesis_settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
                def call(case):
                    # Schema-valid transactions can still get 422: a day the loaded twin does not serve.
                    case.call_and_validate(headers={"X-API-Key": API_KEY}, excluded_checks=[positive_data_acceptance])

                call()
