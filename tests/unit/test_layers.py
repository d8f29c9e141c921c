"""The server's folders are its layers (README, Architecture): imports only point down.

transport -> pipeline -> media | inference -> observability, and the top-level modules
(catalog, domain, errors, settings) serve them all. Only the transport knows gRPC's servicer
side and the protobuf contract; the pipeline and media never import grpc.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "server" / "a2v_server"
LAYERS = ("transport", "pipeline", "inference", "media", "observability")
#: what each part may not import (a2v_server subpackages, or other top-level packages)
FORBIDDEN = {
    "transport": set(),
    "pipeline": {"a2v_server.transport", "grpc", "a2v"},
    "inference": {"a2v_server.transport", "a2v_server.pipeline", "a2v"},
    "media": {
        "a2v_server.transport",
        "a2v_server.pipeline",
        "a2v_server.inference",
        "a2v_server.observability",
        "grpc",
        "a2v",
    },
    "observability": {
        "a2v_server.transport",
        "a2v_server.pipeline",
        "a2v_server.inference",
        "a2v_server.media",
    },
    # catalog, domain, errors, settings
    "top": {
        "a2v_server.transport",
        "a2v_server.pipeline",
        "a2v_server.inference",
        "a2v_server.observability",
        "grpc",
        "a2v",
    },
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            assert node.level == 0, f"{path.name}: relative import (the tree uses absolute ones)"
            names.add(node.module)
            # "from a2v_server import pipeline" imports a layer too
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _modules() -> list[tuple[str, Path]]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).parts
        layer = relative[0] if len(relative) > 1 else "top"
        if layer == "top" and path.stem == "main":
            continue  # the entry point wires every layer together
        found.append((layer, path))
    return found


def test_every_module_lives_in_a_known_layer():
    layers = {layer for layer, _ in _modules()}
    assert layers == {*LAYERS, "top"}


@pytest.mark.parametrize(
    ("layer", "path"), _modules(), ids=lambda v: v.name if isinstance(v, Path) else v
)
def test_imports_point_down(layer, path):
    wrong = {
        name
        for name in _imports(path)
        for banned in FORBIDDEN[layer]
        if name == banned or name.startswith(banned + ".")
    }
    assert not wrong, f"{path.relative_to(PACKAGE)} ({layer}) imports {sorted(wrong)}"
