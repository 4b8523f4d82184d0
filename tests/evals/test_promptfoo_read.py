"""Issue 17, points 4, 5 and 8: promptfoo configs run the prompts promptfoo would send. Each
kind is a check on what the loopback model actually received (or on the refusal)."""

from __future__ import annotations

import json
from pathlib import Path

from devloop.config import load_profile
from devloop.pipeline.draft import draft_tier
from tests.evals.gate_helpers import Eval, recording_model, report, run_eval

__all__ = ["recording_model", "run_eval"]  # fixtures


def folder(tmp_path: Path, config: str, **files: str) -> Path:
    root = tmp_path / "suite"
    root.mkdir(exist_ok=True)
    (root / "promptfooconfig.yaml").write_text(config)
    for name, text in files.items():
        (root / name.replace("__", ".")).write_text(text)
    return root


def provider(base: str, config: str = "") -> str:
    return f"""providers:
  - id: openai:chat:recorded
    config: {{apiBaseUrl: {base}{config}}}
"""


def sent(run: Eval) -> list[str]:
    return [b["messages"][-1]["content"] for b in run.model.chat_requests()
            if "<Rubric>" not in json.dumps(b)]


def test_folder_config_file_vars_list_vars_nunjucks_yaml12(run_eval: Eval,
                                                           tmp_path: Path) -> None:
    root = folder(tmp_path, "prompts: p.txt\n" + provider(run_eval.model.base_url) +
                  "tests: file://tests.yaml\n",
                  p__txt="Read {{ doc }} in {{ lang | upper }}; cc={{ cc }}; SAY<<{{ ans }}>>\n"
                         "---\nSecond {{ lang | lower }} SAY<<{{ ans }}>>\n",
                  doc__txt="The document.\n\n",
                  tests__yaml="- vars: {doc: file://doc.txt, lang: [French, German], cc: NO,"
                              " ans: yes}\n  assert:\n    - {type: equals, value: yes}\n"
                              "    - {type: not-is-json, value: file://schema.json}\n",
                  schema__json='{"type": "object"}')
    res = run_eval(tmp_path / "home", str(root), api_base=False)
    assert res.exit_code == 0, res.output
    assert sorted(sent(run_eval)) == sorted([
        "Read The document. in FRENCH; cc=NO; SAY<<yes>>",
        "Read The document. in GERMAN; cc=NO; SAY<<yes>>",
        "Second french SAY<<yes>>", "Second german SAY<<yes>>"])


def test_provider_config_passes_through_and_temperature_is_not_forced(
        run_eval: Eval, tmp_path: Path) -> None:
    root = folder(tmp_path, "prompts: ['SAY<<{{ a }}>>']\n" + provider(
        run_eval.model.base_url, ", temperature: 0.7, response_format: {type: json_object}, "
                                 "seed: 3") +
        "tests:\n  - vars: {a: x}\n    assert: [{type: equals, value: x}]\n")
    assert run_eval(tmp_path / "home", str(root), api_base=False).exit_code == 0
    [body] = run_eval.model.chat_requests()
    assert (body["temperature"], body["response_format"], body["seed"], body["max_tokens"]) \
        == (0.7, {"type": "json_object"}, 3, 1024)
    run_eval.model.seen.clear()
    (root / "promptfooconfig.yaml").write_text(
        "prompts: ['SAY<<{{ a }}>>']\n" + provider(run_eval.model.base_url) +
        "tests:\n  - vars: {a: y}\n    assert: [{type: equals, value: y}]\n")
    assert run_eval(tmp_path / "home", str(root), api_base=False).exit_code == 0
    [body] = run_eval.model.chat_requests()
    assert "temperature" not in body  # promptfoo sends none when the config sets none


def test_csv_jsonl_defaulttest_grader_transform_ref_assert_set_code(
        run_eval: Eval, tmp_path: Path) -> None:
    base = run_eval.model.base_url
    config = f"""prompts: [file://p.txt]
{provider(base)}assertionTemplates:
  short: {{type: javascript, value: "output.length < 40"}}
defaultTest:
  options:
    provider: {{id: openai:chat:the-grader, config: {{apiBaseUrl: {base}}}}}
    transform: output.trim()
  assert:
    - $ref: "#/assertionTemplates/short"
tests: [file://t.csv, file://t.jsonl]
"""
    root = folder(
        tmp_path, config, p__txt="SAY<< {{ a }} >>\n",
        t__csv='a,__expected1,__expected2,__description\n'
               'hello,"contains-any:nope,hello",python:output == \'hello\',same\n'
               'bye,equals:bye,"grade:[judge:pass] polite",same\n',
        t__jsonl=json.dumps({"description": "set", "vars": {"a": "x y"}, "assert": [
            {"type": "assert-set", "threshold": 0.5, "assert": [
                {"type": "equals", "value": "nope"}, {"type": "icontains", "value": "X Y"}]}]})
        + "\n")
    res = run_eval(tmp_path / "home", str(root), "--json", str(tmp_path / "r.json"),
                   api_base=False)
    assert res.exit_code == 0, res.output
    data = report(tmp_path / "r.json")
    assert [c["pass"] for c in data["cases"]] == [True, True, True]
    assert [c["id"] for c in data["cases"]] == ["same", "same#2", "set"]  # duplicates run
    graders = {b["model"] for b in run_eval.model.chat_requests() if "<Rubric>" in json.dumps(b)}
    assert graders == {"the-grader"}  # defaultTest.options.provider, not the model under test


def test_javascript_without_node_is_an_error_naming_node(run_eval: Eval, tmp_path: Path) -> None:
    root = folder(tmp_path, "prompts: ['SAY<<{{ a }}>>']\n" + provider(run_eval.model.base_url) +
                  "tests:\n  - vars: {a: x}\n    assert: [{type: javascript, value: "
                  "\"output === 'x'\"}]\n")
    empty = tmp_path / "no-node"
    empty.mkdir()
    res = run_eval(tmp_path / "home", str(root), "--json", str(tmp_path / "r.json"),
                   api_base=False, env={"PATH": str(empty)})
    assert res.exit_code == 2
    error = report(tmp_path / "r.json")["cases"][0]["error"]
    assert "needs node (Node.js)" in error and "output === 'x'" in error


def test_refusals_name_what_is_refused(run_eval: Eval, tmp_path: Path) -> None:
    root = folder(tmp_path, "prompts: ['{{ q }}']\n" + provider(run_eval.model.base_url) +
                  "tests:\n  - vars: {q: x}\n    assert: [{type: answer-relevance, "
                  "value: x}]\n")
    res = run_eval(tmp_path / "home", str(root), api_base=False)
    assert res.exit_code == 2
    assert "answer-relevance is not supported by devloop" in res.output
    assert "Traceback" not in res.output
    (root / "promptfooconfig.yaml").write_text(
        "prompts: ['{{ q }}']\n" + provider(run_eval.model.base_url) +
        "tests:\n  - vars: {q: x}\n    assert: [{type: is-json, value: file://missing.json}]\n")
    res = run_eval(tmp_path / "home", str(root), api_base=False)
    assert res.exit_code == 2  # a config error, not a failed check
    assert "missing.json" in res.output


def test_draft_tier_is_the_profiles_cheapest_non_frontier_tier() -> None:
    assert draft_tier(load_profile("team")) == "embedded"  # shared is priced, embedded free
    assert draft_tier(load_profile("default")) == "local"


def test_check_runs_the_ladder_on_a_promptfoo_config(run_eval: Eval, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from devloop.cli import cli
    from tests.helpers import write_profile

    profile = write_profile(tmp_path / "shared.yaml", f"""
name: shared-only
production_model: openai/recorded
tiers:
  shared: {{backend: openai, base_url: {run_eval.model.base_url}, model: recorded}}
routes: [{{tier: shared}}]
""")
    root = folder(tmp_path, "prompts: ['SAY<<{{ a }}>>']\n" + provider(run_eval.model.base_url) +
                  "tests:\n  - vars: {a: x}\n    assert: [{type: equals, value: x}]\n")
    res = CliRunner().invoke(cli, ["check", str(root), "--stage", "draft", "--json",
                                   "--no-store", "--profile", str(profile)],
                             env={"DEVLOOP_HOME": str(tmp_path / "home")},
                             catch_exceptions=False)
    assert res.exit_code == 0, res.output
    [entry] = json.loads(res.stdout)
    assert entry["stages"]["draft"]["status"] == "pass"
    assert entry["stages"]["draft"]["tier"] == "shared"  # named, not a hard-coded `local`
    assert sent(run_eval) == ["SAY<<x>>"]


async def test_watch_rechecks_a_promptfoo_folder_when_its_prompt_file_changes(
        run_eval: Eval, tmp_path: Path) -> None:
    import asyncio

    from devloop.config import Settings
    from devloop.gateway import Gateway
    from devloop.pipeline.checker import Checker
    from devloop.pipeline.watch import EvalsetWatcher, WatchEvent
    from tests.helpers import write_profile

    profile = load_profile(write_profile(tmp_path / "shared.yaml", f"""
name: shared-only
production_model: openai/recorded
tiers:
  shared: {{backend: openai, base_url: {run_eval.model.base_url}, model: recorded}}
routes: [{{tier: shared}}]
"""))
    root = folder(tmp_path, "prompts: [file://p.txt]\n" + provider(run_eval.model.base_url) +
                  "tests:\n  - vars: {a: x}\n    assert: [{type: equals, value: x}]\n",
                  p__txt="You are terse. SAY<<{{ a }}>>\n")
    settings = Settings(home=tmp_path / "home")
    gateway = Gateway(settings, profile)
    await gateway.start(probe=False)
    done: asyncio.Queue[WatchEvent] = asyncio.Queue()
    watcher = EvalsetWatcher(settings, profile, root, lambda e: e.kind == "done" and
                             done.put_nowait(e), profiles_dir=None, debounce=0.05,
                             stages=("cache_order",),
                             checker_factory=lambda s, p: Checker(s, p, gateway=gateway))
    task = asyncio.create_task(watcher.run())
    try:
        first = await asyncio.wait_for(done.get(), 30)
        await asyncio.sleep(0.3)
        (root / "p.txt").write_text("You are terse and exact. SAY<<{{ a }}>>\n")
        second = await asyncio.wait_for(done.get(), 10)
    finally:
        watcher.stop()
        await asyncio.wait_for(task, 10)
        await gateway.close()
    assert first.report is not None and second.report is not None
    assert first.file.endswith("promptfooconfig.yaml") and second.file == first.file
    assert second.report.prompt_hash != first.report.prompt_hash
