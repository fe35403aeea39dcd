"""Training = the paper's experiment: one CLIPstyler optimisation per (text, content, method).

``per_image`` (train_CLIPstyler.py): for every style text and content image, a fresh StyleNet is
optimised for ``style.iterations`` steps with the full loss (Eq. 7) and with each ablation of
``eval.ablations`` (the paper's Fig. 7: no patch loss, no threshold rejection, no augmentation).
The methods of one (text, content) unit start from the same StyleNet initialisation and seed
(paired). ``fast`` (train_fast.py): per text and method, one StyleNet (pre-trained to reproduce
its input) is fine-tuned on the training contents and then applied to every content image.

The outputs go to ``checkpoints after every unit, then to ``models/clipstyler/outputs.safetensors``
(``Checkpointer``): a run killed with ``kill -9`` resumes at the next unit, and every unit is a pure
function of the config and its seed, so the result equals an uninterrupted run (CPU).

Export (``models/clipstyler/model``): the CLIP block's weights (``clip.*``), the VGG19 content
layers when used (``vgg.*``), the fast variant's networks (``fast.<i>.*``, one per text), and
``config.json`` with the settings ``predict`` runs with.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from components.blocks.clip.model import TextImageModel, load_model
from components.blocks.data.drawings import TEMPLATES
from components.checkpoint import Checkpointer, export_model
from components.config import config_hash
from components.contract import RunContext
from components.papers.clipstyler.config import CLIPstylerConfig
from components.papers.clipstyler.data import load_split
from components.papers.clipstyler.model import ClipContent, StyleNet, load_vgg
from components.papers.clipstyler.style import ABLATIONS, Styler, fast_train, pretrain_reconstruction

OUTPUTS = "outputs.safetensors"


def methods(cfg: CLIPstylerConfig) -> list[str]:
    return ["full", *cfg.eval.ablations]


def load_clip(ctx: RunContext) -> tuple[TextImageModel, tuple[str, ...]]:
    """The CLIP block (``models/blocks/clip``) and the prompt templates it was built with."""
    directory = ctx.block_dir("clip")
    model = load_model(directory, ctx.device)
    templates = json.loads((directory / "config.json").read_text()).get("templates") or list(TEMPLATES)
    return model, tuple(templates)


def content_net(cfg: CLIPstylerConfig, ctx: RunContext, clip: TextImageModel) -> tuple[nn.Module, str]:
    """VGG19 conv4_2/conv5_2 from the user's local file, else the CLIP-token substitute."""
    c = cfg.content
    if c.features == "vgg" or (c.features == "auto" and c.vgg_path):
        assert c.vgg_path is not None
        return load_vgg(ctx.root / c.vgg_path).to(ctx.device), "vgg"
    return ClipContent(clip), "clip"


def unit_seed(cfg: CLIPstylerConfig, text: int, content: int) -> int:
    return cfg.seed * 1_000_003 + text * 1009 + content


def train(cfg: CLIPstylerConfig, ctx: RunContext) -> None:
    """Run (or resume) every optimisation, save the outputs, export the served model."""
    if cfg.threads and ctx.device.type == "cpu":
        torch.set_num_threads(cfg.threads)
    clip, templates = load_clip(ctx)
    cnet, kind = content_net(cfg, ctx, clip)
    styler = Styler(clip, cnet, templates, cfg.style, amp=ctx.use_amp)
    contents = load_split(ctx.data_dir, "eval").to(ctx.device)
    texts, ms = list(cfg.eval.texts), methods(cfg)
    ckpt = Checkpointer(ctx.checkpoint_dir, config_hash(cfg, exclude={"device"}))
    state: dict[str, Any] = {"outputs": {}, "fast": {}, "curves": {}}
    if (resumed := ckpt.latest()) is not None:
        state = resumed["state"]
        ctx.log.info("resuming clipstyler at unit %d", int(resumed["step"]))
    if cfg.variant == "per_image":
        units = [(t, c, m) for t in range(len(texts)) for c in range(len(contents)) for m in ms]
    else:
        units = [(t, -1, m) for t in range(len(texts)) for m in ms]
    first = int(resumed["step"]) if resumed else 0
    base: dict[str, torch.Tensor] | None = None
    for i in ctx.progress(range(first, len(units)), total=len(units), desc="clipstyler", initial=first):
        t, c, m = units[i]
        key = f"{m}/{t}/{c}" if c >= 0 else f"{m}/{t}"
        if c >= 0:
            out, hist = styler.stylize(contents[c : c + 1], texts[t], unit_seed(cfg, t, c), ABLATIONS[m])
            state["outputs"][key] = out[0].cpu()
            state["curves"][key] = torch.tensor([h["total"] for h in hist])
        else:
            if base is None:
                base = fast_base(cfg, ctx)
            net = StyleNet(cfg.style.ngf).to(ctx.device)
            net.load_state_dict(base)
            hist_f = fast_train(
                styler,
                net,
                load_split(ctx.data_dir, "train").to(ctx.device),
                texts[t],
                cfg.fast,
                unit_seed(cfg, t, 0),
                ABLATIONS[m],
            )
            net.eval()
            with torch.no_grad():
                outs = net(contents)
            for j in range(len(contents)):
                state["outputs"][f"{m}/{t}/{j}"] = outs[j].cpu()
            if m == "full":
                state["fast"][str(t)] = {k: v.cpu() for k, v in net.state_dict().items()}
            state["curves"][key] = torch.tensor(hist_f)
        ctx.logger.log_metrics({"loss/final": float(state["curves"][key][-1])}, step=i + 1)
        ckpt.save(i + 1, state, cfg.model_dump(mode="json"))
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in state["outputs"].items()}, str(ctx.model_root / OUTPUTS))
    export(cfg, ctx, clip, cnet, kind, templates, state["fast"])


def fast_base(cfg: CLIPstylerConfig, ctx: RunContext) -> dict[str, torch.Tensor]:
    """The fast variant's starting network: StyleNet pre-trained to reproduce the training contents."""
    torch.manual_seed(cfg.seed)
    net = StyleNet(cfg.style.ngf).to(ctx.device)
    train_set = load_split(ctx.data_dir, "train").to(ctx.device)
    pretrain_reconstruction(
        net, train_set, cfg.fast, cfg.seed, min(cfg.data.size, cfg.style.crop_size * 2 // 8 * 8 or 8)
    )
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


def export(
    cfg: CLIPstylerConfig,
    ctx: RunContext,
    clip: TextImageModel,
    cnet: nn.Module,
    kind: str,
    templates: tuple[str, ...],
    fast: dict[str, dict[str, torch.Tensor]],
) -> Path:
    weights = {f"clip.{k}": v for k, v in clip.clip.state_dict().items()}
    if kind == "vgg":
        weights |= {f"vgg.{k}": v for k, v in cnet.state_dict().items()}
    for t, sd in fast.items():
        weights |= {f"fast.{t}.{k}": v for k, v in sd.items()}
    config = {
        "paper": "clipstyler",
        "variant": cfg.variant,
        "size": cfg.data.size,
        "content_features": kind,
        "clip": clip.config(),
        "templates": list(templates),
        "style": cfg.style.model_dump(mode="json"),
        "texts": list(cfg.eval.texts),
    }
    return export_model(ctx.model_dir, weights, config)
