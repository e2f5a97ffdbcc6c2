"""PATCH bodies: JSON merge patch, strategic merge patch and JSON patch."""

import copy

from chaosk3s.lab.k3s.apiserver.resources import ApiError, bad_request

MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"
JSON_PATCH = "application/json-patch+json"
PATCH_TYPES = (MERGE_PATCH, STRATEGIC_PATCH, JSON_PATCH)

# Lists that strategic merge patch merges item by item, by these keys
# (the patchMergeKey tags of the Kubernetes types the lab uses).
MERGE_KEYS: dict[tuple[str, ...], tuple[str, ...]] = {
    ("status", "conditions"): ("type",),
    ("status", "addresses"): ("type",),
    ("status", "volumesAttached"): ("name",),
    ("spec", "taints"): ("key", "effect"),
    ("metadata", "ownerReferences"): ("uid",),
}


def apply_patch(content_type: str, target: dict, patch: object) -> dict:
    if content_type == JSON_PATCH:
        return json_patch(target, patch)
    if not isinstance(patch, dict):
        raise bad_request("a merge patch must be a JSON object")
    if content_type == STRATEGIC_PATCH:
        return strategic_merge(target, patch, ())
    return merge_patch(target, patch)


def merge_patch(target: object, patch: object) -> object:
    """RFC 7386: objects merge, null deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def strategic_merge(target: object, patch: dict, path: tuple) -> object:
    """Kubernetes' strategic merge: like merge patch, but keyed lists
    merge item by item and $patch / $deleteFromPrimitiveList apply."""
    if patch.get("$patch") == "replace":
        return {k: v for k, v in patch.items() if k != "$patch"}
    if patch.get("$patch") == "delete":
        return None
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if key.startswith(("$setElementOrder/", "$retainKeys")):
            continue  # ordering hints: the order of the patch is kept
        if key.startswith("$deleteFromPrimitiveList/"):
            field = key.split("/", 1)[1]
            result[field] = [v for v in result.get(field) or []
                             if v not in value]
            continue
        child = (*path, key)
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict):
            merged = strategic_merge(result.get(key), value, child)
            if merged is None:
                result.pop(key, None)
            else:
                result[key] = merged
        elif isinstance(value, list) and child in MERGE_KEYS:
            result[key] = _merge_list(result.get(key) or [], value,
                                      MERGE_KEYS[child], child)
        else:
            result[key] = copy.deepcopy(value)
    return result


def _merge_list(current: list, patch: list, keys: tuple[str, ...],
                path: tuple) -> list:
    merged = [copy.deepcopy(item) for item in current]
    for item in patch:
        if not isinstance(item, dict):
            raise bad_request(f"{'.'.join(path)}: list items must be "
                              f"objects")
        if item.get("$patch") == "replace":
            return [i for i in patch if i.get("$patch") != "replace"]
        ident = tuple(item.get(k) for k in keys)
        index = next((n for n, old in enumerate(merged)
                      if tuple(old.get(k) for k in keys) == ident), None)
        if item.get("$patch") == "delete":
            if index is not None:
                merged.pop(index)
        elif index is None:
            merged.append(strategic_merge({}, item, path))
        else:
            merged[index] = strategic_merge(merged[index], item, path)
    return merged


def json_patch(target: dict, ops: object) -> dict:
    """RFC 6902 operations, applied in order to a copy."""
    if not isinstance(ops, list):
        raise bad_request("a JSON patch must be a list of operations")
    doc = copy.deepcopy(target)
    for op in ops:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise bad_request(f"invalid JSON patch operation {op!r}")
        doc = _apply_op(doc, op)
    return doc


def _apply_op(doc: dict, op: dict) -> dict:
    kind = op["op"]
    if kind in ("add", "replace", "test") and "value" not in op:
        raise bad_request(f"JSON patch {kind} needs a value")
    if kind == "test":
        if _get(doc, op["path"]) != op["value"]:
            raise ApiError(422, "Invalid", f"JSON patch test failed at "
                           f"{op['path']}")
        return doc
    if kind in ("move", "copy"):
        value = copy.deepcopy(_get(doc, op["from"]))
        if kind == "move":
            doc = _remove(doc, op["from"])
        return _add(doc, op["path"], value)
    if kind == "remove":
        return _remove(doc, op["path"])
    if kind == "replace":
        _get(doc, op["path"])  # must exist
        return _add(_remove(doc, op["path"]), op["path"], op["value"])
    if kind == "add":
        return _add(doc, op["path"], copy.deepcopy(op["value"]))
    raise bad_request(f"unknown JSON patch operation {kind!r}")


def _split(pointer: str) -> list[str]:
    if pointer == "":
        return []
    if not pointer.startswith("/"):
        raise bad_request(f"invalid JSON pointer {pointer!r}")
    return [p.replace("~1", "/").replace("~0", "~")
            for p in pointer[1:].split("/")]


def _step(node: object, part: str, pointer: str) -> object:
    try:
        if isinstance(node, list):
            return node[int(part)]
        return node[part]  # type: ignore[index]
    except (KeyError, IndexError, ValueError, TypeError):
        raise ApiError(422, "Invalid", f"JSON patch path {pointer} does "
                       f"not exist") from None


def _get(doc: object, pointer: str) -> object:
    node = doc
    for part in _split(pointer):
        node = _step(node, part, pointer)
    return node


def _parent(doc: object, pointer: str) -> tuple[object, str]:
    parts = _split(pointer)
    if not parts:
        raise bad_request("a JSON patch may not replace the whole object")
    node = doc
    for part in parts[:-1]:
        node = _step(node, part, pointer)
    return node, parts[-1]


def _add(doc: dict, pointer: str, value: object) -> dict:
    parent, last = _parent(doc, pointer)
    if isinstance(parent, list):
        index = len(parent) if last == "-" else int(last)
        if not 0 <= index <= len(parent):
            raise ApiError(422, "Invalid", f"index out of range: {pointer}")
        parent.insert(index, value)
    elif isinstance(parent, dict):
        parent[last] = value
    else:
        raise ApiError(422, "Invalid", f"cannot add at {pointer}")
    return doc


def _remove(doc: dict, pointer: str) -> dict:
    parent, last = _parent(doc, pointer)
    _step(parent, last, pointer)  # must exist
    if isinstance(parent, list):
        parent.pop(int(last))
    else:
        del parent[last]  # type: ignore[union-attr]
    return doc
