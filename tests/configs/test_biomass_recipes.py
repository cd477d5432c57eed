"""The packaged real-backbone biomass recipes: they load, validate and build their models."""

from __future__ import annotations

import pytest
import timm
import torch

from fieldvision.config import load_config, recipe_path
from fieldvision.models.biomass import Phase1Model, Phase2Model
from fieldvision.pipelines.biomass.config import BiomassConfig

# recipe -> (timm backbone, the input multiple it needs: ConvNeXt stride, ViT patch)
RECIPES = {
    "biomass_convnextv2_tiny": ("convnextv2_tiny", 32),
    "biomass_dinov3_vitb": ("vit_base_patch16_dinov3", 16),
}


def _sizes(cfg: BiomassConfig) -> dict[str, tuple[int, int]]:
    """Every (H, W) a backbone of the recipe sees."""
    (h, w), (rows, cols) = cfg.data.clean.size, cfg.phase2.tile_grid
    p1h, p1w = cfg.phase1.input_size
    return {
        "phase1 half": (p1h, p1w // 2),
        "phase2 global": tuple(cfg.phase2.global_size),
        "phase2 tile": tuple(cfg.phase2.tile_input or (h // rows, w // cols)),
    }


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_recipe_loads_validates_and_fits_its_backbone(name):
    backbone, multiple = RECIPES[name]
    assert recipe_path(name).read_text(encoding="utf-8").startswith("# Real-run recipe")
    cfg = load_config(BiomassConfig, name)
    assert timm.is_model(backbone)  # the name exists in the installed timm
    for phase in (cfg.phase1, cfg.phase2):
        assert phase.backbone == backbone
        assert phase.pretrained is False  # the weights path comes from --set
        assert phase.backbone_lr_ratio == pytest.approx(0.1)
        assert phase.freeze_backbone_epochs == 1
    assert cfg.train.accumulate_grad_batches == 4 and cfg.train.precision == "auto"
    h, w = cfg.data.clean.size
    rows, cols = cfg.phase2.tile_grid
    assert h % rows == 0 and w % cols == 0 and w == 2 * h  # whole tiles of a 2:1 photo
    for what, size in _sizes(cfg).items():
        assert all(s % multiple == 0 for s in size), (what, size)


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_recipe_takes_the_weights_files_from_set(name):
    sets = [
        "phase1.pretrained=weights/p1.safetensors",
        "phase2.pretrained=weights/p2.safetensors",
    ]
    cfg = load_config(BiomassConfig, name, sets)
    assert (cfg.phase1.pretrained, cfg.phase2.pretrained) == (
        "weights/p1.safetensors",
        "weights/p2.safetensors",
    )


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(RECIPES))
def test_recipe_models_build_and_run_forward(name):
    # Random weights, the recipe's backbone and heads; a small input keeps CPU time low
    # (the full-size views are checked above to be multiples of the backbone's stride).
    cfg = load_config(
        BiomassConfig,
        name,
        ["phase1.input_size=[64,128]", "phase2.global_size=[64,128]"],
    )
    torch.manual_seed(0)
    phase2 = Phase2Model(cfg.phase2, meta_dim=4).eval()
    phase1 = Phase1Model(cfg.phase1, n_species=3, n_states=2).eval()
    image = torch.rand(2, 3, 128, 256)  # tiles of 64x64
    with torch.no_grad():
        out = phase2(image, torch.zeros(2, 4))
        meta = phase1(image)
    assert out["targets"].shape == (2, 5) and torch.isfinite(out["targets"]).all()
    assert out["tile_weights"].shape == (2, 8)
    assert meta["species"].shape == (2, 3) and meta["ndvi"].shape == (2,)
