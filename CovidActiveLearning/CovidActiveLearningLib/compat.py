"""Which 3D Slicer the module needs, checked before anything else of the module is imported.

The rest of ``CovidActiveLearningLib`` needs Python 3.11 (``enum.StrEnum``, ``X | Y`` types), which
3D Slicer bundles from 5.10 on; Slicer 5.8 and older bundle Python 3.9. This file is therefore kept
importable by Python 3.6 and newer (f-strings, no newer syntax, no newer standard-library names), so that the
module can say in a sentence why it cannot run instead of failing with a traceback.
"""

import sys

MINIMUM_PYTHON = (3, 11)
MINIMUM_SLICER = "5.10"


def unsupported_reason(python_version=None, slicer_version=None):
    """The sentence explaining why this Slicer cannot run the module, or None when it can.

    Args:
        python_version: ``(major, minor, ...)`` of the running Python (default: ``sys.version_info``).
        slicer_version: the Slicer version text for the message (e.g. ``"5.8.1"``), or None.

    Returns:
        None, or one sentence naming the required and the running versions.
    """
    version = tuple(python_version or sys.version_info)[:3]
    if version[:2] >= MINIMUM_PYTHON:
        return None
    running = f"this Slicer ({slicer_version})" if slicer_version else "this Slicer"
    needed = ".".join(str(part) for part in MINIMUM_PYTHON)
    return (
        f"Covid Active Learning needs 3D Slicer {MINIMUM_SLICER} or newer (Python {needed}+); {running} runs "
        f"Python {'.'.join(str(part) for part in version)}. Install a newer Slicer from "
        "https://download.slicer.org to use the module."
    )
