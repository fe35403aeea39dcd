"""One real ``bentoml serve`` per service per test session, shared by every HTTP test of tests/serving.

``served("noise2score")`` starts the service of what the smoke pipeline registered (on first use)
and returns its URL; all servers stop at the end of the session. The relu_neuron and ccdf servers
run with a short per-request budget (``PAPEROPS_REQUEST_BUDGET_S``), so the deadline tests can
reach it in seconds; every other request of the tests fits it by far.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack

import pytest

from tests.http_server import ServerError, ServerURL, bentoml_server, served_env

TEST_BUDGET_S = {"relu_neuron": "3", "ccdf": "5"}


@pytest.fixture(scope="session")
def served(smoke_repo) -> Callable[[str], ServerURL]:
    servers: dict[str, ServerURL] = {}
    with ExitStack() as stack:

        def serve(paper: str) -> ServerURL:
            if paper not in servers:
                env = served_env(smoke_repo, paper)
                if paper in TEST_BUDGET_S:
                    env["PAPEROPS_REQUEST_BUDGET_S"] = TEST_BUDGET_S[paper]
                try:
                    servers[paper] = stack.enter_context(
                        bentoml_server(
                            f"serving.{paper}:Service", smoke_repo.path, env, smoke_repo.path / f"bentoml-{paper}.log"
                        )
                    )
                except ServerError as exc:
                    pytest.fail(str(exc))
            return servers[paper]

        yield serve
