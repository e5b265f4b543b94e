"""One step of every Tab. 2 baseline against its paper's update written out here in float64:
its own attack, its own loss, its weight perturbation, then SGD on theta + v (Eq. 21). The BatchNorm
running statistics follow the authors' code: the model's mode in each pass and which train-mode
passes update them, in their order (`Paper.count`)."""

import copy

import pytest
import torch
from torch.func import functional_call

from iseat.methods.models import SmallCNN
from iseat.methods.presets import MethodSchedule, training_step
from iseat.methods.training_attack import PGD

EPS, STEP, STEPS = 8 / 255, 2 / 255, 3
LR, MOMENTUM, WD = 0.1, 0.9, 5e-4
EPOCH, EPOCHS = 150, 200  # late in training: AWP warmed up, GAIRAT reweighting, FAT tau = 2


@pytest.fixture(autouse=True)
def float64():
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(torch.float32)


def setup(seed=0, m=8):
    torch.manual_seed(seed)
    model = SmallCNN(width=4)
    x = torch.rand(m, 3, 32, 32)
    y = torch.randint(0, 10, (m,))
    with torch.no_grad():  # a few BatchNorm statistics updates so eval and train mode differ
        model.train()(torch.rand(m, 3, 32, 32))
    return model, x, y


# ----------------------------------------------------------------------------- the papers, written out


class Paper:
    """The model as pure functions of theta: train mode with private BatchNorm buffers, eval mode;
    `stats` holds the running statistics that the original's train-mode passes update (`count`)."""

    def __init__(self, model):
        self.model = copy.deepcopy(model)
        self.theta = {n: p.detach().clone().requires_grad_(True) for n, p in self.model.named_parameters()}
        self.eval_model = copy.deepcopy(model).eval()
        self.stats = copy.deepcopy(model).train()

    def count(self, x, v=None):
        """One train-mode pass of the original at theta + v: it updates the running statistics."""
        with torch.no_grad():
            functional_call(self.stats, {n: t.detach() + (v or {}).get(n, 0) for n, t in self.theta.items()}, (x,))

    def train_logits(self, params, x):
        buffers = {n: b.clone() for n, b in self.model.named_buffers()}
        return functional_call(self.model.train(), {**params, **buffers}, (x,))

    def input_grad(self, loss_of_logits, x_adv):
        x_adv = x_adv.detach().requires_grad_(True)
        logits = self.eval_model(x_adv)
        (g,) = torch.autograd.grad(loss_of_logits(logits), x_adv)
        return logits.detach(), g

    def sgd(self, loss_of_params, v=None):
        """theta_new = (theta + v) - lr (grad + wd (theta + v)) - v: first SGD step taken at theta + v."""
        v = v or {}
        at = {n: t + v.get(n, 0) for n, t in self.theta.items()}
        grads = torch.autograd.grad(loss_of_params(at), list(self.theta.values()))
        return {n: (at[n] - LR * (g + WD * at[n]) - v.get(n, 0)).detach() for (n, g) in zip(self.theta, grads)}


def ce(logits, y):
    return -torch.log_softmax(logits, 1).gather(1, y[:, None]).squeeze(1)


def kl(clean_logits, adv_logits):
    """KL(p || q) = sum_c p_c (log p_c - log q_c)."""
    log_p, log_q = torch.log_softmax(clean_logits, 1), torch.log_softmax(adv_logits, 1)
    return (log_p.exp() * (log_p - log_q)).sum(1)


def box(x_adv, x):
    return torch.clamp(torch.clamp(x_adv, x - EPS, x + EPS), 0, 1)


def trades_attack(paper, x, y, seed):
    """The KL attack, and kappa counted on its iterates (GAIR_trades_loss)."""
    torch.manual_seed(seed)
    x_adv, kappa = x + 0.001 * torch.randn(x.shape), torch.zeros(len(y))
    clean = paper.eval_model(x).detach()
    for _ in range(STEPS):
        logits, g = paper.input_grad(lambda logits: kl(clean, logits).sum(), x_adv)
        kappa += (logits.argmax(1) == y).double()
        x_adv = box(x_adv + STEP * torch.sign(g), x)
    return x_adv, kappa


def cw_attack(paper, x, y):
    """GAIR_RST's pgd_generate(loss_fn="cw", category="trades"): cwloss with confidence 50, summed."""
    onehot = torch.nn.functional.one_hot(y, 10).double()

    def cwloss(logits):
        real = (onehot * logits).sum(1)
        other = ((1 - onehot) * logits - onehot * 10000).max(1).values
        return -torch.clamp(real - other + 50, min=0).sum()

    x_adv = x + 0.001 * torch.randn(x.shape)
    for _ in range(STEPS):
        _, g = paper.input_grad(cwloss, x_adv)
        x_adv = box(x_adv + STEP * torch.sign(g), x)
    return x_adv


def ce_attack(paper, x, y, start):
    x_adv, kappa = start, torch.zeros(len(y))
    for _ in range(STEPS):
        logits, g = paper.input_grad(lambda logits: ce(logits, y).mean(), x_adv)
        kappa += (logits.argmax(1) == y).double()
        x_adv = box(x_adv + STEP * torch.sign(g), x)
    return x_adv, kappa


def rwp_attack(paper, x, y, seed):
    """AT_AWP_RWP's attack_pgd as its training loop runs it, in train mode: every step's pass and the
    restart's scoring pass use the batch's statistics and update the running statistics."""
    x_adv = uniform(x, seed)
    for _ in range(STEPS):
        x_adv = x_adv.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(ce(paper.stats(x_adv), y).mean(), x_adv)
        x_adv = box(x_adv + STEP * torch.sign(g), x)
    paper.count(x_adv)  # all_loss = F.cross_entropy(model(X + delta)): the restart's score
    return x_adv.detach()


def uniform(x, seed):
    torch.manual_seed(seed)
    return torch.clamp(x + torch.empty(x.shape).uniform_(-EPS, EPS), 0, 1)


def trades_loss(paper, params, x, x_adv, y, beta=6.0):
    clean, adv = paper.train_logits(params, x), paper.train_logits(params, x_adv)
    return ce(clean, y).mean() + beta * kl(clean, adv).sum() / len(y), adv


def mart_per_sample(paper, params, x, x_adv, y, beta=6.0):
    clean, adv = paper.train_logits(params, x), paper.train_logits(params, x_adv)
    q = torch.softmax(adv, 1)
    p_y = torch.softmax(clean, 1).gather(1, y[:, None]).squeeze(1)
    q_other = q.masked_fill(torch.nn.functional.one_hot(y, 10).bool(), -1).max(1).values  # max_{k != y} q_k
    bce = ce(adv, y) - torch.log(1.0001 - q_other + 1e-12)
    p = torch.softmax(clean, 1)
    kl_mart = (p * (torch.log(p + 1e-12) - torch.log(q + 1e-12))).sum(1)
    return bce + beta * kl_mart * (1.0000001 - p_y), adv


def awp(paper, loss_of_params, gamma):
    grads = torch.autograd.grad(loss_of_params(paper.theta), list(paper.theta.values()))
    return {n: gamma * t.detach().norm() * g / g.norm() for (n, t), g in zip(paper.theta.items(), grads) if t.dim() > 1}


def rwp(paper, per_sample_of_params, gamma, threshold, steps=10):
    weights = {n: t for n, t in paper.theta.items() if t.dim() > 1}
    w_norm = torch.cat([t.detach().flatten() for t in weights.values()]).norm()
    total, v = {n: torch.zeros_like(t) for n, t in weights.items()}, {}
    for _ in range(steps):
        at = {n: t + v.get(n, 0) for n, t in paper.theta.items()}
        losses = per_sample_of_params(at)
        loss = (losses * (losses < threshold).double()).sum() / len(losses)
        grads = torch.autograd.grad(loss, list(weights.values()))
        total = {n: total[n] + g for n, g in zip(weights, grads)}
        d_norm = torch.cat([d.flatten() for d in total.values()]).norm()
        v = {n: gamma * w_norm * d / (d_norm + 1e-20) for n, d in total.items()}
    return v


def fat_attack(paper, x, y, seed, tau, omega):
    """earlystop.py's sub-batch loop, literally: stopped samples leave the batch."""
    x_iter = uniform(x, seed)
    idx, control = list(range(len(y))), [tau] * len(y)
    out = x_iter.clone()
    for _ in range(STEPS):
        logits, g = paper.input_grad(lambda logits, idx=idx: ce(logits, y[idx]).mean(), x_iter)
        keep = []
        for j, i in enumerate(idx):
            if logits[j].argmax() != y[i] and control[i] == 0:
                out[i] = x_iter[j]
            else:
                control[i] -= int(logits[j].argmax() != y[i])
                keep.append(j)
        if not keep:
            return out
        idx = [idx[j] for j in keep]
        x_iter = x_iter[keep] + STEP * torch.sign(g[keep]) + omega * torch.randn(x_iter[keep].shape)
        x_iter = box(x_iter, x[idx])
    out[idx] = x_iter
    return out


def gair_weights(kappa, lam):
    w = (torch.tanh(lam + 5 * (1 - 2 * kappa / STEPS_EVEN)) + 1) / 2
    return w * len(w) / w.sum()


STEPS_EVEN = 2 * (STEPS // 2)  # GAIR.py's 2 * int(K / 2)


# ----------------------------------------------------------------------------- library vs paper


def library_step(model, x, y, name, seed, **options):
    model = copy.deepcopy(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM, weight_decay=WD)
    method = MethodSchedule.from_config({"name": name, **options}).at_stage(
        0, PGD(EPS, STEP, STEPS), epoch=EPOCH, epochs=EPOCHS
    )
    torch.manual_seed(seed)
    result = training_step(model, optimizer, x, y, method)
    return model, result


def paper_av(paper, x, x_adv, y, v=None):
    at = {n: t + v.get(n, 0) for n, t in paper.theta.items()} if v else paper.theta
    return (ce(paper.train_logits(at, x_adv), y) - ce(paper.train_logits(paper.theta, x), y)).detach()


def at_update(model, x, y):
    """Plain AT's step (PGD from x, CE at theta), for the check that each method is another one."""
    paper = Paper(model)
    x_adv, _ = ce_attack(paper, x, y, x)
    return paper.sgd(lambda params: ce(paper.train_logits(params, x_adv.detach()), y).mean())


def assert_same(lib_model, paper, expected, result, av, x, y):
    """Parameters, AV and every BatchNorm buffer as the original's; the parameters not AT's."""
    lib = dict(lib_model.named_parameters())
    diff = max((lib[n].detach() - expected[n]).abs().max().item() for n in expected)
    assert diff <= 1e-9, diff
    assert (result.av - av).abs().max().item() <= 1e-9
    buffers = dict(lib_model.named_buffers())
    for n, b in paper.stats.named_buffers():
        assert (buffers[n].double() - b.double()).abs().max().item() <= 1e-9, n
    at = at_update(paper.model, x, y)
    assert max((expected[n] - at[n]).abs().max().item() for n in expected) > 1e-6


# The train-mode passes of each original's loss, in order (trades.py: x, x', x; TRADES-AWP's and
# TRADES-RWP's train loops: x', x, x; RST_AWP_RWP's trades_loss: x', x); the cheaper variant of TRADES.
TRADES_CASES = {
    "trades": ("trades", {}, "x a x"),
    "trades_awp": ("trades_awp", {}, "a x x"),
    "trades_rwp": ("trades_rwp", {}, "a x x"),
    "rst_rwp": ("trades_rwp", {"statistics_passes": ["adv", "clean"]}, "a x"),
    "trades_one_update": ("trades", {"statistics_passes": ["clean", "adv"]}, "x a"),
}


@pytest.mark.parametrize("case", TRADES_CASES)
def test_trades_family(case):
    name, options, passes = TRADES_CASES[case]
    model, x, y = setup()
    paper = Paper(model)
    x_adv = trades_attack(paper, x, y, seed=1)[0].detach()
    loss_of = lambda params: trades_loss(paper, params, x, x_adv, y)[0]
    v = None
    if name == "trades_awp":
        v = awp(paper, loss_of, gamma=0.005)
    if name == "trades_rwp":
        per_sample = lambda params: (
            ce(paper.train_logits(params, x), y)
            + 6.0 * kl(paper.train_logits(params, x), paper.train_logits(params, x_adv))
        )
        threshold = per_sample(paper.theta).detach().median().item() + 1e-6  # half the batch drives v
        options = {**options, "threshold": threshold}
        v = rwp(paper, per_sample, gamma=0.005, threshold=threshold)  # the TRADES scripts' gamma
    expected = paper.sgd(loss_of, v)
    for p in passes.split():
        paper.count({"x": x, "a": x_adv}[p], v)
    lib, result = library_step(model, x, y, name, seed=1, **options)
    assert_same(lib, paper, expected, result, paper_av(paper, x, x_adv, y, v), x, y)


@pytest.mark.parametrize("name", ["mart", "mart_awp"])
def test_mart_family(name):
    model, x, y = setup()
    paper = Paper(model)
    torch.manual_seed(1)
    x_adv, _ = ce_attack(paper, x, y, x + 0.001 * torch.randn(x.shape))
    x_adv = x_adv.detach()
    loss_of = lambda params: mart_per_sample(paper, params, x, x_adv, y)[0].mean()
    v = awp(paper, loss_of, gamma=0.005) if name == "mart_awp" else None
    expected = paper.sgd(loss_of, v)
    paper.count(x, v), paper.count(x_adv, v)  # mart.py: logits = model(x), then model(x_adv)
    lib, result = library_step(model, x, y, name, seed=1)
    assert_same(lib, paper, expected, result, paper_av(paper, x, x_adv, y, v), x, y)


@pytest.mark.parametrize("attack_mode", ["train", "eval"])
def test_rwp(attack_mode):
    """The authors attack in train mode (default); `attack_mode: eval` is the named variant."""
    model, x, y = setup()
    paper = Paper(model)
    if attack_mode == "train":
        x_adv = rwp_attack(paper, x, y, seed=2)
    else:
        x_adv = ce_attack(paper, x, y, uniform(x, seed=2))[0].detach()
    per_sample = lambda params: ce(paper.train_logits(params, x_adv), y)
    threshold = per_sample(paper.theta).detach().median().item() + 1e-6
    v = rwp(paper, per_sample, gamma=0.01, threshold=threshold)
    expected = paper.sgd(lambda params: per_sample(params).mean(), v)
    paper.count(x_adv, v)  # robust_output = model(X_adv) at theta + v
    options = {} if attack_mode == "train" else {"attack_mode": "eval"}
    lib, result = library_step(model, x, y, "rwp", seed=2, threshold=threshold, **options)
    assert_same(lib, paper, expected, result, paper_av(paper, x, x_adv, y, v), x, y)


def test_gairat():
    model, x, y = setup(m=12)
    with torch.no_grad():  # half the batch starts correctly classified, so the geometry values differ
        y[:6] = model.eval()(x[:6]).argmax(1)
    model.train()
    paper = Paper(model)
    x_adv, kappa = ce_attack(paper, x, y, uniform(x, seed=3))
    x_adv = x_adv.detach()
    weights = gair_weights(kappa, lam=-1.0)
    assert weights.std() > 0  # the batch has samples of different geometry values
    expected = paper.sgd(lambda params: (ce(paper.train_logits(params, x_adv), y) * weights).mean())
    paper.count(x_adv)
    lib, result = library_step(model, x, y, "gairat", seed=3)
    assert_same(lib, paper, expected, result, paper_av(paper, x, x_adv, y), x, y)


@pytest.mark.parametrize("lam", [3.0, -1.5])
def test_gair_trades(lam):
    """GAIR-RST's loss: CE(x) + beta * mean_i [w_i KL(x, x'_i) + (1 - w_i) KL(x, x''_i)],
    w_i = (tanh(Lambda + K/2 - kappa_i) + 1) / 2, x' the KL attack, x'' the CW attack drawn after it."""
    model, x, y = setup(m=12)
    with torch.no_grad():  # half the batch starts correctly classified, so the geometry values differ
        y[:6] = model.eval()(x[:6]).argmax(1)
    model.train()
    paper = Paper(model)
    x_adv, kappa = trades_attack(paper, x, y, seed=5)
    x_adv, x_cw = x_adv.detach(), cw_attack(paper, x, y).detach()
    w = (torch.tanh(lam + (STEPS / 2 - kappa)) + 1) / 2
    assert w.std() > 0

    def loss_of(params):
        clean, adv, cw = (paper.train_logits(params, inputs) for inputs in (x, x_adv, x_cw))
        return ce(clean, y).mean() + 6.0 * (kl(clean, adv) * w + kl(clean, cw) * (1 - w)).sum() / len(y)

    expected = paper.sgd(loss_of)
    paper.count(x_adv), paper.count(x_cw), paper.count(x)  # GAIR_trades_loss: x', x'', x
    lib, result = library_step(model, x, y, "gair_trades", seed=5, **({} if lam == 3.0 else {"gair_lambda": lam}))
    assert_same(lib, paper, expected, result, paper_av(paper, x, x_adv, y), x, y)


def test_gair_trades_is_plain_trades_in_its_burn_in():
    """Lambda = 100 before 1-indexed epoch epochs / 2, and the original takes plain TRADES for Lambda > 10."""
    at = lambda epoch, **o: MethodSchedule.from_config({"name": "gair_trades", **o}).at_stage(
        0, PGD(EPS, STEP, STEPS), epoch=epoch, epochs=EPOCHS
    )
    for step in (at(98), at(150, gair_lambda=10.5)):
        assert step.instance_weights is None and step.counter_attack is None
    assert at(99).instance_weights is not None and at(99).counter_attack is not None
    assert at(150, gair_lambda=10.0).counter_attack is not None


def test_gairat_is_plain_at_before_its_begin_epoch():
    model, x, y = setup()
    method = MethodSchedule.from_config({"name": "gairat"}).at_stage(0, PGD(EPS, STEP, STEPS), epoch=10, epochs=EPOCHS)
    assert method.instance_weights is None


@pytest.mark.parametrize("omega", [0.0, 0.001])
def test_fat(omega):
    model, x, y = setup(m=12, seed=1)
    paper = Paper(model)
    x_adv = fat_attack(paper, x, y, seed=4, tau=2, omega=omega).detach()
    expected = paper.sgd(lambda params: ce(paper.train_logits(params, x_adv), y).mean())
    paper.count(x_adv)
    lib, result = library_step(model, x, y, "fat", seed=4, omega=omega)
    assert_same(lib, paper, expected, result, paper_av(paper, x, x_adv, y), x, y)


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["method.name=trades", "method.lam=0.1"], "method.lam: not an option of trades"),
        (["method.name=iseat", "method.beta=6"], "method.beta: an option of the Tab. 2 baselines, not of iseat"),
        (["method.name=fat", "method.tau=[0, -1]"], "method.tau[1]"),
        (["method.name=rwp", "method.statistics_passes=[clean]"], "method.statistics_passes: rwp has no 'clean' pass"),
        (["method.name=mart", "method.attack_mode=test"], "method.attack_mode"),
    ],
)
def test_options_are_checked_before_any_work(overrides, message):
    from iseat.training.config import ConfigError, load_config

    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_config(None, overrides)


def test_defaults_are_the_originals():
    def schedule(name):
        options = dict(MethodSchedule.from_config({"name": name}).options)
        return {k: v for k, v in options.items() if k not in ("attack_mode", "statistics_passes")}

    modes = lambda name: [
        dict(MethodSchedule.from_config({"name": name}).options)[k] for k in ("attack_mode", "statistics_passes")
    ]
    assert schedule("trades") == {"beta": 6.0} and schedule("mart") == {"beta": 6.0}
    assert schedule("trades_awp") == {"beta": 6.0, "gamma": 0.005, "awp_warmup": 10}
    assert schedule("rwp") == {"gamma": 0.01, "awp_warmup": 0, "threshold": 1.7, "rwp_steps": 10}
    assert schedule("trades_rwp") == {"beta": 6.0, "gamma": 0.005, "awp_warmup": 10, "threshold": 1.7, "rwp_steps": 10}
    assert schedule("gairat") == {"gair_lambda": -1.0, "gair_begin": 0.5}
    assert schedule("gair_trades") == {"beta": 6.0, "gair_lambda": 3.0, "gair_begin": 0.5}
    assert schedule("fat") == {"tau": (0, 1, 2), "tau_milestones": (50 / 120, 90 / 120), "omega": 0.001}
    assert modes("trades") == ["eval", ("clean", "adv", "clean")] and modes("rwp") == ["train", ("adv",)]
    assert modes("trades_awp") == modes("trades_rwp") == ["eval", ("adv", "clean", "clean")]
    assert modes("mart") == modes("mart_awp") == ["eval", ("clean", "adv")]
    for name in ("trades_awp", "trades_rwp"):
        awp = MethodSchedule.from_config({"name": name})
        assert awp.at_stage(0, PGD(), epoch=8, epochs=200).gamma == 0  # AWP from (1-indexed) epoch 10 on
        assert awp.at_stage(0, PGD(), epoch=9, epochs=200).gamma == 0.005
