"""Radius-graph scaling benchmark: every backend, side by side, in one run.

Run it as::

    sparse-universe scale                                  # CPU, d = 2 and 3, N = 1e3 .. 1e6
    python -m sparse_universe.experiments.scaling --max-n 1e5
    sparse-universe scale --device cuda --max-n 1e7 --dims 3
    sparse-universe scale --crystals                       # periodic crystals against vesin, matscipy and ASE
    sparse-universe scale --small                          # molecule batches against torch-cluster, vesin, cKDTree

Points are uniform in the unit cube with ``r`` chosen for about ``--neighbors``
neighbours per point. Each (backend, d, N) is timed ``--repeats`` times after
one untimed warm-up per backend, and the median is kept. Peak memory is the
high-water mark above the memory held before the call: CUDA's allocator peak on
GPUs, the process's resident-set peak (``VmHWM``, reset through
``/proc/self/clear_refs``) on Linux CPUs.

The ``kdtree`` row is scipy's ``cKDTree(x).query_pairs(r)``: build plus query,
returning each unordered pair once, unsorted. It does less than the other rows,
which return the sorted, directed ``edge_index`` (two edges per pair).
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Tuple

import torch
from tqdm import tqdm

from ..neighbors import radius_graph
from . import command_main, crystals, number, small, write_csv

#: Defaults in one place.
DEFAULT_SIZES = (1_000, 10_000, 100_000, 1_000_000)
DEFAULT_DIMS = (2, 3)
DEFAULT_NEIGHBORS = 20.0
DEFAULT_REPEATS = 3
#: Brute force is skipped above this many points (O(N^2) pairs).
DENSE_MAX = {"cpu": 20_000, "cuda": 200_000}
#: torch-cluster on CUDA is brute force too.
CLUSTER_MAX = {"cpu": 10**7, "cuda": 10**6}


@dataclass
class Row:
    backend: str
    d: int
    n: int
    edges: int
    median_s: float
    edges_per_s: float
    peak_bytes: int
    edge_index_bytes: int
    device: str


def radius_for(n: int, d: int, neighbors: float) -> float:
    """Radius with ``neighbors`` expected points in its ball, ``n`` points in the unit cube."""
    unit_ball = math.pi ** (d / 2) / math.gamma(d / 2 + 1)
    return (neighbors / (n * unit_ball)) ** (1.0 / d)


class PeakMemory:
    """Peak bytes above the starting level during a ``with`` block."""

    def __init__(self, device: torch.device) -> None:
        self.device, self.peak = device, 0

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._base = torch.cuda.memory_allocated(self.device)
        else:
            _clear_rss_peak()
            self._base = _status_kib("VmRSS") * 1024
        return self

    def __exit__(self, *exc: object) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.peak = torch.cuda.max_memory_allocated(self.device) - self._base
        else:
            self.peak = max(0, _status_kib("VmHWM") * 1024 - self._base)


def _clear_rss_peak() -> None:
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:  # not Linux, or not allowed: the peak then spans the process
        pass


def _status_kib(field: str) -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _runner(backend: str, pos: torch.Tensor, r: float) -> Callable[[], int]:
    """A zero-argument call that does the work and returns the directed edge count."""
    if backend == "kdtree":
        from scipy.spatial import cKDTree

        x = pos.cpu().double().numpy()
        return lambda: 2 * len(cKDTree(x).query_pairs(r, output_type="ndarray"))
    return lambda: radius_graph(pos, r, backend=backend).size(1)


def _time(run: Callable[[], int], device: torch.device, repeats: int):
    times, edges, peak = [], 0, 0
    for _ in range(repeats):
        with PeakMemory(device) as mem:
            start = time.perf_counter()
            edges = run()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            times.append(time.perf_counter() - start)
        peak = max(peak, mem.peak)
    return statistics.median(times), edges, peak


def available_backends(device: torch.device) -> List[str]:
    names = ["hash", "dense"]
    try:
        import torch_cluster  # noqa: F401

        names.insert(1, "cluster")
    except ImportError:
        pass
    if device.type == "cpu":
        try:
            import scipy  # noqa: F401

            names.append("kdtree")
        except ImportError:
            pass
    return names


def run(
    sizes: Sequence[int] = DEFAULT_SIZES,
    dims: Sequence[int] = DEFAULT_DIMS,
    backends: Optional[Sequence[str]] = None,
    neighbors: float = DEFAULT_NEIGHBORS,
    repeats: int = DEFAULT_REPEATS,
    device: str = "cpu",
    seed: int = 0,
    progress: bool = True,
) -> List[Row]:
    """Time every backend on every (d, N); returns one :class:`Row` per measurement."""
    dev = torch.device(device)
    backends = list(backends or available_backends(dev))
    jobs = [
        (d, n, b) for d in dims for n in sizes for b in backends
        if not (b == "dense" and n > DENSE_MAX.get(dev.type, DENSE_MAX["cuda"]))
        and not (b == "cluster" and n > CLUSTER_MAX.get(dev.type, CLUSTER_MAX["cuda"]))
    ]
    warm = torch.rand(2000, 3, generator=torch.Generator().manual_seed(seed)).to(dev)
    for b in backends:  # first calls pay for thread pools, kernels and imports
        _runner(b, warm, radius_for(2000, 3, neighbors))()
    rows: List[Row] = []
    for d, n, b in tqdm(jobs, desc="scaling", disable=not progress):
        pos = torch.rand(n, d, generator=torch.Generator().manual_seed(seed + n + d)).to(dev)
        r = radius_for(n, d, neighbors)
        median, edges, peak = _time(_runner(b, pos, r), dev, repeats)
        rows.append(Row(b, d, n, edges, median, edges / median, peak, 16 * edges, dev.type))
    _check_agreement(rows)
    return rows


def _check_agreement(rows: List[Row]) -> None:
    """All backends must find the same number of edges for the same cloud."""
    by_case: dict = {}
    for row in rows:
        by_case.setdefault((row.d, row.n), set()).add(row.edges)
    bad = {case: counts for case, counts in by_case.items() if len(counts) > 1}
    if bad:
        raise RuntimeError(f"backends disagree on the edge count: {bad}")


def loglog_slope(points: Sequence[Tuple[float, float]]) -> float:
    """Least-squares slope of log(time) against log(N) over ``(N, time)`` points."""
    pts = [(math.log(n), math.log(t)) for n, t in points]
    if len(pts) < 2:
        return float("nan")
    mx = sum(x for x, _ in pts) / len(pts)
    my = sum(y for _, y in pts) / len(pts)
    return sum((x - mx) * (y - my) for x, y in pts) / sum((x - mx) ** 2 for x, _ in pts)


def slope(rows: List[Row], backend: str, d: int, low: int = 10_000) -> float:
    """Log-log slope of one backend's time in ``d`` dimensions for N >= ``low``."""
    return loglog_slope([(r.n, r.median_s) for r in rows if r.backend == backend and r.d == d and r.n >= low])


def table(rows: List[Row]) -> str:
    """A fixed-width table, with hash's speed-up over each peer at the same (d, N)."""
    hash_time = {(r.d, r.n): r.median_s for r in rows if r.backend == "hash"}
    head = f"{'backend':>8} {'d':>2} {'N':>9} {'edges':>11} {'median s':>9} {'Medges/s':>9} " \
           f"{'peak MB':>8} {'peak/out':>8} {'hash x':>7}"
    lines = [head, "-" * len(head)]
    for r in rows:
        speedup = r.median_s / hash_time[(r.d, r.n)] if (r.d, r.n) in hash_time else float("nan")
        lines.append(
            f"{r.backend:>8} {r.d:>2} {r.n:>9} {r.edges:>11} {r.median_s:>9.4f} {r.edges_per_s / 1e6:>9.2f} "
            f"{r.peak_bytes / 2**20:>8.1f} {r.peak_bytes / max(r.edge_index_bytes, 1):>8.2f} {speedup:>7.2f}"
        )
    for d in sorted({r.d for r in rows}):
        lines.append(f"hash log-log slope, d={d}, N >= 1e4: {slope(rows, 'hash', d):.3f}")
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> List[Row]:
    return command_main("scaling", argv)


def build_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    parser.add_argument("--dims", type=number(int, 1), nargs="+", default=list(DEFAULT_DIMS))
    parser.add_argument("--min-n", type=number(float, 1), default=min(DEFAULT_SIZES))
    parser.add_argument("--max-n", type=number(float, 1), default=max(DEFAULT_SIZES))
    parser.add_argument("--backends", nargs="+", default=None,
                        help="subset of hash cluster dense kdtree (default: all available)")
    parser.add_argument("--neighbors", type=number(float, 0, strict=True), default=DEFAULT_NEIGHBORS)
    parser.add_argument("--repeats", type=number(int, 1), default=DEFAULT_REPEATS)
    parser.add_argument("--crystals", action="store_true",
                        help="instead: periodic crystals against vesin, matscipy and ASE (CPU; see crystals.py)")
    parser.add_argument("--small", action="store_true",
                        help="instead: batches of molecules and small clouds against torch-cluster, vesin and "
                             "cKDTree (CPU; see small.py)")
    parser.add_argument("--out", type=Path, default=Path("data"), help="folder for CSV and PNG")
    return parser


def outputs(args: argparse.Namespace) -> List[Path]:
    stem = "crystals" if args.crystals else "small" if args.small else "scaling"
    tag = torch.device(args.device).type
    return [args.out / f"{stem}_{tag}.csv", args.out / f"{stem}_{tag}.png"]


def execute(args: argparse.Namespace) -> List:
    from ..viz import plot_cases, plot_scaling

    if args.crystals or args.small:
        if torch.device(args.device).type != "cpu":
            raise ValueError("Expected --device cpu with --crystals or --small: the peers run on the CPU")
        module, title = ((crystals, "periodic neighbour lists with shifts (ijS), CPU; peers called per structure")
                         if args.crystals else
                         (small, "small systems, CPU; vesin and cKDTree called per molecule"))
        rows = module.run(args.repeats)
        csv_path, png_path = outputs(args)
        write_csv(rows, csv_path)
        plot_cases(rows, png_path, title)
        print(module.table(rows))
        print(f"wrote {csv_path} and {png_path}")
        return rows

    if args.max_n < args.min_n:
        raise ValueError(f"Expected --max-n >= --min-n (got {args.max_n:g} < {args.min_n:g})")
    sizes = [10**k for k in range(round(math.log10(args.min_n)), round(math.log10(args.max_n)) + 1)]
    rows = run(sizes, args.dims, args.backends, args.neighbors, args.repeats, args.device)
    csv_path, png_path = outputs(args)
    write_csv(rows, csv_path)
    plot_scaling(rows, png_path)
    print(table(rows))
    print(f"wrote {csv_path} and {png_path}")
    return rows


if __name__ == "__main__":
    main()
