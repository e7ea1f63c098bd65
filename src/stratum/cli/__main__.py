"""``python -m stratum.cli``."""

import sys

from stratum.cli import main

sys.exit(main())
