"""The gate: paired differences beyond 2 SE, the Gaussian filter beaten, the families told apart."""

from __future__ import annotations

import pandas as pd

from components.papers.noise2score.evaluate import gate, metrics_from, summarise
from components.papers.noise2score.noise import EVAL_SETTINGS


def per_image(gain: float, jitter: float, called, over_gauss: float = 1.0) -> pd.DataFrame:
    rows = []
    for family, level in EVAL_SETTINGS:
        for i in range(6):
            n2s = 20.0 + i + gain + jitter * (-1) ** i
            rows.append(
                {
                    "setting": f"{family}_{level:g}",
                    "family": family,
                    "level": level,
                    "image": f"im{i}",
                    "family_blind": called(family, i),
                    "level_blind": level,
                    "psnr_noisy": 20.0 + i,
                    "psnr_n2s": n2s,
                    "psnr_gauss": n2s - over_gauss + 0.1 * (-1) ** i,
                    "psnr_bm3d": n2s + 2.0 if i < 3 else float("nan"),  # BM3D on half of the images
                }
            )
    return pd.DataFrame(rows)


ALL_SETTINGS = tuple(f"{f}_{lv:g}" for f, lv in EVAL_SETTINGS)
FULL_CLAIM = {  # the paper's whole claim: what the gate asks where it holds
    "gauss_gated": ALL_SETTINGS,
    "families": ("gaussian", "poisson", "gamma"),
    "separated": (("gaussian", "poisson"), ("gaussian", "gamma"), ("poisson", "gamma")),
}


def verdict(df: pd.DataFrame, **claim):
    return gate(metrics_from(df, summarise(df)), **claim)


def right(f: str, i: int) -> str:
    return f


def test_gate_passes_beyond_noise_and_fails_inside_it() -> None:
    assert verdict(per_image(1.0, 0.1, right)).passed
    assert verdict(per_image(1.0, 0.1, right), **FULL_CLAIM).passed
    noisy = verdict(per_image(0.3, 1.0, right))  # mean +0.3 dB with an SE of ~0.45: inside the noise
    assert not noisy.passed and any("noisy" in r and "not beyond 2 SE" in r for r in noisy.reasons)


def test_gate_asks_the_gaussian_filter_beaten() -> None:
    v = verdict(per_image(1.0, 0.1, right, over_gauss=-0.5), **FULL_CLAIM)
    assert not v.passed and any("Gaussian filter" in r for r in v.reasons)
    # the default gate asks it nowhere (README: not reached at the default scale)
    assert verdict(per_image(1.0, 0.1, right, over_gauss=-0.5)).passed


def test_bm3d_differences_are_paired_over_its_subset() -> None:
    df = per_image(1.0, 0.1, right)
    s = summarise(df)
    assert (s["n2s-bm3d_n"] == 3).all() and (s["n2s-bm3d"] - (-2.0)).abs().max() < 1e-9


def test_gate_fails_an_estimator_that_cannot_tell_poisson_from_gamma() -> None:
    v = verdict(per_image(1.0, 0.1, lambda f, i: "poisson" if f == "gamma" else f), **FULL_CLAIM)
    assert not v.passed and any("gamma noise recognised" in r for r in v.reasons)
    always = verdict(per_image(1.0, 0.1, lambda f, i: "gaussian"), **FULL_CLAIM)
    assert not always.passed and any("Fisher" in r for r in always.reasons)


def test_the_default_gate_asks_the_families_it_tells_apart() -> None:
    # as measured at the default scale: half of the Gamma cases called Poisson, the rest right
    held_out = verdict(per_image(1.0, 0.1, lambda f, i: "poisson" if f == "gamma" and i % 2 else f))
    assert held_out.passed, held_out.reasons
    # the previous estimator, calling most images Poisson, fails the default gate
    v = verdict(per_image(1.0, 0.1, lambda f, i: "poisson" if f == "gamma" or i < 4 else f))
    assert not v.passed and any("gaussian noise recognised" in r for r in v.reasons)
    assert any("gamma vs poisson" in r for r in v.reasons)
