"""Progress bars (tqdm) that stay readable when the output is not a terminal.

A bar opened while another is open is drawn below it, and tqdm moves the cursor up and down
with ANSI escapes (``ESC[A``) to redraw both. On a terminal that is what one wants; in piped or
logged output those escapes are garbage (Online SFBD's refresh bars inside its training bar
left ``[A`` in every log). :func:`bar` therefore shows a nested bar only when its stream is a
terminal; the outer bar is kept either way.
"""

from __future__ import annotations

import sys
from typing import Any

from tqdm.auto import tqdm


def _is_terminal(stream: Any) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False


def bar(
    *, total: int, desc: str, progress: bool = True, leave: bool = False, **kwargs: Any
) -> tqdm:
    """A tqdm bar (``dynamic_ncols``) writing to ``kwargs['file']`` (default stderr); disabled
    when ``progress`` is false, and when another bar is open and the stream is no terminal."""
    stream = kwargs.get("file") or sys.stderr
    nested = any(not getattr(b, "disable", False) for b in list(tqdm._instances))
    show = progress and (not nested or _is_terminal(stream))
    return tqdm(total=total, desc=desc, disable=not show, leave=leave, dynamic_ncols=True, **kwargs)
