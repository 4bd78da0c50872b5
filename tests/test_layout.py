"""The layout's rules that code can check: the top-level modules import each other without a cycle
(imports inside functions count too), and no module imports train.py."""

import ast

from conftest import REPO

MODULES = {path.stem: path for path in REPO.glob("*.py")}


def imported(path) -> set[str]:
    """The repository modules that a file imports, anywhere in it."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names & MODULES.keys()


def test_modules_import_without_a_cycle():
    graph = {name: imported(path) - {name} for name, path in MODULES.items()}
    done, path = set(), []

    def visit(name):  # depth first; a module met again on the current path closes a cycle
        assert name not in path, " -> ".join(path[path.index(name) :] + [name])
        if name not in done:
            path.append(name)
            for other in sorted(graph[name]):
                visit(other)
            path.pop()
            done.add(name)

    for name in sorted(graph):
        visit(name)
    assert {"train", "model", "decode"} <= done


def test_no_module_imports_train():
    """train.py is a command: the modules it runs hold what others need (benches may time its step)."""
    assert [name for name, path in MODULES.items() if "train" in imported(path) and name != "train"] == []
