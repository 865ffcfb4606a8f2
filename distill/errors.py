"""Errors meant for the user: the CLI prints their message as one line and exits 2, no traceback."""


class UserError(Exception):
    """Bad input, a bad recipe, a missing model: something the user can fix."""
