"""The paper's metrics (Sec. 4): AUC and F1 for classification, Dice for segmentation, MAE for severity.

* ``auc``: macro one-vs-rest ROC AUC over the three classes, each the Mann-Whitney statistic with
  average ranks for ties (= the area under the empirical ROC curve).
* ``f1``: macro F1 of the arg-max class.
* ``dice_per_image``: ``2 |P n T| / (|P| + |T|)`` of the thresholded mask, per image; images
  whose true and predicted masks are both empty score 1.
* ``abs_errors``: per-image absolute severity errors (their mean is the MAE).
"""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata


def binary_auc(score: np.ndarray, positive: np.ndarray) -> float:
    """ROC AUC of ``score`` for the 0/1 ``positive`` labels (NaN when one class is absent)."""
    pos = np.asarray(positive, bool)
    n1, n0 = int(pos.sum()), int((~pos).sum())
    if n1 == 0 or n0 == 0:
        return float("nan")
    r = rankdata(score)  # average ranks: ties count one half
    return float((r[pos].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def auc(prob: np.ndarray, label: np.ndarray) -> float:
    """Macro one-vs-rest AUC of class probabilities ``(n, K)`` for int labels ``(n,)`` (classes present)."""
    per = [binary_auc(prob[:, k], label == k) for k in range(prob.shape[1])]
    per = [a for a in per if np.isfinite(a)]
    return float(np.mean(per)) if per else float("nan")


def f1(pred: np.ndarray, label: np.ndarray, classes: int = 3) -> float:
    """Macro F1 of int predictions ``(n,)`` against int labels ``(n,)`` over the classes present in either."""
    scores = []
    for k in range(classes):
        tp = int(((pred == k) & (label == k)).sum())
        fp = int(((pred == k) & (label != k)).sum())
        fn = int(((pred != k) & (label == k)).sum())
        if tp + fp + fn:
            scores.append(2 * tp / (2 * tp + fp + fn))
    return float(np.mean(scores)) if scores else float("nan")


def dice_per_image(pred: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Dice of 0/1 masks ``(n, S, S)`` per image ``(n,)``; 1 where both are empty."""
    p = np.asarray(pred, bool).reshape(len(pred), -1)
    t = np.asarray(mask, bool).reshape(len(mask), -1)
    inter = (p & t).sum(1)
    total = p.sum(1) + t.sum(1)
    return np.where(total > 0, 2 * inter / np.maximum(total, 1), 1.0).astype(np.float64)


def abs_errors(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    return np.abs(np.asarray(pred, np.float64) - np.asarray(target, np.float64))
