"""``python3 -m cairn_worker.diagram <entry.py>``: the workflow graph JSON of Python workflows.

An ``ast`` analysis (no user code runs) emitting the schema of ``packages/diagram`` (``version: 1``,
``workflow: {class_name, functions, nodes}``) for each ``WorkflowEntrypoint`` subclass. Decorated
steps appear where they are awaited, after their dependencies: ``concurrent=True`` dependencies as a
``parallel`` node of kind ``all``, others in parameter order. Each ``step_do`` node lists its
dependencies in ``depends`` (step names); a dependency already shown is not repeated.
"""

import ast
import json
import sys

UNKNOWN = "unknown"
DEFAULT_CONFIG = {"retries": {"limit": 5, "delay": 10000, "backoff": "exponential"}, "timeout": "10 minutes"}


def _const(node, default=UNKNOWN):
    return node.value if isinstance(node, ast.Constant) else default


def _config(node):
    config = json.loads(json.dumps(DEFAULT_CONFIG))
    if not isinstance(node, ast.Dict):
        return config
    for k, v in zip(node.keys, node.values):
        key = _const(k, None)
        if key == "retries" and isinstance(v, ast.Dict):
            for rk, rv in zip(v.keys, v.values):
                if _const(rk, None) in ("limit", "delay", "backoff"):
                    config["retries"][_const(rk)] = _const(rv)
        elif key == "timeout":
            config["timeout"] = _const(v)
    return config


def _kw(call, name):
    for k in call.keywords:
        if k.arg == name:
            return k.value
    return None


class RunAnalyzer:
    def __init__(self, implicit):
        self.implicit = implicit
        self.declared = {}
        self.shown = set()
        self.counter = 0

    def _id(self):
        self.counter += 1
        return f"n{self.counter - 1}"

    def declare(self, fn):
        for dec in fn.decorator_list:
            call = dec if isinstance(dec, ast.Call) else None
            target = call.func if call else dec
            if not (isinstance(target, ast.Attribute) and target.attr == "do"):
                continue
            name = fn.name
            if call and call.args:
                name = _const(call.args[0], fn.name)
            name_kw = _kw(call, "name") if call else None
            if name_kw is not None:
                name = _const(name_kw, fn.name)
            params = [a.arg for a in fn.args.args if a.arg != "ctx"]
            depends_node = _kw(call, "depends") if call else None
            if depends_node is None and call and len(call.args) > 1:
                depends_node = call.args[1]
            if isinstance(depends_node, ast.List):
                deps = [self.declared[e.id]["name"] for e in depends_node.elts if isinstance(e, ast.Name) and e.id in self.declared]
            else:
                deps = [self.declared[p]["name"] for p in params if p in self.declared]
            concurrent = _const(_kw(call, "concurrent"), False) if call else False
            config = _config(_kw(call, "config") if call else None)
            self.declared[fn.name] = {"name": name, "deps": deps, "concurrent": concurrent is True, "config": config}
            return True
        return False

    def _by_name(self, step_name):
        for d in self.declared.values():
            if d["name"] == step_name:
                return d
        return None

    def expand(self, d, stack=()):
        if d["name"] in stack:
            return []
        nodes = []
        dep_nodes = []
        for dep_name in d["deps"]:
            dep = self._by_name(dep_name)
            if dep is None or dep_name in self.shown:
                continue
            dep_nodes.append(self.expand(dep, (*stack, d["name"])))
        dep_nodes = [n for n in dep_nodes if n]
        if d["concurrent"] and len(dep_nodes) > 1:
            nodes.append({
                "type": "parallel",
                "kind": "all",
                "id": self._id(),
                "nodes": [n[0] if len(n) == 1 else {"type": "block", "id": self._id(), "nodes": n} for n in dep_nodes],
            })
        else:
            for n in dep_nodes:
                nodes.extend(n)
        self.shown.add(d["name"])
        nodes.append({
            "type": "step_do",
            "kind": "do",
            "id": self._id(),
            "name": d["name"],
            "config": d["config"],
            "nodes": [],
            "depends": d["deps"],
        })
        return nodes

    def step_call(self, call):
        f = call.func
        if not isinstance(f, ast.Attribute):
            return None
        if isinstance(f.value, ast.Name) and f.value.id in self.declared:
            return None
        name = _const(call.args[0]) if call.args else UNKNOWN
        if f.attr == "sleep":
            return {"type": "step_sleep", "kind": "sleep", "id": self._id(), "name": name,
                    "duration": _const(call.args[1]) if len(call.args) > 1 else UNKNOWN}
        if f.attr == "sleep_until":
            return {"type": "step_sleep_until", "kind": "sleep", "id": self._id(), "name": name,
                    "timestamp": _const(call.args[1]) if len(call.args) > 1 else UNKNOWN}
        if f.attr == "wait_for_event":
            timeout = _kw(call, "timeout")
            return {"type": "step_wait_for_event", "kind": "waitForEvent", "id": self._id(), "name": name,
                    "options": {"event_type": _const(call.args[1]) if len(call.args) > 1 else UNKNOWN,
                                "timeout": _const(timeout) if timeout is not None else "24 hours"}}
        return None

    def visit(self, body):
        nodes = []
        for stmt in body:
            if isinstance(stmt, (ast.AsyncFunctionDef, ast.FunctionDef)):
                self.declare(stmt)
                continue
            for node in ast.walk(stmt):
                if isinstance(node, ast.Await) and isinstance(node.value, ast.Call):
                    call = node.value
                    if isinstance(call.func, ast.Name) and call.func.id in self.declared:
                        nodes.extend(self.expand(self.declared[call.func.id]))
                    else:
                        n = self.step_call(call)
                        if n:
                            nodes.append(n)
        return nodes


def analyze(source, implicit=True):
    tree = ast.parse(source)
    graphs = []
    for cls in tree.body:
        if not isinstance(cls, ast.ClassDef):
            continue
        if not any(isinstance(b, (ast.Name, ast.Attribute)) and getattr(b, "id", getattr(b, "attr", "")) == "WorkflowEntrypoint" for b in cls.bases):
            continue
        run = next((f for f in cls.body if isinstance(f, (ast.AsyncFunctionDef, ast.FunctionDef)) and f.name == "run"), None)
        nodes = RunAnalyzer(implicit).visit(run.body) if run else []
        graphs.append({"version": 1, "workflow": {"class_name": cls.name, "functions": {}, "nodes": nodes}})
    return graphs


if __name__ == "__main__":
    with open(sys.argv[1], encoding="utf-8") as f:
        print(json.dumps(analyze(f.read()), indent=2))
