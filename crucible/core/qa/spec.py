"""Reading an OpenAPI 3.0/3.1 or Swagger 2.0 document into operations.

A document that is not a spec at all is rejected with :class:`NotASpecError`, which
lists every reason. A document that is a spec but has broken parts (a dangling
``$ref``, an invalid schema) is not rejected: each operation carries the problems that
affect it, so a run can report them against that operation instead of skipping it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import quote, unquote, urlsplit

import jsonschema_rs
from jsonschema import Draft4Validator, Draft202012Validator
from jsonschema.exceptions import SchemaError
from jsonschema.protocols import Validator
from referencing import Registry
from referencing.jsonschema import DRAFT4, DRAFT202012

from crucible.core.qa.documents import NotASpecError, first_line, parse_document, spec_version
from crucible.core.qa.params import Style, default_style, wire_style

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
#: The URI under which validators find the document, so ``$ref``s inside schemas resolve.
SPEC_URI = "urn:crucible:spec"
#: Not looked up yet, in the compiled validators' cache (where None is a schema that did not compile).
_UNSET = object()
#: Header parameters OpenAPI says to ignore: the media types and auth decide them.
IGNORED_HEADERS = ("accept", "content-type", "authorization")
#: How deep a chain of ``$ref`` to ``$ref`` may go before it counts as a loop.
MAX_REF_CHAIN = 32


class SpecProblem(Exception):
    """A broken part of an otherwise readable spec."""


class Checks(Protocol):
    """A validator that only says yes or no."""

    def is_valid(self, instance: Any) -> bool: ...


@dataclass
class _Prechecked:
    """Python's verdict, asked only of data the compiled validator finds no fault with.

    The compiled one leaves formats out (its set differs from the one Python's checker
    has), so what it refuses Python refuses too.
    """

    compiled: Any
    python: Validator

    def is_valid(self, instance: Any) -> bool:
        return bool(self.compiled.is_valid(instance)) and bool(self.python.is_valid(instance))


@dataclass
class Parameter:
    name: str
    location: str  # path, query, header, cookie
    required: bool
    schema: dict[str, Any]
    pointer: str  # where ``schema`` lives in the document
    example: Any = None
    has_example: bool = False
    #: How its value is written on the wire (style and explode, or Swagger's collectionFormat).
    style: Style | None = None


@dataclass
class RequestBody:
    media_type: str
    schema: dict[str, Any]
    pointer: str
    required: bool
    example: Any = None
    has_example: bool = False


@dataclass
class ResponseSpec:
    status: str  # "200", "4XX" or "default"
    media_types: list[str]
    schema: dict[str, Any] | None
    pointer: str | None


@dataclass
class Operation:
    """One method on one path, with everything the generator and the checks need."""

    method: str
    path: str
    operation_id: str | None = None
    summary: str | None = None
    tags: list[str] = field(default_factory=list)
    parameters: list[Parameter] = field(default_factory=list)
    body: RequestBody | None = None
    responses: dict[str, ResponseSpec] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def key(self) -> str:
        """``"GET /products/{id}"``: how results, reports and baselines name the operation."""
        return f"{self.method.upper()} {self.path}"

    def style_of(self, location: str, name: str) -> Style:
        """How the parameter ``name`` in ``location`` is written; undeclared ones by the defaults."""
        for param in self.parameters:
            if param.location == location and param.name == name and param.style is not None:
                return param.style
        return default_style(location)


class Spec:
    """A parsed spec: its version, base path and operations, with ``$ref`` resolution."""

    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc
        self.version = spec_version(doc)
        self.base_path = self._base_path()
        self.validator_class: Any = Draft202012Validator if self.version == "3.1" else Draft4Validator
        # The checks validate against this copy: 3.0's and 2.0's ``nullable`` become JSON Schema.
        self.validation_doc = doc if self.version == "3.1" else _with_nullable_types(doc)
        # Responses are checked against a view where writeOnly properties are not required
        # (a server never returns them), requests against one where readOnly ones are not.
        self.response_doc = _without_required(self.validation_doc, self, "writeOnly")
        self.registry: Registry[Any] = self._registry(self.response_doc)
        self.request_doc = _without_required(self.validation_doc, self, "readOnly")
        self.request_registry: Registry[Any] = self._registry(self.request_doc)
        self._validators: dict[tuple[str, bool], Validator] = {}
        self._compiled: dict[tuple[str, bool], Any] = {}
        self._compiled_registries: dict[bool, jsonschema_rs.Registry] = {}
        self.operations = list(self._operations())

    def _registry(self, doc: dict[str, Any]) -> Registry[Any]:
        specification = DRAFT202012 if self.version == "3.1" else DRAFT4
        return Registry().with_resource(SPEC_URI, specification.create_resource(doc))

    def validator_for(self, pointer: str, *, request: bool = False) -> Validator:
        """A validator for the schema at ``pointer``; its ``$ref``s resolve within the document.

        With ``request``, for data a client sends: readOnly properties are not required.
        """
        key = (pointer, request)
        if key not in self._validators:
            schema = {"$ref": f"{SPEC_URI}#{pointer}"}
            if request:  # formats too: data we send should be right in every respect
                self._validators[key] = self.validator_class(
                    schema, registry=self.request_registry, format_checker=self.validator_class.FORMAT_CHECKER
                )
            else:
                self._validators[key] = self.validator_class(schema, registry=self.registry)
        return self._validators[key]

    def conforms(self, pointer: str, body: Any) -> bool | None:
        """Whether a response ``body`` conforms to the schema at ``pointer``, by a compiled
        validator: a hundred times faster than :meth:`validator_for`, which says why it does
        not. None when the schema does not compile (a regex only Python reads, say).
        """
        compiled = self._compiled_for(pointer, request=False)
        return None if compiled is None else bool(compiled.is_valid(body))

    def request_check(self, pointer: str) -> Checks:
        """What says whether data a client sends fits the schema at ``pointer``, as
        :meth:`validator_for` with ``request`` does, but a compiled validator first refuses
        what breaks the schema without its formats: most of the wrong data generation makes."""
        python = self.validator_for(pointer, request=True)
        compiled = self._compiled_for(pointer, request=True)
        return python if compiled is None else _Prechecked(compiled, python)

    def _compiled_for(self, pointer: str, *, request: bool) -> Any:
        compiled = self._compiled.get((pointer, request), _UNSET)
        if compiled is _UNSET:
            target = (self._plain_ref_target(pointer), request)
            if target not in self._compiled:
                self._compiled[target] = self._compile(*target)
            compiled = self._compiled[pointer, request] = self._compiled[target]
        return compiled

    def _plain_ref_target(self, pointer: str) -> str:
        """Where a chain of schemas that are nothing but a ``$ref`` ends: responses that name the
        same component share its compiled validator."""
        for _ in range(MAX_REF_CHAIN):
            try:
                node = self.lookup(pointer)
            except SpecProblem:
                break
            ref = node.get("$ref") if isinstance(node, dict) and len(node) == 1 else None
            if not (isinstance(ref, str) and ref.startswith("#")):
                break
            pointer = unquote(ref[1:])
        return pointer

    def _compile(self, pointer: str, request: bool) -> jsonschema_rs.Validator | None:
        latest = self.version == "3.1"
        try:
            if request not in self._compiled_registries:
                self._compiled_registries[request] = jsonschema_rs.Registry(
                    [(SPEC_URI, self.request_doc if request else self.response_doc)],
                    draft=jsonschema_rs.Draft202012 if latest else jsonschema_rs.Draft4,
                    retriever=_no_retrieval,
                )
            validator = jsonschema_rs.Draft202012Validator if latest else jsonschema_rs.Draft4Validator
            return validator(
                {"$ref": f"{SPEC_URI}#{quote(pointer, safe='/~')}"},
                registry=self._compiled_registries[request],
                retriever=_no_retrieval,
                validate_formats=False,
            )
        except Exception:  # whatever does not compile, the Python validator checks
            return None

    def resolve(self, node: Any, pointer: str) -> tuple[Any, str]:
        """Follow ``node``'s ``$ref`` chain, if any; the target and where it lives."""
        seen = 0
        while isinstance(node, dict) and isinstance(node.get("$ref"), str):
            ref = node["$ref"]
            if not ref.startswith("#"):
                raise SpecProblem(f"$ref {ref!r} at {pointer} points outside the document")
            seen += 1
            if seen > MAX_REF_CHAIN:
                raise SpecProblem(f"$ref {ref!r} at {pointer} loops")
            node, pointer = self.lookup(ref[1:]), ref[1:]
        return node, pointer

    def lookup(self, pointer: str) -> Any:
        node: Any = self.doc
        for raw in pointer.split("/")[1:] if pointer else []:
            part = unquote(raw).replace("~1", "/").replace("~0", "~")  # bundlers percent-encode
            if isinstance(node, dict) and part in node:
                node = node[part]
            elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            else:
                raise SpecProblem(f"$ref '#{pointer}' does not resolve")
        return node

    def _base_path(self) -> str:
        """The path every operation's path is under: ``basePath`` (2.0) or the first server's path."""
        if self.version == "2.0":
            return str(self.doc.get("basePath") or "").rstrip("/")
        servers = self.doc.get("servers")
        server = servers[0] if isinstance(servers, list) and servers and isinstance(servers[0], dict) else {}
        url = str(server.get("url") or "")
        variables = server.get("variables")
        for name, variable in (variables if isinstance(variables, dict) else {}).items():
            default = variable.get("default", "") if isinstance(variable, dict) else ""
            url = url.replace("{" + str(name) + "}", str(default))
        return urlsplit(url).path.rstrip("/") if "{" not in url else ""

    def _operations(self) -> Iterator[Operation]:
        for path, raw_item in (self.doc.get("paths") or {}).items():
            item_pointer = f"/paths/{_escape(path)}"
            try:
                item, item_pointer = self.resolve(raw_item, item_pointer)
            except SpecProblem as exc:
                yield Operation(method="get", path=str(path), problems=[str(exc)])
                continue
            if not isinstance(item, dict):
                continue
            for method in METHODS:
                raw_op = item.get(method)
                if not isinstance(raw_op, dict):
                    continue
                try:
                    yield self._operation(str(path), method, item, raw_op, f"{item_pointer}/{method}")
                except (SpecProblem, ValueError, TypeError, KeyError, AttributeError, RecursionError) as exc:
                    # A part too broken to read at all: the operation is still there, with the reason.
                    problem = f"{method.upper()} {path} cannot be read: {type(exc).__name__}: {exc}"
                    yield Operation(method=method, path=str(path), problems=[problem])

    def _operation(
        self, path: str, method: str, item: dict[str, Any], raw: dict[str, Any], pointer: str
    ) -> Operation:
        op = Operation(
            method=method,
            path=path,
            operation_id=raw.get("operationId") if isinstance(raw.get("operationId"), str) else None,
            summary=str(raw["summary"]) if raw.get("summary") else None,
            tags=[str(tag) for tag in raw.get("tags") or [] if isinstance(tag, str)],
        )
        params: dict[tuple[str, str], Parameter] = {}
        for where, source in ((f"{pointer[: pointer.rfind('/')]}", item), (pointer, raw)):
            for index, raw_param in enumerate(source.get("parameters") or []):
                try:
                    param = self._parameter(raw_param, f"{where}/parameters/{index}", op)
                except SpecProblem as exc:
                    op.problems.append(str(exc))
                    continue
                if param is not None:
                    params[(param.location, param.name)] = param  # the operation's wins
        op.parameters = list(params.values())
        try:
            op.body = self._request_body(raw, pointer, op, item)
        except SpecProblem as exc:
            op.problems.append(str(exc))
        for status, raw_response in (raw.get("responses") or {}).items():
            try:
                op.responses[str(status).upper()] = self._response(
                    str(status).upper(), raw_response, f"{pointer}/responses/{_escape(str(status))}", raw
                )
            except SpecProblem as exc:
                op.problems.append(str(exc))
        if not op.responses:
            op.problems.append(f"{op.key} declares no responses")
        for schema, schema_pointer in self._schemas(op):
            op.problems.extend(self.schema_problems(schema, schema_pointer))
        return op

    def _parameter(self, raw: Any, pointer: str, op: Operation) -> Parameter | None:
        param, pointer = self.resolve(raw, pointer)
        if not isinstance(param, dict) or "name" not in param or "in" not in param:
            raise SpecProblem(f"parameter at {pointer} has no 'name' or 'in'")
        location = str(param["in"])
        if location in ("body", "formData"):  # Swagger 2.0: folded into the request body
            return None
        if location == "header" and str(param["name"]).lower() in IGNORED_HEADERS:
            return None
        if "schema" in param:
            schema_pointer = f"{pointer}/schema"
            schema = param["schema"]
        elif "content" in param and isinstance(param["content"], dict) and param["content"]:
            media = next(iter(param["content"]))
            schema_pointer = f"{pointer}/content/{_escape(media)}/schema"
            schema = param["content"][media].get("schema", {})
        else:  # Swagger 2.0 keeps the schema keywords on the parameter itself
            schema = {k: v for k, v in param.items() if k not in ("name", "in", "required", "description")}
            schema_pointer = pointer
        has_example, example = _example_of(param)
        return Parameter(
            name=str(param["name"]),
            location=location,
            required=bool(param.get("required")) or location == "path",
            schema=schema if isinstance(schema, dict) else {},
            pointer=schema_pointer,
            example=example,
            has_example=has_example,
            style=wire_style(param, location, swagger=self.version == "2.0"),
        )

    def _request_body(
        self, raw: dict[str, Any], pointer: str, op: Operation, item: dict[str, Any]
    ) -> RequestBody | None:
        if self.version == "2.0":
            return self._swagger_body(raw, pointer, item)
        if "requestBody" not in raw:
            return None
        body, body_pointer = self.resolve(raw["requestBody"], f"{pointer}/requestBody")
        content = body.get("content") if isinstance(body, dict) else None
        if not isinstance(content, dict) or not content:
            raise SpecProblem(f"request body of {op.key} has no content")
        media = _preferred_media(list(content))
        media_obj = content[media] if isinstance(content[media], dict) else {}
        has_example, example = _example_of(media_obj)
        if not has_example and isinstance(media_obj.get("schema"), dict):
            has_example, example = _example_of(media_obj["schema"])
        return RequestBody(
            media_type=media,
            schema=media_obj.get("schema") or {},
            pointer=f"{body_pointer}/content/{_escape(media)}/schema",
            required=bool(body.get("required")),
            example=example,
            has_example=has_example,
        )

    def _swagger_body(self, raw: dict[str, Any], pointer: str, item: dict[str, Any]) -> RequestBody | None:
        """Swagger 2.0's ``body`` or ``formData`` parameters (the path item's, then the operation's)."""
        consumes = raw.get("consumes") or self.doc.get("consumes") or ["application/json"]
        form: dict[str, Any] = {"type": "object", "properties": {}, "required": []}
        item_pointer = pointer[: pointer.rfind("/")]
        sources = [(item_pointer, p) for p in enumerate(item.get("parameters") or [])]
        sources += [(pointer, p) for p in enumerate(raw.get("parameters") or [])]
        for where, (index, raw_param) in sources:
            param, param_pointer = self.resolve(raw_param, f"{where}/parameters/{index}")
            if not isinstance(param, dict) or not isinstance(param.get("name", ""), str):
                continue
            if param.get("in") == "body":
                has_example, example = _example_of(param.get("schema") or {})
                return RequestBody(
                    media_type=_preferred_media(consumes),
                    schema=param.get("schema") or {},
                    pointer=f"{param_pointer}/schema",
                    required=bool(param.get("required")),
                    example=example,
                    has_example=has_example,
                )
            if param.get("in") == "formData":
                keep = {k: v for k, v in param.items() if k not in ("name", "in", "required", "description")}
                if keep.get("type") == "file":
                    keep = {"type": "string", "format": "binary"}
                name = str(param.get("name") or "")
                if not name:
                    raise SpecProblem(f"formData parameter at {param_pointer} has no name")
                form["properties"][name] = keep
                if param.get("required"):
                    form["required"].append(name)
        if not form["properties"]:
            return None
        required = bool(form["required"])
        if not required:
            del form["required"]  # draft 4 wants a non-empty list or none
        forms = [m for m in consumes if m in ("application/x-www-form-urlencoded", "multipart/form-data")]
        return RequestBody(
            media_type=forms[0] if forms else "application/x-www-form-urlencoded",
            schema=form,
            pointer="",  # built here, not in the document
            required=required,
        )

    def _response(self, status: str, raw: Any, pointer: str, op_raw: dict[str, Any]) -> ResponseSpec:
        response, pointer = self.resolve(raw, pointer)
        if not isinstance(response, dict):
            raise SpecProblem(f"response {status} at {pointer} is not an object")
        if self.version == "2.0":
            produces = op_raw.get("produces") or self.doc.get("produces") or []
            schema = response.get("schema")
            if not isinstance(schema, dict) or schema.get("type") == "file":  # a download: any bytes
                return ResponseSpec(status, list(produces), None, None)
            return ResponseSpec(
                status, list(produces) or ["application/json"], response["schema"], f"{pointer}/schema"
            )
        content = response.get("content") or {}
        media_types = list(content) if isinstance(content, dict) else []
        for media in media_types:
            if (
                (is_json_media(media) or media.strip() == "*/*")
                and isinstance(content[media], dict)
                and ("schema" in content[media])
            ):
                return ResponseSpec(
                    status,
                    media_types,
                    content[media]["schema"],
                    f"{pointer}/content/{_escape(media)}/schema",
                )
        return ResponseSpec(status, media_types, None, None)

    def _schemas(self, op: Operation) -> list[tuple[Any, str]]:
        schemas: list[tuple[Any, str]] = [(p.schema, p.pointer) for p in op.parameters]
        if op.body is not None:
            schemas.append((op.body.schema, op.body.pointer or f"/paths/{_escape(op.path)}/{op.method}"))
        schemas.extend((r.schema, r.pointer) for r in op.responses.values() if r.pointer)
        return schemas

    def schema_problems(self, schema: Any, pointer: str) -> list[str]:
        """What is wrong with ``schema`` (found at ``pointer``): dangling refs, invalid keywords."""
        problems: list[str] = []
        seen: set[str] = set()

        def walk(node: Any, where: str) -> None:
            if isinstance(node, dict):
                ref = node.get("$ref")
                if isinstance(ref, str):
                    if ref in seen:
                        return
                    seen.add(ref)
                    try:
                        target, target_pointer = self.resolve({"$ref": ref}, where)
                    except SpecProblem as exc:
                        problems.append(f"{exc} (used at #{where})")
                        return
                    walk(target, target_pointer)
                for key, value in node.items():
                    if key not in ("example", "examples", "default", "enum", "const"):
                        walk(value, f"{where}/{_escape(str(key))}")
            elif isinstance(node, list):
                for index, value in enumerate(node):
                    walk(value, f"{where}/{index}")

        walk(schema, pointer)
        if isinstance(schema, dict) and not problems:
            try:
                self.validator_class.check_schema(_strip_refs(_with_nullable_types(schema)))
            except SchemaError as exc:
                path = "/".join(str(p) for p in exc.path)
                problems.append(
                    f"invalid schema at #{pointer}/{path}: {first_line(exc.message)}".replace("/: ", ": ")
                )
        return problems


def _no_retrieval(uri: str) -> Any:
    """Schemas are checked within their document: nothing is fetched from elsewhere."""
    raise ValueError(f"{uri} is outside the document")


def _example_of(node: dict[str, Any]) -> tuple[bool, Any]:
    if "example" in node:
        return True, node["example"]
    examples = node.get("examples")
    if isinstance(examples, dict) and examples:
        first = next(iter(examples.values()))
        if isinstance(first, dict) and "value" in first:
            return True, first["value"]
    if isinstance(examples, list) and examples:
        return True, examples[0]
    return False, None


def _preferred_media(media_types: list[str]) -> str:
    for media in media_types:
        if is_json_media(media) or media.strip() == "*/*":
            return media
    return media_types[0] if media_types else "application/json"


def is_json_media(media: str) -> bool:
    """``application/json`` or a ``+json`` type, whatever its parameters and case."""
    media = media.split(";")[0].strip().lower()
    return media == "application/json" or media.endswith("+json")


def _escape(part: str) -> str:
    return part.replace("~", "~0").replace("/", "~1")


def _with_nullable_types(node: Any) -> Any:
    """OpenAPI 3.0's ``nullable: true`` (Swagger's ``x-nullable``) as JSON Schema's null type."""
    if isinstance(node, dict):
        out = {k: _with_nullable_types(v) for k, v in node.items()}
        if out.get("nullable") is not True and out.get("x-nullable") is not True:
            return out
        if isinstance(out.get("enum"), list) and None not in out["enum"]:
            out["enum"] = [*out["enum"], None]
        if isinstance(out.get("type"), str):
            out["type"] = [out["type"], "null"]
        elif "type" not in out:  # a $ref or a combination: null, or whatever it says
            rest = {k: v for k, v in out.items() if k not in ("nullable", "x-nullable")}
            return {"anyOf": [rest, {"type": "null"}]}
        return out
    if isinstance(node, list):
        return [_with_nullable_types(v) for v in node]
    return node


def _without_required(node: Any, spec: Spec, flag: str) -> Any:
    """The document with properties marked ``flag`` (readOnly, writeOnly) dropped from ``required``."""
    if isinstance(node, list):
        return [_without_required(v, spec, flag) for v in node]
    if not isinstance(node, dict):
        return node
    out = {k: _without_required(v, spec, flag) for k, v in node.items()}
    properties, required = node.get("properties"), node.get("required")
    if isinstance(properties, dict) and isinstance(required, list):
        kept = [name for name in required if not _flagged(properties.get(name), spec, flag)]
        if len(kept) != len(required):
            if kept:
                out["required"] = kept
            else:
                del out["required"]  # draft 4 wants a non-empty list or none
    return out


def _flagged(schema: Any, spec: Spec, flag: str) -> bool:
    try:
        target, _ = spec.resolve(schema, "")
    except SpecProblem:
        return False
    return isinstance(target, dict) and target.get(flag) is True


def _strip_refs(node: Any) -> Any:
    """A schema with its refs replaced by ``{}``; refs are checked separately."""
    if isinstance(node, dict):
        if "$ref" in node:
            return {}
        return {
            k: (v if k in ("example", "examples", "default", "enum", "const") else _strip_refs(v))
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_strip_refs(v) for v in node]
    return node


__all__ = ["NotASpecError", "Operation", "Spec", "SpecProblem", "parse_document", "spec_version"]
