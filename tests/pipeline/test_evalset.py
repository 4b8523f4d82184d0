"""Eval set files: loading, identity hashes, rendering, and refusing bad files."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from devloop.config import ConfigError
from devloop.evals.evalset import (
    ASSERTION_TYPES,
    find_evalsets,
    load_evalset,
    render_template,
)
from tests.pipeline.conftest import SHIPPED, cli_env, devloop_cmd, write

GOOD = """
name: greet
threshold: 0.5
prompt:
  system: "You greet {{ user }} politely."
  messages:
    - {role: user, content: "Say hello to {{user}} about {{topic}}."}
cases:
  - id: one
    vars: {user: Ada, topic: tea}
    assert:
      - {type: icontains, value: hello}
      - {type: not-contains, value: TODO}
  - vars: {user: Bob, topic: {kind: coffee}}
    assert:
      - {type: contains-any, value: "hi, hello"}
"""


@pytest.mark.parametrize("name", ["commit-message.yaml", "code-review-summary.yaml",
                                  "json-extractor.yaml"])
def test_shipped_examples_load(name: str) -> None:
    es = load_evalset(SHIPPED / name)
    assert es.cases and es.threshold > 0 and es.production_model
    for case in es.cases:
        messages = es.render(case.vars)
        assert messages[0]["role"] == "system"
        assert not any("{{" in m["content"] for m in messages)


def test_code_review_example_carries_a_large_static_style_guide(tokenizer) -> None:
    es = load_evalset(SHIPPED / "code-review-summary.yaml")
    assert len(tokenizer.encode(es.prompt.system or "")) > 1800


def test_render_hashes_and_request(tmp_path: Path) -> None:
    es = load_evalset(write(tmp_path / "greet.yaml", GOOD))
    assert es.source == tmp_path / "greet.yaml"
    assert es.prompt.variables() == ["user", "topic"]
    assert es.cases[1].id == "case-2"  # ids default to their position
    assert es.render(es.cases[1].vars)[1]["content"] == \
        'Say hello to Bob about {"kind": "coffee"}.'
    req = es.chat_request(es.cases[0], model="local")
    assert req.model == "local" and req.temperature == 0.0
    assert [m.role for m in req.messages] == ["system", "user"]

    # The prompt hash follows the prompt only; the case hash follows vars and assertions.
    same_prompt = GOOD.replace("threshold: 0.5", "threshold: 0.9").replace("tea", "milk")
    other_prompt = GOOD.replace("politely", "warmly")
    es2 = load_evalset(write(tmp_path / "b.yaml", same_prompt))
    es3 = load_evalset(write(tmp_path / "c.yaml", other_prompt))
    assert len(es.prompt_hash) == 64
    assert es.prompt_hash == es2.prompt_hash != es3.prompt_hash
    assert es.case_hash(es.cases[0]) != es2.case_hash(es2.cases[0])
    assert es.case_hash(es.cases[1]) == es2.case_hash(es2.cases[1])


def test_assertion_helpers(tmp_path: Path) -> None:
    es = load_evalset(write(tmp_path / "greet.yaml", GOOD))
    a = es.cases[0].assertions[1]
    assert a.negated and a.base_type == "contains"
    assert es.cases[1].assertions[0].values() == ["hi", "hello"]
    assert render_template("{{a}}-{{ b }}", {"a": 1, "b": None}) == "1-"
    assert "javascript" in ASSERTION_TYPES and "answer-relevance" not in ASSERTION_TYPES


@pytest.mark.parametrize(("text", "field", "reason"), [
    ("name: x\nprompt: {system: hi\ncases: [\n", "line 3", "invalid YAML"),
    ("- just\n- a list\n", "(top level)", "must be a mapping"),
    (GOOD.replace("type: icontains", "type: answer-relevance"), "cases.0.assert.0.type",
     "answer-relevance is not supported by devloop"),
    (GOOD.replace("type: icontains", "type: not-pythonic"), "cases.0.assert.0.type",
     "unknown assertion type 'not-pythonic'"),
    (GOOD.replace("topic: tea", "subject: tea"), "cases.0.vars",
     "missing var 'topic' used by the prompt"),
    (GOOD.replace("{type: icontains, value: hello}", "{type: icontains}"),
     "cases.0.assert.0.value", "icontains needs a value"),
    (GOOD.replace("value: hello", "value: '(unclosed'").replace("icontains", "regex"),
     "cases.0.assert.0.value", "invalid regex"),
    (GOOD.replace("- id: one", "- id: one\n    extra: 1"), "cases.0.extra", "unknown key"),
    (GOOD.replace("vars: {user: Bob", "id: one\n    vars: {user: Bob"), "cases.1.id",
     "duplicate case id"),
    (GOOD.replace("threshold: 0.5", "threshold: 2"), "threshold", "less than or equal"),
    ("name: x\nprompt: {}\ncases: [{}]\n", "prompt", "needs a system prompt"),
    ("name: x\nprompt: {system: hi}\ncases: []\n", "cases", "at least 1"),
])
def test_bad_files_name_file_field_and_reason(tmp_path: Path, text: str, field: str,
                                              reason: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_evalset(path)
    assert err.value.file == str(path)
    assert err.value.field == field
    assert reason in err.value.reason
    assert "\n" not in str(err.value)


def test_find_evalsets(tmp_path: Path) -> None:
    write(tmp_path / "b.yaml", GOOD)
    write(tmp_path / "a.yml", GOOD)
    (tmp_path / "notes.txt").write_text("x")
    assert [p.name for p in find_evalsets([tmp_path])] == ["a.yml", "b.yaml"]
    with pytest.raises(ConfigError, match="no such file"):
        find_evalsets([tmp_path / "missing"])


@pytest.mark.parametrize(("edit", "expected"), [
    (lambda t: t.replace("cases:", "cases: [\n"), "invalid YAML"),
    (lambda t: t.replace("type: icontains", "type: jsonnet"),
     "cases.0.assert.0.type: unknown assertion type 'jsonnet'"),
    (lambda t: t.replace("topic: tea", "subject: tea"),
     "cases.0.vars: case 'one' is missing var 'topic' used by the prompt"),
])
def test_check_refuses_malformed_files_with_one_line_and_exit_2(tmp_path: Path, edit,
                                                                 expected: str) -> None:
    bad = write(tmp_path / "bad.yaml", edit(GOOD))
    good = write(tmp_path / "good.yaml", GOOD)
    proc = subprocess.run(devloop_cmd("check", str(good), str(bad)), env=cli_env(tmp_path),
                          capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"devloop: error: {bad}: ")
    assert expected in lines[0]
    assert "Traceback" not in proc.stderr and proc.stdout == ""


def test_check_refuses_a_missing_path(tmp_path: Path) -> None:
    proc = subprocess.run(devloop_cmd("check", str(tmp_path / "nope.yaml")),
                          env=cli_env(tmp_path), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"devloop: error: {tmp_path / 'nope.yaml'}: no such file or " \
                                  "folder"
