"""CLIPstyler's losses (Kwon & Ye 2022, Sec. 3.2-3.3; official train_CLIPstyler.py), pure functions.

Notation: I_cs = f(I_c) the StyleNet output for content I_c; E_I, E_T the CLIP block's encoders
(normalised); t_src = "a Photo", t_sty the style text, both averaged over prompt templates.

* Directional CLIP loss (Eq. 3): dT = E_T(t_sty) - E_T(t_src), dI = E_I(I_cs) - E_I(I_c),
  L_dir = 1 - cos(dI, dT) (``components.blocks.clip.losses.directional_loss``).
* PatchCLIP loss (Eq. 5-6): N random crops of I_cs, each through a random perspective augmentation
  (torchvision ``RandomPerspective(distortion_scale=0.5, p=1, fill=0)``), each against the *whole*
  content image's embedding (official ``source_features``):
  l_i = 1 - cos(E_I(aug(crop_i)) - E_I(I_c), dT); R(l_i, tau) = 0 if l_i < tau else l_i (tau 0.7,
  the threshold rejection that stops over-stylising single patches); L_patch = mean_i R(l_i, tau).
* Content loss (Eq. 4 context, official code): sum over feature layers of the mean squared
  difference of features of I_cs and I_c (VGG19 conv4_2 + conv5_2, or the stated substitute).
* Total variation (official ``get_image_prior_losses``): the sum of the L2 norms of horizontal,
  vertical and both diagonal pixel differences.
* Total (Eq. 7): lambda_patch L_patch + lambda_dir L_dir + lambda_c L_c + lambda_tv L_tv with
  9000 / 500 / 150 / 2e-3.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torchvision.transforms import RandomPerspective

from components.blocks.clip.losses import directional_loss


def tv_loss(images: torch.Tensor) -> torch.Tensor:
    """Official ``get_image_prior_losses``: ||dx|| + ||dy|| + ||d_diag1|| + ||d_diag2|| (Frobenius)."""
    d1 = images[:, :, :, :-1] - images[:, :, :, 1:]
    d2 = images[:, :, :-1, :] - images[:, :, 1:, :]
    d3 = images[:, :, 1:, :-1] - images[:, :, :-1, 1:]
    d4 = images[:, :, :-1, :-1] - images[:, :, 1:, 1:]
    return d1.norm() + d2.norm() + d3.norm() + d4.norm()


def content_loss(feats: list[torch.Tensor], ref: list[torch.Tensor]) -> torch.Tensor:
    """Sum over layers of the mean squared feature difference (official: conv4_2 + conv5_2)."""
    return sum((torch.mean((f - r) ** 2) for f, r in zip(feats, ref, strict=True)), torch.zeros(()))


def threshold_reject(losses: torch.Tensor, thresh: float | None) -> torch.Tensor:
    """R(l, tau): per-patch losses below ``thresh`` set to 0 (official ``loss_temp[loss_temp<thresh]=0``)."""
    if thresh is None:
        return losses
    return torch.where(losses < thresh, torch.zeros_like(losses), losses)


def patch_loss(
    crop_feats: torch.Tensor, content_feat: torch.Tensor, direction: torch.Tensor, thresh: float | None
) -> torch.Tensor:
    """L_patch (Eq. 6): mean over crops of R(1 - cos(E_I(crop) - E_I(I_c), dT), tau)."""
    per = directional_loss(crop_feats, content_feat.expand_as(crop_feats), direction)
    return threshold_reject(per, thresh).mean()


def perspective_coeffs(start: torch.Tensor, end: torch.Tensor) -> torch.Tensor:
    """Batched torchvision ``_get_perspective_coeffs``: corners ``(N, 4, 2)`` x2 -> ``(N, 8)`` float32.

    (a..h) with (x, y) -> ((a x + b y + c) / (g x + h y + 1), (d x + e y + f) / (g x + h y + 1)) mapping
    output pixels (end points) to input pixels (start points); least squares in float64 (gels).
    """
    e, s = end.double(), start.double()
    n = e.shape[0]
    a = torch.zeros(n, 8, 8, dtype=torch.float64)
    one, zero = torch.ones(n, 4, dtype=torch.float64), torch.zeros(n, 4, dtype=torch.float64)
    ex, ey, sx, sy = e[..., 0], e[..., 1], s[..., 0], s[..., 1]
    a[:, 0::2] = torch.stack([ex, ey, one, zero, zero, zero, -sx * ex, -sx * ey], dim=-1)
    a[:, 1::2] = torch.stack([zero, zero, zero, ex, ey, one, -sy * ex, -sy * ey], dim=-1)
    return torch.linalg.lstsq(a, s.reshape(n, 8), driver="gels").solution.float()


def perspective(images: torch.Tensor, coeffs: torch.Tensor) -> torch.Tensor:
    """Batched torchvision ``F.perspective(img, ..., BILINEAR, fill=0)``: each image its own coefficients.

    The same grid as torchvision's ``_perspective_grid`` (pixel centres, align_corners=False) and its
    fill rule (the sample times the sampled validity mask). ``(N, C, H, W), (N, 8) -> (N, C, H, W)``.
    """
    n, _, oh, ow = images.shape
    dev, dt = images.device, images.dtype
    c = coeffs.to(dev, dt)
    xs = torch.linspace(0.5, ow - 0.5, ow, device=dev, dtype=dt)
    ys = torch.linspace(0.5, oh - 0.5, oh, device=dev, dtype=dt)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    gx, gy = gx[None], gy[None]
    den = c[:, 6, None, None] * gx + c[:, 7, None, None] * gy + 1.0
    x_in = (c[:, 0, None, None] * gx + c[:, 1, None, None] * gy + c[:, 2, None, None]) / den
    y_in = (c[:, 3, None, None] * gx + c[:, 4, None, None] * gy + c[:, 5, None, None]) / den
    grid = torch.stack([x_in / (0.5 * ow) - 1.0, y_in / (0.5 * oh) - 1.0], dim=-1)
    # where the denominator vanishes (a pixel on the horizon of a strong perspective) torchvision's grid
    # is infinite and grid_sample answers NaN; such a pixel is outside the image: the fill value 0
    grid = torch.nan_to_num(grid, nan=-4.0, posinf=-4.0, neginf=-4.0).clamp(-4.0, 4.0)
    ones = torch.ones(n, 1, oh, ow, device=dev, dtype=dt)
    sampled = F.grid_sample(
        torch.cat([images, ones], 1), grid, mode="bilinear", padding_mode="zeros", align_corners=False
    )
    return sampled[:, :-1] * sampled[:, -1:]


def random_patches(image: torch.Tensor, count: int, size: int, augment: bool, distortion: float = 0.5) -> torch.Tensor:
    """``count`` random ``size`` crops of a ``(1, 3, H, W)`` image (official ``RandomCrop``), each then
    (``augment``) through its own ``RandomPerspective(distortion, p=1, fill=0)`` as the official loop
    does, batched (``perspective``). Draws from torch's global RNG (callers seed it). Differentiable in
    the image. -> ``(count, 3, size, size)``."""
    _, _, h, w = image.shape
    if size > min(h, w):
        raise ValueError(f"crop size {size} is larger than the image {h}x{w}")
    tops = torch.randint(0, h - size + 1, (count,))
    lefts = torch.randint(0, w - size + 1, (count,))
    ar = torch.arange(size)
    rows = (tops[:, None] + ar)[:, :, None].expand(count, size, size)
    cols = (lefts[:, None] + ar)[:, None, :].expand(count, size, size)
    crops = image[0][:, rows, cols].permute(1, 0, 2, 3)  # (count, 3, size, size)
    if not augment:
        return crops
    corners = [RandomPerspective.get_params(size, size, distortion) for _ in range(count)]
    start = torch.tensor([c[0] for c in corners], dtype=torch.float64)
    end = torch.tensor([c[1] for c in corners], dtype=torch.float64)
    return perspective(crops, perspective_coeffs(start, end))
