"""Suite-wide test settings."""

from __future__ import annotations

import torch

# The suite runs on 2 pytest-xdist workers on 2 cores: one intra-op thread per worker avoids
# oversubscription, which makes tiny CPU convolutions two orders of magnitude slower.
torch.set_num_threads(1)
