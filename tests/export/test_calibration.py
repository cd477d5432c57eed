"""Calibration images: chosen deterministically, read exactly as each pipeline's predict reads
them, and refused clearly when a folder holds nothing usable."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from fieldvision.config import load_config
from fieldvision.data.images import write_image
from fieldvision.errors import DataError
from fieldvision.export.calibration import (
    FeedReader,
    biomass_meta,
    choose,
    load_image_set,
    model_feeds,
    tta_views,
)
from fieldvision.pipelines.biomass import BiomassConfig
from fieldvision.pipelines.mil import MILConfig
from fieldvision.pipelines.reid import ReIDPipelineConfig

CONFIGS = {"biomass": BiomassConfig, "reid": ReIDPipelineConfig, "mil": MILConfig}


def test_choice_is_deterministic_spread_and_capped():
    assert choose(10, 4).tolist() == [0, 2, 5, 7]
    assert choose(3, 64).tolist() == [0, 1, 2]
    picks = choose(1000, 64)
    assert len(set(picks.tolist())) == 64 and picks[0] == 0 and picks[-1] == 984  # 63*1000//64


@pytest.mark.parametrize("kind", sorted(CONFIGS))
def test_a_folder_without_images_names_the_folder_and_what_it_holds(kind, tmp_path):
    folder = tmp_path / "calib"
    (folder / "sub").mkdir(parents=True)
    (folder / "notes.txt").write_text("no photos here")
    (folder / "sub" / "table.csv").write_text("a,b\n")
    cfg = load_config(CONFIGS[kind])
    with pytest.raises(
        DataError,
        match=r"calib: no usable images \(found 2 file\(s\) "
        r"\(1 \.txt, 1 \.csv\) and 1 folder\(s\), none an image\)",
    ):
        load_image_set(folder, kind, cfg)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match=r"empty: no usable images \(found nothing\)"):
        load_image_set(empty, kind, cfg)
    with pytest.raises(DataError, match="no such file or folder"):
        load_image_set(tmp_path / "absent", kind, cfg)


def test_unreadable_images_are_skipped_and_none_readable_is_an_error(tmp_path):
    cfg = load_config(ReIDPipelineConfig, overrides=["data.image_size=[32,32]"])
    folder = tmp_path / "calib"
    folder.mkdir()
    (folder / "broken.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match=r"found 1 image file\(s\), none readable: broken.png"):
        load_image_set(folder, "reid", cfg)
    write_image(folder / "good.png", np.full((40, 50, 3), 120, np.uint8))
    images = load_image_set(folder, "reid", cfg)
    assert images.names == ["good.png"] and images.found == 2
    assert images.skipped and images.skipped[0].startswith("broken.png: ")
    assert images.arrays["image"][0].shape == (3, 32, 32)


def test_feed_reader_yields_every_feed_and_rewinds():
    feeds = [{"image": np.zeros((1, 3, 4, 4), np.float32)} for _ in range(3)]
    reader = FeedReader(feeds)
    assert len([reader.get_next() for _ in range(3)]) == 3 and reader.get_next() is None
    reader.rewind()
    assert reader.get_next() is not None


# ----------------------------------------------------------------- same inputs as predict


def test_reid_inputs_are_what_embed_feeds_the_model(tmp_path):
    import fieldvision.models.reid  # noqa: F401
    from fieldvision.data.synthetic.coats import generate_coat_dataset
    from fieldvision.models.registry import create_model
    from fieldvision.pipelines.reid.embed import embed_images

    data = tmp_path / "data"
    generate_coat_dataset(data, n_identities=3, per_id=3, seed=0, size=(40, 48))
    cfg = load_config(ReIDPipelineConfig, overrides=["data.image_size=[32,32]"])
    images = load_image_set(data, "reid", cfg, n=5)  # the Kaggle layout's train side
    assert images.labels is not None and len(images) == 5
    torch.manual_seed(0)
    model = create_model("reid_embedder", {"backbone": "fv_tiny_cnn", "embedding_dim": 8}).eval()
    entry = {"registry_name": "reid_embedder", "inputs": [{"name": "image"}]}
    with torch.no_grad():
        ours = np.concatenate(
            [
                model(torch.from_numpy(f["image"]))["embedding"].numpy()
                for f in model_feeds(entry, images, batch=2)
            ]
        )
    want = embed_images(model, images.paths, (32, 32), tta=False, device="cpu")
    ours /= np.linalg.norm(ours, axis=1, keepdims=True)
    np.testing.assert_allclose(ours, want, atol=1e-5)


def test_biomass_images_are_cleaned_and_scaled_as_the_dataset_serves_them(tmp_path):
    from fieldvision.data.synthetic.pasture import generate_pasture_dataset
    from fieldvision.pipelines.biomass.inputs import load_test_data, make_dataset

    data = tmp_path / "data"
    generate_pasture_dataset(data, n_train=4, n_test=3, size=(64, 128), seed=1, progress=False)
    cfg = load_config(
        BiomassConfig,
        overrides=[
            "data.clean.size=[32,64]",
            f"data.cache_dir={tmp_path / 'cache'}",
            "train.progress=false",
        ],
    )
    images = load_image_set(data / "test.csv", "biomass", cfg)
    assert images.labels is None and len(images) == 3
    train = load_image_set(data, "biomass", cfg)  # the folder: its train.csv, labelled
    assert train.labels is not None and train.labels.shape == (4, 5)
    test = load_test_data(data, cfg)
    dataset = make_dataset(test.paths, test.cache, {}, cfg)
    entry = {"registry_name": "biomass_phase2", "inputs": [{"name": "image"}, {"name": "meta"}]}
    meta = np.arange(12, dtype=np.float32).reshape(3, 4)
    (feed,) = model_feeds(entry, images, meta)
    want = np.stack([dataset[i]["image"].numpy() for i in range(3)])
    np.testing.assert_array_equal(feed["image"], want)
    np.testing.assert_array_equal(feed["meta"], meta)
    with pytest.raises(ValueError, match="meta input"):
        model_feeds(entry, images)


def test_mil_bags_are_the_tiles_and_view_the_predictor_cuts(tmp_path):
    from fieldvision.data.mil import BagStore
    from fieldvision.ops.glance import cut_tiles
    from fieldvision.pipelines.mil.inputs import bag_spec, read_samples

    folder = tmp_path / "leaves"
    rng = np.random.default_rng(0)
    for c in ("healthy", "spot"):
        for i in range(3):
            write_image(folder / c / f"{i}.png", rng.integers(0, 255, (48, 64, 3), np.uint8))
    cfg = load_config(
        MILConfig,
        overrides=[
            "data.grid=[2,2]",
            "data.min_tile_px=8",
            "expert.tile_size=16",
            "scouter.input_size=[24,24]",
        ],
    )
    images = load_image_set(folder, "mil", cfg, n=4)
    assert images.labels == ["healthy", "healthy", "spot", "spot"]
    store = BagStore(read_samples(folder, cfg), bag_spec(cfg))
    image = store.load_image(0)
    tiles = cut_tiles(image, store.boxes_for(48, 64), 16).numpy()
    expert = {"registry_name": "mil_expert", "inputs": [{"name": "tiles"}]}
    scouter = {"registry_name": "mil_scouter", "inputs": [{"name": "image"}]}
    feeds = model_feeds(expert, images)
    assert len(feeds) == 4 and feeds[0]["tiles"].shape == (4, 3, 16, 16)
    np.testing.assert_array_equal(feeds[0]["tiles"], tiles)
    (views,) = model_feeds(scouter, images, batch=8)
    np.testing.assert_array_equal(views["image"][0], store.scout_view(image).numpy())


def test_biomass_meta_averages_folds_over_the_tta_views():
    class Fake:  # an ONNX-session stand-in: outputs depend on the (flipped) image
        def __init__(self, k):
            self.k = k

        def get_outputs(self):
            return [type("O", (), {"name": n})() for n in ("month", "ndvi", "height")]

        def run(self, names, feed):
            x = feed["image"]
            left = x[..., : x.shape[-1] // 2].mean((1, 2, 3))  # changes under h-flip
            month = np.stack([left, np.full_like(left, self.k)], axis=1)
            return [month, left * 0 + self.k, x[:, :, :1].mean((1, 2, 3))]

    from fieldvision.export.calibration import ImageSet

    img = np.zeros((3, 4, 8), np.uint8)
    img[..., :4] = 255  # the left half is white
    images = ImageSet("mem", "biomass", ["a"], [Path("a.png")], {"image": [img]})
    meta = biomass_meta([Fake(1.0), Fake(3.0)], images, tta=True)
    # month_sin: identity 1, h-flip 0, v-flip 1 -> 2/3; month_cos, ndvi: fold mean 2;
    # height: the top row, half white under every view -> 0.5.
    np.testing.assert_allclose(meta, [[2 / 3, 2.0, 2.0, 0.5]], atol=1e-6)
    assert tta_views(False) == [(False, False)] and len(tta_views(True, vertical=False)) == 2
