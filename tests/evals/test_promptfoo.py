"""Reading promptfoo configs (promptfooconfig.yaml) as eval sets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from devloop.config import ConfigError
from devloop.evals.promptfoo import load_promptfoo, provider_to_model
from devloop.evals.runner import load_targets


@pytest.mark.parametrize(("provider", "model"), [
    ("openai:gpt-4o-mini", "openai/gpt-4o-mini"),
    ("openai:chat:gpt-4o", "openai/gpt-4o"),
    ("anthropic:messages:claude-sonnet-4-5", "anthropic/claude-sonnet-4-5"),
    ("vertex:gemini-2.5-pro", "vertex_ai/gemini-2.5-pro"),
    ("azureopenai:chat:my-deployment", "azure/my-deployment"),
    ("ollama:chat:llama3", "ollama_chat/llama3"),
    ("openrouter:meta-llama/llama-3-70b", "openrouter/meta-llama/llama-3-70b"),
    ("anthropic/claude-sonnet-4-5", "anthropic/claude-sonnet-4-5"),  # litellm names pass
])
def test_provider_ids_map_to_litellm(provider: str, model: str) -> None:
    assert provider_to_model(provider) == model


CONFIG = """
description: Translator
prompts:
  - "Translate to French: {{text}}"
  - file://chat.json
providers:
  - id: openai:chat:gpt-4o-mini
    config: {temperature: 0, max_tokens: 50}
  - anthropic:messages:claude-sonnet-4-5
defaultTest:
  vars: {tone: formal}
  assert:
    - type: not-icontains
      value: "as an ai"
tests:
  - description: Greeting
    vars: {text: Hello}
    assert:
      - {type: icontains-any, value: [bonjour, salut]}
  - vars: {text: Thank you}
    threshold: 0.5
    assert:
      - {type: icontains, value: merci, weight: 2}
  - file://more_tests.yaml
"""


def test_reads_prompts_providers_tests_and_default_test(tmp_path: Path) -> None:
    (tmp_path / "chat.json").write_text(json.dumps([
        {"role": "system", "content": "You translate in a {{tone}} tone."},
        {"role": "user", "content": "{{text}}"},
    ]))
    (tmp_path / "more_tests.yaml").write_text(
        "- vars: {text: Goodbye}\n  assert: [{type: icontains, value: revoir}]\n")
    config = tmp_path / "promptfooconfig.yaml"
    config.write_text(CONFIG)
    plain, chat = load_promptfoo(config)
    assert plain.name == "Translator:prompt-1" and chat.name == "Translator:chat.json"
    assert plain.production_model == "openai/gpt-4o-mini"
    # promptfoo sends no temperature when the config's is 0 (it omits falsy values)
    assert plain.temperature is None and plain.max_tokens == 50
    assert plain.render({"text": "Hi"}) == [{"role": "user", "content": "Translate to French: Hi"}]
    assert chat.render({"text": "Hi", "tone": "formal"})[0] == {
        "role": "system", "content": "You translate in a formal tone."}
    ids = [c.id for c in plain.cases]
    assert ids == ["greeting", "test-2", "test-3"]
    greeting, thanks, bye = plain.cases
    assert [a.type for a in greeting.assertions] == ["not-icontains", "icontains-any"]
    assert greeting.vars == {"tone": "formal", "text": "Hello"}
    assert thanks.threshold == 0.5 and thanks.assertions[1].weight == 2
    assert bye.vars["text"] == "Goodbye"
    assert plain.source == config
    # load_targets picks the reader by file name
    assert [e.name for e in load_targets([str(config)])] == [plain.name, chat.name]


@pytest.mark.parametrize(("text", "field"), [
    ("providers: [openai:gpt-4o]\ntests: [{vars: {}}]\n", "prompts"),
    ("prompts: ['{{x}}']\ntests: []\n", "tests"),
    ("prompts: ['{{x}']\ntests: [{vars: {x: 1}}]\n", "prompt"),
    ("prompts: ['hi']\ntests: [{assert: [{type: answer-relevance, value: 'x'}]}]\n",
     "tests.0.assert.0.type"),
    ("prompts: ['hi']\ntests: [{assert: [{type: equals, value: file://nope.json}]}]\n",
     "tests.0.assert.0.value"),
    ("prompts: ['hi']\ntests: [{options: {rubricPrompt: x}}]\n", "tests.0.options"),
    ("prompts: [file://missing.txt]\ntests: [{vars: {}}]\n", "prompts.0"),
])
def test_bad_configs_name_file_and_field(tmp_path: Path, text: str, field: str) -> None:
    config = tmp_path / "promptfooconfig.yaml"
    config.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_promptfoo(config)
    assert err.value.field == field or err.value.field.startswith(field), str(err.value)
