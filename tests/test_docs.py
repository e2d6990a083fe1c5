"""Checks of the documentation (README.md and docs/*.md): links and images resolve, the commands of fenced code
blocks name scripts that exist, and the README stays a short front page.

Plain text parsing only (no subprocess, no network), so it runs in well under a second.
"""
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md"] + sorted((ROOT / "docs").glob("*.md"))
README_MAX_LINES = 220

FENCE = re.compile(r"^(```|~~~).*?^\1[ \t]*$", re.M | re.S)
INLINE_CODE = re.compile(r"`[^`\n]*`")
# [text](target) and ![alt](target), with an optional "title"; the text may span lines.
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^#{1,6}[ \t]+(.+?)[ \t]*#*[ \t]*$", re.M)
# Scripts named in a command: scripts/X.sh, scripts/X.py, benchmarks/X.py anywhere, and the file after `python`
# (or torchrun and its options) at the start of a command, after any VAR=value assignments.
NAMED_SCRIPT = re.compile(r"(?<![\w./-])((?:scripts/[\w.-]+\.(?:sh|py))|(?:benchmarks/[\w.-]+\.py))\b")
PYTHON_SCRIPT = re.compile(r"^(?:[A-Za-z_]\w*=\S*\s+)*(?:python3?|torchrun(?:\s+-\S+(?:\s+[^\s-]\S*)?)*)\s+([^\s-]\S*\.py)\b")
COMMAND_SPLIT = re.compile(r"&&|\|\||[;|]|\$\(")


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: markup dropped, lowercase, punctuation removed except hyphens and spaces
    (word characters, underscore included, stay), spaces to hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading keeps its text
    text = re.sub(r"[`*]", "", text).strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every heading anchor of a Markdown file, repeated headings numbered as GitHub numbers them."""
    seen: dict[str, int] = {}
    found = set()
    for match in HEADING.finditer(FENCE.sub("", path.read_text(encoding="utf-8"))):
        base = slug(match.group(1))
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def links(path: Path) -> list[str]:
    """Targets of every link and image of a page, outside code blocks and inline code."""
    text = INLINE_CODE.sub("", FENCE.sub("", path.read_text(encoding="utf-8")))
    return [m.group(1) for m in LINK.finditer(text)]


def broken_links(path: Path) -> list[str]:
    """The links of ``path`` that do not resolve: a missing file, or an anchor that is no heading of its page."""
    broken = []
    for target in links(path):
        if re.match(r"^(https?:|mailto:)", target):
            continue
        file_part, _, anchor = target.partition("#")
        dest = (path.parent / file_part).resolve() if file_part else path
        if not dest.exists():
            broken.append(f"{target}: no file {dest.relative_to(ROOT) if ROOT in dest.parents else dest}")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"{target}: no heading '#{anchor}' in {dest.name}")
    return broken


def commands(path: Path) -> list[tuple[str, str]]:
    """(command, script) for every script named by a command in a fenced code block of ``path``; continuation
    lines are joined and comments dropped."""
    found = []
    for block in FENCE.finditer(path.read_text(encoding="utf-8")):
        body = block.group(0).split("\n", 1)[1].rsplit("\n", 1)[0].replace("\\\n", " ")
        for line in body.splitlines():
            line = re.sub(r"(^|\s)#.*$", "", line).strip()
            for part in COMMAND_SPLIT.split(line):
                part = part.strip()
                scripts = NAMED_SCRIPT.findall(part)
                python = PYTHON_SCRIPT.match(part)
                if python:
                    scripts.append(python.group(1))
                found += [(part, script) for script in scripts]
    return found


def page_id(path: Path) -> str:
    return str(path.relative_to(ROOT))


def test_pages_found():
    assert (ROOT / "README.md") in PAGES and len(PAGES) > 1, "README.md and docs/*.md are the pages checked"


@pytest.mark.parametrize("path", PAGES, ids=page_id)
def test_links_resolve(path):
    assert not broken_links(path), f"{page_id(path)}: broken links: {broken_links(path)}"


@pytest.mark.parametrize("path", PAGES, ids=page_id)
def test_commands_name_existing_scripts(path):
    missing = [(command, script) for command, script in commands(path) if not (ROOT / script).is_file()]
    assert not missing, f"{page_id(path)}: commands name scripts that do not exist: {missing}"


def test_readme_is_short():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").count("\n")
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines; the front page holds at most {README_MAX_LINES}"


def test_readme_keeps_the_ci_test_command():
    """.ci/run runs the README's test command; it must stay in a fenced block of the README."""
    assert any(script == "scripts/test.sh" for _, script in commands(ROOT / "README.md"))


def test_checks_can_fail(tmp_path):
    """The parsers find what they must: a missing file, a missing anchor, a missing script."""
    page = tmp_path / "page.md"
    (tmp_path / "there.md").write_text("# A heading, with `code` (and --flags)\n")
    page.write_text("# Title\n[ok](there.md#a-heading-with-code-and---flags) [ok](#title) [no](gone.md)\n"
                    "![no](img.png) [no](#nothing) [ok](https://example.com/x)\n"
                    "```bash\nFOO=1 python nothere.py --x \\\n  && bash scripts/nothere.sh  # scripts/comment.sh\n"
                    "torchrun --standalone --nproc_per_node 2 gone_too.py -b 8 $(python -c 'print(1)')\n```\n")
    assert [b.split(":")[0] for b in broken_links(page)] == ["gone.md", "img.png", "#nothing"]
    assert [s for _, s in commands(page)] == ["nothere.py", "scripts/nothere.sh", "gone_too.py"]
