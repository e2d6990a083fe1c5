"""Class order, task plans, subsets, image folders and the batch loader (reference 3.2-3.4)."""
import random
import re
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch
from PIL import Image

from data import folders
from data.class_order import class_order
from data.datasets import build_data
from data.folders import BatchLoader, ImageTensors, class_folders, load_image_folder
from data.subsets import few_shot_subset, ratio_subset, train_val_split
from data.task_plan import named_tasks, plan_tasks
from util.errors import UserError


def test_class_order_reproduces_the_original_seed_1337_order():
    state = random.getstate()
    order = class_order(100, 1337)
    assert order[:12] == [83, 17, 10, 9, 89, 52, 7, 32, 37, 77, 61, 34]
    assert order[-3:] == [90, 68, 79]
    assert sorted(order) == list(range(100))
    assert random.getstate() == state  # the global Python RNG is not touched


def test_continual_plan_forgets_from_the_end_backwards():
    order = class_order(100, 1337)
    tasks = plan_tasks(order, num_first_cls=80, per_forget_cls=20, num_tasks=4)
    assert len(tasks) == 4
    for i, task in enumerate(tasks):
        assert task.index == i
        assert task.forget == order[80 - 20 * i:100 - 20 * i]
        assert task.remain == order[:80 - 20 * i]
        assert task.old == (order[100 - 20 * i:] if i > 0 else [])
        assert task.missing == []
        assert sorted(task.remain + task.forget + task.old) == list(range(100))
    assert tasks[3].forget == order[20:40] and len(tasks[3].remain) == 20


def test_missing_classes_single_step_versus_continual_layout():
    order = class_order(100, 1337)
    single = plan_tasks(order, 70, 30, 1, open_cls_num=40, single_step_layout=True)[0]
    assert single.missing == order[30:70]
    assert single.remain == order[:30]
    assert single.forget == order[70:100]
    continual = plan_tasks(order, 80, 20, 4, open_cls_num=5)
    for i, task in enumerate(continual):
        assert task.missing == order[:5]
        assert task.remain == order[5:80 - 20 * i]
        assert task.forget == order[80 - 20 * i:100 - 20 * i]


@pytest.mark.parametrize("first, per, tasks, open_cls, single", [
    (90, 20, 1, 0, False),  # F + P beyond the 100 classes
    (80, 0, 1, 0, False),  # nothing to forget
    (80, 20, 0, 0, False),  # no task
    (80, 20, 5, 0, False),  # the fifth task would leave no class
    (80, 20, 4, 20, False),  # missing classes eat the last remembered ones
    (80, 20, 2, 0, True),  # the single-step layout has one task
])
def test_impossible_plans_raise_user_error(first, per, tasks, open_cls, single):
    with pytest.raises(UserError):
        plan_tasks(list(range(100)), first, per, tasks, open_cls_num=open_cls, single_step_layout=single)


NAMES = ["0000007", "0000045", "0000099", "0000102", "0000230", "0000311"]


def test_named_plan_forgets_the_named_classes_and_keeps_every_other_one():
    tasks = named_tasks(NAMES, [["0000099", "0000045"], ["0000230"]], missing=["0000007"], flag="--plan")
    assert [t.forget for t in tasks] == [[2, 1], [4]]  # in the order named, tasks of different sizes
    assert tasks[0].remain == [3, 4, 5] and tasks[0].old == [] and tasks[0].missing == [0]
    assert tasks[1].remain == [3, 5] and tasks[1].old == [2, 1] and tasks[1].missing == [0]


@pytest.mark.parametrize("tasks, missing, message", [
    ([["0000046"]], [], "no class named '0000046'; closest: 0000045"),  # a typo
    ([["0000045"], ["0000099", "0000045"]], [], "names 0000045 more than once"),  # forgotten twice
    ([["0000045"]], ["0000045"], "names 0000045 more than once"),  # forgotten and missing
    ([["0000045"], []], [], "task 1 names no class"),
    ([NAMES[:5]], NAMES[5:], "leaves no remembered class"),
])
def test_impossible_named_plans_raise_user_error(tasks, missing, message):
    with pytest.raises(UserError, match=message):
        named_tasks(NAMES, tasks, missing, flag="--plan")


@pytest.fixture
def targets():
    return torch.arange(5).repeat_interleave(10)  # 5 classes x 10 images


def test_few_shot_picks_n_per_class_deterministically_whatever_the_global_rng(targets):
    pool = torch.arange(50)[torch.arange(50) % 7 != 0]  # a pool that is not all images
    first = few_shot_subset(pool, targets, 3, 1337, "remain", 0)
    torch.manual_seed(123)
    torch.rand(1000)  # consume the global RNG between the calls
    second = few_shot_subset(pool, targets, 3, 1337, "remain", 0)
    assert torch.equal(first, second)
    assert torch.bincount(targets[first], minlength=5).tolist() == [3] * 5
    assert set(first.tolist()) <= set(pool.tolist()) and len(set(first.tolist())) == 15
    assert not torch.equal(first, few_shot_subset(pool, targets, 3, 1337, "remain", 1))
    with pytest.raises(UserError):
        few_shot_subset(pool, targets, 9, 1337)  # classes in the pool hold 8 or 9 images


def test_ratio_subset_takes_int_of_len_times_ratio(targets):
    pool = torch.arange(3, 50)
    subset = ratio_subset(pool, 0.1, 0, "forget")
    assert len(subset) == int(47 * 0.1) == 4
    assert len(set(subset.tolist())) == 4 and set(subset.tolist()) <= set(pool.tolist())
    assert len(ratio_subset(pool, 0.001, 0)) == 1
    with pytest.raises(UserError):
        ratio_subset(pool, 0.0, 0)


def test_train_val_split_is_a_per_class_partition():
    targets = torch.tensor([0] * 10 + [1] * 5 + [2] * 3)
    train, val = train_val_split(targets, 0.2, seed=0)
    assert sorted(train.tolist() + val.tolist()) == list(range(18))
    assert set(train.tolist()).isdisjoint(val.tolist())
    assert torch.bincount(targets[val], minlength=3).tolist() == [2, 1, 1]  # round(count * 0.2), at least 1
    again = train_val_split(targets, 0.2, seed=0)
    assert torch.equal(again[0], train) and torch.equal(again[1], val)


def write_image(path, colour, size=20):
    """A one-colour image; PIL picks the format (PNG, JPEG) from the suffix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size, size, 3), colour, dtype=np.uint8)).save(path)


def test_load_image_folder_decodes_and_resizes(tmp_path):
    write_image(tmp_path / "train" / "bob" / "1.png", (0, 0, 255))
    write_image(tmp_path / "train" / "alice" / "1.png", (255, 0, 0))
    write_image(tmp_path / "train" / "alice" / "2.png", (0, 255, 0), size=30)
    (tmp_path / "train" / "alice" / "notes.txt").write_text("not an image")
    data = load_image_folder(tmp_path, "train", image_size=8, workers=1)
    assert data.classes == ["alice", "bob"]
    assert data.targets.tolist() == [0, 0, 1]
    assert data.images.shape == (3, 3, 8, 8) and data.images.dtype == torch.uint8
    assert data.images[:, :, 4, 4].tolist() == [[255, 0, 0], [0, 255, 0], [0, 0, 255]]  # files sorted by name


def test_missing_folder_names_the_expected_layout(tmp_path):
    with pytest.raises(UserError, match=r"\{train,test\}/<class name>"):
        load_image_folder(tmp_path / "nowhere", "train", image_size=8)
    (tmp_path / "empty" / "train" / "a").mkdir(parents=True)
    with pytest.raises(UserError, match=r"no images.*\{train,test\}/<class name>"):
        load_image_folder(tmp_path / "empty", "train", image_size=8)


def test_train_test_class_mismatch_is_a_clear_error(tmp_path):
    for split, name in (("train", "ann"), ("train", "ben"), ("test", "ann"), ("test", "cat")):
        write_image(tmp_path / split / name / "0.png", (9, 9, 9), size=8)
    with pytest.raises(UserError, match=r"different class folders.*\['ben'\].*\['cat'\]"):
        build_data(tmp_path, image_size=8)
    write_image(tmp_path / "test" / "ben" / "0.png", (9, 9, 9), size=8)
    write_image(tmp_path / "train" / "cat" / "0.png", (9, 9, 9), size=8)
    assert class_folders(tmp_path) == ["ann", "ben", "cat"]  # identical folders pass


def two_class_tree(root):
    """train/ and test/ with classes ann (red) and ben (blue), one 8x8 PNG each."""
    for split in ("train", "test"):
        write_image(root / split / "ann" / "0.png", (255, 0, 0), size=8)
        write_image(root / split / "ben" / "0.png", (0, 0, 255), size=8)
    return root


def test_hidden_folders_and_files_are_ignored(tmp_path):
    two_class_tree(tmp_path)
    for split in ("train", "test"):
        write_image(tmp_path / split / ".ipynb_checkpoints" / "0.png", (0, 255, 0), size=8)  # sorts before 'ann'
    (tmp_path / "train" / "ann" / "._0.png").write_bytes(b"macOS resource fork, not an image")
    assert class_folders(tmp_path) == ["ann", "ben"]
    data = build_data(tmp_path, image_size=8, val_ratio=0.0, workers=1)
    assert data.train.classes == ["ann", "ben"]
    assert data.train.targets.tolist() == [0, 1]
    assert data.train.images[:, :, 4, 4].tolist() == [[255, 0, 0], [0, 0, 255]]  # ann is still label 0


@pytest.mark.parametrize("split", ["train", "test"])
def test_empty_class_folder_names_the_split_and_the_folders(tmp_path, split):
    two_class_tree(tmp_path)
    other = "test" if split == "train" else "train"
    for i in range(7):
        (tmp_path / split / f"empty{i}").mkdir()
        write_image(tmp_path / other / f"empty{i}" / "0.png", (9, 9, 9), size=8)
    (tmp_path / split / "empty0" / "notes.txt").write_text("not an image")
    folder = re.escape(str(tmp_path / split))
    expected = rf"7 class folder\(s\) in {folder} hold no images \(first: \['empty0'.*'empty4'\]\)"
    with pytest.raises(UserError, match=expected + ".*both train and test") as caught:
        class_folders(tmp_path)
    assert "empty5" not in str(caught.value)
    with pytest.raises(UserError, match=expected):
        load_image_folder(tmp_path, split, image_size=8)


def test_build_data_decodes_both_splits_with_the_given_workers(tmp_path, monkeypatch):
    pools = []
    monkeypatch.setattr(folders, "ThreadPoolExecutor", lambda n: pools.append(n) or ThreadPoolExecutor(n))
    build_data(two_class_tree(tmp_path), image_size=8, val_ratio=0.0, workers=3)
    assert pools == [3, 3]


def truncated_jpeg(path):
    """A 64x64 noise JPEG cut in half: the header survives, so only decoding the pixels fails."""
    pixels = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    path.write_bytes(path.read_bytes()[:path.stat().st_size // 2])
    with Image.open(path) as img:
        assert img.size == (64, 64)  # PIL opens it without complaint


def random_bytes_jpeg(path):
    path.write_bytes(np.random.default_rng(0).bytes(300))


@pytest.mark.parametrize("corrupt, reason", [(truncated_jpeg, "truncated"), (random_bytes_jpeg, "not an image format")])
def test_undecodable_image_names_the_file(tmp_path, corrupt, reason):
    two_class_tree(tmp_path)
    bad = tmp_path / "train" / "ben" / "1.jpg"
    corrupt(bad)
    with pytest.raises(UserError, match=rf"cannot decode image {re.escape(str(bad))} \(.*{reason}.*\): remove or"):
        load_image_folder(tmp_path, "train", image_size=8, workers=2)  # raised inside the thread pool


def test_batch_loader_covers_each_index_once_per_pass_and_reshuffles():
    n = 30
    images = torch.arange(n, dtype=torch.uint8).view(n, 1, 1, 1).expand(n, 3, 2, 2).contiguous()
    data = ImageTensors(images, torch.arange(n), [str(i) for i in range(n)])  # label = index
    indices = torch.arange(0, n, 3)  # 10 of the 30 images
    loader = BatchLoader(data, indices, batch_size=4, shuffle=True, seed=0, tag="remain")
    assert len(loader) == 3
    passes = []
    for _ in range(2):
        batches = list(loader)
        assert [len(y) for _, y in batches] == [4, 4, 2]
        seen = torch.cat([y for _, y in batches])
        assert sorted(seen.tolist()) == indices.tolist()
        x0, y0 = batches[0]
        torch.testing.assert_close(x0[:, 0, 0, 0], y0.float() / 255)  # images in [0, 1], in step with labels
        passes.append(seen.tolist())
    assert passes[0] != passes[1]
    ordered = BatchLoader(data, indices, batch_size=4, drop_last=True)
    assert torch.cat([y for _, y in ordered]).tolist() == indices[:8].tolist()
    with pytest.raises(UserError):
        BatchLoader(data, torch.tensor([], dtype=torch.int64), batch_size=4)


def one_class_split(root, split: str = "train"):
    folder = root / split / "a"
    folder.mkdir(parents=True)
    return folder


def test_16_bit_grayscale_png_is_scaled_to_8_bits_not_saturated(tmp_path):
    """PIL opens a 16-bit grayscale PNG as mode I;16; plain convert('RGB') clips every value above 255 to 255."""
    values = np.array([[0, 128, 257, 1000], [30000, 32896, 65278, 65535]] * 2, dtype=np.uint16)
    Image.fromarray(values).save(one_class_split(tmp_path) / "deep.png")
    with Image.open(tmp_path / "train" / "a" / "deep.png") as img:
        assert img.mode.startswith("I")  # the case under test
    pixels = folders._decode(tmp_path / "train" / "a" / "deep.png", 4)
    expected = np.floor(values / 257 + 0.5).astype(np.uint8)  # nearest 8-bit value: 65535 -> 255, 32896 -> 128
    assert pixels.dtype == np.uint8 and pixels.shape == (4, 4, 3)
    for channel in range(3):
        np.testing.assert_array_equal(pixels[..., channel], expected[:4])


def test_float_image_mode_is_refused_in_one_line(tmp_path, monkeypatch):
    """A mode-F image (32-bit float: no fixed range) cannot be mapped to 8 bits without guessing."""
    path = one_class_split(tmp_path) / "float.png"
    Image.fromarray(np.zeros((4, 4), dtype=np.uint8)).save(path)
    real_open = Image.open
    monkeypatch.setattr(folders.Image, "open", lambda p: real_open(p).convert("F"))
    with pytest.raises(UserError, match=r"float.png has PIL mode F .*convert it to 8 or 16 bits") as err:
        folders._decode(path, 4)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("kind", ["loop", "dangling"])
def test_class_folder_that_is_a_broken_symlink_names_it(tmp_path, kind):
    """A class folder that is a symlink loop (or points nowhere) is an error, not a silently missing class."""
    for split in ("train", "test"):
        for name in ("a", "b"):
            (tmp_path / split / name).mkdir(parents=True)
            Image.fromarray(np.zeros((4, 4, 3), dtype=np.uint8)).save(tmp_path / split / name / "0.png")
    link = tmp_path / "train" / "c"
    link.symlink_to(link if kind == "loop" else tmp_path / "nowhere")
    with pytest.raises(UserError, match=f"{link} is a symlink loop or points to nothing"):
        class_folders(tmp_path)
