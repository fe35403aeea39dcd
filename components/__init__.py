"""paperops components: the library every paper, flow and service is built from.

See ``components/contract.py`` for the contract each paper implements and ARCHITECTURE.md for the
dependency rules. Nothing here imports Prefect or BentoML; only ``components.tracking`` imports MLflow.
"""
