"""The scripts' one way to import a smmufuzz module from this checkout or from a baseline checkout."""


def layout(mod: str):
    """A smmufuzz module by its package path (e.g. "prog.codec"), or by its flat `smmufuzz.harness` path in a
    checkout from before the package layout (issue 16), so that either can be the baseline. The layout is read
    from the checkout's own tree: an import that fails there would be answered by the editable install's finder
    with this checkout's module, mixing the two."""
    import importlib
    import os

    import smmufuzz
    flat = os.path.isdir(os.path.join(os.path.dirname(smmufuzz.__file__), "harness"))
    return importlib.import_module("smmufuzz.harness." + mod.split(".")[-1] if flat else "smmufuzz." + mod)
