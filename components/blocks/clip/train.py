"""Building the text-image block: train a CLIP on generated drawings (or import real weights), then
measure zero-shot classification on held-out caption combinations.

Training (Radford et al. 2021, Fig. 3 and Sec. 2.5): each step draws ``batch_size`` drawings, gives
each a fresh caption (a random template and a random subset of its attributes, ``drawings.caption``)
and a random horizontal flip, and minimises the symmetric contrastive loss (``losses.clip_loss``)
with AdamW (weight decay on weight matrices only, as open_clip), linear warm-up then cosine decay,
and the learnable temperature exp(t) clipped at ``max_logit_scale``. Every draw of step s comes
from generators seeded with (seed, s), so a run killed and resumed from a checkpoint continues
exactly as an uninterrupted one (CPU).

Zero-shot evaluation (Sec. 3.1.4, prompt ensembling over ``drawings.TEMPLATES``): images of the
(colour, shape) pairs held out of training (``data.held_out``) classified among all colour x shape
phrases; the same for fresh images of seen pairs; faces classified among colour x mood phrases and
by mood alone. Accuracies with binomial standard errors, beside chance.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

import numpy as np
import torch

from components.blocks.clip.config import ClipConfig
from components.blocks.clip.losses import class_embeddings, clip_loss, zero_shot_probs
from components.blocks.clip.model import TextImageModel, build_clip, freeze, load_pretrained, save_model
from components.blocks.data import drawings
from components.checkpoint import Checkpointer
from components.config import config_hash
from components.contract import RunContext


def arch_of(cfg: ClipConfig) -> dict[str, Any]:
    """The plain-dict open_clip architecture of the configured ViT CLIP."""
    m = cfg.model
    return {
        "embed_dim": m.embed_dim,
        "vision": {
            "layers": m.vision_layers,
            "width": m.vision_width,
            "head_width": m.vision_head_width,
            "patch_size": m.patch_size,
            "image_size": m.image_size,
        },
        "text": {
            "context_length": m.context_length,
            "vocab_size": 49408,  # open_clip's SimpleTokenizer vocabulary
            "width": m.text_width,
            "heads": m.text_heads,
            "layers": m.text_layers,
        },
        "quick_gelu": False,
    }


def fingerprint(state: dict[str, torch.Tensor]) -> str:
    """sha256 of the weights (names, dtypes, shapes, bytes): what a paper's validate stage records."""
    h = hashlib.sha256()
    for k in sorted(state):
        t = state[k].detach().cpu().contiguous()
        h.update(f"{k}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:32]


def lr_at(step: int, cfg: ClipConfig) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine decay to 0 at ``steps``."""
    t = cfg.train
    if step < t.warmup:
        return t.lr * (step + 1) / t.warmup
    progress = (step - t.warmup) / max(1, t.steps - t.warmup)
    return t.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def _optimizer(model: TextImageModel, cfg: ClipConfig) -> torch.optim.Optimizer:
    """AdamW; decay only on weight matrices (open_clip's rule: no decay on gains, biases, embeddings'
    positional tables of rank < 2, or the temperature)."""
    decay: list[torch.nn.Parameter] = []
    rest: list[torch.nn.Parameter] = []
    for name, p in model.clip.named_parameters():
        (decay if p.ndim >= 2 and "logit_scale" not in name else rest).append(p)
    t = cfg.train
    groups = [{"params": decay, "weight_decay": t.weight_decay}, {"params": rest, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=t.lr, betas=(0.9, t.beta2), eps=t.eps)


def training_set(cfg: ClipConfig, bg: drawings.Backgrounds) -> tuple[torch.Tensor, list[dict[str, str]]]:
    """The generated training drawings as uint8 ``(N, 3, S, S)`` (held-out pairs never drawn)."""
    ds = drawings.make_set(cfg.data.train_images, cfg.data.size, cfg.seed, exclude=cfg.data.held_out, bg=bg)
    return torch.from_numpy(np.round(ds.images * 255).astype(np.uint8)), ds.attrs


def train_clip(cfg: ClipConfig, ctx: RunContext, bg: drawings.Backgrounds) -> TextImageModel:
    """Train (or resume) the configured CLIP on generated drawings; returns it frozen."""
    t = cfg.train
    torch.manual_seed(cfg.seed)
    arch = arch_of(cfg)
    model = TextImageModel(build_clip(arch), arch).to(ctx.device)
    with torch.no_grad():
        model.log_scale.fill_(math.log(1 / t.init_temperature))
    opt = _optimizer(model, cfg)
    ckpt = Checkpointer(ctx.checkpoint_dir, config_hash(cfg, exclude={"device"}))
    first = 0
    if (resumed := ckpt.latest()) is not None:
        first = int(resumed["step"])
        model.clip.load_state_dict(resumed["state"]["model"])
        opt.load_state_dict(resumed["state"]["opt"])
        ctx.log.info("resuming clip training from step %d of %d", first, t.steps)
    images, attrs = training_set(cfg, bg)
    history: list[float] = list(resumed["state"]["history"]) if resumed else []
    running: list[float] = []
    model.train()
    for step in ctx.progress(range(first, t.steps), total=t.steps, desc="clip train", initial=first):
        gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)
        rng = np.random.default_rng([cfg.seed, step])
        idx = torch.randint(0, len(images), (t.batch_size,), generator=gen)
        x = images[idx].float() / 255
        flip = torch.rand(t.batch_size, generator=gen) < 0.5
        x = torch.where(flip[:, None, None, None], x.flip(-1), x).to(ctx.device)
        captions = [drawings.caption(attrs[i], rng) for i in idx.tolist()]
        for group in opt.param_groups:
            group["lr"] = lr_at(step, cfg)
        loss = clip_loss(model.encode_image(x), model.encode_text(captions), model.logit_scale)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():  # CLIP Sec. 2.5: the logits are scaled by at most 100
            model.log_scale.clamp_(0, math.log(t.max_logit_scale))
        running.append(float(loss.detach()))
        if (step + 1) % t.log_every == 0 or step + 1 == t.steps:
            history += [float(step + 1), sum(running) / len(running)]
            scale = float(model.logit_scale.detach())
            ctx.logger.log_metrics({"loss/clip": history[-1], "logit_scale": scale}, step=step + 1)
            running = []
        if (step + 1) % t.checkpoint_every == 0 or step + 1 == t.steps:
            state = {"model": model.clip.state_dict(), "opt": opt.state_dict(), "history": history}
            ckpt.save(step + 1, state, cfg.model_dump(mode="json"))
    if history:
        from components.blocks.training.phase import log_loss_figure

        log_loss_figure(ctx.logger, {"loss/clip": history}, "contrastive loss", "text-image block: CLIP training")
    return freeze(model)


# ------------------------------------------------------------------------------------ zero-shot
def _accuracy(model: TextImageModel, images: np.ndarray, truth: list[int], weights: torch.Tensor) -> dict[str, float]:
    preds = []
    with torch.no_grad():
        for i in range(0, len(images), 256):
            x = torch.from_numpy(images[i : i + 256]).to(weights.device)
            preds.append(zero_shot_probs(model, x, weights).argmax(1).cpu())
    correct = (torch.cat(preds) == torch.tensor(truth)).double()
    p, n = float(correct.mean()), len(correct)
    return {"acc": p, "acc_se": math.sqrt(max(p * (1 - p), 1.0 / n) / n), "n": float(n)}


def zero_shot(model: TextImageModel, cfg: ClipConfig, bg: drawings.Backgrounds) -> dict[str, float]:
    """Zero-shot accuracies (with binomial SE and chance) on fresh drawings; keys ``<split>/<task>/...``."""
    size, n, seed = cfg.data.size, cfg.data.eval_images, cfg.seed + 7919
    held = [p for p in cfg.data.held_out if p[1] in drawings.SHAPES]
    colours, shapes, moods = list(drawings.COLOURS), drawings.SHAPES, drawings.MOODS
    pairs = [f"{c} {s}" for c in colours for s in shapes]
    faces = [f"{m} {c} face" for c in colours for m in moods]
    tmpl = drawings.TEMPLATES
    with torch.no_grad():
        w_pairs = class_embeddings(model, pairs, tmpl)
        w_colour = class_embeddings(model, [f"{c} shape" for c in colours], tmpl)
        w_shape = class_embeddings(model, list(shapes), tmpl)
        w_faces = class_embeddings(model, faces, tmpl)
        w_mood = class_embeddings(model, [f"{m} face" for m in moods], tmpl)
    out: dict[str, float] = {}

    def add(prefix: str, res: dict[str, float], chance: float) -> None:
        out.update({f"{prefix}/{k}": v for k, v in res.items()})
        out[f"{prefix}/chance"] = chance

    if held:
        ds = drawings.make_set(n, size, seed, only=held, bg=bg)
        a = ds.attrs
        add(
            "held_out/pair",
            _accuracy(model, ds.images, [pairs.index(f"{x['colour']} {x['shape']}") for x in a], w_pairs),
            1 / len(pairs),
        )
        add(
            "held_out/colour",
            _accuracy(model, ds.images, [colours.index(x["colour"]) for x in a], w_colour),
            1 / len(colours),
        )
        add(
            "held_out/shape",
            _accuracy(model, ds.images, [shapes.index(x["shape"]) for x in a], w_shape),
            1 / len(shapes),
        )
    ds = drawings.make_set(n, size, seed + 1, kinds={"shape": 1.0}, exclude=cfg.data.held_out, bg=bg)
    add(
        "seen/shape",
        _accuracy(model, ds.images, [shapes.index(x["shape"]) for x in ds.attrs], w_shape),
        1 / len(shapes),
    )
    add(
        "seen/pair",
        _accuracy(model, ds.images, [pairs.index(f"{x['colour']} {x['shape']}") for x in ds.attrs], w_pairs),
        1 / len(pairs),
    )
    ds = drawings.make_set(n, size, seed + 2, kinds={"face": 1.0}, exclude=cfg.data.held_out, bg=bg)
    add(
        "faces/pair",
        _accuracy(model, ds.images, [faces.index(f"{x['mood']} {x['colour']} face") for x in ds.attrs], w_faces),
        1 / len(faces),
    )
    add("faces/mood", _accuracy(model, ds.images, [moods.index(x["mood"]) for x in ds.attrs], w_mood), 1 / len(moods))
    return out


def build(cfg: ClipConfig, ctx: RunContext) -> dict[str, float]:
    """The block's step: train (or import) the model, export it to ``ctx.model_dir``, measure it."""
    bg = drawings.Backgrounds()
    if cfg.source == "pretrained":
        assert cfg.pretrained.path is not None  # ClipConfig._source
        model = load_pretrained(ctx.root / cfg.pretrained.path, cfg.pretrained.arch, cfg.pretrained.quick_gelu)
        model = model.to(ctx.device)
    else:
        model = train_clip(cfg, ctx, bg)
    metrics = zero_shot(model, cfg, bg)
    metrics["logit_scale"] = float(model.logit_scale)
    extra = {
        "block": "clip",
        "source": cfg.source,
        "config_hash": config_hash(cfg, exclude={"device"}),
        "fingerprint": fingerprint(model.clip.state_dict()),
        "templates": list(drawings.TEMPLATES),
        "zero_shot": metrics,
    }
    save_model(model, ctx.model_dir, extra)
    from components.blocks.clip.report import write_report

    write_report(ctx, cfg, metrics)
    return metrics
