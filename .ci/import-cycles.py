#!/usr/bin/env python3
"""Fails when the modules of src/ break their layers or import each other in a circle.

The layers are the table in src/lib.rs's documentation (`//! | N | `a` `b` | … |`): a top-level
module may use only modules of a lower layer (`crate::a` written in module b), and every module
of src/ must be in the table, once. Within each folder module, the files must not import each
other in a circle; a file's imports are the siblings it names by `super::x`, `crate::folder::x`,
grouped forms (`super::{x, y}`) and names a sibling defines that it reaches through the
folder's `mod.rs` (`super::Failure`, defined in failure.rs and re-exported).

A reference is any path written in the code (`use` lines and inline paths alike); comments and
`#[cfg(test)]` modules are skipped, since tests may reach anywhere.
"""
import re
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"
IDENT = r"[A-Za-z_][A-Za-z0-9_]*"


def code_of(path):
    text = path.read_text()
    cut = re.search(r"^#\[cfg\(test\)\]\s*\nmod tests", text, re.M)
    if cut:
        text = text[: cut.start()]
    return "\n".join(line.split("//")[0] for line in text.splitlines())


def layers():
    """Module → layer, from lib.rs's table."""
    table = {}
    for line in (SRC / "lib.rs").read_text().splitlines():
        row = re.match(r"//!\s*\|\s*(\d+)\s*\|([^|]*)\|", line)
        if not row:
            continue
        for module in re.findall(r"`([a-z_]+)`", row.group(2)):
            if module in table:
                sys.exit(f"lib.rs's layer table names {module} twice")
            table[module] = int(row.group(1))
    return table


def first_segments(code, prefix):
    """The first path segment after `prefix::`, and each first segment of a `prefix::{…}` group."""
    found = set()
    for match in re.finditer(prefix + r"::(\{[^}]*\}|" + IDENT + ")", code):
        segment = match.group(1)
        if segment.startswith("{"):
            for item in segment[1:-1].split(","):
                item = item.strip().split("::")[0].split(" as ")[0].strip()
                if item and item != "self":
                    found.add(item)
        else:
            found.add(segment)
    return found


def definitions(folder):
    """Item name → the file of `folder` that defines it (public items only)."""
    defined = {}
    pattern = r"^\s*pub(?:\([a-z]+\))?\s+(?:async\s+)?(?:struct|enum|fn|trait|type|const|static)\s+(" + IDENT + ")"
    for path in sorted(folder.glob("*.rs")):
        if path.stem != "mod":
            for name in re.findall(pattern, code_of(path), re.M):
                defined.setdefault(name, path.stem)
    return defined


def cycles(graph):
    found, state, stack = [], {}, []

    def visit(node):
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                found.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return found


def main():
    problems = []
    table = layers()
    files = [p for p in SRC.rglob("*.rs") if p.name not in ("lib.rs", "main.rs")]
    modules = {p.relative_to(SRC).parts[0].removesuffix(".rs") for p in files}
    for module in sorted(modules - table.keys()):
        problems.append(f"{module} is not in lib.rs's layer table")
    for module in sorted(table.keys() - modules):
        problems.append(f"lib.rs's layer table names {module}, which is not a module of src/")

    for path in sorted(files):
        module = path.relative_to(SRC).parts[0].removesuffix(".rs")
        for used in sorted(first_segments(code_of(path), r"\bcrate") - {module}):
            if used in table and module in table and table[used] >= table[module]:
                problems.append(
                    f"{path.relative_to(SRC.parent)}: {module} (layer {table[module]}) uses {used} "
                    f"(layer {table[used]}): a module may use only lower layers"
                )

    inner = {}
    for folder in sorted({p.parent for p in files} - {SRC}):
        siblings = {p.stem for p in folder.glob("*.rs") if p.stem != "mod"}
        defined = definitions(folder)
        for path in folder.glob("*.rs"):
            me = path.stem
            if me == "mod":
                continue
            code = code_of(path)
            under_crate = "::".join(folder.relative_to(SRC).parts)
            named = first_segments(code, r"\bsuper") | first_segments(code, r"\bcrate::" + under_crate)
            for name in named:
                target = name if name in siblings else defined.get(name)
                if target and target != me:
                    inner.setdefault((folder.name, me), set()).add((folder.name, target))
    for cycle in cycles(inner):
        problems.append("import circle: " + " -> ".join("/".join(c) for c in cycle))

    for problem in problems:
        print(problem)
    if problems:
        return 1
    print(f"{len(modules)} top-level modules in {len(set(table.values()))} layers, each using only lower ones; "
          "no import circle among the files of a folder")
    return 0


sys.exit(main())
