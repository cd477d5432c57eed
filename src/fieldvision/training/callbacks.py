"""Small Lightning callbacks shared by the pipelines."""

from __future__ import annotations

import lightning as L

__all__ = ["SetEpochCallback"]


class SetEpochCallback(L.Callback):
    """Call ``set_epoch(epoch)`` on the training dataset and sampler before every epoch.

    Our datasets and samplers draw augmentation / batch order from ``(seed, epoch, index)``
    instead of a global RNG, so they must be told the epoch; this also makes a resumed run
    continue the same random stream it would have had without the interruption.
    """

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        loader = trainer.train_dataloader
        for obj in (
            getattr(loader, "dataset", None),
            getattr(loader, "sampler", None),
            getattr(loader, "batch_sampler", None),
        ):
            set_epoch = getattr(obj, "set_epoch", None)
            if callable(set_epoch):
                set_epoch(trainer.current_epoch)
