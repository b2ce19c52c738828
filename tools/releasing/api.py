"""Public-API snapshots and breaking-change detection, with griffe.

A member's API is loaded from its source with griffe and compared with the snapshot committed when its last
version was released (``packages/<member>/releases/<version>.json``). griffe finds removed objects, changed
signatures and changed kinds. Two rules are added here because griffe does not check attribute values:

- a member whose package defines ``__all__`` is judged on its exported names (a name leaving ``__all__`` is a
  breaking change; objects only reachable through a submodule are not part of its API);
- for the contract package (leyline) the values of exported constants and of enum members are part of the
  API: a renumbered enum member or a changed constant is a breaking change.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import griffe
from packaging.version import Version

from releasing.workspace import Member

# Members whose constants' and enum members' values are part of the contract (docs/releasing.md).
VALUE_CONTRACT_MEMBERS = frozenset({"esper-leyline"})

# Keys of griffe's JSON that say where an object is written, not what it is: left out of snapshots (line
# numbers, which griffe's loader needs, become 0) so that moving code does not rewrite a snapshot and its diff
# in a review shows API changes only.
_LOCATION_KEYS = frozenset({"docstring", "filepath", "relative_filepath", "relative_package_filepath", "git_info"})
_LINE_KEYS = frozenset({"lineno", "endlineno"})
_ENUM_BASES = frozenset({"Enum", "IntEnum", "StrEnum", "Flag", "IntFlag"})


def load_source_api(member: Member) -> griffe.Module:
    """The member's package as its current source defines it."""
    loader = griffe.GriffeLoader(search_paths=[member.directory / "src"])
    module = loader.load(member.import_name)
    loader.resolve_aliases(implicit=False, external=False)
    if not isinstance(module, griffe.Module):
        raise TypeError(f"{member.import_name} did not load as a module")
    return module


def _without_locations(node: Any) -> Any:
    if isinstance(node, dict):
        return {
            key: 0 if key in _LINE_KEYS else _without_locations(value)
            for key, value in node.items()
            if key not in _LOCATION_KEYS
        }
    if isinstance(node, list):
        return [_without_locations(value) for value in node]
    return node


def snapshot_text(module: griffe.Module) -> str:
    """The API as stable, reviewable JSON (sorted keys, no docstrings or line numbers)."""
    return json.dumps(_without_locations(json.loads(module.as_json(full=False))), indent=1, sort_keys=True) + "\n"


def load_snapshot(path: Path) -> griffe.Module:
    """A snapshot loaded back, placed under an ``esper`` namespace so that its aliases resolve within it."""
    package = griffe.Module.from_json(path.read_text())
    if not isinstance(package, griffe.Module):
        raise TypeError(f"{path} does not hold a module")
    collection = griffe.ModulesCollection()
    namespace = griffe.Module("esper", modules_collection=collection)
    namespace.set_member(package.name, package)
    collection.set_member("esper", namespace)
    return package


def _target(obj: griffe.Object | griffe.Alias) -> griffe.Object:
    return obj.final_target if isinstance(obj, griffe.Alias) else obj


def _is_enum(cls: griffe.Object) -> bool:
    return isinstance(cls, griffe.Class) and any(str(base).rsplit(".", 1)[-1] in _ENUM_BASES for base in cls.bases)


def _value_changes(name: str, old: griffe.Object, new: griffe.Object) -> Iterator[str]:
    if isinstance(old, griffe.Attribute) and isinstance(new, griffe.Attribute) and name.isupper():
        if str(old.value) != str(new.value):
            yield f"{old.path}: value changed: {old.value} -> {new.value}"
    elif isinstance(old, griffe.Class) and isinstance(new, griffe.Class) and _is_enum(old):
        for member_name, old_member in old.members.items():
            new_member = new.members.get(member_name)
            if isinstance(old_member, griffe.Attribute) and isinstance(new_member, griffe.Attribute):
                if str(old_member.value) != str(new_member.value):
                    yield f"{old.path}.{member_name}: enum value changed: {old_member.value} -> {new_member.value}"


def _show(value: object) -> str:
    if isinstance(value, griffe.Parameter):
        return value.name if value.default is None else f"{value.name}={value.default}"
    return str(value)


def describe(breakage: griffe.Breakage) -> str:
    """One line: the object, what broke and, where it means something, the old and new value."""
    if breakage.kind is griffe.BreakageKind.OBJECT_REMOVED:
        return f"{breakage.obj.path}: {breakage.kind.value}"
    return f"{breakage.obj.path}: {breakage.kind.value}: {_show(breakage.old_value)} -> {_show(breakage.new_value)}"


@dataclass(frozen=True)
class ApiComparison:
    breaking: tuple[str, ...]


def compare(old: griffe.Module, new: griffe.Module, *, values: bool) -> ApiComparison:
    """Breaking changes from ``old`` to ``new``, one readable line each."""
    exported = old.exports
    found: list[str] = []
    if exported is None:
        found = [describe(breakage) for breakage in griffe.find_breaking_changes(old, new)]
        return ApiComparison(tuple(found))
    new_exports = set(new.exports or ())
    kept = [name for name in exported if isinstance(name, str) and name in new_exports]
    found += [
        f"{old.path}.{name}: removed from __all__"
        for name in exported
        if isinstance(name, str) and name not in new_exports
    ]
    # Breakages griffe reports name the object where it is defined: keep those inside an exported object.
    roots = {_target(old[name]).path for name in kept}
    for breakage in griffe.find_breaking_changes(old, new):
        path = breakage.obj.path
        if any(path == root or path.startswith(root + ".") for root in roots):
            found.append(describe(breakage))
    if values:
        for name in kept:
            found += _value_changes(name, _target(old[name]), _target(new[name]))
    return ApiComparison(tuple(dict.fromkeys(found)))


def minimum_version(last_release: Version, *, breaking: bool) -> Version:
    """The lowest version the next release may have: a breaking change bumps minor in 0.x, major from 1.0."""
    if not breaking:
        return last_release
    if last_release.major == 0:
        return Version(f"0.{last_release.minor + 1}.0")
    return Version(f"{last_release.major + 1}.0.0")
