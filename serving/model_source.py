"""Which exported model a service loads: components/model_source.py (shared with `paperops serve`)."""

from components.model_source import ModelUnavailable, ServedModel, model_dir, resolve, what_to_do

__all__ = ["ModelUnavailable", "ServedModel", "model_dir", "resolve", "what_to_do"]
