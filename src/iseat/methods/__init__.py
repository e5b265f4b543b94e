"""The maths and the training methods: attacks, regularisers, weight perturbation, instance weights,
models, ISEAT's presets, the baselines, the method protocol and its registry."""
