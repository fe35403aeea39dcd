"""Evaluation: inversion fidelity, text-driven manipulation, model_ratio and multi-attribute mixing.

All on the held-out test faces, paired per image, with one fixed seed:

1. **Inversion fidelity** (the paper: near-perfect reconstruction without an encoder or an
   optimisation). For every (t0, n_inv) of the grid: deterministic DDIM inversion then DDIM
   generation with the original model, against the baseline of stochastic forward noising
   (q_sample) then the same generation. Per image MAE (on [0, 1]) and SSIM; the paired difference
   stochastic - DDIM with its standard error (the first ``eval.fidelity_images``).
2. **Manipulation** (official ``clip_finetune`` / ``edit_images_from_dataset``): for each target
   text, the test images that lack the attribute (drawn data: by their truth) are inverted (t0,
   n_inv) and generated (n_gen) by the fine-tuned model. The target's zero-shot probability from the
   CLIP block among its classes (template averaging) before (the input) and after, the L1 drift
   |x_edit - x_in| (on [0, 1]), and, for drawn data, the probability of the attribute from an
   independent classifier trained on the true labels (``judge.py``). Beside it: the same edit
   started from stochastic forward noising (the drift the paper's deterministic inversion avoids).
   The latents and the single models' generations are computed once and shared (``Shared``).
3. **model_ratio** (official ``--model_ratio``): the edit with eps = r eps_ft + (1 - r) eps_orig for
   r in ``eval.ratios``; the attribute score should rise monotonically with r.
4. **Multi-attribute mixing** (official ``--hybrid_noise`` with ``HYBRID_CONFIG``): the first two
   targets' models mixed by the time-threshold schedule ``eval.mix`` and by a constant ratio alpha
   of the first against the second (``eval.mix_alphas``: the first attribute rises with alpha, the
   second falls).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torchmetrics.functional.image import structural_similarity_index_measure

from components.blocks.clip.losses import class_embeddings, zero_shot_probs
from components.blocks.clip.model import TextImageModel
from components.blocks.metrics.paired import mean_se
from components.contract import Gate, RunContext
from components.papers.diffusionclip.config import DiffusionCLIPConfig
from components.papers.diffusionclip.data import load_attrs, load_split
from components.papers.diffusionclip.judge import Judge, train_judge
from components.papers.diffusionclip.model import DiffusionCLIPModel, load
from components.papers.diffusionclip.sampling import forward_noise, generate, hybrid_eps, invert, ratio_eps
from components.papers.diffusionclip.train import load_clip

BATCH = 64


def _batched(fn: Any, x: torch.Tensor, **kw: Any) -> torch.Tensor:
    """``fn(batch, **kw)`` over batches of ``x``, concatenated."""
    return torch.cat([fn(x[i : i + BATCH], **kw) for i in range(0, len(x), BATCH)])


def _inv(b: torch.Tensor, eps: Any, t0: int, n: int, abar: torch.Tensor) -> torch.Tensor:
    return invert(eps, b, t0, n, abar)


def _gen(b: torch.Tensor, eps: Any, t0: int, n: int, abar: torch.Tensor) -> torch.Tensor:
    return generate(eps, b, t0, n, abar)


def _recon(b: torch.Tensor, eps: Any, t0: int, n: int, abar: torch.Tensor) -> torch.Tensor:
    return generate(eps, invert(eps, b, t0, n, abar), t0, n, abar)


def _stoch(b: torch.Tensor, eps: Any, t0: int, n: int, abar: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    return generate(eps, forward_noise(b, t0, abar, gen), t0, n, abar)


def mae(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-image mean absolute error on [0, 1] of images in [-1, 1]: ``(B,)``."""
    return ((a - b).abs() / 2).flatten(1).mean(1)


def ssim(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-image SSIM on [0, 1]: ``(B,)``."""
    value = structural_similarity_index_measure(
        ((a + 1) / 2).clamp(0, 1), ((b + 1) / 2).clamp(0, 1), data_range=1.0, reduction="none"
    )
    assert isinstance(value, torch.Tensor)
    return value.reshape(-1)


class Scorer:
    """Zero-shot probability of a target among its classes (CLIP block), and the judge's."""

    def __init__(self, clip: TextImageModel, templates: tuple[str, ...], judge: Judge | None) -> None:
        self.clip, self.templates, self.judge = clip, templates, judge
        self._weights: dict[tuple[str, ...], torch.Tensor] = {}

    @torch.no_grad()
    def clip_score(self, x: torch.Tensor, classes: tuple[str, ...], target: str) -> torch.Tensor:
        if classes not in self._weights:
            self._weights[classes] = class_embeddings(self.clip, classes, self.templates)
        probs = _batched(lambda b: zero_shot_probs(self.clip, (b + 1) / 2, self._weights[classes]), x)
        return probs[:, classes.index(target)].cpu()

    def judge_score(self, x: torch.Tensor, attribute: str) -> torch.Tensor | None:
        if self.judge is None or not attribute:
            return None
        return _batched(lambda b: self.judge.prob(b.cpu(), attribute), x).cpu()


def _diff(a: torch.Tensor, b: torch.Tensor) -> tuple[float, float]:
    return mean_se((a - b).double().numpy())


@torch.no_grad()
def inversion_fidelity(model: DiffusionCLIPModel, x: torch.Tensor, cfg: DiffusionCLIPConfig) -> list[dict]:
    """Rows of the (t0, n_inv) grid: DDIM inversion vs stochastic forward noising, paired over images."""
    rows = []
    eps = model.eps()
    gen = torch.Generator().manual_seed(cfg.seed + 101)
    grid = sorted({(t0, n) for t0 in cfg.eval.t0s for n in cfg.eval.n_invs} | {(cfg.finetune.t0, cfg.finetune.n_inv)})
    for t0, n in grid:
        ddim = _batched(_recon, x, eps=eps, t0=t0, n=n, abar=model.abar)
        stoch = _batched(_stoch, x, eps=eps, t0=t0, n=n, abar=model.abar, gen=gen)
        m_d, m_s, s_d, s_s = mae(ddim, x), mae(stoch, x), ssim(ddim, x), ssim(stoch, x)
        d, se = _diff(m_s, m_d)
        dss, ses = _diff(s_d, s_s)
        rows.append(
            {
                "t0": t0,
                "n_inv": n,
                "images": len(x),
                "ddim_mae": float(m_d.mean()),
                "stoch_mae": float(m_s.mean()),
                "stoch_minus_ddim_mae": d,
                "stoch_minus_ddim_mae_se": se,
                "ddim_ssim": float(s_d.mean()),
                "stoch_ssim": float(s_s.mean()),
                "ddim_minus_stoch_ssim": dss,
                "ddim_minus_stoch_ssim_se": ses,
            }
        )
    return rows


def _lacks(attrs: list[dict[str, str]] | None, attribute: str, n: int) -> torch.Tensor:
    """Indices of the test images without ``attribute`` (all when attributes are unknown)."""
    if attrs is None or not attribute:
        return torch.arange(n)
    key, value = attribute.split(":")
    return torch.tensor([i for i, a in enumerate(attrs) if a.get(key) != value], dtype=torch.long)


class Shared:
    """The test images' DDIM latents (t0, n_inv) and the generations every table reuses, computed once:
    the original model's (model_ratio 0) and each fine-tuned model's alone (model_ratio 1)."""

    def __init__(self, model: DiffusionCLIPModel, x: torch.Tensor, cfg: DiffusionCLIPConfig) -> None:
        f = cfg.finetune
        self.model, self.x, self.f = model, x, f
        self.lat = _batched(_inv, x, eps=model.eps(), t0=f.t0, n=f.n_inv, abar=model.abar)
        self._full: dict[str | None, torch.Tensor] = {}

    def alone(self, name: str | None) -> torch.Tensor:
        """Generation by one model (None: the original) from every latent."""
        if name not in self._full:
            eps = self.model.eps(name)
            self._full[name] = _batched(_gen, self.lat, eps=eps, t0=self.f.t0, n=self.f.n_gen, abar=self.model.abar)
        return self._full[name]

    def mixed(self, eps: Any, idx: torch.Tensor) -> torch.Tensor:
        return _batched(_gen, self.lat[idx], eps=eps, t0=self.f.t0, n=self.f.n_gen, abar=self.model.abar)


def _edit_row(
    target: Any,
    label: str,
    sub: torch.Tensor,
    out: torch.Tensor,
    ref: torch.Tensor,
    scorer: Scorer,
    s_in: torch.Tensor,
    j_in: torch.Tensor | None,
) -> dict[str, Any]:
    s_out = scorer.clip_score(out, target.classes, target.target)
    d, se = _diff(s_out, s_in)
    drift = mae(out, sub)
    dd, dd_se = _diff(drift, mae(ref, sub))
    row: dict[str, Any] = {
        "target": target.name,
        "method": label,
        "images": len(sub),
        "score_in": float(s_in.mean()),
        "score": float(s_out.mean()),
        "d_score": d,
        "d_score_se": se,
        "drift": float(drift.mean()),
        "drift_se": mean_se(drift.double().numpy())[1],
        "drift_minus_det": dd,
        "drift_minus_det_se": dd_se,
    }
    j_out = scorer.judge_score(out, target.attribute)
    if j_in is not None and j_out is not None:
        dj, dj_se = _diff(j_out, j_in)
        row.update({"judge_in": float(j_in.mean()), "judge": float(j_out.mean()), "d_judge": dj, "d_judge_se": dj_se})
    return row


@torch.no_grad()
def manipulation(
    shared: Shared,
    attrs: list[dict[str, str]] | None,
    scorer: Scorer,
    cfg: DiffusionCLIPConfig,
) -> tuple[list[dict], dict[str, torch.Tensor]]:
    """Rows per (target, ratio), the stochastic-start baseline and the ratio sweep's steps; examples."""
    f, model, x = cfg.finetune, shared.model, shared.x
    rows, examples = [], {}
    gen = torch.Generator().manual_seed(cfg.seed + 202)
    for target in cfg.finetune.targets:
        idx = _lacks(attrs, target.attribute, len(x))
        if len(idx) < 2:
            continue
        sub = x[idx]
        s_in = scorer.clip_score(sub, target.classes, target.target)
        j_in = scorer.judge_score(sub, target.attribute)
        outs = {}
        for r in cfg.eval.ratios:
            if r in (0.0, 1.0):
                outs[r] = shared.alone(target.name if r == 1.0 else None)[idx]
            else:
                outs[r] = shared.mixed(ratio_eps(model.eps(), model.eps(target.name), r), idx)
        full = shared.alone(target.name)[idx]
        stoch_lat = forward_noise(sub, f.t0, model.abar, gen)
        stoch = _batched(_gen, stoch_lat, eps=model.eps(target.name), t0=f.t0, n=f.n_gen, abar=model.abar)
        labelled = [*((f"ratio={r:g}", o) for r, o in outs.items()), ("stochastic start", stoch)]
        rows += [_edit_row(target, label, sub, out, full, scorer, s_in, j_in) for label, out in labelled]
        ratios = sorted(outs)  # paired step-to-step changes of the ratio sweep (monotonicity)
        for lo, hi in zip(ratios, ratios[1:], strict=False):
            a = scorer.clip_score(outs[hi], target.classes, target.target)
            b = scorer.clip_score(outs[lo], target.classes, target.target)
            d, se = _diff(a, b)
            rows.append(
                {
                    "target": target.name,
                    "method": f"step {lo:g}->{hi:g}",
                    "images": len(sub),
                    "d_score": d,
                    "d_score_se": se,
                }
            )
        examples[target.name] = torch.stack([sub[:4], *(outs[r][:4] for r in ratios), stoch[:4]])
    return rows, examples


@torch.no_grad()
def mixing(
    shared: Shared,
    attrs: list[dict[str, str]] | None,
    scorer: Scorer,
    cfg: DiffusionCLIPConfig,
) -> tuple[list[dict], torch.Tensor | None]:
    """The first two targets mixed: by the time-threshold schedule and by a constant alpha sweep, on
    the test images with neither attribute."""
    targets, x, model = cfg.finetune.targets[:2], shared.x, shared.model
    if len(targets) < 2 or not cfg.eval.mix:
        return [], None
    keep = set(_lacks(attrs, targets[0].attribute, len(x)).tolist()) & set(
        _lacks(attrs, targets[1].attribute, len(x)).tolist()
    )
    idx = torch.tensor(sorted(keep), dtype=torch.long)
    if len(idx) < 2:
        return [], None
    sub = x[idx]
    models = [model.eps(t.name) for t in cfg.finetune.targets]
    outs = {"hybrid schedule": shared.mixed(hybrid_eps(models, cfg.eval.mix), idx)}
    for a in cfg.eval.mix_alphas:
        if a in (0.0, 1.0):  # one model alone
            outs[f"alpha={a:g}"] = shared.alone(targets[0 if a == 1.0 else 1].name)[idx]
        else:
            outs[f"alpha={a:g}"] = shared.mixed(hybrid_eps(models[:2], [(0, (a, 1 - a))]), idx)
    rows, shown = [], [sub[:4]]
    base = {t.name: scorer.clip_score(sub, t.classes, t.target) for t in targets}
    for label, out in outs.items():
        shown.append(out[:4])
        row: dict[str, Any] = {"method": label, "images": len(sub), "drift": float(mae(out, sub).mean())}
        for t in targets:
            s = scorer.clip_score(out, t.classes, t.target)
            d, se = _diff(s, base[t.name])
            row.update({f"{t.name}_score": float(s.mean()), f"{t.name}_d": d, f"{t.name}_d_se": se})
        rows.append(row)
    return rows, torch.stack(shown)


def evaluate(cfg: DiffusionCLIPConfig, ctx: RunContext) -> dict[str, float]:
    """Evaluate ``models/diffusionclip`` on the held-out faces; write tables and figures."""
    from components.papers.diffusionclip.report import write_reports

    model = load(ctx.model_dir).to(ctx.device)
    clip, templates = load_clip(ctx)
    x = load_split(ctx.data_dir, "test").to(ctx.device)
    attrs = load_attrs(ctx.data_dir, "test")
    judge = None
    if attrs is not None and cfg.eval.classifier_steps:
        train_attrs = load_attrs(ctx.data_dir, "train")
        assert train_attrs is not None
        judge = train_judge(load_split(ctx.data_dir, "train"), train_attrs, cfg.eval.classifier_steps, cfg.seed + 303)
    scorer = Scorer(clip, templates, judge)
    inv_rows = inversion_fidelity(model, x[: cfg.eval.fidelity_images], cfg)
    ctx.log.info("inversion fidelity: %d (t0, n_inv) settings", len(inv_rows))
    shared = Shared(model, x, cfg)
    edit_rows, examples = manipulation(shared, attrs, scorer, cfg)
    mix_rows, mix_examples = mixing(shared, attrs, scorer, cfg)
    metrics = _metrics(cfg, inv_rows, edit_rows, mix_rows, judge is not None)
    write_reports(ctx, cfg, metrics, inv_rows, edit_rows, mix_rows, examples, mix_examples)
    return metrics


def _metrics(
    cfg: DiffusionCLIPConfig, inv: list[dict], edits: list[dict], mix: list[dict], judged: bool
) -> dict[str, float]:
    e = cfg.eval
    out: dict[str, float] = {
        "gate/z": e.z,
        "gate/recon_mae_bound": e.recon_mae_bound,
        "gate/drift_bound": e.drift_bound,
        "gate/judged": float(judged),
    }
    for r in inv:
        key = f"inversion/t{r['t0']}_n{r['n_inv']}"
        for k in (
            "ddim_mae",
            "stoch_mae",
            "stoch_minus_ddim_mae",
            "stoch_minus_ddim_mae_se",
            "ddim_ssim",
            "stoch_ssim",
            "ddim_minus_stoch_ssim",
            "ddim_minus_stoch_ssim_se",
        ):
            out[f"{key}/{k}"] = float(r[k])
        if (r["t0"], r["n_inv"]) == (cfg.finetune.t0, cfg.finetune.n_inv):
            out["gate/recon_mae"] = float(r["ddim_mae"])
            out["gate/recon_stoch_minus_ddim"] = float(r["stoch_minus_ddim_mae"])
            out["gate/recon_stoch_minus_ddim_se"] = float(r["stoch_minus_ddim_mae_se"])
    full = max(e.ratios)
    for r in edits:
        name = r["target"]
        if r["method"] == f"ratio={full:g}":
            for k in (
                "score_in",
                "score",
                "d_score",
                "d_score_se",
                "drift",
                "drift_se",
                "judge_in",
                "judge",
                "d_judge",
                "d_judge_se",
            ):
                if k in r:
                    out[f"edit/{name}/{k}"] = float(r[k])
        elif r["method"] == "stochastic start":
            out[f"edit/{name}/stochastic_drift"] = float(r["drift"])
            out[f"edit/{name}/stochastic_minus_det_drift"] = float(r["drift_minus_det"])
            out[f"edit/{name}/stochastic_minus_det_drift_se"] = float(r["drift_minus_det_se"])
        elif r["method"].startswith("ratio="):
            out[f"edit/{name}/{r['method'].replace('=', '_')}/score"] = float(r["score"])
        elif r["method"].startswith("step "):
            worst = out.get(f"edit/{name}/ratio_worst_step", math.inf)
            lower = r["d_score"] + e.z * r["d_score_se"]  # a step is a decrease only if its upper bound < 0
            out[f"edit/{name}/ratio_worst_step"] = min(worst, lower)
    for r in mix:
        for t in cfg.finetune.targets[:2]:
            key = f"mix/{r['method'].replace('=', '_').replace(' ', '_')}/{t.name}"
            out[f"{key}/score"] = float(r[f"{t.name}_score"])
            out[f"{key}/d"] = float(r[f"{t.name}_d"])
            out[f"{key}/d_se"] = float(r[f"{t.name}_d_se"])
    return {k: v for k, v in out.items() if math.isfinite(v)}


def gate(metrics: dict[str, float]) -> Gate:
    """Champion iff (paired over test images, z standard errors):

    * DDIM reconstruction at the fine-tuning (t0, n_inv) has MAE below ``recon_mae_bound`` and
      beats stochastic forward noising (the paper's inversion claim);
    * for every target, the CLIP block's zero-shot score of the target rises beyond noise after
      the edit, with mean L1 drift below ``drift_bound``; where an independent judge was trained
      (drawn data), its probability of the attribute rises beyond noise too;
    * the model_ratio sweep never lowers the score by more than noise from one ratio to the next.
    """
    reasons = []
    z = metrics.get("gate/z", 2.0)
    bound = metrics.get("gate/recon_mae_bound", 0.0)
    rec = metrics.get("gate/recon_mae", math.nan)
    if not rec < bound:
        reasons.append(f"DDIM reconstruction MAE {rec:.4f} not below {bound:g}")
    d, se = (
        metrics.get("gate/recon_stoch_minus_ddim", math.nan),
        metrics.get("gate/recon_stoch_minus_ddim_se", math.nan),
    )
    if not d - z * se > 0:
        reasons.append(f"stochastic - DDIM reconstruction MAE = {d:+.4f} +- {se:.4f}, not above {z:g} se")
    targets = sorted({k.split("/")[1] for k in metrics if k.startswith("edit/") and k.endswith("/d_score")})
    if not targets:
        reasons.append("no edit was evaluated")
    drift_bound = metrics.get("gate/drift_bound", 0.0)
    for t in targets:
        d, se = metrics[f"edit/{t}/d_score"], metrics.get(f"edit/{t}/d_score_se", math.nan)
        if not d - z * se > 0:
            reasons.append(f"{t}: zero-shot score change {d:+.3f} +- {se:.3f}, not above {z:g} se")
        drift = metrics.get(f"edit/{t}/drift", math.nan)
        if not drift < drift_bound:
            reasons.append(f"{t}: L1 drift {drift:.3f} not below {drift_bound:g}")
        if metrics.get("gate/judged", 0.0) > 0:
            dj, sej = metrics.get(f"edit/{t}/d_judge", math.nan), metrics.get(f"edit/{t}/d_judge_se", math.nan)
            if not dj - z * sej > 0:
                reasons.append(f"{t}: independent judge's change {dj:+.3f} +- {sej:.3f}, not above {z:g} se")
        worst = metrics.get(f"edit/{t}/ratio_worst_step", math.nan)
        if not worst >= 0:
            reasons.append(
                f"{t}: the model_ratio sweep lowers the score beyond noise (a step's upper bound {worst:+.3f})"
            )
    return Gate(passed=not reasons, reasons=tuple(reasons))


def example_grid(rows: torch.Tensor) -> np.ndarray:
    """``(R, B, 3, S, S)`` in [-1, 1] -> an ``(R S, B S, 3)`` image grid in [0, 1]."""
    r, b, c, s, _ = rows.shape
    grid = ((rows.float().cpu() + 1) / 2).clamp(0, 1).permute(0, 3, 1, 4, 2).reshape(r * s, b * s, c)
    return grid.numpy()
