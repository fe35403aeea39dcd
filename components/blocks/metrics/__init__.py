"""Evaluation metrics shared across papers."""
