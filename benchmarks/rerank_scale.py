"""Claim: fieldvision's k-reciprocal re-ranking equals the dense reference and scales to 100k.

Compares ``fieldvision.retrieval.rerank`` (top-k mode, and dense mode where the reference
also runs) with the dense NumPy reference (``_rerank_reference.py``, structured like the
authors' code) on the same embeddings, and prints a table of wall time, peak memory and the
largest difference of the final distances.

Setup: ``N`` images in total, all 128-d and L2-normalised, drawn as ``N // 8`` identities
(about 8 images each: identity centre plus noise, within-identity cosine ~0.7, unrelated
~0 ± 0.09). The first ``N // 10`` images are the queries, the rest the gallery, so the
combined re-ranking set has ``N`` images. Every measurement runs in its own subprocess so
that peak resident memory (``ru_maxrss``) is that case's alone; "peak MB" is the process
peak, "added MB" the peak minus the resident memory just before the call (data included).
Each worker makes one tiny warm-up call before the timed one. On a shared machine, sizes
up to ``--reference-max`` run ``--repeat`` times (methods interleaved) and report the
fastest run (as ``timeit`` does) to damp interference from other processes; larger sizes
run once. "top-k idx =" is the fraction of top-k gallery indices identical to the
reference's; "max|diff|" compares the full matrices for dense output, the top-k distances
for top-k output.

Usage::

    nice python benchmarks/rerank_scale.py --sizes 2500 6000 20000 100000 --threads 2
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def make_embeddings(n: int, dim: int, seed: int) -> np.ndarray:
    """``float32[n, dim]`` unit vectors in identities of ~8 images (see module docstring)."""
    # plain NumPy seeding: fieldvision.seeding imports torch, which would inflate peak RSS
    rng = np.random.default_rng(np.random.SeedSequence([seed, n]))
    n_ids = max(1, n // 8)
    centres = rng.standard_normal((n_ids, dim), dtype=np.float32)
    x = centres[rng.integers(0, n_ids, n)]
    x += 0.8 * rng.standard_normal((n, dim), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def _rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _worker(args: argparse.Namespace) -> None:
    """Run one measurement and write ``{seconds, peak_mb, added_mb}`` + arrays to args.out."""
    x = make_embeddings(args.n, args.dim, args.seed)
    n_q = args.n // 10
    query, gallery = x[:n_q], x[n_q:]
    # imports and a warm-up happen before the clock starts and the baseline RSS is read
    sys.path.insert(0, str(HERE))
    from _rerank_reference import rerank_reference

    from fieldvision.retrieval.rerank import rerank

    # one tiny call first, so thread pools and lazy initialisation are not timed
    tiny = make_embeddings(200, args.dim, args.seed + 1)
    warm = rerank_reference if args.method == "reference" else rerank
    warm(tiny[:20], tiny[20:], args.k1, args.k2, args.lam)
    before = _rss_mb()
    start = time.perf_counter()  # the clock covers the re-ranking call only
    if args.method == "reference":
        full = rerank_reference(query, gallery, args.k1, args.k2, args.lam)
        seconds = time.perf_counter() - start
    elif args.method == "ours-dense":
        full = rerank(query, gallery, args.k1, args.k2, args.lam).distances
        seconds = time.perf_counter() - start
    else:
        res = rerank(query, gallery, args.k1, args.k2, args.lam, top=args.top)
        seconds = time.perf_counter() - start
        full, idx, top_d = None, res.indices, res.distances
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    if full is not None:
        idx = np.argsort(full, axis=1, kind="stable")[:, : args.top]
        top_d = np.take_along_axis(full, idx, 1)
    arrays = {"top_d": top_d.astype(np.float64), "top_i": idx}
    if full is not None:
        arrays["full"] = full.astype(np.float32)
    np.savez(args.out, **arrays)
    stats = {"seconds": seconds, "peak_mb": peak, "added_mb": max(0.0, peak - before)}
    Path(args.out).with_suffix(".json").write_text(json.dumps(stats))


def _measure(method: str, n: int, args: argparse.Namespace, scratch: Path) -> dict:
    out = scratch / f"{method}_{n}.npz"
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--worker",
        method,
        "--n",
        str(n),
        "--out",
        str(out),
        *("--dim", str(args.dim), "--seed", str(args.seed), "--top", str(args.top)),
        *("--k1", str(args.k1), "--k2", str(args.k2), "--lam", str(args.lam)),
    ]
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = str(args.threads)
    subprocess.run(cmd, check=True, env=env)
    stats = json.loads(out.with_suffix(".json").read_text())
    stats["arrays"] = dict(np.load(out))
    return stats


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2500, 6000, 20000, 100000])
    parser.add_argument("--reference-max", type=int, default=6000, help="largest N for the ref")
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--top", type=int, default=10)
    parser.add_argument("--k1", type=int, default=20)
    parser.add_argument("--k2", type=int, default=6)
    parser.add_argument("--lam", type=float, default=0.3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=3, help="runs per case up to ref-max")
    parser.add_argument("--json", type=Path, default=None, help="also write results here")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--out", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker is not None:
        args.method = args.worker
        _worker(args)
        return

    header = f"{'N':>7} {'Q':>6} {'method':<11} {'seconds':>9} {'peak MB':>9} {'added MB':>9}"
    print(f"{header} {'max|diff|':>10} {'top-k idx =':>11} {'speed-up':>9}", flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            methods = ["ours-topk"]
            if n <= args.reference_max:
                methods = ["reference", "ours-topk", "ours-dense"]
            repeat = args.repeat if n <= args.reference_max else 1
            runs: dict[str, list[dict]] = {m: [] for m in methods}
            for _ in range(repeat):  # interleaved, so load changes hit every method alike
                for method in methods:
                    runs[method].append(_measure(method, n, args, Path(tmp)))
            results = {m: min(r, key=lambda run: run["seconds"]) for m, r in runs.items()}
            ref = results.get("reference")
            for method, res in results.items():
                diff, same, speed = "", "", ""
                if ref is not None and method != "reference":
                    a, b = res["arrays"], ref["arrays"]
                    if "full" in a:
                        diff = float(np.abs(a["full"] - b["full"]).max())
                    else:
                        diff = float(np.abs(a["top_d"] - b["top_d"]).max())
                    same = f"{float((a['top_i'] == b['top_i']).mean()):.4f}"
                    speed = f"{ref['seconds'] / res['seconds']:.1f}x"
                row = {
                    "N": n,
                    "Q": n // 10,
                    "method": method,
                    "seconds": round(res["seconds"], 3),
                    "peak_mb": round(res["peak_mb"], 1),
                    "added_mb": round(res["added_mb"], 1),
                    "max_abs_diff": diff if diff == "" else float(f"{diff:.3g}"),
                    "topk_index_agreement": same,
                    "speed_up": speed,
                }
                rows.append(row)
                diff_s = "" if diff == "" else f"{diff:.2e}"
                print(
                    f"{n:>7} {n // 10:>6} {method:<11} {res['seconds']:>9.2f} "
                    f"{res['peak_mb']:>9.0f} {res['added_mb']:>9.0f} {diff_s:>10} {same:>11} "
                    f"{speed:>9}",
                    flush=True,
                )
    if args.json is not None:
        from fieldvision.io import write_json

        hidden = {"worker", "n", "out", "method", "json"}
        settings = {k: v for k, v in vars(args).items() if k not in hidden}
        write_json(args.json, {"args": settings, "rows": rows})


if __name__ == "__main__":
    main()
