"""The one error type the module shows to the clinician as a message box (never a traceback)."""


class UserFacingError(Exception):
    """Something the user can fix (no volume selected, a point outside the region, backend not running, ...).

    Its text is a complete sentence meant for the message box or status line.
    """
