"""Label-model constants fitted on the real table (`CALIBRATION`, `REAL_SUMMARY`).

`fit_calibration` recomputes `CALIBRATION` from a real ``train.csv``; the values below are
its output, baked in so generation needs no real data.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from fieldvision.data.synthetic.pasture._schema import COMPONENT_NAMES, _wide


class SpeciesParams(NamedTuple):
    """Label model of one species; component tuples are (green, dead, clover)."""

    p_zero: tuple[float, float, float]  # probability that the component is exactly 0
    log_mu: tuple[float, float, float]  # mean of log(grams) when non-zero
    log_sd: tuple[float, float, float]  # sd of log(grams) when non-zero
    log_total: float  # mean log(total grams): centre of the height / NDVI regressions
    log_height: float  # mean log(height cm)
    ndvi: float  # mean NDVI
    gdm_share: float  # mean (green + clover) / total


# Two lines per species: its name, then p_zero (green dead clover) | log_mu (g d c) |
# log_sd (g d c) | log_total log_height ndvi gdm_share (see `SpeciesParams`).
_SPECIES_TABLE = """
Clover
     0.244  0.488  0.024 |  0.868  2.069  2.810 |  1.070  0.707  1.094 |  3.270  0.832  0.608  0.852
Fescue
     0.000  0.036  1.000 |  3.905  3.026  1.526 |  0.551  0.679  1.162 |  4.363  2.214  0.608  0.698
Fescue_CrumbWeed
     0.000  0.000  0.900 |  3.265  2.561  1.788 |  0.516  0.550  1.162 |  3.791  1.848  0.681  0.664
Lucerne
     0.000  0.273  1.000 |  3.673  1.262  1.526 |  0.639  1.086  1.162 |  3.840  3.462  0.740  0.928
Mixed
     0.000  0.000  1.000 |  2.828  2.806  1.526 |  0.662  0.743  1.162 |  3.859  1.398  0.656  0.358
Phalaris
     0.000  0.000  1.000 |  4.142  1.428  1.526 |  0.613  0.831  1.162 |  4.536  2.891  0.600  0.938
Phalaris_BarleyGrass_SilverGrass_SpearGrass_Clover_Capeweed
     0.000  0.000  0.182 |  2.442  2.962  1.596 |  0.529  0.524  0.832 |  3.664  1.246  0.443  0.412
Phalaris_Clover
     0.000  0.024  0.095 |  3.402  1.939  1.538 |  0.513  0.731  1.222 |  3.850  1.637  0.767  0.824
Phalaris_Clover_Ryegrass_Barleygrass_Bromegrass
     0.000  0.000  0.143 |  3.115  2.767  2.180 |  0.485  0.609  0.862 |  3.998  1.674  0.559  0.640
Phalaris_Ryegrass_Clover
     0.000  0.000  0.250 |  3.100  1.881  1.329 |  0.534  0.724  0.958 |  3.548  1.389  0.788  0.802
Ryegrass
     0.000  0.065  0.629 |  2.868  2.386 -0.037 |  0.854  0.732  1.133 |  3.491  1.648  0.668  0.609
Ryegrass_Clover
     0.000  0.000  0.173 |  2.793  2.008  1.131 |  0.769  1.063  1.358 |  3.485  1.191  0.658  0.688
SubcloverDalkeith
     1.000  1.000  0.000 |  2.832  2.198  1.913 |  0.727  0.831  0.967 |  2.171  0.621  0.545  1.000
SubcloverLosa
     1.000  1.000  0.000 |  2.832  2.198  2.630 |  0.727  0.831  1.218 |  3.071  0.444  0.661  1.000
WhiteClover
     0.000  0.000  0.000 |  0.387  2.494  1.743 |  0.839  0.773  0.896 |  3.046  0.914  0.596  0.373
"""


def _parse_species(table: str) -> dict[str, SpeciesParams]:
    lines = [line.strip() for line in table.strip().splitlines() if line.strip()]
    out = {}
    for name, numbers in zip(lines[0::2], lines[1::2], strict=True):
        v = [float(x) for x in numbers.replace("|", " ").split()]
        out[name] = SpeciesParams(
            (v[0], v[1], v[2]), (v[3], v[4], v[5]), (v[6], v[7], v[8]), v[9], v[10], v[11], v[12]
        )
    return out


# Fitted by `fit_calibration` on ../shared/data/csiro/train.csv (357 images, 2015).
# Means and sds are shrunk towards the pooled values for species with few non-zero rows.
CALIBRATION: dict[str, Any] = {
    # (date, state, ((species, images), ...)): the real sampling events and species mix.
    "events": (
        ("2015/1/15", "NSW", (("Fescue_CrumbWeed", 10), ("Lucerne", 7))),
        ("2015/2/24", "NSW", (("Phalaris", 8), ("Ryegrass", 7))),
        ("2015/2/25", "NSW", (("Fescue", 9),)),
        ("2015/4/1", "NSW", (("Lucerne", 10),)),
        ("2015/5/7", "NSW", (("Fescue", 8), ("Lucerne", 5))),
        ("2015/5/18", "Tas", (("Ryegrass", 22),)),
        ("2015/5/19", "Tas", (("Ryegrass_Clover", 7),)),
        ("2015/6/26", "Tas", (("Ryegrass_Clover", 18),)),
        ("2015/6/26", "Vic", (("Mixed", 2), ("Phalaris_Ryegrass_Clover", 7), ("Ryegrass", 10))),
        ("2015/6/29", "Tas", (("WhiteClover", 10),)),
        ("2015/6/30", "Vic", (("Phalaris_Clover", 6),)),
        ("2015/7/1", "Tas", (("Ryegrass", 10),)),
        ("2015/7/1", "Vic", (("Phalaris_Clover", 9),)),
        ("2015/7/2", "Vic", (("Ryegrass_Clover", 10),)),
        ("2015/7/8", "WA", (("Clover", 12),)),
        ("2015/8/14", "Vic", (("Phalaris_Clover", 7), ("Ryegrass_Clover", 11))),
        ("2015/8/18", "Vic", (("Phalaris_Clover", 10),)),
        ("2015/8/19", "Vic", (("Phalaris_Ryegrass_Clover", 1),)),
        ("2015/8/21", "WA", (("Clover", 8),)),
        ("2015/9/1", "WA", (("Ryegrass", 4), ("SubcloverDalkeith", 3), ("SubcloverLosa", 5))),
        ("2015/9/3", "Tas", (("Ryegrass_Clover", 9),)),
        ("2015/9/4", "Tas", (("Clover", 10), ("Ryegrass_Clover", 6))),
        ("2015/9/11", "Tas", (("Ryegrass", 9),)),
        ("2015/9/29", "Vic", (("Ryegrass_Clover", 11),)),
        ("2015/9/30", "Vic", (("Phalaris_Clover", 10),)),
        ("2015/10/6", "NSW", (("Fescue", 11),)),
        (
            "2015/10/13",
            "Vic",
            (("Phalaris_BarleyGrass_SilverGrass_SpearGrass_Clover_Capeweed", 11),),
        ),
        ("2015/10/14", "Vic", (("Phalaris_Clover_Ryegrass_Barleygrass_Bromegrass", 7),)),
        ("2015/11/9", "Tas", (("Clover", 11), ("Ryegrass_Clover", 9))),
        ("2015/11/10", "Tas", (("Ryegrass_Clover", 17),)),
    ),
    "species": _parse_species(_SPECIES_TABLE),
    # Share of each component's log-variance that is common to one (event, species) cell.
    "event_var_fraction": (0.327, 0.418, 0.407),
    # The real log-residuals are left-skewed (short upper tail): a normal score is mapped
    # through these quantiles of (log(x) - log_mu) / log_sd at `residual_probs`.
    "residual_probs": (0.0, 0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 1.0),
    "residual_quantiles": (
        (-4.296, -2.562, -1.662, -1.16, -0.51, 0.136, 0.674, 1.071, 1.423, 2.028, 2.162),
        (-2.855, -2.222, -1.595, -1.224, -0.601, 0.043, 0.719, 1.26, 1.501, 2.046, 2.493),
        (-3.555, -2.327, -1.581, -1.267, -0.561, 0.102, 0.726, 1.17, 1.36, 1.691, 2.193),
    ),
    # Share of the NDVI and log-height residual variance common to one (event, species) cell.
    "meta_event_var_fraction": (0.45, 0.341),
    # log(height) = logH_s + slope * (log(total) - logT_s) + N(0, sd^2)
    "height_slope": 0.595,
    "height_sd": 0.324,
    # ndvi = ndvi_s + a * (gdm_share - gdm_s) + b * (log(total) - logT_s) + N(0, sd^2)
    "ndvi_share_slope": 0.241,
    "ndvi_total_slope": 0.141,
    "ndvi_sd": 0.091,
}

# Statistics of the real table (calibration_stats on train.csv), for tests and the report.
REAL_SUMMARY: dict[str, Any] = {
    "n_images": 357,
    "n_dates": 28,
    "targets": {
        # target: (mean, std, median, zero fraction)
        "Dry_Green_g": (26.62, 25.40, 20.80, 0.050),
        "Dry_Dead_g": (12.04, 12.40, 7.98, 0.112),
        "Dry_Clover_g": (6.65, 12.12, 1.42, 0.378),
        "GDM_g": (33.27, 24.94, 27.11, 0.0),
        "Dry_Total_g": (45.32, 27.98, 40.30, 0.0),
    },
    "corr_total": {"ndvi": 0.361, "height": 0.497},
}


def fit_calibration(real_long: pd.DataFrame) -> dict[str, Any]:
    """Fit the label model (the structure of `CALIBRATION`) on a real long-format table.

    Args:
        real_long: A Kaggle ``train.csv`` as read by ``pd.read_csv``.

    Returns:
        A dict with the keys of `CALIBRATION`, values rounded to 3 decimals.
    """
    w = _wide(real_long)
    comp = w[list(COMPONENT_NAMES)].to_numpy(float)
    total = comp.sum(1)
    log_total = np.log(total)
    species = w["Species"].to_numpy()
    dates = pd.to_datetime(w["Sampling_Date"], format="%Y/%m/%d")
    date_str = [f"{d.year}/{d.month}/{d.day}" for d in dates]
    w = w.assign(_date=dates, _date_str=date_str)

    events = []
    for (_d, state), g in w.groupby(["_date", "State"], sort=True):
        counts = g["Species"].value_counts()
        mix = tuple((str(s), int(c)) for s, c in sorted(counts.items()))
        events.append((g["_date_str"].iloc[0], str(state), mix))

    logc = pd.DataFrame(np.log(np.where(comp > 0, comp, np.nan)), columns=list(COMPONENT_NAMES))
    pooled_mu = np.nanmean(logc.to_numpy(), 0)
    resid = logc - logc.groupby(species).transform("mean")
    pooled_var = np.nanvar(resid.to_numpy(), 0, ddof=1)
    cell = w["Species"].to_numpy() + "|" + w["_date_str"].to_numpy() + "|" + w["State"].to_numpy()
    within = logc - logc.groupby(cell).transform("mean")
    event_frac = np.clip(1 - np.nanvar(within.to_numpy(), 0, ddof=1) / pooled_var, 0, 0.9)

    log_h = np.log(w["Height_Ave_cm"].to_numpy(float))
    ndvi = w["Pre_GSHH_NDVI"].to_numpy(float)
    share = (comp[:, 0] + comp[:, 2]) / total
    k_mu, k_var = 2.0, 4.0  # pseudo-counts of the shrinkage towards pooled values
    params = {}
    for s, idx in pd.Series(species).groupby(species).indices.items():
        c = comp[idx]
        mus, sds = [], []
        for k in range(3):
            v = np.log(c[c[:, k] > 0, k])
            m = len(v)
            ss = float(np.var(v, ddof=1) * (m - 1)) if m > 1 else 0.0
            mus.append((v.sum() + k_mu * pooled_mu[k]) / (m + k_mu))
            sds.append(math.sqrt((ss + k_var * pooled_var[k]) / (max(m - 1, 0) + k_var)))
        n = len(idx)
        params[str(s)] = SpeciesParams(
            p_zero=_r3((c <= 0).mean(0)),
            log_mu=_r3(mus),
            log_sd=_r3(sds),
            log_total=round(float(log_total[idx].mean()), 3),
            log_height=round(float((log_h[idx].sum() + k_mu * log_h.mean()) / (n + k_mu)), 3),
            ndvi=round(float((ndvi[idx].sum() + k_mu * ndvi.mean()) / (n + k_mu)), 3),
            gdm_share=round(float(share[idx].mean()), 3),
        )

    def centred(x: np.ndarray) -> np.ndarray:
        return x - pd.Series(x).groupby(species).transform("mean").to_numpy()

    probs = CALIBRATION["residual_probs"]
    quantiles = []
    for k in range(3):
        res = [
            (np.log(comp[idx, k][comp[idx, k] > 0]) - params[str(s)].log_mu[k])
            / params[str(s)].log_sd[k]
            for s, idx in pd.Series(species).groupby(species).indices.items()
        ]
        q = np.quantile(np.concatenate(res), probs)
        quantiles.append(tuple(round(float(v), 3) for v in q))

    t_c, h_c = centred(log_total), centred(log_h)
    h_slope = float((t_c * h_c).sum() / (t_c**2).sum())
    x = np.c_[centred(share), t_c]
    n_c = centred(ndvi)
    coef = np.linalg.lstsq(x, n_c, rcond=None)[0]
    meta_frac = []
    for res in (n_c - x @ coef, h_c - h_slope * t_c):
        res = pd.Series(res)
        within = res - res.groupby(cell).transform("mean")
        meta_frac.append(round(float(np.clip(1 - within.var() / res.var(), 0, 0.9)), 3))
    return {
        "events": tuple(events),
        "species": params,
        "event_var_fraction": _r3(event_frac),
        "residual_probs": probs,
        "residual_quantiles": tuple(quantiles),
        "meta_event_var_fraction": (meta_frac[0], meta_frac[1]),
        "height_slope": round(h_slope, 3),
        "height_sd": round(float(np.std(h_c - h_slope * t_c, ddof=1)), 3),
        "ndvi_share_slope": round(float(coef[0]), 3),
        "ndvi_total_slope": round(float(coef[1]), 3),
        "ndvi_sd": round(float(np.std(n_c - x @ coef, ddof=2)), 3),
    }


def _r3(values: Sequence[float] | np.ndarray) -> tuple[float, float, float]:
    a, b, c = (round(float(v), 3) for v in values)
    return (a, b, c)
