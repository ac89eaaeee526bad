"""The one exception type that entry points turn into a one-line message and a non-zero exit."""


class UserError(Exception):
    """Bad input from the user (path, image, checkpoint, flag): the message names the problem and the fix."""
