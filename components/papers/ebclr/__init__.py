"""EBCLR: Energy-Based Contrastive Learning of Visual Representations (arXiv 2202.04933).

Kim and Ye, NeurIPS 2022; official code 1202kbs/EBCLR. Contrastive learning as a joint energy model
of positive pairs: SimCLR's discriminative term plus a generative term whose negatives come from a
clamped, count-annealed SGLD with a persistent replay buffer. Compared here, over seeds and at matched
optimiser steps, with its lambda2 = 0 ablation (NT-Xent only, same network), SimCLR and MoCo v2 by
linear-probe and k-NN accuracy against the random-init floor. See README.md in this folder.
"""

from components.contract import Paper
from components.papers.ebclr.config import EBCLRPaperConfig
from components.papers.ebclr.data import prepare
from components.papers.ebclr.evaluate import evaluate, gate
from components.papers.ebclr.model import load
from components.papers.ebclr.predict import example_input, predict
from components.papers.ebclr.train import train

PAPER = Paper(
    name="ebclr",
    arxiv="2202.04933",
    title="Energy-Based Contrastive Learning of Visual Representations",
    config=EBCLRPaperConfig,
    prepare=prepare,
    train=train,
    evaluate=evaluate,
    gate=gate,
    load=load,
    predict=predict,
    example_input=example_input,
    headline=("b*/ebclr/probe_acc/mean", "b*/ebclr_minus_floor/mean"),
)
