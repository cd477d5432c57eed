"""ReIDSystem: losses, mixup, triplet, retrieval validation, fit and checkpoint contents."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from fieldvision.data.samplers import PKSampler
from fieldvision.models.losses import MarginLossConfig
from fieldvision.models.reid import ReIDModel, ReIDModelConfig
from fieldvision.training.optim import OptimConfig
from fieldvision.training.reid import ReIDSystem, retrieval_scores
from fieldvision.training.trainer import build_trainer, fit_resumable


class _Blobs(Dataset):
    """Images whose colour identifies the class (learnable in a few steps)."""

    def __init__(self, n_per: int = 6, n_cls: int = 4, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.labels = torch.arange(n_cls).repeat_interleave(n_per)
        base = torch.rand(n_cls, 3, 1, 1, generator=g)
        noise = 0.1 * torch.randn(len(self.labels), 3, 16, 16, generator=g)
        self.images = (base[self.labels] + noise).clamp(0, 1)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict:
        return {"image": self.images[i], "label": self.labels[i], "index": i}


def _model(embedding_dim: int = 8) -> ReIDModel:
    torch.manual_seed(0)
    return ReIDModel(ReIDModelConfig(backbone="fv_tiny_cnn", embedding_dim=embedding_dim))


def _batch(n_per: int = 4, n_cls: int = 3) -> dict:
    ds = _Blobs(n_per, n_cls)
    return {"image": ds.images, "label": ds.labels, "index": torch.arange(len(ds))}


@pytest.mark.parametrize(
    ("loss", "mixup", "has_triplet"),
    [
        (MarginLossConfig(loss="arcface"), {}, False),
        (MarginLossConfig(loss="cosface", triplet_weight=1.0), {}, True),
        # Triplet loss is skipped on mixed batches (a mixed image has no single identity).
        (
            MarginLossConfig(loss="softmax", triplet_weight=1.0),
            {"mixup_alpha": 0.4, "mixup_prob": 1.0},
            False,
        ),
        (None, {"mixup_alpha": 0.4, "mixup_prob": 0.0}, False),  # never mixed: plain arcface
    ],
)
def test_train_step_losses_and_gradients(loss, mixup, has_triplet):
    system = ReIDSystem(_model(), num_classes=3, loss=loss, **mixup)
    out = system._shared_step(_batch(), "train")
    assert out.loss.ndim == 0 and torch.isfinite(out.loss)
    assert 0 <= float(out.logs["acc"]) <= 1 and out.collect == {}
    assert ("triplet" in out.logs) is has_triplet
    if has_triplet:  # the total adds the weighted triplet term to the identity loss
        want = out.logs["cls"] + system.loss_cfg.triplet_weight * out.logs["triplet"]
        torch.testing.assert_close(out.loss.detach(), want)
    else:
        torch.testing.assert_close(out.loss.detach(), out.logs["cls"])
    out.loss.backward()
    assert system.head.weight.grad is not None
    assert next(system.model.backbone.parameters()).grad is not None


def test_val_step_collects_embeddings_and_no_loss():
    system = ReIDSystem(_model(), num_classes=3).eval()
    batch = _batch()
    with torch.no_grad():
        out = system._shared_step(batch, "val")
    assert out.loss is None and out.logs == {}
    assert set(out.collect) == {"embedding", "label", "index"}
    assert out.collect["embedding"].shape == (12, 8)
    torch.testing.assert_close(out.collect["embedding"].norm(dim=1), torch.ones(12))
    torch.testing.assert_close(out.collect["index"], batch["index"])


def test_mixup_stream_follows_the_seed():
    def losses(seed: int) -> list[float]:
        system = ReIDSystem(_model(), 3, mixup_alpha=0.4, mixup_prob=0.5, seed=seed)
        with torch.no_grad():
            return [float(system._shared_step(batch, "train").loss) for _ in range(4)]

    batch = _batch()

    assert losses(3) == losses(3)
    assert losses(3) != losses(4)


def test_loss_and_model_narrow_from_one_pipeline_section():
    class _Section(ReIDModelConfig, MarginLossConfig):
        pass

    section = _Section(backbone="fv_tiny_cnn", embedding_dim=8, loss="cosface", margin=0.2)
    system = ReIDSystem(ReIDModel(section), num_classes=3, loss=section)
    assert type(system.loss_cfg) is MarginLossConfig and system.loss_cfg.margin == 0.2
    assert system.hparams["loss"] == MarginLossConfig(loss="cosface", margin=0.2).model_dump()
    assert system.hparams["model_record"]["config"]["embedding_dim"] == 8
    assert "loss" not in system.hparams["model_record"]["config"]  # the model's own fields


def test_retrieval_scores_reference():
    # Two tight clusters: every query finds its match first.
    emb = np.array([[1, 0], [0.99, 0.14], [0, 1], [0.14, 0.99]], np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    labels = np.array([0, 0, 1, 1])
    s = retrieval_scores(emb, labels, np.array([True, False, True, False]))
    assert s["map"] == pytest.approx(1.0) and s["rank1"] == 1.0 and s["n_queries"] == 2
    # Crossed labels: the true match is never the nearest.
    s = retrieval_scores(emb, np.array([0, 1, 1, 0]), np.ones(4, bool))
    assert s["rank1"] == 0.0 and s["map"] == pytest.approx(5 / 12)  # matches at ranks 2, 3, 2, 3
    empty = retrieval_scores(emb, labels, np.zeros(4, bool))
    assert np.isnan(empty["map"]) and empty["n_queries"] == 0
    single = retrieval_scores(emb[:1], labels[:1], np.ones(1, bool))
    assert np.isnan(single["rank1"]) and single["n_queries"] == 0


def test_epoch_metrics_reorder_by_index_and_apply_the_query_mask():
    emb = torch.tensor([[1, 0], [0.99, 0.14], [0, 1], [0.14, 0.99]])
    emb = emb / emb.norm(dim=1, keepdim=True)
    labels = torch.tensor([0, 0, 1, 1])
    # Item 1 is the only query; its match (item 0) is its nearest neighbour.
    mask = np.array([False, True, False, False])
    system = ReIDSystem(_model(2), num_classes=2, val_query_mask=mask)
    perm = torch.tensor([2, 0, 3, 1])  # collected out of order (e.g. a shuffled loader)
    metrics = system.epoch_metrics({"embedding": emb[perm], "label": labels[perm], "index": perm})
    assert metrics == {"map": pytest.approx(1.0), "rank1": 1.0, "minp": pytest.approx(1.0)}
    assert system.last_val_metrics["n_queries"] == 1
    # No valid query: NaN scores are logged as 0 (the checkpoint monitor stays finite).
    lonely = ReIDSystem(_model(2), num_classes=2, val_query_mask=np.zeros(4, bool))
    zeros = lonely.epoch_metrics({"embedding": emb, "label": labels, "index": torch.arange(4)})
    assert zeros == {"map": 0.0, "rank1": 0.0, "minp": 0.0}
    assert np.isnan(lonely.last_val_metrics["map"])


def test_fit_logs_val_map_and_best_checkpoint_holds_the_model(tmp_path):
    train = _Blobs(6, 4, seed=0)
    val = _Blobs(3, 4, seed=1)
    loader = DataLoader(train, batch_sampler=PKSampler(train.labels.numpy(), 4, 3, seed=0))
    val_loader = DataLoader(val, batch_size=8)
    system = ReIDSystem(
        _model(),
        num_classes=4,
        loss=MarginLossConfig(loss="cosface"),
        optim=OptimConfig(lr=1e-2, warmup_epochs=0.5),
    )
    assert (system.monitor, system.mode) == ("val_map", "max")
    trainer = build_trainer(
        tmp_path, max_epochs=3, device="cpu", monitor="val_map", patience=None, progress=False
    )
    result = fit_resumable(trainer, system, loader, val_loader, tmp_path)
    assert (tmp_path / "best.ckpt").is_file() and result.epochs_run == 3
    assert 0.0 < result.best_score <= 1.0
    assert set(system.last_val_metrics) == {"map", "rank1", "minp", "n_queries"}
    assert system.last_val_metrics["n_queries"] == len(val)
    for key in ("val_map", "val_rank1", "val_minp", "train_loss", "train_cls", "train_acc"):
        assert key in trainer.callback_metrics, key

    ckpt = torch.load(tmp_path / "best.ckpt", map_location="cpu", weights_only=True)
    hp = ckpt["hyper_parameters"]
    assert hp["num_classes"] == 4 and hp["loss"]["loss"] == "cosface"
    assert hp["model_record"]["name"] == "reid_embedder"
    # The checkpoint holds the embedding model under `model.` and the loss head apart.
    state = ckpt["state_dict"]
    model_keys = {k.removeprefix("model.") for k in state if k.startswith("model.")}
    assert model_keys == set(_model().state_dict())
    assert "head.weight" in state and state["head.weight"].shape == (4, 8)


def test_system_reloads_from_its_checkpoint(tmp_path):
    system = ReIDSystem(_model(), num_classes=3, loss=MarginLossConfig(loss="cosface"))
    trainer = build_trainer(
        tmp_path,
        max_epochs=1,
        device="cpu",
        monitor="val_map",
        patience=None,
        progress=False,
        log_every_n_steps=1,
    )
    data = _Blobs(2, 3)
    trainer.fit(system, DataLoader(data, batch_size=6), DataLoader(data, batch_size=6))
    reloaded = ReIDSystem.load_from_checkpoint(tmp_path / "best.ckpt", model=_model())
    assert reloaded.loss_cfg == MarginLossConfig(loss="cosface")
