"""A catalog document's YAML, read as untrusted input: bounded in size and in what its aliases expand to."""

from __future__ import annotations

from typing import Any

import yaml

from deployflow.errors import ConfigError

# libyaml's safe loader where PyYAML was built with it (PyPI's wheels are): a catalog file loads about ten
# times faster, which every DAG file parse pays.
YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
MAX_FILE_BYTES = 64 * 1024  # a service's file is a few KB; the sample's is 2
MAX_NODES = 20_000  # values of a file as expanded: the sample has about 100


def read_yaml(text: str) -> Any:
    """A catalog file's YAML as plain data; ConfigError (path ``(file)``) for one that is not.

    The file is untrusted input, read by the scheduler's routing policy, the dag-processor and every task:
    anything that makes reading it costly is refused before it is built. An alias (``*name``) is the node it
    names again, so a few hundred bytes of nested aliases stand for gigabytes to anything that walks or prints
    the value: the document is composed (aliases stay shared), its size as expanded is counted once per node,
    and one over :data:`MAX_NODES` is refused. A file over :data:`MAX_FILE_BYTES` is refused unread. (PyYAML's
    own dumper writes anchors and aliases for a value it meets twice: a generated file may have some.)
    """
    size = len(text.encode())
    if size > MAX_FILE_BYTES:
        raise ConfigError("(file)", f"is {size:,} bytes; a catalog file is at most {MAX_FILE_BYTES:,}")
    loader = YAML_LOADER(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if expanded_size(node) > MAX_NODES:
            raise ConfigError("(file)", f"stands for more than {MAX_NODES:,} values once its YAML aliases are expanded "
                              "(a catalog file is at most that: write the values out, or alias less)")
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        raise ConfigError("(file)", f"is not valid YAML: {exc}") from exc
    finally:
        loader.dispose()


def expanded_size(root: yaml.Node) -> int:
    """How many nodes the document has with every alias expanded, counted without expanding (each node once;
    past :data:`MAX_NODES` the count stops growing)."""
    sizes: dict[int, int] = {}
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        if id(node) in sizes:
            continue
        children = ([n for pair in node.value for n in pair] if isinstance(node, yaml.MappingNode)
                    else list(node.value) if isinstance(node, yaml.SequenceNode) else [])
        if children_done or not children:
            sizes[id(node)] = min(1 + sum(sizes[id(c)] for c in children), MAX_NODES + 1)
            continue
        stack.append((node, True))
        stack.extend((c, False) for c in children if id(c) not in sizes)
    return sizes[id(root)]
