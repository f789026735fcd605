"""Text from visitors (file names, error messages about their files), safe in Markdown."""

from __future__ import annotations

import re

_MARKDOWN_ACTIVE = re.compile(r"([\\\[\]<>$])")


def md(text: str) -> str:
    """``text`` for a Markdown element, with what could make links, HTML or LaTeX escaped.

    File names and error messages come from the visitor: a file called
    ``[prize](https://example.com).wav`` must show as that name, not as a link.
    """
    return _MARKDOWN_ACTIVE.sub(r"\\\1", text)
