"""The Postman collection and environment in docs/postman/, made from the OpenAPI document:
npm's openapi-to-postmanv2 (package.json, run by node) converts it, and the pass here turns
its requests into one run that passes against a fresh server (newman, in CI):

- the requests come in RUN's folders, in the order a front-end developer would go: sign in,
  the catalogue, accounts, a student's submission, grading, operators, clean-up; each
  operation at least once, a few twice where the run needs it (sign in as the student and
  back, a unit and an assignment to delete). MAILED's requests come last and are not run
  by CI: their token arrives only by mail;
- the sign-in requests keep the access token in the collection variable `accessToken`, and
  every request that needs a user sends `Bearer {{accessToken}}`; the operator routes
  send the operators' tokens (`opsToken`, `metricsToken`) from the environment;
- a body is the document's example, with the run's ids and credentials put in (Step.body);
- each request tests that its status is a documented success status, and a JSON answer
  against the schema documented for that status; a test script keeps the ids the later
  requests use;
- the converter's saved example answers stay for the success statuses (the errors are
  in the OpenAPI document), with their Content-Type header only;
- nothing random is left (ids are uuid5 of each item's place; values the converter makes up
  where the document has no example are replaced or left out), and the files are written
  with sorted keys: the same document gives the same files (`btecctl dev postman --check`).

Written here: the converter has options for folders and example values but no hook for
scripts, auth variables or run order, and it fills what has no example at random.
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess  # nosec B404 # runs only node on the converter's script, as an argv list
import tempfile
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from server.config.assets import PROJECT_ROOT

OUT_DIR = PROJECT_ROOT / "docs" / "postman"
COLLECTION = "btec.postman_collection.json"
ENVIRONMENT = "btec.postman_environment.json"
CONVERTER = PROJECT_ROOT / "node_modules" / "openapi-to-postmanv2" / "bin" / "openapi2postmanv2.js"
CONVERTER_OPTIONS = "folderStrategy=Tags,parametersResolution=Example"
TIMEOUT_SECONDS = 120
NAMESPACE = uuid.UUID("6b1f1c52-1d1e-5d43-9a55-3c0f1e0b7c11")  # of this collection's ids
SCHEMA_URL = "https://schema.getpostman.com/json/collection/v2.1.0/collection.json"
METHODS = ("get", "put", "post", "delete", "patch")
JSON_MEDIA = ("application/json", "application/health+json", "application/problem+json")
# Formats the Postman sandbox's JSON Schema validator (ajv 6) knows; others it refuses.
FORMATS = frozenset({"date-time", "email", "uuid", "uri"})
UPLOAD = "evidence.txt"  # in OUT_DIR; newman runs with --working-dir OUT_DIR
# The path segment before a path parameter -> the collection variable holding its id.
RESOURCE_IDS = {
    "units": "unitId",
    "assignments": "assignmentId",
    "submissions": "submissionId",
    "files": "fileId",
    "users": "studentId",
    "jobs": "jobId",
}
# Variables that hold numbers: written bare in a JSON body ("unit_id": {{unitId}}).
NUMBERS = frozenset({"unitId", "assignmentId", "adminId", "studentId", "spareUnitId",
                     "spareAssignmentId"})  # fmt: skip
# Operator routes answer to the operators' tokens, not a user's.
OPERATOR_TOKENS = {"sendTestMail": "opsToken", "getJob": "opsToken", "getMetrics": "metricsToken"}


def var(name: str) -> str:
    """A Postman variable's reference: {{name}}."""
    return "{{" + name + "}}"


ADMIN = {"email": var("adminEmail"), "password": var("adminPassword")}
STUDENT = {"email": var("studentEmail"), "password": var("studentPassword")}
SESSION = {"accessToken": "body.access_token", "refreshToken": "body.refresh_token"}
ASSESSED_BY_ADMIN = {"assessor_ids": [var("adminId")]}  # so that the admin may grade it


class PostmanError(Exception):
    """The converter could not run, or made nothing usable."""


class ToolMissing(PostmanError):
    """node or the npm packages are not installed (npm ci)."""


@dataclass(frozen=True)
class Step:
    """One request of the run: an operation, and what this use of it needs."""

    operation: str  # its operationId
    name: str = ""  # the operation's summary unless given
    body: Mapping[str, Any] = field(default_factory=dict)  # over the document's example
    ids: Mapping[str, str] = field(default_factory=dict)  # path parameter -> variable
    query: Mapping[str, str] = field(default_factory=dict)  # query parameters to send
    keep: Mapping[str, str] = field(default_factory=dict)  # variable -> JS of the answer `body`


@dataclass(frozen=True)
class Folder:
    name: str
    description: str
    steps: tuple[Step, ...]


RUN: tuple[Folder, ...] = (
    Folder("Health", "The probes, anonymous.",
           (Step("getLiveness"), Step("getReadiness"), Step("getHealth"))),
    Folder("Sign in as the admin",
           "With adminEmail and adminPassword from the environment (`btecctl users "
           "create-admin` makes one).", (
               Step("signIn", "Sign in as the admin", body=ADMIN, keep=SESSION),
               Step("refreshSession", body={"refresh_token": var("refreshToken")}, keep=SESSION),
               Step("getMe", keep={"adminId": "body.id"}),
               Step("requestVerification"),
           )),
    Folder("Catalogue", "A unit and an assignment the admin assesses.", (
        Step("createUnit", keep={"unitId": "body.id"}),
        Step("listUnits"),
        Step("getUnit"),
        Step("updateUnit"),
        Step("createAssignment", body={"unit_id": var("unitId"), **ASSESSED_BY_ADMIN},
             keep={"assignmentId": "body.id"}),
        Step("listAssignments"),
        Step("getAssignment"),
        Step("updateAssignment", body={"unit_id": var("unitId"), **ASSESSED_BY_ADMIN}),
    )),
    Folder("Accounts", "A student's account made by the admin, and one registered.", (
        Step("createUser", "Create the student's account",
             body={**STUDENT, "full_name": "Alex Student", "role": "student"},
             keep={"studentId": "body.id"}),
        Step("listUsers"),
        Step("getUser"),
        Step("updateUser", body={"role": "student", "is_active": True}),
        Step("register"),
    )),
    Folder("As the student", "Evidence, a submission, the profile and the password; then "
           "the student's sessions end.", (
               Step("signIn", "Sign in as the student", body=STUDENT, keep=SESSION),
               Step("uploadFile", keep={"fileId": "body.id"}),
               Step("listFiles"),
               Step("getFile"),
               Step("downloadFile"),
               Step("uploadFile", "Upload a file to delete", keep={"spareFileId": "body.id"}),
               Step("deleteFile", ids={"id": "spareFileId"}),
               Step("submitWork", body={"file_ids": [var("fileId")]},
                    keep={"submissionId": "body.id"}),
               Step("getMySubmission"),
               Step("listSubmissions"),
               Step("updateMe"),
               Step("changePassword", keep=SESSION),
               Step("signOutEverywhere"),
           )),
    Folder("Grading, as the admin", "The admin is the assignment's assessor.", (
        Step("signIn", "Sign in as the admin again", body=ADMIN, keep=SESSION),
        Step("listSubmissions", "List the assignment's submissions",
             query={"assignment": var("assignmentId")}),
        Step("getSubmission"),
        Step("gradeSubmission",
             body={"assignment_id": var("assignmentId"), "criteria": {"P1": True}}),
        Step("getGrade"),
        Step("exportGrades"),
    )),
    Folder("Operators", "With opsToken and metricsToken from the environment (the data dir's "
           "`secrets/ops_token` and `secrets/metrics_token` in development).", (
               Step("sendTestMail", keep={"jobId": "body.job_id"}),
               Step("getJob"),
               Step("getMetrics"),
           )),
    Folder("Clean up", "Deletes (of a unit and an assignment made for it: the others are in "
           "use), the student's deactivation, and sign-out last.", (
               Step("createUnit", "Add a unit to delete",
                    body={"code": "J/615/1545", "title": "Spare"},
                    keep={"spareUnitId": "body.id"}),
               Step("createAssignment", "Set an assignment to delete",
                    body={"unit_id": var("spareUnitId"), **ASSESSED_BY_ADMIN},
                    keep={"spareAssignmentId": "body.id"}),
               Step("deleteAssignment", ids={"id": "spareAssignmentId"}),
               Step("deleteUnit", ids={"id": "spareUnitId"}),
               Step("deactivateUser"),
               Step("requestPasswordReset"),
               Step("signOut", body={"refresh_token": var("refreshToken")}),
           )),
)  # fmt: skip
# Not run by CI (newman runs RUN's folders only): the token each needs arrives by mail.
MAILED = Folder(
    "Links from mail",
    "Not part of the CI run: paste the token of a link the server mailed into mailToken.",
    (
        Step("previewVerification", query={"token": var("mailToken")}),
        Step("confirmVerification", body={"token": var("mailToken")}),
        Step("resetPassword", body={"token": var("mailToken")}),
    ),
)
FOLDERS = (*RUN, MAILED)
# Collection variables: the student's credentials, and what the run keeps.
VARIABLES = {
    "baseUrl": "http://127.0.0.1:8080",
    "studentEmail": "alex.student@college.example.ac.uk",
    # The password the document's examples of updateMe and changePassword give as current.
    "studentPassword": "correct horse battery staple",
}
KEPT = sorted({name for folder in FOLDERS for step in folder.steps for name in step.keep})
# The environment: where the server is, and what only its operator knows.
ENVIRONMENT_VALUES = (
    ("baseUrl", "http://127.0.0.1:8080", "default"),
    ("adminEmail", "admin@college.example.ac.uk", "default"),
    ("adminPassword", "", "secret"),
    ("opsToken", "", "secret"),
    ("metricsToken", "", "secret"),
    ("mailToken", "", "secret"),
)


def files(spec: dict[str, Any]) -> dict[str, str]:
    """The files of OUT_DIR, by name, made from `spec`."""
    made = collection(spec, convert(spec))
    return {COLLECTION: dump(made), ENVIRONMENT: dump(environment())}


def dump(document: Any) -> str:
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def convert(spec: dict[str, Any]) -> dict[str, Any]:
    """openapi-to-postmanv2's collection of `spec`."""
    node = shutil.which("node")
    if node is None:
        raise ToolMissing("node is not installed (Node.js 20 or later)")
    if not CONVERTER.is_file():
        raise ToolMissing(f"openapi-to-postmanv2 is not installed: run `npm ci` in {PROJECT_ROOT}")
    with tempfile.TemporaryDirectory(prefix="btec-postman-") as tmp:
        source, out = Path(tmp) / "openapi.json", Path(tmp) / "collection.json"
        source.write_text(json.dumps(spec))
        argv = [node, str(CONVERTER), "-s", str(source), "-o", str(out), "-O", CONVERTER_OPTIONS]
        done = subprocess.run(  # nosec B603 # argv: node, the installed converter, our options
            argv, capture_output=True, text=True, timeout=TIMEOUT_SECONDS, check=False
        )
        if done.returncode != 0 or not out.is_file():
            raise PostmanError(f"openapi-to-postmanv2 failed: {done.stderr.strip()[-500:]}")
        converted: dict[str, Any] = json.loads(out.read_text())
    return converted


def collection(spec: dict[str, Any], converted: dict[str, Any]) -> dict[str, Any]:
    """The collection: RUN's folders, then MAILED, from the converter's requests."""
    requests = dict(_converted_requests(converted["item"]))
    operations = dict(_operations(spec))
    missing = sorted(set(operations) - {s.operation for f in FOLDERS for s in f.steps})
    if missing:
        raise PostmanError(f"operations with no step in btecctl/postman.py: {missing}")
    info = converted["info"]
    return {
        "info": {"_postman_id": str(uuid.uuid5(NAMESPACE, "collection")), "name": info["name"],
                 "description": info.get("description", ""), "schema": SCHEMA_URL},
        "auth": _bearer("accessToken"),
        "variable": [{"key": key, "value": value, "type": "string"}
                     for key, value in [*VARIABLES.items(), *((k, "") for k in KEPT)]],
        "item": [_folder(folder, spec, operations, requests) for folder in FOLDERS],
    }  # fmt: skip


def environment() -> dict[str, Any]:
    return {
        "id": str(uuid.uuid5(NAMESPACE, "environment")),
        "name": "btec (local)",
        "values": [
            {"key": key, "value": value, "type": kind, "enabled": True}
            for key, value, kind in ENVIRONMENT_VALUES
        ],
        "_postman_variable_scope": "environment",
    }


def _operations(spec: dict[str, Any]) -> Iterator[tuple[str, tuple[str, str, dict[str, Any]]]]:
    """operationId -> (method, path, operation)."""
    for path, item in spec["paths"].items():
        for method in METHODS:
            if method in item:
                yield item[method]["operationId"], (method, path, item[method])


def _converted_requests(items: list[dict[str, Any]]) -> Iterator[tuple[tuple[str, str], Any]]:
    """(METHOD, /path/{param}) -> the converter's item, from its folders."""
    for item in items:
        if "item" in item:
            yield from _converted_requests(item["item"])
            continue
        url = item["request"]["url"]
        path = "/" + "/".join(
            "{" + part[1:] + "}" if part.startswith(":") else part for part in url["path"]
        )
        yield (item["request"]["method"], path), item


def _folder(
    folder: Folder, spec: dict[str, Any], operations: dict[str, Any], requests: dict[Any, Any]
) -> dict[str, Any]:
    items = []
    for index, step in enumerate(folder.steps):
        method, path, operation = operations[step.operation]
        place = f"{folder.name}/{index}/{step.operation}"
        converted = requests[(method.upper(), path)]
        items.append(_item(step, place, spec, path, operation, converted))
    return {"id": str(uuid.uuid5(NAMESPACE, folder.name)), "name": folder.name,
            "description": folder.description, "item": items}  # fmt: skip


def _item(
    step: Step, place: str, spec: dict[str, Any], path: str, operation: dict[str, Any],
    converted: dict[str, Any],
) -> dict[str, Any]:  # fmt: skip
    request = _request(step, spec, path, operation, converted["request"])
    saved = [
        {**answer, "id": str(uuid.uuid5(NAMESPACE, f"{place}/{answer['code']}")),
         "header": [h for h in answer["header"] if h["key"].lower() == "content-type"],
         "originalRequest": {k: v for k, v in request.items() if k != "auth"}}
        for answer in converted.get("response", [])
        if 200 <= answer["code"] < 300
    ]  # fmt: skip
    return {
        "id": str(uuid.uuid5(NAMESPACE, place)),
        "name": step.name or converted["name"],
        "request": request,
        "response": saved,
        "event": [{"listen": "test",
                   "script": {"type": "text/javascript", "exec": _tests(step, spec, operation)}}],
    }  # fmt: skip


def _request(
    step: Step, spec: dict[str, Any], path: str, operation: dict[str, Any], old: dict[str, Any]
) -> dict[str, Any]:
    params = operation.get("parameters", [])
    headers = {p["name"].lower() for p in params if p["in"] == "header"}
    header = [
        {"key": h["key"], "value": h["value"]}
        for h in old.get("header", [])
        if h["key"].lower() not in headers | {"authorization"}
        and not (h["key"].lower() == "content-type" and "multipart" in h["value"])
    ]
    header += [_param(p, step) for p in params if p["in"] == "header"]
    segments = [":" + s[1:-1] if s.startswith("{") else s for s in path.split("/")[1:]]
    url = {
        "raw": var("baseUrl") + "/" + "/".join(segments),
        "host": [var("baseUrl")],
        "path": segments,
        "query": [_param(p, step) for p in params if p["in"] == "query"],
        "variable": [_path_variable(p, path, step) for p in params if p["in"] == "path"],
    }
    request = {"method": old["method"], "header": header, "url": url, "auth": _auth(operation),
               "description": old.get("description", "")}  # fmt: skip
    body = _body(step, spec, operation)
    if body is not None:
        request["body"] = body
    return request


def _param(param: dict[str, Any], step: Step) -> dict[str, Any]:
    """A query or header parameter: the step's value, sent; else the document's example or
    default, not sent unless the parameter is required."""
    schema = param.get("schema", {})
    if param["name"] in step.query:
        value, sent = step.query[param["name"]], True
    else:
        shown = param.get("example", schema.get("example", schema.get("default", "")))
        value, sent = _text(shown), bool(param.get("required"))
    return {"key": param["name"], "value": value, "disabled": not sent,
            "description": param.get("description", "")}  # fmt: skip


def _path_variable(param: dict[str, Any], path: str, step: Step) -> dict[str, Any]:
    name = param["name"]
    if name in step.ids:
        variable = step.ids[name]
    else:
        before = path.split("/{" + name + "}")[0].rsplit("/", 1)[-1]
        variable = RESOURCE_IDS[before]
    return {"key": name, "value": var(variable)}


def _text(value: Any) -> str:
    return json.dumps(value) if isinstance(value, bool) else str(value)


def _auth(operation: dict[str, Any]) -> dict[str, Any]:
    """No auth where the operation may be called without (the health documents' details
    aside); an operator's token on operator routes; else the signed-in user's."""
    if {} in operation.get("security", [{}]):
        return {"type": "noauth"}
    return _bearer(OPERATOR_TOKENS.get(operation["operationId"], "accessToken"))


def _bearer(variable: str) -> dict[str, Any]:
    token = {"key": "token", "value": var(variable), "type": "string"}
    return {"type": "bearer", "bearer": [token]}


def _body(step: Step, spec: dict[str, Any], operation: dict[str, Any]) -> dict[str, Any] | None:
    content = operation.get("requestBody", {}).get("content", {})
    if "multipart/form-data" in content:
        return {"mode": "formdata", "formdata": [{"key": "file", "type": "file", "src": UPLOAD}]}
    if "application/json" not in content:
        return None
    body = {**example_body(spec, content["application/json"]), **step.body}
    raw = json.dumps(body, indent=2, ensure_ascii=False)
    for name in NUMBERS:
        raw = raw.replace(f'"{var(name)}"', var(name))
    return {"mode": "raw", "raw": raw, "options": {"raw": {"language": "json"}}}


def example_body(spec: dict[str, Any], media: dict[str, Any]) -> dict[str, Any]:
    """The document's example of a JSON body: the media's own, else its schema's."""
    found = media["example"] if "example" in media else example_of(spec, media.get("schema", {}))
    return dict(found) if isinstance(found, dict) else {}


def example_of(spec: dict[str, Any], schema: dict[str, Any]) -> Any:
    """The example a schema shows: its own; else, for an object, its fields' (those that
    show one), and for an array, one item; None where it shows none."""
    schema = resolve(spec, schema)
    if "example" in schema:
        return copy.deepcopy(schema["example"])
    if "properties" in schema:
        fields = {name: example_of(spec, sub) for name, sub in schema["properties"].items()}
        shown = {name: value for name, value in fields.items() if value is not None}
        return shown or None
    if schema.get("type") == "array" and isinstance(schema.get("items"), dict):
        item = example_of(spec, schema["items"])
        return None if item is None else [item]
    return None


def resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """`schema`, or the component its $ref names."""
    ref = schema.get("$ref")
    if not isinstance(ref, str):
        return schema
    found: Any = spec
    for part in ref.removeprefix("#/").split("/"):
        found = found[part]
    return resolve(spec, found)


def json_schema(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """An OpenAPI 3.0 schema as JSON Schema for the Postman sandbox: references resolved,
    `nullable` as a null type, documentation and unknown formats left out."""
    schema = resolve(spec, schema)
    found: dict[str, Any] = {}
    for key, value in schema.items():
        if key in ("example", "examples", "description", "nullable", "title", "default",
                   "readOnly", "writeOnly", "deprecated", "externalDocs", "xml"):  # fmt: skip
            continue
        if key == "format" and value not in FORMATS:
            continue
        if key == "properties":
            found[key] = {name: json_schema(spec, sub) for name, sub in value.items()}
        elif key in ("items", "additionalProperties", "not") and isinstance(value, dict):
            found[key] = json_schema(spec, value)
        elif key in ("allOf", "anyOf", "oneOf"):
            found[key] = [json_schema(spec, sub) for sub in value]
        else:
            found[key] = copy.deepcopy(value)
    if schema.get("nullable"):
        if "type" in found:
            found["type"] = [found["type"], "null"]
            if "enum" in found:
                found["enum"] = [*found["enum"], None]
        else:
            found = {"anyOf": [found, {"type": "null"}]}
    return found


def success(operation: dict[str, Any]) -> list[int]:
    """The operation's documented success statuses."""
    return sorted(int(code) for code in operation["responses"] if code.startswith("2"))


def _tests(step: Step, spec: dict[str, Any], operation: dict[str, Any]) -> list[str]:
    """The request's test script, as lines: its status, its answer's schema, what it keeps."""
    codes = success(operation)
    schemas = {
        str(code): json_schema(spec, media["schema"])
        for code in codes
        for kind, media in operation["responses"][str(code)].get("content", {}).items()
        if kind in JSON_MEDIA and "schema" in media
    }
    lines = [
        f"pm.test('status is a documented success: {' or '.join(map(str, codes))}', () => {{",
        f"    pm.expect(pm.response.code).to.be.oneOf({json.dumps(codes)});",
        "});",
    ]
    if schemas:
        lines += [
            f"const schemas = {json.dumps(schemas, sort_keys=True, separators=(',', ':'))};",
            "if (schemas[pm.response.code]) {",
            "    pm.test('the answer matches its documented schema', () => {",
            "        pm.response.to.have.jsonSchema(schemas[pm.response.code]);",
            "    });",
            "}",
        ]
    if step.keep:
        lines += ["if (pm.response.code < 300) {", "    const body = pm.response.json();"]
        lines += [f"    pm.collectionVariables.set('{name}', {expression});"
                  for name, expression in sorted(step.keep.items())]  # fmt: skip
        lines += ["}"]
    return lines
