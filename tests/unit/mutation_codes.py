"""Which error codes each mutation can return, read from the source: the codes of the domain errors built in
the functions its resolver can reach.

A function's codes: the `code=ErrorCode.X` it names, and the default code of each domain error it builds
without one (`NotFound(…)` is NOT_FOUND). A call is followed when the source says where it goes: a function
of the module, an imported function or module (`invites.create_invite`), a method of the class (`self.x`).
A method called on some other object (`provider.sign_in`, the identity provider) is followed to every method
of that name in the caller's context and the kernel: more than one may run, so all of them count. Code that
maps errors by value (`ErrorCode.__members__`, a media error's code) is listed in DYNAMIC by hand.

Reading the source this way can miss a path the code takes (a call through a variable holding a function)
and can count one it never takes; the runtime check (kernel/web/mutations.py `DeclaredErrors`, strict under
the tests) catches what it misses.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("subgraphs", "media", "db")

DEFAULT_CODES = {
    "ValidationFailed": "INVALID_INPUT",
    "NotFound": "NOT_FOUND",
    "PermissionDenied": "FORBIDDEN",
    "Conflict": "ALREADY_EXISTS",
    "AuthenticationFailed": "INVALID_CREDENTIALS",
}
# Codes taken from a media error's own code (`ErrorCode.__members__.get(error.code.value, …)`).
IMAGE_CODES = frozenset({"UNSUPPORTED_IMAGE_TYPE", "IMAGE_UNDECODABLE", "IMAGE_DIMENSIONS_TOO_LARGE"})
FILE_CODES = frozenset({"FILE_TOO_LARGE", "EMPTY_FILE", "CONTENT_TYPE_MISMATCH"})
# Codes the reading counts on a path that cannot run, by resolver, with the reason.
PICTURE_CODES = IMAGE_CODES | {"FILE_TOO_LARGE"}
UNREACHABLE: dict[str, frozenset[str]] = {
    # Removing a picture passes no file: `store_upload` never runs (the helper is shared with setting one).
    "subgraphs.servers.schema:Mutation.remove_server_picture": PICTURE_CODES,
    "subgraphs.servers.schema:Mutation.remove_server_banner": PICTURE_CODES,
    "subgraphs.users.schema:Mutation.remove_avatar": PICTURE_CODES,
    "subgraphs.users.schema:Mutation.remove_banner": PICTURE_CODES,
    # Signing up signs the new account in, through the provider's sign-in: an account made a moment ago
    # has no two-factor authentication to ask for.
    "subgraphs.users.schema:Mutation.sign_up": frozenset({"TOTP_REQUIRED", "INVALID_TOTP_CODE"}),
}
RESOLVER_CLASSES = ("Query", "Mutation", "Mutations", "Subscription", "Subscriptions")
DYNAMIC: dict[str, frozenset[str]] = {
    "subgraphs.kernel.web.uploads:store_upload": IMAGE_CODES,  # Pictures.store: media/images.py
    "subgraphs.messages.attachments:read_uploads": FILE_CODES,  # media/attachments.py
    "subgraphs.messages.attachments:store_files": FILE_CODES,
}


@dataclass
class Function:
    module: str
    name: str  # `f`, or `Class.f` for a method
    node: ast.FunctionDef | ast.AsyncFunctionDef
    codes: set[str] = field(default_factory=set)
    calls: set[str] = field(default_factory=set)  # keys of other functions


@dataclass
class Module:
    name: str
    tree: ast.Module
    modules: dict[str, str] = field(default_factory=dict)  # local name -> module
    names: dict[str, tuple[str, str]] = field(default_factory=dict)  # local name -> (module, name)
    classes: set[str] = field(default_factory=set)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _functions(tree: ast.Module) -> Iterator[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]]:
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            yield node.name, node
        elif isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
                    yield f"{node.name}.{item.name}", item


@dataclass
class Program:
    modules: dict[str, Module]
    functions: dict[str, Function]  # "module:name" -> function
    error_classes: dict[str, str]  # domain error class -> default code

    def resolve(self, module: str, name: str, depth: int = 0) -> str | None:
        """The key of `name` as module `module` sees it (following re-exports)."""
        if f"{module}:{name}" in self.functions:
            return f"{module}:{name}"
        found = self.modules.get(module)
        if found is None or depth > 5 or name not in found.names:
            return None
        return self.resolve(*found.names[name], depth=depth + 1)

    def reachable_codes(self, key: str) -> set[str]:
        seen, todo, codes = {key}, [key], set()
        while todo:
            function = self.functions[todo.pop()]
            codes |= function.codes
            for callee in function.calls - seen:
                seen.add(callee)
                todo.append(callee)
        return codes


def _context_of(module: str) -> str:
    return ".".join(module.split(".")[:2])


def _read() -> Program:
    paths = [p for package in PACKAGES for p in sorted((ROOT / package).rglob("*.py"))]
    modules: dict[str, Module] = {}
    for path in paths:
        name = _module_name(path)
        modules[name] = Module(name, ast.parse(path.read_text(), str(path)))
    for module in modules.values():
        package = (
            module.name if (ROOT / module.name.replace(".", "/")).is_dir() else module.name.rpartition(".")[0]
        )
        for node in ast.walk(module.tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    module.modules[alias.asname or alias.name.split(".")[0]] = alias.name
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")
                    base = ".".join([*parts[: len(parts) - node.level + 1], base])
                for alias in node.names:
                    local = alias.asname or alias.name
                    if f"{base}.{alias.name}" in modules:
                        module.modules[local] = f"{base}.{alias.name}"
                    else:
                        module.names[local] = (base, alias.name)
        module.classes = {n.name for n in module.tree.body if isinstance(n, ast.ClassDef)}
    error_classes = dict(DEFAULT_CODES)
    for _ in range(3):  # subclasses of subclasses
        for module in modules.values():
            for node in ast.walk(module.tree):
                if isinstance(node, ast.ClassDef):
                    bases = [b.id if isinstance(b, ast.Name) else getattr(b, "attr", "") for b in node.bases]
                    default = next((error_classes[b] for b in bases if b in error_classes), None)
                    if default is not None:
                        error_classes.setdefault(node.name, default)
    functions = {
        f"{module.name}:{name}": Function(module.name, name, node)
        for module in modules.values()
        for name, node in _functions(module.tree)
    }
    program = Program(modules, functions, error_classes)
    methods: dict[str, list[str]] = {}
    for key, function in functions.items():
        if "." in function.name:
            methods.setdefault(function.name.split(".")[-1], []).append(key)
    for key, function in functions.items():
        _summarise(program, modules[function.module], function, methods)
        function.codes |= DYNAMIC.get(key, frozenset())
    return program


# The access checks (kernel/tenancy/access_checks.py, and messages' `access_message` built the same way) raise
# by their arguments, not by their body: NOT_FOUND always; FORBIDDEN with `needs`, or with `kinds` but no
# `wrong_kind`; INVALID_INPUT with `kinds` and a `wrong_kind`. Read at each call instead of followed.
# A call under `or_none(…)` (a query's form: it turns NOT_FOUND and FORBIDDEN into null) is not read or
# followed at all: the checks and their wrappers raise nothing else.
ACCESS_CHECKS = {
    *(
        f"subgraphs.kernel.tenancy.access_checks:{name}"
        for name in (
            "access_channel",
            "check_channel",
            "access_channel_to_send",
            "access_server",
            "check_server",
        )
    ),
    "subgraphs.messages.service:access_message",
}


def _access_codes(call: ast.Call) -> set[str]:
    given = {kw.arg for kw in call.keywords}
    codes = {"NOT_FOUND"}
    if "needs" in given:
        codes.add("FORBIDDEN")
    if "kinds" in given:
        codes.add("INVALID_INPUT" if "wrong_kind" in given else "FORBIDDEN")
    return codes


def _summarise(program: Program, module: Module, function: Function, methods: dict[str, list[str]]) -> None:
    cls = function.name.split(".")[0] if "." in function.name else None
    called_attributes = {id(n.func) for n in ast.walk(function.node) if isinstance(n, ast.Call)}
    calls = [n for n in ast.walk(function.node) if isinstance(n, ast.Call)]
    guarded = {
        id(arg)
        for n in calls
        if getattr(n.func, "id", getattr(n.func, "attr", "")) == "or_none"
        for arg in n.args
    }
    checks = {id(n.func): n for n in calls if _target(program, module, cls, n.func) in ACCESS_CHECKS}
    for call in checks.values():
        if id(call) not in guarded:
            function.codes |= _access_codes(call)
    skipped = set(checks) | {id(n.func) for n in calls if id(n) in guarded}
    for node in ast.walk(function.node):
        if id(node) in skipped:
            continue  # an access check, read above by its arguments; or a call under `or_none`
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == "ErrorCode"
            and node.attr.isupper()
        ):
            function.codes.add(node.attr)
        if isinstance(node, ast.Call):
            func = node.func
            called = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
            if called in program.error_classes and not any(kw.arg == "code" for kw in node.keywords):
                function.codes.add(program.error_classes[called])
        # A function named, called or passed along (`_with_purges(…, service.block, …)`): reachable.
        target = _target(program, module, cls, node)
        if target is not None:
            function.calls.add(target)
        elif isinstance(node, ast.Attribute) and id(node) in called_attributes:
            # A method of an object the source does not type here: every method of that name in the
            # caller's context or the kernel (never a resolver: resolvers are not called as methods).
            for key in methods.get(node.attr, ()):
                callee = program.functions[key]
                if _context_of(callee.module) in (_context_of(module.name), "subgraphs.kernel") and not (
                    callee.name.split(".")[0].endswith(RESOLVER_CLASSES)
                ):
                    function.calls.add(key)


def _target(program: Program, module: Module, cls: str | None, node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return program.resolve(module.name, node.id)
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
        owner = node.value.id
        if owner in module.modules:
            return program.resolve(module.modules[owner], node.attr)
        if owner in module.classes:
            return program.resolve(module.name, f"{owner}.{node.attr}")
        if owner in ("self", "cls") and cls is not None:
            return program.resolve(module.name, f"{cls}.{node.attr}")
    return None


@cache
def program() -> Program:
    return _read()


def mutation_resolvers() -> list[str]:
    """The keys (`module:Class.method`) of the resolvers of every `Mutation` class of the schemas."""
    found = []
    for module in program().modules.values():
        for node in module.tree.body:
            if isinstance(node, ast.ClassDef) and node.name.endswith(("Mutation", "Mutations")):
                for item in node.body:
                    if isinstance(item, ast.AsyncFunctionDef | ast.FunctionDef) and any(
                        "strawberry.mutation" in ast.unparse(d) for d in item.decorator_list
                    ):
                        found.append(f"{module.name}:{node.name}.{item.name}")
    return found


def codes_of_mutations() -> dict[str, set[str]]:
    """Resolver key -> the codes its code can reach."""
    return {
        key: program().reachable_codes(key) - UNREACHABLE.get(key, frozenset())
        for key in mutation_resolvers()
    }
