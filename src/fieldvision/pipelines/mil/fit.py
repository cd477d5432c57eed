"""Training the MIL pipeline: the tile expert from image labels, then the scouter from it.

A run directory (`fieldvision.runs.RunDir`, kind ``mil``) holds::

    run.json  config.yaml  metrics.json ("fit", "evaluate")   the common run format
    classes.json        class names and the negative class
    splits.csv          image, label, group, split role per fold
    expert/<split>/     Lightning state + model.safetensors (the tile expert)
    scouter/<split>/    Lightning state + model.safetensors (trained with the expert frozen,
                        then Platt-calibrated: calibration.json, see `calibration`)
    student/<split>/    optional (distill.enabled): the expert fine-tuned on glance selections
                        toward the full-tiling teacher; glance inference then uses it
    oof.csv             validation predictions (full and glance) with the split's models

The scouter's target for an image is the frozen expert's tile evidence map (probability
that a tile is not healthy), computed on the training images of its split: the seed's
distillation. Re-running ``train`` with the same ``--out`` resumes.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader

from fieldvision.data.loaders import batch_loader
from fieldvision.inference import predict_views
from fieldvision.io import write_csv, write_json
from fieldvision.models.mil import MILExpert, Scouter
from fieldvision.models.registry import save_model
from fieldvision.pipelines.mil.config import MILConfig
from fieldvision.pipelines.mil.engine import tile_evidence
from fieldvision.pipelines.mil.inputs import MILTrainingData, class_weights, load_training_data
from fieldvision.runs import RunDir
from fieldvision.training.fit import MODEL_FILE, FitTask, FittedSplit, Split, fit_splits
from fieldvision.training.mil import DistillSystem, MILSystem, ScouterSystem

__all__ = ["RUN_KIND", "calibrate_scouter", "expert_tile_maps", "train"]

RUN_KIND = "mil"


def _loader(dataset, cfg: MILConfig, train: bool, seed: int = 0) -> DataLoader:
    return batch_loader(dataset, cfg.data.batch_size, train=train,
                        num_workers=cfg.data.num_workers, seed=seed)  # fmt: skip


def expert_tile_maps(
    expert: torch.nn.Module,
    data: MILTrainingData,
    cfg: MILConfig,
    indices: np.ndarray | None = None,
) -> np.ndarray:
    """float32[N, R, C]: the expert's tile evidence for every image, or for `indices`
    (the scouter's target)."""
    from fieldvision.data.mil import BagDataset

    def call(model, batch):
        return {"evidence": tile_evidence(model(batch["tiles"])["tile_logits"], data.negative)}

    (out,) = predict_views(
        expert, BagDataset(data.store, indices), call, device=cfg.train.device,
        batch_size=cfg.data.batch_size,
    )  # fmt: skip
    rows, cols = cfg.data.grid
    return out["evidence"].reshape(-1, rows, cols).astype(np.float32)


def calibrate_scouter(
    run: RunDir,
    data: MILTrainingData,
    cfg: MILConfig,
    expert: torch.nn.Module,
    scouter: FittedSplit,
    maps: np.ndarray | None = None,
) -> dict:
    """Platt-calibrate a split's scouter on its validation images; save it; once per split.

    The calibrated weights replace ``scouter/<split>/model.safetensors`` and the fit goes
    to ``calibration.json`` (written last). A crash between the two re-fits on the next
    run, on already calibrated logits, where the optimal map is the identity: re-running
    is safe.

    Args:
        maps: float32[N, R, C] the expert's evidence on every image, when already computed.

    Returns:
        The fit (`fieldvision.pipelines.mil.calibration.fit_platt`), also when recorded.
    """
    from fieldvision.data.mil import BagDataset
    from fieldvision.pipelines.mil.calibration import fit_platt, fold_platt

    folder = run.path / "scouter" / scouter.split.name
    done = folder / "calibration.json"
    if done.is_file():
        return json.loads(done.read_text(encoding="utf-8"))
    val = scouter.split.val
    evidence = maps[val] if maps is not None else expert_tile_maps(expert, data, cfg, val)

    def call(model, batch):
        return {"logits": model(batch["image"])["logits"].flatten(1)}

    (out,) = predict_views(scouter.model, BagDataset(data.store, val, with_tiles=False), call,
                           device=cfg.train.device, batch_size=cfg.data.batch_size)  # fmt: skip
    fit = fit_platt(out["logits"], (evidence.reshape(len(val), -1) >= 0.5).astype(np.float32))
    fold_platt(scouter.model, fit["scale"], fit["shift"])
    save_model(scouter.model, folder / MODEL_FILE)
    write_json(done, fit)
    return fit


def train(data_dir: str | Path, out: str | Path, cfg: MILConfig) -> dict:
    """Train the expert and the scouter on every split; resumable.

    Every input is validated (and every image decoded and tiled) before ``out`` is touched.

    Returns:
        The ``fit`` section of ``metrics.json`` (validation metrics, full and glance).
    """
    start = time.perf_counter()
    data = load_training_data(data_dir, cfg)
    run = RunDir.start(out, RUN_KIND, cfg, data.fingerprint, data=data_dir)
    with run.running():
        summary = _train(run, data, cfg, start)
    return summary


def _train(run: RunDir, data: MILTrainingData, cfg: MILConfig, start: float) -> dict:
    from fieldvision.data.mil import BagDataset
    from fieldvision.pipelines.mil.scoring import evaluate_store

    write_json(
        run.path / "classes.json",
        {"classes": list(data.classes), "negative": cfg.data.negative_class},
    )
    roles = pd.DataFrame({"image": data.samples.names, "label": data.samples.labels})
    roles["group"] = data.samples.groups if data.samples.groups else data.samples.names
    for split in data.splits:
        role = np.full(len(roles), "", dtype=object)
        role[split.train], role[split.val] = "train", "val"
        roles[split.name] = role
    write_csv(run.path / "splits.csv", roles)
    n_classes = len(data.classes)

    def build_expert(split: Split) -> FitTask:
        model = MILExpert(cfg.expert, num_classes=n_classes, negative_class=data.negative)
        weights = (
            class_weights(data.labels[split.train], n_classes)
            if cfg.expert.class_weighting
            else None
        )
        system = MILSystem(
            model,
            data.classes,
            negative_class=data.negative,
            class_weights=weights,
            sparsity_weight=cfg.expert.sparsity_weight,
            sparsity_warmup_epochs=cfg.expert.sparsity_warmup_epochs,
            healthy_tile_weight=cfg.expert.healthy_tile_weight,
            optim=cfg.expert,
        )
        train_ds = BagDataset(data.store, split.train, data.labels[split.train],
                              augment=cfg.data.augment, seed=cfg.train.seed,
                              tile_augment=cfg.data.tile_augment)  # fmt: skip
        val_ds = BagDataset(data.store, split.val, data.labels[split.val])
        return FitTask(model, system, _loader(train_ds, cfg, True, cfg.train.seed),
                       _loader(val_ds, cfg, False))  # fmt: skip

    experts = fit_splits(run.path / "expert", data.splits, build_expert, cfg.expert,
                         cfg.train, seed=cfg.train.seed, label="expert")  # fmt: skip

    targets: dict[str, np.ndarray] = {}

    def build_scouter(split: Split) -> FitTask:
        expert = next(f.model for f in experts if f.split.name == split.name)
        maps = targets.setdefault(split.name, expert_tile_maps(expert, data, cfg))
        model = Scouter(cfg.scouter, grid=tuple(cfg.data.grid))
        system = ScouterSystem(model, cfg.scouter)
        train_ds = BagDataset(data.store, split.train, arrays={"target": maps[split.train]},
                              augment=cfg.data.augment, seed=cfg.train.seed,
                              with_tiles=False)  # fmt: skip
        val_ds = BagDataset(data.store, split.val, arrays={"target": maps[split.val]},
                            with_tiles=False)  # fmt: skip
        return FitTask(model, system, _loader(train_ds, cfg, True, cfg.train.seed),
                       _loader(val_ds, cfg, False))  # fmt: skip

    scouters = fit_splits(run.path / "scouter", data.splits, build_scouter, cfg.scouter,
                          cfg.train, seed=cfg.train.seed + 100, label="scouter")  # fmt: skip
    calibration = {}
    if cfg.scouter.calibrate:  # before distillation, whose selections use the scouter
        for e, s in zip(experts, scouters, strict=True):
            calibration[s.split.name] = calibrate_scouter(
                run, data, cfg, e.model, s, targets.get(s.split.name)
            )

    students = _distill(run, data, cfg, experts, scouters) if cfg.distill.enabled else None

    # Validation (out-of-fold) metrics: each split's models on its own held-out images.
    blocks, rows = [], []
    for k, (e, s) in enumerate(zip(experts, scouters, strict=True)):
        store = data.store
        sub = store.__class__(data.samples.subset(e.split.val), store.spec,
                              reader=store.reader)  # fmt: skip
        student = None if students is None else [students[k].model]
        result = evaluate_store(
            [e.model], [s.model], sub, data.classes, data.negative, cfg, curve=False,
            students=student,
        )  # fmt: skip
        blocks.append(result)
        for i, name in enumerate(sub.samples.names):
            rows.append({"image": name, "split": e.split.name, "label": sub.samples.labels[i],
                         "pred_full": result["_pred"]["full"][i],
                         "pred_glance": result["_pred"]["glance"][i]})  # fmt: skip
    write_csv(run.path / "oof.csv", pd.DataFrame(rows))
    summary = {
        "splits": [f.split.name for f in experts],
        "classes": list(data.classes),
        "n_images": len(data.samples),
        "full": _mean_block([b["full"] for b in blocks]),
        "glance": _mean_block([b["glance"] for b in blocks]),
        "budget": cfg.glance.budget,
        "scouter_calibration": calibration,
        "seconds": time.perf_counter() - start,
    }
    run.update_metrics("fit", summary)
    return summary


def _glance_masks(scouter: torch.nn.Module, data: MILTrainingData, cfg: MILConfig) -> np.ndarray:
    """bool[N, T]: the scouter's selection of every image at the distillation budget."""
    from fieldvision.data.mil import BagDataset
    from fieldvision.ops.glance import select_tiles

    def call(model, batch):
        return {"importance": model(batch["image"])["importance"].flatten(1)}

    (out,) = predict_views(scouter, BagDataset(data.store, with_tiles=False), call,
                           device=cfg.train.device, batch_size=cfg.data.batch_size)  # fmt: skip
    g = cfg.glance
    mask, _ = select_tiles(torch.from_numpy(out["importance"]), cfg.distill.budget,
                           g.min_tiles, g.stop_entropy)  # fmt: skip
    return mask.numpy()


def _teacher_probs(expert: torch.nn.Module, data: MILTrainingData, cfg: MILConfig) -> np.ndarray:
    """float32[N, C]: the full-tiling expert's bag probabilities (the teacher)."""
    from fieldvision.data.mil import BagDataset

    def call(model, batch):
        return {"prob": model(batch["tiles"])["bag_logits"].float().softmax(-1)}

    (out,) = predict_views(expert, BagDataset(data.store), call, device=cfg.train.device,
                           batch_size=cfg.data.batch_size)  # fmt: skip
    return out["prob"].astype(np.float32)


def _distill(run: RunDir, data: MILTrainingData, cfg: MILConfig, experts, scouters) -> list:
    """Train one student per split: the expert fine-tuned on glance selections (optional)."""
    from fieldvision.data.mil import BagDataset

    def build(split: Split) -> FitTask:
        k = next(i for i, f in enumerate(experts) if f.split.name == split.name)
        teacher = _teacher_probs(experts[k].model, data, cfg)
        masks = _glance_masks(scouters[k].model, data, cfg)
        student = MILExpert(cfg.expert, num_classes=len(data.classes), negative_class=data.negative)
        student.load_state_dict(experts[k].model.state_dict())  # start from the teacher
        system = DistillSystem(student, data.classes, cfg.distill.temperature,
                               cfg.distill.weight, optim=cfg.distill)  # fmt: skip

        def part(idx: np.ndarray) -> BagDataset:
            return BagDataset(data.store, idx, data.labels[idx],
                              arrays={"mask": masks[idx], "teacher": teacher[idx]})  # fmt: skip

        return FitTask(student, system, _loader(part(split.train), cfg, True, cfg.train.seed),
                       _loader(part(split.val), cfg, False))  # fmt: skip

    return fit_splits(run.path / "student", data.splits, build, cfg.distill, cfg.train,
                      seed=cfg.train.seed + 200, label="student")  # fmt: skip


def _mean_block(blocks: list[dict]) -> dict:
    """Mean of the scalar metrics over splits (the first split's tables are kept)."""
    if len(blocks) == 1:
        return blocks[0]
    out = dict(blocks[0])
    for key, value in blocks[0].items():
        if isinstance(value, int | float) and not isinstance(value, bool):
            out[key] = float(np.mean([b[key] for b in blocks]))
    return out
