"""FeSTA: federated split task-agnostic learning with a vision transformer (arXiv 2111.01338).

"Federated Split Vision Transformer for COVID-19 CXR Diagnosis using Task-Agnostic Training"
(NeurIPS 2021: "Federated Split Task-Agnostic Vision Transformer for COVID-19 CXR Diagnosis"),
Park, Kim, Kim, Kim and Ye. Clients hold task-specific CNN heads and tails (classification,
severity, segmentation), the server a shared transformer body; clients and server are separate
processes exchanging smashed data and gradients over torch.distributed (gloo); heads and tails are
FedAvg-ed within a task; a final stage fine-tunes the tails with the body frozen. Compared, paired
by seed, with local-only training, whole-model FedAvg and centralised training. See README.md.
"""

from components.contract import Paper
from components.papers.festa.config import FeSTAConfig
from components.papers.festa.data import prepare
from components.papers.festa.evaluate import evaluate, gate
from components.papers.festa.predict import example_input, load, predict
from components.papers.festa.train import train

PAPER = Paper(
    name="festa",
    arxiv="2111.01338",
    title="Federated Split Vision Transformer for COVID-19 CXR Diagnosis using Task-Agnostic Training",
    config=FeSTAConfig,
    prepare=prepare,
    train=train,
    evaluate=evaluate,
    gate=gate,
    load=load,
    predict=predict,
    example_input=example_input,
    headline=(
        "festa-local/cls_auc",
        "festa-local/seg_dice",
        "festa-local/sev_mae",
        "festa-fedavg/*_auc",
        "festa-fedavg/seg_dice",
        "festa/bytes_per_round",
        "fedavg/bytes_per_round",
    ),
)
