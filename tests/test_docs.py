"""The documentation: README.md, the pages under docs/ and mkdocs.yml.

What each test checks, and the rule it reads the Markdown by:

(a) ``mkdocs build --strict`` succeeds. mkdocs.yml's ``validation`` makes a broken link or anchor, a page the
    nav names that does not exist and a page left out of the nav a warning, and strict fails on a warning.
(b) Every repository path the README and the pages name exists. A *named path* is the whole text of an inline
    code span (fenced blocks are left out: they hold example output, such as an error about a made-up
    ``include/services/shop.yaml``), or the target of a relative Markdown link, that has no space and none of
    ``< > { } * $ ? ~ | = , ;`` (placeholders, globs, variables), and either
    - starts with a top-level entry of the repository (git's tracked and not-ignored files: ``plugins/``,
      ``scripts/``, ``tests/``, ``docs/``, ``include/``, ``dags/``, ``.ci/``, ``Makefile``, ``airflow.cfg``...;
      ``.airflow/`` or ``.state/`` are made at run time and ignored, so not checked): it must exist from the root;
    - or holds a ``/`` and ends in .py, .yaml, .yml, .md, .cfg, .txt or .toml: a module path as the pages write
      them (``airflow/sites.py``, ``deployflow/airflow/skips.py``), which must exist under the root,
      ``plugins/`` or ``plugins/deployflow/``.
    A link is relative to its page (the README's to the root), must stay inside the repository, and must
    exist; a README link's ``#anchor`` must name a heading of its page. Links with a scheme (web sites) are
    not checked. A dotted name ``deployflow.x.y`` in code (spans and fenced blocks) must be a module or
    package under ``plugins/`` (what follows the module, an attribute, is not checked).
(c) Every ``make <target>`` in code (spans and fenced blocks) is a target of the Makefile, and ``make -n
    <target>`` (a dry run, from the root) exits 0. A glob (``make bench-*``) names no target and is not checked.
(d) The README is at most 250 lines.
(e) The layout page (docs/reference/layout.md) names, as code spans, every package and module at the top of
    ``plugins/deployflow/`` (``plugins/deployflow/<package>/``, ``plugins/deployflow/<module>.py``) and every
    ``scripts/*.py``; with (b), the layout is complete and correct.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import unicodedata
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
LAYOUT = DOCS / "reference" / "layout.md"
README_MAX_LINES = 250

FENCE = re.compile(r"^(```|~~~).*?^\1[ \t]*$", re.M | re.S)
SPAN = re.compile(r"`([^`]+)`")
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
UNPATHLIKE = set(" \t\n<>{}*$?~|=,;")
MODULE_SUFFIXES = (".py", ".yaml", ".yml", ".md", ".cfg", ".txt", ".toml")
MODULE_ROOTS = (ROOT, ROOT / "plugins", ROOT / "plugins" / "deployflow")
DOTTED = re.compile(r"(?<![\w./-])deployflow(?:\.[A-Za-z_]\w*)+(?![\w/.-])")
MAKE = re.compile(r"(?:^|[\s;&|(])make\s+(?:[A-Z_]+=\S*\s+)*([a-z][a-z0-9-]*)(?=$|[\s;&|)\"'])")


def markdown_files() -> list[Path]:
    return [README, *sorted(DOCS.rglob("*.md"))]


def split(text: str) -> tuple[str, list[str]]:
    """The prose (fenced blocks blanked) and the fenced blocks."""
    return FENCE.sub("", text), [m.group(0) for m in FENCE.finditer(text)]


def spans(text: str) -> list[str]:
    return SPAN.findall(split(text)[0])


def code(text: str) -> list[str]:
    """Every piece of code: the inline spans and the fenced blocks."""
    prose, blocks = split(text)
    return [*SPAN.findall(prose), *blocks]


@cache
def repository_files() -> frozenset[str]:
    """Git's tracked and not-ignored files, and every folder above them."""
    out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout.split("\n")
    names = {line for line in out if line}
    names |= {str(p) for name in list(names) for p in Path(name).parents if str(p) != "."}
    return frozenset(names)


def top_level() -> set[str]:
    return {name.split("/")[0] for name in repository_files()}


def exists(relative: str, base: Path = ROOT) -> bool:
    path = (base / relative).resolve()
    return path.is_relative_to(ROOT) and path.exists() and str(path.relative_to(ROOT)) in repository_files()


def named_path_problem(text: str) -> str | None:
    """Why a code span's text, taken as a repository path, does not exist (None: fine, or not a path)."""
    if not text or UNPATHLIKE & set(text) or text.startswith(("/", "-", "..", "http:", "https:")):
        return None
    path = text.rstrip("/")
    if path.split("/")[0] in top_level():
        return None if exists(path) else f"`{text}` does not exist in the repository"
    if "/" in path and path.endswith(MODULE_SUFFIXES):
        if any(exists(path, base) for base in MODULE_ROOTS):
            return None
        return f"`{text}` exists under none of {', '.join(str(b.relative_to(ROOT)) or '.' for b in MODULE_ROOTS)}"
    return None


def slug(heading: str) -> str:
    """The anchor mkdocs' toc extension gives a heading (its default slugify)."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).replace("`", "")
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    text = re.sub(r"[^\w\s-]", "", text).strip().lower()
    return re.sub(r"[-\s]+", "-", text)


def anchors(page: Path) -> set[str]:
    prose, _ = split(page.read_text())
    return {slug(m.group(1)) for m in re.finditer(r"^#{1,6}\s+(.+?)\s*#*\s*$", prose, re.M)}


def link_problem(source: Path, target: str) -> str | None:
    if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
        return None  # a web site, a mail address; an anchor on the page itself (mkdocs checks those)
    path, _, anchor = target.split("?")[0].partition("#")
    resolved = (source.parent / path).resolve()
    if not resolved.is_relative_to(ROOT):
        return f"links to {target}, outside the repository"
    if not exists(str(resolved.relative_to(ROOT))):
        return f"links to {target}, which does not exist"
    if anchor and source == README and resolved.suffix == ".md" and anchor not in anchors(resolved):
        return f"links to {target}: {resolved.relative_to(ROOT)} has no heading #{anchor}"
    return None


def module_problem(dotted: str) -> str | None:
    here = ROOT / "plugins"
    for part in dotted.split("."):
        if (here / part / "__init__.py").exists():
            here = here / part
        elif (here / f"{part}.py").exists():
            return None  # a module: what follows is an attribute
        elif (here / "__init__.py").exists() and re.search(rf"\b{part}\b", (here / "__init__.py").read_text()):
            return None  # a name the package defines or imports
        else:
            return f"`{dotted}`: no module or package {part!r} in {here.relative_to(ROOT)}"
    return None


def makefile_targets() -> set[str]:
    return set(re.findall(r"^([a-z0-9][a-z0-9-]*)\s*:(?!=)", (ROOT / "Makefile").read_text(), re.M))


def make_targets_named() -> dict[str, set[str]]:
    named: dict[str, set[str]] = {}
    for page in markdown_files():
        for piece in code(page.read_text()):
            for target in MAKE.findall(piece):
                named.setdefault(target, set()).add(str(page.relative_to(ROOT)))
    return named


def test_mkdocs_builds_strict(tmp_path: Path):
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file",
                           str(ROOT / "mkdocs.yml"), "--site-dir", str(tmp_path / "site")],
                          cwd=ROOT, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},  # Material's notice of its end
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"mkdocs build --strict failed:\n{done.stderr[-4000:]}"
    assert (tmp_path / "site" / "index.html").exists()


def test_every_named_repository_path_exists():
    problems = []
    for page in markdown_files():
        text = page.read_text()
        where = page.relative_to(ROOT)
        problems += [f"{where}: {p}" for span in spans(text) if (p := named_path_problem(span))]
        problems += [f"{where}: {p}" for target in LINK.findall(split(text)[0]) if (p := link_problem(page, target))]
        problems += [f"{where}: {p}" for piece in code(text) for dotted in DOTTED.findall(piece)
                     if (p := module_problem(dotted))]
    assert not problems, "\n".join(problems)


def test_every_make_target_named_exists_and_dry_runs():
    named = make_targets_named()
    assert {"demo", "test"} <= named.keys(), f"the README names `make demo` and `make test`; found {sorted(named)}"
    targets = makefile_targets()
    unknown = {t: pages for t, pages in named.items() if t not in targets}
    assert not unknown, "\n".join(f"make {t} (in {', '.join(sorted(p))}) is not a Makefile target"
                                  for t, p in sorted(unknown.items()))
    for target in sorted(named):
        done = subprocess.run(["make", "-n", target], cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, f"make -n {target} exited {done.returncode}: {done.stderr.strip()[-1000:]}"


def test_readme_is_short():
    lines = len(README.read_text().splitlines())
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines, at most {README_MAX_LINES}: move detail into docs/"


def test_layout_lists_every_package_module_and_script():
    listed = set(spans(LAYOUT.read_text()))
    package = ROOT / "plugins" / "deployflow"
    expected = [f"plugins/deployflow/{p.name}/" for p in sorted(package.iterdir())
                if p.is_dir() and (p / "__init__.py").exists()]
    expected += [f"plugins/deployflow/{p.name}" for p in sorted(package.glob("*.py")) if p.name != "__init__.py"]
    expected += [f"scripts/{p.name}" for p in sorted((ROOT / "scripts").glob("*.py"))]
    missing = [name for name in expected if name not in listed]
    assert not missing, f"{LAYOUT.relative_to(ROOT)} does not list: {', '.join(missing)}"
