"""The scripts' one way to import a smmufuzz module from this checkout or from a baseline checkout."""


def layout(mod: str):
    """A smmufuzz module by its package path (e.g. "prog.codec"), or by its flat `smmufuzz.harness` path in a
    checkout from before the package layout (issue 16), so that either can be the baseline."""
    import importlib
    try:
        return importlib.import_module("smmufuzz." + mod)
    except ModuleNotFoundError as e:
        if not (e.name or "").startswith(("smmufuzz.prog", "smmufuzz.exec", "smmufuzz.fuzz", "smmufuzz.tools")):
            raise
        return importlib.import_module("smmufuzz.harness." + mod.split(".")[-1])
