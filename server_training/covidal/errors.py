"""The one exception type that reaches the user as a one-line message."""


class CovidalError(Exception):
    """A problem with the user's input or request.

    The CLI prints ``covidal: error: <message>`` and exits with status 2; the
    message must say what is wrong and, where possible, how to fix it.
    """
