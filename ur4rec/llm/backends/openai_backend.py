"""Any OpenAI-compatible server: a team's shared `vllm serve`, or a hosted API.

The key is read from the environment variable named by `llm.openai.api_key_env` and is never logged; a
local server without authentication needs none. With `endpoint: chat` the server applies the chat
template, so the cache identity of a prompt is its messages; with `endpoint: completions` the prompt is
rendered here with the model's tokenizer, exactly as the local engines do, so entries are shared with them.
Structured outputs go as `response_format` (a JSON schema), which OpenAI's chat API and vLLM's server (chat
and completions) accept; a server that does not answers with an error, stored as a `failed` output.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Iterable, Iterator

from ur4rec.llm.backends.base import Backend, Completion, GenerationError, Request, load_tokenizer
from ur4rec.llm.prompts import ChatRenderer, Messages, messages_as_text


class OpenAIBackend(Backend):
    name = "openai"

    def __init__(self, cfg, model):
        super().__init__(cfg, model)
        self._client = None
        self._renderer: ChatRenderer | None = None

    @property
    def model_identity(self) -> str:
        # The server decides the precision; llm.dtype says nothing about it.
        return f"{self.model.identity}|server"

    @property
    def served_name(self) -> str:
        return self.cfg.openai.served_model_name or self.cfg.model

    def render(self, messages: Messages) -> str:
        if self.cfg.openai.endpoint == "chat":
            return messages_as_text(messages)
        if self._renderer is None:
            self._renderer = ChatRenderer(load_tokenizer(self.model, self.model.revision or self.cfg.revision), self.model.name)
        return self._renderer.render(messages)

    def api_key(self) -> str:
        """The key from `llm.openai.api_key_env`; a keyless server only when `llm.openai.keyless` says so."""
        o = self.cfg.openai
        if o.keyless:
            return "EMPTY"  # the client library needs some string; a server without authentication ignores it
        key = os.environ.get(o.api_key_env, "") if o.api_key_env else ""
        if not key:
            raise GenerationError(
                f"the environment variable {o.api_key_env} holding the server's key is not set: export it, or set "
                "llm.openai.keyless=true for a server without authentication (a private `vllm serve`)")
        return key

    def _client_or_start(self):
        if self._client is None:
            import openai

            o = self.cfg.openai
            self._client = openai.OpenAI(
                api_key=self.api_key(),
                base_url=o.base_url,
                timeout=o.timeout_s,
                max_retries=o.max_attempts,
            )
        return self._client

    def generate(self, requests: Iterable[Request]) -> Iterator[Completion]:
        client = self._client_or_start()
        queue = list(requests)[::-1]
        limit = self.cfg.openai.concurrency
        with ThreadPoolExecutor(max_workers=limit) as pool:
            running: set[Future] = set()
            try:
                while queue or running:
                    while queue and len(running) < limit:
                        running.add(pool.submit(self._one, client, queue.pop()))
                    done, running = wait(running, return_when=FIRST_COMPLETED)
                    for future in done:
                        yield future.result()
            finally:
                for future in running:
                    future.cancel()

    def _one(self, client, request: Request) -> Completion:
        import openai

        s = self.cfg.sampling
        common = dict(
            model=self.served_name, max_tokens=s.max_new_tokens, temperature=s.temperature, top_p=s.top_p, seed=request.seed
        )
        extra = {}
        if s.top_k:
            extra["top_k"] = s.top_k
        if s.repetition_penalty != 1.0:
            extra["repetition_penalty"] = s.repetition_penalty
        fmt = {"response_format": _json_schema_format(request.schema)} if request.schema else {}
        try:
            if self.cfg.openai.endpoint == "chat":
                resp = client.chat.completions.create(
                    messages=[dict(m) for m in request.messages], extra_body=extra or None, **common, **fmt
                )
                text = resp.choices[0].message.content or ""
            else:
                # The prompt already holds the chat template's special tokens.
                extra["add_special_tokens"] = False
                # The completions API has no response_format parameter; vLLM's server reads it from the body.
                extra.update(fmt)
                resp = client.completions.create(prompt=request.prompt, extra_body=extra, **common)
                text = resp.choices[0].text or ""
        except openai.APIConnectionError as exc:
            raise GenerationError(
                f"cannot reach the server at {self.cfg.openai.base_url} ({exc}); start it or fix llm.openai.base_url"
            ) from exc
        except (openai.AuthenticationError, openai.PermissionDeniedError) as exc:
            raise GenerationError(
                f"the server refused the credentials: set the environment variable {self.cfg.openai.api_key_env}"
            ) from exc
        except openai.NotFoundError as exc:
            raise GenerationError(
                f"the server does not serve model {self.served_name!r}: set llm.openai.served_model_name ({exc})"
            ) from exc
        except openai.APIStatusError as exc:
            return Completion(request.key, "", 0, 0, "error", f"server error {exc.status_code}: {exc.message}")
        except _MALFORMED as exc:  # an answer without choices or message: this prompt failed, the run goes on
            return Completion(request.key, "", 0, 0, "error", f"malformed answer from the server ({exc!r})")
        usage = resp.usage
        return Completion(
            key=request.key,
            text=text,
            n_prompt_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
            n_output_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
            finish_reason=str(resp.choices[0].finish_reason or "stop"),
        )


# What reading a malformed answer raises: no `choices` ([] or null), a choice without `message` / `text`.
_MALFORMED = (IndexError, AttributeError, TypeError, KeyError)


def _json_schema_format(schema: str) -> dict:
    return {"type": "json_schema", "json_schema": {"name": "output", "schema": json.loads(schema), "strict": True}}
