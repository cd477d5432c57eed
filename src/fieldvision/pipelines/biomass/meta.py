"""Encoding of the biomass metadata that Phase 1 predicts and FiLM consumes.

Month is cyclic, so it is encoded as (sin, cos) of its angle; NDVI and height are z-scored
with training statistics; species and state become integer classes. The encoder is fitted on
the training table and saved in the run directory so prediction uses the same encoding.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

__all__ = ["FILM_KEYS", "MetaEncoder", "film_meta", "month_angle"]

#: Phase-1 outputs that condition FiLM, in this order: a (N, 4) "meta" vector.
FILM_KEYS = ("month_sin", "month_cos", "ndvi_z", "height_z")


def film_meta(outputs: Mapping[str, np.ndarray]) -> np.ndarray:
    """(N, 4) FiLM conditioning vector (`FILM_KEYS`) from Phase-1 outputs.

    Args:
        outputs: Phase-1 predictions as arrays: ``month`` [N, 2] (sin, cos), ``ndvi`` [N],
            ``height`` [N] (z units).
    """
    month = outputs["month"]
    stacked = [month[:, 0], month[:, 1], outputs["ndvi"], outputs["height"]]
    return np.stack(stacked, axis=1).astype(np.float32)


def month_angle(month: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sin, cos) of months 1..12 on the unit circle, so December sits next to January."""
    theta = 2.0 * np.pi * (np.asarray(month, dtype=np.float64) - 1.0) / 12.0
    return np.sin(theta).astype(np.float32), np.cos(theta).astype(np.float32)


@dataclass(frozen=True)
class MetaEncoder:
    """Fitted encoding of the metadata columns of a wide biomass table."""

    ndvi_mean: float
    ndvi_std: float
    height_mean: float
    height_std: float
    species: tuple[str, ...]
    states: tuple[str, ...]

    @classmethod
    def fit(cls, wide: pd.DataFrame) -> MetaEncoder:
        """Fit on a wide training table (columns ndvi, height, species, state)."""
        return cls(
            ndvi_mean=float(wide["ndvi"].mean()),
            ndvi_std=float(wide["ndvi"].std(ddof=0)) or 1.0,
            height_mean=float(wide["height"].mean()),
            height_std=float(wide["height"].std(ddof=0)) or 1.0,
            species=tuple(sorted(wide["species"].astype(str).unique())),
            states=tuple(sorted(wide["state"].astype(str).unique())),
        )

    def encode(self, wide: pd.DataFrame) -> dict[str, np.ndarray]:
        """Phase-1 targets: month_sin/cos, ndvi_z, height_z (float32), species/state (int64).

        Unseen species/state values map to class 0 (they cannot occur in training folds
        drawn from the same table; kept total so encoding never fails at report time).
        """
        sin, cos = month_angle(wide["month"].to_numpy())
        sp_index = {s: i for i, s in enumerate(self.species)}
        st_index = {s: i for i, s in enumerate(self.states)}
        return {
            "month_sin": sin,
            "month_cos": cos,
            "ndvi_z": ((wide["ndvi"].to_numpy() - self.ndvi_mean) / self.ndvi_std).astype(
                np.float32
            ),
            "height_z": ((wide["height"].to_numpy() - self.height_mean) / self.height_std).astype(
                np.float32
            ),
            "species": np.array([sp_index.get(str(s), 0) for s in wide["species"]], dtype=np.int64),
            "state": np.array([st_index.get(str(s), 0) for s in wide["state"]], dtype=np.int64),
        }

    def decode_month(self, sin: np.ndarray, cos: np.ndarray) -> np.ndarray:
        """Nearest month 1..12 of predicted (sin, cos)."""
        theta = np.mod(np.arctan2(sin, cos), 2 * np.pi)
        return (np.rint(theta / (2 * np.pi) * 12).astype(int) % 12) + 1

    def to_dict(self) -> dict:
        """JSON-safe dict (for ``meta_encoder.json`` in a run directory)."""
        out = asdict(self)
        out["species"] = list(self.species)
        out["states"] = list(self.states)
        return out

    @classmethod
    def from_dict(cls, data: dict) -> MetaEncoder:
        """Inverse of `to_dict`."""
        return cls(**{**data, "species": tuple(data["species"]), "states": tuple(data["states"])})
