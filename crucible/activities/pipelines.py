"""Pipeline activities: reading a definition, and posting a notification to a webhook."""

from __future__ import annotations

import httpx
from temporalio import activity
from temporalio.exceptions import ApplicationError

from crucible.core.pipelines.models import LoadPipelineInput, PipelineDefinition, PostWebhookInput
from crucible.core.pipelines.store import PipelineStore
from crucible.core.secrets import SecretStore
from crucible.core.targets import TARGET_REFUSED, TargetRefused

PIPELINE_NOT_FOUND = "PipelineNotFound"
WEBHOOK_TIMEOUT_S = 15.0


class PipelineActivities:
    def __init__(self, store: PipelineStore, secrets: SecretStore, client: httpx.AsyncClient) -> None:
        self.store = store
        self.secrets = secrets
        self.client = client

    @activity.defn
    async def load_pipeline(self, request: LoadPipelineInput) -> PipelineDefinition:
        pipeline_id = request.pipeline_id
        definition = await self.store.definition(pipeline_id)
        if definition is None:
            raise ApplicationError(
                f"pipeline {pipeline_id!r} does not exist (deleted?)",
                type=PIPELINE_NOT_FOUND,
                non_retryable=True,
            )
        return definition

    @activity.defn
    async def post_webhook(self, request: PostWebhookInput) -> int:
        """POST the payload; a 4xx is final (the hook refuses it), anything else is retried."""
        url = await self.secrets.get(request.url_secret)
        try:
            response = await self.client.post(url, json=request.payload, timeout=WEBHOOK_TIMEOUT_S)
        except TargetRefused as exc:  # names the origin only, not the path that holds the token
            raise ApplicationError(
                f"the webhook: {exc.summary}", type=TARGET_REFUSED, non_retryable=True
            ) from None
        except httpx.HTTPError as exc:  # the URL holds a token: name the kind of failure only
            raise ApplicationError(f"the webhook did not answer: {type(exc).__name__}") from None
        if response.status_code >= 300:
            raise ApplicationError(
                f"the webhook answered {response.status_code}: {response.text[:200]}",
                type="WebhookRefused",
                non_retryable=400 <= response.status_code < 500 and response.status_code != 429,
            )
        return response.status_code
