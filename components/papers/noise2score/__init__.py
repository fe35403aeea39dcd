"""Noise2Score with Tweedie distributions (arXiv 2112.03696).

"Noise Distribution Adaptive Self-Supervised Image Denoising using Tweedie Distribution and Score
Matching", Kim, Kwon and Ye, CVPR 2022; official code cubeyoung/NoiseAdaptive2Score. A score
network trained by AR-DAE on noisy images only, the closed-form Tweedie denoisers, and blind
estimation of the noise model from the score network itself. See README.md in this folder.
"""

from components.contract import Paper
from components.papers.noise2score.config import Noise2ScoreConfig
from components.papers.noise2score.data import prepare
from components.papers.noise2score.evaluate import evaluate, gate
from components.papers.noise2score.model import load
from components.papers.noise2score.predict import denoise, example_input
from components.papers.noise2score.train import train

PAPER = Paper(
    name="noise2score",
    arxiv="2112.03696",
    title="Noise Distribution Adaptive Self-Supervised Image Denoising using Tweedie Distribution and Score Matching",
    config=Noise2ScoreConfig,
    prepare=prepare,
    train=train,
    evaluate=evaluate,
    gate=gate,
    load=load,
    predict=denoise,
    example_input=example_input,
    headline=("gaussian_25/n2s-noisy", "gaussian_25/n2s-gauss", "gaussian_25/n2s-bm3d", "family_accuracy"),
)
