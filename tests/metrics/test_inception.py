"""pytorch-fid's Inception without downloads: weights resolution, random weights, parity with pytorch-fid."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import pytorch_fid.inception as pfi
import torch
from PIL import Image
from pytorch_fid.fid_score import calculate_fid_given_paths, get_activations
from pytorch_fid.inception import FID_WEIGHTS_URL, InceptionV3

from medsynth.metrics import inception
from medsynth.metrics.features import extract_features
from medsynth.metrics.fid import frechet_distance_from_features
from medsynth.metrics.inception import (
    FID_WEIGHTS_FILE,
    MissingWeightsError,
    build_fid_inception,
    download_fid_weights,
    fid_inception,
    pytorch_fid_state,
    random_fid_inception,
    random_state,
    resolve_fid_weights,
)


@pytest.fixture
def hub(tmp_path, monkeypatch) -> Path:
    """An empty torch hub folder and no $MEDSYNTH_FID_WEIGHTS."""
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.delenv(inception.WEIGHTS_ENV, raising=False)
    return tmp_path / "hub"


def _png_folder(root: Path, n: int, shift: int, seed: int) -> Path:
    root.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        pixels = np.clip(rng.integers(0, 200, (32, 32, 3)) + shift, 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(root / f"{i}.png")
    return root


def test_missing_weights_error_names_file_paths_and_command(hub):
    with pytest.raises(MissingWeightsError) as info:
        resolve_fid_weights()
    message = str(info.value)
    assert FID_WEIGHTS_FILE in message and str(hub / "checkpoints" / FID_WEIGHTS_FILE) in message
    assert "medsynth weights download" in message and "$MEDSYNTH_FID_WEIGHTS (not set)" in message
    assert isinstance(info.value, FileNotFoundError) and "\n" not in message


def test_weights_are_found_by_flag_then_environment_then_cache(hub, tmp_path, monkeypatch):
    cached = hub / "checkpoints" / FID_WEIGHTS_FILE
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"x")
    assert resolve_fid_weights() == cached
    env_file = tmp_path / "env.pth"
    env_file.write_bytes(b"x")
    monkeypatch.setenv(inception.WEIGHTS_ENV, str(env_file))
    assert resolve_fid_weights() == env_file
    flag_dir = tmp_path / "flag"
    (flag_dir / FID_WEIGHTS_FILE).parent.mkdir()
    (flag_dir / FID_WEIGHTS_FILE).write_bytes(b"x")
    assert resolve_fid_weights(flag_dir) == flag_dir / FID_WEIGHTS_FILE  # a folder holding the file
    with pytest.raises(MissingWeightsError, match="--weights .*nope.pth \\(missing\\)"):
        resolve_fid_weights(tmp_path / "nope.pth")  # an explicit path never falls back


def test_download_fetches_the_pytorch_fid_release_with_its_checksum(hub, tmp_path, monkeypatch):
    calls = []

    def fake_download(url, dst, hash_prefix=None, progress=True):
        calls.append((url, dst, hash_prefix))

    monkeypatch.setattr(torch.hub, "download_url_to_file", fake_download)
    assert download_fid_weights(tmp_path / "w", progress=False) == tmp_path / "w" / FID_WEIGHTS_FILE
    assert download_fid_weights(progress=False) == hub / "checkpoints" / FID_WEIGHTS_FILE
    assert calls == [(FID_WEIGHTS_URL, str(tmp_path / "w" / FID_WEIGHTS_FILE), "6726825d"),
                     (FID_WEIGHTS_URL, str(hub / "checkpoints" / FID_WEIGHTS_FILE), "6726825d")]


@pytest.fixture(scope="module")
def random_inception():
    """The seeded random FID network, and the torchvision network pytorch-fid built it from."""
    with pytorch_fid_state(random_state(0)) as built:
        InceptionV3([3])
    return random_fid_inception(0), built[-1].eval()


def _input(seed: int) -> torch.Tensor:
    """A small input: the network is fully convolutional, and 128² runs 5x faster than 299²."""
    return torch.rand(2, 3, 128, 128, generator=torch.Generator().manual_seed(seed))


def test_random_weights_are_seeded_useful_and_patch_nothing_for_good(random_inception):
    extractor, _ = random_inception
    x = _input(0)
    with torch.inference_mode():
        features, logits = extractor(x)
        again, _ = random_fid_inception(0)(x)
    assert features.shape == (2, 2048) and logits.shape == (2, 1008)
    torch.testing.assert_close(features, again, rtol=0, atol=0)
    assert features.std() > 1e-2  # He init keeps activations O(1); PyTorch's default gives ~1e-8
    assert pfi.load_state_dict_from_url.__module__ != inception.__name__  # the patch is gone


def test_logits_are_the_unbiased_final_layer_of_the_fid_network(random_inception):
    extractor, full = random_inception
    x = _input(1)
    with torch.inference_mode():
        _, logits = extractor(x)
        expected = full(2 * x - 1) - full.fc.bias  # torchvision forward, [-1, 1] input, bias removed
    torch.testing.assert_close(logits, expected, rtol=1e-4, atol=1e-4 * expected.abs().max().item())


def test_weights_file_gives_the_same_network(random_inception, tmp_path):
    extractor, full = random_inception
    torch.save(full.state_dict(), tmp_path / FID_WEIGHTS_FILE)
    from_file = fid_inception(tmp_path / FID_WEIGHTS_FILE)
    assert from_file.name == f"inception-v3-fid ({FID_WEIGHTS_FILE})"
    x = _input(2)
    with torch.inference_mode():
        torch.testing.assert_close(from_file(x), extractor(x), rtol=0, atol=0)


@pytest.mark.filterwarnings("ignore:The `disp` argument is deprecated")  # inside pytorch-fid
def test_folder_fid_equals_pytorch_fid_block0(tmp_path):
    """dims=64 (pytorch-fid's first block) keeps this fast; the pool3 version is the slow test below."""
    a, b = _png_folder(tmp_path / "a", 8, 0, 0), _png_folder(tmp_path / "b", 8, 40, 1)
    with pytorch_fid_state(random_state(3)):
        expected = calculate_fid_given_paths([str(a), str(b)], batch_size=4, device="cpu", dims=64,
                                             num_workers=0)
    ours = build_fid_inception(random_state(3), "random", dims=64)
    fa, fb = (extract_features(sorted(str(p) for p in d.glob("*.png")), ours, legacy=True, batch_size=3,
                               progress=False) for d in (a, b))
    assert frechet_distance_from_features(fa.features, fb.features) == pytest.approx(expected, rel=1e-5)


def test_clean_mode_features_equal_pytorch_fids_activations_on_8bit_pngs(random_inception, tmp_path):
    """Upsampled 8-bit PNGs: the clean pipeline feeds the network pytorch-fid's input (to float rounding);
    legacy mode is checked against pytorch-fid in the slow test below."""
    files = sorted((_png_folder(tmp_path / "a", 2, 0, 2)).glob("*.png"))
    with pytorch_fid_state(random_state(0)):
        model = InceptionV3([3])
    expected = get_activations(files, model, batch_size=2, num_workers=0)
    ours = extract_features([str(f) for f in files], random_inception[0], progress=False)
    np.testing.assert_allclose(ours.features, expected, rtol=0, atol=1e-5 * np.abs(expected).max())


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:The `disp` argument is deprecated")
@pytest.mark.filterwarnings("ignore:Matrix is singular")  # scipy sqrtm in pytorch-fid: 6 images, 2048 dims
def test_folder_fid_equals_pytorch_fid_calculate_fid_given_paths(random_inception, tmp_path):
    """The issue's parity test: pool3 features (2048-d), unpatched pytorch-fid, same random weights.
    Slow because pytorch-fid's scipy sqrtm of a 2048 × 2048 matrix takes ~45 s on 2 cores."""
    a, b = _png_folder(tmp_path / "a", 6, 0, 0), _png_folder(tmp_path / "b", 6, 40, 1)
    with pytorch_fid_state(random_state(0)):
        expected = calculate_fid_given_paths([str(a), str(b)], batch_size=6, device="cpu", dims=2048,
                                             num_workers=0)
    fa, fb = (extract_features(sorted(str(p) for p in d.glob("*.png")), random_inception[0], legacy=True,
                               progress=False) for d in (a, b))
    # float32 features agree to ~1e-6 relative (folded batch norms, channels-last kernels)
    assert frechet_distance_from_features(fa.features, fb.features) == pytest.approx(expected, rel=1e-5)
