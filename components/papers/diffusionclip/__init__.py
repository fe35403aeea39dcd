"""DiffusionCLIP (arXiv 2110.02711).

"DiffusionCLIP: Text-Guided Diffusion Models for Robust Image Manipulation", Kim, Kwon and Ye,
CVPR 2022; official code gwang-kim/DiffusionCLIP. A real image is inverted to the latent x_t0 of a
DDPM by deterministic DDIM inversion, and the score model is fine-tuned so that the DDIM generation
from that latent moves toward a target text along the directional CLIP loss, with an L1 term that
keeps the rest of the image; the fine-tuned models' noises are mixed with the original's (degree)
and with each other's (several attributes). The text-image model is the project's CLIP block
(``models/blocks/clip``). See README.md in this folder.
"""

from components.contract import Paper
from components.papers.diffusionclip.config import DiffusionCLIPConfig
from components.papers.diffusionclip.data import prepare
from components.papers.diffusionclip.evaluate import evaluate, gate
from components.papers.diffusionclip.model import load
from components.papers.diffusionclip.predict import example_input, predict
from components.papers.diffusionclip.train import train

PAPER = Paper(
    name="diffusionclip",
    arxiv="2110.02711",
    title="DiffusionCLIP: Text-Guided Diffusion Models for Robust Image Manipulation",
    config=DiffusionCLIPConfig,
    prepare=prepare,
    train=train,
    evaluate=evaluate,
    gate=gate,
    load=load,
    predict=predict,
    example_input=example_input,
    headline=(
        "gate/recon_mae",
        "gate/recon_stoch_minus_ddim",
        "edit/*/d_score",
        "edit/*/d_judge",
        "edit/*/drift",
    ),
)
