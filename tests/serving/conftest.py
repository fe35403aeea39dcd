"""One real ``bentoml serve`` per service per test session, shared by every HTTP test of tests/serving.

``served("noise2score")`` starts the service of what the smoke pipeline registered (on first use)
and returns its URL; these servers stop at the end of the session. The relu_neuron and ccdf servers
run with a short per-request budget (``PAPEROPS_REQUEST_BUDGET_S``), so the deadline tests can
reach it in seconds; every other request of the tests fits it by far.

``served(paper, budget_s=...)`` starts a server of its own with that request budget; a test module
asks for one for a single check, so it stops when that module ends. Each server holds about 0.6 GB
(torch and the model in a BentoML worker): a session that kept them all on both pytest-xdist
workers held ~14 GB, close to the 23 GB of a CI machine.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack

import pytest

from tests.http_server import ServerError, ServerURL, bentoml_server, served_env

TEST_BUDGET_S = {"relu_neuron": "3", "ccdf": "5"}


class _Servers:
    """The session's shared servers and the current module's own (budgeted) ones."""

    def __init__(self, project) -> None:
        self.project = project
        self.shared: dict[str, ServerURL] = {}
        self.session = ExitStack()
        self.own: dict[tuple[str, str], ServerURL] = {}
        self.module = ExitStack()

    def __call__(self, paper: str, budget_s: str | None = None) -> ServerURL:
        """The server of ``paper``; ``budget_s`` asks for one of its own with that request budget."""
        if budget_s is None and paper in self.shared:
            return self.shared[paper]
        if budget_s is not None and (paper, budget_s) in self.own:
            return self.own[(paper, budget_s)]
        env = served_env(self.project, paper)
        budget = budget_s or TEST_BUDGET_S.get(paper)
        if budget:
            env["PAPEROPS_REQUEST_BUDGET_S"] = budget
        log = self.project.path / f"bentoml-{paper}{'-' + budget_s if budget_s else ''}.log"
        stack = self.session if budget_s is None else self.module
        try:
            url = stack.enter_context(bentoml_server(f"serving.{paper}:Service", self.project.path, env, log))
        except ServerError as exc:
            pytest.fail(str(exc))
        if budget_s is None:
            self.shared[paper] = url
        else:
            self.own[(paper, budget_s)] = url
        return url

    def end_module(self) -> None:
        self.own.clear()
        self.module.close()
        self.module = ExitStack()


_STARTED: list[_Servers] = []  # the session's _Servers once a test asked for a server


@pytest.fixture(scope="session")
def _servers(smoke_repo) -> Iterator[_Servers]:
    servers = _Servers(smoke_repo)
    _STARTED.append(servers)
    with servers.session:
        yield servers
        servers.end_module()


@pytest.fixture(scope="session")
def served(_servers: _Servers) -> Callable[..., ServerURL]:
    return _servers


@pytest.fixture(scope="module", autouse=True)
def _stop_module_servers() -> Iterator[None]:
    """Stop the budgeted servers a module started, when it ends."""
    yield
    for servers in _STARTED:
        servers.end_module()
