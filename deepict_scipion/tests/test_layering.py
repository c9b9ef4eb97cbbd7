"""The plugin's floors: it imports no torch, its protocols do not borrow from each other, its viewers use
protocols only through their classes and public methods.

Scipion's own Python need not have torch (a site may install the engine with torch in an environment of its
own), so every module of the plugin must import where torch cannot, and every engine module the plugin
imports, even inside a function, must too. Protocols share code through the shared modules (the base
module, convert, objects, constants), never by importing another protocol's module; a viewer imports a
protocol's class (its ``_targets``) and calls its public methods, never a protocol module's helpers or
private names. The import graph is read from the source (``ast``), so a late import inside a function
counts as well.
"""

import ast
import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import pyworkflow.protocol

import deepict_scipion

PACKAGE = deepict_scipion.__name__
ROOT = Path(deepict_scipion.__file__).parent
PROTOCOLS = f"{PACKAGE}.protocols"
VIEWERS = f"{PACKAGE}.viewers"


def plugin_modules():
    """{module name: source path} of every module of the plugin except its tests."""
    modules = {PACKAGE: ROOT / "__init__.py"}
    for info in pkgutil.walk_packages([str(ROOT)], prefix=f"{PACKAGE}."):
        if ".tests" in info.name or info.name.endswith(".tests"):
            continue
        relative = Path(*info.name.split(".")[1:])
        modules[info.name] = ROOT / relative / "__init__.py" if info.ispkg else ROOT / relative.with_suffix(".py")
    return modules


MODULES = plugin_modules()


def imports(module):
    """[(imported module, imported name or None, line)] of every import statement anywhere in ``module``.

    ``from package import name`` yields the submodule ``package.name`` when ``name`` is a module of the
    plugin, else ``(package, name)``.
    """
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, None, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                found.append((submodule, None, node.lineno) if submodule in MODULES else
                             (base, alias.name, node.lineno))
    return found


def protocol_modules():
    """The modules that define the plugin's protocols: those the protocols package imports its classes from.
    The other modules of the package (the base module, helpers) are shared and may be imported."""
    return {name for name, _, _ in imports(PROTOCOLS) if name.startswith(f"{PROTOCOLS}.")}


def protocol_classes():
    return {name for _, name, _ in imports(PROTOCOLS) if name}


def test_the_walk_finds_the_plugin():
    """The checks below cover the real plugin (an empty walk would pass them vacuously)."""
    assert {PACKAGE, f"{PACKAGE}.objects", f"{PACKAGE}.convert", f"{PACKAGE}.demo", f"{PACKAGE}.headless",
            PROTOCOLS, VIEWERS} <= set(MODULES)
    assert len(protocol_modules()) >= 9 and all(name.startswith(f"{PROTOCOLS}.protocol_") for name in protocol_modules())
    assert {"ProtDeepictPick", "ProtDeepictTrain3D", "ProtDeepictEqualize"} <= protocol_classes()


#: Imports every module of argv[1] (a JSON list) with torch unimportable, records every attempt to import it
#: (a guarded ``try: import torch`` counts), and prints the engine modules that got loaded.
WITHOUT_TORCH = """
import builtins, importlib, json, sys, traceback

sys.modules["torch"] = None
attempts = []
real_import = builtins.__import__

def recording_import(name, globals=None, locals=None, fromlist=(), level=0):
    if level == 0 and name.split(".")[0] == "torch":
        attempts.append((globals or {}).get("__name__", "?"))
    return real_import(name, globals, locals, fromlist, level)

builtins.__import__ = recording_import
failures = {}
for name in json.loads(sys.argv[1]):
    try:
        importlib.import_module(name)
    except Exception:
        failures[name] = traceback.format_exc(limit=-4)
if "deepict_scipion" in sys.modules:
    getattr(sys.modules["deepict_scipion"], "Plugin")  # the Plugin class is built on first access
engine = sorted(m for m, module in sys.modules.items() if module is not None and m.split(".")[0] == "deepict")
print(json.dumps({"failures": failures, "attempts": sorted(set(attempts)), "engine": engine}))
"""


def import_without_torch(modules):
    # The environment is the tests' headless Scipion setup (conftest.py).
    result = subprocess.run([sys.executable, "-c", WITHOUT_TORCH, json.dumps(sorted(modules))],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_every_plugin_module_imports_without_torch():
    report = import_without_torch(MODULES)
    assert not report["failures"], "\n".join(f"{name}:\n{error}" for name, error in report["failures"].items())
    assert not report["attempts"], f"modules that try to import torch: {report['attempts']}"


def test_the_engine_modules_the_plugin_imports_need_no_torch():
    """Every engine module named by an import of the plugin, at module level or inside a function, imports
    where torch cannot: a late import is still made in Scipion's Python, when the protocol runs it."""
    engine = {name for module in MODULES for name, _, _ in imports(module) if name.split(".")[0] == "deepict"}
    assert "deepict.io" in engine  # the plugin reads and writes coordinates with the engine's io
    report = import_without_torch(engine)
    assert not report["failures"], "\n".join(f"{name}:\n{error}" for name, error in report["failures"].items())
    assert not report["attempts"], f"engine modules that try to import torch: {report['attempts']}"


def test_protocols_do_not_import_each_other():
    protocols = protocol_modules()
    borrowed = [f"{module.rpartition('.')[2]}.py:{line} imports {name}"
                f"{'.' + imported if imported else ''}"
                for module in MODULES if module.startswith(f"{PROTOCOLS}.")
                for name, imported, line in imports(module) if name in protocols and name != module]
    assert not borrowed, ("a protocol module imports another protocol module; move what they share into a shared "
                          "module (the base module, convert, objects, constants):\n" + "\n".join(borrowed))


def test_lower_modules_import_no_protocol_or_viewer():
    """objects, convert, constants, the shared protocol modules and the package itself sit below the
    protocols and viewers: they import neither (only the protocols package, the viewers and the demo may)."""
    upper = protocol_modules() | {PROTOCOLS} | {m for m in MODULES if m == VIEWERS or m.startswith(f"{VIEWERS}.")}
    users = {PROTOCOLS, f"{PACKAGE}.demo"} | {m for m in MODULES if m == VIEWERS or m.startswith(f"{VIEWERS}.")}
    wrong = [f"{module}:{line} imports {name}" for module in MODULES if module not in users | protocol_modules()
             for name, _, line in imports(module) if name in upper]
    assert not wrong, "\n".join(wrong)


def private_names(modules):
    """Private names (functions, classes, methods, assigned names) defined in ``modules``."""
    names = set()
    for module in modules:
        for node in ast.walk(ast.parse(MODULES[module].read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, ast.Assign):
                names.update(t.id for t in node.targets if isinstance(t, ast.Name))
    return {n for n in names if n.startswith("_") and not n.startswith("__")}


def test_viewers_use_protocols_only_through_their_classes_and_public_methods():
    protocols, classes = protocol_modules(), protocol_classes()
    # Scipion's own private-looking methods (_getExtraPath, _summary, ...) are its interface, not ours.
    ours = {n for n in private_names(m for m in MODULES if m.startswith(f"{PROTOCOLS}."))
            if not hasattr(pyworkflow.protocol.Protocol, n)}
    problems = []
    for module in (m for m in MODULES if m == VIEWERS or m.startswith(f"{VIEWERS}.")):
        where = MODULES[module].name
        for name, imported, line in imports(module):
            if (name in protocols or name == PROTOCOLS) and imported not in classes:
                problems.append(f"{where}:{line} imports {imported or name} from {name}: a viewer imports protocol "
                                "classes only; helpers they share belong in a shared module (convert, objects)")
        private = ours - private_names([module])  # a viewer's own helper may share a protocol's name
        for node in ast.walk(ast.parse(MODULES[module].read_text())):
            if isinstance(node, ast.Attribute) and node.attr in private:
                problems.append(f"{where}:{node.lineno} uses {node.attr}, private to a protocol module")
    assert not problems, "\n".join(problems)
