"""Prompt formats: shipped chat templates and family adapters render alike."""

from __future__ import annotations

import pytest

from smmf_flow.errors import ConfigError, TemplateError
from smmf_flow.models.chat_templates import (
    ChatTemplate,
    PromptAdapter,
    get_adapter,
    known_families,
    match_adapter,
    register_adapter,
    resolve_template,
)

MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]


def test_chatml_renders_with_the_generation_prompt() -> None:
    template = ChatTemplate(get_adapter("chatml").template)
    assert template.render(MESSAGES) == (
        "<|im_start|>system\nBe brief.<|im_end|>\n"
        "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    )
    assert not template.render(MESSAGES, add_generation_prompt=False).endswith("assistant\n")


@pytest.mark.parametrize("family", known_families())
def test_every_builtin_family_renders_the_user_text(family: str) -> None:
    template = ChatTemplate(get_adapter(family).template, bos_token="<s>", eos_token="</s>")
    assert "Hi" in template.render(MESSAGES)


def test_families_are_guessed_from_the_model_path() -> None:
    qwen, llama3 = match_adapter("/models/Qwen2-0.5B-Instruct"), match_adapter("Llama-3-8B")
    assert qwen is not None and qwen.family == "chatml"
    assert llama3 is not None and llama3.family == "llama3"
    assert match_adapter("/models/unknown-thing") is None


def test_precedence_explicit_then_family_then_shipped_then_guess() -> None:
    shipped = "{{ messages[-1]['content'] }}!"
    pick = lambda **kw: resolve_template(model="m", **kw).render(MESSAGES)  # noqa: E731
    assert pick(shipped=shipped, explicit="X{{ messages|length }}", family="chatml") == "X2"
    assert pick(shipped=shipped, family="phi3").startswith("<|system|>")
    assert pick(shipped=shipped, model_ref="qwen") == "Hi!"
    assert pick(shipped=None, model_ref="/m/vicuna-7b").endswith("ASSISTANT:")


def test_no_template_at_all_says_which_setting_to_add() -> None:
    with pytest.raises(
        ConfigError, match=r"model 'm' ships no chat template.*set `family` to one of .*chatml"
    ):
        resolve_template(model="m", shipped=None, model_ref="/m/mystery")
    with pytest.raises(ConfigError, match=r"unknown prompt family 'klingon' \(known: alpaca"):
        get_adapter("klingon")


def test_templates_are_sandboxed_and_report_their_errors() -> None:
    with pytest.raises(TemplateError, match="does not compile"):
        ChatTemplate("{% for %}")
    unsafe = ChatTemplate("{{ messages.__class__.__mro__ }}")
    with pytest.raises(TemplateError, match="failed to render"):
        unsafe.render(MESSAGES)
    strict = ChatTemplate("{{ raise_exception('only user turns') }}")
    with pytest.raises(TemplateError, match="refused the messages: only user turns"):
        strict.render(MESSAGES)


def test_registering_a_family() -> None:
    register_adapter(
        PromptAdapter(
            "test-plain", "{% for m in messages %}{{ m['content'] }}|{% endfor %}", ("plain-model",)
        )
    )
    template = resolve_template(model="m", shipped=None, model_ref="plain-model-1")
    assert template.render(MESSAGES) == "Be brief.|Hi|"
