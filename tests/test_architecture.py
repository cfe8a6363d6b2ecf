"""The import graph of rnnkit: no circle, and each floor imports only the floors below it (README, Architecture).

Every ``import rnnkit...`` of every module counts, the ones inside functions too (a lazy import
hides a circle from Python, not from a reader); imports under ``if TYPE_CHECKING:`` do not.
A package's ``__init__`` importing its own submodules (re-exporting them) is not an edge back.
A module that imports by name at run time (``import_module``, the task registry) imports every
rnnkit module it names in a string: the registry's ``"rnnkit.tasks.regression"`` is an edge too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "rnnkit"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}
LOADED: dict[str, set[str]] = {}  # module -> the modules it loads by name at run time (filled by imports_of)


def _type_checking_lines(tree: ast.AST) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                lines.update(range(child.lineno, (child.end_lineno or child.lineno) + 1))
    return lines


def _resolve(name: str) -> str | None:
    """The module of a dotted name: itself, or the closest enclosing module (``rnnkit.layers.GRU`` -> rnnkit.layers)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def imports_of(module: str) -> set[str]:
    """The rnnkit modules that ``module`` imports (anywhere in the file, TYPE_CHECKING blocks left out)."""
    path = MODULES[module]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = _type_checking_lines(tree)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if getattr(node, "lineno", None) in skip:
            continue
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative import
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            names = [f"{base}.{a.name}" for a in node.names] + [base]
        for name in names:
            target = _resolve(name) if name.startswith("rnnkit") else None
            if target and target != module and not (path.name == "__init__.py" and target.startswith(module + ".")):
                found.add(target)
    # "from rnnkit.x import y" where y is a module adds both rnnkit.x.y and rnnkit.x; keep the deepest only
    static = {
        t
        for t in found
        if not any(o != t and o.startswith(t + ".") and o in found for o in found) or t in _direct_targets(tree, skip)
    }
    return static | LOADED.setdefault(module, _loaded_by_name(tree) - {module})


def _loaded_by_name(tree: ast.AST) -> set[str]:
    """The rnnkit modules named in the strings of a module that calls ``import_module`` (a plug-in
    load is an import all the same, and no re-export: the package ``__init__`` exemption does not apply)."""
    calls = any(
        isinstance(node, ast.Call) and ast.unparse(node.func).endswith("import_module") for node in ast.walk(tree)
    )
    if not calls:
        return set()
    return {
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in MODULES
    }


def _direct_targets(tree: ast.AST, skip: set[int]) -> set[str]:
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module in MODULES and node.lineno not in skip:
            if any(f"{node.module}.{a.name}" not in MODULES for a in node.names):
                out.add(node.module)
    return out


GRAPH = {m: imports_of(m) for m in MODULES}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_find_cycle_finds_a_circle_and_accepts_a_tree():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_the_import_graph_has_no_circle():
    assert find_cycle(GRAPH) is None, " -> ".join(find_cycle(GRAPH))


def test_imports_inside_functions_and_the_registrys_loads_are_edges(tmp_path):
    # A function-level import and an import_module of a named module both count: the circle that
    # config -> (inside a function) tasks -> (registry) tasks.regression -> config once made.
    source = (
        "from importlib import import_module\n"
        "TASKS = {'regression': 'rnnkit.tasks.regression'}\n"
        "def task_class(name):\n"
        "    from rnnkit.config import ExperimentConfig\n"
        "    return import_module(TASKS[name]).TASK\n"
    )
    tree = ast.parse(source)
    assert _loaded_by_name(tree) == {"rnnkit.tasks.regression"}
    assert _loaded_by_name(ast.parse("TASKS = {'regression': 'rnnkit.tasks.regression'}\n")) == set()
    graph = {
        "rnnkit.config": {"rnnkit.tasks"},
        "rnnkit.tasks": _loaded_by_name(tree),
        "rnnkit.tasks.regression": {"rnnkit.config"},
    }
    assert find_cycle(graph) == ["rnnkit.config", "rnnkit.tasks", "rnnkit.tasks.regression", "rnnkit.config"]
    assert GRAPH["rnnkit.tasks"] >= set(TASK_MODULES) - {"rnnkit.tasks.forecasters"}


def _reached_from(module: str) -> set[str]:
    seen, todo = set(), [module]
    while todo:
        for nxt in GRAPH.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def test_the_config_schema_imports_no_task():
    # Each task checks its own part of a parsed config (rnnkit.tasks.check_config): the schema
    # reaches neither the registry nor a task module, directly, inside a function or through another module.
    wrong = sorted(m for m in _reached_from("rnnkit.config") if m == "rnnkit.tasks" or m.startswith("rnnkit.tasks."))
    assert not wrong, f"rnnkit.config reaches {wrong}"


TASK_MODULES = sorted(
    m for m in MODULES if m.startswith("rnnkit.tasks.") and m.rsplit(".", 1)[1] not in ("base", "series")
)
COMMAND_LAYER = {"rnnkit.experiment", "rnnkit.cli", "rnnkit.demo"}


def test_the_registry_names_a_module_for_every_task_and_each_is_a_task_module():
    from rnnkit.tasks import TASKS

    assert sorted(TASKS.values()) == sorted(set(TASKS.values()))
    assert set(TASKS.values()) <= set(TASK_MODULES)


@pytest.mark.parametrize("module", TASK_MODULES)
def test_a_task_module_imports_nothing_from_the_command_layer(module):
    # A task may build on another (quantile extends regression); the circle test keeps that one-way.
    wrong = GRAPH[module] & COMMAND_LAYER
    assert not wrong, f"{module} imports {sorted(wrong)}"


@pytest.mark.parametrize("module", [*TASK_MODULES, "rnnkit.tasks.base", "rnnkit.tasks.series"])
def test_a_task_module_imports_nothing_from_the_runner(module):
    # The runner (rnnkit.runs) calls the tasks; what both use (tables, the best-model rule,
    # reading a trained model back) lives beneath both, in rnnkit.results.
    wrong = GRAPH[module] & {"rnnkit.runs", "rnnkit.experiment"}
    assert not wrong, f"{module} imports {sorted(wrong)}"


@pytest.mark.parametrize(
    "module", ["rnnkit.experiment", "rnnkit.runs", "rnnkit.tasks", "rnnkit.tasks.base", "rnnkit.tasks.series"]
)
def test_the_runner_imports_no_task_module_by_name(module):
    # The registry's names of the task modules are its job: loads by name are not imports by name.
    wrong = (GRAPH[module] - LOADED[module]) & set(TASK_MODULES)
    assert not wrong, f"{module} imports {sorted(wrong)}"


# The one edge from models to training: Keras's compile/fit/evaluate/predict/save, the base class of every model.
# It knows no model class (training imports no model), so the graph keeps its floors.
MODELS_MAY_IMPORT = {"rnnkit.training.keras_api"}


@pytest.mark.parametrize(
    ("floor", "forbidden"),
    [
        (
            "rnnkit.layers",
            (
                "rnnkit.data",
                "rnnkit.datasets",
                "rnnkit.training",
                "rnnkit.tasks",
                "rnnkit.experiment",
                "rnnkit.runs",
                "rnnkit.cli",
                "rnnkit.config",
            ),
        ),
        (
            "rnnkit.training",
            (
                "rnnkit.datasets",
                "rnnkit.tasks",
                "rnnkit.experiment",
                "rnnkit.runs",
                "rnnkit.cli",
                "rnnkit.config",
                "rnnkit.models",
            ),
        ),
        ("rnnkit.data", ("rnnkit.datasets", "rnnkit.training", "rnnkit.tasks", "rnnkit.experiment", "rnnkit.cli")),
        # the model families (forecasters, generators, language, taggers) are built from layers only
        (
            "rnnkit.models",
            (
                "rnnkit.datasets",
                "rnnkit.training",
                "rnnkit.baselines",
                "rnnkit.tasks",
                "rnnkit.experiment",
                "rnnkit.runs",
                "rnnkit.cli",
                "rnnkit.config",
            ),
        ),
        (
            "rnnkit.baselines",
            ("rnnkit.datasets", "rnnkit.tasks", "rnnkit.experiment", "rnnkit.runs", "rnnkit.cli", "rnnkit.config"),
        ),
    ],
)
def test_the_lower_floors_import_nothing_above_them(floor, forbidden):
    for module, targets in GRAPH.items():
        if module == floor or module.startswith(floor + "."):
            wrong = sorted(
                t
                for t in targets
                if any(t == f or t.startswith(f + ".") for f in forbidden)
                and not (floor == "rnnkit.models" and t in MODELS_MAY_IMPORT)
            )
            assert not wrong, f"{module} imports {wrong}"


def test_the_package_top_level_holds_no_model_family_or_task_glue():
    # Where each concern lives (README, Architecture): model families under models/, a task's config
    # path under tasks/, scripted studies under examples/. The old top-level homes stay gone.
    moved = {
        "forecasting",
        "generation",
        "language",
        "tagging",
        "text",
        "multistep",
        "sequence_tasks",
        "weather_tasks",
        "classification",
    }
    assert not {f"rnnkit.{name}" for name in moved} & set(MODULES)
