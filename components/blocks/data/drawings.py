"""Drawn images with known attributes and template captions: shapes, faces, stripes, textures, photos.

The image-caption set the project's text-image model (``components/blocks/clip``) is trained on, and
the small drawn-face domain DiffusionCLIP edits, built without any download:

* ``shape``: a circle, square, triangle, star or cross, in one of seven colours, filled plain,
  striped or spotted, on a low-contrast crop of a photograph that scikit-image bundles;
* ``face``: a round head in one of the colours with two eyes and a smiling or frowning mouth, on
  such a crop;
* ``stripes``: a full-frame pattern of stripes in two colours;
* ``texture``: a crop of skimage's brick, grass or gravel photograph;
* ``photo``: a crop of one of skimage's named photographs (a cat, an astronaut, a rocket ...).

Every image carries its attributes (``{"kind": "face", "colour": "blue", "mood": "smiling"}``), so
captions are made from templates (``caption``), colour-shape or colour-mood pairs can be held out
of a training set (``exclude``), and a manipulated face can be scored against the truth.

Rendering: masks are evaluated on a grid supersampled 3x and area-averaged, so edges are
anti-aliased. Images are float32 ``(N, 3, size, size)`` in [0, 1]. One ``numpy`` generator drives
every draw: a seed gives the same set on every machine.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
import functools
from dataclasses import dataclass

import numpy as np

from components.blocks.data.vocabulary import COLOURS, FILLS, MOODS, SHAPES

TEXTURES: dict[str, str] = {"brick": "brick wall", "grass": "grass", "gravel": "gravel"}
PHOTOS: dict[str, str] = {
    "chelsea": "cat",
    "astronaut": "astronaut",
    "rocket": "rocket",
    "coffee": "cup of coffee",
    "coins": "coins",
    "camera": "man with a camera",
}
BACKGROUNDS: tuple[str, ...] = ("astronaut", "chelsea", "coffee", "rocket", "camera", "coins", "moon", "page")
KINDS: tuple[str, ...] = ("shape", "face", "stripes", "texture", "photo")
SUPERSAMPLE = 3

# The phrasing of CLIP's ImageNet prompt templates (Radford et al. 2021, the list the official
# DiffusionCLIP / CLIPstyler code averages over, utils/text_templates.py): captions are made from
# them, and the losses average text embeddings over the same list.
TEMPLATES: tuple[str, ...] = (
    "a photo of a {}.",
    "a drawing of a {}.",
    "a rendering of a {}.",
    "a close-up photo of a {}.",
    "a bright photo of the {}.",
    "a cropped photo of the {}.",
    "a low resolution photo of the {}.",
    "a painting of a {}.",
    "a pixelated photo of the {}.",
    "a good photo of the {}.",
)


@dataclass(frozen=True)
class DrawnSet:
    """Images ``(N, 3, S, S)`` float32 in [0, 1] and one attribute dict per image."""

    images: np.ndarray
    attrs: list[dict[str, str]]


class Backgrounds:
    """Crops of scikit-image's bundled photographs, each loaded on first use and shrunk to 128 px
    (short side). ``names`` are the photographs backdrops are cut from; texture and photo drawings
    load theirs by name when first drawn."""

    POOL = 512

    def __init__(self, names: Sequence[str] = BACKGROUNDS) -> None:
        self.names = tuple(names)
        self.images: dict[str, np.ndarray] = {}
        self._pool: dict[int, np.ndarray] = {}

    def image(self, name: str) -> np.ndarray:
        if name not in self.images:
            from components.blocks.data.images import skimage_images

            self.images[name] = _shrink(skimage_images([name])[0][1], 128)
        return self.images[name]

    def crop(self, name: str, size: int, rng: np.random.Generator, low: float = 0.4, high: float = 1.0) -> np.ndarray:
        """A random square crop of ``name`` covering ``low..high`` of its short side, resized to ``size``."""
        img = self.image(name)
        h, w = img.shape[:2]
        side = max(8, int(min(h, w) * rng.uniform(low, high)))
        y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
        out = _resize(img[y : y + side, x : x + side], size)
        return out[:, ::-1] if rng.random() < 0.5 else out

    def background(self, size: int, rng: np.random.Generator) -> np.ndarray:
        """A photograph crop pulled halfway to its mean: a backdrop that leaves the drawing salient.

        Drawn from a pool of ``POOL`` crops per size (made once with a fixed seed, so a set depends
        only on its own seed), randomly flipped and rotated by quarter turns.
        """
        if size not in self._pool:
            pool_rng = np.random.default_rng(12345)
            crops = [self.crop(self.names[i % len(self.names)], size, pool_rng) for i in range(self.POOL)]
            self._pool[size] = np.stack([0.5 * c + 0.5 * c.mean(axis=(0, 1), keepdims=True) for c in crops])
        img = self._pool[size][int(rng.integers(self.POOL))]
        return np.rot90(img[:, ::-1] if rng.random() < 0.5 else img, int(rng.integers(4)))


def _shrink(img: np.ndarray, short: int) -> np.ndarray:
    h, w = img.shape[:2]
    f = short / min(h, w)
    return _resize(img, (max(short, round(h * f)), max(short, round(w * f)))) if f < 1 else img


def _resize(img: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    import torch
    import torch.nn.functional as F

    hw = (size, size) if isinstance(size, int) else size
    t = torch.from_numpy(np.ascontiguousarray(img, dtype=np.float32)).permute(2, 0, 1)[None]
    shrink = hw[0] < img.shape[0]
    out = F.interpolate(t, size=hw, mode="bilinear", align_corners=False, antialias=shrink)
    return out[0].permute(1, 2, 0).clamp(0, 1).numpy()


@functools.cache
def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Supersampled pixel-centre coordinates in units of the image side, origin at the centre."""
    n = size * SUPERSAMPLE
    c = ((np.arange(n) + 0.5) / n - 0.5).astype(np.float32)
    x, y = np.meshgrid(c, c, indexing="xy")  # x to the right, y downwards
    x.flags.writeable = y.flags.writeable = False
    return x, y


def _area(values: np.ndarray) -> np.ndarray:
    """Supersampled ``(n, n)`` or ``(n, n, C)`` -> its ``SUPERSAMPLE`` x ``SUPERSAMPLE`` block means ``(size, size, C)``."""
    import torch
    import torch.nn.functional as F

    v = values[..., None] if values.ndim == 2 else values
    t = torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32)).permute(2, 0, 1)[None]
    return F.avg_pool2d(t, SUPERSAMPLE)[0].permute(1, 2, 0).numpy()


def _jitter(colour: tuple[float, float, float], rng: np.random.Generator, amount: float = 0.05) -> np.ndarray:
    return np.clip(np.array(colour) + rng.uniform(-amount, amount, 3), 0, 1)


def shape_mask(shape: str, x: np.ndarray, y: np.ndarray, radius: float, angle: float) -> np.ndarray:
    """Boolean mask of ``shape`` of circumradius ``radius`` centred at the origin, rotated by ``angle``."""
    c, s = np.cos(angle), np.sin(angle)
    u, v = c * x + s * y, -s * x + c * y
    if shape == "circle":
        return u * u + v * v < radius * radius
    if shape == "square":
        return np.maximum(np.abs(u), np.abs(v)) < radius * 0.78
    if shape == "triangle":
        return _triangle(u, v, radius)
    if shape == "star":  # five points: radius modulated by the angle
        theta = np.arctan2(v, u)
        return np.hypot(u, v) < radius * (0.42 + 0.58 * ((1 + np.cos(5 * theta + np.pi / 2)) / 2) ** 2)
    if shape == "cross":
        w = radius * 0.3
        return ((np.abs(u) < w) & (np.abs(v) < radius * 0.9)) | ((np.abs(v) < w) & (np.abs(u) < radius * 0.9))
    raise ValueError(f"unknown shape {shape!r}; shapes: {', '.join(SHAPES)}")


def _triangle(u: np.ndarray, v: np.ndarray, radius: float) -> np.ndarray:
    """Equilateral triangle with circumradius ``radius``, apex up (y grows downwards)."""
    base = radius / 2  # the base line is below the centre
    return (v < base) & (np.sqrt(3) * u - v < radius) & (-np.sqrt(3) * u - v < radius)


def _fill(fill: str, colour: np.ndarray, x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The supersampled ``(n, n, 3)`` paint of a shape: plain, striped (white bands) or spotted (white dots)."""
    paint = np.empty((*x.shape, 3), np.float32)
    paint[:] = colour
    if fill == "striped":
        a = rng.uniform(0, np.pi)
        period = rng.uniform(0.14, 0.2)
        band = np.mod(np.cos(a) * x + np.sin(a) * y, period) < period / 2
        paint[band] = 0.97
    elif fill == "spotted":
        period = rng.uniform(0.14, 0.18)
        ox, oy = rng.uniform(0, period, 2)
        dx = np.mod(x + ox, period) - period / 2
        dy = np.mod(y + oy, period) - period / 2
        paint[np.hypot(dx, dy) < period * 0.25] = 0.97
    elif fill != "plain":
        raise ValueError(f"unknown fill {fill!r}; fills: {', '.join(FILLS)}")
    return paint


def _compose(base: np.ndarray, paint: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Alpha-blend ``paint`` (one colour ``(3,)`` or supersampled ``(n, n, 3)``) under the supersampled
    ``mask`` onto ``base`` ``(size, size, 3)``: coverage-weighted, so edges are anti-aliased."""
    cov = _area(mask)
    if paint.ndim == 1:
        return base * (1 - cov) + paint * cov
    return base * (1 - cov) + _area(paint * mask[..., None])


def draw_shape(attrs: dict[str, str], size: int, rng: np.random.Generator, bg: Backgrounds) -> np.ndarray:
    x, y = _grid(size)
    radius = rng.uniform(0.26, 0.38)
    cx, cy = rng.uniform(-0.45 + radius, 0.45 - radius, 2)
    angle = rng.uniform(-0.35, 0.35) if attrs["shape"] != "circle" else 0.0
    mask = shape_mask(attrs["shape"], x - cx, y - cy, radius, angle)
    colour = _jitter(COLOURS[attrs["colour"]], rng)
    paint = colour if attrs["fill"] == "plain" else _fill(attrs["fill"], colour, x, y, rng)
    return _compose(bg.background(size, rng), paint, mask)


def mouth_curve(mood: str, x: np.ndarray, width: float, depth: float) -> np.ndarray:
    """Height of the mouth line below its corners at horizontal offset ``x`` (y grows downwards).

    Smiling: the middle sags below the corners (a U); frowning: it rises above them.
    """
    bend = {"smiling": 1.0, "frowning": -1.0}[mood]
    return bend * depth * (1 - (x / width) ** 2)


def draw_face(attrs: dict[str, str], size: int, rng: np.random.Generator, bg: Backgrounds) -> np.ndarray:
    x, y = _grid(size)
    radius = rng.uniform(0.36, 0.42)
    cx, cy = rng.uniform(-0.05, 0.05, 2)
    u, v = x - cx, y - cy
    img = _compose(bg.background(size, rng), _jitter(COLOURS[attrs["colour"]], rng), np.hypot(u, v) < radius)
    dark = np.array([0.08, 0.06, 0.06])
    eye_dx, eye_y, eye_r = radius * 0.38, -radius * 0.28, radius * rng.uniform(0.12, 0.15)
    eyes = (np.hypot(u - eye_dx, v - eye_y) < eye_r) | (np.hypot(u + eye_dx, v - eye_y) < eye_r)
    img = _compose(img, dark, eyes)
    width, depth, thick = radius * 0.55, radius * 0.3, radius * 0.1
    corners = radius * (0.3 if attrs["mood"] == "smiling" else 0.45)
    line = corners + mouth_curve(attrs["mood"], np.clip(u, -width, width), width, depth)
    mouth = (np.abs(v - line) < thick) & (np.abs(u) < width)
    return _compose(img, dark, mouth)


def draw_stripes(attrs: dict[str, str], size: int, rng: np.random.Generator, bg: Backgrounds) -> np.ndarray:
    x, y = _grid(size)
    a = rng.choice([0.0, np.pi / 2, np.pi / 4, -np.pi / 4]) + rng.uniform(-0.1, 0.1)
    period = rng.uniform(0.15, 0.3)
    band = np.mod(np.cos(a) * x + np.sin(a) * y + rng.uniform(0, period), period) < period / 2
    paint = np.where(band[..., None], _jitter(COLOURS[attrs["colour"]], rng), _jitter(COLOURS[attrs["colour2"]], rng))
    return _area(paint)


def draw_crop(attrs: dict[str, str], size: int, rng: np.random.Generator, bg: Backgrounds) -> np.ndarray:
    low = 0.6 if attrs["kind"] == "photo" else 0.2
    return bg.crop(attrs["source"], size, rng, low=low, high=1.0)


DRAW = {"shape": draw_shape, "face": draw_face, "stripes": draw_stripes, "texture": draw_crop, "photo": draw_crop}


def pair_of(attrs: dict[str, str]) -> tuple[str, str] | None:
    """The (colour, shape) or (colour, mood) pair a held-out combination is named by."""
    if attrs["kind"] == "shape":
        return attrs["colour"], attrs["shape"]
    if attrs["kind"] == "face":
        return attrs["colour"], attrs["mood"]
    return None


def sample_attrs(kind: str, rng: np.random.Generator, exclude: Iterable[tuple[str, str]] = ()) -> dict[str, str]:
    """Random attributes of one ``kind`` whose (colour, shape | mood) pair is not in ``exclude``."""
    banned = set(map(tuple, exclude))
    colours = list(COLOURS)
    for _ in range(1000):
        if kind == "shape":
            attrs = {
                "kind": kind,
                "colour": colours[rng.integers(len(colours))],
                "shape": SHAPES[rng.integers(len(SHAPES))],
                "fill": FILLS[rng.integers(len(FILLS))],
            }
        elif kind == "face":
            attrs = {
                "kind": kind,
                "colour": colours[rng.integers(len(colours))],
                "mood": MOODS[rng.integers(len(MOODS))],
            }
        elif kind == "stripes":
            c1, c2 = rng.choice(len(colours), 2, replace=False)
            attrs = {"kind": kind, "colour": colours[c1], "colour2": colours[c2]}
        elif kind == "texture":
            attrs = {"kind": kind, "source": list(TEXTURES)[rng.integers(len(TEXTURES))]}
        elif kind == "photo":
            attrs = {"kind": kind, "source": list(PHOTOS)[rng.integers(len(PHOTOS))]}
        else:
            raise ValueError(f"unknown kind {kind!r}; kinds: {', '.join(KINDS)}")
        if pair_of(attrs) not in banned:
            return attrs
    raise ValueError(f"every {kind} combination is excluded")


def phrase(attrs: dict[str, str], rng: np.random.Generator | None = None) -> str:
    """The noun phrase of an image: all its attributes, or (with ``rng``) a random subset of them.

    ``"striped red circle"``, ``"smiling blue face"``; with ``rng`` also
    ``"red circle"``, ``"circle"``, ``"smiling face"``, ``"blue face"``, ``"face"`` ... (caption
    augmentation: text that names only some attributes is still true of the image).
    """
    k = attrs["kind"]
    if k == "shape":
        fill = {"plain": "", "striped": "striped ", "spotted": "spotted "}[attrs["fill"]]
        options = [f"{fill}{attrs['colour']} {attrs['shape']}", f"{attrs['colour']} {attrs['shape']}", attrs["shape"]]
        if fill:
            options.append(f"{fill}{attrs['shape']}")
        return _pick(options, rng)
    if k == "face":
        mood = attrs["mood"]
        options = [f"{mood} {attrs['colour']} face", f"{attrs['colour']} face", "face", f"{mood} face"]
        return _pick(options, rng)
    if k == "stripes":
        return f"{attrs['colour']} and {attrs['colour2']} stripes"
    if k == "texture":
        return TEXTURES[attrs["source"]]
    return PHOTOS[attrs["source"]]


def _pick(options: list[str], rng: np.random.Generator | None) -> str:
    """The full phrase (always without ``rng``; 55 % with it) or one of the partial ones."""
    if rng is None or rng.random() < 0.55:
        return options[0]
    return options[int(rng.integers(1, len(options)))]


def caption(attrs: dict[str, str], rng: np.random.Generator, templates: Sequence[str] = TEMPLATES) -> str:
    """A random template filled with a (possibly partial) phrase of the image."""
    return templates[int(rng.integers(len(templates)))].format(phrase(attrs, rng))


def make_set(
    n: int,
    size: int,
    seed: int,
    kinds: dict[str, float] | None = None,
    exclude: Iterable[tuple[str, str]] = (),
    only: Iterable[tuple[str, str]] | None = None,
    bg: Backgrounds | None = None,
) -> DrawnSet:
    """``n`` drawn images of side ``size``.

    Args:
        kinds: kind -> probability (normalised); default: every kind, mostly shapes and faces.
        exclude: (colour, shape | mood) pairs never drawn (held out of a training set).
        only: draw only these pairs (a held-out test set); the kind is inferred per pair.
        bg: backgrounds (loaded once and shared when several sets are made).
    """
    rng = np.random.default_rng(seed)
    bg = bg or Backgrounds()
    kinds = kinds or {"shape": 0.42, "face": 0.38, "stripes": 0.08, "texture": 0.06, "photo": 0.06}
    names, p = list(kinds), np.array(list(kinds.values()), dtype=np.float64)
    pairs = list(map(tuple, only)) if only is not None else None
    images = np.empty((n, 3, size, size), np.float32)
    attrs: list[dict[str, str]] = []
    for i in range(n):
        if pairs is not None:
            colour, what = pairs[int(rng.integers(len(pairs)))]
            if what in SHAPES:
                a = {"kind": "shape", "colour": colour, "shape": what, "fill": FILLS[rng.integers(len(FILLS))]}
            else:
                a = {"kind": "face", "colour": colour, "mood": what}
        else:
            a = sample_attrs(names[int(rng.choice(len(names), p=p / p.sum()))], rng, exclude)
        images[i] = np.clip(DRAW[a["kind"]](a, size, rng, bg), 0, 1).transpose(2, 0, 1)
        attrs.append(a)
    return DrawnSet(images, attrs)
