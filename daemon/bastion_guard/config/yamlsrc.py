"""Safe YAML loading that remembers where every key was written.

PyYAML's safe loader forgets positions and silently lets a repeated key win; both hide mistakes. Here
every mapping becomes a :class:`Located` dict that knows the line and column of each key and of itself,
and a repeated key is an error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from bastion_guard.errors import ConfigError, ConfigProblem, Location


class Located(dict[str, Any]):
    """A mapping from a YAML file with the position of each key (and of the mapping itself)."""

    def __init__(self, location: Location) -> None:
        super().__init__()
        self.location = location
        self.key_locations: dict[str, Location] = {}

    def where(self, key: str) -> Location:
        """The position of ``key`` if it was written, else that of the mapping."""
        return self.key_locations.get(key, self.location)


class _Loader(yaml.SafeLoader):
    """SafeLoader that builds :class:`Located` mappings and rejects duplicate keys."""

    def __init__(self, stream: str, path: str) -> None:
        super().__init__(stream)
        self.path = path
        self.problems: list[ConfigProblem] = []

    def located_mapping(self, node: yaml.MappingNode) -> Located:
        mapping = Located(_location(self.path, node.start_mark))
        self.flatten_mapping(node)
        for key_node, value_node in node.value:
            key = self.construct_object(key_node, deep=True)
            where = _location(self.path, key_node.start_mark)
            if not isinstance(key, str):
                self.problems.append(ConfigProblem(where, str(key), "keys must be strings"))
                continue
            if key in mapping:
                self.problems.append(ConfigProblem(where, key, "key is repeated in this mapping"))
                continue
            mapping[key] = self.construct_object(value_node, deep=True)
            mapping.key_locations[key] = where
        return mapping


def _construct_located(loader: yaml.SafeLoader, node: yaml.Node) -> Located:
    if not isinstance(loader, _Loader) or not isinstance(node, yaml.MappingNode):
        raise TypeError("the located-mapping constructor is registered on _Loader only")
    return loader.located_mapping(node)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_located)


def _location(path: str, mark: yaml.Mark | None) -> Location:
    if mark is None:
        return Location(path)
    return Location(path, mark.line + 1, mark.column + 1)


def load_documents(path: Path) -> list[Any]:
    """Every YAML document in ``path``; raises :class:`ConfigError` naming the file, line and cause."""
    name = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError([ConfigProblem(Location(name), "", f"cannot read: {error}")]) from error
    loader = _Loader(text, name)
    documents: list[Any] = []
    try:
        while loader.check_data():  # type: ignore[no-untyped-call]
            documents.append(loader.get_data())
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        problem = error.problem or error.context or "invalid YAML"
        raise ConfigError([ConfigProblem(_location(name, mark), "", problem)]) from error
    except yaml.YAMLError as error:
        raise ConfigError([ConfigProblem(Location(name), "", f"invalid YAML: {error}")]) from error
    finally:
        loader.dispose()
    if loader.problems:
        raise ConfigError(loader.problems)
    return [document for document in documents if document is not None]
