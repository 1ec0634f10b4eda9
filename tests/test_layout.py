"""The layout the README promises: who may import whom, no cycles, no private names across modules.

The rules are read from the README's layout table (its "may import" column), so the
table and the code cannot drift apart. Every import counts, the ones inside functions too.
"""

import ast
import re
import sys
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("runtime", "data", "train", "export", "deploy", "cli")


def readme_rules():
    """{package: set of what it may import}, from the README's layout table."""
    rules = {}
    for line in (ROOT / "README.md").read_text().splitlines():
        m = re.match(r"\|\s*`(\w+)/`[^|]*\|[^|]*\|([^|]*)\|\s*$", line)
        if m and m.group(1) in PACKAGES:
            rules[m.group(1)] = {w.strip(" `") for w in m.group(2).split(",") if w.strip()}
    return rules


def modules():
    """{dotted module name: path} of every project module."""
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            parts = parts[:-1] if parts[-1] == "__init__" else parts
            found["rnnedge." + ".".join(parts)] = path
    return found


def imports(name, path):
    """(imported module, imported names, line) of every import statement in the file."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, (), node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")
                parent = parent[:len(parent) - node.level + 1]
                base = ".".join(parent + ([base] if base else []))
            yield base, tuple(a.name for a in node.names), node.lineno


def target(module):
    """The project package an import points to, or the top-level third-party name."""
    parts = module.split(".")
    if parts[0] == "rnnedge":
        return parts[1] if len(parts) > 1 else "rnnedge"
    return parts[0]


def private(name):
    return name.startswith("_") and not name.endswith("__")


def test_the_readme_has_a_rule_for_every_package():
    assert set(readme_rules()) == set(PACKAGES)


def test_every_import_is_allowed_by_the_readme_table():
    rules, bad = readme_rules(), []
    for name, path in modules().items():
        own = name.split(".")[1]
        for module, _, line in imports(name, path):
            what = target(module)
            if what == own or what in sys.stdlib_module_names or what == "__future__":
                continue
            if what not in rules[own]:
                bad.append(f"{path.relative_to(ROOT)}:{line} imports {module} ({own}/ may import "
                           f"{', '.join(sorted(rules[own]))})")
    assert not bad, "\n".join(bad)


def test_no_import_cycle_among_the_project_modules():
    names = modules()
    graph = defaultdict(set)
    for name, path in names.items():
        for module, imported, _ in imports(name, path):
            submodules = [f"{module}.{n}" for n in imported if f"{module}.{n}" in names]
            # `from . import errors` depends on the submodule, not on the package's __init__
            for candidate in submodules or [module]:
                if candidate in names and candidate != name:
                    graph[name].add(candidate)
    done, stack, cycles = set(), [], []

    def visit(node):
        if node in stack:
            cycles.append(" -> ".join(stack[stack.index(node):] + [node]))
            return
        if node in done:
            return
        stack.append(node)
        for nxt in sorted(graph[node]):
            visit(nxt)
        stack.pop()
        done.add(node)

    for node in sorted(names):
        visit(node)
    assert not cycles, "\n".join(cycles)


def test_no_private_name_is_imported_across_modules():
    bad = [f"{path.relative_to(ROOT)}:{line} imports {n} from {module}"
           for name, path in modules().items()
           for module, imported, line in imports(name, path)
           for n in imported if private(n) and module.startswith("rnnedge")]
    bench = ROOT / "benchmarks"
    for path in sorted(bench.glob("*.py")):
        bad += [f"{path.relative_to(ROOT)}:{line} imports {n} from {module}"
                for module, imported, line in imports("benchmarks." + path.stem, path)
                for n in imported if private(n) and module.startswith("rnnedge")]
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("package", PACKAGES)
def test_modules_stay_small_or_say_why(package):
    """About 350 lines at most, unless the docstring says the file is one idea."""
    long = []
    for path in sorted((ROOT / package).rglob("*.py")):
        lines = path.read_text().count("\n")
        doc = ast.get_docstring(ast.parse(path.read_text())) or ""
        if lines > 350 and "one idea" not in doc.lower():
            long.append(f"{path.relative_to(ROOT)}: {lines} lines")
    assert not long, "\n".join(long)
