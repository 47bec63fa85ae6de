#!/usr/bin/env python3
"""Fails when the repository points at something that is not there.

Checks, from the repository root (`python3 .ci/check-links.py`, no network):
  * every relative Markdown link `[text](target)` in a *.md file: the file or directory exists
    (relative to the document), and a `#fragment` names a heading of the target document;
  * every path cited in backticks in *.md, *.rs, *.toml, *.yaml, *.yml and *.sh files that looks
    like a repository path (two or more segments, ending in a known extension or `/`): it exists,
    relative to the repository root or to the citing file; `path::item` suffixes are ignored;
  * no document or comment cites a file outside the repository (`../…`).
Paths under a directory the repository ignores (.gitignore, e.g. `data/`) are run-time outputs
and are not checked, nor are the lines between `<!-- link-check: run-time paths -->` and
`<!-- link-check: end -->` (tables describing a data directory's files).
Prints one line per problem (FILE:LINE: ...) and exits 1 if there is any.
"""

import os
import re
import sys
import unicodedata

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
SKIP_DIRS = {".git", "target", "node_modules", "corpus", "artifacts"}
CITING = (".md", ".rs", ".toml", ".yaml", ".yml", ".sh")
EXTENSIONS = (
    ".rs", ".md", ".toml", ".yaml", ".yml", ".json", ".sh", ".sql", ".conf", ".service",
    ".html", ".txt", ".py", ".lock",
)
LINK = re.compile(r"(?<!\!)\[(?:[^\]\[]|\[[^\]]*\])*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
CODE = re.compile(r"`([^`\s]+)`")
PATHLIKE = re.compile(r"^(?:\.\./|\./)?[A-Za-z0-9_.-]+(?:/[A-Za-z0-9_.-]+)+/?$")


def files():
    for dirpath, dirnames, filenames in os.walk(ROOT):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS)
        for name in sorted(filenames):
            if name.endswith(CITING):
                yield os.path.join(dirpath, name)


def slug(heading):
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"`|\*\*|\*|_(?=\w)|\[([^\]]*)\]\([^)]*\)", lambda m: m.group(1) or "", heading)
    text = text.strip().lower()
    kept = "".join(
        c for c in text
        if c in " -_" or unicodedata.category(c)[0] in ("L", "N")
    )
    return kept.replace(" ", "-")


def anchors(path, cache={}):
    if path not in cache:
        found, fenced = set(), False
        with open(path, encoding="utf-8") as f:
            for line in f:
                if line.lstrip().startswith("```"):
                    fenced = not fenced
                elif not fenced and re.match(r"#{1,6}\s", line):
                    base = slug(line.lstrip("#").strip())
                    name, n = base, 1
                    while name in found:
                        name, n = f"{base}-{n}", n + 1
                    found.add(name)
        cache[path] = found
    return cache[path]


def ignored_dirs():
    """Directories .gitignore names (`dir/` entries): where run-time outputs go."""
    dirs = []
    with open(os.path.join(ROOT, ".gitignore"), encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line.endswith("/") and not line.startswith("#"):
                dirs.append(line.strip("/") + "/")
    return dirs


def crate_root(path):
    """The nearest directory above `path` holding a Cargo.toml (paths in a crate's docs are
    often relative to it)."""
    d = os.path.dirname(path)
    while d.startswith(ROOT):
        if os.path.exists(os.path.join(d, "Cargo.toml")):
            return d
        d = os.path.dirname(d)
    return ROOT


def exists(rel, path):
    bases = [os.path.dirname(path), ROOT, crate_root(path)]
    return any(os.path.exists(os.path.join(b, rel)) for b in bases)


def main():
    problems = []
    runtime = ignored_dirs()
    for path in files():
        rel_file = os.path.relpath(path, ROOT)
        if rel_file == os.path.join(".ci", "check-links.py"):
            continue
        base_dir = os.path.dirname(path)
        with open(path, encoding="utf-8", errors="replace") as f:
            lines = f.readlines()
        fenced = False
        exempt = False
        for number, line in enumerate(lines, 1):
            where = f"{rel_file}:{number}"
            if "<!-- link-check: run-time paths -->" in line:
                exempt = True
            elif "<!-- link-check: end -->" in line:
                exempt = False
            if exempt:
                continue
            if path.endswith(".md"):
                if line.lstrip().startswith("```"):
                    fenced = not fenced
                    continue
                if fenced:
                    continue
                for target in LINK.findall(line):
                    if re.match(r"^[a-z][a-z0-9+.-]*:", target):
                        continue  # https:, mailto: …
                    target_path, _, fragment = target.partition("#")
                    if target_path.startswith("../") and not os.path.realpath(
                        os.path.join(base_dir, target_path)
                    ).startswith(ROOT + os.sep):
                        problems.append(f"{where}: link outside the repository: {target}")
                        continue
                    full = os.path.join(base_dir, target_path) if target_path else path
                    if not os.path.exists(full):
                        problems.append(f"{where}: link to a missing file: {target}")
                    elif fragment and full.endswith(".md") and fragment not in anchors(full):
                        problems.append(f"{where}: link to a missing heading: {target}")
            for span in CODE.findall(line):
                cited = span.split("::", 1)[0].rstrip(".,;:")
                if cited.startswith("../"):
                    if not os.path.realpath(os.path.join(base_dir, cited)).startswith(ROOT + os.sep):
                        problems.append(f"{where}: cites a file outside the repository: {span}")
                    continue
                if not PATHLIKE.match(cited):
                    continue
                if not (cited.endswith("/") or cited.endswith(EXTENSIONS)):
                    continue
                if re.match(r"^[A-Z0-9_]+/", cited):
                    continue  # DATA_DIR/ikkuna.db and similar placeholders
                if any(cited.lstrip("./").startswith(d) for d in runtime):
                    continue
                if not exists(cited, path):
                    problems.append(f"{where}: cites a missing path: {span}")
    for p in problems:
        print(p)
    if problems:
        print(f"{len(problems)} broken reference(s)", file=sys.stderr)
        return 1
    print("links and cited paths: all present")
    return 0


if __name__ == "__main__":
    sys.exit(main())
