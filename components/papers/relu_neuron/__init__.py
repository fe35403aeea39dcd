"""Support vectors and gradient dynamics of single-neuron ReLU networks (arXiv 2202.05510).

Lee, Sim and Ye (2022). The gradient flow of one ReLU neuron on the square loss, integrated
exactly between activation changes, and the study of its implicit bias (support vectors), of the
norm of the weight along the flow by initialisation scale, and of convergence in d = 2, with the
linear neuron as the contrast. See README.md in this folder.
"""

from components.contract import Paper
from components.papers.relu_neuron.config import ReluNeuronConfig
from components.papers.relu_neuron.data import prepare
from components.papers.relu_neuron.evaluate import evaluate, gate
from components.papers.relu_neuron.model import load
from components.papers.relu_neuron.predict import example_input, predict
from components.papers.relu_neuron.train import train

PAPER = Paper(
    name="relu_neuron",
    arxiv="2202.05510",
    title="Support Vectors and Gradient Dynamics of Single-Neuron ReLU Networks",
    config=ReluNeuronConfig,
    prepare=prepare,
    train=train,
    evaluate=evaluate,
    gate=gate,
    load=load,
    predict=predict,
    example_input=example_input,
    headline=("inside_small_all", "gd_max_relative_gap"),
)
