"""HTML from Jinja2 templates with autoescape: every ``{{ value }}`` is escaped once, by the
engine, so no page can forget to (or do it twice). Each domain keeps its templates in its own
``templates/`` directory and asks for an environment here.

Templates that need markup from Python (an SVG graph, an icon) receive it as ``Markup``, the
one explicit way to say "already safe".
"""

from __future__ import annotations

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup

__all__ = ["Markup", "environment"]


def environment(package: str) -> Environment:
    """The templates of ``package`` (its ``templates/`` directory), autoescaped; a name a
    template uses but the caller did not pass is an error, not an empty string."""
    env = Environment(
        loader=PackageLoader(package, "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        extensions=["jinja2.ext.do"],
    )
    env.globals["markup"] = Markup
    return env
