"""The documentation stands alone: nothing in the repository cites material outside it, and every docs/ path and
markdown link it cites exists (anchors included).

A clone of the repository is all a reader has; the facts about the original framework and its consumers live in
docs/ (config_reference.md, dataset_format.md, preproc_artifacts.md, bundle_contract.md, networks.md).
"""

from __future__ import annotations

import pathlib
import re
import subprocess

ROOT = pathlib.Path(__file__).resolve().parents[1]
TEXT_SUFFIXES = {".py", ".md", ".txt", ".toml", ".ini", ".cfg", ".json", ".yaml", ".yml", ".sh", ""}

# Built from pieces so that this file does not match itself.
_SHARED = "../" + "shared"
FORBIDDEN = [
    (re.compile(re.escape(_SHARED)), "a path outside the repository"),
    (re.compile("spec_" + r"(data_preproc|networks_training|deploy_inference)"), "an outside spec file"),
    (re.compile("spec" + r"\s*§"), "a section of the old outside spec"),
    (re.compile(r"\b(ARCHITECTURE|PERFORMANCE|STYLE)" + r"\.md"), "an outside document"),
    (re.compile("config" + r"_guide\.md"), "the original's config guide (use docs/config_reference.md)"),
    (re.compile("§"), "a section sign (cite docs/<file>.md and its heading instead)"),
]
DOCS_PATH = re.compile(r"\bdocs/([\w.-]+\.(?:md|json|png))")
MD_LINK = re.compile(r"\]\(([^)\s]+)\)")


def repo_files() -> list[pathlib.Path]:
    """Tracked files and untracked ones git does not ignore (the working tree a commit would hold)."""
    try:
        out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=ROOT,
                             capture_output=True, check=True, timeout=60).stdout.decode()
        paths = [ROOT / p for p in out.split("\0") if p]
    except (OSError, subprocess.SubprocessError):
        paths = [p for p in ROOT.rglob("*") if ".git" not in p.parts and ".venv" not in p.parts]
    return sorted(p for p in paths if p.is_file())


def text_files() -> list[pathlib.Path]:
    out = []
    for path in repo_files():
        if path.suffix not in TEXT_SUFFIXES or path.name == pathlib.Path(__file__).name:
            continue
        if "fixtures" in path.relative_to(ROOT).parts:  # generated data (Hugging Face configs, weights)
            continue
        try:
            path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        out.append(path)
    return out


def slug(heading: str) -> str:
    """GitHub's anchor of a markdown heading."""
    text = heading.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(md: pathlib.Path) -> set[str]:
    found: set[str] = set()
    in_code = False
    for line in md.read_text().splitlines():
        if line.startswith("```"):
            in_code = not in_code
        elif not in_code and line.startswith("#"):
            found.add(slug(line.lstrip("#")))
    return found


def test_nothing_cites_material_outside_the_repository():
    bad = []
    for path in text_files():
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            for pattern, what in FORBIDDEN:
                if pattern.search(line):
                    bad.append(f"{path.relative_to(ROOT)}:{n}: {what}: {line.strip()[:100]}")
                    break
    assert not bad, f"{len(bad)} references outside the repository:\n" + "\n".join(bad)


def test_cited_docs_files_exist():
    bad = []
    for path in text_files():
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            for name in DOCS_PATH.findall(line):
                if not (ROOT / "docs" / name).is_file():
                    bad.append(f"{path.relative_to(ROOT)}:{n}: docs/{name} does not exist")
    assert not bad, "\n".join(bad)


def test_markdown_links_resolve():
    bad = []
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    for page in pages:
        for n, line in enumerate(page.read_text().splitlines(), 1):
            for target in MD_LINK.findall(line):
                if re.match(r"^[a-z]+://", target) or target.startswith("mailto:"):
                    continue
                file_part, _, anchor = target.partition("#")
                dest = page if not file_part else (page.parent / file_part).resolve()
                if not dest.exists():
                    bad.append(f"{page.relative_to(ROOT)}:{n}: link to {target}: no such file")
                elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
                    bad.append(f"{page.relative_to(ROOT)}:{n}: link to {target}: no heading with that anchor")
    assert not bad, "\n".join(bad)


def test_the_contract_docs_exist():
    for name in ("DEVELOPING.md", "config_reference.md", "dataset_format.md", "preproc_artifacts.md",
                 "bundle_contract.md", "training.md", "networks.md"):
        assert (ROOT / "docs" / name).is_file(), f"docs/{name} is missing"
