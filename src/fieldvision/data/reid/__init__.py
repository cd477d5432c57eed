"""Re-identification data: readers, validation, splits, a torch Dataset and embedding files.

Three input layouts are read into one validated container, `ReIDSamples`:

* **folders**: ``root/<identity>/<image>`` (one folder per identity), or
  ``root/<identity>/<camera>/<image>`` (one sub-folder per camera or site);
* **csv**: a table with an image column, an identity column and optionally a camera
  column (images relative to the CSV's folder or to ``image_root``);
* **kaggle** (Jaguar Re-ID): ``train.csv`` (``filename, ground_truth``), ``train/``
  images, ``test.csv`` (``row_id, query_image, gallery_image``) over ``test/`` images, and
  optionally ``test_truth.csv`` (identities of the test images, for evaluation).
  Kaggle's nested ``train/train/`` folders are found too. Column names are arguments.

Camera ids (`ReIDSamples.cameras`) come from the data: the camera sub-folders, or the
``camera`` column of a table when it has one. Re-ID evaluation needs them to exclude
gallery images of the query's identity from the query's camera (the Market-1501 rule).

Every problem a user can fix is a `DataError` naming the file and row (CSV rows are
counted from 1 after the header; the file line is given too), including image names that
would leave their image folder (``../x.png``, ``/abs/x.png``). Identities with a single
image cannot be closed-set queries: `closed_set_queries` excludes them from the queries
(they stay in the gallery) and returns a `SingletonReport` for the caller to print.

Embedding files (`save_embeddings` / `load_embeddings`) are ``.npz`` archives with
``embeddings`` float32[N, D], ``names`` str[N], optional ``identities`` str[N] and ``meta``
(a JSON string).

Layout: `samples` (containers), `readers` (folders, CSV, image lists, `detect_layout`,
`check_images`), `kaggle` (`read_pairs`, `read_kaggle`), `splits`, `dataset`
(`ReIDDataset`) and `embeddings` (embedding files); `fieldvision.data.checks` holds the
validation shared with other readers. Only `ReIDDataset` imports torch; it is imported on
first use, so the ONNX deploy path reads images and writes embeddings without torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fieldvision.data.checks import IMAGE_EXTENSIONS
from fieldvision.data.reid.embeddings import load_embeddings, save_embeddings
from fieldvision.data.reid.kaggle import read_kaggle, read_pairs
from fieldvision.data.reid.readers import (
    check_images,
    detect_layout,
    read_identity_csv,
    read_identity_folders,
    read_image_list,
)
from fieldvision.data.reid.samples import (
    EmbeddingSet,
    KaggleReID,
    ReIDSamples,
    SingletonReport,
    Split,
)
from fieldvision.data.reid.splits import closed_set_queries, closed_set_split, open_set_split

if TYPE_CHECKING:
    from fieldvision.data.reid.dataset import ReIDDataset

__all__ = [
    "IMAGE_EXTENSIONS",
    "EmbeddingSet",
    "KaggleReID",
    "ReIDDataset",
    "ReIDSamples",
    "SingletonReport",
    "Split",
    "check_images",
    "closed_set_queries",
    "closed_set_split",
    "detect_layout",
    "load_embeddings",
    "open_set_split",
    "read_identity_csv",
    "read_identity_folders",
    "read_image_list",
    "read_kaggle",
    "read_pairs",
    "save_embeddings",
]


def __getattr__(name: str) -> Any:
    if name == "ReIDDataset":
        from fieldvision.data.reid.dataset import ReIDDataset

        return ReIDDataset
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
