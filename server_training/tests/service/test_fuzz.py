"""Fuzz every operation of the OpenAPI schema with schemathesis against a real server: no answer is a 5xx.

The store holds a project with two volumes and an open cycle, and about half the cases
put those ids in the path, so the routes get past "not found" into their real work; the
others draw any path value (huge, negative, strings). Each operation gets
schema-conforming requests (positive mode) and malformed ones (negative mode: wrong
types, out-of-range numbers, missing or extra fields, random query parameters).
The operations are read from the app's schema when the tests are collected, so new
routes are fuzzed too. Schemathesis's own pytest plugin is not used (it fails under
pytest 9); its strategies drive plain hypothesis tests, derandomized so a run is repeatable.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.generation import GenerationMode
from service_testing import lung_ct, new_project, raw_request, write_volume

from covidal.service.app import create_app
from covidal.service.settings import ServiceSettings

MAX_EXAMPLES = 20  # per operation and mode: the whole file runs in about 30 s on 2 cores
VALID_IDS = {"project_id": 1, "volume_id": 1, "cycle_id": 1}  # made by the `schema` fixture
# Reads of what the fixture made: each must answer 2xx at least once, or the fuzzer never got past the ids.
MUST_SUCCEED = [
    "/projects/{project_id}",
    "/projects/{project_id}/volumes",
    "/projects/{project_id}/volumes/{volume_id}",
    "/projects/{project_id}/volumes/{volume_id}/download",
    "/projects/{project_id}/cycles",
    "/projects/{project_id}/cycles/{cycle_id}",
    "/projects/{project_id}/cycles/{cycle_id}/heatmap/{volume_id}",
    "/projects/{project_id}/annotations",
]
STATUSES: dict[tuple[str, str], set[int]] = defaultdict(set)  # (method, path) -> statuses seen


def _has_inputs(operation: dict) -> bool:
    return bool(operation.get("parameters") or operation.get("requestBody"))


# Collection builds the app only for its schema: the store opens when a server starts, never here.
OPENAPI = create_app(ServiceSettings(Path("unused-project-dir"))).openapi()
OPERATIONS = [(method.upper(), path) for path, methods in OPENAPI["paths"].items() for method in methods]
# Negative mode needs an input to break: operations without parameters or body get positive cases only.
CASES = [
    (method, path, mode)
    for method, path in OPERATIONS
    for mode in GenerationMode
    if mode is GenerationMode.POSITIVE or _has_inputs(OPENAPI["paths"][path][method.lower()])
]


@pytest.fixture(scope="module")
def schema(service, tmp_path_factory) -> schemathesis.schemas.BaseSchema:
    """The schema the server serves, over a store where :data:`VALID_IDS` exist (cycle 1 has 8 suggestions)."""
    folder = tmp_path_factory.mktemp("fuzz-volumes")
    project = new_project(service.client)
    for number, ct in enumerate((lung_ct(), np.flip(lung_ct(), axis=2).copy())):
        service.client.upload_volume(project["id"], write_volume(ct, folder / f"ct{number}.nrrd"))
    cycle = service.client.create_cycle(project["id"], count=8)
    assert (project["id"], cycle["id"], len(cycle["suggestions"])) == (1, 1, 8)
    return schemathesis.openapi.from_url(f"{service.base_url}/openapi.json")


def test_the_served_schema_is_the_one_collected(schema):
    assert schema.raw_schema["paths"] == OPENAPI["paths"]
    assert set(MUST_SUCCEED) <= set(OPENAPI["paths"])


@pytest.mark.parametrize(("method", "path", "mode"), CASES, ids=[f"{m} {p} {mode}" for m, p, mode in CASES])
def test_no_request_gets_a_server_error(schema, service, method, path, mode):
    operation = schema[path][method]
    valid = {name: VALID_IDS[name] for name in re.findall(r"{(\w+)}", path) if name in VALID_IDS}
    cases = st.one_of(operation.as_strategy(mode, path_parameters=valid), operation.as_strategy(mode))

    @given(case=cases)
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def no_server_error(case):
        response = case.call(base_url=service.base_url, timeout=30)
        STATUSES[method, path].add(response.status_code)
        assert response.status_code < 500, (
            case.formatted_path,
            case.query,
            case.body,
            response.status_code,
            response.text[:300],
        )

    no_server_error()


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", f"/projects/{2**64}", None),
        ("GET", f"/projects/1/cycles/{-(2**70)}", None),
        (
            "POST",
            "/projects/1/annotations",
            {
                "suggestion_id": 2**63,
                "annotator": "a",
                "answer": "background",
                "effort_seconds": 1.0,
                "idempotency_key": "k",
            },
        ),
    ],
)
def test_numbers_beyond_64_bits_are_422_not_500(schema, service, method, path, body):
    """The first 5xx the fuzzer found: SQLite cannot bind them (OverflowError)."""
    data = None if body is None else json.dumps(body).encode()
    status, answer = raw_request(service.base_url, method, path, data, {"Content-Type": "application/json"})
    assert status == 422 and "out of range" in answer["detail"], (status, answer)


def test_the_fuzzer_reached_the_stored_data():
    missed = [path for path in MUST_SUCCEED if not any(200 <= status < 300 for status in STATUSES["GET", path])]
    assert not missed, {path: STATUSES["GET", path] for path in missed}


def test_server_is_healthy_after_fuzzing(service):
    status, answer = raw_request(service.base_url, "GET", "/health")
    assert status == 200 and answer["status"] == "ok"
