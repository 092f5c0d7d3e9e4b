"""Checks of the Slicer module file, its UI and its build list that need no Slicer application: it compiles, it
imports only what Slicer bundles (never torch, MONAI or the covidal package), every widget it names is in the
.ui file, and CMakeLists.txt lists every CovidActiveLearningLib file."""

from __future__ import annotations

import ast
import py_compile
import re
import shutil
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree

import pytest

MODULE_DIR = Path(__file__).resolve().parents[2]
MODULE_FILE = MODULE_DIR / "CovidActiveLearning.py"
LIB_DIR = MODULE_DIR / "CovidActiveLearningLib"
UI_FILE = MODULE_DIR / "Resources" / "UI" / "CovidActiveLearning.ui"
CMAKE_FILE = MODULE_DIR / "CMakeLists.txt"
LIB_FILES = sorted(LIB_DIR.glob("*.py"))
# What Slicer's Python bundles, and the module's own package. SimpleITK too, but only inside functions.
SLICER_BUNDLED = {"slicer", "vtk", "qt", "ctk", "numpy", "CovidActiveLearningLib"}
NEVER = {"torch", "monai", "covidal"}


def top_level_imports(path: Path) -> list[tuple[int, str]]:
    """``(line, top-level package)`` of every import executed when the file is imported (not those in functions)."""
    imports = []
    for node in _module_level_statements(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            imports += [(node.lineno, alias.name.split(".")[0]) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            imports.append((node.lineno, "." if node.level else node.module.split(".")[0]))
    return imports


def _module_level_statements(tree: ast.AST):
    """Statements run at import: the module's body, descending into if/try/with but not into defs or classes'
    methods (class bodies run at import, so they are included)."""
    pending = list(tree.body)
    while pending:
        node = pending.pop()
        yield node
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            continue
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.stmt) and not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                pending.append(child)
            elif isinstance(child, ast.excepthandler):
                pending.extend(child.body)


def all_imports(path: Path) -> set[str]:
    """Every package the file imports anywhere, functions included."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and not node.level:
            names.add(node.module.split(".")[0])
    return names


def test_the_module_file_compiles(tmp_path):
    py_compile.compile(str(MODULE_FILE), cfile=str(tmp_path / "module.pyc"), doraise=True)


@pytest.mark.parametrize("path", [MODULE_FILE, *LIB_FILES], ids=lambda path: path.name)
def test_imports_at_import_time_are_slicer_bundled(path):
    allowed = SLICER_BUNDLED | set(sys.stdlib_module_names)
    outside = [(line, name) for line, name in top_level_imports(path) if name not in allowed]
    assert not outside, f"{path.name} imports at import time what Slicer does not bundle: {outside}"


@pytest.mark.parametrize("path", [MODULE_FILE, *LIB_FILES], ids=lambda path: path.name)
def test_torch_monai_and_the_covidal_package_are_never_imported(path):
    assert not all_imports(path) & NEVER


def test_the_import_check_sees_what_it_must(tmp_path):
    """The AST walk finds imports nested in if/try at module level and leaves those in functions alone."""
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import os\ntry:\n    import torch\nexcept ImportError:\n    import monai\n"
        "if True:\n    from SimpleITK import ReadImage\n"
        "class A:\n    import json\n    def f(self):\n        import scipy\n"
        "def g():\n    import covidal\n"
    )
    assert sorted(name for _, name in top_level_imports(sample)) == ["SimpleITK", "json", "monai", "os", "torch"]
    assert {"scipy", "covidal"} <= all_imports(sample)


def test_importing_the_whole_lib_loads_neither_torch_nor_monai():
    modules = [f"CovidActiveLearningLib.{path.stem}" for path in LIB_FILES if path.stem != "__init__"]
    script = (
        f"import sys; sys.path.insert(0, {str(MODULE_DIR)!r})\n"
        f"for name in {modules!r}:\n    __import__(name)\n"
        "loaded = sorted(m for m in ('torch', 'monai', 'covidal', 'qt', 'ctk') if m in sys.modules)\n"
        "print('loaded:', loaded, len(sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", script], check=False, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "loaded: []" in result.stdout


def widget_names_in_ui() -> dict[str, str]:
    """objectName -> class of every widget in the .ui file."""
    root = ElementTree.parse(UI_FILE).getroot()
    return {widget.get("name"): widget.get("class") for widget in root.iter("widget")}


def ui_names_the_module_uses() -> set[str]:
    """Every ``self.ui.<name>`` and every name looked up with ``getattr(self.ui, ...)`` from a string literal."""
    tree = ast.parse(MODULE_FILE.read_text())
    names = set()
    for node in ast.walk(tree):
        owner = node.value if isinstance(node, ast.Attribute) else None
        if (
            isinstance(owner, ast.Attribute)
            and owner.attr == "ui"
            and isinstance(owner.value, ast.Name)
            and owner.value.id == "self"
        ):
            names.add(node.attr)
    for dictionary in ("buttons", "BUTTON_ACTIONS"):
        names |= set(_literal_dict(tree, dictionary))
    return names


def _literal_dict(tree: ast.AST, name: str) -> dict:
    """The dict literal assigned to ``name`` (keys and values as written: constants, or the source of names)."""
    node = next(
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign)
        and any(isinstance(target, ast.Name) and target.id == name for target in node.targets)
    )
    return {
        key.value: value.value if isinstance(value, ast.Constant) else ast.unparse(value)
        for key, value in zip(node.value.keys, node.value.values)
    }


def test_every_enabled_button_follows_an_action_state_of_the_logic():
    from dataclasses import fields

    from CovidActiveLearningLib.logic import ActionStates

    states = {field.name for field in fields(ActionStates)}
    button_actions = _literal_dict(ast.parse(MODULE_FILE.read_text()), "BUTTON_ACTIONS")
    assert set(button_actions.values()) <= states
    assert states - set(button_actions.values()) == set()  # every state drives a button


def test_every_shortcut_has_a_widget_slot():
    from CovidActiveLearningLib.shortcuts import SHORTCUTS

    tree = ast.parse(MODULE_FILE.read_text())
    slots = _literal_dict(tree, "SHORTCUT_SLOTS")
    assert set(slots) == {shortcut.action for shortcut in SHORTCUTS}
    widget = next(
        node for node in tree.body if isinstance(node, ast.ClassDef) and node.name == "CovidActiveLearningWidget"
    )
    methods = {node.name for node in widget.body if isinstance(node, ast.FunctionDef)}
    assert set(slots.values()) <= methods


def test_every_widget_the_module_uses_is_in_the_ui():
    in_ui = widget_names_in_ui()
    used = ui_names_the_module_uses()
    assert len(used) > 25
    assert not used - set(in_ui), f"missing from {UI_FILE.name}: {sorted(used - set(in_ui))}"


def test_the_ui_has_the_sections_and_connects_the_scene():
    root = ElementTree.parse(UI_FILE).getroot()
    assert root.find("widget").get("class") == "qMRMLWidget"
    sections = [
        widget.findtext("property[@name='text']/string")
        for widget in root.iter("widget")
        if widget.get("class") == "ctkCollapsibleButton"
    ]
    assert sections == ["Backend", "Project and volume", "Suggestions", "Labelling", "Submit", "Training", "Results"]
    scene_receivers = {
        connection.findtext("receiver")
        for connection in root.iter("connection")
        if connection.findtext("slot") == "setMRMLScene(vtkMRMLScene*)"
    }
    in_ui = widget_names_in_ui()
    assert scene_receivers == {
        name for name, cls in in_ui.items() if cls in ("qMRMLNodeComboBox", "qSlicerMarkupsPlaceWidget")
    }
    custom = {element.findtext("class") for element in root.iter("customwidget")}
    assert {cls for cls in in_ui.values() if not cls.startswith("Q")} <= custom


def test_every_parameter_is_bound_to_one_widget():
    """Each field of the parameter node has exactly one widget with that SlicerParameterName, and vice versa."""
    tree = ast.parse(MODULE_FILE.read_text())
    wrapper = next(
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.ClassDef) and node.name == "CovidActiveLearningParameterNode"
    )
    fields = [node.target.id for node in wrapper.body if isinstance(node, ast.AnnAssign)]
    root = ElementTree.parse(UI_FILE).getroot()
    bound = [prop.findtext("string") for prop in root.iter("property") if prop.get("name") == "SlicerParameterName"]
    assert sorted(bound) == sorted(fields)


def cmake_lib_entries() -> set[str]:
    return set(re.findall(r"^\s*CovidActiveLearningLib/(\w+\.py)\s*$", CMAKE_FILE.read_text(), re.MULTILINE))


def test_cmake_lists_every_lib_file():
    listed = cmake_lib_entries()
    present = {path.name for path in LIB_FILES}
    assert present - listed == set(), f"add these to MODULE_LIB_SCRIPTS in {CMAKE_FILE}: {sorted(present - listed)}"
    assert listed - present == set(), f"listed in {CMAKE_FILE} but missing: {sorted(listed - present)}"


def test_cmake_copies_the_backend_client_where_the_module_looks_for_it():
    from CovidActiveLearningLib.backend_client import CANDIDATES

    text = CMAKE_FILE.read_text()
    copy = re.search(r"set\(COVIDAL_CLIENT_COPY \$\{CMAKE_CURRENT_BINARY_DIR\}/(\S+)\)", text)
    assert copy is not None and copy.group(1) == f"CovidActiveLearningLib/{CANDIDATES[0].name}"
    client = re.search(
        r"configure_file\(\s*\$\{CMAKE_CURRENT_SOURCE_DIR\}/(\S+)\s+\$\{COVIDAL_CLIENT_COPY\}\s+COPYONLY", text
    )
    assert client is not None and (MODULE_DIR / client.group(1)).resolve() == CANDIDATES[1].resolve()
    scripts = re.search(r"set\(MODULE_PYTHON_SCRIPTS([^)]*)\)", text).group(1).split()
    assert scripts == ["${MODULE_NAME}.py", "${MODULE_LIB_SCRIPTS}", "${COVIDAL_CLIENT_COPY}"]


def test_cmake_lists_the_resources_and_generic_tests():
    text = CMAKE_FILE.read_text()
    resources = re.findall(r"^\s*(Resources/\S+)\s*$", text, re.MULTILINE)
    assert resources == ["Resources/Icons/${MODULE_NAME}.png", "Resources/UI/${MODULE_NAME}.ui"]
    for resource in resources:
        assert (MODULE_DIR / resource.replace("${MODULE_NAME}", "CovidActiveLearning")).is_file(), resource
    assert "WITH_GENERIC_TESTS" in text


# Older Slicer: the module must explain itself instead of failing on the core's Python 3.11 code

MODULE_IMPORTS_FOR_EVERY_SLICER = {
    "functools",
    "time",
    "pathlib",
    "qt",
    "slicer",
    "vtk",
    "slicer.ScriptedLoadableModule",
    "slicer.util",
    "CovidActiveLearningLib.compat",
}


def _guard_blocks(tree: ast.Module) -> list[ast.If]:
    """The module-level ``if UNSUPPORTED is None:`` blocks."""
    return [node for node in tree.body if isinstance(node, ast.If) and ast.unparse(node.test) == "UNSUPPORTED is None"]


def test_only_what_every_slicer_has_is_imported_before_the_version_check():
    """Outside the guard the module file imports what Slicer 4.11+ bundles and compat.py; the core (StrEnum, Python
    3.11), ``typing.Annotated`` and ``slicer.parameterNodeWrapper`` are imported only inside it."""
    tree = ast.parse(MODULE_FILE.read_text())
    guarded = {id(node) for block in _guard_blocks(tree) for node in ast.walk(block)}
    unguarded = set()
    for node in tree.body:
        if id(node) in guarded:
            continue
        if isinstance(node, ast.Import):
            unguarded |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            unguarded.add(node.module)
    assert unguarded <= MODULE_IMPORTS_FOR_EVERY_SLICER, unguarded - MODULE_IMPORTS_FOR_EVERY_SLICER
    inside = {
        node.module for block in _guard_blocks(tree) for node in ast.walk(block) if isinstance(node, ast.ImportFrom)
    }
    assert {"typing", "slicer.parameterNodeWrapper", "CovidActiveLearningLib.logic"} <= inside


def test_the_version_check_and_the_module_file_parse_as_slicer_5_8_python():
    """Slicer 5.8 bundles Python 3.9: both files must at least parse there, so the check can run and speak."""
    for path in (MODULE_FILE, LIB_DIR / "compat.py"):
        ast.parse(path.read_text(), str(path), feature_version=(3, 9))
    ast.parse((LIB_DIR / "compat.py").read_text(), feature_version=(3, 6))  # Slicer 4.11's Python


def test_the_widget_and_its_classes_stand_back_when_the_slicer_is_too_old():
    """Everything that needs the core is defined inside the guard, and the widget's entry points return early."""
    tree = ast.parse(MODULE_FILE.read_text())
    guarded = {node.name for block in _guard_blocks(tree) for node in block.body if isinstance(node, ast.ClassDef)}
    assert guarded == {"CovidActiveLearningParameterNode", "CovidActiveLearningLogic"}
    widget = next(
        node for node in tree.body if isinstance(node, ast.ClassDef) and node.name == "CovidActiveLearningWidget"
    )
    for method in widget.body:
        if isinstance(method, ast.FunctionDef) and method.name in {"setup", "cleanup", "enter", "exit"}:
            first = method.body[1] if method.name == "setup" else method.body[0]
            assert isinstance(first, ast.If) and ast.unparse(first.test) == "UNSUPPORTED", method.name


# The extension's addresses: from the repository's GitHub address, never a made-up organisation

REPOSITORY_ROOT = MODULE_DIR.parent
ADDRESSES = REPOSITORY_ROOT / "CMake" / "CovidActiveLearningAddresses.cmake"


def extension_addresses(tmp_path: Path, *definitions: str, source_dir: Path | None = None) -> tuple[dict, str]:
    """Run the addresses file in CMake's script mode; returns ``({variable: value}, CMake's stderr)``."""
    cmake = shutil.which("cmake")
    if cmake is None:
        pytest.skip("cmake is not installed")
    script = tmp_path / "print.cmake"
    script.write_text(
        f"include({ADDRESSES.as_posix()})\n"
        + "".join(
            f'message(STATUS "{name}=${{{name}}}")\n'
            for name in ("EXTENSION_HOMEPAGE", "EXTENSION_ICONURL", "EXTENSION_SCREENSHOTURLS")
        )
    )
    source = [f"-DCOVIDAL_SOURCE_DIR={source_dir}"] if source_dir else []
    result = subprocess.run(
        [cmake, *definitions, *source, "-P", str(script)], check=True, capture_output=True, text=True, timeout=60
    )
    values = dict(line.removeprefix("-- ").split("=", 1) for line in result.stdout.splitlines() if "=" in line)
    return values, result.stderr


def test_the_addresses_come_from_the_given_repository_and_name_every_screenshot(tmp_path):
    values, _ = extension_addresses(tmp_path, "-DCOVIDAL_GITHUB_REPOSITORY=someone/covid-al")
    raw = "https://raw.githubusercontent.com/someone/covid-al/main"
    assert values["EXTENSION_HOMEPAGE"] == "https://github.com/someone/covid-al"
    assert values["EXTENSION_ICONURL"] == f"{raw}/Resources/CovidActiveLearning.png"
    shots = values["EXTENSION_SCREENSHOTURLS"].split()
    assert shots and all(shot.startswith(f"{raw}/Resources/Screenshots/") for shot in shots)
    for address in [values["EXTENSION_ICONURL"], *shots]:  # each names a file of this repository
        assert (REPOSITORY_ROOT / address.removeprefix(f"{raw}/")).is_file(), address


def test_the_addresses_come_from_a_github_origin_and_are_left_empty_without_one(tmp_path):
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    subprocess.run(["git", "init", "-q", str(checkout)], check=True)
    values, warning = extension_addresses(tmp_path, source_dir=checkout)
    assert values == {"EXTENSION_HOMEPAGE": "", "EXTENSION_ICONURL": "", "EXTENSION_SCREENSHOTURLS": ""}
    assert "no GitHub repository known" in warning
    subprocess.run(["git", "-C", str(checkout), "remote", "add", "origin", "git@github.com:owner/repo.git"], check=True)
    values, _ = extension_addresses(tmp_path, source_dir=checkout)
    assert values["EXTENSION_HOMEPAGE"] == "https://github.com/owner/repo"


def test_the_top_level_cmake_names_no_placeholder_address():
    text = (REPOSITORY_ROOT / "CMakeLists.txt").read_text()
    assert "github.com" not in text and "githubusercontent" not in text
    assert "CMake/CovidActiveLearningAddresses.cmake" in text
