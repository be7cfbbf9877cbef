"""Token counting with the target server's own tokenizer (vLLM `POST /tokenize`).

The compiler only accepts a `str -> int` callable; this module builds one for a vLLM server. The
model comes from `GET /v1/models` unless given. Literal prompt segments are counted without special
tokens (a BOS per segment would inflate every count), and repeated texts are counted once.
"""

from __future__ import annotations

from typing import Any

import httpx

from daemon.errors import UserError


def _base(url: str) -> str:
    url = url.rstrip("/")
    return url.removesuffix("/v1")


class VllmTokenCounter:
    """A callable counting tokens through a vLLM server; raises `UserError` when it cannot."""

    def __init__(
        self,
        url: str,
        model: str | None = None,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base = _base(url)
        self.timeout = timeout
        self._client = httpx.Client(timeout=timeout, transport=transport)
        self.model = model or self._first_model()
        self.name = f"vLLM /tokenize ({self.model} at {self.base})"

    # Picklable, so the watcher's compile worker (a child process, killed at its time budget) counts
    # with it too: the child opens its own connection; the model is already resolved.
    def __getstate__(self) -> dict[str, Any]:
        return {"base": self.base, "model": self.model, "timeout": self.timeout}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.base, self.model, self.timeout = state["base"], state["model"], state["timeout"]
        self._client = httpx.Client(timeout=self.timeout)
        self.name = f"vLLM /tokenize ({self.model} at {self.base})"

    def _first_model(self) -> str:
        try:
            resp = self._client.get(f"{self.base}/v1/models")
            resp.raise_for_status()
            data = resp.json().get("data") or []
        except (httpx.HTTPError, ValueError) as exc:
            raise UserError(f"cannot list models at {self.base}/v1/models: {exc}") from None
        if not data or "id" not in data[0]:
            raise UserError(f"{self.base}/v1/models lists no model to tokenize with")
        return str(data[0]["id"])

    def __call__(self, text: str) -> int:
        try:
            resp = self._client.post(
                f"{self.base}/tokenize",
                json={"model": self.model, "prompt": text, "add_special_tokens": False},
            )
            resp.raise_for_status()
            body = resp.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise UserError(f"tokenizing at {self.base}/tokenize failed: {exc}") from None
        if "count" in body:
            return int(body["count"])
        return len(body.get("tokens", []))

    def close(self) -> None:
        self._client.close()
