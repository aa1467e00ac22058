"""One look for every progress bar: :func:`progress`, a ``tqdm`` shown on a terminal and silent elsewhere.

``disable=None`` makes tqdm disable itself when its stream (stderr by default) is not a TTY, so batch jobs,
CI logs and files redirected from stderr get no bar characters; ``leave=False`` removes a finished bar, so a
terminal keeps the log lines, not a stack of 100 % bars. Use it as ``for x in progress(xs, desc="features",
unit="img")`` or, when the work is counted elsewhere, ``bar = progress(total=n, desc=...); bar.update(k);
bar.close()``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import IO, Any

from tqdm import tqdm

MIN_INTERVAL_S = 0.5


def progress(iterable: Iterable | None = None, *, total: float | None = None, desc: str, unit: str = "it",
             file: IO[str] | None = None, **kwargs: Any) -> tqdm:
    """A ``tqdm`` over ``iterable`` (or counting to ``total``) that shows itself only on a terminal.

    Args:
        iterable: what to iterate (None: update the bar by hand); total: its length when ``len()`` has none.
        desc: what is being done (the bar's label); unit: what one step is ("img", "case", ...).
        file: the stream (default ``sys.stderr``); the bar is shown only when ``file.isatty()``.
        kwargs: further ``tqdm`` options (they override the defaults here).
    """
    options: dict[str, Any] = {"total": total, "desc": desc, "unit": unit, "disable": None, "leave": False,
                               "dynamic_ncols": True, "mininterval": MIN_INTERVAL_S}
    if file is not None:
        options["file"] = file
    return tqdm(iterable, **{**options, **kwargs})
