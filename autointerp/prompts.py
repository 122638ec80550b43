"""Loads the versioned prompt templates: the repo's prompts/ folder, shipped in the wheel as
`autointerp/prompt_templates/`.

A template file `prompts/<name>_v<N>.txt` holds named sections, each opened by a line `@@ <section>`.
Placeholders are written `{{name}}` (double braces, so JSON and code in the text need no escaping).
Every explanation and score records the template's version id, e.g. ``explain_v1``; the settings hash
also covers a digest of the text, so editing a template in place still invalidates cached results.
"""

from __future__ import annotations

import hashlib
import json
import re
from functools import cache
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

from pydantic import BaseModel

from autointerp.errors import UserError

_SECTION_LINE = re.compile(r"^@@ (\w+)\s*$", re.MULTILINE)
_PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")
_FILE_NAME = re.compile(r"^(\w+?)_v(\d+)\.txt$")


class PromptError(UserError):
    """A prompt template is missing, malformed, or rendered with the wrong values."""


class PromptTemplate(BaseModel):
    name: str  # e.g. "explain"
    version: str  # e.g. "explain_v1": what results record
    digest: str  # first 12 hex digits of the text's SHA-256
    sections: dict[str, str]

    def render(self, section: str, **values: str) -> str:
        """The section with every `{{placeholder}}` replaced; unknown or missing names are errors."""
        if section not in self.sections:
            raise PromptError(f"prompt {self.version} has no section {section!r}")
        text = self.sections[section]
        wanted = set(_PLACEHOLDER.findall(text))
        if wanted != set(values):
            raise PromptError(f"prompt {self.version}/{section} needs {sorted(wanted)}, got {sorted(values)}")
        return _PLACEHOLDER.sub(lambda m: values[m.group(1)], text)


def _template_folder() -> Traversable:
    """The installed templates (package data), else the source checkout's prompts/ folder."""
    shipped = resources.files("autointerp").joinpath("prompt_templates")
    return shipped if shipped.is_dir() else Path(__file__).resolve().parents[1] / "prompts"


def available_versions(name: str) -> list[int]:
    """Version numbers of the templates called `name`, ascending."""
    found = []
    for entry in _template_folder().iterdir():
        match = _FILE_NAME.match(entry.name)
        if match and match.group(1) == name:
            found.append(int(match.group(2)))
    return sorted(found)


@cache
def load_prompt(name: str, version: int | None = None) -> PromptTemplate:
    """The template `name` at `version` (the newest when None)."""
    versions = available_versions(name)
    if not versions:
        raise PromptError(f"no prompt template named {name!r} among the shipped prompts")
    chosen = versions[-1] if version is None else version
    if chosen not in versions:
        raise PromptError(f"prompt {name!r} has versions {versions}, not {chosen}")
    text = _template_folder().joinpath(f"{name}_v{chosen}.txt").read_text(encoding="utf-8")
    return PromptTemplate(
        name=name,
        version=f"{name}_v{chosen}",
        digest=hashlib.sha256(text.encode("utf-8")).hexdigest()[:12],
        sections=_split_sections(text, f"{name}_v{chosen}"),
    )


def _split_sections(text: str, label: str) -> dict[str, str]:
    marks = list(_SECTION_LINE.finditer(text))
    if not marks:
        raise PromptError(f"prompt {label} has no '@@ section' lines")
    sections: dict[str, str] = {}
    for mark, following in zip(marks, marks[1:] + [None]):
        end = following.start() if following else len(text)
        sections[mark.group(1)] = text[mark.end() : end].strip("\n")
    return sections


# ---- rendering token lists into prompt text ----------------------------------------------------

MARK_OPEN, MARK_CLOSE = "<<", ">>"


def visible(text: str) -> str:
    """Corpus text made safe for one prompt line: newlines and tabs shown as escapes."""
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")


def render_excerpt(tokens: list[str], marked: set[int] | frozenset[int] = frozenset()) -> str:
    """An excerpt on one line, marked tokens written <<like this>> (leading space kept outside)."""
    parts = []
    for i, token in enumerate(tokens):
        if i in marked:
            core = token.lstrip(" ")
            parts.append(visible(token[: len(token) - len(core)]) + MARK_OPEN + visible(core) + MARK_CLOSE)
        else:
            parts.append(visible(token))
    return "".join(parts)


def token_lines(tokens: list[str]) -> str:
    """One line per token, "index<TAB>token" with the token in JSON quotes (what simulators copy)."""
    return "\n".join(f"{i}\t{json.dumps(t, ensure_ascii=False)}" for i, t in enumerate(tokens))
