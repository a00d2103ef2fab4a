"""RemoteCLIP encoders (Section 2.3: e_i, e_t): strict local checkpoint loading and features.

Random-init ViT-B-32 weights stand in for RemoteCLIP's (nothing downloads); a handful of tiles.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import open_clip
import pandas as pd
import pytest
import rasterio
import torch
from conftest import write_dataset
from PIL import Image

from urbanmoe.config import load_config
from urbanmoe.data.table import DataError, load_dataset
from urbanmoe.data.tiles import read_tile
from urbanmoe.features.base import build_encoder, cache_file, encoder_settings
from urbanmoe.features.remoteclip import (
    RemoteCLIPImageEncoder,
    RemoteCLIPTextEncoder,
    _unwrap,
    check_state_dict,
    load_remoteclip,
    to_rgb_image,
)

N = 6


class _NotWeights:
    """A custom object: torch.load(weights_only=True) must refuse it."""

    def __init__(self) -> None:
        self.x = 1


def _random_state_dict(arch: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random-init weights of an open_clip arch, in float16 (half the bytes to write and read)."""
    torch.manual_seed(seed)
    return {k: v.half() for k, v in open_clip.create_model(arch, pretrained=None)
            .state_dict().items()}


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-init ViT-B-32 state dict saved like RemoteCLIP's (a plain dict of tensors)."""
    path = tmp_path_factory.mktemp("ckpt") / "RemoteCLIP-ViT-B-32.pt"
    torch.save(_random_state_dict("ViT-B-32"), path)
    return path


@pytest.fixture(scope="module")
def loaded(ckpt: Path) -> tuple:
    """``load_remoteclip`` of that checkpoint, loaded once for the module."""
    return load_remoteclip("ViT-B-32", ckpt, "cpu")


@pytest.fixture(scope="module")
def toy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six regions: 3-band PNG and 4-band uint16 GeoTIFF tiles of different sizes, and texts."""
    root = tmp_path_factory.mktemp("toy")
    (root / "tiles").mkdir()
    rng = np.random.default_rng(0)
    paths = []
    for i in range(N):
        if i % 2 == 0:
            rel = f"tiles/t{i}.png"
            Image.fromarray(rng.integers(0, 256, (40 + 8 * i, 48, 3), dtype=np.uint8)).save(
                root / rel)
        else:
            rel = f"tiles/t{i}.tif"
            arr = rng.integers(0, 4000, (4, 32, 32), dtype=np.uint16)
            with rasterio.open(root / rel, "w", driver="GTiff", width=32, height=32, count=4,
                               dtype="uint16") as dst:
                dst.write(arr)
        paths.append(rel)
    table = pd.DataFrame({
        "region_id": [f"r{i}" for i in range(N)],
        "carbon": rng.gamma(2.0, 50.0, N),
        "population": rng.gamma(2.0, 500.0, N),
        "text": [f"a dense area with {i} schools and {3 * i} shops near a river " * (1 + 9 * i)
                 for i in range(N)],  # the longest exceeds the 77-token context: truncated
        "image_path": paths,
    })
    return write_dataset(root, table)


def _settings(**rc: object) -> dict:
    cfg = load_config(None, ["features.image.encoder=remoteclip",
                             "features.text.encoder=remoteclip"])
    cfg["features"]["remoteclip"].update(rc)
    return cfg["features"]


def _refusal(path: Path, match: str) -> str:
    with pytest.raises(DataError, match=match) as exc:
        load_remoteclip("ViT-B-32", path)
    msg = str(exc.value)
    assert str(path) in msg and "\n" not in msg, msg
    return msg


def test_strict_load_of_a_plain_state_dict(ckpt: Path, loaded: tuple) -> None:
    model, preprocess, tokenizer = loaded
    saved = torch.load(ckpt, weights_only=True)
    assert model.state_dict().keys() == saved.keys()
    assert all(torch.equal(v, saved[k].to(v.dtype)) for k, v in model.state_dict().items())
    assert not model.training and tokenizer(["x"]).shape == (1, 77)


def test_wrappers_are_unwrapped(ckpt: Path, tmp_path: Path) -> None:
    sd = torch.load(ckpt, weights_only=True)
    assert _unwrap({"state_dict": sd}, ckpt) is not None
    assert _unwrap({f"module.{k}": v for k, v in sd.items()}, ckpt).keys() == sd.keys()
    path = tmp_path / "wrapped.pt"
    torch.save({"state_dict": {f"module.{k}": v for k, v in sd.items()}, "epoch": 3}, path)
    model, _, _ = load_remoteclip("ViT-B-32", path)
    assert torch.equal(model.state_dict()["text_projection"], sd["text_projection"].float())


def test_another_arch_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "RemoteCLIP-RN50.pt"
    torch.save(_random_state_dict("RN50"), path)
    msg = _refusal(path, "not an open_clip ViT-B-32 state dict")
    assert "missing keys" in msg and "unexpected keys" in msg


def test_shape_mismatch_is_refused(loaded: tuple, tmp_path: Path) -> None:
    model = loaded[0]
    sd = dict(model.state_dict())
    sd["text_projection"] = sd["text_projection"][:, :256]
    path = tmp_path / "narrow.pt"
    with pytest.raises(DataError, match=r"1 shape mismatches \(e\.g\. 'text_projection'"):
        check_state_dict(sd, model, "ViT-B-32", path)


def test_files_that_are_not_state_dicts_are_refused(tmp_path: Path) -> None:
    obj = tmp_path / "object.pt"
    torch.save(_NotWeights(), obj)
    _refusal(obj, "cannot be read as a RemoteCLIP checkpoint")
    text = tmp_path / "notes.txt"
    text.write_text("not a checkpoint\nat all\n")
    _refusal(text, "cannot be read as a RemoteCLIP checkpoint")
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    _refusal(empty, "cannot be read as a RemoteCLIP checkpoint")
    listed = tmp_path / "list.pt"
    torch.save([torch.zeros(2)], listed)
    _refusal(listed, "not a state dict")
    mixed = tmp_path / "mixed.pt"
    torch.save({"visual.proj": torch.zeros(2), "epoch": 3}, mixed)
    _refusal(mixed, "entry 'epoch' is not a tensor")
    _refusal(tmp_path / "missing.pt", "file not found")


def test_random_init_needs_the_flag(ckpt: Path) -> None:
    for modality in ("image", "text"):
        with pytest.raises(DataError, match="checkpoint is null.*allow_random_init"):
            build_encoder(modality, encoder_settings(_settings(), modality))
    enc = build_encoder("image", encoder_settings(_settings(allow_random_init=True), "image"))
    assert enc.identity()["checkpoint_sha256"] == "random-init"
    with pytest.raises(ValueError, match="features.remoteclip section was not passed"):
        build_encoder("text", {"encoder": "remoteclip"})


def test_band_order_is_undone(toy: Path) -> None:
    png, tif = toy / "tiles/t0.png", toy / "tiles/t1.tif"
    assert np.array_equal(np.asarray(to_rgb_image(read_tile(png))), np.asarray(Image.open(png)))
    with rasterio.open(tif) as src:
        b02, b03, b04 = (src.read(k).astype(np.float64) / 10000.0 for k in (1, 2, 3))
    rgb = np.asarray(to_rgb_image(read_tile(tif))).astype(np.float64)
    for channel, band in enumerate((b04, b03, b02)):
        assert np.abs(rgb[..., channel] - band * 255.0).max() <= 0.5 + 1e-3


def test_features_shape_norm_determinism_and_batch_size(loaded: tuple, ckpt: Path,
                                                         toy: Path) -> None:
    ds = load_dataset(toy)
    features = _settings(checkpoint=str(ckpt), batch_size=4, device="cpu")
    out = {}
    for modality, cls in (("image", RemoteCLIPImageEncoder), ("text", RemoteCLIPTextEncoder)):
        enc = build_encoder(modality, encoder_settings(features, modality))
        assert isinstance(enc, cls) and enc.modality == modality
        if modality == "image":
            enc._loaded = loaded  # the same weights, loaded once (the text encoder loads its own)
        a = enc.encode(ds, progress=False)
        assert a.shape == (N, 512) and a.dtype == np.float32 and np.isfinite(a).all()
        assert np.allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
        assert np.array_equal(a, enc.encode(ds, progress=False))
        enc.batch_size = N  # one batch of 6 instead of 4 + 2
        np.testing.assert_allclose(enc.encode(ds, progress=False), a, atol=1e-5)
        assert np.abs(a - a[0]).max() > 1e-3  # the rows differ
        ident = enc.identity()
        assert ident["arch"] == "ViT-B-32" and len(ident["checkpoint_sha256"]) == 64
        out[modality] = a
    # the text encoder's own load gives the checkpoint's model: same as encoding with `loaded`
    model, _, tokenizer = loaded
    with torch.no_grad():
        ref = model.encode_text(tokenizer(ds.texts[-2:]), normalize=True).numpy()
    np.testing.assert_allclose(out["text"][-2:], ref, atol=1e-5)


def test_cache_key_follows_the_checkpoint(toy: Path, tmp_path: Path) -> None:
    ds = load_dataset(toy)
    one, two = tmp_path / "one.pt", tmp_path / "two.pt"
    one.write_bytes(b"one")  # identity() only hashes the file: the model loads in encode()
    two.write_bytes(b"two")

    def key(**rc: object) -> Path:
        return cache_file(ds, build_encoder("image", encoder_settings(_settings(**rc), "image")),
                          tmp_path)

    keys = {key(checkpoint=str(one)), key(checkpoint=str(two)),
            key(allow_random_init=True), key(checkpoint=str(one), arch="RN50")}
    assert len(keys) == 4
    assert key(checkpoint=str(one), batch_size=7) == key(checkpoint=str(one))
