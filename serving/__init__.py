"""BentoML services, one module per served paper (`serving/<paper>.py` binds `Service`).

Every service is built on the skeleton of `common.py` (defaults, fail-fast model loading, time
budgets, upload readers; its docstring says how to add a service), with the request guard of
`edge.py` and the middlewares of `asgi.py` (one error shape, body bound, /docs). Services load the
registry's `champion` (components/model_source.py) and call the paper's own `load`/`predict`; they
never import the Prefect flows (the two meet at the MLflow registry). `images.py` (upload bounds,
decode/encode), `asgi.py` and `batching.py` (in-process batching) import no BentoML.
"""
