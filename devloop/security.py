"""Fields a client may never send: they would change where a call goes or with which key.

LiteLLM's proxy has had advisories where a request-body ``api_base`` sent the server's provider
key to the caller's host. devloop takes upstream URLs and keys from the profile and the
environment only; a body naming any of these fields is refused with a 400 naming it, on
every face, before anything is routed.
"""

from __future__ import annotations

from typing import Any

# Where a call goes, with which credentials, and litellm's own keyword arguments (mocking,
# callbacks, retries, routing) that a gateway must decide itself.
FORBIDDEN_FIELDS = frozenset({
    "api_base", "base_url", "api_key", "api_version", "api_type", "organization",
    "custom_llm_provider", "extra_headers", "extra_body", "extra_query", "headers",
    "azure_ad_token", "azure_ad_token_provider", "azure_endpoint", "deployment_id",
    "aws_access_key_id", "aws_secret_access_key", "aws_session_token", "aws_region_name",
    "aws_profile_name", "aws_bedrock_runtime_endpoint", "vertex_project", "vertex_location",
    "vertex_credentials", "vertex_ai_project", "vertex_ai_location", "watsonx_url",
    "mock_response", "mock_tool_calls", "mock_timeout", "mock_delay", "callbacks",
    "success_callback", "failure_callback", "input_callback", "service_callback",
    "logger_fn", "litellm_logging_obj", "litellm_call_id", "litellm_params",
    "litellm_metadata", "litellm_trace_id", "model_list", "fallbacks",
    "context_window_fallback_dict", "num_retries", "max_retries", "proxy_server_request",
    "acompletion", "client", "http_client", "input_cost_per_token",
    "output_cost_per_token", "cost_per_token", "hf_model_name", "user_api_key",
    "cache_control_injection_points", "preset_cache_key",
})


def forbidden_field(body: dict[str, Any]) -> str | None:
    """The first routing or credential field in a request body (top level), or None."""
    for name in body:
        if name.lower() in FORBIDDEN_FIELDS:
            return name
    return None
