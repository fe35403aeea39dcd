"""The registered model: an identified FIR system and the algorithm configuration that found it.

Exported with ``components.checkpoint.export_model`` (weights in safetensors, configuration in
JSON): no pickle anywhere. ``filter`` applies it to an input signal.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from components.checkpoint import export_model, load_export

PAPER = "fractional_lms"


@dataclass(frozen=True)
class IdentifiedSystem:
    """FIR weights w (M,) and how they were identified (algorithm, steps, order, final error)."""

    weights: np.ndarray
    config: dict[str, Any]

    def filter(self, x: np.ndarray) -> np.ndarray:
        """y(n) = w^T [x(n), ..., x(n-M+1)] for a 1-D input (zero initial state). (N,) -> (N,)."""
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 1:
            raise ValueError(f"expected a 1-D input signal, got shape {x.shape}")
        return np.convolve(x, self.weights)[: len(x)]


def save(directory: Path, weights: np.ndarray, config: dict[str, Any]) -> Path:
    """Export ``weights`` (M,) with ``config`` (JSON-able) to ``directory``."""
    return export_model(
        directory, {"weights": torch.from_numpy(np.asarray(weights, dtype=np.float64))}, {"paper": PAPER, **config}
    )


def load(model_dir: Path) -> IdentifiedSystem:
    """The contract's ``load``: the identified system exported by the train stage."""
    config, tensors = load_export(Path(model_dir))
    if config.get("paper") != PAPER:
        raise ValueError(f"{model_dir} holds a {config.get('paper')!r} model, not {PAPER}")
    return IdentifiedSystem(tensors["weights"].numpy().astype(np.float64), config)
