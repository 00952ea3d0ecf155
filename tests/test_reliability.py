"""Issue 12: inputs once accepted silently or refused with an unhelpful error, each named now.

Every case checks the exception type and that the message names the argument,
what was expected and what was given.
"""

import warnings

import numpy as np
import pytest
import torch

from sparse_universe import BranchManager, ParticleState, edge_vectors, path_loss, radius_graph, rollout
from sparse_universe.nn import InverseDistanceConv, TokenCodebook, UniverseStep
from sparse_universe.physics import LennardJones, PairForceStep

POS = torch.rand(10, 2, generator=torch.Generator().manual_seed(0))
EDGES = radius_graph(POS, 0.5)
STATE = ParticleState(POS)


def conv(x, pos, edge_index):
    return InverseDistanceConv(2, 3)(x, pos, edge_index)


def bond_step(bonds):
    return PairForceStep(dt=0.1, bonds=bonds, bond=LennardJones())


CASES = [
    # silently accepted before
    ("flow", lambda: edge_vectors(POS, EDGES, flow="bogus"), ValueError, ["'flow'", "'bogus'"]),
    ("3 rows", lambda: edge_vectors(POS, torch.cat([EDGES, EDGES[:1]])), ValueError, ["'edge_index'", "(2, E)", "(3,"]),
    ("int pos", lambda: edge_vectors(POS.long(), EDGES), TypeError, ["'pos'", "floating", "int64"]),
    ("int pos conv", lambda: conv(POS, POS.long(), EDGES), TypeError, ["'pos'", "floating", "int64"]),
    ("int x conv", lambda: conv(POS.long(), POS, EDGES), TypeError, ["'x'", "floating", "int64"]),
    ("vel dtype", lambda: ParticleState(POS, vel=POS.double()), TypeError, ["'vel'", "float32", "float64"]),
    ("mass dtype", lambda: ParticleState(POS, mass=torch.ones(10, dtype=torch.float64)), TypeError,
     ["'mass'", "float32", "float64"]),
    ("hidden 0", lambda: UniverseStep(2, 3, hidden=0), ValueError, ["'hidden'", ">= 1", "0"]),
    ("sigma nan", lambda: UniverseStep(2, 3, sigma=float("nan")), ValueError, ["'sigma'", "finite", "nan"]),
    ("dt inf", lambda: UniverseStep(2, 3, dt=float("inf")), ValueError, ["'dt'", "finite", "inf"]),
    ("dt nan, physics", lambda: PairForceStep(LennardJones(), dt=float("nan")), ValueError, ["'dt'", "nan"]),
    ("sigma inf, physics", lambda: PairForceStep(LennardJones(), sigma=float("inf")), ValueError, ["'sigma'", "inf"]),
    ("manager sigma", lambda: BranchManager(UniverseStep(2, 3), sigma=-1), ValueError, ["'sigma'", ">= 0", "-1"]),
    # wrong exception or unhelpful message before
    ("box str", lambda: radius_graph(POS, 0.1, box="abc"), TypeError, ["'box'", "sequence of numbers", "'abc'"]),
    ("box None", lambda: radius_graph(POS, 0.1, box=[1, None]), TypeError, ["'box'", "[1, None]"]),
    ("edges out of range", lambda: edge_vectors(POS, EDGES + 100), ValueError, ["'edge_index'", "[0, 10)", "109"]),
    ("edges negative", lambda: edge_vectors(POS, EDGES - 100), ValueError, ["'edge_index'", "[0, 10)", "-100"]),
    ("edges float", lambda: edge_vectors(POS, EDGES.float()), TypeError, ["'edge_index'", "integer", "float32"]),
    ("numpy pos", lambda: edge_vectors(POS.numpy(), EDGES), TypeError, ["'pos'", "torch.Tensor", "ndarray"]),
    ("numpy pos conv", lambda: conv(POS, POS.numpy(), EDGES), TypeError, ["'pos'", "torch.Tensor", "ndarray"]),
    ("conv out of range", lambda: conv(POS, POS, EDGES + 100), ValueError, ["'edge_index'", "[0, 10)"]),
    ("bonds negative", lambda: bond_step(torch.tensor([[-1], [2]])), ValueError, ["'bonds'", ">= 0", "-1"]),
    ("bonds float", lambda: bond_step(torch.tensor([[1.0], [2.0]])), TypeError, ["'bonds'", "integer", "float32"]),
    ("bonds beyond N", lambda: bond_step(torch.tensor([[1], [20]]))(STATE), ValueError, ["'bonds'", "[0, 10)", "20"]),
    ("complex token", lambda: ParticleState(POS, token=torch.zeros(10, dtype=torch.complex64)), TypeError,
     ["'token'", "integer", "complex64"]),
    ("num_tokens str", lambda: ParticleState(POS, num_tokens="3"), TypeError, ["'num_tokens'", "int", "'3'"]),
    ("hidden -4", lambda: UniverseStep(2, 3, hidden=-4), ValueError, ["'hidden'", ">= 1", "-4"]),
    ("codebook 2.5", lambda: TokenCodebook(2.5, 2), TypeError, ["'num_tokens'", "int", "2.5"]),
    ("rollout tensor", lambda: rollout(UniverseStep(2, 3), POS, 2), TypeError, ["'state'", "ParticleState", "Tensor"]),
]


@pytest.mark.parametrize("name, call, error, words", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_named(name, call, error, words):
    with pytest.raises(error) as info:
        call()
    for word in words:
        assert word in str(info.value), (word, str(info.value))


def test_numpy_integers_are_integers():
    capped = radius_graph(POS, 0.5, max_num_neighbors=np.int64(1000))
    assert torch.equal(capped, EDGES)
    step = UniverseStep(2, 3, hidden=np.int64(8), sigma=0.0)
    traj = rollout(step, STATE, np.int64(2), horizon=None)
    assert traj.pos.shape == (3, 10, 2)


def test_path_loss_of_a_diverged_rollout_is_nan_and_warns_once(monkeypatch):
    import sparse_universe.losses as losses

    monkeypatch.setattr(losses, "_warned_not_finite", False)
    positions = torch.rand(5, 10, 2)
    positions[3:, 1] = float("nan")  # particle 1 diverges after step 2
    path = torch.zeros(4, 2)
    with pytest.warns(RuntimeWarning, match=r"positions are NaN or inf from path step 2 \(0-based, of 4\)"):
        loss = path_loss(positions, path, torch.arange(3))
    assert torch.isnan(loss)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a second warning would raise
        assert torch.isnan(path_loss(positions, path, torch.arange(3)))
    assert torch.isfinite(path_loss(positions, path, torch.tensor([0, 2])))  # particle 1 is not a member
