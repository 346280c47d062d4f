"""The docs that live in the repository: every link between them resolves, and the code cites them, not files
outside the repository.

Links are checked the way GitHub renders them: a relative path must name a file of the checkout, and a
``#fragment`` must be the slug of one of that file's headings (lower-cased, punctuation dropped, spaces to
hyphens, repeats numbered ``-1``, ``-2``…). Code blocks are skipped, as GitHub does not link inside them.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CODE_DIRS = ("backend", "plugins", "protocol", "tests", "bench")
DOC_PAGES = sorted([ROOT / "README.md", ROOT / "protocol" / "SPEC.md", *(ROOT / "docs").glob("*.md")])

LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
# A citation of a docs page in code: docs/name.md, optionally #fragment.
CODE_CITATION = re.compile(r"docs/([\w.-]+\.md)(#[\w-]+)?")


def heading_slugs(markdown: str) -> set[str]:
    """GitHub's anchors for the headings of a markdown text."""
    slugs: set[str] = set()
    seen: dict[str, int] = {}
    for line in prose_lines(markdown):
        m = re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not m:
            continue
        slug = re.sub(r"[^\w\- ]", "", m.group(1).lower()).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        slugs.add(slug if n == 0 else f"{slug}-{n}")
    return slugs


def prose_lines(markdown: str) -> list[str]:
    """The lines outside fenced and indented code blocks."""
    out, fenced = [], False
    for line in markdown.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        if not fenced and not line.startswith("    "):
            out.append(line)
    return out


def broken_link(page: Path, target: str) -> str | None:
    """Why ``target``, a link written in ``page``, does not resolve; None when it does."""
    if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto: — not checked here
        return None
    path_part, _, fragment = target.partition("#")
    file = (page.parent / path_part).resolve() if path_part else page
    if not file.is_file():
        return f"{target}: no file {file.relative_to(ROOT) if file.is_relative_to(ROOT) else file}"
    if fragment and file.suffix == ".md" and fragment not in heading_slugs(file.read_text(encoding="utf-8")):
        return f"{target}: no heading #{fragment} in {file.relative_to(ROOT)}"
    return None


def test_heading_slugs_follow_github():
    text = "# Training and the default model `coolcolor-tiny`\n## E6. A guide — ships\n## Nuke\n## Nuke\n" \
           "```\n# not a heading\n```\n"
    assert heading_slugs(text) == {"training-and-the-default-model-coolcolor-tiny", "e6-a-guide--ships",
                                   "nuke", "nuke-1"}


def test_broken_links_are_found(tmp_path, monkeypatch):
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    (tmp_path / "a.md").write_text("# Title\n## Part two\n", encoding="utf-8")
    page = tmp_path / "b.md"
    page.write_text("", encoding="utf-8")
    assert broken_link(page, "a.md#part-two") is None
    assert broken_link(page, "a.md#part-three") == "a.md#part-three: no heading #part-three in a.md"
    assert broken_link(page, "missing.md") == "missing.md: no file missing.md"
    assert broken_link(page, "https://docs.ray.io") is None


@pytest.mark.parametrize("page", DOC_PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_links_in_docs_resolve(page):
    problems = []
    for line in prose_lines(page.read_text(encoding="utf-8")):
        for target in LINK.findall(line):
            problem = broken_link(page, target)
            if problem:
                problems.append(problem)
    assert problems == []


def code_files() -> list[Path]:
    """The checkout's own files (what git tracks or would track): build output such as protocol/build/, which
    ``pip install`` leaves in the tree, is ignored by .gitignore and is not the project's text."""
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", *CODE_DIRS], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout.splitlines()
    return [ROOT / f for f in sorted(listed) if Path(f).suffix in (".py", ".md", ".json")
            and (ROOT / f).is_file() and "default_model" not in Path(f).parts and Path(f).name != "test_docs.py"]


def test_code_cites_docs_pages_and_sections_that_exist():
    problems = []
    for path in code_files():
        for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            for name, fragment in CODE_CITATION.findall(line):
                doc = ROOT / "docs" / name
                if not doc.is_file():
                    problems.append(f"{path.relative_to(ROOT)}:{lineno}: no docs/{name}")
                elif fragment and fragment[1:] not in heading_slugs(doc.read_text(encoding="utf-8")):
                    problems.append(f"{path.relative_to(ROOT)}:{lineno}: no heading {fragment} in docs/{name}")
    assert problems == []


def test_code_cites_nothing_outside_the_repository():
    """The design notes and research files of the project's shared folder are not in the checkout; the code cites
    the pages of docs/ instead."""
    outside = re.compile(r"DESIGN(\.md)? ?§|DESIGN\.md|research/|research [\w-]+\.md|/work/shared|shared/research"
                         r"|host-recombine|resolve-nuke-apis|protocol-and-scale-out|diffusers-and-performance")
    problems = [f"{p.relative_to(ROOT)}:{n}: {line.strip()}" for p in code_files()
                for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if outside.search(line)]
    assert problems == []
