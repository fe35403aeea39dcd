"""Training steps learn, a killed run resumes bit-exactly, parallel runs equal sequential ones, the served
model predicts and refuses bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from components.blocks.data.vision import digits
from components.contract import RunContext
from components.papers.ebclr import PAPER
from components.papers.ebclr.config import EBCLRPaperConfig
from components.papers.ebclr.data import augment
from components.papers.ebclr.evaluate import gate
from components.papers.ebclr.methods import build_method
from components.papers.ebclr.predict import classify, embed, predict, prepare_batch

SMALL = {
    "data": {"source": "digits", "image_size": 16, "train_limit": 128},
    "model": {"width": 4, "proj_dim": 16},
    "sgld": {"iters": 2, "buffer_size": 64},
    "moco": {"queue_size": 32, "key_momentum": 0.9},
    "train": {
        "batch_sizes": [32],
        "seeds": [0, 1],
        "steps": 4,
        "snapshots": 2,
        "methods": ["ebclr", "ebclr_lambda2_0", "moco"],
    },
    "eval": {"probe_epochs": 10},
}


@pytest.mark.parametrize("method", ["ebclr", "ebclr_lambda2_0", "simclr"])
def test_loss_falls_on_a_fixed_batch(method: str) -> None:
    torch.manual_seed(0)
    cfg = EBCLRPaperConfig.model_validate({**SMALL, "ebclr": {"lr": 2e-3}, "simclr": {"lr": 0.1}})
    x = digits(16).train_x[:32]
    gen = torch.Generator().manual_seed(0)
    m = build_method(method, cfg, 32, x, gen, torch.device("cpu"), False)
    v1, v2 = augment(x, cfg.data, gen), augment(x, cfg.data, gen)
    key = "discriminative" if method.startswith("ebclr") else "loss"
    losses = [m.step(v1, v2)[key] for _ in range(12)]
    assert np.mean(losses[-3:]) < np.mean(losses[:3]) - 0.05, losses


class Interrupted(Exception):
    pass


def _stop_after(k: int):
    def progress(iterable, total=None, desc="", initial=0, **_):
        for i, item in enumerate(iterable):
            if i == k:
                raise Interrupted
            yield item

    return progress


def _weights(root: Path) -> dict[str, torch.Tensor]:
    out = load_file(str(root / "models" / "ebclr" / "model" / "model.safetensors"))
    for p in sorted((root / "models" / "ebclr" / "runs").rglob("*.safetensors")):
        out.update({f"{p.parent.name}/{p.stem}/{k}": v for k, v in load_file(str(p)).items()})
    return out


def test_resume_equals_uninterrupted(tmp_path: Path) -> None:
    cfg = EBCLRPaperConfig.model_validate(SMALL)
    full = RunContext("ebclr", tmp_path / "full")
    PAPER.prepare(cfg, full)
    PAPER.train(cfg, full)

    crashed = RunContext("ebclr", tmp_path / "crashed", progress=_stop_after(1))  # dies inside EBCLR's first run
    PAPER.prepare(cfg, crashed)
    with pytest.raises(Interrupted):
        PAPER.train(cfg, crashed)
    assert not crashed.model_dir.exists() and any(crashed.checkpoint_dir.iterdir())
    PAPER.train(cfg, RunContext("ebclr", tmp_path / "crashed"))

    a, b = _weights(tmp_path / "full"), _weights(tmp_path / "crashed")
    assert a.keys() == b.keys() and len(a) > 50
    assert all(torch.equal(a[k], b[k]) for k in a), [k for k in a if not torch.equal(a[k], b[k])][:5]

    # the same runs in two worker processes: runs are independent, so the weights are the same
    parallel_cfg = EBCLRPaperConfig.model_validate({**SMALL, "train": {**SMALL["train"], "workers": 2}})
    parallel = RunContext("ebclr", tmp_path / "parallel")
    PAPER.prepare(parallel_cfg, parallel)
    PAPER.train(parallel_cfg, parallel)
    c = _weights(tmp_path / "parallel")
    assert a.keys() == c.keys()
    assert all(torch.equal(a[k], c[k]) for k in a), [k for k in a if not torch.equal(a[k], c[k])][:5]
    histories = [
        json.loads((p / "models" / "ebclr" / "train_history.json").read_text())
        for p in (tmp_path / "full", tmp_path / "parallel")
    ]
    assert list(histories[0]) == list(histories[1]) and all(
        histories[0][r]["loss"] == histories[1][r]["loss"] for r in histories[0]
    )


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory):
    cfg = EBCLRPaperConfig.model_validate({**SMALL, "train": {**SMALL["train"], "steps": 2, "snapshots": 1}})
    ctx = RunContext("ebclr", tmp_path_factory.mktemp("model"))
    PAPER.prepare(cfg, ctx)
    PAPER.train(cfg, ctx)
    metrics = PAPER.evaluate(cfg, ctx)
    assert (ctx.report_dir / "results.csv").is_file() and (
        ctx.report_dir / "figures" / "accuracy_vs_steps.png"
    ).is_file()
    for key in (
        "b32/ebclr/probe_acc/mean",
        "b32/moco/random_probe_acc/half_width",
        "b32/ebclr_minus_floor/mean",
        "b32/ebclr_minus_ebclr_lambda2_0/half_width",
        "b32/ebclr_minus_moco/se_test",
        "anchor/mean_std_probe_acc",
    ):
        assert key in metrics, key
    return PAPER.load(ctx.model_dir)


def test_predict_shapes(model) -> None:
    imgs = PAPER.example_input()
    out = predict(model, imgs)
    assert out["embeddings"].shape == (4, 32) and out["probabilities"].shape == (4, 10)
    assert np.allclose(out["probabilities"].sum(1), 1, atol=1e-5)
    assert np.allclose(embed(model, imgs), out["embeddings"], atol=1e-6)
    one = classify(model, imgs[0])
    assert one["labels"].shape == (1,) and one["labels"][0] in model.classes
    rgb = np.repeat(imgs[..., None], 3, axis=3)  # RGB is averaged to the model's grey channel
    assert np.allclose(embed(model, rgb), out["embeddings"], atol=1e-5)
    assert prepare_batch(model, np.zeros((2, 40, 30), np.float32)).shape == (2, 1, 16, 16)


@pytest.mark.parametrize(
    ("images", "fragment"),
    [
        (np.zeros((2, 3, 16, 16)), "(N, H, W, C)"),
        (np.zeros((2, 2, 2)), "sides"),
        (np.zeros((300, 8, 8)), "between 1 and"),
        (np.full((8, 8), np.nan), "finite"),
        (np.full((8, 8), 1.5), "[0, 1]"),
        (np.array([["a"]]), "numeric"),
    ],
)
def test_predict_rejects_bad_input(model, images, fragment: str) -> None:
    with pytest.raises(ValueError, match=None) as err:
        predict(model, images)
    assert fragment in str(err.value)


def test_gate() -> None:
    good = {
        "b16/ebclr/probe_acc/mean": 0.6,
        "b16/ebclr_minus_floor/mean": 0.08,
        "b16/ebclr_minus_floor/half_width": 0.03,
        "b16/ebclr_minus_simclr/mean": -0.05,
        "b16/ebclr_minus_simclr/half_width": 0.01,
    }
    assert gate(good).passed  # only the floor is gated (README.md says why)
    inside = gate({**good, "b16/ebclr_minus_floor/half_width": 0.09})
    assert not inside.passed and "beyond noise" in inside.reasons[0]
    assert not gate({**good, "b16/ebclr_minus_floor/mean": -0.08}).passed
    two = {**good, **{k.replace("b16", "b64"): v for k, v in good.items()}, "b64/ebclr_minus_floor/mean": 0.01}
    assert not gate(two).passed and gate(two).reasons[0].startswith("batch 64")  # the largest batch is gated
    small_inside = {**two, "b64/ebclr_minus_floor/mean": 0.08, "b16/ebclr_minus_floor/mean": 0.01}
    assert gate(small_inside).passed  # batch 16 is reported, not gated (README.md, "Gate")
    no_interval = {k: v for k, v in good.items() if k != "b16/ebclr_minus_floor/half_width"}
    assert not gate(no_interval).passed  # one seed: no interval, no champion
    assert not gate({}).passed


def _snap(ctx: RunContext, run: str, step: int) -> dict[str, torch.Tensor]:
    return load_file(str(ctx.model_root / "runs" / run / f"step-{step:06d}.safetensors"))


def test_seeds_are_independent_runs(tmp_path: Path) -> None:
    # Seed 1's runs are the same whether seed 0 was trained before them or not, and differ from seed 0's.
    ctxs = {}
    for seeds in ((0, 1), (1,)):
        cfg = EBCLRPaperConfig.model_validate({**SMALL, "train": {**SMALL["train"], "seeds": list(seeds)}})
        ctx = RunContext("ebclr", tmp_path / "-".join(map(str, seeds)))
        PAPER.prepare(cfg, ctx)
        PAPER.train(cfg, ctx)
        ctxs[seeds] = ctx
    for m in ("ebclr", "moco"):
        a, b = _snap(ctxs[(0, 1)], f"{m}_b32_s1", 4), _snap(ctxs[(1,)], f"{m}_b32_s1", 4)
        assert all(torch.equal(a[k], b[k]) for k in a)
        s0 = _snap(ctxs[(0, 1)], f"{m}_b32_s0", 4)
        assert not all(torch.equal(a[k], s0[k]) for k in a)


def test_ablation_is_paired_with_ebclr(tmp_path: Path) -> None:
    # EBCLR and its lambda2 = 0 ablation start from the same weights (same seed): their difference is the
    # generative term's; after training they differ.
    cfg = EBCLRPaperConfig.model_validate(SMALL)
    ctx = RunContext("ebclr", tmp_path)
    PAPER.prepare(cfg, ctx)
    PAPER.train(cfg, ctx)
    a0, b0 = _snap(ctx, "ebclr_b32_s0", 0), _snap(ctx, "ebclr_lambda2_0_b32_s0", 0)
    assert all(torch.equal(a0[k], b0[k]) for k in a0)
    a, b = _snap(ctx, "ebclr_b32_s0", 4), _snap(ctx, "ebclr_lambda2_0_b32_s0", 4)
    assert not all(torch.equal(a[k], b[k]) for k in a)


def test_runs_are_prefixes_across_step_budgets(tmp_path: Path) -> None:
    # Each run draws from its own streams: MoCo's step-2 weights are the same whether runs last 2 or 4 steps.
    snaps = []
    for steps, snapshots in ((2, 1), (4, 2)):
        cfg = EBCLRPaperConfig.model_validate(
            {**SMALL, "train": {**SMALL["train"], "steps": steps, "snapshots": snapshots}}
        )
        ctx = RunContext("ebclr", tmp_path / str(steps))
        PAPER.prepare(cfg, ctx)
        PAPER.train(cfg, ctx)
        snaps.append(_snap(ctx, "moco_b32_s0", 2))
    assert all(torch.equal(snaps[0][k], snaps[1][k]) for k in snaps[0])


def test_predict_standardises_like_the_patch_task(model) -> None:
    # A model trained on standardised patches sees served images standardised the same way (brightness removed).
    from dataclasses import replace

    patched = replace(model, config={**model.config, "patch_standardize": True})
    img = 0.5 * np.random.default_rng(0).random((2, 16, 16)).astype(np.float32)
    a, b = prepare_batch(patched, img), prepare_batch(patched, img + 0.2)
    assert torch.allclose(a, b, atol=1e-5) and torch.allclose(a.mean(dim=(1, 2, 3)), torch.zeros(2), atol=1e-5)
    assert not torch.allclose(prepare_batch(model, img), prepare_batch(model, img + 0.2))
