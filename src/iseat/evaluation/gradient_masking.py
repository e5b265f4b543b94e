"""Gradient-masking flags: signs that a robustness number measures a model that hides its gradients from
the attack rather than a robust one (Athalye et al. 2018; Croce & Hein 2020, whose pyautoattack checks
these are).

pyautoattack's own checks (`pyautoattack.checks`) only log warnings; each warning they log is recognised
here by its text (pyautoattack is pinned in requirements.lock, and a test triggers every flag on a model
built for it) and becomes a named flag. One more compares two attacks on the same images: PGD-k may not
be much weaker than AutoAttack on an honest model (AutoAttack's APGD-CE is PGD with a better step-size
schedule), so PGD-k robust accuracy above AutoAttack's by more than `PGD_GAP` says PGD is misled by the
gradients; and AutoAttack, the stronger attack, may not leave more points robust than PGD-k (by more than
`AUTOATTACK_GAP`): if it does, AutoAttack was misconfigured or misled and its number is the one in doubt.
Two more read an eps sweep (`evaluation.sweep`, PGD-k at growing budgets on the same images):
robust accuracy must not grow with eps (beyond `SWEEP_TOLERANCE`, PGD's own noise from one budget to the
next), and at a very large eps (`LARGE_EPS` or more) an unbounded attack must reach ~0 % (at most
`LARGE_EPS_ACCURACY`). A flag is never silent: it goes into aa.json (`masking_flags`), the tables (`MARK` with a
footnote) and the results index.
"""

from __future__ import annotations

MARK = "‡"
PGD_GAP = 0.10  # PGD-k robust accuracy above AutoAttack's by more than 10 points (fractions of 1)
AUTOATTACK_GAP = 0.03  # AutoAttack's above PGD-k's by more than 3 points: a few points of attack noise allowed
# On the same images a larger ball contains the smaller one, so only the attack's own failures (a point PGD-k
# breaks at eps but misses at a larger eps) can raise the curve: 2 points allows a few such points
SWEEP_TOLERANCE = 0.02
LARGE_EPS = 64 / 255  # a budget at which l-inf perturbations can erase any image class
LARGE_EPS_ACCURACY = 0.05  # at most 5 % robust there

# flag -> (a fragment of the pyautoattack 0.2.0 warning that raises it, or None; what it means)
FLAGS = {
    "randomised": (
        "it seems to be a randomized defense",
        "identical forward passes disagree: a randomised "
        "defence (needs AutoAttack's rand version and expectation over transformation)",
    ),
    "non_logit_output": (
        "the output is a probability distribution",
        "the model outputs probabilities, not logits: the margin losses of the attacks are flattened",
    ),
    "dynamic": ("it seems to be a dynamic defense", "the forward pass runs an attack itself: a dynamic defence"),
    "zero_gradients": ("points with zero gradient", "some points have exactly zero input gradient"),
    "square_beats_white_box": (
        "Square Attack has decreased the robust accuracy",
        "the black-box Square attack broke points the gradient attacks missed",
    ),
    "pgd_above_autoattack": (
        None,
        f"PGD-k robust accuracy exceeds AutoAttack's by more than {100 * PGD_GAP:.0f} "
        "points: PGD is misled by the gradients",
    ),
    "pgd_below_autoattack": (
        None,
        f"PGD-k robust accuracy is below AutoAttack's by more than "
        f"{100 * AUTOATTACK_GAP:.0f} points: the stronger attack found less, so AutoAttack's number "
        "is in doubt",
    ),
    "sweep_not_monotone": (
        None,
        f"robust accuracy rises with eps over the eps sweep by more than "
        f"{100 * SWEEP_TOLERANCE:.0f} points: the attack is misled at the smaller budget",
    ),
    "large_eps_robust": (
        None,
        f"robust accuracy above {100 * LARGE_EPS_ACCURACY:.0f} % at eps >= "
        f"{255 * LARGE_EPS:.0f}/255, where an attack that reaches its budget breaks every point",
    ),
}


def flags_from_warnings(warnings) -> list[str]:
    """The flags the pyautoattack warnings among `warnings` raise, in `FLAGS` order."""
    return [
        name for name, (fragment, _) in FLAGS.items() if fragment is not None and any(fragment in w for w in warnings)
    ]


def pgd_gap(pgd_accuracy: float | None, autoattack_accuracy: float | None) -> list[str]:
    """["pgd_above_autoattack"] when PGD-k's robust accuracy exceeds AutoAttack's by more than PGD_GAP;
    ["pgd_below_autoattack"] when it falls short of AutoAttack's by more than AUTOATTACK_GAP."""
    if pgd_accuracy is None or autoattack_accuracy is None:
        return []
    gap = pgd_accuracy - autoattack_accuracy
    return ["pgd_above_autoattack"] if gap > PGD_GAP else ["pgd_below_autoattack"] if -gap > AUTOATTACK_GAP else []


def sweep_flags(curve) -> list[str]:
    """Flags of an eps sweep `curve` [(eps, robust accuracy)] (any order): "sweep_not_monotone" when the
    accuracy at some eps exceeds the lowest accuracy at a smaller eps by more than SWEEP_TOLERANCE;
    "large_eps_robust" when it exceeds LARGE_EPS_ACCURACY at an eps of LARGE_EPS or more."""
    flags, lowest = [], None
    for eps, accuracy in sorted(curve):
        if lowest is not None and accuracy - lowest > SWEEP_TOLERANCE:
            flags.append("sweep_not_monotone")
        if eps >= LARGE_EPS - 1e-12 and accuracy > LARGE_EPS_ACCURACY:
            flags.append("large_eps_robust")
        lowest = accuracy if lowest is None else min(lowest, accuracy)
    return ordered(flags)


def ordered(flags) -> list[str]:
    """Unique flags in `FLAGS` order."""
    flags = set(flags)
    return [name for name in FLAGS if name in flags]


def footnote() -> str:
    return (
        f"{MARK} = gradient-masking flag (the number may overstate robustness; README: how to read a flag): "
        + "; ".join(f"{name}: {meaning}" for name, (_, meaning) in FLAGS.items())
    )
