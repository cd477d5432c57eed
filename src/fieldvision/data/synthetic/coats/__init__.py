"""Procedural "rosette-coat" animals for re-identification demos and tests.

Each identity owns a fixed coat texture: a tawny ground with rosettes (rings of dark spots
around a slightly darker centre) and solid spots, like a jaguar's flank. Every image of
that identity shows the same coat on an animal-like silhouette (ellipse body, head, legs,
tail) under a new pose (affine + perspective warp, mirror), crop and scale, lighting,
blur, sensor noise, partial occlusion by foliage bars and a new background. Images are
RGBA: the alpha channel is the animal mask (occluded parts excluded), like the cut-outs of
the Kaggle Jaguar Re-ID data.

``background_leak`` is the fraction of identities that are *site-bound*: most of their
images (``home_prob``) show the same "home" scene (with jitter), the shortcut real
camera-trap data has (one animal, one site). The background-reliance diagnostic of the
pipeline is meant to find it.

Everything is deterministic in ``(seed, identity, image)`` and vectorised with OpenCV; a
128×128 image takes a few milliseconds.

Layout: `_identity` (`CoatIdentity`, `make_identity`: the coat texture), `_draw`
(sub-pixel ellipses, smooth noise), `_scene` (backgrounds, foliage, lighting), `_render`
(`render_coat_image`: silhouette, coat placement, pose) and `_dataset`
(`generate_coat_dataset`, `image_counts`, `SynthReIDSummary`).
"""

from fieldvision.data.synthetic.coats._dataset import (
    SynthReIDSummary,
    generate_coat_dataset,
    image_counts,
)
from fieldvision.data.synthetic.coats._identity import CoatIdentity, make_identity
from fieldvision.data.synthetic.coats._render import render_coat_image

__all__ = [
    "CoatIdentity",
    "SynthReIDSummary",
    "generate_coat_dataset",
    "image_counts",
    "make_identity",
    "render_coat_image",
]
