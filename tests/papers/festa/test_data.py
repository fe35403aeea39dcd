"""The synthetic data's non-IID properties and the real-data folder loader."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from PIL import Image
from scipy.stats import chi2_contingency

from components.contract import RunContext
from components.papers.festa import PAPER
from components.papers.festa.config import FeSTAConfig
from components.papers.festa.data import hospital_shift, load_split, synth


def _cfg(**data) -> FeSTAConfig:
    return FeSTAConfig.model_validate(
        {"data": {"size": 16, "test_per_task": 24, **data}, "model": {"dim": 16, "num_heads": 2, "patch": 4}}
    )


def _labels(tmp_path, alpha: float) -> np.ndarray:
    cfg = _cfg(train_per_client=200, clients_per_task=4, dirichlet_alpha=alpha)
    ctx = RunContext("festa", tmp_path / str(alpha))
    cfg = cfg.model_copy(update={"train": cfg.train.model_copy(update={"tasks": ("cls",)})})
    PAPER.prepare(cfg, ctx)
    return np.stack([np.bincount(load_split(ctx.data_dir, f"client_cls_{k}")["label"], minlength=3) for k in range(4)])


def test_dirichlet_label_skew_across_clients(tmp_path) -> None:
    skewed, even = _labels(tmp_path, 0.5), _labels(tmp_path, 100.0)
    assert skewed.sum(1).tolist() == [200] * 4
    # alpha 0.5: the clients' label mixes differ beyond chance; alpha 100: close to one shared mix
    assert chi2_contingency(skewed + 1)[1] < 1e-6
    assert chi2_contingency(even)[1] > 1e-3
    assert (skewed / 200).max(1).mean() > (even / 200).max(1).mean() + 0.15


def test_lesions_masks_and_severity_are_consistent() -> None:
    d = synth(60, 32, np.random.default_rng(1), np.repeat([0, 1, 2], 20))
    has = d["mask"].reshape(60, -1).any(1)
    assert not has[:20].any() and has[20:].all()  # normal images have no lesion, the others do
    assert (d["severity"][:20] == 0).all() and (d["severity"][20:] > 0).all() and (d["severity"] <= 1).all()
    assert d["image"].min() >= 0 and d["image"].max() <= 1
    # the lungs are dark (about 0.25) and a lesion, where the mask is, raises them by over 0.12
    inside = [d["image"][i][d["mask"][i] > 0].mean() for i in range(20, 60)]
    assert np.percentile(d["image"][:20], 25) < 0.3 and min(inside) > 0.35


def test_hospital_shift_is_one_transform_per_hospital() -> None:
    x = synth(8, 16, np.random.default_rng(2))["image"]
    assert np.allclose(hospital_shift(x, np.random.default_rng(3), 0.0), np.clip(x, 0, 1))
    a = hospital_shift(x, np.random.default_rng(3), 0.25)
    b = hospital_shift(x, np.random.default_rng(4), 0.25)
    assert abs(float(a.mean() - b.mean())) > 0.01  # two hospitals look different
    # one monotone transform for the whole hospital: pixel order within an image is kept
    i, j = np.unravel_index(np.argsort(x[0], axis=None), x[0].shape)
    assert (np.diff(a[0][i, j]) >= -1e-6).all()


def _write_folder(root, name: str, labels: list[int], size: int = 20) -> None:
    folder = root / name
    (folder / "masks").mkdir(parents=True)
    rng = np.random.default_rng(len(name))
    with (folder / "labels.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["file", "label", "severity"])
        for i, lab in enumerate(labels):
            img = (rng.random((size, size)) * 255).astype(np.uint8)
            Image.fromarray(img).save(folder / f"im{i}.png")
            if lab:
                m = np.zeros((size, size), np.uint8)
                m[4:12, 4:12] = 255
                Image.fromarray(m).save(folder / "masks" / f"im{i}.png")
            w.writerow([f"im{i}.png", lab, 0.1 * lab])


def test_folder_loader(tmp_path) -> None:
    src = tmp_path / "cxr"
    for task in ("cls", "seg"):
        for k in range(2):
            _write_folder(src, f"{task}_{k}", [0, 1, 2, 1])
        _write_folder(src, f"test_{task}", [2, 0, 1])
    cfg = _cfg(source="folder", path=str(src))
    cfg = cfg.model_copy(update={"train": cfg.train.model_copy(update={"tasks": ("cls", "seg")})})
    ctx = RunContext("festa", tmp_path / "out")
    PAPER.prepare(cfg, ctx)
    d = load_split(ctx.data_dir, "client_seg_1")
    assert d["image"].shape == (4, 16, 16) and d["mask"].shape == (4, 16, 16)
    assert d["label"].tolist() == [0, 1, 2, 1] and np.allclose(d["severity"], [0, 0.1, 0.2, 0.1])
    raw = np.asarray(Image.open(src / "seg_1" / "im1.png").resize((16, 16), Image.Resampling.BILINEAR)) / 255
    assert np.allclose(d["image"][1], raw, atol=1e-6)
    assert d["mask"][0].sum() == 0 and d["mask"][1][3:9, 3:9].all()  # 4:12 of 20 -> about 3:10 of 16
    assert load_split(ctx.data_dir, "test_cls")["label"].tolist() == [2, 0, 1]
    _write_folder(src, "bad_0", [0, 5])
    bad = _cfg(source="folder", path=str(src), clients_per_task=1)
    bad = bad.model_copy(update={"train": bad.train.model_copy(update={"tasks": ("cls",)})})
    (src / "cls_0").rename(src / "cls_0_ok")
    (src / "bad_0").rename(src / "cls_0")
    with pytest.raises(ValueError, match="labels must be 0"):
        PAPER.prepare(bad, RunContext("festa", tmp_path / "bad"))
