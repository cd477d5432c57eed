"""Procedural rice-leaf photos for multiple-instance learning (image labels, few small lesions).

The class of a photo is decided by a few small regions: 1–4 lesions covering 0.2–3 % of
the frame, while the rest of the high-resolution image is healthy leaf and clutter. Only
image labels are meant for training; the saved lesion masks measure localisation.

What an image shows
-------------------
*Scene.* One to three long rice blades (pointed tips, parallel veins and a pale midrib,
the fold along the midrib, a specular sheen, tip yellowing) fill a large part of the
frame over an out-of-focus field: soil with clods, paddy water with ripples and sky
reflections, foliage, or a mix, with blurred stray blades and straws. Blades cast soft
shadows onto what lies below them.

*Classes.* ``healthy`` plus up to three diseases with distinct looks (see `_lesions`):
``blast`` (spindles, grey-white centre, brown margin), ``brown_spot`` (round dark-brown
spots in a yellow halo) and ``blight`` (wavy yellow-orange streaks along the margin or a
vein). Lesions sit on the visible leaf and follow the blade's axis.

*Hard negatives.* Every class, healthy included, gets lesion-like marks at the same rate
(``distractors``: the probability of any): mud specks, water drops with glints, glare
streaks, straw / dead-leaf / weed debris and dead-tip browning (see `_distractors`). They
never enter the lesion mask.

*Light and camera.* Illumination gradient, vignette, dappled canopy shadows, colour cast,
lens blur, sensor noise, gamma and a JPEG round trip.

*Plots.* `generate_leaf_dataset` assigns images to field plots (``group``); a plot fixes
the background kind and colours, leaf green, light and camera, each image jittering them.

Everything is deterministic in ``(seed, image index)`` and vectorised with NumPy / OpenCV.

Layout: `_draw` (crops, polygons, noise), `_scene` (`SceneStyle`, backgrounds), `_leaf`
(`Blade`, veins, compositing), `_lesions` (`LEAF_CLASSES`, disease looks, area budget),
`_distractors`, `_camera` (light, blur, noise, JPEG), `_render` (`render_leaf`,
`render_leaf_layers`) and `_dataset` (`generate_leaf_dataset`, `SynthMILSummary`).
"""

from fieldvision.data.synthetic.leaves._dataset import SynthMILSummary, generate_leaf_dataset
from fieldvision.data.synthetic.leaves._distractors import DISTRACTOR_KINDS
from fieldvision.data.synthetic.leaves._lesions import LEAF_CLASSES, LESION_FRACTION
from fieldvision.data.synthetic.leaves._render import LeafLayers, render_leaf, render_leaf_layers
from fieldvision.data.synthetic.leaves._scene import BACKGROUND_KINDS, SceneStyle, make_style

__all__ = [
    "BACKGROUND_KINDS",
    "DISTRACTOR_KINDS",
    "LEAF_CLASSES",
    "LESION_FRACTION",
    "LeafLayers",
    "SceneStyle",
    "SynthMILSummary",
    "generate_leaf_dataset",
    "make_style",
    "render_leaf",
    "render_leaf_layers",
]
