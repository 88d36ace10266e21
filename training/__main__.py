"""`python -m training --help`: import course bundles, push lessons, progress, certificates."""

import sys

from training.cli import main

sys.exit(main())
