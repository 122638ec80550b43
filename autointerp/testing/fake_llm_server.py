"""A real local HTTP server speaking the OpenAI and Anthropic wire formats, for offline tests.

The official SDKs talk to it over a socket exactly as they would to a provider, so tests exercise our
real clients, retries and timeouts. What it answers comes from a pluggable responder; faults (429 with
Retry-After, 5xx, slow replies, malformed or truncated bodies) are queued and consumed one per request.
A `RateLimit` makes it refuse requests past N per window with 429, Retry-After and the providers'
rate-limit headers, which it also sends on every answer. It never checks auth headers.
"""

from __future__ import annotations

import email.policy
import json
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.parser import BytesParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal, Self

Api = Literal["openai", "anthropic"]


@dataclass
class FakeToken:
    """One generated token with its logprob and the alternatives OpenAI would list."""

    token: str
    logprob: float = 0.0
    top: list[tuple[str, float]] = field(default_factory=list)


@dataclass
class FakeReply:
    text: str
    logprobs: list[FakeToken] | None = None  # None: derived from the text when logprobs are asked
    prompt_tokens: int | None = None  # None: a rough count of the request's words
    completion_tokens: int | None = None
    finish_reason: str = "stop"
    tool_calls: list[tuple[str, dict[str, Any]]] | None = None  # (tool name, arguments): a tool-calling turn


@dataclass
class Fault:
    """Something to do instead of (or before) a normal reply, for exactly one request."""

    status: int | None = None  # answer with this HTTP error status
    retry_after: str | None = None  # Retry-After header (seconds or HTTP date)
    retry_after_ms: str | None = None  # retry-after-ms header
    delay_s: float = 0.0  # wait this long first (longer than the client timeout -> it times out)
    body: str | None = None  # send this raw text as a 200 body (malformed JSON)
    truncate: bool = False  # send half a valid body under a full Content-Length, then close
    message: str | None = None  # the error message of a `status` fault


@dataclass
class RateLimit:
    """At most `requests` chat requests per fixed window of `window_s` seconds, counted on arrival,
    as a provider's requests-per-minute limit does (shrunk to test time)."""

    requests: int
    window_s: float
    window_start: float = 0.0
    used: int = 0
    refused: int = 0  # 429s sent

    def admit(self, now: float) -> tuple[bool, int, float]:
        """Count a request arriving at `now`: whether it is served, requests left in its window, and
        seconds until the window resets."""
        if now >= self.window_start + self.window_s:
            self.window_start, self.used = now, 0
        admitted = self.used < self.requests
        self.used += admitted
        self.refused += not admitted
        return admitted, self.requests - self.used, self.window_start + self.window_s - now

    def headers(self, api: Api, remaining: int, reset_s: float) -> dict[str, str]:
        """The limit as each provider reports it: OpenAI a duration, Anthropic an RFC 3339 time."""
        if api == "openai":
            return {
                "x-ratelimit-limit-requests": str(self.requests),
                "x-ratelimit-remaining-requests": str(remaining),
                "x-ratelimit-reset-requests": f"{reset_s * 1000:.0f}ms",
            }
        reset_at = datetime.now(UTC) + timedelta(seconds=reset_s)
        return {
            "anthropic-ratelimit-requests-limit": str(self.requests),
            "anthropic-ratelimit-requests-remaining": str(remaining),
            "anthropic-ratelimit-requests-reset": reset_at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        }


@dataclass
class RecordedRequest:
    api: Api
    path: str
    body: dict[str, Any]
    headers: dict[str, str]


Responder = Callable[[dict[str, Any], Api], "str | FakeReply"]
BatchFate = Literal["succeeded", "errored", "expired"]


def echo_responder(request: dict[str, Any], api: Api) -> str:
    """Default answer: deterministic and mentions the last user message."""
    last = next((m for m in reversed(request.get("messages", [])) if m.get("role") == "user"), None)
    content = last.get("content", "") if last else ""
    if isinstance(content, list):  # Anthropic content blocks
        content = " ".join(block.get("text", "") for block in content if isinstance(block, dict))
    return f"echo: {content[:60]}"


def _words(text: str) -> list[str]:
    return re.findall(r"\s*\S+|\s+", text) or [text]


def _message_text(messages: list[dict[str, Any]], system: Any = None) -> str:
    parts = [system if isinstance(system, str) else json.dumps(system or "")]
    for m in messages:
        c = m.get("content", "")
        parts.append(c if isinstance(c, str) else json.dumps(c))
    return " ".join(parts)


def _multipart_fields(content_type: str, raw: bytes) -> dict[str, str]:
    """The fields of a multipart/form-data body (an OpenAI file upload) as text."""
    message = BytesParser(policy=email.policy.HTTP).parsebytes(f"Content-Type: {content_type}\r\n\r\n".encode() + raw)
    fields: dict[str, str] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        if isinstance(name, str) and isinstance(payload, bytes):
            fields[name] = payload.decode()
    return fields


_HOST = "127.0.0.1"  # the server listens on loopback only
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_error",
    529: "overloaded_error",
}


class _BurstyHTTPServer(ThreadingHTTPServer):
    request_queue_size = 256  # socketserver's default backlog of 5 refuses bursts of connections


class FakeLLMServer:
    """Start with `with FakeLLMServer() as server:`; point SDKs at `openai_base_url` /
    `anthropic_base_url`."""

    def __init__(
        self,
        responder: Responder | None = None,
        latency_s: float = 0.0,
        *,
        replay: bool = False,
        keep_alive: bool = False,
        rate_limit: RateLimit | None = None,
    ):
        self.responder: Responder = responder or echo_responder
        self.latency_s = latency_s  # added to every reply
        # replay: a request byte-identical to an earlier one gets that reply's bytes again, without
        # the responder or serialising (benchmarks: serving then costs little, so the client is measured)
        self._replies: dict[tuple[str, bytes], bytes] | None = {} if replay else None
        # keep_alive: HTTP/1.1 connections that serve many requests, as providers' do (the default,
        # one connection per request, lets a truncated-body fault end its connection)
        self.keep_alive = keep_alive
        self.rate_limit = rate_limit  # None: no limit
        self.requests: list[RecordedRequest] = []
        self.in_flight = 0
        # Batches: what becomes of each request (custom id, request body) -> fate; None: all succeed
        self.batch_fate: Callable[[str, dict[str, Any]], BatchFate] | None = None
        self.batch_polls_until_done = 1  # status checks that say "in progress" before a batch is done
        self.batch_submissions: list[list[str]] = []  # the custom ids of each batch created, in order
        self._files: dict[str, str] = {}
        self._batches: dict[str, dict[str, Any]] = {}
        self.max_in_flight = 0  # the most requests handled at once: checks client concurrency limits
        self._faults: deque[Fault] = deque()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd = _BurstyHTTPServer((_HOST, 0), self._handler_class())
        self._httpd.daemon_threads = True
        self._httpd.block_on_close = False
        self._thread: threading.Thread | None = None

    # ---- lifecycle ---------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://{_HOST}:{self._httpd.server_port}"

    @property
    def openai_base_url(self) -> str:
        return self.url + "/v1"

    @property
    def anthropic_base_url(self) -> str:
        return self.url

    def start(self) -> Self:
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-llm", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # wakes handlers sleeping in a slow fault
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- test controls -----------------------------------------------------------------------

    def add_faults(self, *faults: Fault) -> None:
        """Queue faults; each request consumes the next one (none left: normal replies)."""
        with self._lock:
            self._faults.extend(faults)

    @property
    def request_count(self) -> int:
        with self._lock:
            return len(self.requests)

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self._faults.clear()
            self.max_in_flight = 0

    # ---- request handling --------------------------------------------------------------------

    def _record(self, api: Api, path: str, body: dict, headers: dict[str, str]) -> Fault | None:
        with self._lock:
            self.requests.append(RecordedRequest(api, path, body, headers))
            return self._faults.popleft() if self._faults else None

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1" if server.keep_alive else "HTTP/1.0"

            def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
                pass

            def do_GET(self) -> None:
                self.do_POST()

            def do_POST(self) -> None:
                with server._lock:
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    server._handle(self)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout); nothing to answer
                finally:
                    with server._lock:
                        server.in_flight -= 1

        return Handler

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("content-length") or 0)
        raw = handler.rfile.read(length) if length else b""
        path = handler.path.split("?")[0]
        api: Api | None = "anthropic" if "/messages" in path else "openai" if path.startswith("/v1/") else None
        content_type = handler.headers.get("content-type", "")
        if content_type.startswith("multipart/form-data"):
            body = _multipart_fields(content_type, raw)
        else:
            try:
                body = json.loads(raw or b"{}")
            except json.JSONDecodeError:
                body = {}
        if api is None:
            self._send_json(handler, 404, {"error": {"message": f"no route {path}", "type": "not_found"}})
            return
        fault = self._record(api, path, body, {k.lower(): v for k, v in handler.headers.items()})
        limit_headers: dict[str, str] = {}
        if self.rate_limit is not None and path.endswith(("/chat/completions", "/messages")):
            with self._lock:
                admitted, remaining, reset_s = self.rate_limit.admit(time.monotonic())
            limit_headers = self.rate_limit.headers(api, remaining, reset_s)
            if not admitted:  # refused at once, as providers do, with the wait in both forms
                fault = Fault(
                    status=429,
                    retry_after=f"{reset_s:.3f}",
                    retry_after_ms=f"{reset_s * 1000:.0f}" if api == "openai" else None,
                    message="rate limit: requests per window",
                )
                self._send_error(handler, api, fault, limit_headers)
                return
        delay = self.latency_s + (fault.delay_s if fault else 0.0)
        if delay and self._stopping.wait(delay):
            return
        if fault and fault.status is not None:
            self._send_error(handler, api, fault)
            return
        if fault and fault.body is not None:
            self._send_raw(handler, 200, fault.body.encode())
            return
        if not path.endswith(("/chat/completions", "/messages")):
            self._handle_batch_api(handler, handler.command, path, body)
            return
        data = self._replies.get((path, raw)) if self._replies is not None else None
        if data is None:
            data = json.dumps(self._reply_body(api, body)).encode()
            if self._replies is not None:
                self._replies[(path, raw)] = data
        if fault and fault.truncate:
            self._send_raw(handler, 200, data[: len(data) // 2], declared_length=len(data))
            return
        self._send_raw(handler, 200, data, headers=limit_headers)

    # ---- batch APIs (OpenAI files + batches, Anthropic message batches) ------------------------

    def _handle_batch_api(self, handler: BaseHTTPRequestHandler, method: str, path: str, body: dict) -> None:
        """Batches are answered at creation but say "in progress" to the first `batch_polls_until_done`
        status checks, so clients must poll. `batch_fate` picks requests that error or expire; a batch
        with an expired request ends "expired" (OpenAI) with the rest answered, as providers do."""
        parts = path.strip("/").split("/")  # ["v1", "files"], ["v1", "messages", "batches", id], ...
        with self._lock:
            if method == "POST" and parts == ["v1", "files"]:
                file_id = self._new_file(body.get("file", ""))
                return self._send_json(
                    handler,
                    200,
                    {
                        "id": file_id,
                        "object": "file",
                        "bytes": len(self._files[file_id]),
                        "created_at": 0,
                        "filename": "batch.jsonl",
                        "purpose": body.get("purpose", ""),
                        "status": "processed",
                    },
                )
            if method == "GET" and len(parts) == 4 and parts[1] == "files" and parts[3] == "content":
                return self._send_raw(handler, 200, self._files.get(parts[2], "").encode())
            if method == "POST" and parts == ["v1", "batches"]:
                lines = [json.loads(x) for x in self._files.get(body.get("input_file_id", ""), "").splitlines() if x]
                return self._send_json(handler, 200, self._create_openai_batch(body, lines))
            if method == "GET" and len(parts) == 3 and parts[1] == "batches":
                return self._send_json(handler, 200, self._openai_batch_view(parts[2], poll=True))
            if method == "POST" and parts == ["v1", "messages", "batches"]:
                return self._send_json(handler, 200, self._create_anthropic_batch(body.get("requests", [])))
            if method == "GET" and len(parts) == 5 and parts[-1] == "results":
                return self._send_raw(handler, 200, self._batches[parts[3]]["results"].encode())
            if method == "GET" and len(parts) == 4 and parts[2] == "batches":
                return self._send_json(handler, 200, self._anthropic_batch_view(parts[3], poll=True))
        self._send_json(handler, 404, {"error": {"message": f"no route {method} {path}", "type": "not_found"}})

    def _new_file(self, text: str) -> str:
        file_id = f"file-{len(self._files)}"
        self._files[file_id] = text
        return file_id

    def _fate(self, custom_id: str, body: dict[str, Any]) -> BatchFate:
        return self.batch_fate(custom_id, body) if self.batch_fate is not None else "succeeded"

    def _create_openai_batch(self, body: dict[str, Any], lines: list[dict[str, Any]]) -> dict:
        batch_id = f"batch_{len(self._batches)}"
        self.batch_submissions.append([line["custom_id"] for line in lines])
        output, errors = [], []
        for line in lines:
            fate = self._fate(line["custom_id"], line["body"])
            if fate == "expired":
                error = {"code": "batch_expired", "message": "not executed before the completion window expired"}
                errors.append(json.dumps({"id": "x", "custom_id": line["custom_id"], "response": None, "error": error}))
                continue
            if fate == "errored":
                response = {"status_code": 400, "request_id": "r", "body": {"error": {"message": "bad"}}}
            else:
                response = {"status_code": 200, "request_id": "r", "body": self._reply_body("openai", line["body"])}
            output.append(json.dumps({"id": "x", "custom_id": line["custom_id"], "response": response, "error": None}))
        self._batches[batch_id] = {
            "id": batch_id,
            "object": "batch",
            "endpoint": body.get("endpoint"),
            "input_file_id": body.get("input_file_id"),
            "completion_window": "24h",
            "created_at": 0,
            "output_file_id": self._new_file("\n".join(output) + "\n"),
            "error_file_id": self._new_file("\n".join(errors) + "\n") if errors else None,
            "final_status": "expired" if errors else "completed",
            "polls": 0,
        }
        return self._openai_batch_view(batch_id)

    def _create_anthropic_batch(self, requests: list[dict[str, Any]]) -> dict:
        batch_id = f"msgbatch_{len(self._batches)}"
        self.batch_submissions.append([item["custom_id"] for item in requests])
        results = []
        for item in requests:
            fate = self._fate(item["custom_id"], item["params"])
            if fate == "expired":
                result: dict[str, Any] = {"type": "expired"}
            elif fate == "errored":
                error = {"type": "invalid_request_error", "message": "bad"}
                result = {"type": "errored", "error": {"type": "error", "error": error}}
            else:
                result = {"type": "succeeded", "message": self._reply_body("anthropic", item["params"])}
            results.append(json.dumps({"custom_id": item["custom_id"], "result": result}))
        self._batches[batch_id] = {"results": "\n".join(results) + "\n", "polls": 0}
        return self._anthropic_batch_view(batch_id)

    def _done(self, batch: dict[str, Any], poll: bool) -> bool:
        """Count a status check; the batch is done once `batch_polls_until_done` checks saw it running."""
        done = poll and batch["polls"] >= self.batch_polls_until_done
        batch["polls"] += poll and not done
        return done

    def _openai_batch_view(self, batch_id: str, poll: bool = False) -> dict:
        batch = self._batches[batch_id]
        done = self._done(batch, poll)
        view = {k: v for k, v in batch.items() if k not in ("polls", "final_status")}
        view["status"] = batch["final_status"] if done else "in_progress"
        if not done:
            view["output_file_id"] = view["error_file_id"] = None
        return view

    def _anthropic_batch_view(self, batch_id: str, poll: bool = False) -> dict:
        batch = self._batches[batch_id]
        done = self._done(batch, poll)
        return {
            "id": batch_id,
            "type": "message_batch",
            "processing_status": "ended" if done else "in_progress",
            "request_counts": {"processing": 0, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0},
            "created_at": "2025-01-01T00:00:00Z",
            "expires_at": "2025-01-02T00:00:00Z",
            "ended_at": "2025-01-01T01:00:00Z" if done else None,
            "cancel_initiated_at": None,
            "archived_at": None,
            "results_url": f"{self.url}/v1/messages/batches/{batch_id}/results" if done else None,
        }

    # ---- wire formats ------------------------------------------------------------------------

    def _reply_body(self, api: Api, body: dict) -> dict:
        reply = self.responder(body, api)
        if isinstance(reply, str):
            reply = FakeReply(text=reply)
        return self._openai_body(body, reply) if api == "openai" else self._anthropic_body(body, reply)

    def _usage(self, body: dict, reply: FakeReply, system: Any = None) -> tuple[int, int]:
        prompt = reply.prompt_tokens
        if prompt is None:
            prompt = len(_message_text(body.get("messages", []), system).split())
        completion = reply.completion_tokens
        if completion is None:
            completion = len(reply.logprobs) if reply.logprobs else len(_words(reply.text))
        return prompt, completion

    def _openai_body(self, body: dict, reply: FakeReply) -> dict:
        logprobs = None
        if body.get("logprobs"):
            n_top = int(body.get("top_logprobs") or 0)
            tokens = reply.logprobs or [FakeToken(w, 0.0, [(w, 0.0)]) for w in _words(reply.text)]
            logprobs = {
                "content": [
                    {
                        "token": t.token,
                        "logprob": t.logprob,
                        "bytes": list(t.token.encode()),
                        "top_logprobs": [
                            {"token": tok, "logprob": lp, "bytes": list(tok.encode())} for tok, lp in t.top[:n_top]
                        ],
                    }
                    for t in tokens
                ],
                "refusal": None,
            }
        prompt, completion = self._usage(body, reply)
        return {
            "id": f"chatcmpl-fake{len(self.requests)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "fake"),
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "tool_calls" if reply.tool_calls else reply.finish_reason,
                    "message": {
                        "role": "assistant",
                        "content": reply.text or None,
                        "tool_calls": [
                            {
                                "id": f"call_{i}",
                                "type": "function",
                                "function": {"name": name, "arguments": json.dumps(args)},
                            }
                            for i, (name, args) in enumerate(reply.tool_calls)
                        ],
                    }
                    if reply.tool_calls
                    else {"role": "assistant", "content": reply.text},
                    "logprobs": logprobs,
                }
            ],
            "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion},
        }

    def _anthropic_body(self, body: dict, reply: FakeReply) -> dict:
        prompt, completion = self._usage(body, reply, body.get("system"))
        tool_choice = body.get("tool_choice") or {}
        if tool_choice.get("type") == "tool":
            try:
                tool_input = json.loads(reply.text)
            except json.JSONDecodeError:
                tool_input = {"text": reply.text}
            content = [{"type": "tool_use", "id": "toolu_fake", "name": tool_choice["name"], "input": tool_input}]
            stop_reason = "tool_use"
        elif reply.tool_calls:
            content = [{"type": "text", "text": reply.text}] if reply.text else []
            content += [
                {"type": "tool_use", "id": f"toolu_{i}", "name": name, "input": args}
                for i, (name, args) in enumerate(reply.tool_calls)
            ]
            stop_reason = "tool_use"
        else:
            content = [{"type": "text", "text": reply.text}]
            stop_reason = "end_turn" if reply.finish_reason == "stop" else reply.finish_reason
        return {
            "id": f"msg_fake{len(self.requests)}",
            "type": "message",
            "role": "assistant",
            "model": body.get("model", "fake"),
            "content": content,
            "stop_reason": stop_reason,
            "stop_sequence": None,
            "usage": {"input_tokens": prompt, "output_tokens": completion},
        }

    def _send_error(
        self, handler: BaseHTTPRequestHandler, api: Api, fault: Fault, headers: dict[str, str] | None = None
    ) -> None:
        status = fault.status or 500
        kind = _ERROR_TYPES.get(status, "api_error")
        message = fault.message or f"fake {status} error"
        if status == 401:  # like real providers, echo the key back (tests check we redact it)
            sent = handler.headers.get("authorization", "") or handler.headers.get("x-api-key", "")
            message = f"Incorrect API key provided: {sent.removeprefix('Bearer ')}"
        payload = (
            {"error": {"message": message, "type": kind, "code": None}}
            if api == "openai"
            else {"type": "error", "error": {"type": kind, "message": message}}
        )
        headers = dict(headers or {})
        if fault.retry_after is not None:
            headers["retry-after"] = fault.retry_after
        if fault.retry_after_ms is not None:
            headers["retry-after-ms"] = fault.retry_after_ms
        self._send_raw(handler, status, json.dumps(payload).encode(), headers=headers)

    def _send_json(self, handler: BaseHTTPRequestHandler, status: int, payload: dict) -> None:
        self._send_raw(handler, status, json.dumps(payload).encode())

    def _send_raw(
        self,
        handler: BaseHTTPRequestHandler,
        status: int,
        data: bytes,
        *,
        headers: dict[str, str] | None = None,
        declared_length: int | None = None,
    ) -> None:
        handler.send_response(status)
        handler.send_header("content-type", "application/json")
        handler.send_header("content-length", str(declared_length if declared_length is not None else len(data)))
        for name, value in (headers or {}).items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(data)
        handler.wfile.flush()
