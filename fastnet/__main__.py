"""``python -m fastnet train | bench | info``."""
import sys

from .cli import main

sys.exit(main())
