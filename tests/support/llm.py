"""A local server that speaks OpenAI's chat-completions protocol, scripted per request.

The LLM endpoints users configure cannot be reached from the test machines; this one
speaks the same wire protocol over a real socket, so the activity's client, timeouts and
answer validation are exercised for real.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

ANSWER = "answer"
HANG = "hang"  # never answers in time
ERROR = "error"  # HTTP 500
GARBAGE = "garbage"  # a completion whose content is not JSON


@dataclass
class FakeChatCompletions:
    """Plays ``script`` one step per request, then repeats its last step."""

    script: list[str] = field(default_factory=lambda: [ANSWER])
    requests: list[dict[str, Any]] = field(default_factory=list)
    authorizations: list[str | None] = field(default_factory=list)

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/v1/chat/completions", self._complete, methods=["POST"])])

    async def _complete(self, request: Request) -> Response:
        body = await request.json()
        step = self.script[min(len(self.requests), len(self.script) - 1)]
        self.requests.append(body)
        self.authorizations.append(request.headers.get("authorization"))
        if step == HANG:
            await asyncio.sleep(30)
        if step == ERROR:
            return JSONResponse({"error": {"message": "overloaded"}}, status_code=500)
        content = "Sure! Here are some scenarios." if step == GARBAGE else json.dumps(self._scenarios(body))
        return JSONResponse(
            {
                "id": f"chatcmpl-{len(self.requests)}",
                "object": "chat.completion",
                "model": body.get("model"),
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": content},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 120, "completion_tokens": 80, "total_tokens": 200},
            }
        )

    @staticmethod
    def _scenarios(body: dict[str, Any]) -> dict[str, Any]:
        """What a model would write: one valid and one invalid request for the operation it was shown."""
        shape = json.loads(body["messages"][-1]["content"])
        path = {p["name"]: p["schema"].get("example", 1) for p in shape["parameters"] if p["in"] == "path"}
        bad = {name: "not-a-number" for name in path}
        return {
            "scenarios": [
                {"name": "llm: an existing item", "expect": "accept", "path_params": path},
                {"name": "llm: a malformed id", "expect": "reject", "path_params": bad, "target": "$.path"},
            ]
        }
