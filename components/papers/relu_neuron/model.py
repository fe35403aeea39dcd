"""The registered neuron: the weight w of f(x) = relu(w . x), exported pickle-free."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from components.checkpoint import export_model, load_export

PAPER = "relu_neuron"


@dataclass(frozen=True)
class Neuron:
    """w (d,) and how it was obtained (data, init scale, flow statistics)."""

    w: np.ndarray
    config: dict[str, Any]

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """relu(x @ w) for inputs (n, d) -> (n,)."""
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != len(self.w):
            raise ValueError(f"expected inputs of shape (n, {len(self.w)}), got {x.shape}")
        return np.maximum(x @ self.w, 0.0)


def save(directory: Path, w: np.ndarray, config: dict[str, Any]) -> Path:
    return export_model(directory, {"w": torch.from_numpy(np.asarray(w, dtype=np.float64))}, {"paper": PAPER, **config})


def load(model_dir: Path) -> Neuron:
    """The contract's ``load``: the neuron exported by the train stage."""
    config, tensors = load_export(Path(model_dir))
    if config.get("paper") != PAPER:
        raise ValueError(f"{model_dir} holds a {config.get('paper')!r} model, not {PAPER}")
    return Neuron(tensors["w"].numpy().astype(np.float64), config)
