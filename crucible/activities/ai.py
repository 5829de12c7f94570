"""Scenario generation by an LLM, over an OpenAI-compatible chat-completions endpoint.

The model sees the operation's shape (parameters, body schema, declared responses),
capped in size, and never the run's header values. Its answer must be JSON that
matches :data:`ANSWER_SCHEMA`; anything else is an AI failure, which the workflow
records as ``AI_FAILED`` and retries.

The endpoint is the operator's (``CRUCIBLE_LLM_BASE_URL``), not a run's, so it is called
through the worker's unguarded client, not under the target policy.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
from jsonschema import Draft202012Validator
from temporalio import activity
from temporalio.exceptions import ApplicationError

from crucible.activities.heartbeats import heartbeating
from crucible.core.config import Settings
from crucible.core.qa.models import GeneratedScenarios, GenerateScenariosInput, GenerateScenariosResult
from crucible.core.qa.scenarios import ACCEPT, REJECT, Scenario
from crucible.core.qa.spec import Operation, Spec
from crucible.core.qa.store import QaStore
from crucible.core.qa.values import ValueBuilder

AI_FAILED = "AiFailed"
#: Nested ``$ref``s are inlined this deep in what the model sees.
PROMPT_SCHEMA_DEPTH = 4

ANSWER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["scenarios"],
    "properties": {
        "scenarios": {
            "type": "array",
            "minItems": 1,
            "maxItems": 30,
            "items": {
                "type": "object",
                "required": ["name", "expect"],
                "properties": {
                    "name": {"type": "string", "minLength": 1, "maxLength": 200},
                    "expect": {"enum": [ACCEPT, REJECT]},
                    "path_params": {"type": "object"},
                    "query": {"type": "object"},
                    "headers": {
                        "type": "object",
                        "additionalProperties": {"type": ["string", "number", "boolean"]},
                    },
                    "body": {},
                    "target": {"type": ["string", "null"]},
                },
            },
        }
    },
}
_ANSWER = Draft202012Validator(ANSWER_SCHEMA)

SYSTEM_PROMPT = (
    "You write API test scenarios. Given one HTTP operation from an OpenAPI document, answer with "
    'a JSON object {"scenarios": [...]}. Each scenario has "name", "expect" ("accept" for valid data '
    'the API must accept, "reject" for invalid data it must refuse with a 4xx), and the request parts '
    '"path_params", "query", "headers" and "body" (omit "body" when the operation takes none). For a '
    '"reject" scenario, "target" is the JSON path of the invalid part, like "$.body.price". Give at '
    "least one accept and a few reject scenarios. Answer with the JSON object only."
)


class AiActivities:
    def __init__(self, store: QaStore, client: httpx.AsyncClient, settings: Settings) -> None:
        self.store = store
        self.client = client
        self.settings = settings

    @activity.defn
    async def generate_scenarios(self, request: GenerateScenariosInput) -> GenerateScenariosResult:
        """Ask the model for the scenarios of each operation of a batch, and store them.

        Each operation gets up to ``attempts`` tries; a timeout, an HTTP error or an answer
        that is not valid scenario JSON is a failed try, reported back with its reason so
        the workflow can record it. One activity per batch keeps the run's history small.
        """
        row = await self.store.get(request.run_id)
        if row is None or row.spec is None:
            raise ApplicationError(f"QA run {request.run_id} has no stored spec", non_retryable=True)
        spec = Spec(row.spec)
        by_key = {op.key: op for op in spec.operations}
        budget = TokenBudget(request.token_budget)
        limit = asyncio.Semaphore(max(1, request.concurrency))

        async def one(key: str) -> GeneratedScenarios:
            outcome = GeneratedScenarios(key)
            op = by_key.get(key)
            if op is None:
                outcome.fallback = f"{key} is not in the spec"
                return outcome
            prompt = operation_prompt(spec, op)[: self.settings.llm_max_input_chars]
            async with limit:
                for _ in range(request.attempts):
                    if budget.spent:
                        outcome.fallback = "the run's LLM token budget is spent"
                        return outcome
                    try:
                        answer, tokens = await self._complete(prompt)
                        budget.spend(tokens)
                        outcome.tokens += tokens
                        scenarios = parse_answer(answer, op)
                    except ApplicationError as exc:
                        outcome.failures.append(str(exc))
                        continue
                    await self.store.save_scenarios(request.run_id, op.key, [s.to_dict() for s in scenarios])
                    outcome.scenarios = len(scenarios)
                    return outcome
            outcome.fallback = f"the LLM failed {request.attempts} times"
            return outcome

        with heartbeating():
            results = await asyncio.gather(*(one(key) for key in request.operations))
        return GenerateScenariosResult(operations=list(results))

    async def _complete(self, prompt: str) -> tuple[str, int]:
        settings = self.settings
        if not settings.llm_base_url:
            raise ApplicationError(
                "no LLM endpoint is configured (CRUCIBLE_LLM_BASE_URL)", type=AI_FAILED, non_retryable=True
            )
        headers = {"content-type": "application/json"}
        if settings.llm_api_key is not None:
            headers["authorization"] = f"Bearer {settings.llm_api_key.get_secret_value()}"
        body = {
            "model": settings.llm_model,
            "messages": [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": prompt}],
            "response_format": {"type": "json_object"},
            "temperature": 0,
        }
        url = settings.llm_base_url.rstrip("/") + "/chat/completions"
        try:
            response = await self.client.post(url, json=body, headers=headers, timeout=settings.llm_timeout_s)
        except httpx.TimeoutException:
            raise _failure(f"the LLM did not answer within {settings.llm_timeout_s:g} s") from None
        except httpx.HTTPError as exc:
            raise _failure(f"the LLM request failed: {exc!r}") from None
        if response.status_code >= 400:
            raise _failure(f"the LLM answered HTTP {response.status_code}: {response.text[:200]}")
        try:
            payload = response.json()
            content = payload["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError):
            raise _failure("the LLM's answer is not a chat completion") from None
        usage = payload.get("usage") or {}
        # Without a usage report, estimate: about four characters per token.
        tokens = int(usage.get("total_tokens") or (len(prompt) + len(str(content))) // 4)
        return str(content), tokens


class TokenBudget:
    """Tokens a batch may still spend; shared by its concurrent requests."""

    def __init__(self, tokens: int) -> None:
        self.left = tokens

    @property
    def spent(self) -> bool:
        return self.left <= 0

    def spend(self, tokens: int) -> None:
        self.left -= tokens


def operation_prompt(spec: Spec, op: Operation) -> str:
    """What the model sees of an operation: its shape, with refs inlined a few levels deep."""
    builder = ValueBuilder(spec)
    shape = {
        "method": op.method.upper(),
        "path": op.path,
        "summary": op.summary,
        "parameters": [
            {"name": p.name, "in": p.location, "required": p.required, "schema": _inline(builder, p.schema)}
            for p in op.parameters
            if p.location != "header" or p.name.lower() not in ("authorization", "cookie")
        ],
        "body": None
        if op.body is None
        else {
            "media_type": op.body.media_type,
            "required": op.body.required,
            "schema": _inline(builder, op.body.schema),
        },
        "responses": sorted(op.responses),
    }
    return json.dumps(shape, separators=(",", ":"), default=str)


def parse_answer(answer: str, op: Operation) -> list[Scenario]:
    try:
        data = json.loads(answer)
    except ValueError:
        raise _failure("the LLM's answer is not JSON") from None
    errors = sorted(_ANSWER.iter_errors(data), key=lambda e: e.json_path)
    if errors:
        first = errors[0]
        raise _failure(
            f"the LLM's answer does not match the scenario schema at {first.json_path}: {first.message}"
        )
    media = op.body.media_type if op.body is not None else None
    return [
        Scenario(
            name=str(item["name"]),
            expect=item["expect"],
            path_params=dict(item.get("path_params") or {}),
            query=dict(item.get("query") or {}),
            headers={k: str(v) for k, v in (item.get("headers") or {}).items()},
            body=item.get("body"),
            has_body="body" in item and op.body is not None,
            media_type=media,
            target=item.get("target"),
            source="llm",
        )
        for item in data["scenarios"]
    ]


def _inline(builder: ValueBuilder, node: Any, depth: int = 0) -> Any:
    if depth > PROMPT_SCHEMA_DEPTH:
        return {}
    if isinstance(node, dict):
        if "$ref" in node:
            try:
                node = builder.schema(node)
            except Exception:
                return {"broken_ref": node["$ref"]}
        return {k: _inline(builder, v, depth + 1) for k, v in node.items() if k not in ("description", "xml")}
    if isinstance(node, list):
        return [_inline(builder, v, depth + 1) for v in node]
    return node


def _failure(message: str) -> ApplicationError:
    return ApplicationError(message, type=AI_FAILED, non_retryable=True)
