"""Tests of the built-in synthetic face data set (small parameters, a few seconds in all)."""
import hashlib
import json
import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from data.synthetic_faces import (_IDENTITY_STREAM, _rng, ensure_synthetic_faces, render_face, sample_identity,
                                  synthetic_faces_root)

SMALL = dict(num_identities=5, train_per_identity=3, test_per_identity=2, image_size=32)


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.png"))


@pytest.fixture(scope="module")
def small_root(tmp_path_factory) -> Path:
    return ensure_synthetic_faces(tmp_path_factory.mktemp("faces"), **SMALL)


def test_layout_counts_sizes_and_mode(small_root):
    assert small_root == synthetic_faces_root(small_root.parent, **SMALL)
    for split, per_identity in (("train", 3), ("test", 2)):
        folders = sorted(p.name for p in (small_root / split).iterdir())
        assert folders == [f"id_{i:03d}" for i in range(5)]
        for folder in folders:
            images = sorted((small_root / split / folder).iterdir())
            assert len(images) == per_identity
            for path in images:
                with Image.open(path) as image:
                    assert image.mode == "RGB" and image.size == (32, 32)
    meta = json.loads((small_root / "meta.json").read_text())
    assert meta["num_identities"] == 5 and meta["image_size"] == 32


def test_same_arguments_give_identical_bytes(tmp_path, small_root):
    other = ensure_synthetic_faces(tmp_path, **SMALL)
    first, second = _files(small_root), _files(other)
    assert [p.relative_to(small_root) for p in first] == [p.relative_to(other) for p in second]
    assert all(a.read_bytes() == b.read_bytes() for a, b in zip(first, second))


def test_different_seed_gives_different_images(tmp_path, small_root):
    other = ensure_synthetic_faces(tmp_path, seed=1, **SMALL)
    assert other != small_root
    first, second = _files(small_root), _files(other)
    assert all(a.read_bytes() != b.read_bytes() for a, b in zip(first, second))


def test_second_call_reuses_files(tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="data.synthetic_faces"):
        root = ensure_synthetic_faces(tmp_path, **SMALL)
        assert len(caplog.records) == 1
        mtimes = {p: p.stat().st_mtime_ns for p in root.rglob("*")}
        assert ensure_synthetic_faces(tmp_path, **SMALL) == root
        assert len(caplog.records) == 1
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*")} == mtimes


def test_folder_without_meta_is_regenerated(tmp_path):
    root = ensure_synthetic_faces(tmp_path, **SMALL)
    expected = {p.relative_to(root): p.read_bytes() for p in _files(root)}
    (root / "meta.json").unlink()
    (root / "train" / "id_000" / "000.png").unlink()
    (root / "train" / "id_000" / "stale.png").write_bytes(b"half-written")
    assert ensure_synthetic_faces(tmp_path, **SMALL) == root
    assert (root / "meta.json").is_file()
    assert {p.relative_to(root): p.read_bytes() for p in _files(root)} == expected


def test_invalid_arguments_are_rejected(tmp_path):
    with pytest.raises(ValueError):
        ensure_synthetic_faces(tmp_path, num_identities=0)
    with pytest.raises(ValueError):
        ensure_synthetic_faces(tmp_path, variation=-1.0)


def test_render_face_shape_and_determinism():
    identity = sample_identity(np.random.default_rng(3))
    first = render_face(identity, np.random.default_rng(7), 48, 1.0)
    second = render_face(identity, np.random.default_rng(7), 48, 1.0)
    assert first.shape == (48, 48, 3) and first.dtype == np.uint8
    np.testing.assert_array_equal(first, second)


def _face_features(identity, seeds) -> np.ndarray:
    """Central 16x16 crop (the face, not the random background) average-pooled to 4x4 pixels."""
    images = [render_face(identity, np.random.default_rng(s), 32, 1.0)[8:24, 8:24] for s in seeds]
    return np.stack([im.astype(np.float64).reshape(4, 4, 4, 4, 3).mean(axis=(1, 3)).ravel()
                     for im in images])


def test_images_vary_within_and_more_between_identities():
    features = np.stack([_face_features(sample_identity(np.random.default_rng(100 + i)), range(6))
                         for i in range(6)])  # (identity, image, feature)
    dist = np.linalg.norm(features[:, :, None, None] - features[None, None], axis=-1)
    same_identity = np.eye(6, dtype=bool)[:, None, :, None] & ~np.eye(6, dtype=bool)[None, :, None, :]
    other_identity = ~np.eye(6, dtype=bool)[:, None, :, None] & np.ones((1, 6, 1, 6), dtype=bool)
    within = dist[np.broadcast_to(same_identity, dist.shape)]
    between = dist[np.broadcast_to(other_identity, dist.shape)]
    assert within.min() > 0
    assert between.mean() > 1.1 * within.mean()


def _pixel_hash(arrays) -> str:
    digest = hashlib.sha256()
    for array in arrays:
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def test_quick_start_pixels_are_pinned(tmp_path):
    """The quick start's images (64 px, variation 1, seed 0) stay bit-identical: the README's table
    depends on them to the last digit, so a refactor of the generator must not move a pixel."""
    root = ensure_synthetic_faces(tmp_path, num_identities=4, train_per_identity=3, test_per_identity=2)
    files = sorted(root.rglob("*.png"))
    assert [str(p.relative_to(root)) for p in files][:2] == ["test/id_000/000.png", "test/id_000/001.png"]
    assert _pixel_hash(np.asarray(Image.open(p)) for p in files) == (
        "f813ba94a36dfa928b3c060928af0d47762d53144ac388be30b8bae3cd598378")
    renders = []
    for identity in range(100):  # one train and one test image of every quick-start identity
        params = sample_identity(_rng(0, identity, _IDENTITY_STREAM, 0))
        for stream, index in ((0, identity % 80), (1, identity % 20)):
            renders.append(render_face(params, _rng(0, identity, stream, index), 64, 1.0))
    assert _pixel_hash(renders) == "7aa539ffdddf082f8124b3855f8e92467e73e42092995b792c898e395e20fec8"
