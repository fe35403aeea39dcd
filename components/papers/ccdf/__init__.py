"""CCDF: Come-Closer-Diffuse-Faster (arXiv 2112.05146).

"Come-Closer-Diffuse-Faster: Accelerating Conditional Diffusion Models for Inverse Problems
through Stochastic Contraction", Chung, Sim and Ye, CVPR 2022. The official repository the paper
names has no public snapshot we could read; nothing here is taken from it (README.md: sources).
Start the reverse diffusion not from noise but from a forward-diffused initial estimate at t0
(N' = t0 N steps), with a non-expansive data-consistency map after every step: super-resolution,
inpainting and CS-MRI in ~20 steps. See README.md in this folder.
"""

from components.contract import Paper
from components.papers.ccdf.config import CCDFConfig
from components.papers.ccdf.data import prepare
from components.papers.ccdf.evaluate import evaluate, gate
from components.papers.ccdf.model import load
from components.papers.ccdf.predict import example_input, predict
from components.papers.ccdf.train import train

PAPER = Paper(
    name="ccdf",
    arxiv="2112.05146",
    title=(
        "Come-Closer-Diffuse-Faster: Accelerating Conditional Diffusion Models"
        " for Inverse Problems through Stochastic Contraction"
    ),
    config=CCDFConfig,
    prepare=prepare,
    train=train,
    evaluate=evaluate,
    gate=gate,
    load=load,
    predict=predict,
    example_input=example_input,
    headline=("*/gate/d_noise",),
)
