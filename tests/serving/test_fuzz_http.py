"""Schema-driven fuzz of every endpoint of every service (schemathesis against each ``/docs.json``).

For each operation of each service, hypothesis draws ``FUZZ_EXAMPLES`` requests from the OpenAPI
schema, in schemathesis' positive mode (valid by the schema: types, bounds, enums) and negative
mode (each request violates the schema: wrong types, out-of-range numbers, missing or extra
fields, malformed bodies). The bar: no 5xx at all, and the server answers /readyz afterwards.
``PAPEROPS_FUZZ_EXAMPLES`` raises the count (e.g. 500 for a longer run).
"""

from __future__ import annotations

import os
import time
from collections import Counter

import httpx
import pytest

pytestmark = pytest.mark.e2e
SERVICES = [
    "noise2score",
    "fractional_lms",
    "relu_neuron",
    "ebclr",
    "ccdf",
    "switchable_cyclegan",
    "diffusemorph",
    "diffusionclip",
    "festa",
    "clipstyler",
]
FUZZ_EXAMPLES = int(os.environ.get("PAPEROPS_FUZZ_EXAMPLES", "20"))


@pytest.mark.parametrize("paper", SERVICES)
def test_fuzz_gives_no_5xx(served, paper: str) -> None:
    import requests
    import schemathesis
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis.errors import Unsatisfiable
    from schemathesis import GenerationMode

    url = served(paper)
    schema = schemathesis.openapi.from_url(f"{url}/docs.json")
    statuses: Counter[int] = Counter()
    errors: list[str] = []
    start = time.monotonic()
    operations = [result.ok() for result in schema.get_all_operations()]
    assert any(op.method.upper() == "POST" for op in operations)

    def fuzz(session, op, mode):  # one hypothesis test per operation and mode
        @settings(
            max_examples=FUZZ_EXAMPLES,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
            phases=[Phase.explicit, Phase.generate],
        )
        @given(case=op.as_strategy(generation_mode=mode))
        def one(case) -> None:
            r = case.call(base_url=url, session=session, timeout=120)
            statuses[r.status_code] += 1
            if r.status_code >= 500:
                errors.append(f"{mode} {op.method.upper()} {op.path} -> {r.status_code} {r.text[:200]}")
            elif r.status_code >= 400 and set(r.json()) != {"error"}:
                errors.append(f"{mode} {op.method.upper()} {op.path}: error body {r.text[:200]}")

        return one

    with requests.Session() as session:
        for op in operations:
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                try:
                    fuzz(session, op, mode)()
                except Unsatisfiable:  # nothing to violate in this operation's schema (e.g. a GET without input)
                    pass
    assert httpx.get(f"{url}/readyz", timeout=30).status_code == 200, "the server is alive after the fuzz"
    print(f"{paper}: {sum(statuses.values())} requests in {time.monotonic() - start:.0f} s, statuses {dict(statuses)}")
    assert not errors, "\n".join(errors[:20])
