"""MIL training systems: the distillation loss against a hand computation."""

from __future__ import annotations

import math

import torch

from fieldvision.models.mil import MILExpert, MILExpertConfig
from fieldvision.training.mil import DistillSystem


def _batch():
    torch.manual_seed(0)
    tiles = torch.rand(2, 4, 3, 16, 16)
    mask = torch.tensor([[True, False, True, False], [False, True, True, True]])
    teacher = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
    return {"tiles": tiles, "mask": mask, "teacher": teacher, "label": torch.tensor([0, 2])}


def test_distillation_loss_is_bag_ce_plus_scaled_kl_to_the_teacher():
    model = MILExpert(MILExpertConfig(tile_size=16), num_classes=3, negative_class=0).eval()
    batch = _batch()
    t, w = 2.0, 0.5
    out = DistillSystem(model, ["a", "b", "c"], temperature=t, weight=w)._shared_step(batch, "val")
    with torch.no_grad():
        logits = model(batch["tiles"], batch["mask"])["bag_logits"]
    ce = torch.nn.functional.cross_entropy(logits, batch["label"])
    p_t = torch.softmax(batch["teacher"].log() / t, -1)
    log_s = torch.log_softmax(logits / t, -1)
    kl = (p_t * (p_t.log() - log_s)).sum(-1).mean()
    assert math.isclose(float(out.loss.detach()), float(ce + w * t * t * kl), rel_tol=1e-5)
    assert set(out.collect) == {"prob", "label", "teacher"}


def test_the_kl_term_pulls_the_student_toward_the_teacher():
    model = MILExpert(MILExpertConfig(tile_size=16), num_classes=3)
    system = DistillSystem(model, ["a", "b", "c"], temperature=1.0, weight=1.0)
    batch = _batch()
    batch["label"] = batch["teacher"].argmax(-1)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    first = None
    for _ in range(30):
        loss = system._shared_step(batch, "train").loss
        first = float(loss) if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss) < first
