"""Load programs from files: text programs (parsed) or raw fuzz inputs (decoded), told apart by the file name.

A file whose name ends in `.txt` is a text program; any other file is raw fuzzer bytes, whatever it contains
(libFuzzer names its inputs by their SHA-1, with no extension, and any byte string is a valid raw program,
some of them valid UTF-8 that reads like text: contents cannot tell the two apart).
"""

import os
import re

from .codec import decode
from .program import KIND_BY_NAME, Program, parse

_TEXTY = re.compile(r"^\s*(#|config\s*\(|(" + "|".join(KIND_BY_NAME) + r")\s*\()")


class LoadError(Exception):
    """A file that cannot be used as a program (one-line message)."""


TEXT_SUFFIX = ".txt"


def is_text_path(path: str) -> bool:
    """Whether a file holds a text program (its name ends in .txt) rather than raw fuzzer bytes."""
    return os.path.basename(path).endswith(TEXT_SUFFIX)


def looks_like_text(data: bytes) -> bool:
    """Whether raw bytes read like a text program (for a note when a text program lacks its .txt name)."""
    try:
        s = data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    first = next((ln for ln in s.splitlines() if ln.strip()), "")
    return bool(_TEXTY.match(first))


def header_fields(text: str) -> dict[str, str]:
    """'# key: value' lines at the top of a text reproducer (target, variant, finding, ...)."""
    out = {}
    for ln in text.splitlines():
        m = re.match(r"^\s*#\s*([a-z_-]+)\s*:\s*(.*?)\s*$", ln)
        if m:
            out.setdefault(m.group(1), m.group(2))
        elif ln.strip():
            break
    return out


def load_program(path: str) -> tuple[Program, dict[str, str]]:
    """Returns (program, header fields). Text that does not parse is an error with line and column."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise LoadError(f"{path}: cannot read: {e.strerror}") from None
    if is_text_path(path):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as e:
            raise LoadError(f"{path}: not UTF-8 text (byte {e.start}); raw fuzzer inputs have no .txt name") from None
        try:
            return parse(text), header_fields(text)
        except ValueError as e:
            raise LoadError(f"{path}: {e}") from None
    return decode(data), {}


def misread_note(path: str) -> str | None:
    """A one-line note when a file without a .txt name reads like a text program (it is decoded as raw bytes)."""
    if is_text_path(path):
        return None
    try:
        with open(path, "rb") as f:
            data = f.read(4096)
    except OSError:
        return None
    if looks_like_text(data):
        return f"{path}: read as raw fuzzer bytes (a text program needs a name ending in {TEXT_SUFFIX})"
    return None


def program_files(path: str) -> list[str]:
    """A file, or every non-hidden regular file below a directory (sorted)."""
    if os.path.isdir(path):
        try:
            out = []
            for root, dirs, files in os.walk(path, onerror=_raise):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                out += [os.path.join(root, f) for f in sorted(files) if not f.startswith(".")]
            return out
        except OSError as e:
            raise LoadError(f"{path}: cannot read directory: {e.strerror}") from None
    if not os.path.exists(path):
        raise LoadError(f"{path}: no such file or directory")
    return [path]


def _raise(e):
    raise e
