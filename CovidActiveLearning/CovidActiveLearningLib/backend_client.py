"""The backend's HTTP client (``covidal.client``), found without importing the ``covidal`` package.

``covidal.client`` uses only the standard library, so it runs in Slicer's Python. It is found,
in order: as ``covidal_client.py`` next to this file (the built extension copies it there, see
``CovidActiveLearning/CMakeLists.txt``), or as ``server_training/covidal/client.py`` of the
repository checkout this module lives in (a scripted install from the source tree). It is loaded
from its file rather than as ``covidal.client`` because importing the ``covidal`` package could
pull in torch, which must never load inside Slicer.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

_MODULE_NAME = "CovidActiveLearningLib.covidal_client"
_HERE = Path(__file__).resolve().parent
CANDIDATES = (_HERE / "covidal_client.py", _HERE.parents[1] / "server_training" / "covidal" / "client.py")


def load_client_module() -> ModuleType:
    """The client module (``CovidalClient``, ``ClientError``, ``BackendUnreachable``), loaded once.

    Raises:
        ImportError: neither copy exists (a broken install); the message names both places.
    """
    if _MODULE_NAME in sys.modules:
        return sys.modules[_MODULE_NAME]
    for path in CANDIDATES:
        if path.is_file():
            spec = importlib.util.spec_from_file_location(_MODULE_NAME, path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[_MODULE_NAME] = module
            spec.loader.exec_module(module)
            return module
    raise ImportError("the covidal HTTP client is missing: expected " + " or ".join(str(p) for p in CANDIDATES))


_client = load_client_module()
CovidalClient = _client.CovidalClient
ClientError = _client.ClientError
BackendUnreachable = _client.BackendUnreachable
