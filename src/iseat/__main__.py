import sys

from iseat.cli import main

sys.exit(main())
