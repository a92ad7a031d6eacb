"""Every user-facing message the code can raise, found by reading the source (no import, no stack).

A message is the text handed to a domain error (`ValidationFailed("…")`), a top-level error
(`bad_user_input("…")`), a media error that reaches the client (`super().__init__("…")` in a
`MediaError` subclass), a voice refusal, an access check's words (`refusal=`, `wrong_kind=`) or a
webhook payload problem. An f-string becomes a template: each `{expression}` is a variable part. A
choice between literals (`a if c else b`, `"x" + ("." if c else ": y")`) yields every combination.
Messages passed on from elsewhere (`error.message`) are found where they were first written.
"""

from __future__ import annotations

import ast
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("subgraphs", "media", "db", "beep")

# The code a domain error carries when the call names none (subgraphs/kernel/errors.py).
DEFAULT_CODES = {
    "ValidationFailed": "INVALID_INPUT",
    "NotFound": "NOT_FOUND",
    "PermissionDenied": "FORBIDDEN",
    "Conflict": "ALREADY_EXISTS",
    "AuthenticationFailed": "INVALID_CREDENTIALS",
    "PayloadProblem": "INVALID_INPUT",
}
# Top-level errors: the helper fixes the code.
TOP_LEVEL = {
    "bad_user_input": "BAD_USER_INPUT",
    "not_found": "NOT_FOUND",
    "forbidden": "FORBIDDEN",
    "unauthenticated": "UNAUTHENTICATED",
}
# How subgraphs/channels/voice_service.py maps a media server's refusal to a code.
VOICE_CODES = {
    "INVALID_SDP": "INVALID_SDP",
    "NO_AUDIO": "NO_AUDIO",
    "STREAM_FORBIDDEN": "FORBIDDEN",
    "ALREADY_IN_CALL": "ALREADY_IN_CALL",
    "NOT_IN_CALL": "NOT_IN_CALL",
    "ROOM_FULL": "LIMIT_REACHED",
    "CONNECTION_FAILED": "MEDIA_UNAVAILABLE",
}
# Media errors whose code has no ErrorCode of the same name become INVALID_INPUT (kernel/web/uploads.py).
MEDIA_CODES = {
    "FILE_TOO_LARGE",
    "UNSUPPORTED_IMAGE_TYPE",
    "IMAGE_UNDECODABLE",
    "IMAGE_DIMENSIONS_TOO_LARGE",
    "EMPTY_FILE",
    "CONTENT_TYPE_MISMATCH",
}
# The keywords through which a caller words an access check's refusals, and the codes they travel with.
ACCESS_CHECK_WORDS = {"refusal": "FORBIDDEN", "wrong_kind": "INVALID_INPUT"}
# Media errors that never reach a client: storage keys and signatures are the server's own business.
INTERNAL_MEDIA = {"InvalidKey", "ObjectNotFound", "SignatureInvalid", "SignatureExpired", "FileTooLarge"}


@dataclass(frozen=True)
class Site:
    template: str  # the message, each variable part written `{…}`
    code: str | None  # the code it travels with, when the source says
    where: str

    def sample(self) -> str:
        """The message with each variable part replaced by a marker no template holds."""
        out, depth = [], 0
        for ch in self.template:
            if ch == "{":
                if depth == 0:
                    out.append("\x00")
                depth += 1
            elif ch == "}" and depth:
                depth -= 1
            elif depth == 0:
                out.append(ch)
        return "".join(out)


def _texts(node: ast.expr, names: dict[str, list[str]] | None = None) -> list[str] | None:
    """The texts `node` can evaluate to; `names` holds what the module assigns to a name. A text constant
    (`INVALID_TEXT = "…"` in any module) inside an f-string is part of the message, not a variable."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.Name) and names is not None:
        return names.get(node.id)
    if isinstance(node, ast.JoinedStr):
        parts: list[list[str]] = []
        for value in node.values:
            if isinstance(value, ast.Constant):
                parts.append([str(value.value)])
            else:
                assert isinstance(value, ast.FormattedValue)
                inner = value.value
                constant = isinstance(inner, ast.Name) and inner.id.isupper() and _CONSTANTS.get(inner.id)
                parts.append(constant or ["{" + ast.unparse(inner) + "}"])
        return ["".join(combo) for combo in itertools.product(*parts)]
    if isinstance(node, ast.IfExp):
        left, right = _texts(node.body, names), _texts(node.orelse, names)
        return None if left is None or right is None else left + right
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _texts(node.left, names), _texts(node.right, names)
        return None if left is None or right is None else [a + b for a, b in itertools.product(left, right)]
    return None


def _name(func: ast.expr) -> str | None:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return None


def _enum_member(node: ast.expr | None) -> str | None:
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
        return node.attr
    return None


def _keyword(call: ast.Call, name: str) -> ast.expr | None:
    return next((kw.value for kw in call.keywords if kw.arg == name), None)


def _code(call: ast.Call, default: str | None) -> list[str | None]:
    given = _keyword(call, "code")
    if given is None:
        return [default]
    if isinstance(given, ast.IfExp):
        return [_enum_member(given.body), _enum_member(given.orelse)]
    return [_enum_member(given)]


def _media_classes(tree: ast.Module) -> dict[str, str]:
    """MediaError subclasses in a module -> their code."""
    found = {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and any(_name(base) == "MediaError" for base in node.bases):
            for item in node.body:
                if isinstance(item, ast.Assign) and _name(item.targets[0]) == "code":
                    member = _enum_member(item.value)
                    if member:
                        found[node.name] = member
    return found


_CONSTANTS: dict[str, list[str]] = {}  # text constants of every module, filled by message_sites()


def _assigned_texts(scope: ast.AST, *, nested: bool = True) -> dict[str, list[str]]:
    """`message = "…"` (or a choice of literals) in `scope` (with `nested`, in its functions too), by name."""
    names: dict[str, list[str]] = {}
    for node in ast.walk(scope) if nested else getattr(scope, "body", []):
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            texts = _texts(node.value)
            if texts:
                names.setdefault(node.targets[0].id, []).extend(texts)
    return names


def _error_classes(trees: list[ast.Module]) -> dict[str, str]:
    """Domain error classes (the kernel's and their subclasses anywhere) -> their default code."""
    codes = dict(DEFAULT_CODES)
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                base = next((codes[_name(b) or ""] for b in node.bases if _name(b) in codes), None)
                if base is not None:
                    codes.setdefault(node.name, base)
    return codes


def _sites_in(path: Path, tree: ast.Module, error_codes: dict[str, str]) -> Iterator[Site]:
    where_of = str(path.relative_to(ROOT))
    module_names = _assigned_texts(tree, nested=False)
    scope_of: dict[int, dict[str, list[str]]] = {}  # a call -> the names its innermost function sees
    for function in (n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)):
        names = module_names | _assigned_texts(function)
        for node in ast.walk(function):
            scope_of[id(node)] = names
    media = _media_classes(tree)
    for cls in (n for n in tree.body if isinstance(n, ast.ClassDef) and n.name in media):
        if cls.name in INTERNAL_MEDIA or media[cls.name] not in MEDIA_CODES:
            continue
        for call in (n for n in ast.walk(cls) if isinstance(n, ast.Call) and _name(n.func) == "__init__"):
            for text in _texts(call.args[0]) or ():
                yield Site(text, media[cls.name], f"{where_of}:{call.lineno}")
    for func in (n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name in TOP_LEVEL):
        for default in func.args.defaults:  # unauthenticated(message="Sign in to do this.")
            for text in _texts(default) or ():
                yield Site(text, TOP_LEVEL[func.name], f"{where_of}:{func.lineno}")
    for call in (n for n in ast.walk(tree) if isinstance(n, ast.Call)):
        name = _name(call.func)
        masked = _keyword(call, "error_message")  # MaskErrors(error_message=…): what a bug looks like
        if masked is not None:
            for text in _texts(masked) or ():
                yield Site(text, "INTERNAL_SERVER_ERROR", f"{where_of}:{call.lineno}")
        # An access check's words (kernel/tenancy/access_checks.py): `refusal=` is raised as FORBIDDEN,
        # `wrong_kind=` as INVALID_INPUT.
        for keyword, code in ACCESS_CHECK_WORDS.items():
            words = _keyword(call, keyword)
            for text in (_texts(words, scope_of.get(id(call), module_names)) if words else None) or ():
                yield Site(text, code, f"{where_of}:{call.lineno}")
        message: ast.expr | None = None
        codes: list[str | None] = []
        if name in error_codes and name != "PayloadProblem":
            message, codes = (call.args[0] if call.args else None), _code(call, error_codes[name])
        elif name == "PayloadProblem":
            message, codes = call.args[1], _code(call, "INVALID_INPUT")
        elif name in TOP_LEVEL:
            message, codes = (call.args[0] if call.args else None), [TOP_LEVEL[name]]
        elif name == "BeepGraphQLError":
            message, codes = call.args[0], [_enum_member(call.args[1]) if len(call.args) > 1 else None]
        elif name == "translate":  # a message translated where it is sent, outside the error types
            message, codes = call.args[0], [_enum_member(_keyword(call, "code"))]
        elif name == "VoiceRefused":
            reason = _enum_member(call.args[0])
            message, codes = call.args[1], [VOICE_CODES.get(reason or "")]
        if message is None:
            continue
        for text in _texts(message, scope_of.get(id(call), module_names)) or ():
            for code in codes:
                yield Site(text, code, f"{where_of}:{call.lineno}")


def message_sites() -> list[Site]:
    paths = [path for package in PACKAGES for path in sorted((ROOT / package).rglob("*.py"))]
    trees = {path: ast.parse(path.read_text(), str(path)) for path in paths}
    error_codes = _error_classes(list(trees.values()))
    for tree in trees.values():
        _CONSTANTS.update({name: texts for name, texts in _assigned_texts(tree).items() if name.isupper()})
    return [site for path, tree in trees.items() for site in _sites_in(path, tree, error_codes)]
