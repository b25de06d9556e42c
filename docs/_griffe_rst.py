"""A Griffe extension: snn's docstrings are written for ``help()`` and doctest (reStructuredText
roles, ``.. math::`` blocks, ``::`` literal blocks, bare ``>>>`` examples); this turns them into
the Markdown that mkdocstrings renders, at build time, without touching the source.

A role that names an snn object becomes a cross-reference, so a reference to an object that does
not exist breaks ``mkdocs build --strict``; a role naming another library's object (``torch``)
or a private one stays code.
"""

from __future__ import annotations

import importlib
import inspect
import re

import griffe

_ROLE = re.compile(r":(?:py:)?(class|func|mod|meth|attr|data|obj|exc):`(~?)([^`]+)`")
_MATH_ROLE = re.compile(r":math:`([^`]+)`")
_LITERAL = re.compile(r"``(.+?)``")
_LINK = re.compile(r"`([^`<]+?)\s*<([^`>]+)>`_")
_SHARED_ARGUMENT = re.compile(r"^(\s+)(\w+(?:, \w+)+): (.*)$")  # "v_rest, v_reset: potentials"
_NAMES_CONTINUED = re.compile(r"^\s+\w+(?:, \w+)*,\s*$")  # "beta, threshold," (more below)
_TABLE_RULE = re.compile(r"^\s*=+(\s+=+)+\s*$")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


class RstToMarkdown(griffe.Extension):
    def on_package(self, *, pkg: griffe.Module, **kwargs) -> None:
        self._package = pkg
        self._visit(pkg)

    def _visit(self, obj: griffe.Object) -> None:
        if obj.docstring is not None and "{" in obj.docstring.value:
            # a docstring completed at import (snn.nir's list the node types from their tables)
            runtime = inspect.getdoc(self._runtime(obj))
            if runtime:
                obj.docstring.value = runtime
        if obj.docstring is not None:
            obj.docstring.value = self._convert(obj.docstring.value, obj)
            if self._forwards_keywords(obj):
                # arguments passed on through **kwargs are documented but not in the signature
                options = dict(obj.docstring.parser_options or {})
                options.update(warn_unknown_params=False, warn_missing_types=False)
                obj.docstring.parser_options = options
        for member in obj.members.values():
            if not member.is_alias and member.parent is obj:
                self._visit(member)

    @staticmethod
    def _forwards_keywords(obj: griffe.Object) -> bool:
        function = obj.members.get("__init__") if obj.is_class else obj
        if function is None or function.is_alias or not function.is_function:
            return False
        return any(p.kind is griffe.ParameterKind.var_keyword for p in function.parameters)

    @staticmethod
    def _runtime(obj: griffe.Object) -> object:
        module = obj if obj.is_module else obj.module
        found: object = importlib.import_module(module.path)
        for part in obj.path[len(module.path) :].split(".")[1:]:
            found = getattr(found, part, None)
        return found

    # -- resolution ---------------------------------------------------------------------------

    def _lookup(self, path: str) -> griffe.Object | None:
        parts = path.split(".")
        if parts[0] != self._package.name:
            return None
        obj: griffe.Object | griffe.Alias = self._package
        for part in parts[1:]:
            try:
                obj = obj.members[part]
            except (KeyError, griffe.AliasResolutionError, griffe.CyclicAliasError):
                return None
        try:
            return obj.final_target if obj.is_alias else obj
        except (griffe.AliasResolutionError, griffe.CyclicAliasError):
            return None

    def _resolve(self, target: str, scope: griffe.Object) -> str | None:
        """The canonical path of ``target`` as seen from ``scope``, or None if it is not snn's."""
        candidates = [target]
        node: griffe.Object | None = scope
        while node is not None:
            candidates.append(f"{node.path}.{target}")
            node = node.parent
        for candidate in candidates:
            found = self._lookup(candidate)
            if found is not None:
                return found.path
        return None

    @staticmethod
    def _rendered(obj: griffe.Object) -> bool:
        """Whether the reference pages show ``obj``: it and its parents are public (``__all__``)."""
        node: griffe.Object | None = obj
        while node is not None and node.parent is not None:
            if node.name.startswith("_") or not node.is_public:
                return False
            node = node.parent
        return True

    def _role(self, match: re.Match, scope: griffe.Object) -> str:
        _, tilde, target = match.groups()
        target = target.strip()
        title = target.rsplit(".", 1)[-1] if tilde else target
        path = self._resolve(target, scope)
        if path is None and target.startswith(f"{self._package.name}."):
            path = target  # an snn name that does not exist: let the build report it
        found = self._lookup(path) if path else None
        if path is None or (found is not None and not self._rendered(found)):
            return f"`{title}`"
        return f"[`{title}`][{path}]"

    def _inline(self, text: str, scope: griffe.Object) -> str:
        text = _LINK.sub(lambda m: f"[{m.group(1)}]({m.group(2)})", text)
        text = _MATH_ROLE.sub(lambda m: f"${m.group(1)}$", text)
        text = _ROLE.sub(lambda m: self._role(m, scope), text)
        return _LITERAL.sub(lambda m: f"`{m.group(1)}`", text)

    # -- blocks -------------------------------------------------------------------------------

    def _convert(self, text: str, scope: griffe.Object) -> str:
        lines = text.splitlines()
        out: list[str] = []
        i = 0
        while i < len(lines):
            line = lines[i]
            stripped = line.strip()
            indent = " " * _indent(line)
            if stripped == ".. math::" or (
                stripped.endswith("::") and not stripped.startswith(">>>")
            ):
                # an indented block follows: math, or a literal block (code, possibly doctest)
                j = i + 1
                body: list[str] = []
                while j < len(lines) and (not lines[j].strip() or _indent(lines[j]) > len(indent)):
                    body.append(lines[j])
                    j += 1
                while body and not body[-1].strip():
                    body.pop()
                    j -= 1  # the blank line after the block stays: Markdown needs it
                depth = min((_indent(b) for b in body if b.strip()), default=0)
                body = [b[depth:] for b in body]
                while body and not body[0].strip():
                    body.pop(0)
                if stripped == ".. math::":
                    math = "\n".join(body)
                    if "&" in math or "\\\\" in math:
                        math = f"\\begin{{aligned}}\n{math}\n\\end{{aligned}}"
                    out += [f"{indent}$$", *[indent + m for m in math.splitlines()], f"{indent}$$"]
                else:
                    lead = stripped[:-2].rstrip()
                    if lead:
                        out.append(indent + self._inline(lead, scope) + ":")
                        out.append("")
                    language = "pycon" if body and body[0].lstrip().startswith(">>>") else "text"
                    out += [f"{indent}```{language}", *[indent + b for b in body], f"{indent}```"]
                i = j
                continue
            if _TABLE_RULE.match(line) and i + 2 < len(lines) and _TABLE_RULE.match(lines[i + 2]):
                # a simple reStructuredText table: columns are the runs of "=" in its rule
                spans = [m.span() for m in re.finditer(r"=+", line)]
                spans[-1] = (spans[-1][0], None)
                rows, j = [], i + 1
                while j < len(lines) and not (_TABLE_RULE.match(lines[j]) and j > i + 2):
                    if not _TABLE_RULE.match(lines[j]):
                        cells = [lines[j][a:b].strip() for a, b in spans]
                        rows.append("| " + " | ".join(self._inline(c, scope) for c in cells) + " |")
                    j += 1
                out += [indent + rows[0], indent + "|" + " --- |" * len(spans)]
                out += [indent + r for r in rows[1:]]
                i = j + 1
                continue
            if stripped.startswith(">>>"):
                # a bare doctest: up to the next blank line
                j = i
                while j < len(lines) and lines[j].strip():
                    j += 1
                body = [
                    b[len(indent) :] if b.startswith(indent) else b.lstrip() for b in lines[i:j]
                ]
                # an example indented under its paragraph is a code block of that paragraph
                prose = [o for o in out if o.strip()]
                indent = " " * min(len(indent), _indent(prose[-1]) if prose else 0)
                if out and out[-1].strip():
                    out.append("")
                out += [f"{indent}```pycon", *[indent + b for b in body], f"{indent}```"]
                i = j
                continue
            if _NAMES_CONTINUED.match(line) and any(o.strip() == "Args:" for o in out):
                # "a, b,\n    c: description": join the names onto the line with the description
                j = i + 1
                while j < len(lines) and _NAMES_CONTINUED.match(lines[j]):
                    j += 1
                if j < len(lines) and _SHARED_ARGUMENT.match(" " + lines[j].strip()):
                    names = " ".join(part.strip() for part in lines[i : j + 1])
                    lines[j] = indent + names
                    i = j
                    continue
            shared = _SHARED_ARGUMENT.match(line)
            if shared and out and any(o.strip() == "Args:" for o in out):
                # Google style has one name per entry: give each name the shared description
                space, names, description = shared.groups()
                for name in names.split(", "):
                    out.append(self._inline(f"{space}{name}: {description}", scope))
                i += 1
                continue
            out.append(self._inline(line, scope))
            i += 1
        return "\n".join(out)
