"""Scale-out on ``torch.distributed``: one universe over many processes by spatial decomposition.

Launch with ``torchrun`` (gloo on CPU, NCCL on GPU), build a
:class:`DistributedState` on every rank, and call the single-process API on
it: :func:`~sparse_universe.rollout`, the observables,
:func:`~sparse_universe.path_loss`; after ``backward``,
:func:`reduce_gradients` sums the parameter gradients over the ranks.
"""

from .comm import all_gather_rows, all_sum, exchange
from .domain import Domain, choose_grid
from .rollout import DistributedTrajectory, OwnedRows, OwnedWaves, reduce_gradients, sum_pairs
from .state import DistributedState, Halo, HaloTooThin

__all__ = [
    "DistributedState",
    "DistributedTrajectory",
    "Domain",
    "Halo",
    "HaloTooThin",
    "OwnedRows",
    "OwnedWaves",
    "all_gather_rows",
    "all_sum",
    "choose_grid",
    "exchange",
    "reduce_gradients",
    "sum_pairs",
]
