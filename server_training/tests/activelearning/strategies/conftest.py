import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))  # tests import strategy_testing (pytest runs with importlib)
