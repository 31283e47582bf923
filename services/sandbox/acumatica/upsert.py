"""PUT semantics: find by key or id, honour If-Match / If-None-Match, merge, validate, save.

A PUT carries only the fields it changes; details are merged row by row (a row with `id` or a
matching natural key updates, `delete: true` removes, anything else is appended); an update that
changes nothing leaves `LastModified` alone and notifies nobody, as in the ERP.
"""

from __future__ import annotations

import copy
from typing import Any

from shared.acumatica.values import SYSTEM_FIELDS, wrap

from .entities import SPECS, EntitySpec
from .errors import ApiError, FieldErrors, bad_request, not_found
from .rules import RULES, empty, label, normalize_types
from .store import Key, Store, key_of, normalize_key

Path = tuple[str | int, ...]


class Writer:
    def __init__(self, store: Store) -> None:
        self.store = store

    def put(
        self,
        entity: str,
        incoming: dict[str, Any],
        *,
        if_match: bool = False,
        if_none_match: bool = False,
        admin: bool = False,
    ) -> dict[str, Any]:
        """Insert or update one record inside the caller's transaction; returns the stored record."""
        spec = SPECS[entity]
        _check_shape(spec, incoming)
        existing = self.find(spec, incoming)
        if if_none_match and existing is not None:
            raise ApiError(412, f"The {entity} record already exists (If-None-Match: *).")
        if if_match and existing is None:
            raise ApiError(412, f"The {entity} record does not exist (If-Match: *).")
        base = (
            existing
            if existing is not None
            else {**spec.defaults, **{k: incoming[k] for k in spec.keys if k in incoming}}
        )
        record = copy.deepcopy(base)
        origin: dict[int, Path] = {id(record): ()}
        _merge(spec, record, incoming, origin, admin=admin)
        errors: list[tuple[dict[str, Any], str, str]] = []

        def report(holder: dict[str, Any], name: str, message: str) -> None:
            errors.append((holder, name, message))

        numbered = existing is None and spec.numbering is not None and record.get(spec.keys[-1]) in (None, "")
        for name in spec.keys[:-1] if numbered else spec.keys:
            if record.get(name) in (None, ""):
                report(record, name, empty(name))
        normalize_types(record, report)
        if entity in RULES:
            RULES[entity](self.store, record, existing, report)
        if errors:
            action = "Updating" if existing is not None else "Inserting"
            raise FieldErrors(_error_body(spec, incoming, errors, origin, action))
        if numbered:  # only now, so a rejected insert does not use up a number
            self._number(spec, record)
        if existing is not None and _same(spec, record, existing):
            return existing
        if existing is not None and key_of(spec, record) != key_of(spec, existing):
            raise bad_request(f"Key fields of {entity} cannot be changed ({', '.join(spec.keys)}).")
        return self.store.save(entity, record)

    def find(self, spec: EntitySpec, incoming: dict[str, Any]) -> dict[str, Any] | None:
        if incoming.get("id"):
            found = self.store.get_by_id(spec.name, str(incoming["id"]))
            if found is None:
                raise not_found(spec.name)
            return found
        values = tuple(incoming.get(k, spec.defaults.get(k)) for k in spec.keys)
        if any(v in (None, "") for v in values):
            return None
        return self.store.table(spec.name).rows.get(normalize_key(values))

    def delete(self, entity: str, key: Key) -> None:
        if self.store.delete(entity, key) is None:
            raise not_found(entity)

    def touch(self, entity: str, key: Key) -> dict[str, Any]:
        """Bump the change stamp without changing data (admin 'bump LastModified')."""
        current = self.store.table(entity).rows.get(normalize_key(key))
        if current is None:
            raise not_found(entity)
        return self.store.save(entity, copy.deepcopy(current))

    def _number(self, spec: EntitySpec, record: dict[str, Any]) -> None:
        leading = tuple(record.get(k) for k in spec.keys[:-1])
        number = self.store.next_number(spec.name, spec.numbering or "", leading)
        record[spec.keys[-1]] = number if spec.numbering else int(number)


def _check_shape(spec: EntitySpec, incoming: dict[str, Any]) -> None:
    for name, value in incoming.items():
        if name in SYSTEM_FIELDS:
            continue
        if name == "custom":
            if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
                raise bad_request("'custom' must map view names to objects of fields.")
            for view, fields in value.items():
                for field_name in fields:
                    if not field_name.startswith(("Usr", "Attribute")):
                        raise bad_request(
                            f"Custom field '{view}.{field_name}' is not defined (expected Usr* or Attribute*)."
                        )
            continue
        if not spec.knows(name):
            raise bad_request(f"The field '{name}' is not defined in the entity {spec.name}.")
        if name in spec.details and not (isinstance(value, list) and all(isinstance(r, dict) for r in value)):
            raise bad_request(f"'{name}' must be a list of detail rows.")
        if name in spec.linked and not isinstance(value, dict):
            raise bad_request(f"'{name}' must be an object.")
        if name in spec.fields and isinstance(value, dict | list):
            raise bad_request(f"'{name}' must be a single value.")


def _merge(
    spec: EntitySpec, record: dict[str, Any], incoming: dict[str, Any], origin: dict[int, Path], *, admin: bool
) -> None:
    for name, value in incoming.items():
        if name in SYSTEM_FIELDS or name in spec.modified or name in spec.derived:
            continue
        if name in spec.readonly and not admin:
            continue
        if name == "custom":
            _merge_custom(spec, record, value)
        elif name in spec.details:
            record[name] = _merge_rows(record.get(name) or [], value, spec.details[name], origin, (name,))
        elif name in spec.linked:
            record[name] = _merge_object(record.get(name) or {}, value, origin, (name,))
        else:
            record[name] = value


def _merge_object(
    current: dict[str, Any], incoming: dict[str, Any], origin: dict[int, Path], path: Path
) -> dict[str, Any]:
    merged = dict(current)
    origin[id(merged)] = path
    for name, value in incoming.items():
        if isinstance(value, dict) and name not in SYSTEM_FIELDS:
            merged[name] = _merge_object(merged.get(name) or {}, value, origin, (*path, name))
        elif name not in SYSTEM_FIELDS:
            merged[name] = value
    return merged


def _merge_rows(
    rows: list[dict[str, Any]],
    incoming: list[dict[str, Any]],
    match: tuple[str, ...],
    origin: dict[int, Path],
    path: Path,
) -> list[dict[str, Any]]:
    rows = list(rows)
    for index, sent in enumerate(incoming):
        target = _matching_row(rows, sent, match)
        if sent.get("delete"):
            if target is not None:
                rows.remove(target)
            continue
        if target is None:
            target = {}
            rows.append(target)
        for name, value in sent.items():
            if name not in SYSTEM_FIELDS:
                target[name] = (
                    _merge_object(target.get(name) or {}, value, origin, (*path, index, name))
                    if isinstance(value, dict)
                    else value
                )
        origin[id(target)] = (*path, index)
    return rows


def _matching_row(rows: list[dict[str, Any]], sent: dict[str, Any], match: tuple[str, ...]) -> dict[str, Any] | None:
    if sent.get("id"):
        return next((row for row in rows if row.get("id") == sent["id"]), None)
    if match and all(sent.get(f) not in (None, "") for f in match):
        wanted = normalize_key(tuple(sent[f] for f in match))
        return next((row for row in rows if normalize_key(tuple(row.get(f) for f in match)) == wanted), None)
    return None


def _merge_custom(spec: EntitySpec, record: dict[str, Any], custom: dict[str, dict[str, Any]]) -> None:
    """`Usr*` fields live in the custom block; `View.Attribute<ID>` writes the attribute itself."""
    for view, fields in custom.items():
        for name, value in fields.items():
            if name.startswith("Attribute"):
                if "Attributes" not in spec.details:
                    raise bad_request(f"{spec.name} has no attributes ('{view}.{name}').")
                rows = record.get("Attributes") or []
                record["Attributes"] = _merge_rows(
                    rows, [{"AttributeID": name[9:], "Value": value}], ("AttributeID",), {}, ()
                )
            else:
                block = record.setdefault("custom", {})
                block[view] = {**block.get(view, {}), name: value}


def _same(spec: EntitySpec, record: dict[str, Any], existing: dict[str, Any]) -> bool:
    ignored = set(spec.modified)
    return {k: v for k, v in record.items() if k not in ignored} == {
        k: v for k, v in existing.items() if k not in ignored
    }


def _error_body(
    spec: EntitySpec,
    incoming: dict[str, Any],
    errors: list[tuple[dict[str, Any], str, str]],
    origin: dict[int, Path],
    action: str,
) -> dict[str, Any]:
    body = wrap({k: v for k, v in incoming.items() if k != "custom"})
    unplaced: list[str] = []
    for holder, name, message in errors:
        path = origin.get(id(holder))
        node: Any = body
        for step in path or ():
            node = node[step] if isinstance(node, list) else node.setdefault(step, {})
        if path is None or not isinstance(node, dict):
            unplaced.append(f"{name}: {message}")
            continue
        cell = node.get(name)
        node[name] = {**(cell if isinstance(cell, dict) else {"value": None}), "error": message}
    summary = f"{action} '{label(spec.name)}' record raised at least one error. Please review the errors."
    body["error"] = summary + "".join(f" {m}" for m in unplaced)
    return body
