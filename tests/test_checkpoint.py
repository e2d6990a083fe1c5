"""The one save and load path: round trip, checkpoints that do not fit, bare and original-format state dicts."""
import contextlib
import errno
import os

import pytest
import torch

from model import build_model, load_model_weights
from util.checkpoint import load_checkpoint, save_checkpoint
from util.errors import UserError

MODEL_ARGS = dict(net="vit_face_tiny", head="cosface", num_classes=5, depth=2, image_size=16)


@pytest.fixture
def source():
    torch.manual_seed(0)
    return build_model(**MODEL_ARGS).eval()


@pytest.fixture
def batch():
    gen = torch.Generator().manual_seed(1)
    return torch.rand(3, 3, 16, 16, generator=gen), torch.tensor([0, 3, 4])


def outputs(model, batch):
    with torch.no_grad():
        return model(*batch)[0]


def test_round_trip_keeps_weights_and_model_args(tmp_path, source, batch):
    path = tmp_path / "sub" / "best.pth"
    save_checkpoint(path, model=source.state_dict(), model_args=MODEL_ARGS, task=2)
    assert path.is_file() and not list(path.parent.glob("*.tmp"))
    content = load_checkpoint(path)
    assert content["model_args"] == MODEL_ARGS and content["task"] == 2
    torch.manual_seed(9)
    rebuilt = build_model(**content["model_args"]).eval()
    load_model_weights(rebuilt, content["model"])
    torch.testing.assert_close(outputs(rebuilt, batch), outputs(source, batch))


def test_wrong_depth_names_the_unexpected_block_keys(source):
    deeper = build_model(**{**MODEL_ARGS, "depth": 3})
    with pytest.raises(UserError, match=r"unexpected: backbone\.blocks\.2\.") as err:
        load_model_weights(source, deeper.state_dict())
    assert "\n" not in str(err.value)
    shallower = build_model(**{**MODEL_ARGS, "depth": 1})
    with pytest.raises(UserError, match=r"missing: backbone\.blocks\.1\."):
        load_model_weights(source, shallower.state_dict())


def test_missing_and_mis_shaped_keys_are_named(source):
    state = source.state_dict()
    del state["head.weight"]
    with pytest.raises(UserError, match=r"missing: head\.weight"):
        load_model_weights(source, state)
    other_classes = build_model(**{**MODEL_ARGS, "num_classes": 7}).state_dict()
    with pytest.raises(UserError, match=r"shape mismatch: head\.weight \(7, 32\) vs model \(5, 32\)"):
        load_model_weights(source, other_classes)


def test_bare_state_dict_loads(tmp_path, source, batch):
    path = tmp_path / "bare.pth"
    torch.save(source.state_dict(), path)
    content = load_checkpoint(path)
    assert set(content) == {"model"}
    target = build_model(**MODEL_ARGS).eval()
    load_model_weights(target, content["model"])
    torch.testing.assert_close(outputs(target, batch), outputs(source, batch))


def test_original_format_checkpoint_loads_through_conversion(tmp_path, source, batch):
    renames = [("backbone.patch_embed.", "patch_to_embedding."), ("backbone.norm.", "mlp_head.0."),
               ("head.weight", "loss.weight"), ("backbone.", ""),
               (".norm1.", ".0.fn.norm."), (".attn.qkv.", ".0.fn.fn.to_qkv."), (".attn.proj.", ".0.fn.fn.to_out.0."),
               (".norm2.", ".1.fn.norm."), (".mlp.fc1.", ".1.fn.fn.net.0."), (".mlp.fc2.", ".1.fn.fn.net.3."),
               ("blocks.", "transformer.layers.")]
    original = {}
    for key, value in source.state_dict().items():
        for ours, theirs in renames:
            key = key.replace(ours, theirs)
        original[key] = value
    assert "transformer.layers.1.1.fn.fn.net.3.weight" in original and "cls_token" in original
    original["transformer.layers.0.1.fn.fn.net.0.lora_A"] = torch.ones(8, 32)  # dropped by the conversion
    path = tmp_path / "Backbone_VIT_original.pth"
    torch.save(original, path)
    target = build_model(**MODEL_ARGS).eval()
    load_model_weights(target, load_checkpoint(path)["model"])
    torch.testing.assert_close(outputs(target, batch), outputs(source, batch))


def test_unreadable_or_absent_files_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="not found"):
        load_checkpoint(tmp_path / "absent.pth")
    junk = tmp_path / "junk.pth"
    junk.write_text("not a checkpoint")
    with pytest.raises(UserError, match="cannot read checkpoint"):
        load_checkpoint(junk)


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS])
def test_failed_save_is_one_line_and_leaves_no_temporary_file(tmp_path, monkeypatch, code):
    """A disk that fills up (or turns read-only) halfway through a save: a UserError naming the file, no .tmp left,
    and the checkpoint that was there is intact."""
    path = tmp_path / "best.pth"
    save_checkpoint(path, model={"w": torch.zeros(2)})
    before = path.read_bytes()

    def failing_save(content, file):
        with (open(file, "wb") if isinstance(file, (str, os.PathLike)) else contextlib.nullcontext(file)) as fh:
            fh.write(b"partial")
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(torch, "save", failing_save)
    with pytest.raises(UserError, match=f"cannot use {path} \\({os.strerror(code)}\\); ") as err:
        save_checkpoint(path, model={"w": torch.ones(2)})
    assert "\n" not in str(err.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pth"] and path.read_bytes() == before
