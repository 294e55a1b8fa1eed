#!/usr/bin/env python3
"""Fails when the crate's imports go against its layers.

src/lib.rs lists the top-level modules bottom to top, in the order the data flows. A
module may use only modules listed before it in lib.rs (and its own submodules); any
`crate::<module>` path in non-test code that points at a module listed after it, or a cycle
among them, is an error. Test code (`#[cfg(test)]` items) may reach anywhere.

    python3 scripts/check-layers.py          # exit 0 when the house is one-way, 1 otherwise
    python3 scripts/check-layers.py --graph  # print the module graph as edges
"""

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src"

MOD_DECL = re.compile(r"^\s*(?:pub(?:\([a-z]+\))?\s+)?mod\s+([a-z_][a-z0-9_]*)\s*;", re.M)
CRATE_PATH = re.compile(r"\bcrate::([a-z_][a-z0-9_]*)")
# `use crate::{a, b::c}` names several top-level modules at once.
CRATE_GROUP = re.compile(r"\bcrate::\{([^;]*?)\}", re.S)


def layer_order() -> list[str]:
    text = (SRC / "lib.rs").read_text()
    return MOD_DECL.findall(text)


def files_of(module: str) -> list[Path]:
    single = SRC / f"{module}.rs"
    if single.exists():
        return [single]
    return sorted((SRC / module).rglob("*.rs"))


def without_tests(text: str) -> str:
    """Drops every item behind `#[cfg(test)]`: a `mod … { … }` block by its braces, any
    other item through its first `;` or balanced block."""
    out = []
    i = 0
    marker = "#[cfg(test)]"
    while True:
        j = text.find(marker, i)
        if j < 0:
            out.append(text[i:])
            break
        out.append(text[i:j])
        k = j + len(marker)
        depth = 0
        while k < len(text):
            ch = text[k]
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
                if depth == 0:
                    k += 1
                    break
            elif ch == ";" and depth == 0:
                k += 1
                break
            k += 1
        i = k
    return "".join(out)


def without_comments(text: str) -> str:
    text = re.sub(r"//[^\n]*", "", text)
    return re.sub(r"/\*.*?\*/", "", text, flags=re.S)


def edges(order: list[str]) -> dict[str, set[str]]:
    known = set(order)
    graph: dict[str, set[str]] = {m: set() for m in order}
    for module in order:
        for path in files_of(module):
            code = without_comments(without_tests(path.read_text()))
            targets = set(CRATE_PATH.findall(code))
            for group in CRATE_GROUP.findall(code):
                targets.update(re.findall(r"(?:^|,)\s*([a-z_][a-z0-9_]*)", group))
            for target in targets:
                if target in known and target != module:
                    graph[module].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    found, state, stack = [], {}, []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                found.append(stack[stack.index(nxt) :] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in graph:
        if node not in state:
            visit(node)
    return found


def main() -> int:
    order = layer_order()
    if not order:
        print("check-layers: no modules declared in src/lib.rs", file=sys.stderr)
        return 1
    graph = edges(order)
    if "--graph" in sys.argv:
        for module in order:
            for target in sorted(graph[module], key=order.index):
                print(f"{module} -> {target}")
        return 0
    rank = {m: i for i, m in enumerate(order)}
    upward = [(m, t) for m in order for t in sorted(graph[m], key=order.index) if rank[t] > rank[m]]
    loops = cycles(graph)
    for m, t in upward:
        print(
            f"check-layers: `{m}` uses `{t}`, a higher layer (listed after it in src/lib.rs)",
            file=sys.stderr,
        )
    for loop in loops:
        print(f"check-layers: import cycle: {' -> '.join(loop)}", file=sys.stderr)
    if upward or loops:
        return 1
    print(
        f"check-layers: {len(order)} modules, {sum(map(len, graph.values()))} edges, all downward"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
