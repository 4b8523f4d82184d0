"""Code in eval sets, run as promptfoo runs it: ``javascript`` assertions and ``transform``
expressions in node (``new Function('output', 'context', body)``, a one-line value is
``return <value>``), ``python`` assertions in a Python subprocess (``def main(output,
context)`` wrapping the value). Each runs in its own process with a time limit.

Results follow promptfoo: a boolean is the verdict; a number is the score (pass when above 0,
or at least the assertion's threshold); a ``{pass, score, reason}`` mapping is taken as it is;
code that throws fails the assertion with the error as the reason. node missing is not a
failure but an error for the case (CaseError) that names node and the assertion.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
from typing import Any

from devloop.evals.checks import CaseError, Output, short
from devloop.evals.evalset import Assertion

TIMEOUT_S = 30.0

NODE_HARNESS = r"""
const chunks = [];
process.stdin.on('data', (c) => chunks.push(c));
process.stdin.on('end', async () => {
  const job = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  try {
    const body = job.code.includes('\n') ? job.code : `return ${job.code}`;
    const fn = new Function(job.arg, 'context', body);
    const value = await fn(job.input, job.context);
    process.stdout.write(JSON.stringify({ok: true, kind: typeof value,
                                         value: value === undefined ? null : value}));
  } catch (e) {
    process.stdout.write(JSON.stringify({ok: false, error: String((e && e.message) || e)}));
  }
});
"""

PYTHON_HARNESS = r"""
import json, sys
job = json.loads(sys.stdin.read())
ns = {}
try:
    exec(compile(job["script"], "<python assertion>", "exec"), ns)
    value = ns["main"](job["output"], job["context"])
    out = {"ok": True, "kind": type(value).__name__, "value": value}
except Exception as exc:  # noqa: BLE001
    out = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
sys.stdout.write(json.dumps(out, default=str))
"""


async def _run(argv: list[str], job: dict[str, Any], what: str) -> dict[str, Any]:
    proc = await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    try:
        stdout, stderr = await asyncio.wait_for(
            proc.communicate(json.dumps(job).encode("utf-8")), TIMEOUT_S)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return {"ok": False, "error": f"{what} ran longer than {TIMEOUT_S:g} s"}
    try:
        result = json.loads(stdout.decode("utf-8") or "null")
    except json.JSONDecodeError:
        result = None
    if not isinstance(result, dict):
        tail = stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or ["no output"]
        return {"ok": False, "error": f"{what} crashed: {tail[0]}"}
    return result


def node_path(what: str) -> str:
    node = shutil.which("node")
    if node is None:
        raise CaseError(f"{what} needs node (Node.js) on PATH, and node was not found; "
                        "install Node.js or remove the assertion")
    return node


def context_for(a: Assertion | None, out: Output) -> dict[str, Any]:
    ctx: dict[str, Any] = {"prompt": out.prompt, "vars": dict(out.vars),
                           "test": {"vars": dict(out.vars)}}
    config = (a.model_extra or {}).get("config") if a is not None else None
    if config is not None:
        ctx["config"] = config
    return ctx


async def run_javascript(code: str, arg: str, value: Any, context: dict[str, Any],
                         what: str) -> dict[str, Any]:
    node = node_path(what)
    return await _run([node, "-e", NODE_HARNESS],
                      {"code": code, "arg": arg, "input": value, "context": context}, what)


async def apply_transform(code: str, out: Output) -> str:
    """A test's ``options.transform``: the output as the expression returns it."""
    what = f"transform {short(code)}"
    result = await run_javascript(code, "output", out.text,
                                  {"vars": dict(out.vars), "prompt": {"raw": out.prompt}}, what)
    if not result.get("ok"):
        raise CaseError(f"{what} failed: {result.get('error')}")
    value = result.get("value")
    if value is None:
        raise CaseError(f"{what} returned no value")
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def python_script(code: str) -> str:
    """promptfoo's wrapper around an inline python assertion."""
    if "\n" not in code:
        return f"import json\n\ndef main(output, context):\n    return {code}\n"
    indent = "    "
    for line in code.split("\n"):
        stripped = line.lstrip()
        if stripped and stripped != line:
            indent = line[: len(line) - len(stripped)]
            break
    body = "\n".join(f"{indent}{line}" for line in code.split("\n"))
    return f"import json\n\ndef main(output, context):\n{body}\n"


def _verdict(kind: str, value: Any, threshold: float | None) -> tuple[bool, float, str]:
    if isinstance(value, bool) or (kind == "python" and isinstance(value, str)
                                   and value.lower() in ("true", "false")):
        ok = value if isinstance(value, bool) else value.lower() == "true"
        return ok, 1.0 if ok else 0.0, f"returned {str(ok).lower()}"
    if isinstance(value, dict) and "pass" in value:
        score = float(value.get("score", 1.0 if value["pass"] else 0.0))
        ok = bool(value["pass"])
        if kind == "python" and threshold and score < threshold:
            ok = False
        return ok, score, str(value.get("reason") or f"returned pass={str(ok).lower()}")
    if isinstance(value, int | float):
        score = float(value)
        ok = score >= threshold if threshold else score > 0
        return ok, score, f"returned {score:g}"
    raise ValueError(f"must return a boolean, number or {{pass, score, reason}}, got "
                     f"{short(json.dumps(value, default=str))}")


async def run_code(kind: str, code: str, a: Assertion, out: Output
                   ) -> tuple[bool, float, str]:
    """(holds, score, what was observed) for a javascript or python assertion."""
    what = f"{kind} assertion {short(code)}"
    context = context_for(a, out)
    if kind == "javascript":
        result = await run_javascript(code.rstrip(), "output", out.text, context, what)
    else:
        result = await _run([sys.executable, "-I", "-c", PYTHON_HARNESS],
                            {"script": python_script(code), "output": out.text,
                             "context": context}, what)
    if not result.get("ok"):
        return False, 0.0, f"code failed: {result.get('error')}"
    try:
        return _verdict(kind, result.get("value"), a.threshold)
    except (TypeError, ValueError) as exc:
        return False, 0.0, f"code {exc}"
