"""Section 3 analyses of the paper: margin along the adversarial direction (Eq. 7), loss landscape
(Eq. 8), adversarial vulnerability (Eq. 3) of a trained model on a data set split, and the figures and
tables built from them and from the AV logs."""
