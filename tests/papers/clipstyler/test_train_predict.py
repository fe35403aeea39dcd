"""The experiment resumes after a crash to the outputs of an uninterrupted run; predict bounds its
inputs and stops on its budget; the fast variant trains and serves; the gate says why; the folder
loader reads real images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from components.config import load_params
from components.contract import RunContext
from components.papers.clipstyler import PAPER
from components.papers.clipstyler.evaluate import gate
from components.papers.clipstyler.predict import stylize
from tests.crash import Crash, crash_after

ROOT = Path(__file__).resolve().parents[3]


def smoke_cfg(**update):
    cfg = load_params(ROOT / "params.yaml", scale="smoke").config("clipstyler")
    return cfg.model_copy(update=update) if update else cfg


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("clipstyler")
    cfg = smoke_cfg()
    ctx = RunContext("clipstyler", root, seed=cfg.seed)
    PAPER.prepare(cfg, ctx)
    PAPER.train(cfg, ctx)
    return root, cfg


def test_a_crash_mid_experiment_resumes_to_the_uninterrupted_outputs(trained, tmp_path: Path) -> None:
    root, cfg = trained
    plain = RunContext("clipstyler", tmp_path, seed=cfg.seed)
    PAPER.prepare(cfg, plain)
    plain.block_dir("clip")  # the same standalone CLIP block as the uninterrupted run
    ctx = RunContext("clipstyler", tmp_path, seed=cfg.seed, progress=crash_after(2))
    with pytest.raises(Crash):
        PAPER.train(cfg, ctx)
    assert sorted(p.name.split("-")[1] for p in ctx.checkpoint_dir.glob("step-*.pt"))[-1] == "00000002"
    assert not ctx.model_dir.exists()
    PAPER.train(cfg, RunContext("clipstyler", tmp_path, seed=cfg.seed))
    a = load_file(str(root / "models/clipstyler/outputs.safetensors"))
    b = load_file(str(tmp_path / "models/clipstyler/outputs.safetensors"))
    assert a.keys() == b.keys() and len(a) == 8  # full + three ablations, two units
    assert all(torch.equal(a[k], b[k]) for k in a), [k for k in a if not torch.equal(a[k], b[k])]
    # the methods of a unit differ (the ablations change the optimisation)
    assert not torch.equal(a["full/0/0"], a["no_patch/0/0"])


def test_evaluate_scores_every_method_paired(trained) -> None:
    root, cfg = trained
    metrics = PAPER.evaluate(cfg, RunContext("clipstyler", root, seed=cfg.seed))
    for m in ("input", "full", "no_patch", "no_thresh", "no_aug"):
        assert -1 <= metrics[f"{m}/patch_clip"] <= 1 and 0 <= metrics[f"{m}/edge_ssim"] <= 1.0 + 1e-6
    assert metrics["input/edge_ssim"] == pytest.approx(1.0) and metrics["input/content_dist"] == 0.0
    assert (root / "reports/clipstyler/results.md").is_file() and (root / "reports/clipstyler/results.csv").is_file()


def test_predict_refuses_bad_input_and_stops_on_budget(trained) -> None:
    root, _ = trained
    model = PAPER.load(root / "models/clipstyler/model")
    img = PAPER.example_input()
    out = PAPER.predict(model, {"image": img, "text": "brick wall", "iterations": 2})
    assert out.shape == (16, 16, 3) and 0 <= out.min() and out.max() <= 1
    assert np.array_equal(out, PAPER.predict(model, {"image": img, "text": "brick wall", "iterations": 2}))
    seen: list[tuple[int, int]] = []
    stylize(model, img, "grass", iterations=3, progress=lambda d, t: seen.append((d, t)))
    assert seen == [(1, 3), (2, 3), (3, 3)]
    bad = [
        {"image": img, "text": ""},
        {"image": img, "text": "x" * 81},
        {"image": img, "text": "<script>"},
        {"image": img, "iterations": 0},
        {"image": img, "iterations": 201},
        {"image": np.full((16, 16, 3), np.nan)},
        {"image": np.zeros((4, 40, 3))},
        {"image": np.zeros((16, 16, 4))},
        {"image": img, "steps": 3},
        {"text": "grass"},
    ]
    for inputs in bad:
        with pytest.raises(ValueError):
            PAPER.predict(model, inputs)
    calls = iter(range(1000))
    with pytest.raises(TimeoutError):
        stylize(model, img, "grass", iterations=50, should_stop=lambda: next(calls) >= 3)


def test_fast_variant_trains_one_network_per_text_and_serves_it(tmp_path: Path) -> None:
    cfg = smoke_cfg(variant="fast")
    ctx = RunContext("clipstyler", tmp_path, seed=cfg.seed)
    PAPER.prepare(cfg, ctx)
    PAPER.train(cfg, ctx)
    model = PAPER.load(ctx.model_dir)
    assert list(model.fast) == list(cfg.eval.texts)
    img = PAPER.example_input()
    once = stylize(model, img, cfg.eval.texts[0], iterations=0)  # the trained network alone
    assert once.shape == (16, 16, 3)
    with pytest.raises(ValueError, match="iterations"):
        stylize(model, img, "grass", iterations=0)  # no network for this text


def test_gate_passes_only_on_the_claim() -> None:
    good = {
        "gate/z": 2.0,
        "gate/edge_ssim_bound": 0.25,
        "gate/gated/no_patch": 1.0,
        "gate/gated/no_aug": 1.0,
        "full/edge_ssim": 0.5,
        "d_input/patch_clip": -0.5,  # the anchor is not gated
        "d_input/patch_clip_se": 0.01,
        "d_no_thresh/patch_clip": -0.2,  # reported, not gated here
        "d_no_thresh/patch_clip_se": 0.01,
    }
    for m in ("no_patch", "no_aug"):
        good |= {f"d_{m}/patch_clip": 0.03, f"d_{m}/patch_clip_se": 0.01}
    assert gate(good).passed
    for key, value, words in [
        ("d_no_patch/patch_clip", 0.015, "d_no_patch"),
        ("d_no_aug/patch_clip", -0.03, "d_no_aug"),
        ("d_no_aug/patch_clip_se", float("nan"), "d_no_aug"),
        ("full/edge_ssim", 0.1, "content not preserved"),
    ]:
        verdict = gate({**good, key: value})
        assert not verdict.passed and any(words in r for r in verdict.reasons), (key, verdict.reasons)
    assert not gate({k: v for k, v in good.items() if not k.startswith("d_no_patch")}).passed
    assert not gate({k: v for k, v in good.items() if not k.startswith("gate/gated")}).passed


def test_folder_data(tmp_path: Path) -> None:
    from PIL import Image

    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):
        Image.fromarray((rng.random((40, 30, 3)) * 255).astype(np.uint8)).save(folder / f"p{i}.png")
    cfg = smoke_cfg()
    cfg = cfg.model_copy(
        update={"data": cfg.data.model_copy(update={"source": "folder", "path": str(folder), "eval_images": 3})}
    )
    ctx = RunContext("clipstyler", tmp_path / "run")
    PAPER.prepare(cfg, ctx)
    ev, tr = np.load(ctx.data_dir / "eval.npy"), np.load(ctx.data_dir / "train.npy")
    assert ev.shape == (3, 3, 16, 16) and tr.shape == (1, 3, 16, 16) and ev.dtype == np.uint8
