"""The benchmarks' prose, kept in hand-edited markdown beside this module (methods.md: how each
figure is measured; findings.md: what the figures say) and filled in with a run's figures.

A file is a set of sections, each under a `## name` heading (the name the report asks for;
BENCHMARKS.md's own headings are the report's). In a section:

- `{figure}` (a lowercase name) is replaced by that figure, as the report formats it; a name
  the report does not give fails the report, so a typo cannot reach BENCHMARKS.md;
- `[[...]]` is kept only when every figure inside it is given (a measurement that was not run,
  a profile that was not taken); it may span paragraphs and hold other `[[...]]`;
- the lines of a paragraph are joined into one (BENCHMARKS.md keeps a paragraph on one line,
  so its diffs stay per paragraph); a figure may be a whole table, on a paragraph of its own;
- `<!-- comments -->` are for the editor and left out.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).parent
SECTION = re.compile(r"^## (.+?)\s*$", re.MULTILINE)
COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
FIGURE = re.compile(r"\{([a-z][a-z0-9_]*)\}")
# The innermost optional part: one that holds no other.
OPTIONAL = re.compile(r"\[\[((?:(?!\[\[|\]\]).)*)\]\]", re.DOTALL)

Figures = Mapping[str, str | None]


class ProseError(KeyError):
    """A section or a figure the prose names and the report does not have."""


@dataclass(frozen=True)
class Prose:
    path: Path
    sections: dict[str, str]

    @classmethod
    def load(cls, name: str) -> Prose:
        """A prose file beside this module: `findings.md`, `methods.md`."""
        path = HERE / name
        return cls.parse(path.read_text(), path)

    @classmethod
    def parse(cls, text: str, path: Path = HERE) -> Prose:
        text = COMMENT.sub("", text)
        headings = list(SECTION.finditer(text))
        sections = {}
        for index, heading in enumerate(headings):
            end = headings[index + 1].start() if index + 1 < len(headings) else len(text)
            sections[heading.group(1)] = text[heading.end() : end]
        return cls(path, sections)

    def fill(self, section: str, figures: Figures) -> str:
        """The section's paragraphs, each on one line, separated by a blank line."""
        if section not in self.sections:
            raise ProseError(f"{self.path.name} has no section `## {section}`")
        text = self.sections[section]
        while True:
            resolved = OPTIONAL.sub(lambda m: _optional(m.group(1), figures), text)
            if resolved == text:
                break
            text = resolved
        paragraphs = [" ".join(p.split()) for p in re.split(r"\n\s*\n", text)]
        return "\n\n".join(
            FIGURE.sub(lambda m: self._figure(section, m.group(1), figures), p)
            for p in paragraphs
            if p
        )

    def _figure(self, section: str, name: str, figures: Figures) -> str:
        value = figures.get(name)
        if value is None:
            raise ProseError(f"{self.path.name}, `## {section}`: no figure `{{{name}}}`")
        return value


def _optional(part: str, figures: Figures) -> str:
    given = all(figures.get(name) is not None for name in FIGURE.findall(part))
    return part if given else ""
