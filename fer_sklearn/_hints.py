"""The "did you mean" hint that an unknown name gets in an error message."""

import difflib


def did_you_mean(value, valid):
    """``" Did you mean 'x'?"`` for the name of ``valid`` closest to ``value``,
    or ``""`` when none is close."""
    close = difflib.get_close_matches(str(value), [str(v) for v in valid], n=1)
    return f" Did you mean {close[0]!r}?" if close else ""
