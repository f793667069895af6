"""SCIM PATCH (RFC 7644 §3.5.2) applied to one resource's representation.

The operations change the resource as the client sees it (its keys folded to lower case);
the result is then written as a whole, through the same mapping as a PUT, so PATCH has no
write path of its own. Paths are parsed by scim2-models; the quirks of the big IdPs are
accepted: operation names in any case, booleans as strings (read where the value is
written), ``add`` on a single-valued attribute, a value-filtered path with no value yet
(Entra's ``emails[type eq "work"].value`` creates the work email), attributes and dotted
paths (``name.givenName``, schema-qualified ones) as the keys of a path-less value.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from scim2_models import InvalidPathException, Path
from scim2_models.path.expressions import (
    AttrPath,
    CompareOperator,
    Comparison,
    FilterNode,
    LogicalExpr,
    LogicalOperator,
    ValuePath,
)

from roster.api.scim.errors import InvalidPath, InvalidSyntax, NoTarget, ScimInvalid
from roster.api.scim.filters import check_value_filter, matches
from roster.api.scim.resources import ENTERPRISE_SCHEMA, PATCH_SCHEMA, USER_SCHEMA, folded

_ENTERPRISE = ENTERPRISE_SCHEMA.lower()
_OPERATIONS = ("add", "remove", "replace")
#: Attributes a PATCH may not change (it may send them unchanged: they are ignored).
_READ_ONLY = frozenset({"id", "meta", "groups"})


def operations_of(body: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The operations of a PatchOp request; ``InvalidSyntax`` if it is not one."""
    sent = {str(k).lower(): v for k, v in body.items()}
    schemas = sent.get("schemas")
    if schemas is not None and (not isinstance(schemas, list) or PATCH_SCHEMA not in schemas):
        raise InvalidSyntax(f"A PATCH request's schemas must be [{PATCH_SCHEMA!r}].")
    operations = sent.get("operations")
    if not isinstance(operations, list) or not operations:
        raise InvalidSyntax("A PATCH request needs Operations: a list of operations.")
    if not all(isinstance(o, Mapping) for o in operations):
        raise InvalidSyntax("Each of Operations must be an object.")
    return [{str(k).lower(): v for k, v in o.items()} for o in operations]


def apply_patch(
    resource: Mapping[str, Any],
    operations: list[dict[str, Any]],
    multi_valued: Mapping[str, frozenset[str]],
) -> dict[str, Any]:
    """The resource (keys in lower case) after the operations, in order; ``multi_valued``:
    its multi-valued attributes, each with the sub-attributes a path's filter may compare
    (``discovery.multi_valued``)."""
    document = folded(resource)
    for operation in operations:
        name = operation.get("op")
        if not isinstance(name, str) or name.lower() not in _OPERATIONS:
            raise InvalidSyntax(f"op must be add, remove or replace (got {name!r}).")
        name = name.lower()
        path = operation.get("path")
        value = operation.get("value")
        if isinstance(value, Mapping):
            value = folded(value)
        elif isinstance(value, list):
            value = [folded(v) if isinstance(v, Mapping) else v for v in value]
        if path in (None, ""):
            if name == "remove":
                raise NoTarget("A remove operation needs a path.")
            if not isinstance(value, Mapping):
                raise ScimInvalid("An operation without a path needs an object as its value.")
            for key, item in value.items():
                if key == _ENTERPRISE and isinstance(item, Mapping):
                    extension = document.setdefault(_ENTERPRISE, {})
                    for sub_key, sub_item in item.items():
                        _apply(extension, parsed_path(sub_key), name, sub_item, multi_valued, True)
                else:
                    _apply(document, parsed_path(key), name, item, multi_valued, True)
            continue
        if not isinstance(path, str):
            raise InvalidPath("path must be a string.")
        _apply(document, parsed_path(path), name, value, multi_valued, False)
    return document


def parsed_path(path: str) -> AttrPath | ValuePath | None:
    """The parsed path; ``None`` for the enterprise extension itself."""
    if path.lower() == _ENTERPRISE:
        return None
    try:
        parsed = Path(path).ast
    except (InvalidPathException, ValueError) as error:
        raise InvalidPath(f"The path {path!r} cannot be parsed: {error}.") from None
    if not isinstance(parsed, AttrPath | ValuePath):
        raise InvalidPath(f"The path {path!r} names no attribute.")
    return parsed


def _container(document: dict[str, Any], attr_path: AttrPath) -> dict[str, Any]:
    uri = (attr_path.uri or "").lower()
    if uri in ("", USER_SCHEMA.lower()):
        return document
    if uri == _ENTERPRISE:
        extension = document.get(_ENTERPRISE)
        if not isinstance(extension, dict):
            extension = document[_ENTERPRISE] = {}
        return extension
    raise InvalidPath(f"Unknown schema {attr_path.uri!r} in the path.")


def _apply(
    document: dict[str, Any],
    path: AttrPath | ValuePath | None,
    name: str,
    value: Any,
    multi_valued: Mapping[str, frozenset[str]],
    in_value: bool,
) -> None:
    if path is None:  # the extension's attributes, as those of a complex attribute
        if name != "remove" and not isinstance(value, Mapping):
            raise ScimInvalid(f"The value for {ENTERPRISE_SCHEMA} must be an object.")
        _set_complex(document, _ENTERPRISE, name, value)
        return
    attr_path = path.attr_path if isinstance(path, ValuePath) else path
    container = _container(document, attr_path)
    attr = attr_path.attr.lower()
    if attr in _READ_ONLY or attr == "schemas":
        if in_value:
            return  # sent back as read: nothing to change (Okta sends the id)
        raise ScimInvalid(f"{attr_path.attr} is read-only.")
    if isinstance(path, ValuePath):
        # An attribute this server does not keep (ims, photos) is ignored when written.
        if (subs := multi_valued.get(attr)) is not None:
            check_value_filter(path.val_filter, attr, subs)
        _apply_filtered(container, attr, path, name, value)
        return
    sub = attr_path.sub_attr.lower() if attr_path.sub_attr else None
    if attr in multi_valued:
        items = container.get(attr) or []
        if sub is not None:
            for item in items:
                _set(item, sub, name, value)
        elif name == "remove":
            container.pop(attr, None)
        else:
            given = value if isinstance(value, list) else [value]
            container[attr] = ([*items] if name == "add" else []) + given
        return
    if sub is not None:
        target = container.get(attr)
        if not isinstance(target, dict):
            target = container[attr] = {}
        _set(target, sub, name, value)
        return
    _set_complex(container, attr, name, value)


def _set_complex(container: dict[str, Any], attr: str, name: str, value: Any) -> None:
    current = container.get(attr)
    if name != "remove" and isinstance(value, Mapping) and isinstance(current, dict):
        current.update(value)  # a complex attribute: the sub-attributes given
        return
    _set(container, attr, name, value)


def _set(target: dict[str, Any], key: str, name: str, value: Any) -> None:
    if name == "remove":
        target.pop(key, None)
    else:
        target[key] = value


def _apply_filtered(
    container: dict[str, Any], attr: str, path: ValuePath, name: str, value: Any
) -> None:
    items = container.get(attr)
    if not isinstance(items, list):
        items = []
    chosen = [item for item in items if isinstance(item, dict) and matches(path.val_filter, item)]
    sub = path.sub_attr.lower() if path.sub_attr else None
    if name == "remove":
        if sub is None:
            container[attr] = [item for item in items if not any(item is c for c in chosen)]
        else:
            for item in chosen:
                item.pop(sub, None)
        return
    if not chosen:
        seed = _seed(path.val_filter)
        if seed is None:
            raise NoTarget(f"No value of {attr} matches the path's filter.")
        items.append(seed)
        chosen = [seed]
    for item in chosen:
        if sub is not None:
            item[sub] = value
        elif isinstance(value, Mapping):
            item.update(value)
        else:
            raise ScimInvalid(f"The value for {attr}[...] must be an object.")
    container[attr] = items


def _seed(node: FilterNode) -> dict[str, Any] | None:
    """The value a filter of ``eq`` comparisons joined by ``and`` describes, if it does."""
    if isinstance(node, Comparison) and node.op is CompareOperator.eq:
        return {node.attr_path.attr.lower(): node.value}
    if isinstance(node, LogicalExpr) and node.op is LogicalOperator.and_:
        seed: dict[str, Any] = {}
        for term in node.terms:
            part = _seed(term)
            if part is None:
                return None
            seed.update(part)
        return seed
    return None
