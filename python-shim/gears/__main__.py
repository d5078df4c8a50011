"""python3 -m gears recipe.py [args...]: a local dry run of a recipe (gears.local)."""

import sys

from .local import main

sys.exit(main())
