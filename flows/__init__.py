"""Prefect flows that run the DVC pipeline: one task per DVC stage, one subflow per paper."""
