"""``python -m grapheme_multimodal`` runs the ``grapheme-mm`` command line."""

import sys

from .cli import main

sys.exit(main())
