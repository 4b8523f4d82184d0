"""Parity with the real promptfoo 0.115: the same promptfoo configs, run by `promptfoo eval
--no-cache` and by `devloop eval` against ONE loopback model that records what it is sent.
The prompts must be byte-identical, the request settings the same, and the verdicts agree.

The configs cover every kind in issue 17's points 4, 5 and 8: file:// vars, prompts, tests and
assertion values; a bare `prompts: p.txt`; `---` separated prompts; the final newline of prompt
files and var values; list vars expanded; Nunjucks filters; tests from YAML, CSV and JSONL
files; a folder config; YAML 1.2 scalars (NO, yes, on); defaultTest vars, assert and
options.provider (the grader) and options.transform; $ref assertion templates; assert-set;
javascript and python assertions; provider config passed through (temperature, max_tokens,
seed, response_format); duplicate test descriptions. The model is a scripted loopback server
(tests/evals/recording_model.py): the embedded model cannot judge on cue.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.evals.promptfoo_cli import promptfoo_results, run_promptfoo
from tests.evals.recording_model import RecordingModel

ROOT = Path(__file__).resolve().parents[2]

CONFIG = """\
description: parity
prompts:
  - p.txt
  - file://chat.json
providers:
  - id: openai:chat:gpt-4o-mini
    config:
      apiBaseUrl: {base}
      temperature: 0.3
      max_tokens: 200
      seed: 7
      response_format: {{type: text}}
assertionTemplates:
  notSorry: {{type: not-icontains, value: sorry}}
defaultTest:
  vars:
    team: core
  options:
    provider:
      id: openai:chat:grader-model
      config: {{apiBaseUrl: {base}}}
  assert:
    - $ref: "#/assertionTemplates/notSorry"
tests:
  - file://tests.yaml
  - file://more.csv
  - file://more.jsonl
"""

PROMPT_FILE = """\
Doc: {{ doc }}
Lang: {{ lang | upper }} / {{ name | lower | trim }} / {{ meta | dump }} / {{ cc }} / {{ flag }}
Numbers: {{ n }} {{ m }} {{ missing | default("none") }} {{ items | length }}
Note: [{{ note }}]
SAY<<{{ answer }}>>
---
Second prompt for {{ name | trim | title }} in {{ lang }}: {{ doc | replace("text", "TEXT") }}
SAY<<{{ answer }}>>
"""

CHAT_PROMPT = json.dumps([
    {"role": "system", "content": "You are the {{ team }} bot for {{ lang }}.\n"},
    {"role": "user", "content": "{{ doc }} SAY<<{{ answer }}>>"},
])

TESTS_YAML = """\
- description: file var, list var, YAML 1.2
  vars:
    doc: file://doc.txt
    lang: [French, German]
    name: "  Ada Lovelace  "
    meta: {k: [1, 2], s: "é"}
    cc: NO
    flag: true
    n: 1.0
    m: 2.50
    items: [[1, 2, 3]]
    note: |
      kept line
    answer: yes
  assert:
    - {type: equals, value: yes}
    - {type: javascript, value: "output.length > 2 && context.vars.cc === 'NO'"}
    - {type: python, value: "output == 'yes' and context['vars']['flag'] is True"}
- description: json answer
  vars: {doc: plain text, lang: en, name: Bo, meta: {}, cc: on, flag: false, n: 3, m: 0.1,
         items: [[]], note: "x\\n", answer: '{"total": 3}'}
  assert:
    - {type: is-json, value: file://schema.json}
    - {type: contains-json}
    - {type: equals, value: file://expected.txt}
    - type: javascript
      value: |
        const data = JSON.parse(output);
        return data.total === 3;
    - type: python
      value: |
        import json as j
        data = j.loads(output)
        return {'pass': data['total'] == 4, 'score': 0.25, 'reason': 'total is not 4'}
- description: dup
  vars: {doc: d1, lang: es, name: Cy, meta: {}, cc: off, flag: false, n: 0, m: 0, items: [[]],
         note: "", answer: "a, b"}
  assert:
    - {type: contains-any, value: '"a, b", zzz'}
    - type: assert-set
      threshold: 0.5
      assert:
        - {type: contains, value: zzz}
        - {type: icontains, value: "A, B"}
    - {type: llm-rubric, value: "[judge:pass] it answers"}
- description: dup
  vars: {doc: d2, lang: es, name: Di, meta: {}, cc: y, flag: false, n: 0, m: 0, items: [[]],
         note: "", answer: sorry no}
  assert:
    - {type: llm-rubric, value: "it is helpful"}
    - {type: cost, threshold: 1.0}
    - {type: latency, threshold: 600000}
- description: transformed
  vars: {doc: d3, lang: it, name: Ed, meta: {}, cc: NO, flag: false, n: 0, m: 0, items: [[]],
         note: "", answer: quiet}
  options:
    transform: output.toUpperCase()
  assert:
    - {type: equals, value: QUIET}
    - {type: starts-with, value: QU}
"""

CSV = (
    "doc,lang,name,meta,cc,flag,n,m,items,note,answer,__expected1,__expected2,__description\n"
    '"CSV, doc",fr,Fa,x,on,true,1,2,z,,hello world,"contains-any:hello,nope",'
    "icontains:HELLO,csv one\n"
    "plain,de,Gu,y,off,false,0,0,z,,nope,equals:yes,not-contains:zzz,csv two\n"
)
JSONL = (
    json.dumps({"description": "jsonl one",
                "vars": {"doc": "j", "lang": "pt", "name": "Hu", "meta": {}, "cc": "n",
                         "flag": False, "n": 5, "m": 5, "items": [[1]], "note": "",
                         "answer": "ok"},
                "assert": [{"type": "regex", "value": "^o"}, {"type": "starts-with",
                                                                "value": "ok"}]}) + "\n"
)


def write_suite(root: Path, base: str) -> Path:
    suite = root / "suite"
    suite.mkdir()
    (suite / "promptfooconfig.yaml").write_text(CONFIG.format(base=base))
    (suite / "p.txt").write_text(PROMPT_FILE)
    (suite / "chat.json").write_text(CHAT_PROMPT + "\n")
    (suite / "tests.yaml").write_text(TESTS_YAML)
    (suite / "more.csv").write_text(CSV)
    (suite / "more.jsonl").write_text(JSONL)
    (suite / "doc.txt").write_text("The doc text.\n\n")
    (suite / "expected.txt").write_text('{"total": 3}\n')
    (suite / "schema.json").write_text(json.dumps({
        "type": "object", "required": ["total"],
        "properties": {"total": {"type": "integer"}}}))
    return suite


def _key(messages: list[dict[str, Any]]) -> str:
    return json.dumps([{"role": m["role"], "content": m["content"]} for m in messages],
                      ensure_ascii=False)


def _is_grading(body: dict[str, Any]) -> bool:
    return any("<Rubric>" in str(m.get("content")) for m in body.get("messages") or [])


def _settings(body: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(json.dumps(body.get(k), sort_keys=True) for k in (
        "model", "temperature", "max_tokens", "seed", "response_format"))


def _promptfoo_messages(raw: str) -> list[dict[str, Any]]:
    try:
        data = json.loads(raw)
    except json.JSONDecodeError:
        return [{"role": "user", "content": raw}]
    return data if isinstance(data, list) else [{"role": "user", "content": raw}]


@pytest.mark.slow
def test_prompts_settings_and_verdicts_match_promptfoo(tmp_path: Path) -> None:
    model = RecordingModel().start()
    try:
        suite = write_suite(tmp_path, model.base_url)
        report = run_promptfoo(suite / "promptfooconfig.yaml", tmp_path / "pf.json",
                               tmp_path / "pf-home", model.base_url)
        theirs = [r for r in model.chat_requests()]
        model.seen.clear()
        env = {**os.environ, "DEVLOOP_HOME": str(tmp_path / "home"),
               "OPENAI_API_KEY": "sk-loopback", "LITELLM_LOCAL_MODEL_COST_MAP": "True",
               "PYTHONPATH": str(ROOT)}
        done = subprocess.run(
            [sys.executable, "-m", "devloop", "eval", str(suite), "--no-cache", "-q",
             "--json", str(tmp_path / "dl.json")],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False)
        ours = [r for r in model.chat_requests()]
    finally:
        model.stop()
    assert done.returncode in (0, 1), done.stderr
    data = json.loads((tmp_path / "dl.json").read_text())
    assert data["errors"] == 0, data

    # 1. the prompts: byte-identical, as many of each
    their_prompts = Counter(_key(b["messages"]) for b in theirs if not _is_grading(b))
    our_prompts = Counter(_key(b["messages"]) for b in ours if not _is_grading(b))
    assert our_prompts == their_prompts
    # 3 prompts (two in p.txt, one chat prompt) x 9 tests (5 in YAML, one expanded to two;
    # 2 in CSV; 1 in JSONL)
    assert sum(their_prompts.values()) == 3 * 9
    # 2. the request settings the provider config asks for
    their_settings = {_key(b["messages"]): _settings(b) for b in theirs if not _is_grading(b)}
    our_settings = {_key(b["messages"]): _settings(b) for b in ours if not _is_grading(b)}
    assert our_settings == their_settings
    assert set(their_settings.values()) == {
        ('"gpt-4o-mini"', "0.3", "200", "7", '{"type": "text"}')}
    # 3. the grader pinned in defaultTest.options.provider is the one both call
    assert {b["model"] for b in theirs if _is_grading(b)} == {"grader-model"}
    assert {b["model"] for b in ours if _is_grading(b)} == {"grader-model"}
    # 4. the verdicts
    their_verdicts = Counter((_key(_promptfoo_messages(r["prompt"]["raw"])), bool(r["success"]))
                             for r in promptfoo_results(report))
    our_verdicts = Counter((_key(c["messages"]), bool(c["pass"])) for c in data["cases"])
    assert our_verdicts == their_verdicts
    assert {v for _, v in their_verdicts} == {True, False}  # both kinds occur
