"""AWP (Eq. 13-14): layer-wise norm, which tensors are perturbed, and that only the optimiser's change remains."""

import torch

from iseat.methods.models import PreActResNet18, SmallCNN
from iseat.methods.presets import Method, training_step
from iseat.methods.training_attack import PGD
from iseat.methods.weight_perturbation import AdversarialWeightPerturbation


def batch(n=8, dtype=torch.float64):
    torch.manual_seed(1)
    return torch.rand(n, 3, 32, 32, dtype=dtype), torch.randint(0, 10, (n,))


def test_layerwise_norm_and_which_tensors():
    model = SmallCNN(width=4).double().train()
    x, y = batch()
    gamma = 0.007
    v = AdversarialWeightPerturbation(gamma).compute(model, x, y)
    params = dict(model.named_parameters())
    expected_keys = {n for n, p in params.items() if p.dim() > 1}
    assert set(v) == expected_keys
    assert not any("bn" in n or n.endswith("bias") for n in v)
    assert any(n.endswith("bias") for n in params) and any(p.dim() == 1 for p in params.values())
    for name, vn in v.items():
        assert torch.allclose(vn.norm(), gamma * params[name].norm(), rtol=1e-12), name
        assert vn.abs().sum() > 0


def test_batchnorm_parameters_of_preact_resnet_are_not_perturbed():
    model = PreActResNet18()
    v = AdversarialWeightPerturbation(0.01).compute(model, *batch(4, torch.float32))
    bn_names = {
        f"{n}.{k}" for n, m in model.named_modules() if isinstance(m, torch.nn.BatchNorm2d) for k in ("weight", "bias")
    }
    assert bn_names and not bn_names & set(v)


def test_only_the_optimiser_change_remains():
    model = SmallCNN(width=4).double()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    x, y = batch()
    # lr = 0: the optimiser changes nothing, so theta + v - v must give back theta exactly (up to rounding)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0, momentum=0.9, weight_decay=5e-4)
    training_step(model, optimizer, x, y, Method(attack=PGD(steps=2), gamma=0.02))
    for name, p in model.named_parameters():
        assert torch.allclose(p, before[name], atol=1e-14, rtol=0), name
    # and with lr > 0 the change equals the SGD step taken at theta + v
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    training_step(model, optimizer, x, y, Method(attack=PGD(steps=2), gamma=0.02))
    assert any(not torch.allclose(p, before[n]) for n, p in model.named_parameters())
