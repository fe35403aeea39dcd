"""The text-image block: losses on analytic cases, the model's interface, real-weight loading from a
file, offline tokenisation, training that resumes exactly, and the generated drawings."""

from __future__ import annotations

import math
import socket
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from components.blocks.clip.config import ClipConfig
from components.blocks.clip.losses import (
    class_embeddings,
    clip_loss,
    directional_loss,
    template_embedding,
    text_direction,
    zero_shot_probs,
)
from components.blocks.clip.model import (
    TextImageModel,
    build_clip,
    load_model,
    load_pretrained,
    named_arch,
    read_state_dict,
    save_model,
)
from components.blocks.data import drawings
from components.contract import RunContext

TINY = {
    "embed_dim": 16,
    "vision": {"layers": 1, "width": 16, "head_width": 8, "patch_size": 8, "image_size": 16},
    "text": {"context_length": 12, "vocab_size": 49408, "width": 16, "heads": 2, "layers": 1},
    "quick_gelu": True,
}


# Real CLIP checkpoints have 64-wide attention heads (heads do not show in the weights' shapes).
OPENAI_LIKE = {
    "embed_dim": 16,
    "vision": {"layers": 1, "width": 64, "head_width": 64, "patch_size": 8, "image_size": 16},
    "text": {"context_length": 12, "vocab_size": 49408, "width": 64, "heads": 1, "layers": 1},
    "quick_gelu": True,
}


def tiny_model(seed: int = 0, arch: dict | None = None) -> TextImageModel:
    torch.manual_seed(seed)
    arch = arch or TINY
    return TextImageModel(build_clip(arch), arch)


# ----------------------------------------------------------------------------------------- losses
def test_clip_loss_equals_open_clip_and_its_analytic_values() -> None:
    from open_clip.loss import ClipLoss

    gen = torch.Generator().manual_seed(0)
    img = F.normalize(torch.randn(6, 8, generator=gen), dim=-1)
    txt = F.normalize(torch.randn(6, 8, generator=gen), dim=-1)
    scale = torch.tensor(14.3)
    assert torch.allclose(clip_loss(img, txt, scale), ClipLoss()(img, txt, scale), atol=1e-6)
    # Zero temperature scale: uniform logits, the loss is ln N; perfectly matched one-hot pairs at a
    # large scale: the loss vanishes.
    assert clip_loss(img, txt, torch.tensor(0.0)).item() == pytest.approx(math.log(6), abs=1e-6)
    eye = torch.eye(6)
    assert clip_loss(eye, eye, torch.tensor(100.0)).item() < 1e-6


class Analytic:
    """An encoder pair with known outputs: each text maps to a fixed unit vector."""

    logit_scale = torch.tensor(10.0)

    def __init__(self, table: dict[str, torch.Tensor]) -> None:
        self.table = {k: F.normalize(v, dim=-1) for k, v in table.items()}

    def encode_text(self, texts):
        return torch.stack([self.table[t] for t in texts])

    def encode_image(self, images):
        return F.normalize(images.flatten(1), dim=-1)


def test_directional_loss_on_analytic_embeddings() -> None:
    d = F.normalize(torch.tensor([1.0, 2.0, 0.0]), dim=0)
    ref = torch.tensor([[0.0, 0.0, 1.0]])
    assert directional_loss(ref + 0.3 * d, ref, d).item() == pytest.approx(0.0, abs=1e-6)  # along dT
    assert directional_loss(ref + 5.0 * d, ref, d).item() == pytest.approx(0.0, abs=1e-6)  # scale-free
    assert directional_loss(ref - 0.3 * d, ref, d).item() == pytest.approx(2.0, abs=1e-6)  # against it
    ortho = torch.tensor([[2.0, -1.0, 0.0]])
    assert directional_loss(ref + ortho, ref, d).item() == pytest.approx(1.0, abs=1e-6)
    assert directional_loss(ref, ref, d).item() == pytest.approx(1.0)  # unchanged image: dI = 0
    # 45 degrees: 1 - cos(pi/4)
    half = F.normalize(d + F.normalize(ortho[0], dim=0), dim=0)
    assert directional_loss(ref + half, ref, d).item() == pytest.approx(1 - math.cos(math.pi / 4), abs=1e-6)


def test_template_averaging_and_text_direction() -> None:
    templates = ("a {}.", "the {}.")
    e = torch.eye(4)
    enc = Analytic({"a face.": e[0], "the face.": e[1], "a smiling face.": e[2], "the smiling face.": e[3]})
    assert torch.allclose(template_embedding(enc, "face", templates), F.normalize(e[0] + e[1], dim=0))
    expected = F.normalize(((e[2] - e[0]) + (e[3] - e[1])) / 2, dim=0)
    assert torch.allclose(text_direction(enc, "face", "smiling face", templates), expected)
    w = class_embeddings(enc, ["face", "smiling face"], templates)
    img = (e[2] + e[3])[None].reshape(1, 4)  # an "image" whose embedding is the smiling class
    probs = zero_shot_probs(enc, img, w)
    assert probs[0, 1] > 0.99 and torch.allclose(probs.sum(1), torch.ones(1))


# ------------------------------------------------------------------------------------------ model
def test_model_encodes_any_size_normalised_and_differentiable() -> None:
    model = tiny_model()
    x = torch.rand(3, 3, 40, 40, requires_grad=True)
    f = model.encode_image(x)
    assert f.shape == (3, 16) and torch.allclose(f.norm(dim=-1), torch.ones(3), atol=1e-5)
    f.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    t = model.encode_text(["a photo of a red circle.", "face"])
    assert t.shape == (2, 16) and torch.allclose(t.norm(dim=-1), torch.ones(2), atol=1e-5)
    with pytest.raises(ValueError, match="expected images"):
        model.encode_image(torch.rand(2, 1, 16, 16))


def test_tokenizer_and_model_need_no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    model = tiny_model()
    tokens = model.tokenize(["a photo of a smiling face."])
    assert tokens.shape == (1, 12)
    assert tokens[0, 0].item() == model.tokenizer.sot_token_id  # <start_of_text> = 49406
    assert model.tokenizer.eot_token_id in tokens[0].tolist()


def test_save_and_load_roundtrip(tmp_path: Path) -> None:
    model = tiny_model(1)
    save_model(model, tmp_path / "m", {"note": "x"})
    again = load_model(tmp_path / "m")
    x = torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(model.eval().encode_image(x), again.encode_image(x))
        assert torch.equal(model.encode_text(["red circle"]), again.encode_text(["red circle"]))
    assert not any(p.requires_grad for p in again.parameters())
    with pytest.raises(FileNotFoundError, match="build-block clip"):
        load_model(tmp_path / "missing")


@pytest.mark.parametrize("form", ["safetensors", "torch", "wrapped"])
def test_real_weights_from_a_file_infer_the_architecture(tmp_path: Path, form: str) -> None:
    """A randomly initialised CLIP written the ways CLIP weights are shipped loads back unchanged."""
    model = tiny_model(2, OPENAI_LIKE).eval()
    state = model.clip.state_dict()
    if form == "safetensors":
        from safetensors.torch import save_file

        path = tmp_path / "clip.safetensors"
        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    elif form == "torch":
        path = tmp_path / "clip.pt"
        torch.save(state, path)
    else:  # a training checkpoint: {"state_dict": {"module.<key>": ...}}
        path = tmp_path / "clip.bin"
        torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}, "epoch": 3}, path)
    loaded = load_pretrained(path, arch="auto", quick_gelu=True)
    assert loaded.arch["vision"]["patch_size"] == 8 and loaded.arch["vision"]["image_size"] == 16
    assert loaded.arch["text"]["layers"] == 1 and loaded.arch["embed_dim"] == 16
    x = torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        assert torch.allclose(loaded.encode_image(x), model.encode_image(x), atol=1e-6)
        assert torch.allclose(loaded.encode_text(["a cat"]), model.encode_text(["a cat"]), atol=1e-6)
    # the same losses run on it unchanged
    d = text_direction(loaded, "face", "smiling face", drawings.TEMPLATES[:3])
    assert directional_loss(loaded.encode_image(x), loaded.encode_image(x.flip(-1)), d).shape == (2,)


def test_unsafe_or_foreign_files_are_refused(tmp_path: Path) -> None:
    ts = tmp_path / "ViT-B-32.pt"  # the layout of a TorchScript archive (OpenAI's clip .pt files)
    with zipfile.ZipFile(ts, "w") as z:
        z.writestr("ViT-B-32/code/__torch__/model.py", "def forward(): ...")
        z.writestr("ViT-B-32/constants.pkl", b"")
    with pytest.raises(ValueError, match="TorchScript"):
        read_state_dict(ts)
    torch.save({"visual.nothing": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a CLIP state dict"):
        load_pretrained(tmp_path / "other.pt")
    with pytest.raises(FileNotFoundError):
        read_state_dict(tmp_path / "absent.safetensors")


def test_named_architectures_come_from_the_wheel_without_downloads() -> None:
    spec = named_arch("ViT-B-32", quick_gelu=True)
    assert spec["embed_dim"] == 512 and spec["vision"]["patch_size"] == 32 and spec["text"]["context_length"] == 77
    with pytest.raises(ValueError, match="download"):
        named_arch("mt5-base-ViT-B-32", quick_gelu=False)  # a Hugging Face text tower
    with pytest.raises(ValueError, match="not a model config"):
        named_arch("hf-hub:someone/some-clip", quick_gelu=False)


# --------------------------------------------------------------------------------------- training
def _cfg(steps: int, every: int) -> ClipConfig:
    return ClipConfig.model_validate(
        {
            "data": {"train_images": 64, "eval_images": 8, "size": 16},
            "model": {
                "embed_dim": 16,
                "image_size": 16,
                "patch_size": 8,
                "vision_width": 16,
                "vision_layers": 1,
                "vision_head_width": 8,
                "text_width": 16,
                "text_heads": 2,
                "text_layers": 1,
                "context_length": 16,
            },
            "train": {
                "steps": steps,
                "batch_size": 16,
                "lr": 2e-3,
                "warmup": 2,
                "checkpoint_every": every,
                "log_every": 2,
            },
        }
    )


def test_training_resumes_to_the_weights_of_an_uninterrupted_run(tmp_path: Path) -> None:
    from components.blocks.clip.train import train_clip

    bg = drawings.Backgrounds(names=("coffee",))
    cfg = _cfg(steps=6, every=3)
    full = train_clip(cfg, RunContext("blocks/clip", tmp_path / "a"), bg)
    ctx = RunContext("blocks/clip", tmp_path / "b")
    train_clip(cfg, ctx, bg)
    last = sorted(ctx.checkpoint_dir.glob("step-*.pt"))
    assert [p.name[:13] for p in last] == ["step-00000003", "step-00000006"]
    last[-1].unlink()  # as if killed after the checkpoint of step 3
    resumed = train_clip(cfg, ctx, bg)
    for (k, a), b in zip(full.clip.state_dict().items(), resumed.clip.state_dict().values(), strict=True):
        assert torch.equal(a, b), k


def test_contrastive_training_lowers_the_loss(tmp_path: Path) -> None:
    from components.blocks.clip.train import train_clip

    bg = drawings.Backgrounds(names=("coffee",))
    ctx = RunContext("blocks/clip", tmp_path)
    cfg = _cfg(steps=40, every=100)
    model = train_clip(cfg, ctx, bg)
    flat = torch.load(sorted(ctx.checkpoint_dir.glob("*.pt"))[-1], weights_only=True)["state"]["history"]
    losses = flat[1::2]
    assert losses[-1] < losses[0] - 0.3, losses
    assert model.logit_scale.item() <= cfg.train.max_logit_scale + 1e-4


# --------------------------------------------------------------------------------------- drawings
def test_drawings_are_deterministic_bounded_and_respect_held_out_pairs() -> None:
    bg = drawings.Backgrounds(names=("coffee", "moon"))
    held = [("red", "circle"), ("blue", "smiling")]
    a = drawings.make_set(120, 16, 3, exclude=held, bg=bg)
    b = drawings.make_set(120, 16, 3, exclude=held, bg=bg)
    assert np.array_equal(a.images, b.images) and a.attrs == b.attrs
    assert a.images.dtype == np.float32 and a.images.min() >= 0 and a.images.max() <= 1
    assert not {drawings.pair_of(x) for x in a.attrs} & set(held)
    only = drawings.make_set(20, 16, 4, only=held, bg=bg)
    assert {drawings.pair_of(x) for x in only.attrs} <= set(held)
    rng = np.random.default_rng(0)
    for x in a.attrs:
        text = drawings.phrase(x)  # the full phrase names every attribute
        assert all(v in text for k, v in x.items() if k in ("colour", "shape", "mood"))
        assert drawings.caption(x, rng).endswith(".")


def test_a_smile_sags_in_the_middle_and_a_frown_rises() -> None:
    x = np.linspace(-1, 1, 5)
    smile, frown = drawings.mouth_curve("smiling", x, 1.0, 0.3), drawings.mouth_curve("frowning", x, 1.0, 0.3)
    assert smile[2] == pytest.approx(0.3) and smile[0] == pytest.approx(0.0)  # y grows downwards
    assert frown[2] == pytest.approx(-0.3) and np.allclose(smile, -frown)
    # In the rendered image the mouth's dark pixels of a smile lie lower in the middle than at the ends.
    bg = drawings.Backgrounds(names=("coffee",))
    rng = np.random.default_rng(1)
    img = drawings.draw_face({"kind": "face", "colour": "yellow", "mood": "smiling"}, 64, rng, bg)
    dark = img.sum(-1) < 0.6
    rows, cols = np.nonzero(dark[32:])  # below the eyes
    middle = rows[np.abs(cols - cols.mean()) < 2].mean()
    ends = rows[np.abs(cols - cols.mean()) > cols.std()].mean()
    assert middle > ends
