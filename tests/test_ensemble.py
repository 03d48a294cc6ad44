"""The batched ensemble against E separate ``mlp`` modules carrying the same weights (outputs and
gradients), the critic's random target subset and DrQ's random shift against a brute-force crop."""
import numpy as np
import pytest
import torch
from torch import nn

from robot_rl.nets import CriticEnsemble, EnsembleMLP, mlp, random_shift

E, IN, HIDDEN, OUT, B = 10, 5, (8, 6), 3, 4


def pair(layer_norm: bool, seed: int = 0) -> tuple[EnsembleMLP, list[nn.Sequential]]:
    """A float64 ensemble with random weights (LayerNorm affines too) and E mlps copied from it."""
    torch.manual_seed(seed)
    ensemble = EnsembleMLP(E, IN, HIDDEN, OUT, layer_norm).double()
    with torch.no_grad():
        for p in ensemble.parameters():
            p.normal_()  # nothing left at its init value: a wrong copy or layout cannot match by luck
    members = [mlp(IN, HIDDEN, OUT, layer_norm).double() for _ in range(E)]
    for e, member in enumerate(members):
        linears = [m for m in member if isinstance(m, nn.Linear)]
        norms = [m for m in member if isinstance(m, nn.LayerNorm)]
        assert len(linears) == len(ensemble.linears) + 1 and len(norms) == (len(HIDDEN) if layer_norm else 0)
        with torch.no_grad():
            for linear, stacked in zip(linears, [*ensemble.linears, ensemble.head]):
                linear.weight.copy_(stacked.weight[e].T)  # [in, out] per member vs nn.Linear's [out, in]
                linear.bias.copy_(stacked.bias[e, 0])
            for norm, stacked in zip(norms, ensemble.norms or []):
                norm.weight.copy_(stacked.weight[e, 0])
                norm.bias.copy_(stacked.bias[e, 0])
    return ensemble, members


def member_grads(member: nn.Sequential) -> list[torch.Tensor]:
    """Gradients in the ensemble's layout: linear weights transposed, in the order linears, norms, head."""
    linears = [m for m in member if isinstance(m, nn.Linear)]
    norms = [m for m in member if isinstance(m, nn.LayerNorm)]
    grads = [g for m in linears[:-1] for g in (m.weight.grad.T, m.bias.grad)]
    grads += [g for m in norms for g in (m.weight.grad, m.bias.grad)]
    return grads + [linears[-1].weight.grad.T, linears[-1].bias.grad]


def ensemble_grads(ensemble: EnsembleMLP, e: int) -> list[torch.Tensor]:
    grads = [g[e].squeeze(0) for m in ensemble.linears for g in (m.weight.grad, m.bias.grad)]
    grads += [g[e].squeeze(0) for m in (ensemble.norms or []) for g in (m.weight.grad, m.bias.grad)]
    return grads + [ensemble.head.weight.grad[e], ensemble.head.bias.grad[e].squeeze(0)]


@pytest.mark.parametrize("layer_norm", [False, True])
@pytest.mark.parametrize("shared_input", [True, False], ids=["x[B,in]", "x[E,B,in]"])
@pytest.mark.parametrize("subset", [None, [3, 7]], ids=["all", "members[3,7]"])
def test_ensemble_matches_separate_mlps(layer_norm, shared_input, subset):
    ensemble, members = pair(layer_norm)
    chosen = list(range(E)) if subset is None else subset
    gen = torch.Generator().manual_seed(1)
    shape = (B, IN) if shared_input else (len(chosen), B, IN)
    x = torch.randn(shape, dtype=torch.float64, generator=gen)
    upstream = torch.randn(len(chosen), B, OUT, dtype=torch.float64, generator=gen)

    x_batched = x.clone().requires_grad_(True)
    out = ensemble(x_batched, None if subset is None else torch.tensor(subset))
    (out * upstream).sum().backward()

    x_list = x.clone().requires_grad_(True)
    inputs = [x_list if shared_input else x_list[i] for i in range(len(chosen))]
    expected = torch.stack([members[e](inputs[i]) for i, e in enumerate(chosen)])
    (expected * upstream).sum().backward()

    assert out.shape == (len(chosen), B, OUT)
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(x_batched.grad, x_list.grad, rtol=1e-12, atol=1e-12)
    for e in range(E):
        if e in chosen:
            for got, want in zip(ensemble_grads(ensemble, e), member_grads(members[e]), strict=True):
                torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
        else:  # a member outside the subset takes no part: zero gradient
            assert all(not g.any() for g in ensemble_grads(ensemble, e))


def test_subset_equals_rows_of_full_ensemble():
    ensemble, _ = pair(layer_norm=True)
    x = torch.randn(B, IN, dtype=torch.float64)
    torch.testing.assert_close(ensemble(x, torch.tensor([3, 7])), ensemble(x)[[3, 7]], rtol=0, atol=0)


def test_members_differ():
    """Guards the comparisons above: with distinct weights, members give distinct outputs."""
    ensemble, _ = pair(layer_norm=True)
    out = ensemble(torch.randn(B, IN, dtype=torch.float64))
    assert not torch.allclose(out[0], out[1])


@pytest.mark.parametrize("k", [1, 2, 5, 10])
def test_random_members(k):
    critic = CriticEnsemble(feature_dim=3, action_dim=2, ensemble_size=E, hidden=(8,), layer_norm=False)
    gen = torch.Generator().manual_seed(0)
    seen = set()
    for _ in range(200):
        members = critic.random_members(k, generator=gen)
        assert members.dtype == torch.long and members.shape == (k,)
        assert len(set(members.tolist())) == k
        assert all(0 <= m < E for m in members.tolist())
        seen.update(members.tolist())
    assert seen == set(range(E))  # every member gets drawn, not always the first k


def test_random_members_reproducible_with_generator():
    critic = CriticEnsemble(3, 2, E, (8,), False)
    draws = [critic.random_members(3, torch.Generator().manual_seed(5)) for _ in range(2)]
    assert torch.equal(*draws)


def test_random_shift_pad0_is_identity():
    images = torch.rand(5, 3, 6, 7)
    assert torch.equal(random_shift(images, pad=0), images)


def test_random_shift_is_crop_of_edge_padded_image():
    pad, h, w = 4, 5, 6
    images = torch.rand(32, 2, h, w, generator=torch.Generator().manual_seed(0))
    out = random_shift(images, pad=pad, generator=torch.Generator().manual_seed(1))
    assert out.shape == images.shape
    padded = np.pad(images.numpy(), ((0, 0), (0, 0), (pad, pad), (pad, pad)), mode="edge")
    offsets = []
    for b in range(len(images)):
        matches = [(i, j) for i in range(2 * pad + 1) for j in range(2 * pad + 1)
                   if np.array_equal(out[b].numpy(), padded[b, :, i:i + h, j:j + w])]
        assert matches, f"image {b} is no crop of its padded input"
        offsets.append(matches[0])
    assert len(set(offsets)) > 1  # offsets are drawn per image, not one for the batch
