"""Built-in synthetic face identities drawn with numpy from a seed, so the quick start needs no download: every image
varies its identity's fixed parameters (pose, expression, lighting, clutter, occlusion, blur, noise) by ``variation``.
Cached in ImageFolder layout, ``meta.json`` last; the pixels match on every machine (IEEE arithmetic and sqrt only)."""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
from PIL import Image

logger = logging.getLogger(__name__)

GENERATOR_VERSION = 1
_IDENTITY_STREAM = 2  # seed-sequence key of identity parameters; splits use 0 and 1
_HAIR_COLOURS = ((0.10, 0.08, 0.07), (0.24, 0.15, 0.09), (0.42, 0.27, 0.15),
                 (0.80, 0.66, 0.40), (0.62, 0.28, 0.13), (0.60, 0.59, 0.57))
_IRIS_COLOURS = ((0.35, 0.20, 0.10), (0.18, 0.11, 0.06), (0.25, 0.45, 0.75),
                 (0.30, 0.50, 0.30), (0.50, 0.40, 0.20), (0.50, 0.55, 0.60))
_LIGHT_SKIN, _DARK_SKIN = np.array([0.96, 0.82, 0.71]), np.array([0.36, 0.23, 0.15])
_LIP_RED = np.array([0.72, 0.28, 0.32])
_FACE_SCALE = 1.15  # face units -> image half-widths
_FACE_Y = 0.06  # image y of the face centre

Colour = tuple[float, float, float]


def _colour(rgb: np.ndarray) -> Colour:
    return tuple(np.clip(rgb, 0.0, 1.0).tolist())


def sample_identity(rng: np.random.Generator) -> SimpleNamespace:
    """An identity's fixed appearance from ``rng``: lengths in face units (the image spans +-0.87), RGB in [0, 1]."""
    skin = _LIGHT_SKIN + (_DARK_SKIN - _LIGHT_SKIN) * rng.random() + rng.normal(0.0, 0.03, 3)
    hair = np.array(_HAIR_COLOURS[rng.integers(len(_HAIR_COLOURS))]) + rng.normal(0.0, 0.04, 3)
    lip = skin + (_LIP_RED - skin) * rng.uniform(0.25, 0.7)
    beard_draw = rng.random()
    has_mole = rng.random() < 0.2
    mole_pos = (float(rng.uniform(-0.3, 0.3)), float(rng.uniform(0.0, 0.3)))
    return SimpleNamespace(
        face_width=float(rng.uniform(0.34, 0.46)), face_height=float(rng.uniform(0.46, 0.58)),
        jaw_width=float(rng.uniform(0.45, 0.95)), skin=_colour(skin), hair_colour=_colour(hair),
        hair_length=float(rng.random()), hair_volume=float(rng.uniform(0.02, 0.14)), fringe=float(rng.random()),
        parting=float(rng.uniform(-1.0, 1.0)), bald=bool(rng.random() < 0.1),
        eye_spacing=float(rng.uniform(0.13, 0.21)), eye_y=float(rng.uniform(-0.13, -0.02)),
        eye_size=float(rng.uniform(0.055, 0.09)), eye_aspect=float(rng.uniform(0.4, 0.7)),
        iris_colour=_colour(np.array(_IRIS_COLOURS[rng.integers(len(_IRIS_COLOURS))])),
        brow_thickness=float(rng.uniform(0.012, 0.04)), brow_angle=float(rng.uniform(-0.3, 0.3)),
        nose_length=float(rng.uniform(0.12, 0.22)), nose_width=float(rng.uniform(0.035, 0.075)),
        mouth_width=float(rng.uniform(0.09, 0.18)), mouth_gap=float(rng.uniform(0.08, 0.13)),
        mouth_curve=float(rng.uniform(-0.3, 0.6)), lip_colour=_colour(lip),
        lip_thickness=float(rng.uniform(0.012, 0.03)), ear_size=float(rng.uniform(0.07, 0.12)),
        beard=2 if beard_draw < 0.12 else (1 if beard_draw < 0.22 else 0), glasses=bool(rng.random() < 0.15),
        glasses_colour=_colour(rng.uniform(0.0, 0.5, 3)), mole=mole_pos if has_mole else None)


def _sample_view(rng: np.random.Generator, s: float) -> SimpleNamespace:
    """The pose, expression and photometric settings of one image, their spread scaled by the variation ``s``."""
    blink = rng.random() < min(0.06 * s, 0.5)
    return SimpleNamespace(
        roll=math.radians(15.0 * s) * float(np.clip(rng.normal(0.0, 0.5), -1.0, 1.0)),
        shift=(float(rng.normal(0.0, 0.06 * s)), float(rng.normal(0.0, 0.06 * s))),
        scale=_FACE_SCALE * math.exp(float(np.clip(rng.normal(0.0, 0.1 * s), -0.3, 0.3))),
        yaw=float(rng.uniform(-0.5, 0.5) * min(s, 2.0)), smile=float(rng.normal(0.0, 0.45 * s)),
        mouth_open=float(max(0.0, rng.normal(-0.01, 0.025 * s))),
        eye_open=0.1 if blink else float(np.clip(rng.normal(1.0, 0.12 * s), 0.3, 1.3)),
        brow_raise=float(rng.normal(0.0, 0.015 * s)),
        gaze=(float(rng.normal(0.0, 0.2 * s)), float(rng.normal(0.0, 0.1 * s))),
        light_angle=float(rng.uniform(0.0, 2.0 * math.pi)), light_strength=float(rng.uniform(0.0, 0.5) * s),
        brightness=math.exp(rng.normal(0.0, 0.18 * s)), contrast=math.exp(rng.normal(0.0, 0.18 * s)),
        cast=_colour(np.exp(rng.normal(0.0, 0.08 * s, 3))), blur_sigma=float(rng.uniform(0.0, 1.0) * s),
        noise_sigma=float(rng.uniform(0.0, 0.045) * s))


def _coverage(dist: np.ndarray, aa: float) -> np.ndarray:
    """Anti-aliased coverage of a shape given its signed distance (negative inside)."""
    return np.clip(0.5 - dist / aa, 0.0, 1.0)


def _ellipse_dist(u: np.ndarray, v: np.ndarray, centre: tuple[float, float],
                  axes: tuple[float, float], angle: float = 0.0) -> np.ndarray:
    """Approximate signed distance to a (rotated) ellipse."""
    x, y = u - centre[0], v - centre[1]
    if angle:
        c, s = math.cos(angle), math.sin(angle)
        x, y = c * x + s * y, -s * x + c * y
    a, b = axes
    q = np.sqrt((x / a) ** 2 + (y / b) ** 2)
    grad = np.sqrt((x / a**2) ** 2 + (y / b**2) ** 2)
    return (q - 1.0) * q / (grad + 1e-9)


def _paint(img: np.ndarray, alpha: np.ndarray, colour: Colour | np.ndarray) -> None:
    """Composite a flat colour over the channel-first ``img`` in place with per-pixel ``alpha``."""
    img += alpha * (np.asarray(colour, dtype=img.dtype)[:, None, None] - img)


def _background(rng: np.random.Generator, x: np.ndarray, y: np.ndarray, variation: float) -> np.ndarray:
    """A channel-first random two-colour gradient with a few soft clutter shapes."""
    c0, c1 = rng.uniform(0.1, 0.9, (2, 3, 1, 1)).astype(np.float32)
    angle = rng.uniform(0.0, 2.0 * math.pi)
    t = np.clip(0.5 + 0.5 * (math.cos(angle) * x + math.sin(angle) * y), 0.0, 1.0)
    img = c0 + (c1 - c0) * t
    aa = 2.0 / x.shape[0]
    for _ in range(rng.poisson(2.5 * min(variation, 2.0))):
        centre = (float(rng.uniform(-1.0, 1.0)), float(rng.uniform(-1.0, 1.0)))
        axes = (float(rng.uniform(0.05, 0.4)), float(rng.uniform(0.05, 0.4)))
        colour = rng.uniform(0.0, 1.0, 3)
        dist = (_ellipse_dist(x, y, centre, axes, float(rng.uniform(0.0, math.pi))) if rng.random() < 0.5
                else np.maximum(np.abs(x - centre[0]) - axes[0], np.abs(y - centre[1]) - axes[1]))
        _paint(img, _coverage(dist, aa), colour)
    return img


def _face_dist(ident: SimpleNamespace, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Signed distance to the face outline: an ellipse whose lower half narrows to the jaw."""
    lower = np.clip(v / ident.face_height, 0.0, 1.0)
    half_width = ident.face_width * (1.0 - (1.0 - ident.jaw_width) * lower * np.sqrt(lower))
    q = np.sqrt((u / half_width) ** 2 + (v / ident.face_height) ** 2)
    return (q - 1.0) * np.minimum(half_width, ident.face_height)


def _draw_head(img: np.ndarray, ident: SimpleNamespace, view: SimpleNamespace, rng: np.random.Generator,
               u: np.ndarray, v: np.ndarray, aa: float) -> None:
    """Draw long hair, clothes, neck, ears and the face."""
    fw, fh, skin = ident.face_width, ident.face_height, np.array(ident.skin)
    if not ident.bald and ident.hair_length > 0.3:
        top, bottom = -fh - ident.hair_volume, fh * (0.1 + 1.1 * ident.hair_length)
        axes = (fw + ident.hair_volume + 0.06, (bottom - top) / 2)
        _paint(img, _coverage(_ellipse_dist(u, v, (0.0, (top + bottom) / 2), axes), aa), ident.hair_colour)
    _paint(img, _coverage(_ellipse_dist(u, v, (0.0, fh + 0.65), (0.95, 0.45)), aa), rng.uniform(0.05, 0.95, 3))
    neck = np.maximum(np.abs(u) - 0.55 * fw, 0.4 * fh - v)
    _paint(img, _coverage(neck, aa), skin * 0.85)
    for side in (-1.0, 1.0):
        visible = float(np.clip(1.0 + 2.5 * side * view.yaw, 0.0, 1.0))
        centre = (side * (fw - 0.01 + 0.03 * side * view.yaw), ident.eye_y + 0.06)
        axes = (0.5 * ident.ear_size * visible + 1e-3, ident.ear_size)
        _paint(img, _coverage(_ellipse_dist(u, v, centre, axes), aa) * visible, skin * 0.93)
    _paint(img, _coverage(_face_dist(ident, u, v), aa), skin)


def _draw_eyes(img: np.ndarray, ident: SimpleNamespace, view: SimpleNamespace, u: np.ndarray, v: np.ndarray,
               aa: float) -> None:
    """Draw both eyes (sclera, iris, pupil, lid line) and eyebrows."""
    w = ident.eye_size
    h = w * ident.eye_aspect * view.eye_open
    brow_colour = np.array(ident.hair_colour) * 0.7
    for side in (-1.0, 1.0):
        centre = (side * ident.eye_spacing, ident.eye_y)
        eye_dist = _ellipse_dist(u, v, centre, (w, h))
        sclera = _coverage(eye_dist, aa)
        _paint(img, sclera, (0.95, 0.95, 0.93))
        iris_centre = (centre[0] + view.gaze[0] * w, centre[1] + view.gaze[1] * w)
        iris = _coverage(_ellipse_dist(u, v, iris_centre, (0.55 * w, 0.55 * w)), aa) * sclera
        _paint(img, iris, ident.iris_colour)
        pupil = _coverage(_ellipse_dist(u, v, iris_centre, (0.25 * w, 0.25 * w)), aa) * sclera
        _paint(img, pupil, (0.03, 0.03, 0.03))
        _paint(img, _coverage(np.abs(eye_dist) - 0.25 * aa, aa) * 0.8, np.array(ident.skin) * 0.3)
        brow_centre = (centre[0], centre[1] - h - 0.035 - ident.brow_thickness - view.brow_raise)
        brow = _ellipse_dist(u, v, brow_centre, (1.3 * w, ident.brow_thickness), side * ident.brow_angle)
        _paint(img, _coverage(brow, aa), brow_colour)


def _draw_nose_and_mouth(img: np.ndarray, ident: SimpleNamespace, view: SimpleNamespace, u: np.ndarray, v: np.ndarray,
                         aa: float) -> None:
    """Draw the nose (tip shading, nostrils), beard/moustache and the mouth."""
    skin, nw = np.array(ident.skin), ident.nose_width
    tip_y = ident.eye_y + ident.nose_length
    nose_u = u + 0.06 * view.yaw
    ridge = np.maximum(np.abs(nose_u - 0.3 * nw) - 0.15 * nw,
                       np.abs(v - (ident.eye_y + tip_y) / 2) - ident.nose_length / 2)
    _paint(img, _coverage(ridge, aa) * 0.35, skin * 0.75)
    _paint(img, _coverage(_ellipse_dist(nose_u, v, (0.0, tip_y), (nw, 0.6 * nw)), aa), skin * 0.88)
    for side in (-1.0, 1.0):
        nostril = _ellipse_dist(nose_u, v, (side * 0.5 * nw, tip_y + 0.2 * nw), (0.3 * nw, 0.18 * nw))
        _paint(img, _coverage(nostril, aa), skin * 0.45)
    mouth_y, mw = tip_y + ident.mouth_gap, ident.mouth_width
    if ident.beard == 2:
        beard = np.maximum(_face_dist(ident, u, v), tip_y + 0.04 - v)
        _paint(img, _coverage(beard, aa) * 0.9, ident.hair_colour)
    if ident.beard >= 1:
        moustache = _ellipse_dist(u, v, (0.0, mouth_y - 0.035), (1.1 * mw, 0.03))
        _paint(img, _coverage(moustache, aa), ident.hair_colour)
    taper = np.sqrt(np.clip(1.0 - (u / mw) ** 2, 0.0, 1.0))
    curve = mouth_y - (ident.mouth_curve + view.smile) * 0.5 * mw * (u / mw) ** 2
    half_open = 0.5 * view.mouth_open * taper
    lips = np.maximum(np.abs(v - curve) - (half_open + ident.lip_thickness * taper), np.abs(u) - mw)
    _paint(img, _coverage(lips, aa), ident.lip_colour)
    inner = np.maximum(np.abs(v - curve) - np.maximum(half_open, 0.15 * aa), np.abs(u) - 0.95 * mw)
    _paint(img, _coverage(inner, aa), (0.25, 0.07, 0.08))


def _draw_top_hair(img: np.ndarray, ident: SimpleNamespace, u: np.ndarray, v: np.ndarray, feature_u: np.ndarray,
                   aa: float) -> None:
    """Draw the hair on top of the head down to an identity-specific hairline."""
    fw, fh, vol = ident.face_width, ident.face_height, ident.hair_volume
    head = _ellipse_dist(u, v, (0.0, -0.3 * vol), (fw + vol, fh + vol))
    side_drop = (0.3 + 0.5 * ident.hair_length) * fh
    hairline = (-fh * (0.8 - 0.45 * ident.fringe) + 0.12 * ident.parting * feature_u
                + side_drop * (feature_u / fw) ** 2)
    hair = np.maximum(head, v - hairline)
    if ident.bald:
        hair = np.maximum(hair, np.maximum(0.75 * fw - np.abs(u), -0.6 * fh - v))
    _paint(img, _coverage(hair, aa), ident.hair_colour)


def _draw_accessories(img: np.ndarray, ident: SimpleNamespace, u: np.ndarray, v: np.ndarray, aa: float) -> None:
    """Draw the mole and glasses of identities that have them."""
    if ident.mole is not None:
        _paint(img, _coverage(_ellipse_dist(u, v, ident.mole, (0.018, 0.018)), aa), np.array(ident.skin) * 0.35)
    if not ident.glasses:
        return
    w, frame = ident.eye_size * 1.6, 0.25 * aa + 0.006
    for side in (-1.0, 1.0):
        rim = _ellipse_dist(u, v, (side * ident.eye_spacing, ident.eye_y), (w, 0.8 * w))
        _paint(img, _coverage(rim, aa) * 0.15, (0.8, 0.9, 1.0))
        _paint(img, _coverage(np.abs(rim) - frame, aa), ident.glasses_colour)
    bridge = np.maximum(np.abs(u) - max(ident.eye_spacing - w, 0.01), np.abs(v - ident.eye_y + 0.3 * w) - frame)
    _paint(img, _coverage(bridge, aa), ident.glasses_colour)


def _draw_occluder(img: np.ndarray, rng: np.random.Generator, u: np.ndarray, v: np.ndarray, aa: float) -> None:
    """Cover part of the face with a rectangle or a hand-like blob."""
    centre = (float(rng.uniform(-0.35, 0.35)), float(rng.uniform(-0.3, 0.45)))
    if rng.random() < 0.5:
        half = (rng.uniform(0.1, 0.3), rng.uniform(0.06, 0.22))
        dist = np.maximum(np.abs(u - centre[0]) - half[0], np.abs(v - centre[1]) - half[1])
        colour = rng.uniform(0.0, 1.0, 3)
    else:
        dist = _ellipse_dist(u, v, centre, (0.16, 0.13))
        for finger in range(4):
            tip = (centre[0] - 0.12 + 0.08 * finger, centre[1] - 0.2)
            dist = np.minimum(dist, _ellipse_dist(u, v, tip, (0.035, 0.12)))
        colour = _LIGHT_SKIN + (_DARK_SKIN - _LIGHT_SKIN) * rng.random()
    _paint(img, _coverage(dist, aa), colour)


def _apply_photometrics(img: np.ndarray, view: SimpleNamespace, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Directional shading, contrast, brightness and colour cast."""
    img = img * (1.0 + view.light_strength * (math.cos(view.light_angle) * x + math.sin(view.light_angle) * y))
    mean = img.mean()
    img = (img - mean) * view.contrast + mean
    return img * (view.brightness * np.asarray(view.cast))[:, None, None]


def _gaussian_blur(img: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur of a channel-first image with reflected borders; no-op for tiny sigma."""
    if sigma < 0.3:
        return img
    radius = int(math.ceil(2.5 * sigma))
    kernel = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    kernel /= kernel.sum()
    size = img.shape[1]
    for axis in (1, 2):
        padded = np.pad(img, [(radius, radius) if a == axis else (0, 0) for a in range(3)], mode="reflect")
        img = sum(k * np.take(padded, np.arange(i, i + size), axis=axis) for i, k in enumerate(kernel))
    return img


def render_face(identity: SimpleNamespace, rng: np.random.Generator, image_size: int, variation: float) -> np.ndarray:
    """An (S, S, 3) uint8 RGB image of ``identity``, its variation drawn from ``rng`` and scaled by ``variation``."""
    view = _sample_view(rng, variation)
    centres = ((np.arange(image_size) + 0.5) * (2.0 / image_size) - 1.0).astype(np.float32)
    x, y = np.meshgrid(centres, centres)  # pixel centres in [-1, 1], x to the right and y downwards
    img = _background(rng, x, y, variation)
    cos, sin = math.cos(view.roll), math.sin(view.roll)
    dx, dy = x - view.shift[0], y - view.shift[1] - _FACE_Y
    u, v = (cos * dx + sin * dy) / view.scale, (-sin * dx + cos * dy) / view.scale
    aa = 2.0 / image_size / view.scale
    # Yaw turns a cylinder of radius 1.15 face widths: inner features shift and the far side is squeezed.
    depth = np.sqrt(np.maximum((1.15 * identity.face_width) ** 2 - u**2, 0.0))
    feature_u = u * math.cos(view.yaw) - depth * math.sin(view.yaw)
    _draw_head(img, identity, view, rng, u, v, aa)
    _draw_nose_and_mouth(img, identity, view, feature_u, v, aa)
    _draw_eyes(img, identity, view, feature_u, v, aa)
    _draw_top_hair(img, identity, u, v, feature_u, aa)
    _draw_accessories(img, identity, feature_u, v, aa)
    if rng.random() < min(0.1 * variation, 0.5):
        _draw_occluder(img, rng, u, v, aa)
    img = _gaussian_blur(_apply_photometrics(img, view, x, y), view.blur_sigma)
    img = img + rng.normal(0.0, view.noise_sigma, img.shape)
    return np.ascontiguousarray((np.clip(img, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8).transpose(1, 2, 0))


def _rng(seed: int, identity: int, stream: int, index: int) -> np.random.Generator:
    """Independent generator for one (seed, identity, stream, index); keys have fixed length."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, identity, stream, index])))


def synthetic_faces_root(cache_dir: str | os.PathLike, num_identities: int = 100,
                         train_per_identity: int = 80, test_per_identity: int = 20,
                         image_size: int = 64, seed: int = 0, variation: float = 1.0) -> Path:
    """The folder in ``cache_dir`` whose name encodes ``ensure_synthetic_faces``'s arguments (nothing is generated)."""
    return Path(cache_dir) / (f"synthetic_faces_g{GENERATOR_VERSION}_n{num_identities}_tr{train_per_identity}"
                              f"_te{test_per_identity}_px{image_size}_seed{seed}_var{float(variation)!r}")


def _generate(root: Path, meta: dict) -> None:
    """Write all PNGs of both splits into ``root`` (which must not hold stale files)."""
    width = max(3, len(str(meta["num_identities"] - 1)))
    splits = (("train", 0, meta["train_per_identity"]), ("test", 1, meta["test_per_identity"]))
    for identity in range(meta["num_identities"]):
        params = sample_identity(_rng(meta["seed"], identity, _IDENTITY_STREAM, 0))
        for split, stream, per_identity in splits:
            folder = root / split / f"id_{identity:0{width}d}"
            folder.mkdir(parents=True, exist_ok=True)
            digits = max(3, len(str(per_identity - 1)))
            for index in range(per_identity):
                rng = _rng(meta["seed"], identity, stream, index)
                pixels = render_face(params, rng, meta["image_size"], meta["variation"])
                Image.fromarray(pixels).save(folder / f"{index:0{digits}d}.png", format="PNG")


def ensure_synthetic_faces(cache_dir: str | os.PathLike, num_identities: int = 100,
                           train_per_identity: int = 80, test_per_identity: int = 20,
                           image_size: int = 64, seed: int = 0, variation: float = 1.0) -> Path:
    """Generates the data set unless an identical complete one is cached (else regenerated) and returns its root."""
    if min(num_identities, train_per_identity, test_per_identity) < 1:
        raise ValueError("num_identities, train_per_identity and test_per_identity must be >= 1")
    if image_size < 8:
        raise ValueError(f"image_size must be >= 8, got {image_size}")
    if seed < 0 or variation < 0:
        raise ValueError(f"seed and variation must be >= 0, got {seed} and {variation}")
    root = synthetic_faces_root(cache_dir, num_identities, train_per_identity, test_per_identity,
                                image_size, seed, variation)
    meta = {"generator_version": GENERATOR_VERSION, "num_identities": int(num_identities),
            "train_per_identity": int(train_per_identity), "test_per_identity": int(test_per_identity),
            "image_size": int(image_size), "seed": int(seed), "variation": float(variation)}
    with contextlib.suppress(OSError, ValueError):  # an absent or unreadable meta.json: generate
        if json.loads((root / "meta.json").read_text(encoding="utf-8")) == meta:
            return root
    logger.info("Generating synthetic faces: %d identities x (%d train + %d test) at %d px in %s",
                num_identities, train_per_identity, test_per_identity, image_size, root)
    if root.exists():
        shutil.rmtree(root)
    _generate(root, meta)
    partial = root / "meta.json.partial"
    partial.write_text(json.dumps(meta, indent=2, sort_keys=True), encoding="utf-8")
    os.replace(partial, root / "meta.json")
    return root
