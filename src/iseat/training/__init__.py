"""Running one training: the loop, its configuration, checkpoints, resume state, the AV log, the
non-finite guard, trackers and speed options."""
