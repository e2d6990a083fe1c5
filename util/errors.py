"""Errors caused by user input. Entry points print their message as one line and exit, without a traceback."""


class UserError(Exception):
    """A mistake in flags, data or files that the user can fix; the message says how."""
