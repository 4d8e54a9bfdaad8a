"""Lemmy's own published API definitions, read from the installed `lemmy-js-client` packages.

`scripts/install dev` installs two versions side by side into `.reference/lemmy/` (ignored by
git; never committed):

    lemmy-js-client-v019 → lemmy-js-client@0.19.9       (Lemmy 0.19, `/api/v3`)
    lemmy-js-client-v1   → lemmy-js-client@1.0.0-beta.2 (Lemmy 1.0, `/api/v4`)

From each package this module reads, at test time:
* the route table — method name, HTTP method and path — from `dist/http.js`
  (`this.wrapper(HttpType.X, "/path", form)`, uploads through `upload("/image")` on 1.0 and
  `${baseUrl}/pictrs/image` on 0.19), prefixed with `/api/${VERSION}` from `other_types.js`;
* each route's form type and response type from `dist/http.d.ts`;
* the type definitions (object fields, optional or not; string-literal enum unions; aliases)
  from `dist/types/*.d.ts`.

Nothing here is hard-coded from the packages: a different package version gives a different
table, and the conformance tests follow.
"""

from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
REFERENCE_DIR = Path(os.environ.get("FEDIBOT_LEMMY_REFERENCE") or ROOT / ".reference" / "lemmy")
PACKAGES = {"v3": ("lemmy-js-client-v019", "0.19.9"), "v4": ("lemmy-js-client-v1", "1.0.0-beta.2")}
INSTALL_HINT = (
    "the Lemmy API reference (lemmy-js-client) is not installed; run `scripts/install dev` "
    "(needs npm), or: npm install --prefix .reference/lemmy --no-save --ignore-scripts "
    + " ".join(f"{alias}@npm:lemmy-js-client@{version}" for alias, version in PACKAGES.values())
)


class ReferenceMissing(RuntimeError):
    """The reference package is not installed (see INSTALL_HINT)."""


@dataclass(frozen=True)
class Route:
    name: str  # the LemmyHttp method, e.g. "deleteComment"
    method: str  # GET | POST | PUT | DELETE
    path: str  # full path, e.g. "/api/v4/comment"
    form_type: str | None  # e.g. "DeleteComment"; None: no form
    response_type: str | None  # e.g. "CommentResponse" or "PagedResponse<CommentView>"
    multipart: bool = False  # an image upload (`images[]` form field)


@dataclass(frozen=True)
class Field:
    type: str  # the TypeScript type expression
    optional: bool


_WRAPPER_V1 = re.compile(
    r"async (\w+)\(([^)]*)\)\s*\{\s*return this\.(wrapper|upload|uploadWithQuery)\("
    r"(?:HttpType\.(\w+),\s*)?\"([^\"]+)\""
)
_WRAPPER_V019 = re.compile(
    r"\n    (\w+)\(([^)]*)\)\s*\{\s*return __classPrivateFieldGet\(this, _LemmyHttp_instances, "
    r"\"m\", _LemmyHttp_wrapper\)\.call\(this, HttpType\.(\w+), \"([^\"]+)\""
)
_PICTRS_V019 = re.compile(r"_LemmyHttp_pictrsUrl, `\$\{baseUrl\}([^`]+)`")
_DECL = re.compile(r"^    (\w+)\((.*)\): Promise<(.*)>;$", re.MULTILINE)
_FIELD = re.compile(r"^    (\w+)(\?)?: (.+);$", re.MULTILINE)


class Reference:
    """One installed `lemmy-js-client` package."""

    def __init__(self, api_version: str, package_dir: Path) -> None:
        self.api_version = api_version
        self.dir = package_dir
        self.dist = package_dir / "dist"
        self.package_version = _package_version(package_dir)
        other = (self.dist / "other_types.js").read_text()
        match = re.search(r'exports\.VERSION = "(v\d+)"', other)
        if not match:
            raise ReferenceMissing(f"{self.dist}/other_types.js has no VERSION")
        self.prefix = f"/api/{match[1]}"
        self.routes = self._routes()

    def __repr__(self) -> str:
        return f"<lemmy-js-client@{self.package_version} {self.prefix}>"

    # --- routes --------------------------------------------------------------------------

    def _routes(self) -> list[Route]:
        js = (self.dist / "http.js").read_text()
        decls = self._declarations()
        routes: list[Route] = []
        if "_LemmyController_buildFullUrl" in js:  # 1.0 style
            for name, _args, kind, method, path in _WRAPPER_V1.findall(js):
                form, response = decls.get(name, (None, None))
                if kind == "wrapper":
                    routes.append(Route(name, method.upper(), self.prefix + path, form, response))
                else:
                    routes.append(
                        Route(name, "POST", self.prefix + path, None, response, multipart=True)
                    )
        else:  # 0.19 style
            for name, _args, method, path in _WRAPPER_V019.findall(js):
                form, response = decls.get(name, (None, None))
                routes.append(Route(name, method.upper(), self.prefix + path, form, response))
            pictrs = _PICTRS_V019.search(js)
            if pictrs:
                _form, response = decls.get("uploadImage", (None, None))
                routes.append(Route("uploadImage", "POST", pictrs[1], None, response, True))
        if not routes:
            raise ReferenceMissing(f"no routes found in {self.dist}/http.js")
        return routes

    def _declarations(self) -> dict[str, tuple[str | None, str | None]]:
        """method name → (form type, response type) from http.d.ts."""
        dts = (self.dist / "http.d.ts").read_text()
        found: dict[str, tuple[str | None, str | None]] = {}
        for name, args, response in _DECL.findall(dts):
            form = None
            arg = re.match(r"(?:form\??|\{[^}]*\}): (\w+)", args)
            if arg:
                form = self._interface_base(arg[1])
            match = re.search(r"RequestState<(.*)>$", response)
            found[name] = (form, (match[1] if match else response).strip())
        return found

    @functools.cache  # noqa: B019 (a handful of instances for the whole session)
    def _interface_base(self, name: str) -> str:
        """`GetCommentsI` → `GetComments` (other_types.d.ts: `interface XI extends X {}`)."""
        other = (self.dist / "other_types.d.ts").read_text()
        match = re.search(rf"interface {name} extends (\w+)", other)
        return match[1] if match else name

    def route(self, method: str, path: str) -> Route | None:
        for route in self.routes:
            if route.method == method and _path_matches(route.path, path):
                return route
        return None

    # --- types ---------------------------------------------------------------------------

    @functools.cache  # noqa: B019
    def _declaration(self, name: str) -> str | None:
        path = self.dist / "types" / f"{name}.d.ts"
        if not path.is_file():
            return None
        text = path.read_text()
        match = re.search(rf"export (?:type|interface) {name}(?:<\w+>)?\s*=?\s*(.*)", text, re.S)
        return match[1].strip().rstrip(";").strip() if match else None

    def fields(self, name: str) -> dict[str, Field] | None:
        """The fields of object type `name`, or None if it is not an object type."""
        decl = self._declaration(name)
        if decl is None or not decl.startswith("{"):
            return None
        return {m[0]: Field(m[2].strip(), bool(m[1])) for m in _FIELD.findall(decl)}

    def has_type(self, name: str) -> bool:
        return self._declaration(name) is not None

    def enum_values(self, type_expr: str) -> set[str] | None:
        """The string values a type allows, if it is a union of string literals (or aliases)."""
        values: set[str] = set()
        for part in _split_union(type_expr):
            if part.startswith('"') and part.endswith('"'):
                values.add(part[1:-1])
                continue
            decl = self._declaration(part)
            if decl is None or decl.startswith("{"):
                return None
            inner = self.enum_values(decl)
            if inner is None:
                return None
            values |= inner
        return values or None

    def primitive(self, type_expr: str) -> str | None:
        """ "string" | "number" | "boolean" for primitive types and aliases to them."""
        expr = type_expr.strip()
        if expr in ("string", "number", "boolean"):
            return expr
        if expr.endswith("bigint") or expr == "bigint":
            return "number"
        decl = self._declaration(expr)
        if decl is not None and not decl.startswith("{") and '"' not in decl and "|" not in decl:
            return self.primitive(decl)
        return None

    # --- checking values -----------------------------------------------------------------

    def check_query(self, route: Route, query: dict[str, str]) -> list[str]:
        """Problems with a GET request's query string against the route's form type."""
        fields = self.fields(route.form_type) if route.form_type else {}
        if fields is None:
            return [f"{route.name}: form type {route.form_type} is not an object type"]
        problems = []
        for key, value in query.items():
            field = fields.get(key)
            if field is None:
                problems.append(f"{route.name}: query field {key!r} is not in {route.form_type}")
                continue
            problems += self._check_text(f"{route.name}.{key}", field.type, value)
        problems += [
            f"{route.name}: required query field {key!r} missing"
            for key, field in fields.items()
            if not field.optional and key not in query
        ]
        return problems

    def check_body(self, route: Route, body: Any) -> list[str]:
        """Problems with a JSON request body against the route's form type."""
        if route.form_type is None:
            return [] if not body else [f"{route.name}: takes no body, got {body!r}"]
        return self.check_value(route.name, route.form_type, body, closed=True)

    def _check_text(self, where: str, type_expr: str, value: str) -> list[str]:
        allowed = self.enum_values(type_expr)
        if allowed is not None:
            ok = value in allowed
            return [] if ok else [f"{where}: {value!r} is not one of {sorted(allowed)}"]
        kind = self.primitive(type_expr)
        if kind == "boolean" and value not in ("true", "false"):
            return [f"{where}: {value!r} is not a boolean"]
        if kind == "number" and not re.fullmatch(r"-?\d+(\.\d+)?", value):
            return [f"{where}: {value!r} is not a number"]
        return []

    def check_value(self, where: str, type_expr: str, value: Any, *, closed: bool) -> list[str]:
        """Problems with a JSON value against a TypeScript type expression.

        `closed`: unknown object keys are problems (requests: the server would ignore them;
        responses: the fake would be sending a field Lemmy does not have)."""
        expr = type_expr.strip()
        if expr.endswith("| null"):
            if value is None:
                return []
            expr = expr.removesuffix("| null").strip()
        array = re.fullmatch(r"Array<(.+)>", expr)
        if array:
            if not isinstance(value, list):
                return [f"{where}: expected an array, got {type(value).__name__}"]
            problems: list[str] = []
            for index, item in enumerate(value):
                problems += self.check_value(f"{where}[{index}]", array[1], item, closed=closed)
            return problems
        generic = re.fullmatch(r"(\w+)<(.+)>", expr)
        if generic:
            decl = self._declaration(generic[1]) or ""
            param = re.search(rf"export type {generic[1]}<(\w+)>", self._raw(generic[1]))
            if param:
                decl = re.sub(rf"\b{param[1]}\b", generic[2], decl)
            return self._check_object(where, expr, decl, value, closed=closed)
        if expr in ("unknown", "any", "object") or expr.startswith("{ ["):
            return []
        allowed = self.enum_values(expr)
        if allowed is not None:
            return [] if value in allowed else [f"{where}: {value!r} is not in {sorted(allowed)}"]
        kind = self.primitive(expr)
        if kind is not None:
            python = {"string": str, "number": int | float, "boolean": bool}[kind]
            if isinstance(value, python) and not (kind == "number" and isinstance(value, bool)):
                return []
            return [f"{where}: expected {kind} ({expr}), got {value!r}"]
        found = self._declaration(expr)
        if found is None:
            return []  # a type outside dist/types (e.g. File): not checked
        return self._check_object(where, expr, found, value, closed=closed)

    def _raw(self, name: str) -> str:
        path = self.dist / "types" / f"{name}.d.ts"
        return path.read_text() if path.is_file() else ""

    def _check_object(
        self, where: str, name: str, decl: str, value: Any, *, closed: bool
    ) -> list[str]:
        if "} & " in decl or "}) |" in decl:  # a tagged union: ({ type_: "x"; } & XView) | ...
            if not isinstance(value, dict):
                return [f"{where}: expected an object ({name})"]
            tags = dict(re.findall(r'type_: "(\w+)";\s*\}\s*&\s*(\w+)\)', decl))
            tag = value.get("type_")
            if tag not in tags:
                return [f"{where}: type_ {tag!r} is not one of {sorted(tags)} ({name})"]
            rest = {k: v for k, v in value.items() if k != "type_"}
            return self.check_value(f"{where}<{tag}>", tags[tag], rest, closed=closed)
        if not decl.startswith("{"):
            return self.check_value(where, decl, value, closed=closed)
        if not isinstance(value, dict):
            return [f"{where}: expected an object ({name}), got {type(value).__name__}"]
        fields = {m[0]: Field(m[2].strip(), bool(m[1])) for m in _FIELD.findall(decl)}
        problems = []
        for key, item in value.items():
            field = fields.get(key)
            if field is None:
                if closed:
                    problems.append(f"{where}: field {key!r} is not in {name}")
                continue
            if item is None and field.optional:
                continue
            problems += self.check_value(f"{where}.{key}", field.type, item, closed=closed)
        problems += [
            f"{where}: required field {key!r} of {name} missing"
            for key, field in fields.items()
            if not field.optional and key not in value
        ]
        return problems


def _split_union(expr: str) -> list[str]:
    return [part.strip() for part in expr.split("|") if part.strip()]


def _path_matches(pattern: str, path: str) -> bool:
    """`/api/v4/image/{filename}`-style patterns are not used by the client; exact match."""
    return pattern == path


def _package_version(package_dir: Path) -> str:
    text = (package_dir / "package.json").read_text()
    match = re.search(r'"version":\s*"([^"]+)"', text)
    return match[1] if match else "?"


@functools.cache
def load(api_version: str) -> Reference:
    """The reference for "v3" or "v4"; ReferenceMissing (with the install hint) if absent."""
    alias, _version = PACKAGES[api_version]
    package = REFERENCE_DIR / "node_modules" / alias
    if not (package / "dist" / "http.js").is_file():
        raise ReferenceMissing(f"{INSTALL_HINT} (looked in {package})")
    return Reference(api_version, package)
