"""Performance analysis of fractional learning algorithms (arXiv 2110.05201).

Wahab, Khan, Naseem and Ye, IEEE Transactions on Signal Processing 70 (2022). LMS, NLMS, the
fractional LMS family (published, remedied, normalised, momentum) and fractional steepest descent,
vectorised over Monte-Carlo runs; the study of their kinks and of whether the fractional term buys
anything over a tuned LMS. See README.md in this folder.
"""

from components.contract import Paper
from components.papers.fractional_lms.config import FractionalLMSConfig
from components.papers.fractional_lms.data import prepare
from components.papers.fractional_lms.evaluate import evaluate, gate
from components.papers.fractional_lms.model import load
from components.papers.fractional_lms.predict import example_input, predict
from components.papers.fractional_lms.train import train

PAPER = Paper(
    name="fractional_lms",
    arxiv="2110.05201",
    title="Performance Analysis of Fractional Learning Algorithms",
    config=FractionalLMSConfig,
    prepare=prepare,
    train=train,
    evaluate=evaluate,
    gate=gate,
    load=load,
    predict=predict,
    example_input=example_input,
    headline=("published_min_broken_fraction", "remedied_max_speed_ratio_upper95"),
)
