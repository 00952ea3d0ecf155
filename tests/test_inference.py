import math

import pytest
import torch

from sparse_universe.experiments import infer as exp
from sparse_universe.inference import CovarianceUniverse, infer, relative_error


def _weak(n=10, scale=0.05, seed=0):
    torch.manual_seed(seed)
    model = CovarianceUniverse(n, 3).double()
    with torch.no_grad():
        model.charge.mul_(scale / 0.1)
    return model


def test_covariance_is_masses_on_the_diagonal_and_charges_over_distance_off_it():
    model = _weak(n=4)
    k = model.covariance().detach()
    m, q, r = model.log_mass.exp().detach(), model.charge.detach(), model.pos.detach()
    for i in range(4):
        assert math.isclose(float(k[i, i]), float(m[i]))
        for j in range(4):
            if i != j:
                expected = q[i] * q[j] / math.sqrt(float(((r[i] - r[j]) ** 2).sum()) + 0.5**2)
                assert math.isclose(float(k[i, j]), float(expected), rel_tol=1e-12)
    sparse = CovarianceUniverse(30, 3, cutoff=0.8).double()
    ks, far = sparse.covariance().detach(), torch.cdist(sparse.pos.detach(), sparse.pos.detach()) > 0.8
    assert bool((ks[far] == 0).all()) and bool((ks[~far & ~torch.eye(30, dtype=torch.bool)] != 0).all())


def test_exact_nll_is_the_gaussian_and_second_order_approaches_it_for_weak_correlations():
    model = _weak()
    x = torch.randn(200, 10, dtype=torch.float64)
    gauss = torch.distributions.MultivariateNormal(x.mean(0), model.covariance().detach())
    assert torch.allclose(model.nll(x), -gauss.log_prob(x).mean())
    gaps = []
    for scale in (0.1, 0.05):
        exact, approx = _weak(scale=scale), _weak(scale=scale)
        approx.approximation = "second-order"
        gaps.append(abs(float(exact.nll(x) - approx.nll(x))))
    assert gaps[1] < gaps[0] / 4  # the error is third order in the correlations (x 1/8 for half the charges)


def test_learning_recovers_the_covariance_and_the_loss_falls():
    truth = exp.truth_model(num_variables=12)
    x = exp.sample(truth, 6000)
    model, history = infer(x, window=300, epochs=40, restarts=3, progress=False)
    k = truth.covariance().detach()
    error = relative_error(model.covariance().detach(), k)
    sample, diagonal_only = relative_error(torch.cov(x.T), k), relative_error(torch.diag(x.var(0)), k)
    assert error < 1.2 * sample and error < diagonal_only / 3, (error, sample, diagonal_only)
    first = sum(h["loss"] for h in history if h["epoch"] == 0)
    last = sum(h["loss"] for h in history if h["epoch"] == 39)
    assert last < first


def test_prior_moves_only_positions():
    model = _weak()
    previous = model.pos.detach() - 0.1
    model.prior(previous).backward()
    assert model.pos.grad.abs().sum() > 0 and model.log_mass.grad is None and model.charge.grad is None


def test_cli_on_the_example_round_trips_the_truth(tmp_path):
    csv = tmp_path / "m.csv"
    exp.make_example(csv, num_variables=8, steps=1000)
    assert torch.allclose(exp.load_model(tmp_path / "m_truth.csv").covariance(), exp.truth_model(8).covariance())
    out = exp.main(["--csv", str(csv), "--truth", str(tmp_path / "m_truth.csv"), "--epochs", "5",
                    "--out", str(tmp_path)])
    assert out["variables"] == 8 and out["error"] < 0.3
    assert (tmp_path / "infer.png").exists() and (tmp_path / "infer_positions.csv").exists()


@pytest.mark.parametrize("kwargs, words", [(dict(window=200), "window=200"), (dict(restarts=0), "'restarts'"),
                                           (dict(approximation="first"), "'approximation'")])
def test_bad_input(kwargs, words):
    with pytest.raises(ValueError, match=words):
        infer(torch.randn(100, 4), **{"window": 50, "progress": False, **kwargs})
    with pytest.raises(FileNotFoundError, match="make-example"):
        exp.read_measurements(exp.Path("nowhere.csv"))
