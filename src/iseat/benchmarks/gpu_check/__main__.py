"""`python -m iseat.benchmarks.gpu_check`: the GPU check's own command line."""

from iseat.benchmarks.gpu_check.check import main

raise SystemExit(main())
