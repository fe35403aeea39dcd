"""The metrics against known answers; the gate on synthetic metrics (beyond noise, bytes)."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import f1_score, roc_auc_score

from components.papers.festa.evaluate import gate
from components.papers.festa.metrics import abs_errors, auc, binary_auc, dice_per_image, f1


def test_auc_and_f1_match_sklearn() -> None:
    rng = np.random.default_rng(0)
    label = rng.integers(0, 3, 200)
    prob = rng.dirichlet([1, 1, 1], 200) + 0.3 * np.eye(3)[label]
    prob = np.round(prob / prob.sum(1, keepdims=True), 2)  # ties, handled by average ranks
    ovr = np.mean([roc_auc_score(label == k, prob[:, k]) for k in range(3)])  # macro one-vs-rest
    assert np.isclose(auc(prob, label), ovr)
    pred = prob.argmax(1)
    assert np.isclose(f1(pred, label), f1_score(label, pred, average="macro"))
    assert binary_auc(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1])) == 0.75  # by hand
    assert np.isnan(binary_auc(np.array([0.1, 0.2]), np.array([1, 1])))


def test_dice_and_abs_errors_by_hand() -> None:
    p = np.zeros((3, 4, 4), bool)
    t = np.zeros((3, 4, 4), bool)
    p[0, :2, :2] = True  # 4 pixels
    t[0, :2, :] = True  # 8 pixels, 4 shared: 2*4 / 12
    t[1, 0, 0] = True  # nothing predicted: 0
    assert np.allclose(dice_per_image(p, t), [8 / 12, 0.0, 1.0])  # both empty: 1
    assert np.allclose(abs_errors(np.array([0.1, 0.5]), np.array([0.3, 0.5])), [0.2, 0.0])


def metrics(d_auc=0.05, d_dice=0.04, d_mae=-0.01, se=0.01, festa_bytes=1e5, fedavg_bytes=3e5) -> dict[str, float]:
    return {
        "z": 2.0,
        "gate_bytes": 1.0,
        "festa-local/cls_auc": d_auc,
        "festa-local/cls_auc_se": se,
        "festa-local/seg_dice": d_dice,
        "festa-local/seg_dice_se": se,
        "festa-local/sev_mae": d_mae,
        "festa-local/sev_mae_se": se / 4,
        "festa/bytes_per_round": festa_bytes,
        "fedavg/bytes_per_round": fedavg_bytes,
    }


def test_gate_passes_beyond_noise_and_fails_inside_it() -> None:
    assert gate(metrics()).passed
    inside = gate(metrics(d_dice=0.015))  # 1.5 SE: inside the noise
    assert not inside.passed and len(inside.reasons) == 1 and inside.reasons[0].startswith("seg")
    worse_mae = gate(metrics(d_mae=+0.01))  # a higher MAE is worse, however far from zero
    assert not worse_mae.passed and worse_mae.reasons[0].startswith("sev")
    worse_auc = gate(metrics(d_auc=-0.05))
    assert not worse_auc.passed and worse_auc.reasons[0].startswith("cls")


def test_gate_asks_fewer_bytes_than_fedavg() -> None:
    v = gate(metrics(festa_bytes=4e5))
    assert not v.passed and "bytes per round" in v.reasons[0]
    missing = metrics()
    del missing["fedavg/bytes_per_round"]
    assert not gate(missing).passed
    assert gate({**missing, "gate_bytes": 0.0}).passed
    assert not gate({"z": 2.0}).passed  # nothing evaluated is no pass
