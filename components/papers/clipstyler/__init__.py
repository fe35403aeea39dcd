"""CLIPstyler (arXiv 2112.00374).

"CLIPstyler: Image Style Transfer with a Single Text Condition", Kwon and Ye, CVPR 2022; official
code cyclomon/CLIPstyler. A light U-Net (StyleNet) is optimised on one content image so that its
output moves along the CLIP direction from "a Photo" to a style text: a patch-wise directional CLIP
loss over randomly cropped, perspective-augmented patches with threshold rejection, a global
directional loss, a content loss and total variation. The fast variant trains one network for all
contents per text. The text-image model is the project's CLIP block (``models/blocks/clip``) or real
CLIP weights named there. See README.md in this folder.
"""

from components.contract import Paper
from components.papers.clipstyler.config import CLIPstylerConfig
from components.papers.clipstyler.data import prepare
from components.papers.clipstyler.evaluate import evaluate, gate
from components.papers.clipstyler.predict import example_input, load, predict
from components.papers.clipstyler.train import train

PAPER = Paper(
    name="clipstyler",
    arxiv="2112.00374",
    title="CLIPstyler: Image Style Transfer with a Single Text Condition",
    config=CLIPstylerConfig,
    prepare=prepare,
    train=train,
    evaluate=evaluate,
    gate=gate,
    load=load,
    predict=predict,
    example_input=example_input,
    headline=("full/patch_clip", "d_*/patch_clip", "full/edge_ssim"),
)
