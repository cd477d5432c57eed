"""Label statistics of long-format tables and a real-vs-synthetic Markdown report."""

from __future__ import annotations

from typing import Any

import pandas as pd

from fieldvision.data.synthetic.pasture._schema import COMPONENT_NAMES, TARGET_NAMES, _wide


def calibration_stats(long_df: pd.DataFrame) -> dict[str, Any]:
    """Statistics used to compare a real and a synthetic long-format train table.

    Args:
        long_df: A Kaggle ``train.csv`` as read by ``pd.read_csv``.

    Returns:
        Dict with ``n_images``, ``n_dates``, ``images_per_date`` (median, max), category
        frequencies ``state``, ``species``, ``month`` (fractions), ``targets`` (per target:
        mean, std, median, zero_fraction), ``mass_balance_max_error`` (gdm, total) and
        ``corr_total`` / ``spearman_total`` of NDVI and height with the total.
    """
    w = _wide(long_df)
    months = pd.to_datetime(w["Sampling_Date"], format="%Y/%m/%d").dt.month
    per_date = w.groupby("Sampling_Date").size()

    def freq(series: pd.Series) -> dict[str, float]:
        return {str(k): float(v) for k, v in series.value_counts(normalize=True).items()}

    targets = {
        t: {
            "mean": float(w[t].mean()),
            "std": float(w[t].std()),
            "median": float(w[t].median()),
            "zero_fraction": float((w[t] == 0).mean()),
        }
        for t in TARGET_NAMES
    }
    gdm_err = (w["GDM_g"] - w["Dry_Green_g"] - w["Dry_Clover_g"]).abs().max()
    tot_err = (w["Dry_Total_g"] - w[list(COMPONENT_NAMES)].sum(axis=1)).abs().max()
    total = w["Dry_Total_g"]
    return {
        "n_images": len(w),
        "n_dates": int(w["Sampling_Date"].nunique()),
        "images_per_date": {"median": float(per_date.median()), "max": int(per_date.max())},
        "state": freq(w["State"]),
        "species": freq(w["Species"]),
        "month": {str(k): v for k, v in sorted(freq(months).items(), key=lambda kv: int(kv[0]))},
        "targets": targets,
        "mass_balance_max_error": {"gdm": float(gdm_err), "total": float(tot_err)},
        "corr_total": {
            "ndvi": float(w["Pre_GSHH_NDVI"].corr(total)),
            "height": float(w["Height_Ave_cm"].corr(total)),
        },
        "spearman_total": {
            "ndvi": float(w["Pre_GSHH_NDVI"].corr(total, method="spearman")),
            "height": float(w["Height_Ave_cm"].corr(total, method="spearman")),
        },
    }


def calibration_report(real_long: pd.DataFrame, synth_long: pd.DataFrame) -> str:
    """Markdown tables comparing real and synthetic label statistics.

    Args:
        real_long: The real ``train.csv`` (``pd.read_csv``).
        synth_long: A synthetic ``train.csv``.

    Returns:
        Markdown text.
    """
    r, s = calibration_stats(real_long), calibration_stats(synth_long)
    lines = ["| statistic | real | synthetic |", "|---|---:|---:|"]
    lines += [
        f"| images | {r['n_images']} | {s['n_images']} |",
        f"| sampling dates | {r['n_dates']} | {s['n_dates']} |",
        f"| images per date (median / max) | {r['images_per_date']['median']:g} / "
        f"{r['images_per_date']['max']} | {s['images_per_date']['median']:g} / "
        f"{s['images_per_date']['max']} |",
    ]
    for key, name in (("corr_total", "Pearson"), ("spearman_total", "Spearman")):
        for col in ("ndvi", "height"):
            lines.append(f"| {name} corr({col}, total) | {r[key][col]:.3f} | {s[key][col]:.3f} |")
    for part in ("gdm", "total"):
        lines.append(
            f"| max mass-balance error ({part}) | {r['mass_balance_max_error'][part]:.4g} | "
            f"{s['mass_balance_max_error'][part]:.4g} |"
        )
    out = ["### Summary", "", *lines, "", "### Targets (grams)", ""]
    out += [
        "| target | mean real / synth | std real / synth | median real / synth "
        "| zero fraction real / synth |",
        "|---|---:|---:|---:|---:|",
    ]
    for t in TARGET_NAMES:
        a, b = r["targets"][t], s["targets"][t]
        out.append(
            f"| {t} | {a['mean']:.2f} / {b['mean']:.2f} | {a['std']:.2f} / {b['std']:.2f} "
            f"| {a['median']:.2f} / {b['median']:.2f} "
            f"| {a['zero_fraction']:.3f} / {b['zero_fraction']:.3f} |"
        )
    for key, title in (("state", "State"), ("month", "Month"), ("species", "Species")):
        out += [
            "",
            f"### {title} frequency",
            "",
            f"| {key} | real | synthetic |",
            "|---|---:|---:|",
        ]
        keys = list(r[key]) + [k for k in s[key] if k not in r[key]]
        for k in keys:
            out.append(f"| {k} | {r[key].get(k, 0.0):.3f} | {s[key].get(k, 0.0):.3f} |")
    return "\n".join(out) + "\n"
