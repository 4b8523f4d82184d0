"""Cascade routes: answer on the route's tier, check the answer, escalate when a check fails.

A route with ``escalate_to`` and ``checks`` (see devloop/routing/checks.py) makes the gateway
call ``run_cascade`` instead of answering directly. The first tier's answer is checked
before it is cached or sent; when a check fails, its ledger row keeps the failing check in
``error`` (status stays 200: the upstream answered), and the call is made again on
``escalate_to`` under a new request id (``<id>.esc``) whose row has ``parent_request_id``
pointing at the first. The client gets the escalated answer, once.

Streaming: every check needs the whole answer, so a streaming request on a cascade route is
answered in full first and then replayed as one stream (the check runs before the first
byte; time to first token is the whole answer's). Requests on other routes stream as usual.

``judge`` asks the tier that answered for a PASS/FAIL verdict on its own answer; a reply
that is not a verdict fails the check (fail closed).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Awaitable, Callable
from typing import Any

from devloop.audit.verdict import parse_verdict
from devloop.backends import BackendError
from devloop.routing.checks import CheckResult, first_failure
from devloop.routing.policy import fallback_chain
from devloop.types import ChatRequest, Completion, Message

# The gateway's types are Any here: the gateway imports this module (no import cycle).
Gateway = Prepared = CallResult = Any

# (prepared call, tier that answered, answer) -> None, or the failure text for the row
AnswerCheck = Callable[[Any, str, Completion], Awaitable[str | None]]
JUDGE_PROMPT = (
    "You check an assistant's answer. Request:\n{request}\n\nAnswer:\n{answer}\n\n"
    "Is the answer correct, complete and responsive? Reply with one word: PASS or FAIL.")


async def local_judge(gw: Gateway, tier: str, req: object, c: Completion) -> CheckResult | None:
    """The answering tier's own verdict; None when it passes."""
    backend = gw.router.backends[tier]
    ask = ChatRequest(model=backend.default_model, temperature=0.0, max_tokens=8,
                      messages=[Message(role="user", content=JUDGE_PROMPT.format(
                          request=req.prompt_text()[:4000], answer=c.text[:4000]))])
    try:
        reply = await backend.chat(ask, backend.default_model, None)
    except BackendError as exc:
        return CheckResult("judge", False, f"the judge failed: {exc}"[:200])
    verdict = parse_verdict(reply.text, pass_words=("pass",), fail_words=("fail",))
    if verdict is None:
        return CheckResult("judge", False, f"unparseable verdict {reply.text[:60]!r}")
    return None if verdict else CheckResult("judge", False, "the judge said FAIL")


async def run_cascade(gw: Gateway, prep: Prepared) -> CallResult:
    decision = prep.decision
    target = decision.escalate_to
    assert target is not None
    failed: list[CheckResult] = []

    async def check(p: Prepared, tier: str, completion: Completion) -> str | None:
        if tier == target:  # a fallback already served it on the escalation tier
            return None
        result = first_failure(decision.checks, p.req, completion)
        if result is None and "judge" in decision.checks:
            result = await local_judge(gw, tier, p.req, completion)
        if result is None:
            return None
        failed.append(result)
        return f"cascade check {result.check} failed: {result.reason}; escalated to {target}"

    first = await gw.answer(prep, check)
    if not failed:
        return first
    escalated = dataclasses.replace(
        decision, tier=target, model=gw.profile.tiers[target].model,
        reason=f"{decision.reason}; escalated to {target} ({failed[0].check} failed)",
        fallback_chain=fallback_chain(target, gw.profile), escalate_to=None)
    rid = f"{prep.ctx.request_id}.esc"
    ctx = dataclasses.replace(prep.ctx, request_id=rid)
    forward = dict(prep.forward_headers, **{"X-Request-Id": rid}) \
        if prep.forward_headers is not None else None
    second = dataclasses.replace(prep, ctx=ctx, decision=escalated, started=time.perf_counter(),
                                 reservation=None, rate_scopes=[], forward_headers=forward,
                                 parent_request_id=prep.ctx.request_id)
    return await gw.answer(second)
