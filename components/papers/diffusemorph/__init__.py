"""DiffuseMorph (arXiv 2112.05149).

"DiffuseMorph: Unsupervised Deformable Image Registration Using Diffusion Model", Kim, Han and Ye,
ECCV 2022. Official code: DiffuseMorph/DiffuseMorph (model/diffusion_net_2D/, deformation_net_2D.py).
A DDPM score network on [M, F, x_t] feeds a deformation network on [M, eps_hat]; scaling the score
by eta in [0, 1] gives a continuum of deformations. See README.md.
"""

from components.contract import Paper
from components.papers.diffusemorph.config import DiffuseMorphConfig
from components.papers.diffusemorph.data import prepare
from components.papers.diffusemorph.evaluate import evaluate, gate
from components.papers.diffusemorph.model import load
from components.papers.diffusemorph.predict import example_input, predict
from components.papers.diffusemorph.train import train

PAPER = Paper(
    name="diffusemorph",
    arxiv="2112.05149",
    title="DiffuseMorph: Unsupervised Deformable Image Registration Using Diffusion Model",
    config=DiffuseMorphConfig,
    prepare=prepare,
    train=train,
    evaluate=evaluate,
    gate=gate,
    load=load,
    predict=predict,
    example_input=example_input,
    headline=("diffusemorph/dice", "gate/dice_minus_identity", "gate/dice_minus_voxelmorph", "diffusemorph/folding"),
)
