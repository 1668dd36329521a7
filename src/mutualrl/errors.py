"""The one exception type the CLI turns into a clean one-line error."""


class MutualRLError(Exception):
    """Bad input or an unusable file: the message names the bad value and what is allowed."""
