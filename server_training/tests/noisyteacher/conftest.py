"""The noisy-teacher tests import their reference weights (``reference_weights``) from this folder."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
