"""Embedding with a trained run, and flip-TTA through the shared inference loop."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from fieldvision.pipelines.reid import embed
from fieldvision.pipelines.reid.embed import embed_images


def test_embed_folder_and_csv(data, run, tmp_path):
    g = embed(run, data / "test", tmp_path / "g.npz", progress=False)
    assert g.embeddings.shape == (len(list((data / "test").glob("*.png"))), 16)
    np.testing.assert_allclose(np.linalg.norm(g.embeddings, axis=1), 1.0, rtol=1e-5)
    q = embed(run, data / "test_truth.csv", tmp_path / "q.npz", tta=False, progress=False,
              image_root=data / "test")  # fmt: skip
    assert q.identities is not None and q.meta["tta"] is False
    assert not np.allclose(q.embeddings, g.embeddings)  # TTA changes the embedding


class _Asymmetric(nn.Module):
    """Embedding = per-channel sums of the left and right image halves: a mirror swaps them."""

    embedding_dim = 6

    def forward(self, x):
        w = x.shape[-1] // 2
        emb = torch.cat([x[..., :w].sum((-1, -2)), x[..., w:].sum((-1, -2)) * 2.0], dim=1)
        return {"embedding": nn.functional.normalize(emb, dim=1)}


def test_flip_tta_is_the_normalised_mean_of_image_and_mirror(data):
    paths = sorted((data / "test").glob("*.png"))[:3]
    model = _Asymmetric()
    plain = embed_images(model, paths, (32, 32), batch_size=2, tta=False, device="cpu")
    tta = embed_images(model, paths, (32, 32), batch_size=2, tta=True, device="cpu")
    # Reference: embed each image and its mirror by hand.
    from fieldvision.data.images import read_rgba
    from fieldvision.data.transforms import EvalTransform, to_tensor

    ref = []
    for p in paths:
        img, mask = to_tensor(read_rgba(p))
        x, _ = EvalTransform((32, 32))(img, mask)
        a = model(x[None])["embedding"][0]
        b = model(x.flip(-1)[None])["embedding"][0]
        ref.append(nn.functional.normalize(a + b, dim=0).numpy())
    np.testing.assert_allclose(tta, np.stack(ref), rtol=1e-5, atol=1e-6)
    assert not np.allclose(plain, tta)
    np.testing.assert_allclose(np.linalg.norm(tta, axis=1), 1.0, rtol=1e-5)
