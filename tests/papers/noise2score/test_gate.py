"""The gate: paired differences beyond 2 SE, and Gaussian told from non-Gaussian beyond chance."""

from __future__ import annotations

import pandas as pd

from components.papers.noise2score.evaluate import gate, metrics_from, summarise
from components.papers.noise2score.noise import EVAL_SETTINGS


def per_image(gain: float, jitter: float, called) -> pd.DataFrame:
    rows = []
    for family, level in EVAL_SETTINGS:
        for i in range(6):
            rows.append(
                {
                    "setting": f"{family}_{level:g}",
                    "family": family,
                    "level": level,
                    "image": f"im{i}",
                    "power": 0.0,
                    "family_paper": called(family, i),
                    "family_blind": "gaussian",
                    "psnr_noisy": 20.0 + i,
                    "psnr_n2s": 20.0 + i + gain + jitter * (-1) ** i,
                    "psnr_gauss": 25.0 + i,
                }
            )
    return pd.DataFrame(rows)


def test_gate_passes_beyond_noise_and_fails_inside_it() -> None:
    right = lambda f, i: f  # noqa: E731
    ok = per_image(1.0, 0.1, right)
    assert gate(metrics_from(ok, summarise(ok))).passed
    noisy = per_image(0.3, 1.0, right)  # mean +0.3 dB with an SE of ~0.45: inside the noise
    verdict = gate(metrics_from(noisy, summarise(noisy)))
    assert not verdict.passed and any("not beyond 2 SE" in r for r in verdict.reasons)


def test_gate_fails_an_estimator_that_calls_everything_gaussian() -> None:
    always = per_image(1.0, 0.1, lambda f, i: "gaussian")
    verdict = gate(metrics_from(always, summarise(always)))
    assert not verdict.passed and any("Fisher" in r for r in verdict.reasons)
