import pytest
import torch

from sparse_universe.nn import TokenCodebook


def test_quantize_picks_the_nearest_token_with_straight_through_gradient():
    torch.manual_seed(0)
    book = TokenCodebook(7, 3)
    z = torch.randn(50, 3, requires_grad=True)
    q = book.quantize(z)
    brute = ((z[:, None, :] - book.weight[None]) ** 2).sum(-1).argmin(1)
    assert torch.equal(q.index, brute)
    assert torch.allclose(q.z_q, book.weight[brute])
    g = torch.randn(50, 3)
    (q.z_q * g).sum().backward()
    assert torch.allclose(z.grad, g)  # identity gradient to the encoder
    assert book.weight.grad is None or book.weight.grad.abs().sum() == 0  # not through z_q
    q.codebook_loss.backward()
    assert book.weight.grad.abs().sum() > 0  # the codebook loss moves the tokens
    assert torch.allclose(q.commitment_loss, ((z - book.weight[brute]) ** 2).sum(-1).mean())


def test_embedding_and_bad_index():
    book = TokenCodebook(4, 2)
    assert torch.equal(book(torch.tensor([3, 0])), book.weight[[3, 0]])
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        book(torch.tensor([4]))
    with pytest.raises(ValueError, match="last dimension 2"):
        book.quantize(torch.zeros(3, 5))
