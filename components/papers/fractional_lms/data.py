"""System-identification data: an FIR plant driven by white or AR(1) Gaussian input, and real signals.

The experiments of the paper (and of the FLMS papers it analyses) identify an unknown FIR plant
w_o from its noisy output d(n) = w_o^T x(n) + v(n), with v white Gaussian at a given SNR. The
prepare stage writes the training signal of the registered model (``train.npz``: x, d) and the
plant (``plant.json``); the Monte-Carlo study draws its own independent realisations from the same
plant with ``draw_signals`` (fresh noise per run, seeded).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from components.contract import RunContext
from components.papers.fractional_lms.config import FractionalLMSConfig

MAX_FILE_SAMPLES = 10_000_000


def input_covariance(taps: int, kind: str, ar_coeff: float) -> np.ndarray:
    """R = E[x(n) x(n)^T] (M, M) of the unit-variance input: identity (white) or a^|i-j| (AR(1))."""
    if kind == "white":
        return np.eye(taps)
    idx = np.arange(taps)
    return ar_coeff ** np.abs(idx[:, None] - idx[None, :])


def noise_variance(plant: np.ndarray, kind: str, ar_coeff: float, snr_db: float) -> float:
    """sigma_v^2 = E[(w_o^T x)^2] / 10^(SNR/10), with E[(w_o^T x)^2] = w_o^T R w_o."""
    power = float(plant @ input_covariance(len(plant), kind, ar_coeff) @ plant)
    return power / 10 ** (snr_db / 10)


def draw_input(runs: int, samples: int, kind: str, ar_coeff: float, rng: np.random.Generator) -> np.ndarray:
    """(R, N) unit-variance Gaussian input: white, or AR(1) x(n) = a x(n-1) + sqrt(1 - a^2) u(n)."""
    u = rng.standard_normal((runs, samples))
    if kind == "white":
        return u
    x = np.empty_like(u)
    x[:, 0] = u[:, 0]  # stationary start (unit variance)
    c = np.sqrt(1 - ar_coeff**2)
    for n in range(1, samples):
        x[:, n] = ar_coeff * x[:, n - 1] + c * u[:, n]
    return x


def plant_output(plant: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Noise-free y(n) = w_o^T x(n) for (R, N) input (causal FIR filter, zero initial state)."""
    m = len(plant)
    padded = np.concatenate([np.zeros((x.shape[0], m - 1)), x], axis=1)
    windows = np.lib.stride_tricks.sliding_window_view(padded, m, axis=1)[..., ::-1]  # (R, N, M)
    return windows @ plant


def draw_signals(
    plant: np.ndarray, runs: int, samples: int, kind: str, ar_coeff: float, snr_db: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """``runs`` independent realisations ``(x, d)``, each (R, N), at the given SNR."""
    x = draw_input(runs, samples, kind, ar_coeff, rng)
    sigma = np.sqrt(noise_variance(plant, kind, ar_coeff, snr_db))
    return x, plant_output(plant, x) + sigma * rng.standard_normal(x.shape)


def read_signal_file(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Input and desired signals from a CSV with columns ``x,d`` or an .npy array of shape (N, 2).

    Raises:
        ValueError: wrong shape, missing columns, non-finite values or too many samples.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"signal file {path} not found (data.path)")
    if path.suffix == ".npy":
        arr = np.load(path, allow_pickle=False)
        if arr.ndim != 2 or arr.shape[1] != 2:
            raise ValueError(f"{path}: expected an array of shape (N, 2) with columns x, d; got {arr.shape}")
        x, d = arr[:, 0], arr[:, 1]
    elif path.suffix == ".csv":
        import pandas as pd

        table = pd.read_csv(path)
        missing = {"x", "d"} - set(table.columns)
        if missing:
            raise ValueError(f"{path}: missing column(s) {sorted(missing)}; expected columns x and d")
        x, d = table["x"].to_numpy(), table["d"].to_numpy()
    else:
        raise ValueError(f"{path}: unsupported signal file {path.suffix!r}; use .csv (columns x,d) or .npy (N, 2)")
    x, d = np.asarray(x, dtype=np.float64), np.asarray(d, dtype=np.float64)
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(d))):
        raise ValueError(f"{path}: the signals contain NaN or infinite values")
    if not 16 <= len(x) <= MAX_FILE_SAMPLES:
        raise ValueError(f"{path}: {len(x)} samples; expected 16 to {MAX_FILE_SAMPLES}")
    return x, d


def prepare(cfg: FractionalLMSConfig, ctx: RunContext) -> None:
    """Write ``train.npz`` (x, d: the training signal) and ``plant.json`` into ``data/fractional_lms``."""
    out = ctx.data_dir
    out.mkdir(parents=True, exist_ok=True)
    plant = np.asarray(cfg.data.plant, dtype=np.float64)
    if cfg.data.source == "file":
        assert cfg.data.path is not None  # DataConfig requires it for source 'file'
        x, d = read_signal_file(Path(cfg.data.path))
        meta: dict[str, Any] = {"source": str(cfg.data.path), "plant": None, "samples": len(x)}
    else:
        rng = np.random.default_rng(cfg.seed)
        x, d = draw_signals(plant, 1, cfg.data.samples, cfg.data.input, cfg.data.ar_coeff, cfg.data.snr_db, rng)
        x, d = x[0], d[0]
        meta = {
            "source": "synthetic",
            "plant": plant.tolist(),
            "samples": len(x),
            "input": cfg.data.input,
            "ar_coeff": cfg.data.ar_coeff,
            "snr_db": cfg.data.snr_db,
            "noise_variance": noise_variance(plant, cfg.data.input, cfg.data.ar_coeff, cfg.data.snr_db),
        }
    np.savez(out / "train.npz", x=x, d=d)
    (out / "plant.json").write_text(json.dumps(meta, indent=2))
    ctx.log.info("prepared %d samples (%s) in %s", len(x), meta["source"], out)


def load_train(data_dir: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """``(x, d, plant or None)`` as written by ``prepare``."""
    with np.load(Path(data_dir) / "train.npz", allow_pickle=False) as z:
        x, d = z["x"], z["d"]
    meta = json.loads((Path(data_dir) / "plant.json").read_text())
    return x, d, None if meta["plant"] is None else np.asarray(meta["plant"])
