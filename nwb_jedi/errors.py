"""Errors a user can cause. The CLI prints them as one line and exits with status 2."""

from collections.abc import Sequence


class UserError(ValueError):
    """Bad input: the message names the problem and the fix in one sentence."""


class SourceError(UserError):
    """A SOURCE that cannot be resolved, opened or read as NWB."""


class ModelFileError(UserError):
    """A shared model file that is missing parts, malformed, or unsafe to load."""


class NotFittedError(UserError, AttributeError):
    """A fitted attribute or method used before ``fit``.

    Also an AttributeError, so ``hasattr(JEDI(), "embeddings_")`` is False, as scikit-learn's
    conventions expect of fitted attributes.
    """


class FitQualityWarning(UserWarning):
    """A result worse than a trivial baseline, or a model too small to mean much.

    The message is one line: what is wrong, the likely cause and what to try
    (`nwb_jedi.model.quality`).
    """


class DataWarning(UserWarning):
    """Input that works but is probably not what was intended (the message says why and what
    to change); the CLI prints it as one warning line."""


def counted(n: int, noun: str) -> str:
    """``1 neuron``, ``2 neurons``: a count with its noun in the right number."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def first_few(values: Sequence, limit: int = 10) -> str:
    """The first `limit` values, comma separated, with ``...`` when there are more: the list a
    message shows of what the user could have chosen."""
    shown = ", ".join(str(v) for v in list(values)[:limit])
    return shown + (", ..." if len(values) > limit else "")
