"""The fast tier (``pytest -m "not slow"``) still tests every module of ``ser/`` and ``ui/``.

Read from the tests' source, not by running them: a module counts as tested when a test that
is not marked ``slow`` names it (or something imported from it), directly or through a helper,
constant or fixture of its file or of conftest.py (a name a module re-exports, such as
``ser.train.prepare``, counts for the module that defines it too); ``python -m ser...`` in an argument list
and ``runpy.run_module(...)`` count for the module they run.
"""

from __future__ import annotations

import ast
import functools
import itertools
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("ser", "ui")


def project_modules() -> set[str]:
    return {
        package if path.stem == "__init__" else f"{package}.{path.stem}"
        for package in PACKAGES
        for path in (ROOT / package).glob("*.py")
    }


MODULES = project_modules()


def _is_slow_mark(node: ast.AST) -> bool:
    """``pytest.mark.slow`` anywhere in ``node`` (a decorator, a list of marks)."""
    return any(
        isinstance(n, ast.Attribute)
        and n.attr == "slow"
        and isinstance(n.value, ast.Attribute)
        and n.value.attr == "mark"
        for n in ast.walk(node)
    )


def _is_fixture(function: ast.FunctionDef) -> bool:
    return any("fixture" in ast.unparse(d) for d in function.decorator_list)


def _dotted(node: ast.expr) -> list[str]:
    """``a.b.c`` as ["a", "b", "c"]; [] for anything else."""
    if isinstance(node, ast.Name):
        return [node.id]
    if isinstance(node, ast.Attribute) and (inner := _dotted(node.value)):
        return [*inner, node.attr]
    return []


def _module_of(dotted: str) -> str | None:
    """The longest project module that ``dotted`` (e.g. "ser.train.prepare") lies in."""
    parts = dotted.split(".")
    for end in range(len(parts), 0, -1):
        if (candidate := ".".join(parts[:end])) in MODULES:
            return candidate
    return None


@functools.cache
def _reexports(module: str) -> dict[str, str]:
    """The names ``module`` imports at its top from other project modules, e.g. ser.train's
    ``prepare`` -> "ser.prepare.prepare": the same object, named through another module."""
    package, _, stem = module.partition(".")
    tree = ast.parse((ROOT / package / f"{stem or '__init__'}.py").read_text())
    found = {}
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module:
            source = f"{package}.{node.module}" if node.level == 1 else node.module
            if source in MODULES:
                found |= {a.asname or a.name: f"{source}.{a.name}" for a in node.names}
    return found


def _modules_of(dotted: str) -> set[str]:
    """The project module ``dotted`` lies in, and those it was re-exported from."""
    found: set[str] = set()
    while (module := _module_of(dotted)) is not None and module not in found:
        found.add(module)
        name = dotted[len(module) + 1 :].partition(".")[0]
        if name not in _reexports(module):
            break
        dotted = _reexports(module)[name]
    return found


def _imports(nodes: list[ast.stmt]) -> dict[str, str]:
    """Local name -> the dotted name it stands for, from the imports among ``nodes``."""
    names: dict[str, str] = {}
    for node in nodes:
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    names[alias.asname] = alias.name
                else:
                    names[alias.name.split(".")[0]] = alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                names[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return names


class ParsedTests:
    """One test file's tests, helpers, constants and fixtures."""

    def __init__(self, path: Path, conftest: ParsedTests | None = None) -> None:
        tree = ast.parse(path.read_text(), str(path))
        self.path, self.conftest = path, conftest
        self.imports = _imports(tree.body)
        self.slow_file = any(
            isinstance(node, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == "pytestmark" for t in node.targets)
            and _is_slow_mark(node.value)
            for node in tree.body
        )
        self.definitions: dict[str, ast.AST] = {}  # helpers, classes and constants by name
        self.fixtures: dict[str, ast.FunctionDef] = {}
        self.tests: list[ast.FunctionDef] = []
        for node in tree.body:
            for function in self._functions(node):
                if _is_fixture(function):
                    self.fixtures[function.name] = function
                elif function.name.startswith("test_"):
                    self.tests.append(function)
            if isinstance(node, ast.FunctionDef | ast.ClassDef):
                self.definitions[node.name] = node
            elif isinstance(node, ast.Assign | ast.AnnAssign):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for target in targets:
                    for name in ast.walk(target):
                        if isinstance(name, ast.Name):
                            self.definitions[name.id] = node

    @staticmethod
    def _functions(node: ast.stmt) -> Iterator[ast.FunctionDef]:
        if isinstance(node, ast.FunctionDef):
            yield node
        elif isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
            yield from (n for n in node.body if isinstance(n, ast.FunctionDef))

    def fast_tests(self) -> list[ast.FunctionDef]:
        if self.slow_file:
            return []
        return [t for t in self.tests if not any(_is_slow_mark(d) for d in t.decorator_list)]

    def modules_named_by(self, function: ast.FunctionDef) -> set[str]:
        """The project modules ``function`` names, through this file's (and conftest's)
        helpers, constants and fixtures."""
        found: set[str] = set()
        seen: set[tuple[str, str]] = set()
        todo: list[tuple[ParsedTests, ast.AST]] = [(self, function)]
        while todo:
            file, node = todo.pop()
            local = _imports(
                [n for n in ast.walk(node) if isinstance(n, ast.Import | ast.ImportFrom)]
            )
            names = {**file.imports, **local}
            for dotted in local.values():  # an import inside the function is a use
                found |= _modules_of(dotted)
            for child in ast.walk(node):
                found.update(self._named(child, names))
                if isinstance(child, ast.Name):
                    for owner in (file, file.conftest):
                        if (
                            owner
                            and child.id in owner.definitions
                            and ((key := (str(owner.path), child.id)) not in seen)
                        ):
                            seen.add(key)
                            todo.append((owner, owner.definitions[child.id]))
                if isinstance(child, ast.arg):  # a fixture asked for by name
                    for owner in (file, file.conftest):
                        if (
                            owner
                            and child.arg in owner.fixtures
                            and ((key := (str(owner.path), child.arg)) not in seen)
                        ):
                            seen.add(key)
                            todo.append((owner, owner.fixtures[child.arg]))
        return found

    @staticmethod
    def _named(node: ast.AST, names: dict[str, str]) -> Iterator[str]:
        if isinstance(node, ast.Attribute | ast.Name):
            parts = _dotted(node)
            if parts and parts[0] in names:
                yield from _modules_of(".".join([names[parts[0]], *parts[1:]]))
        elif (  # runpy.run_module("ser", run_name="__main__"): what `python -m ser` runs
            isinstance(node, ast.Call)
            and _dotted(node.func)[-1:] == ["run_module"]
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and f"{node.args[0].value}.__main__" in MODULES
        ):
            yield f"{node.args[0].value}.__main__"
        elif isinstance(node, ast.List | ast.Tuple) and any(  # [sys.executable, "-m", "ser"]
            _dotted(e) == ["sys", "executable"] for e in node.elts
        ):
            items = [e.value if isinstance(e, ast.Constant) else None for e in node.elts]
            for flag, target in itertools.pairwise(items):
                if flag == "-m" and isinstance(target, str):
                    main = f"{target}.__main__"
                    yield main if main in MODULES else (_module_of(target) or "")


def fast_coverage() -> dict[str, list[str]]:
    """Each project module -> the fast tests that name it."""
    conftest = ParsedTests(ROOT / "tests" / "conftest.py")
    covered: dict[str, list[str]] = {m: [] for m in sorted(MODULES)}
    for path in sorted((ROOT / "tests").glob("test_*.py")):
        file = ParsedTests(path, conftest)
        for test in file.fast_tests():
            for module in file.modules_named_by(test):
                if module in covered:
                    covered[module].append(f"{path.name}::{test.name}")
    for module, tests in covered.items():  # a package runs whenever one of its modules does
        if "." not in module and not tests:
            tests.extend(t for m, ts in covered.items() if m.startswith(f"{module}.") for t in ts)
    return covered


def test_every_module_has_a_fast_test() -> None:
    untested = [module for module, tests in fast_coverage().items() if not tests]
    assert untested == [], f"no test outside the slow tier names {untested}"


def test_the_check_sees_slow_marks_fixtures_and_helpers(tmp_path: Path) -> None:
    (tmp_path / "conftest.py").write_text(
        "import pytest\n"
        "@pytest.fixture\n"
        "def recognizer():\n"
        "    from ser.predict import Recognizer\n"
        "    return Recognizer\n"
    )
    (tmp_path / "test_x.py").write_text(
        "import pytest\n"
        "from ser import store\n"
        "import ser.audio as audio\n"
        "def _helper():\n"
        "    return audio.load_audio\n"
        "@pytest.mark.slow\n"
        "def test_slow():\n"
        "    store.list_models()\n"
        "def test_fast(recognizer):\n"
        "    _helper()\n"
        "def test_runs(tmp_path):\n"
        "    run([sys.executable, '-m', 'ser', 'models'])\n"
        "def test_names_a_command():\n"
        "    assert argv == ['python', '-m', 'ser.bench']\n"
        "def test_runs_in_process():\n"
        "    runpy.run_module('ser', run_name='__main__')\n"
    )
    file = ParsedTests(tmp_path / "test_x.py", ParsedTests(tmp_path / "conftest.py"))
    by_name = {t.name: file.modules_named_by(t) for t in file.fast_tests()}
    assert by_name == {
        "test_fast": {"ser.audio", "ser.predict"},
        "test_runs": {"ser.__main__"},
        "test_names_a_command": set(),  # a command written down is not one run
        "test_runs_in_process": {"ser.__main__"},
    }
