"""Gradient-masking flags: signs that a robustness number measures a model that hides its gradients from
the attack rather than a robust one (Athalye et al. 2018; Croce & Hein 2020, whose pyautoattack checks
these are).

pyautoattack's own checks (`pyautoattack.checks`) only log warnings; each warning they log is recognised
here by its text (pyautoattack is pinned in requirements.lock, and a test triggers every flag on a model
built for it) and becomes a named flag. One more compares two attacks on the same images: PGD-k may not
be much weaker than AutoAttack on an honest model (AutoAttack's APGD-CE is PGD with a better step-size
schedule), so PGD-k robust accuracy above AutoAttack's by more than `PGD_GAP` says PGD is misled by the
gradients. A flag is never silent: it goes into aa.json (`masking_flags`), the tables (`MARK` with a
footnote) and the results index.
"""

from __future__ import annotations

MARK = "‡"
PGD_GAP = 0.10  # PGD-k robust accuracy above AutoAttack's by more than 10 points (fractions of 1)

# flag -> (a fragment of the pyautoattack 0.2.0 warning that raises it, or None; what it means)
FLAGS = {
    "randomised": ("it seems to be a randomized defense", "identical forward passes disagree: a randomised "
                   "defence (needs AutoAttack's rand version and expectation over transformation)"),
    "non_logit_output": ("the output is a probability distribution", "the model outputs probabilities, not "
                         "logits: the margin losses of the attacks are flattened"),
    "dynamic": ("it seems to be a dynamic defense", "the forward pass runs an attack itself: a dynamic defence"),
    "zero_gradients": ("points with zero gradient", "some points have exactly zero input gradient"),
    "square_beats_white_box": ("Square Attack has decreased the robust accuracy", "the black-box Square attack "
                               "broke points the gradient attacks missed"),
    "pgd_above_autoattack": (None, f"PGD-k robust accuracy exceeds AutoAttack's by more than {100 * PGD_GAP:.0f} "
                             "points: PGD is misled by the gradients"),
}


def flags_from_warnings(warnings) -> list[str]:
    """The flags the pyautoattack warnings among `warnings` raise, in `FLAGS` order."""
    return [name for name, (fragment, _) in FLAGS.items()
            if fragment is not None and any(fragment in w for w in warnings)]


def pgd_gap(pgd_accuracy: float | None, autoattack_accuracy: float | None) -> list[str]:
    """["pgd_above_autoattack"] when PGD-k's robust accuracy exceeds AutoAttack's by more than PGD_GAP."""
    if pgd_accuracy is None or autoattack_accuracy is None:
        return []
    return ["pgd_above_autoattack"] if pgd_accuracy - autoattack_accuracy > PGD_GAP else []


def ordered(flags) -> list[str]:
    """Unique flags in `FLAGS` order."""
    flags = set(flags)
    return [name for name in FLAGS if name in flags]


def footnote() -> str:
    return (f"{MARK} = gradient-masking flag (the number may overstate robustness; README: how to read a flag): "
            + "; ".join(f"{name}: {meaning}" for name, (_, meaning) in FLAGS.items()))
