"""Sampling of per-image labels and metadata from the calibrated label model."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy.special import ndtr

from fieldvision.data.synthetic.pasture._calibration import CALIBRATION
from fieldvision.seeding import numpy_rng

_MEASUREMENT_NOISE = 0.05  # sd of multiplicative label noise (log scale), about 5 %


def sample_pasture_table(
    n: int, seed: int = 0, calibration: dict[str, Any] | None = None
) -> pd.DataFrame:
    """Draw `n` images' labels and metadata from the calibrated model (no pixels).

    Args:
        n: Number of images.
        seed: Seed; the table is a deterministic function of ``(n, seed)``.
        calibration: Model constants; defaults to the baked `CALIBRATION`.

    Returns:
        DataFrame with one row per image: ``image_id, sampling_date (str YYYY/M/D), month,
        state, species, ndvi, height``, the three true components ``true_green, true_dead,
        true_clover`` (what is rendered) and the five noisy Kaggle targets, rounded to 4
        decimals with exact mass balance.
    """
    cal = CALIBRATION if calibration is None else calibration
    rng = numpy_rng(seed, 0)
    cells = [(d, st, sp, c) for d, st, mix in cal["events"] for sp, c in mix]
    counts = np.array([c for *_, c in cells], dtype=float)
    cell_of = rng.choice(len(cells), size=n, p=counts / counts.sum())
    frac = np.asarray(cal["event_var_fraction"])
    # One shared offset per (event, species) cell and component, in units of the species sd.
    cell_offset = rng.standard_normal((len(cells), 3)) * np.sqrt(frac)
    meta_frac = np.asarray(cal["meta_event_var_fraction"])
    meta_offset = rng.standard_normal((len(cells), 2)) * np.sqrt(meta_frac)  # ndvi, height
    params = [cal["species"][sp] for _, _, sp, _ in cells]

    p_zero = np.array([params[c].p_zero for c in cell_of])  # (n, 3)
    mu = np.array([params[c].log_mu for c in cell_of])
    sd = np.array([params[c].log_sd for c in cell_of])
    z = cell_offset[cell_of] + rng.standard_normal((n, 3)) * np.sqrt(1 - frac)  # N(0, 1)
    u = ndtr(z)
    z = np.stack(
        [np.interp(u[:, k], cal["residual_probs"], cal["residual_quantiles"][k]) for k in range(3)],
        axis=1,
    )
    comp = np.exp(mu + sd * z)
    zero = rng.random((n, 3)) < p_zero
    # A quadrat always holds something: keep the most probable component of empty draws.
    empty = zero.all(1)
    if empty.any():
        keep = np.argmin(p_zero[empty], axis=1)
        zero[np.flatnonzero(empty), keep] = False
    comp = np.where(zero, 0.0, comp)
    total = comp.sum(1)

    log_t_s = np.array([params[c].log_total for c in cell_of])
    log_h = np.array([params[c].log_height for c in cell_of])
    log_h = log_h + cal["height_slope"] * (np.log(total) - log_t_s)
    meta_z = meta_offset[cell_of] + rng.standard_normal((n, 2)) * np.sqrt(1 - meta_frac)
    log_h = log_h + cal["height_sd"] * meta_z[:, 1]
    # Heights are means of several ruler readings: multiples of 1/6 cm, at least 1 cm.
    height = np.maximum(np.round(np.exp(log_h) * 6) / 6, 1.0)
    share = (comp[:, 0] + comp[:, 2]) / total
    ndvi = np.array([params[c].ndvi for c in cell_of])
    ndvi = ndvi + cal["ndvi_share_slope"] * (
        share - np.array([params[c].gdm_share for c in cell_of])
    )
    ndvi = ndvi + cal["ndvi_total_slope"] * (np.log(total) - log_t_s)
    ndvi = np.clip(ndvi + cal["ndvi_sd"] * meta_z[:, 0], 0.15, 0.92)

    # Measurement noise is applied to the labels only (after rendering from `comp`).
    noisy = np.round(comp * np.exp(_MEASUREMENT_NOISE * rng.standard_normal((n, 3))), 4)
    ids = _unique_ids(rng, n)
    dates = [cells[c][0] for c in cell_of]
    frame = pd.DataFrame(
        {
            "image_id": ids,
            "sampling_date": dates,
            "month": [int(d.split("/")[1]) for d in dates],
            "state": [cells[c][1] for c in cell_of],
            "species": [cells[c][2] for c in cell_of],
            "ndvi": np.round(ndvi, 2),
            "height": np.round(height, 4),
            "true_green": comp[:, 0],
            "true_dead": comp[:, 1],
            "true_clover": comp[:, 2],
            "Dry_Green_g": noisy[:, 0],
            "Dry_Dead_g": noisy[:, 1],
            "Dry_Clover_g": noisy[:, 2],
        }
    )
    # Sums of 4-decimal values, rounded again: exact in decimal, as written to the CSV.
    frame["GDM_g"] = np.round(frame["Dry_Green_g"] + frame["Dry_Clover_g"], 4)
    frame["Dry_Total_g"] = np.round(
        frame["Dry_Green_g"] + frame["Dry_Dead_g"] + frame["Dry_Clover_g"], 4
    )
    return frame


def _unique_ids(rng: np.random.Generator, n: int) -> list[str]:
    """``"ID"`` + 10 digits, unique, like the Kaggle image ids."""
    ids: list[str] = []
    seen: set[int] = set()
    while len(ids) < n:
        for v in rng.integers(1_000_000_000, 10_000_000_000, size=n - len(ids)):
            if int(v) not in seen:
                seen.add(int(v))
                ids.append(f"ID{int(v)}")
    return ids
