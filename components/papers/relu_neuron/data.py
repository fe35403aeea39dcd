"""Datasets of the experiments: positive (inside the assumptions), teacher and general data.

* positive: x_i with i.i.d. half-normal entries |N(0, 1)| (every input in the positive orthant, so
  x_i . x_j > 0 for all pairs) and y_i = v . x_i > 0 with a unit teacher v >= 0: positive inputs
  and positive labels, realizable by the neuron. This is the case that meets the assumptions we
  read for the norm and support-vector claims (see README.md "Assumptions"): a small w(0) that
  activates at least one sample then only ever gains active samples, the residuals of the active
  samples stay positive while the norm grows, and no sample ever deactivates or reactivates;
* teacher: x_i ~ N(0, I_d), y_i = relu(v . x_i) with a unit teacher v (the setting of Vardi & Shamir
  2021 that the paper starts from);
* general: x_i ~ N(0, I_d), y_i = v . x_i + noise_std * N(0, 1): labels of both signs that no
  single ReLU neuron fits exactly.

Teacher and general data lie outside those assumptions (inputs of both signs, zero or negative
labels): they are the cases where the study reports how far the claims carry, not where it gates.

``prepare`` writes the training set of the registered neuron and a held-out test set (same teacher,
fresh inputs) into ``data/relu_neuron/``; the experiments draw their own small datasets per seed.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from components.contract import RunContext
from components.papers.relu_neuron.config import ReluNeuronConfig
from components.papers.relu_neuron.flow import relu


def make_dataset(
    kind: str, n: int, d: int, rng: np.random.Generator, noise_std: float = 0.1
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(x (n, d), y (n,), v (d,))`` for ``kind`` in {"positive", "teacher", "general"}."""
    v = rng.standard_normal(d)
    v /= np.linalg.norm(v)
    x = rng.standard_normal((n, d))
    if kind == "positive":  # the same draws folded into the positive orthant
        v, x = np.abs(v), np.abs(x)
        return x, x @ v, v
    if kind == "teacher":
        return x, relu(x @ v), v
    if kind == "general":
        return x, x @ v + noise_std * rng.standard_normal(n), v
    raise ValueError(f"unknown dataset kind {kind!r}; expected 'positive', 'teacher' or 'general'")


def init_weights(d: int, scale: float, rng: np.random.Generator) -> np.ndarray:
    """w(0) = scale * u with u uniform on the unit sphere."""
    u = rng.standard_normal(d)
    return scale * u / np.linalg.norm(u)


def prepare(cfg: ReluNeuronConfig, ctx: RunContext) -> None:
    """Write ``train.npz`` (x, y), ``test.npz`` (x, y) and ``teacher.json`` (v, kind)."""
    rng = np.random.default_rng(cfg.seed)
    t = cfg.train
    x, y, v = make_dataset(t.data, t.n, t.d, rng, cfg.experiments.noise_std)
    x_test = rng.standard_normal((t.n_test, t.d))
    if t.data == "positive":
        x_test = np.abs(x_test)
        y_test = x_test @ v
    elif t.data == "teacher":
        y_test = relu(x_test @ v)
    else:
        y_test = x_test @ v + cfg.experiments.noise_std * rng.standard_normal(t.n_test)
    out = ctx.data_dir
    out.mkdir(parents=True, exist_ok=True)
    np.savez(out / "train.npz", x=x, y=y)
    np.savez(out / "test.npz", x=x_test, y=y_test)
    (out / "teacher.json").write_text(json.dumps({"kind": t.data, "v": v.tolist()}, indent=2))
    ctx.log.info("prepared %s data: %d train / %d test samples in d = %d", t.data, t.n, t.n_test, t.d)


def load_split(data_dir: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    with np.load(Path(data_dir) / f"{split}.npz", allow_pickle=False) as z:
        return z["x"], z["y"]
