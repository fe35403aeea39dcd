"""Training steps learn, a killed run resumes bit-exactly, the served model predicts and refuses bad input."""

from __future__ import annotations

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
    "train": {"batch_sizes": [32], "epochs": 2, "max_steps_per_epoch": 2, "methods": ["ebclr", "moco"]},
    "eval": {"probe_epochs": 10},
}


@pytest.mark.parametrize("method", ["ebclr", "simclr"])
def test_loss_falls_on_a_fixed_batch(method: str) -> None:
    torch.manual_seed(0)
    cfg = EBCLRPaperConfig.model_validate({**SMALL, "ebclr": {"lr": 2e-3}, "simclr": {"lr": 0.1}})
    x = digits(16).train_x[:32]
    gen = torch.Generator().manual_seed(0)
    m = build_method(method, cfg, 32, x, gen, torch.device("cpu"), False)
    v1, v2 = augment(x, cfg.data, gen), augment(x, cfg.data, gen)
    key = "discriminative" if method == "ebclr" else "loss"
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

    crashed = RunContext("ebclr", tmp_path / "crashed", progress=_stop_after(1))  # dies inside EBCLR's run
    PAPER.prepare(cfg, crashed)
    with pytest.raises(Interrupted):
        PAPER.train(cfg, crashed)
    assert not crashed.model_dir.exists() and any(crashed.checkpoint_dir.iterdir())
    PAPER.train(cfg, RunContext("ebclr", tmp_path / "crashed"))

    a, b = _weights(tmp_path / "full"), _weights(tmp_path / "crashed")
    assert a.keys() == b.keys() and len(a) > 50
    assert all(torch.equal(a[k], b[k]) for k in a), [k for k in a if not torch.equal(a[k], b[k])][:5]


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory):
    cfg = EBCLRPaperConfig.model_validate({**SMALL, "train": {**SMALL["train"], "epochs": 1}})
    ctx = RunContext("ebclr", tmp_path_factory.mktemp("model"))
    PAPER.prepare(cfg, ctx)
    PAPER.train(cfg, ctx)
    metrics = PAPER.evaluate(cfg, ctx)
    assert (ctx.report_dir / "results.csv").is_file() and (ctx.report_dir / "figures" / "accuracy_vs_epochs.png").is_file()
    assert "ebclr_b32/probe_acc" in metrics and "moco_b32/random_knn_acc" in metrics
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
    good = {"ebclr_b16/probe_acc": 0.9, "ebclr_b16/random_probe_acc": 0.5, "simclr_b16/probe_acc": 0.8,
            "moco_b16/probe_acc": 0.85}
    assert gate(good).passed
    bad = gate({**good, "moco_b16/probe_acc": 0.95})
    assert not bad.passed and "moco" in bad.reasons[0]
    assert not gate({**good, "ebclr_b16/random_probe_acc": 0.95}).passed
    assert not gate({}).passed


def test_runs_are_prefixes_across_epoch_budgets(tmp_path: Path) -> None:
    # Each run draws from its own stream: MoCo's first epoch is the same whether EBCLR ran 1 or 2 epochs before it.
    snaps = []
    for epochs in (1, 2):
        cfg = EBCLRPaperConfig.model_validate({**SMALL, "train": {**SMALL["train"], "epochs": epochs}})
        ctx = RunContext("ebclr", tmp_path / str(epochs))
        PAPER.prepare(cfg, ctx)
        PAPER.train(cfg, ctx)
        snaps.append(load_file(str(ctx.model_root / "runs" / "moco_b32" / "epoch-001.safetensors")))
    assert all(torch.equal(snaps[0][k], snaps[1][k]) for k in snaps[0])
