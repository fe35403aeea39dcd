"""Switchable CycleGAN for tunable 3-D ultrasound image quality (arXiv 2112.02896).

One AdaIN-switchable residual U-Net generator serves both CycleGAN directions (public alpha = 1:
low -> high quality, alpha = 0: back; the network runs the official assignment, where its plain
instance-norm path enhances) and intermediate alpha tunes the enhancement continuously; trained
unpaired between the slices of 3-D volumes and high-quality 2-D images. Architecture and defaults
from the official code YSerin/TMI_SwitchableCycleGAN (networks/adain.py, Model.py, train.py).
Compared with a plain two-generator CycleGAN and Richardson-Lucy. See README.md in this folder.
"""

from components.contract import Paper
from components.papers.switchable_cyclegan.config import SwitchableCycleGANConfig
from components.papers.switchable_cyclegan.data import prepare
from components.papers.switchable_cyclegan.evaluate import evaluate, gate
from components.papers.switchable_cyclegan.model import load
from components.papers.switchable_cyclegan.predict import example_input, predict
from components.papers.switchable_cyclegan.train import train

PAPER = Paper(
    name="switchable_cyclegan",
    arxiv="2112.02896",
    title="Switchable CycleGAN for continuously tunable 3-D ultrasound image quality",
    config=SwitchableCycleGANConfig,
    prepare=prepare,
    train=train,
    evaluate=evaluate,
    gate=gate,
    load=load,
    predict=predict,
    example_input=example_input,
    headline=("alpha_1/d_psnr", "vs_cyclegan/d_psnr", "vs_rl/d_psnr", "monotone/psnr_worst_step_z"),
)
