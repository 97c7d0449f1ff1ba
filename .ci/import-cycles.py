#!/usr/bin/env python3
"""Fails when modules of src/ import each other in a circle.

Two levels are checked: the top-level modules (`crate::a` used in module b), and the files of
each folder module among themselves (`super::x` or `crate::folder::x` used in a sibling file).
A reference is any path written in the code (`use` lines and inline paths alike); doc comments,
comments and `#[cfg(test)]` modules are skipped, since tests may reach anywhere.
"""
import re
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"


def code_of(path):
    text = path.read_text()
    cut = re.search(r"^#\[cfg\(test\)\]\s*\nmod tests", text, re.M)
    if cut:
        text = text[: cut.start()]
    return "\n".join(line.split("//")[0] for line in text.splitlines())


def top_module(path):
    rel = path.relative_to(SRC)
    return rel.parts[0].removesuffix(".rs")


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
    files = [p for p in SRC.rglob("*.rs") if p.name not in ("lib.rs", "main.rs")]
    top = {}
    inner = {}
    for path in files:
        module = top_module(path)
        code = code_of(path)
        for used in re.findall(r"\bcrate::([a-z_]+)", code):
            if used != module:
                top.setdefault(module, set()).add(used)
        if path.parent != SRC:
            folder = path.parent
            me = path.stem if path.stem != "mod" else None
            siblings = {p.stem for p in folder.glob("*.rs") if p.stem != "mod"}
            refs = set(re.findall(r"\bsuper::([a-z_]+)", code)) if me else set()
            refs |= set(re.findall(r"\bcrate::%s::([a-z_]+)" % folder.name, code))
            for used in refs & siblings:
                if used != me and me:
                    inner.setdefault((folder.name, me), set()).add((folder.name, used))
    problems = cycles(top) + cycles(inner)
    for cycle in problems:
        print("import circle:", " -> ".join(c if isinstance(c, str) else "/".join(c) for c in cycle))
    if problems:
        return 1
    print(f"no import circle among {len(top)} top-level modules and their files")
    return 0


sys.exit(main())
