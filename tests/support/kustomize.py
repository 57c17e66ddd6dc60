"""Renders the Kustomize layouts of deploy/kubernetes/ as `kubectl apply -k` would, for the
tests to check what a cluster receives.

Written by hand because the tests must run where no kustomize binary can be installed (CI's
machines, and those of the people who write btec); `kubectl kustomize`, where kubectl is
installed, is only used to check this renderer against it. So it renders exactly the subset
of Kustomize those layouts use, in kustomize's order:

- `resources`: YAML files (one or more documents each) and folders with a kustomization.yaml,
  rendered first;
- `patches`: RFC 6902 JSON patches (applied by the `jsonpatch` library), written inline as a
  list (`patch:`) or in a file (`path:`), each with a `target` of `kind` and `name` that matches
  exactly one object;
- `namespace`: set on every object (all the kinds the layouts use are namespaced; any other
  kind is refused rather than guessed);
- `images`: `name` with `newName`, `newTag` or `digest`, in every `containers` and
  `initContainers` list;
- `apiVersion` and `kind`, which name the file.

Anything else (`commonLabels`, `labels`, `namePrefix`, `nameSuffix`, generators, `replicas`,
strategic-merge patches, other target selectors, a patch whose target matches no object)
raises KustomizeSubsetError: a layout this does not render exactly fails the tests instead of
being checked in a form kustomize would not produce.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonpatch
import yaml

Obj = dict[str, Any]

KEYS = {"apiVersion", "kind", "resources", "namespace", "images", "patches"}
PATCH_KEYS = {"patch", "path", "target"}
TARGET_KEYS = {"kind", "name"}
IMAGE_KEYS = {"name", "newName", "newTag", "digest"}
# The kinds the layouts use, all namespaced: kustomize leaves cluster-wide kinds where they are.
NAMESPACED = {
    "ConfigMap",
    "CronJob",
    "Deployment",
    "HorizontalPodAutoscaler",
    "Job",
    "PersistentVolumeClaim",
    "PodDisruptionBudget",
    "PrometheusRule",
    "Secret",
    "Service",
    "ServiceAccount",
    "ServiceMonitor",
}


class KustomizeSubsetError(ValueError):
    """The layout uses Kustomize beyond what `render` supports."""


def render(folder: Path) -> list[Obj]:
    """The objects the kustomization.yaml in `folder` produces."""
    spec = yaml.safe_load((folder / "kustomization.yaml").read_text())
    _only(spec, KEYS, folder / "kustomization.yaml")
    objects: list[Obj] = []
    for entry in spec.get("resources", []):
        objects += _resource(folder / entry)
    for patch in spec.get("patches", []):
        _patch(objects, patch, folder)
    if "namespace" in spec:
        for obj in objects:
            obj["metadata"]["namespace"] = spec["namespace"]
    for image in spec.get("images", []):
        _only(image, IMAGE_KEYS, f"{folder}: images")
        for obj in objects:
            _set_image(obj, image)
    return objects


def _only(mapping: Obj, allowed: set[str], where: object) -> None:
    unknown = set(mapping) - allowed
    if unknown:
        raise KustomizeSubsetError(f"{where}: {sorted(unknown)} is beyond the supported subset")


def _resource(path: Path) -> list[Obj]:
    if path.is_dir():
        return render(path)
    objects = [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    for obj in objects:
        if obj["kind"] not in NAMESPACED:
            raise KustomizeSubsetError(f"{path}: {obj['kind']} is not a known namespaced kind")
    return objects


def _patch(objects: list[Obj], entry: Obj, folder: Path) -> None:
    _only(entry, PATCH_KEYS, f"{folder}: patches")
    target = entry.get("target") or {}
    _only(target, TARGET_KEYS, f"{folder}: patch target")
    if set(target) != TARGET_KEYS or ("patch" in entry) == ("path" in entry):
        raise KustomizeSubsetError(f"{folder}: a patch needs kind, name and one of patch, path")
    text = entry["patch"] if "patch" in entry else (folder / entry["path"]).read_text()
    operations = yaml.safe_load(text)  # JSON is YAML too
    if not isinstance(operations, list):
        raise KustomizeSubsetError(f"{folder}: only JSON patches (a list of operations)")
    found = [
        i
        for i, obj in enumerate(objects)
        if (obj["kind"], obj["metadata"]["name"]) == (target["kind"], target["name"])
    ]
    if len(found) != 1:
        raise KustomizeSubsetError(f"{folder}: {target} matches {len(found)} objects, not 1")
    objects[found[0]] = jsonpatch.apply_patch(objects[found[0]], operations)


def _set_image(node: Any, image: Obj) -> None:
    """Rewrite every container image named `image["name"]`, wherever a pod spec holds one."""
    if isinstance(node, list):
        for item in node:
            _set_image(item, image)
    elif isinstance(node, dict):
        for key, value in node.items():
            if key in ("containers", "initContainers"):
                for container in value:
                    container["image"] = _new_image(container["image"], image)
            else:
                _set_image(value, image)


def _new_image(current: str, image: Obj) -> str:
    name, at, digest = current.partition("@")
    slash = name.rfind("/")
    colon = name.rfind(":")
    tag = name[colon + 1 :] if colon > slash else ""
    name = name[:colon] if colon > slash else name
    if name != image["name"]:
        return current
    name = image.get("newName", name)
    if "digest" in image:
        return f"{name}@{image['digest']}"
    if "newTag" in image:
        return f"{name}:{image['newTag']}"
    return name + (f":{tag}" if tag else "") + (f"@{digest}" if at else "")
