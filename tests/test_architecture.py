"""The structure the code promises (docs/architecture.md): the platform chosen in one place, imports that point
one way, and files a person can read. Each test reads the source as text or as an AST; nothing is imported."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PLUGINS = ROOT / "plugins"
PACKAGE = PLUGINS / "deployflow"
MAX_BYTES = 15 * 1024

# Where a platform may be named: its own implementations, and the catalog, which validates the ``platform``
# field and the blocks it allows (the input's shape, not behaviour).
PLATFORM_HOMES = ("platforms/", "kubernetes/", "catalog/parsing.py", "catalog/configuration.py", "catalog/grants.py")
PLATFORM_CHECKS = re.compile(
    r"""\.kubernetes\s+is\s+(not\s+)?None"""            # env.kubernetes is None
    r"""|platform\s*[!=]=|[!=]=\s*[\w.]*platform\b"""   # env.platform == ..., ... != service.platform
    r"""|[!=]=\s*["']kubernetes["']|["']kubernetes["']\s*[!=]="""
    r"""|if\s+[\w.]*\.kubernetes\b"""                   # if e.kubernetes
)
SITE_PARTS = re.compile(r"\b(DockerSite|KubernetesSite|DockerWorkload|KubernetesWorkload)\(")


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PLUGINS).with_suffix("").parts)
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def code_lines(path: Path) -> Iterator[tuple[int, str]]:
    """The file's lines with comments and docstrings' prose left out (a line of code only)."""
    tree = ast.parse(path.read_text())
    prose = {n for node in ast.walk(tree) if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
             for n in range(node.lineno, node.end_lineno + 1)}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if number not in prose:
            yield number, line.split("#", 1)[0]


def imports(name: str, path: Path, known: dict[str, Path]) -> Iterator[tuple[str, ast.stmt, bool]]:
    """Each project module ``name`` imports: (module, statement, inside a function). TYPE_CHECKING blocks import
    nothing at run time and are left out."""

    def resolve(dotted: str) -> str | None:
        while dotted and dotted not in known:
            dotted = dotted.rpartition(".")[0]
        return dotted or None

    def walk(node: ast.AST, in_function: bool) -> Iterator[tuple[str, ast.stmt, bool]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue
            inner = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
            targets: list[str] = []
            if isinstance(child, ast.Import):
                targets = [a.name for a in child.names]
            elif isinstance(child, ast.ImportFrom) and child.module and not child.level:
                targets = [f"{child.module}.{a.name}" if f"{child.module}.{a.name}" in known else child.module
                           for a in child.names]
            for target in targets:
                found = resolve(target)
                if found and found != name:
                    yield found, child, inner
            yield from walk(child, inner)

    yield from walk(ast.parse(path.read_text()), False)


def test_the_platform_is_chosen_in_one_place():
    """No branch on the platform outside its homes; the sites and workloads are built by the sites alone."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        where = path.relative_to(PACKAGE).as_posix()
        if where.startswith(PLATFORM_HOMES):
            continue
        for number, line in code_lines(path):
            if PLATFORM_CHECKS.search(line) or SITE_PARTS.search(line):
                found.append(f"{where}:{number}: {line.strip()}")
    assert found == [], "ask the environment's site (platforms/factory.py: site_for) instead:\n" + "\n".join(found)


def test_the_check_finds_a_branch_on_the_platform():
    """The patterns above catch the shapes the code had before the sites (so the test above can fail)."""
    for line in ('if env.kubernetes is not None:', 'in_place=environment.kubernetes is not None',
                 'if service.platform == "kubernetes":', 'if platform != "kubernetes" and x:',
                 'valid = [e.name for e in envs if e.kubernetes]',
                 'workload = DockerWorkload(platform, service="shop")'):
        assert PLATFORM_CHECKS.search(line) or SITE_PARTS.search(line), line


def test_the_project_imports_no_module_in_a_circle():
    """Every import counts, those inside functions too: an import moved into a function to dodge a circle is
    still the circle."""
    known = modules()
    graph = {name: {target for target, _, _ in imports(name, path, known)} for name, path in known.items()}
    state: dict[str, int] = {}  # 1: on the path being walked, 2: done
    stack: list[str] = []
    circles: list[list[str]] = []

    def visit(name: str) -> None:
        state[name] = 1
        stack.append(name)
        for target in sorted(graph[name]):
            if state.get(target) == 1:
                circles.append(stack[stack.index(target):] + [target])
            elif target not in state:
                visit(target)
        stack.pop()
        state[name] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name)
    assert circles == [], "\n".join(" -> ".join(c) for c in circles)


def test_an_import_inside_a_function_says_why():
    """One of the project's modules imported inside a function is there for its import cost, and says so."""
    known = modules()
    silent = []
    for name, path in sorted(known.items()):
        lines = path.read_text().splitlines()
        for statement in {s.lineno: s for _, s, in_function in imports(name, path, known) if in_function}.values():
            first = statement.lineno - 1  # the block of imports it stands in, and the line above that block
            while first > 0 and lines[first - 1].strip().startswith(("import ", "from ")):
                first -= 1
            block = lines[first - 1:statement.end_lineno] if first else lines[:statement.end_lineno]
            if not any("#" in line for line in block):
                silent.append(f"{path.relative_to(ROOT)}:{statement.lineno}: {lines[statement.lineno - 1].strip()}")
    assert silent == [], "import it at the top, or say in a comment what importing it costs:\n" + "\n".join(silent)


@pytest.mark.parametrize("path", sorted(PLUGINS.rglob("*.py")), ids=lambda p: p.relative_to(PLUGINS).as_posix())
def test_a_file_is_at_most_15_kb(path):
    assert path.stat().st_size <= MAX_BYTES, f"{path.relative_to(ROOT)} is {path.stat().st_size:,} bytes: split it by role"
