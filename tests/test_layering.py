"""The package layering of docs/architecture.md: every smmufuzz module imports only its own layer and those
below it (reference < variants and kernel < prog < exec < fuzz < tools < cli), lazily inside functions too.
variants/ and kernel/ are one layer: the kc-* variants build the tree's C, whose drivers extend the models."""

import ast
import os

import smmufuzz

ROOT = os.path.dirname(smmufuzz.__file__)
LAYERS = (("known_findings",), ("reference",), ("variants", "kernel"), ("prog",), ("exec",), ("fuzz",), ("tools",),
          ("cli",))


def layer(module: str) -> int:
    """The layer of a dotted module inside smmufuzz ("smmufuzz.prog.codec" -> prog's)."""
    top = module.split(".")[1]
    return next(i for i, names in enumerate(LAYERS) if top in names)


def modules():
    for dirpath, _dirs, files in os.walk(ROOT):
        for f in files:
            if f.endswith(".py"):
                path = os.path.join(dirpath, f)
                rel = os.path.relpath(path, os.path.dirname(ROOT))[:-3].replace(os.sep, ".")
                yield path, rel.removesuffix(".__init__")


def imports(path: str, module: str):
    """Every smmufuzz module `module` imports, absolute or relative, at any depth of its code."""
    package = module if path.endswith("__init__.py") else module.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(open(path).read())):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names if a.name.startswith("smmufuzz."))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1] + ([base] if base else []))
            if not base.startswith("smmufuzz"):
                continue
            if base == "smmufuzz":
                yield from (f"smmufuzz.{a.name}" for a in node.names)
            else:
                yield base


def test_no_module_imports_a_layer_above_its_own():
    upward = []
    for path, module in modules():
        if module == "smmufuzz":
            continue
        for target in imports(path, module):
            if target.count(".") >= 1 and layer(target) > layer(module):
                upward.append(f"{module} imports {target}")
    assert upward == []


def test_the_check_sees_relative_and_lazy_imports(tmp_path):
    src = tmp_path / "x.py"
    src.write_text("def f():\n    from ..fuzz.campaign import Campaign\n    from .. import cli\n")
    assert set(imports(str(src), "smmufuzz.prog.x")) == {"smmufuzz.fuzz.campaign", "smmufuzz.cli"}
