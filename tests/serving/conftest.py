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
def served(smoke_repo) -> Callable[..., ServerURL]:
    servers: dict[tuple[str, str | None], ServerURL] = {}
    with ExitStack() as stack:

        def serve(paper: str, budget_s: str | None = None) -> ServerURL:
            """The server of ``paper``; ``budget_s`` asks for one of its own with that request budget."""
            key = (paper, budget_s)
            if key not in servers:
                env = served_env(smoke_repo, paper)
                budget = budget_s or TEST_BUDGET_S.get(paper)
                if budget:
                    env["PAPEROPS_REQUEST_BUDGET_S"] = budget
                log = smoke_repo.path / f"bentoml-{paper}{'-' + budget_s if budget_s else ''}.log"
                try:
                    servers[key] = stack.enter_context(
                        bentoml_server(f"serving.{paper}:Service", smoke_repo.path, env, log)
                    )
                except ServerError as exc:
                    pytest.fail(str(exc))
            return servers[key]

        yield serve
