"""torch-cluster backend, made exact.

``torch_cluster.radius_graph`` keeps at most ``max_num_neighbors`` (default 32)
neighbours per node and drops the rest without a word; its own distance test
may also be strict (``<``) where ours is inclusive. We therefore ask it for a
graph at a slightly larger radius, and whenever some node comes back *at* the
cap we cannot tell a full neighbourhood from a truncated one, so we ask again
with four times the cap. The superset is then cut to the exact radius with the
shared formula.

``torch_geometric.nn.radius_graph`` would route through pyg-lib in PyG 2.8,
which is not installable everywhere, so we call torch-cluster directly.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from .geometry import Pairs, exact_r2, pair_sq_dist, search_radius

#: The first cap tried; each retry multiplies it by 4.
FIRST_CAP = 64


def cluster_pairs(
    cell_pos: Tensor,
    r: float,
    group: Tensor,
    filter_pos: Tensor,
    box: Optional[Tensor] = None,
    first_cap: int = FIRST_CAP,
) -> Pairs:
    """Unordered exact pairs of rows, the same contract as :func:`.hash.hash_pairs`.

    Shapes:
        cell_pos ``(M, d)``, group ``(M,)``, filter_pos ``(M, d)``.
    """
    torch_cluster = _torch_cluster()
    m = cell_pos.size(0)
    if m < 2:
        return []
    # torch-cluster wants batch sorted: sort once, map back at the end.
    order = torch.argsort(group, stable=True)
    x = cell_pos.index_select(0, order).to(filter_pos.dtype).contiguous()
    # Dense batch ids: torch-cluster allocates per id up to the largest one.
    batch = torch.unique_consecutive(group.index_select(0, order), return_inverse=True)[1]
    if int(batch[-1]) == 0:
        batch = None  # one example: lets torch-cluster use num_workers threads
    reach = search_radius(r, filter_pos.dtype, x.size(1))  # its test may be strict (<) and underflow
    cap = min(first_cap, m)
    while True:
        edge_index = torch_cluster.radius_graph(
            x, reach, batch, loop=False, max_num_neighbors=cap,
            flow="source_to_target", num_workers=torch.get_num_threads(),
        )
        degree = torch.bincount(edge_index[1], minlength=m)
        if cap >= m - 1 or int(degree.max()) < cap:
            break
        cap = min(cap * 4, m)
    a, b = order.index_select(0, edge_index[0]), order.index_select(0, edge_index[1])
    keep = a < b
    a, b = a[keep], b[keep]
    keep = pair_sq_dist(filter_pos, a, b, box) <= exact_r2(r, filter_pos.dtype)
    return [(a[keep], b[keep])]


def cluster_bipartite(query: Tensor, source: Tensor, r: float, query_group: Tensor, source_group: Tensor,
                      first_cap: int = FIRST_CAP) -> Pairs:
    """Every pair ``(q, s)`` within ``r`` with equal groups, the contract of :func:`.hash.hash_bipartite`.

    ``torch_cluster.radius`` with the same guards as :func:`cluster_pairs`: a
    wider radius, a cap raised until no query is at it, then the exact test.
    """
    torch_cluster = _torch_cluster()
    if query.size(0) == 0 or source.size(0) == 0:
        return []
    # Both sides sorted by one dense numbering of the groups, as torch-cluster wants.
    ids, dense = torch.unique(torch.cat([query_group, source_group]), return_inverse=True)
    q_order = torch.argsort(dense[:query.size(0)], stable=True)
    s_order = torch.argsort(dense[query.size(0):], stable=True)
    q_batch = dense[:query.size(0)].index_select(0, q_order)
    s_batch = dense[query.size(0):].index_select(0, s_order)
    x, y = source.index_select(0, s_order).contiguous(), query.index_select(0, q_order).contiguous()
    reach = search_radius(r, query.dtype, query.size(1))
    cap = min(first_cap, source.size(0))
    one = ids.numel() == 1
    while True:
        row, col = torch_cluster.radius(x, y, reach, None if one else s_batch, None if one else q_batch,
                                        max_num_neighbors=cap, num_workers=torch.get_num_threads())
        degree = torch.bincount(row, minlength=y.size(0))
        if cap >= source.size(0) or int(degree.max()) < cap:
            break
        cap = min(cap * 4, source.size(0))
    q, s = q_order.index_select(0, row), s_order.index_select(0, col)
    d2 = pair_sq_dist(query, q, s, None, source)
    keep = d2 <= exact_r2(r, query.dtype)
    return [(q[keep], s[keep])]


def _torch_cluster():
    try:
        import torch_cluster
    except ImportError as e:  # pragma: no cover - depends on the install
        raise ImportError(
            "backend='cluster' needs torch-cluster; install it with "
            "'pip install --no-build-isolation torch-cluster' or use backend='hash'"
        ) from e
    return torch_cluster
