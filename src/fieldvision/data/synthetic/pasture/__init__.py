"""Procedural pasture photos with CSIRO Image2Biomass labels, calibrated to the real table.

`generate_pasture_dataset` writes a dataset in the exact Kaggle layout (``train.csv``,
``test.csv``, ``train/*.jpg``, ``test/*.jpg``) plus ``test_truth.csv`` (the held-out test
labels, train format) and ``manifest.csv`` (how each image was rendered).

How it works
------------
*Labels.* A sampling event (date, state) and a species are drawn with the frequencies of
the real table's 30 (date, state) events and their species mix, so there are several
images per date (folds are grouped by date). Each component (green, dead, clover) is
zero with the species' zero probability (about 38 % of images have no clover) and
otherwise log-normal with species-specific mean and spread; part of that variance is a
shared per-(event, species) offset, as photos of one paddock on one day resemble each
other. Height grows with total biomass (log-log slope, plus noise), NDVI with the green
share and biomass. All constants were fitted once on the real ``train.csv`` by
`fit_calibration` and are baked into `CALIBRATION`, so generation needs no real data.

*Pixels.* The image is a soil background (colour by state) covered by three layers of
strokes: dead straw, clover trifoliates (round, bluish leaflets) and grass blades. Each
component's biomass is spread over the quadrat by its own smooth random density field,
and strokes are placed proportionally to it, so local tiles carry local biomass and the
total is an integral over the image. Cover saturates like ``1 - exp(-biomass / K)``; taller
swards have longer blades and hide more mass per visible area, and dense canopy is darker
(self-shading), so a model must read texture, not only count green pixels. Season shifts
colours (lush in spring, yellow in late summer), a smooth multiplicative lighting field
varies exposure, a quarter of the photos carry an orange camera date stamp in the
bottom-right corner and some a dark / metal / tape strip at the bottom. Labels then get a
few percent of multiplicative measurement noise; mass balance (GDM = green + clover,
total = green + dead + clover) is kept exactly in the written values.

Everything is a deterministic function of ``seed``.

Layout: `_schema` (Kaggle column names), `_calibration` (baked constants,
`fit_calibration`), `_labels` (`sample_pasture_table`), `_draw` (stroke canvas, fields,
stamp and strip), `_render` (`render_pasture`), `_dataset` (`generate_pasture_dataset`)
and `_stats` (`calibration_stats`, `calibration_report`).
"""

from fieldvision.data.synthetic.pasture._calibration import (
    CALIBRATION,
    REAL_SUMMARY,
    fit_calibration,
)
from fieldvision.data.synthetic.pasture._calibration import SpeciesParams as SpeciesParams
from fieldvision.data.synthetic.pasture._dataset import (
    SynthImage,
    SynthSummary,
    generate_pasture_dataset,
)
from fieldvision.data.synthetic.pasture._labels import sample_pasture_table
from fieldvision.data.synthetic.pasture._render import RenderInfo as RenderInfo
from fieldvision.data.synthetic.pasture._render import render_pasture
from fieldvision.data.synthetic.pasture._schema import COMPONENT_NAMES
from fieldvision.data.synthetic.pasture._schema import (
    KAGGLE_TEST_COLUMNS as KAGGLE_TEST_COLUMNS,
)
from fieldvision.data.synthetic.pasture._schema import (
    KAGGLE_TRAIN_COLUMNS as KAGGLE_TRAIN_COLUMNS,
)
from fieldvision.data.synthetic.pasture._schema import TARGET_NAMES as TARGET_NAMES
from fieldvision.data.synthetic.pasture._stats import calibration_report, calibration_stats

__all__ = [
    "CALIBRATION",
    "COMPONENT_NAMES",
    "REAL_SUMMARY",
    "SynthImage",
    "SynthSummary",
    "calibration_report",
    "calibration_stats",
    "fit_calibration",
    "generate_pasture_dataset",
    "render_pasture",
    "sample_pasture_table",
]
