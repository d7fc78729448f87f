"""Find a C function or struct definition by name in a kernel file's text, and check its shape.

Comments, string literals and preprocessor lines are blanked first (offsets kept), so braces and
parentheses match as the compiler sees them; a definition is a top-level `NAME(...) {` (or
`struct NAME {`). Conditional blocks are followed for the configuration given (`#ifdef CONFIG_X`,
`#ifndef`, `#if defined(X)` / `IS_ENABLED(X)`, `#if 0/1`, `#else`, `#endif`; any other condition counts
as taken), so of a header's two versions of a helper (the real one and the !CONFIG_IOMMU_API stub)
the one the build compiles is found. Errors are one line naming the file and the function.
"""

import os
import re
from dataclasses import dataclass


class ExtractError(Exception):
    """A definition the build needs is missing or changed shape (one line: which, and where)."""


@dataclass(frozen=True)
class Definition:
    name: str
    prefix: str          # storage class and return type ("static inline bool"), or "struct"
    params: tuple        # parameter types, names dropped ("struct iommu_iotlb_gather *", ...); struct: ()
    members: tuple       # struct member names; function: ()
    text: str            # the whole definition, as in the file
    line: int            # 1-based line of its name
    kind: str = "function"   # "function", "struct" or "variable" (a file-scope `... NAME = { ... };`)


def blank(text: str) -> str:
    """text with comments, string/char literals and preprocessor lines replaced by spaces (newlines kept)."""
    out = list(text)
    i, n = 0, len(text)
    at_line_start = True

    def wipe(a, b):
        for k in range(a, b):
            if out[k] != "\n":
                out[k] = " "
    while i < n:
        c = text[i]
        if at_line_start and c == "#":
            j = i
            while j < n and text[j] != "\n":
                if text[j] == "\\" and j + 1 < n and text[j + 1] == "\n":
                    j += 1
                elif text.startswith("/*", j):             # a comment inside a directive may span lines
                    e = text.find("*/", j + 2)
                    j = n - 1 if e < 0 else e + 1
                j += 1
            wipe(i, j)
            i = j
            continue
        if c == "\n":
            at_line_start = True
            i += 1
            continue
        if c in " \t":
            i += 1
            continue
        at_line_start = False
        if text.startswith("/*", i):
            e = text.find("*/", i + 2)
            e = n if e < 0 else e + 2
            wipe(i, e)
            i = e
        elif text.startswith("//", i):
            e = text.find("\n", i)
            e = n if e < 0 else e
            wipe(i, e)
            i = e
        elif c in "\"'":
            j = i + 1
            while j < n and text[j] != c:
                j += 2 if text[j] == "\\" else 1
            wipe(i, j + 1)
            i = j + 1
        else:
            i += 1
    return "".join(out)


_DIRECTIVE = re.compile(r"^[ \t]*#[ \t]*(ifdef|ifndef|if|elif|else|endif)\b(.*)$", re.M)


def _condition(kind: str, arg: str, defined: set) -> bool | None:
    """True/False when the condition is decided by `defined`, None when we cannot tell (counts as taken)."""
    arg = re.sub(r"/\*.*?\*/|//.*", "", arg).strip()
    if kind in ("ifdef", "ifndef"):
        return (arg in defined) == (kind == "ifdef")
    m = re.fullmatch(r"(!?)\s*(?:defined\s*\(?\s*(\w+)\s*\)?|IS_ENABLED\s*\(\s*(\w+)\s*\))", arg)
    if m:
        return ((m.group(2) or m.group(3)) in defined) != bool(m.group(1))
    if arg in ("0", "1"):
        return arg == "1"
    return None


def dead_spans(text: str, defined: set) -> list[tuple[int, int]]:
    """The [start, end) character ranges that conditional compilation leaves out for `defined`."""
    spans, stack = [], []          # per open #if: [live outside it, a branch surely taken, a branch maybe taken]
    live, start = True, 0
    for m in _DIRECTIVE.finditer(text):
        kind, arg = m.group(1), m.group(2)
        was = live
        if kind in ("ifdef", "ifndef", "if"):
            c = _condition(kind, arg, defined)
            stack.append([live, c is True, c is None])
        elif kind in ("elif", "else") and stack:
            frame = stack[-1]
            if frame[1]:
                c = False
            elif kind == "elif":
                c = _condition("if", arg, defined)
            else:
                c = None if frame[2] else True
            frame[1] |= c is True
            frame[2] |= c is None
        elif kind == "endif" and stack:
            live = stack.pop()[0]
            c = True
        else:
            continue
        if kind != "endif":
            live = stack[-1][0] and c is not False
        if was and not live:
            start = m.start()
        elif live and not was:
            spans.append((start, m.start()))
    if not live:
        spans.append((start, len(text)))
    return spans


def _match(code: str, i: int, open_: str, close: str) -> int:
    """Index of the bracket closing the one at i (code is blanked), or -1."""
    depth = 0
    for j in range(i, len(code)):
        if code[j] == open_:
            depth += 1
        elif code[j] == close:
            depth -= 1
            if depth == 0:
                return j
    return -1


def _depths(code: str) -> list[int]:
    """Brace depth before each character."""
    out, d = [0] * (len(code) + 1), 0
    for i, c in enumerate(code):
        out[i] = d
        d += (c == "{") - (c == "}")
    out[len(code)] = d
    return out


def _param_type(p: str) -> str:
    """A parameter's type with its name dropped and spacing normalised ("unsigned long iova" -> "unsigned long")."""
    p = " ".join(p.split())
    p = re.sub(r"\(\s*\*\s*\w+\s*\)", "(*)", p)              # function pointer: drop the name
    if p in ("void", "...") or p.endswith(")") or p.endswith("]"):
        return re.sub(r"\s*\*\s*", " *", p).strip()
    m = re.fullmatch(r"(.*?[\s*])(\w+)", p)
    t = m.group(1) if m and m.group(1).strip() not in ("", "struct", "enum", "union", "const") else p
    return re.sub(r"\s*\*\s*", " *", t).strip().replace("* *", "**")


def _split_top(s: str, sep: str) -> list[str]:
    parts, depth, cur = [], 0, []
    for c in s:
        depth += (c in "([{") - (c in ")]}")
        if c == sep and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(c)
    parts.append("".join(cur))
    return [p for p in (x.strip() for x in parts) if p]


def _members(body: str) -> list[str]:
    """Member names of a struct body (blanked); an anonymous struct or union contributes its own."""
    out = []
    for decl in _split_top(body, ";"):
        if "{" in decl:
            inner = decl[decl.index("{") + 1:decl.rindex("}")]
            tail = decl[decl.rindex("}") + 1:].strip()
            out += [w for w in re.findall(r"\w+", tail)] if tail else _members(inner)
            continue
        for d in _split_top(decl, ","):
            fp = re.search(r"\(\s*\*\s*(\w+)\s*\)", d)
            w = [fp.group(1)] if fp else re.findall(r"(\w+)\s*(?:\[[^\]]*\]\s*)*(?::\s*\w+\s*)?$", d)
            if w:
                out.append(w[-1])
    return out


class Source:
    """One kernel file's text, blanked once, seen under a configuration (the CONFIG_* options defined)."""

    def __init__(self, text: str, path: str, defined=()):
        self.text, self.path = text, path
        code = blank(text)
        for a, b in dead_spans(text, set(defined)):           # conditional code the build leaves out
            code = code[:a] + re.sub(r"[^\n]", " ", code[a:b]) + code[b:]
        self.code = code
        self.depth = _depths(code)

    def _line(self, i: int) -> int:
        return self.text.count("\n", 0, i) + 1

    def _start(self, i: int) -> int:
        """Where the declaration holding position i begins: after the previous top-level ; } or {."""
        j = i
        while j > 0 and not (self.code[j - 1] in ";{}" and self.depth[j] <= self.depth[i]):
            j -= 1
        while j < i and self.code[j].isspace():
            j += 1
        return j

    def function(self, name: str) -> Definition:
        """The definition of function `name` (the first one the configuration compiles)."""
        for m in re.finditer(rf"\b{re.escape(name)}\s*\(", self.code):
            if self.depth[m.start()] != 0:
                continue
            close = _match(self.code, m.end() - 1, "(", ")")
            if close < 0:
                continue
            k = close + 1
            while k < len(self.code) and self.code[k].isspace():
                k += 1
            if k >= len(self.code) or self.code[k] != "{":
                continue                                       # a declaration, or a call
            end = _match(self.code, k, "{", "}")
            if end < 0:
                raise ExtractError(f"{self.path}:{self._line(m.start())}: {name}(): no closing brace")
            start = self._start(m.start())
            prefix = " ".join(self.code[start:m.start()].split())
            params = tuple(_param_type(p) for p in _split_top(self.code[m.end():close], ","))
            return Definition(name, prefix, params, (), self.text[start:end + 1], self._line(m.start()))
        raise ExtractError(f"{self.path}: no definition of {name}() (for this configuration)")

    def struct(self, name: str) -> Definition:
        """The definition of `struct name` (the first one the configuration compiles)."""
        for m in re.finditer(rf"\bstruct\s+{re.escape(name)}\s*\{{", self.code):
            if self.depth[m.start()] != 0:
                continue
            end = _match(self.code, m.end() - 1, "{", "}")
            if end < 0:
                raise ExtractError(f"{self.path}:{self._line(m.start())}: struct {name}: no closing brace")
            members = _members(self.code[m.end():end])
            semi = self.code.find(";", end)
            return Definition(name, "struct", (), tuple(members), self.text[m.start():semi + 1],
                              self._line(m.start()), "struct")
        raise ExtractError(f"{self.path}: no definition of struct {name} (for this configuration)")

    def macros(self) -> dict:
        """The file's own object-like and function-like macros, by name: {name: Definition} (kind "macro")."""
        out = {}
        for m in re.finditer(r"^[ \t]*#[ \t]*define[ \t]+([A-Za-z_]\w*)(?:\\\n|.)*", self.text, re.M):
            if self.code[m.start():m.end()].strip() == "" and m.group(1) not in out:
                out[m.group(1)] = Definition(m.group(1), "#define", (), (), m.group(0), self._line(m.start()), "macro")
        return out

    def variable(self, name: str) -> Definition:
        """The definition of a file-scope variable with a brace initializer, e.g. a `static const struct ..._ops`."""
        for m in re.finditer(rf"\b{re.escape(name)}\s*=\s*\{{", self.code):
            if self.depth[m.start()] != 0:
                continue
            end = _match(self.code, m.end() - 1, "{", "}")
            semi = self.code.find(";", end) if end >= 0 else -1
            if semi < 0:
                raise ExtractError(f"{self.path}:{self._line(m.start())}: {name}: no end to its initializer")
            start = self._start(m.start())
            prefix = " ".join(self.code[start:m.start()].split())
            return Definition(name, prefix, (), (), self.text[start:semi + 1], self._line(m.start()), "variable")
        raise ExtractError(f"{self.path}: no definition of {name} (for this configuration)")

    def require_function(self, name: str, params: tuple) -> Definition:
        """function(name), which must take exactly these parameter types, else a one-line ExtractError."""
        d = self.function(name)
        if d.params != tuple(params):
            raise ExtractError(f"{self.path}:{d.line}: {name}({', '.join(d.params)}) changed shape: smmufuzz "
                               f"expects {name}({', '.join(params)})")
        return d

    def require_struct(self, name: str, members: tuple) -> Definition:
        """struct(name), which must have these members, else a one-line ExtractError."""
        d = self.struct(name)
        missing = [f for f in members if f not in d.members]
        if missing:
            raise ExtractError(f"{self.path}:{d.line}: struct {name} changed shape: no member "
                               f"{', '.join(missing)}")
        return d


def check_shapes(path: str, name: str, defined, structs: dict, functions: dict) -> str | None:
    """None if the file at path (called `name` in messages) has these structs (members) and functions (parameter
    types) for the configuration `defined`; else the one line of the first that is missing or changed shape."""
    with open(path, encoding="utf-8", errors="replace") as f:
        src = Source(f.read(), name, defined)
    try:
        for n, members in structs.items():
            src.require_struct(n, members)
        for n, params in functions.items():
            src.require_function(n, params)
    except ExtractError as e:
        return str(e)
    return None


def _calls(body: str) -> set[str]:
    """Names called in a (blanked) function body."""
    return set(re.findall(r"\b([A-Za-z_]\w*)\s*\(", body))


_NOT_A_NAME_END = r"(?!\s*(?:\(|->|\.|\[|\w))"


def _refs(d: Definition) -> set[str]:
    """What a definition uses of the file besides calls: a function's `&name` (e.g. writer ops), a variable
    initializer's `= name` (the functions an ops struct points to)."""
    body = blank(d.text)
    if d.kind == "variable":
        return set(re.findall(r"=\s*([A-Za-z_]\w*)\b" + _NOT_A_NAME_END, body[body.index("{"):]))
    return _calls(body[body.index("("):]) | set(re.findall(r"&\s*([A-Za-z_]\w*)\b" + _NOT_A_NAME_END, body))


def closure(src: Source, needs: dict, optional: dict, max_helpers: int, replaced=()) -> list:
    """The Definitions to extract: `needs` (shape-checked), `optional` where present (shape-checked), and the
    file's functions they call or take the address of and the file-scope variables (ops structs) they point
    to, transitively, except `replaced` (ours stand in for them); in file order.
    Raises ExtractError (one line) for a missing or reshaped one, or a closure over max_helpers helpers."""
    picked = {n: src.require_function(n, p) for n, p in needs.items()}
    for n, p in optional.items():
        try:
            picked[n] = src.require_function(n, p)
        except ExtractError as e:
            if "changed shape" in str(e):
                raise
    todo, helpers = list(picked.values()), []
    macros, used_macros, structs = src.macros(), {}, {}
    while todo:
        d = todo.pop()
        for name in set(re.findall(r"\b[A-Za-z_]\w*\b", blank(d.text))) & set(macros):
            if name not in used_macros:                  # the file's own macros it uses (e.g. NUM_ENTRY_QWORDS)
                used_macros[name] = macros[name]
                todo.append(macros[name])
        if d.kind == "macro":
            continue
        for name in sorted(set(re.findall(r"\bstruct\s+([A-Za-z_]\w*)", blank(d.text))) - set(structs) - {d.name}):
            try:                                         # the file's own structs it uses (e.g. a writer's)
                structs[name] = src.struct(name)
            except ExtractError:
                structs[name] = None                     # a header's
                continue
            todo.append(structs[name])
        for name in sorted(_refs(d) - set(picked) - set(replaced)) if d.kind != "struct" else ():
            try:
                h = src.function(name)
            except ExtractError:
                try:
                    h = src.variable(name)
                except ExtractError:
                    continue                # a macro, a local, or defined in a header
            picked[name] = h
            helpers.append(name)
            if len(helpers) > max_helpers:
                raise ExtractError(f"{src.path}: the extracted functions call more than {max_helpers} helpers of "
                                   f"the file ({', '.join(helpers)}): it changed shape")
            todo.append(h)
    own = sorted(list(used_macros.values()) + [d for d in structs.values() if d is not None], key=lambda d: d.line)
    return own + sorted(picked.values(), key=lambda d: d.line)


def _prototype(d: Definition) -> str:
    """`prefix name(params);` of a definition (its text up to the body)."""
    close = blank(d.text).index("{")
    return " ".join(d.text[:close].split()) + ";"


def write_unit(defs: list, source: str, path: str, banner: str) -> None:
    """Write defs (in order, after prototypes of the static ones) into the C file at path, each with a `#line`
    marker back to `source` (the tree-relative file they came from) so compiler errors and backtraces name it."""
    out = [f"/* {banner}: do not edit */"]
    out += [_prototype(d) for d in defs if d.kind == "function" and d.prefix.split()[0] == "static"]
    own = [d for d in defs if d.kind in ("macro", "struct")]
    out[1:1] = [f'#line {d.line} "{source}"\n{d.text}' for d in own]     # before the prototypes
    for d in defs:
        if d.kind in ("macro", "struct"):
            continue
        out.append(f'#line {d.line - d.text[:d.text.index(d.name)].count(chr(10))} "{source}"')
        out.append(d.text)
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


def generate_unit(tree_dir: str, out_dir: str, source: str, defined, select, generated: str, by: str) -> list[str]:
    """Read `source` of the tree under configuration `defined`, pick its definitions with select(Source), and write
    them to out_dir/generated (write_unit); returns their names. select raises ExtractError (one line)."""
    with open(os.path.join(tree_dir, source), encoding="utf-8", errors="replace") as f:
        src = Source(f.read(), source, defined)
    defs = select(src)
    os.makedirs(out_dir, exist_ok=True)
    write_unit(defs, source, os.path.join(out_dir, generated), f"generated by smmufuzz ({by}) from the tree's {source}")
    return [d.name for d in defs]
