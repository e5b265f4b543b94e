"""One training step of every method against the paper's equations, computed here in float64.

The oracle is written from the paper alone: the network's forward pass (conv, BatchNorm with batch
statistics, ReLU, pooling, linear), PGD (Madry et al.), AWP (Eq. 13-14), the losses (Eq. 9, Eq. 16-18
and the Tab. 5/6 variants), their gradients by `torch.func.grad` with v held constant (Eq. 20) and
the SGD update on theta + v (Eq. 21). BatchNorm running statistics follow from every train-mode
forward pass of the step except AWP's ascent pass (the reference computes it on a copy).
"""

import math

import pytest
import torch
import torch.nn.functional as F
from torch.func import grad

from iseat.methods.models import SmallCNN
from iseat.methods.presets import Method, training_step
from iseat.methods.regularizer import LogitSmoothing
from iseat.methods.training_attack import PGD

EPS, STEP, STEPS = 8 / 255, 2 / 255, 3
LR, MOMENTUM, WD = 0.1, 0.9, 5e-4
BN_EPS, BN_MOMENTUM = 1e-5, 0.1
M = 20  # batch size: the top 10 % are two samples
CONVS, POOL_AFTER = (0, 4, 8, 11), (0, 4)  # module indices of SmallCNN.features


def forward(p, x, record=None):
    """f(x; p) in train mode, written out; `record` collects each BatchNorm input's batch mean and
    unbiased variance (what the running statistics are updated with)."""
    h = x
    for c in CONVS:
        h = F.conv2d(h, p[f"features.{c}.weight"], padding=1)
        mean, var = h.mean((0, 2, 3), keepdim=True), h.var((0, 2, 3), unbiased=False, keepdim=True)
        if record is not None:
            n = h.numel() / h.shape[1]
            record.append((mean.flatten().detach(), (var * n / (n - 1)).flatten().detach()))
        h = (h - mean) / torch.sqrt(var + BN_EPS)
        h = h * p[f"features.{c + 1}.weight"].view(1, -1, 1, 1) + p[f"features.{c + 1}.bias"].view(1, -1, 1, 1)
        h = torch.relu(h)
        if c in POOL_AFTER:
            h = F.max_pool2d(h, 2)
    return h.mean((2, 3)) @ p["classifier.1.weight"].T + p["classifier.1.bias"]


def ce(logits, y):
    """Per-sample cross-entropy: -log softmax(logits)_y."""
    return -(logits - torch.logsumexp(logits, 1, keepdim=True)).gather(1, y[:, None]).squeeze(1)


def pgd(p, x, y, record):
    """l-inf PGD without random start, step STEP, STEPS steps, projected onto the eps-ball and [0, 1]."""
    delta = torch.zeros_like(x)
    for _ in range(STEPS):
        forward(p, x + delta, record)  # the step's forward pass (the first: the clean pass)
        g = grad(lambda d: ce(forward(p, x + d), y).mean())(delta)
        delta = (delta + STEP * g.sign()).clamp(-EPS, EPS)
        delta = (x + delta).clamp(0, 1) - x
    return x + delta


def awp(p, x_adv, y, gamma):
    """Eq. 13-14: v_n = gamma ||theta_n|| g_n / ||g_n|| for tensors of more than one dimension."""
    g = grad(lambda q: ce(forward(q, x_adv), y).mean())(p)
    return {n: gamma * t.norm() * g[n] / g[n].norm() if t.dim() > 1 else torch.zeros_like(t) for n, t in p.items()}


def ranks_descending(av):
    order = sorted(range(len(av)), key=lambda i: -float(av[i]))
    r = torch.empty(len(av), dtype=torch.float64)
    for rank, i in enumerate(order):
        r[i] = rank
    return r


def weights(av, scheme):
    """Eq. 15 (linear), the top-10 % indicator, or uniform."""
    r = ranks_descending(av)
    return {
        "linear": 1 - r / len(av),
        "top10": (r < math.ceil(0.1 * len(av))).double(),
        "uniform": torch.ones(len(av), dtype=torch.float64),
    }[scheme]


def distance(a, b, kind):
    """Squared l2 of the logits, or KL(softmax(clean) || softmax(adv)) as TRADES."""
    if kind == "sq_l2":
        return ((a - b) ** 2).sum(1)
    p_clean = torch.softmax(b, 1)
    return (p_clean * (torch.log(p_clean) - torch.log_softmax(a, 1))).sum(1)


def paper_step(p0, x, y, gamma=0.0, lam=0.0, target="lsiw", dist="sq_l2", scheme="linear", eta=0.0):
    """(parameters, BatchNorm statistics in forward order) after one step, from the equations."""
    record = []
    x_adv = pgd(p0, x, y, record).detach()
    v = awp(p0, x_adv, y, gamma) if gamma > 0 else {n: torch.zeros_like(t) for n, t in p0.items()}
    shifted = lambda p: {n: p[n] + v[n] for n in p}
    forward(shifted(p0), x_adv, record)  # the adversarial pass at theta + v
    if gamma > 0 and lam != 0 and target == "lsi":
        forward(p0, x_adv, record)  # f(x'; theta)
    if gamma > 0 and lam != 0 and target == "trade_awp":
        forward(shifted(p0), x, record)  # f(x; theta + v)

    with torch.no_grad():  # instance weights and indicators are constants
        av = ce(forward(shifted(p0), x_adv), y) - ce(forward(p0, x), y)  # Eq. 10 (Eq. 3 when v = 0)
        av_eq3 = ce(forward(p0, x_adv), y) - ce(forward(p0, x), y)
        w = weights(av, scheme)
        top = weights(av_eq3, "top10")

    def loss(p):
        adv = forward(shifted(p), x_adv)
        total = ce(adv, y).mean()
        if lam:  # Eq. 18 and its Tab. 5/6 variants
            views = {
                "lsiw": (adv, forward(p, x)),
                "lsi": (forward(p, x_adv), forward(p, x)),
                "trade_awp": (adv, forward(shifted(p), x)),
            }[target]
            total = total + lam * (w * distance(*views, dist)).sum() / len(y)
        if eta:  # Eq. 9
            total = total + eta * (((forward(p, x_adv) - forward(p, x)) ** 2).sum(1) * top).mean()
        return total

    g = grad(loss)(p0)
    # Eq. 21 with SGD's first step (momentum buffer = gradient + weight decay at theta + v)
    return {n: p0[n] - LR * (g[n] + WD * (p0[n] + v[n])) for n in p0}, record


def running_statistics(initial_mean, initial_var, batches):
    mean, var = initial_mean.clone(), initial_var.clone()
    for batch_mean, batch_var in batches:
        mean = (1 - BN_MOMENTUM) * mean + BN_MOMENTUM * batch_mean
        var = (1 - BN_MOMENTUM) * var + BN_MOMENTUM * batch_var
    return mean, var


VARIANTS = {"at": {}, "at_awp": dict(gamma=0.01), "eq9": dict(eta=1.5)}
for _target in ("lsiw", "lsi", "trade_awp"):
    for _dist in ("sq_l2", "kl"):
        for _scheme in ("linear", "top10", "uniform"):
            VARIANTS[f"{_target}-{_dist}-{_scheme}"] = dict(
                gamma=0.01, lam=0.5 if _dist == "sq_l2" else 2.0, target=_target, dist=_dist, scheme=_scheme
            )


def library_method(gamma=0.0, lam=0.0, target="lsiw", dist="sq_l2", scheme="linear", eta=0.0):
    return Method(
        attack=PGD(EPS, STEP, STEPS), gamma=gamma, lam=lam, eta=eta, smoothing=LogitSmoothing(target, dist, scheme)
    )


def batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(M, 3, 8, 8, generator=g, dtype=torch.float64), torch.randint(0, 10, (M,), generator=g)


@pytest.mark.parametrize("variant", VARIANTS)
def test_one_step_equals_the_papers_update(variant):
    torch.manual_seed(0)
    model = SmallCNN(num_classes=10, width=4).double()
    with torch.no_grad():  # non-trivial BatchNorm affine parameters and running statistics
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.weight.uniform_(0.5, 1.5), module.bias.uniform_(-0.2, 0.2)
                module.running_mean.uniform_(-0.1, 0.1), module.running_var.uniform_(0.5, 1.5)
    x, y = batch()
    p0 = {n: t.detach().clone() for n, t in model.named_parameters()}
    bn = [model.features[c + 1] for c in CONVS]
    initial = [(m.running_mean.clone(), m.running_var.clone(), int(m.num_batches_tracked)) for m in bn]
    expected, record = paper_step(p0, x, y, **VARIANTS[variant])

    optimizer = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM, weight_decay=WD)
    training_step(model, optimizer, x, y, library_method(**VARIANTS[variant]))

    diff = max((t.detach() - expected[n]).abs().max().item() for n, t in model.named_parameters())
    assert diff <= 1e-9, diff
    baseline, _ = paper_step(p0, x, y)  # plain AT: every variant's own term changes the update
    if variant != "at":
        assert max((expected[n] - baseline[n]).abs().max().item() for n in p0) > 1e-6
    passes = len(record) // len(bn)
    for i, (module, (mean0, var0, tracked0)) in enumerate(zip(bn, initial)):
        mean, var = running_statistics(mean0, var0, record[i :: len(bn)])
        assert (module.running_mean - mean).abs().max().item() <= 1e-9
        assert (module.running_var - var).abs().max().item() <= 1e-9
        assert int(module.num_batches_tracked) == tracked0 + passes
