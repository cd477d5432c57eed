"""Frozen-then-unfrozen backbone: train the heads on fixed features first, then fine-tune.

With ``OptimConfig.freeze_backbone_epochs`` > 0, `TaskSystem` freezes its backbone
(every submodule named ``backbone``, the same parameters that get the backbone learning
rate, see `fieldvision.training.optim.backbone_modules`) for the first optimiser steps of
the run. While frozen:

* its parameters have ``requires_grad=False``: autograd builds no graph through the
  backbone, so no activation memory is kept for it and its backward pass is skipped;
* its optimiser groups have learning rate 0 (`build_optimizer`), so AdamW's decoupled
  weight decay leaves it untouched too;
* the whole backbone is in eval mode: BatchNorm running statistics are not updated (a
  pretrained backbone's statistics would otherwise drift towards batches of a model that
  is not being trained) and dropout / stochastic depth are off, so the heads learn from the
  same features validation sees (the linear-probing convention).

Freezing is counted in optimiser steps, like the warmup, so fractional epochs work and a
resumed run (its ``global_step`` restored from the checkpoint) is frozen exactly when the
uninterrupted run would have been.
"""

from __future__ import annotations

from torch import nn

from fieldvision.errors import ConfigError
from fieldvision.training.optim import backbone_modules

__all__ = ["BackboneFreeze"]


class BackboneFreeze:
    """Keeps the backbone of `root` frozen for the first `steps` optimiser steps.

    Args:
        root: The module holding the backbone (a `TaskSystem`, or a bare model).
        steps: Optimiser steps to keep it frozen (0: never frozen, nothing is touched).

    Raises:
        ConfigError: `steps` > 0 and `root` has no submodule named ``backbone``.
    """

    def __init__(self, root: nn.Module, steps: int) -> None:
        if steps < 0:
            raise ValueError(f"freeze steps must be >= 0, got {steps}")
        self.steps = int(steps)
        self.modules: tuple[nn.Module, ...] = tuple(backbone_modules(root)) if steps else ()
        if self.steps and not self.modules:
            raise ConfigError(
                f"freeze_backbone_epochs > 0, but {type(root).__name__} has no submodule "
                "named 'backbone' to freeze",
                hint="set freeze_backbone_epochs=0",
            )
        # The parameters this object switched off, so unfreezing restores exactly those (a
        # backbone may hold parameters that were frozen on purpose before).
        self._switched: list[nn.Parameter] = []
        self._frozen = False

    @property
    def frozen(self) -> bool:
        """True while the backbone is frozen."""
        return self._frozen

    @property
    def frozen_modules(self) -> tuple[nn.Module, ...]:
        """The backbone modules while frozen, else empty (precise BN skips these)."""
        return self.modules if self.frozen else ()

    def update(self, step: int, training: bool) -> None:
        """Freeze or unfreeze for optimiser step `step`; call before every training batch.

        Args:
            step: The trainer's ``global_step`` (optimiser steps taken so far).
            training: Whether the owning module is in training mode (the backbone follows
                it once unfrozen).
        """
        if not self.steps:
            return
        want = step < self.steps
        if want and not self.frozen:
            seen: set[int] = set()
            for module in self.modules:
                for p in module.parameters():
                    if p.requires_grad and id(p) not in seen:
                        seen.add(id(p))
                        p.requires_grad_(False)
                        self._switched.append(p)
            self._frozen = True
        elif not want and self.frozen:
            for p in self._switched:
                p.requires_grad_(True)
            self._switched, self._frozen = [], False
            for module in self.modules:
                module.train(training)
        if self.frozen:
            # Re-applied every batch: Lightning and precise BN switch modes around
            # validation, and a backbone must never update its statistics while frozen.
            for module in self.modules:
                module.eval()
