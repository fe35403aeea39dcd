"""The per-image optimisation of CLIPstyler (official train_CLIPstyler.py main loop) and the fast
variant's per-text training (train_fast.py), with the ablation switches of the paper's Fig. 7.

``Styler`` holds the frozen CLIP block, the content-feature network and the template-averaged text
embeddings; ``stylize`` optimises a fresh StyleNet (Adam, StepLR) for ``iterations`` steps on one
content image and returns the output f(I_c) in [0, 1]:

    L = lambda_patch L_patch + lambda_dir L_dir + lambda_c L_c + lambda_tv L_tv       (Eq. 7)

Ablations: ``patch=False`` drops L_patch (global directional loss only), ``thresh=None`` keeps every
patch (no threshold rejection), ``augment=False`` scores the raw crops (no perspective augmentation).
All random draws (StyleNet initialisation, crop positions, perspectives) come from torch's global RNG
forked and seeded per call, so a call is a pure function of its arguments and seed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from components.blocks.clip.losses import directional_loss, template_embedding
from components.blocks.clip.model import TextImageModel
from components.papers.clipstyler.config import FastConfig, StyleConfig
from components.papers.clipstyler.losses import content_loss, patch_loss, random_patches, tv_loss
from components.papers.clipstyler.model import StyleNet

StopCheck = Callable[[], bool] | None
Progress = Callable[[int, int], None] | None


@dataclass(frozen=True)
class Ablation:
    """Which parts of the loss are on (the full loss: all)."""

    patch: bool = True
    thresh: bool = True
    augment: bool = True


ABLATIONS: dict[str, Ablation] = {
    "full": Ablation(),
    "no_patch": Ablation(patch=False),
    "no_thresh": Ablation(thresh=False),
    "no_aug": Ablation(augment=False),
}


class Styler:
    """Frozen encoders and the text embeddings of the optimisation."""

    def __init__(
        self,
        clip: TextImageModel,
        content_net: nn.Module,
        templates: Sequence[str],
        style: StyleConfig,
        amp: bool = False,
    ) -> None:
        self.clip, self.content_net, self.templates, self.style = clip, content_net, tuple(templates), style
        self.amp = amp  # bfloat16 autocast of the forward passes on CUDA (no loss scaling needed)
        self._text: dict[str, torch.Tensor] = {}

    def text(self, phrase: str) -> torch.Tensor:
        """Template-averaged E_T (official compose_text_with_templates + mean + normalise)."""
        if phrase not in self._text:
            with torch.no_grad():
                self._text[phrase] = template_embedding(self.clip, phrase, self.templates)
        return self._text[phrase]

    def direction(self, text: str) -> torch.Tensor:
        """dT = E_T(t_sty) - E_T(t_src), normalised (official text_direction)."""
        return F.normalize(self.text(text) - self.text(self.style.source), dim=-1)

    def losses(
        self,
        out: torch.Tensor,
        content_feats: list[torch.Tensor],
        content_emb: torch.Tensor,
        direction: torch.Tensor,
        ablation: Ablation,
        crop_size: int | None = None,
        num_crops: int | None = None,
    ) -> dict[str, torch.Tensor]:
        """The four terms of Eq. 7 for one output batch ``out`` (B, 3, H, W) of one content image each."""
        s = self.style
        terms = {
            "content": content_loss(self.content_net(out), content_feats),
            "dir": directional_loss(self.clip.encode_image(out), content_emb, direction).mean(),
            "tv": tv_loss(out),
        }
        if ablation.patch and s.lambda_patch > 0:
            crops = torch.cat(
                [
                    random_patches(
                        o[None], num_crops or s.num_crops, crop_size or s.crop_size, ablation.augment, s.distortion
                    )
                    for o in out
                ]
            )
            emb = content_emb.repeat_interleave(num_crops or s.num_crops, dim=0)
            terms["patch"] = patch_loss(
                self.clip.encode_image(crops), emb, direction, s.thresh if ablation.thresh else None
            )
        else:
            terms["patch"] = torch.zeros(())
        return terms

    def stylize(
        self,
        content: torch.Tensor,
        text: str,
        seed: int,
        ablation: Ablation = ABLATIONS["full"],
        iterations: int | None = None,
        should_stop: StopCheck = None,
        progress: Progress = None,
    ) -> tuple[torch.Tensor, list[dict[str, float]]]:
        """Optimise a fresh StyleNet on ``content`` ``(1, 3, H, W)`` in [0, 1] toward ``text``.

        Returns the output ``(1, 3, H, W)`` and the per-iteration loss terms.
        Raises TimeoutError when ``should_stop`` says so (polled every iteration).
        """
        s = self.style
        steps = s.iterations if iterations is None else iterations
        device = content.device
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            net = StyleNet(s.ngf).to(device)
            opt = torch.optim.Adam(net.parameters(), lr=s.lr)
            sched = torch.optim.lr_scheduler.StepLR(opt, step_size=s.lr_step, gamma=s.lr_gamma)
            with torch.no_grad():
                ref_feats = [f.detach() for f in self.content_net(content)]
                ref_emb = self.clip.encode_image(content)
            direction = self.direction(text)
            history: list[dict[str, float]] = []
            for it in range(steps):
                if should_stop is not None and should_stop():
                    raise TimeoutError("the stylisation stopped")
                with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.amp and device.type == "cuda"):
                    out = net(content)
                    t = self.losses(out, ref_feats, ref_emb, direction, ablation)
                t = {k: v.float() for k, v in t.items()}
                total = (
                    s.lambda_patch * t["patch"]
                    + s.lambda_dir * t["dir"]
                    + s.lambda_c * t["content"]
                    + s.lambda_tv * t["tv"]
                )
                opt.zero_grad(set_to_none=True)
                total.backward()
                opt.step()
                sched.step()
                history.append({k: float(v.detach()) for k, v in t.items()} | {"total": float(total.detach())})
                if progress is not None:
                    progress(it + 1, steps)
            with torch.no_grad():
                result = net(content)
        return result.detach(), history


def fast_train(
    styler: Styler,
    net: StyleNet,
    contents: torch.Tensor,
    text: str,
    fast: FastConfig,
    seed: int,
    ablation: Ablation = ABLATIONS["full"],
    should_stop: StopCheck = None,
) -> list[float]:
    """train_fast.py: fine-tune ``net`` (in place) on batches of ``contents`` toward ``text``.

    Loss per batch: content_weight L_c + clip_weight L_patch(views of the whole output, thresholded)
    + glob_weight L_dir + tv_weight L_tv; Adam with lr / (1 + lr_decay i) (``adjust_learning_rate``).
    The augmented views are RandomPerspective of the whole output (official: ``augment_trans(out_img)``
    repeated 16 times), the source embedding each content's own.
    """
    s = styler.style
    history: list[float] = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        opt = torch.optim.Adam(net.parameters(), lr=fast.lr)
        direction = styler.direction(text)
        for i in range(fast.iterations):
            if should_stop is not None and should_stop():
                raise TimeoutError("the fast training stopped")
            for g in opt.param_groups:
                g["lr"] = fast.lr / (1.0 + fast.lr_decay * i)
            idx = torch.randint(0, len(contents), (fast.batch_size,))
            x = contents[idx]
            out = net(x)
            with torch.no_grad():
                ref_feats = [f.detach() for f in styler.content_net(x)]
                ref_emb = styler.clip.encode_image(x)
            side = out.shape[-1]
            terms = {
                "content": content_loss(styler.content_net(out), ref_feats),
                "dir": directional_loss(styler.clip.encode_image(out), ref_emb, direction).mean(),
                "tv": tv_loss(out),
            }
            if ablation.patch:
                views = torch.cat(
                    [random_patches(o[None], fast.views, side, ablation.augment, s.distortion) for o in out]
                )
                emb = ref_emb.repeat_interleave(fast.views, dim=0)
                terms["patch"] = patch_loss(
                    styler.clip.encode_image(views), emb, direction, s.thresh if ablation.thresh else None
                )
            else:
                terms["patch"] = torch.zeros(())
            total = (
                fast.content_weight * terms["content"]
                + fast.clip_weight * terms["patch"]
                + fast.glob_weight * terms["dir"]
                + fast.tv_weight * terms["tv"]
            )
            opt.zero_grad(set_to_none=True)
            total.backward()
            opt.step()
            history.append(float(total.detach()))
    return history


def pretrain_reconstruction(net: StyleNet, contents: torch.Tensor, fast: FastConfig, seed: int, crop: int) -> None:
    """The fast variant starts from a network that reproduces its input (official: a pretrained AdaIN
    decoder); here ``pretrain_steps`` of L1 reconstruction on random ``crop`` crops of the contents."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        opt = torch.optim.Adam(net.parameters(), lr=fast.pretrain_lr)
        _, _, h, w = contents.shape
        for _ in range(fast.pretrain_steps):
            idx = torch.randint(0, len(contents), (fast.batch_size,))
            top, left = int(torch.randint(0, h - crop + 1, (1,))), int(torch.randint(0, w - crop + 1, (1,)))
            x = contents[idx, :, top : top + crop, left : left + crop]
            loss = (net(x) - x).abs().mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
