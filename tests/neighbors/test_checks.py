import math

import pytest
import torch

from sparse_universe import NeighborList, radius_graph

POS = torch.rand(10, 3)


@pytest.mark.parametrize(
    "kwargs, error, words",
    [
        (dict(pos=torch.rand(10)), ValueError, ["'pos'", "two-dimensional", "1 dimensions"]),
        (dict(pos=torch.ones(4, 3, dtype=torch.long)), TypeError, ["'pos'", "floating", "int64"]),
        (dict(pos=[[0.0, 1.0]]), TypeError, ["'pos'", "torch.Tensor", "list"]),
        (dict(r=0.0), ValueError, ["'r'", "> 0", "0.0"]),
        (dict(r=-1), ValueError, ["'r'", "-1.0"]),
        (dict(r=math.inf), ValueError, ["'r'", "finite", "inf"]),
        (dict(r=math.nan), ValueError, ["'r'", "nan"]),
        (dict(r="1"), TypeError, ["'r'", "real number", "str"]),
        (dict(batch=torch.zeros(9, dtype=torch.long)), ValueError, ["'batch'", "(10,)", "(9,)"]),
        (dict(batch=torch.zeros(10)), TypeError, ["'batch'", "integer", "float32"]),
        (dict(batch=-torch.ones(10, dtype=torch.long)), ValueError, ["'batch'", ">= 0", "-1"]),
        (dict(box=[1.0, 1.0]), ValueError, ["'box'", "(3,)", "(2,)"]),
        (dict(box=[1.0, 0.0, 1.0]), ValueError, ["'box'", "> 0"]),
        (dict(box=[1.0, 1.0, 1.0], periodic=[True, False]), ValueError, ["'periodic'", "(3,)", "(2,)"]),
        (dict(box=[1.0, 1.0, 1.0], periodic=[1, 0, 1]), TypeError, ["'periodic'", "bool"]),
        (dict(periodic=[True, True, True]), ValueError, ["'periodic'", "'box'"]),
        (dict(box=[1.0, 1.0, 1.0], r=0.6), ValueError, ["'r'", "half", "0.5", "0.6"]),
        (dict(backend="kdtree"), ValueError, ["'backend'", "'hash'", "'kdtree'"]),
        (dict(flow="both"), ValueError, ["'flow'", "'both'"]),
        (dict(max_num_neighbors=-2), ValueError, ["'max_num_neighbors'", "-2"]),
        (dict(on_overflow="drop"), ValueError, ["'on_overflow'", "'nearest'", "'drop'"]),
    ],
)
def test_bad_input_names_argument_expected_and_given(kwargs, error, words):
    args = dict(pos=POS, r=0.5)
    args.update(kwargs)
    with pytest.raises(error) as info:
        radius_graph(args.pop("pos"), args.pop("r"), **args)
    for word in words:
        assert word in str(info.value), (word, str(info.value))


def test_nan_and_inf_are_counted():
    pos = torch.rand(10, 2)
    pos[1, 0] = math.nan
    pos[4] = math.inf
    pos[7, 1] = -math.inf
    with pytest.raises(ValueError, match=r"'pos'.*NaN or inf in 3 of 10 rows"):
        radius_graph(pos, 0.1)


def test_neighbor_list_checks_skin_and_box():
    with pytest.raises(ValueError, match="'skin'"):
        NeighborList(0.1, skin=0.0)
    nl = NeighborList(0.4, skin=0.2, box=[1.0, 1.0])
    with pytest.raises(ValueError, match="'r'.*half"):
        nl.update(torch.rand(5, 2))
