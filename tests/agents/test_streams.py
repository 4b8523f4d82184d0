"""The event sequences the faces build from chat deltas (pure, no server)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import orjson

from devloop.server.anthropic_stream import MessageStream
from devloop.server.responses_stream import ResponseStream
from devloop.types import ChatRequest, Delta, Message, Usage

CALL = [{"index": 0, "id": "call_1", "type": "function",
         "function": {"name": "f", "arguments": ""}}]
ARGS = [{"index": 0, "function": {"arguments": '{"a": 1}'}}]


def events(raw: bytes) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for block in raw.split(b"\n\n"):
        lines = block.split(b"\n")
        if len(lines) == 2:
            out.append((lines[0][7:].decode(), orjson.loads(lines[1][6:])))
    return out


def test_anthropic_sequence_with_thinking_text_and_tool() -> None:
    ms = MessageStream("r1", "m")
    raw = ms.start()
    raw += ms.delta(SimpleNamespace(text="", tool_calls=None,  # a reasoning chat tier
                                    extra={"reasoning_content": "hmm"}))  # type: ignore[arg-type]
    raw += ms.delta(Delta(text="Hi"))
    raw += ms.delta(Delta(tool_calls=CALL))
    raw += ms.delta(Delta(tool_calls=ARGS))
    raw += ms.finish(Delta(finish_reason="tool_calls", usage=Usage(30, 5, 10)))
    got = events(raw)
    assert [name for name, _ in got] == [
        "message_start", "ping",
        "content_block_start", "content_block_delta", "content_block_stop",   # thinking
        "content_block_start", "content_block_delta", "content_block_stop",   # text
        "content_block_start", "content_block_delta", "content_block_stop",   # tool_use
        "message_delta", "message_stop"]
    assert got[3][1]["delta"] == {"type": "thinking_delta", "thinking": "hmm"}
    assert got[8][1]["content_block"]["type"] == "tool_use"
    assert got[9][1]["delta"] == {"type": "input_json_delta", "partial_json": '{"a": 1}'}
    assert got[11][1]["delta"]["stop_reason"] == "tool_use"
    assert got[11][1]["usage"] == {"input_tokens": 20, "output_tokens": 5,
                                   "cache_read_input_tokens": 10,
                                   "cache_creation_input_tokens": 0}


def test_responses_sequence_with_text_and_function_call() -> None:
    req = ChatRequest(model="m", messages=[Message(role="user", content="x")])
    rs = ResponseStream("r1", "m", req, {"model": "m", "input": "x"})
    raw = rs.start() + rs.delta(Delta(text="Hi")) + rs.delta(Delta(tool_calls=CALL))
    raw += rs.delta(Delta(tool_calls=ARGS))
    raw += rs.finish(Delta(finish_reason="tool_calls", usage=Usage(30, 5, 10)))
    got = events(raw)
    assert [name for name, _ in got] == [
        "response.created", "response.in_progress",
        "response.output_item.added", "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.done", "response.content_part.done", "response.output_item.done",
        "response.output_item.added", "response.function_call_arguments.delta",
        "response.function_call_arguments.done", "response.output_item.done",
        "response.completed"]
    assert [data["sequence_number"] for _, data in got] == list(range(len(got)))
    done = got[-1][1]["response"]
    assert [item["type"] for item in done["output"]] == ["message", "function_call"]
    assert done["output"][1]["arguments"] == '{"a": 1}'
    assert done["usage"]["input_tokens_details"] == {"cached_tokens": 10}
