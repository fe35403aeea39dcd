"""BentoML services, one module per served paper (`serving/<paper>.py` binds `Service`).

Services load the registry's `champion` (components.tracking.fetch_model) and call the paper's
own `load`/`predict`; they never import the Prefect flows (the two meet at the MLflow registry).
`images.py` (upload bounds, decode/encode) and `asgi.py` (body-size bound, /docs) import no BentoML.
"""
