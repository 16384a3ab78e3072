"""A griffe extension for the docs build: Sphinx-style roles in docstrings become links.

fixseq's docstrings are Google style with Markdown cross-references
(``[`SeqStoreError`][fixseq.SeqStoreError]``), which mkdocstrings resolves and ``mkdocs build
--strict`` checks. Docstrings written with Sphinx roles instead (``:class:`~fixseq.SeqStoreError```,
``:meth:`close```) would show the role text literally; this extension rewrites each role into an
*optional* autorefs link: a link where the target is on some page, plain code where it is not
(a private helper), never a build failure. It also turns a reStructuredText ``::`` before a
literal block into a plain ``:`` (the indented block stays a code block in Markdown).

mkdocs.yml loads it with ``extensions: [scripts/griffe_roles.py]`` in the python handler.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import griffe

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

_ROLE = re.compile(r":(?:py:)?(?:class|meth|func|mod|attr|exc|data|obj|const):`(?P<target>[^`]+)`")
_LITERAL_MARK = re.compile(r"(?m)(?<=\S)::$")
_ALONE_MARK = re.compile(r"(?m)^(?P<indent>[ \t]*)::$")


def convert(text: str, resolve: Callable[[str], str | None]) -> str:
    """Rewrite the Sphinx roles and ``::`` markers of one docstring.

    Args:
        text: The docstring.
        resolve: Maps a name as written (``SeqStoreError``, ``fixseq.SeqStoreError``,
            ``SeqCounters.close``) to the full path it means in the docstring's scope, or None.

    Returns:
        The docstring with each role replaced by an optional autorefs link (or plain code when
        the name cannot be resolved) and each ``::`` marker by ``:``.
    """

    def link(match: re.Match[str]) -> str:
        target = match["target"].strip()
        # :class:`text <target>` names its own title.
        titled = re.fullmatch(r"(?P<title>.+?)\s*<(?P<target>[^>]+)>", target)
        if titled:
            title, target = titled["title"], titled["target"]
        else:
            title = target.lstrip("~.").rsplit(".", 1)[-1] if target.startswith("~") else target
        path = resolve(target.lstrip("~").lstrip("."))
        if path is None:
            return f"`{title}`"
        return f'<autoref identifier="{path}" optional>`{title}`</autoref>'

    text = _ROLE.sub(link, text)
    text = _ALONE_MARK.sub("", text)
    return _LITERAL_MARK.sub(":", text)


def _walk(obj: griffe.Object) -> Iterator[griffe.Object]:
    yield obj
    for member in obj.members.values():
        if not member.is_alias and isinstance(member, griffe.Object):
            yield from _walk(member)


def _resolver(obj: griffe.Object) -> Callable[[str], str | None]:
    def resolve(name: str) -> str | None:
        head, _, rest = name.partition(".")
        if head == obj.module.package.name:
            return name
        try:
            path = obj.resolve(head)  # this object's scope, then its parents'
        except griffe.NameResolutionError:
            return None
        return f"{path}.{rest}" if rest else path

    return resolve


class SphinxRoles(griffe.Extension):
    """Rewrite Sphinx roles in every docstring of a package once it is loaded."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        """Convert the docstrings of ``pkg`` and everything in it."""
        for obj in _walk(pkg):
            if obj.docstring is not None:
                obj.docstring.value = convert(obj.docstring.value, _resolver(obj))
