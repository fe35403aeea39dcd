"""The words of the drawn images (``drawings.py``), importable without numpy: config models that
validate held-out pairs (``components/blocks/clip/config.py``) load with params.yaml, which imports
no numerical package."""

from __future__ import annotations

COLOURS: dict[str, tuple[float, float, float]] = {
    "red": (0.86, 0.12, 0.12),
    "orange": (0.96, 0.55, 0.08),
    "yellow": (0.95, 0.88, 0.15),
    "green": (0.15, 0.68, 0.22),
    "blue": (0.16, 0.32, 0.92),
    "purple": (0.55, 0.22, 0.75),
    "pink": (0.98, 0.55, 0.75),
}
SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star", "cross")
FILLS: tuple[str, ...] = ("plain", "striped", "spotted")
MOODS: tuple[str, ...] = ("smiling", "frowning")
