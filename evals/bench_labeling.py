"""Benchmark: how close the explain + score stages come to the ideal throughput, and what they cost.

Against the fake LLM server with a fixed reply latency L and client concurrency C, no pipeline can
beat C / L requests per second; this measures requests per second and units (explained and scored
by all three scorers) per second, and prints the ratio to that ideal, and to the rate of bare
trivial requests at the same C through the same client and server ("raw"), which separates our
pipeline's overhead from the SDK's, the fake server's and the machine's. It also reports tokens per unit
for the explainer and each scorer (the fake server counts whitespace-separated words; the "~tok"
column estimates real tokens as prompt characters / 4) and the offline explainer's units per minute.
The server runs in its own process, so its work does not share the measured process's GIL; the CPU
column shows both processes' CPU per request: when their sum times req/s nears the free cores, the
machine, not the pipeline, is the limit.

The first table is the logprob simulation path alone, one example per request (the default) and
several, against replies shaped like the real API's: ~6 tokens per line, 20 alternatives for every
token (~270 KB per one-example reply). The server first computes every reply in an unmeasured pass
and then replays those bytes, so serving costs ~1 ms of CPU and the share of the ideal C / L is the
client's own. It prints that share, requests per unit and the bytes the cache keeps per answer.

The last table splits the client's CPU per request at the largest C: the official SDK alone (its
`post`, with the body our client sends) on its default httpx2 transport and on the aiohttp one our
client uses, then our client without and with the catalog's ledger, and the server's. One event
loop runs on one core, so C / L requests per second need (C / L) x (client CPU per request) of one
core; with the server's CPU, the cores the ideal rate needs in all.

    python -m evals.bench_labeling --units 24 --latency 0.05 --concurrency 4 16
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import re
import tempfile
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from multiprocessing.connection import Connection
from pathlib import Path

import httpx2
import openai

from autointerp.explainers import LLMExplainer, OfflineExplainer
from autointerp.labeling import explain_units, score_units
from autointerp.llm import ChatMessage, ChatRequest, LLMClient, make_llm_client
from autointerp.llm.client import closing
from autointerp.llm.openai_backend import OpenAIClient
from autointerp.scoring import ScorerName
from autointerp.simulators import LLMSimulator, LLMSimulatorConfig
from autointerp.store import open_store
from autointerp.testing.fake_llm_server import FakeLLMServer, FakeReply, FakeToken
from autointerp.testing.planted import SimulatingResponder, planted_harvest, planted_units

SOURCE = "planted/bench"
SCORERS: list[ScorerName] = ["simulation", "detection", "fuzzing"]


# Pieces a tokenizer makes of a simulation line "12<TAB>" the"<TAB>3": digits, tabs, quotes, words.
_PIECES = re.compile(r"\d+|\t|\n|\"|\s?[^\s\d\"]+|\s")


class APILikeResponder(SimulatingResponder):
    """The planted simulator's answers with logprobs as the real API gives them: the text split into
    realistic tokens, each with `top` alternatives (numbers keep their planted distribution)."""

    def __init__(self, top: int = 20):
        super().__init__()
        self.top = top

    def __call__(self, body: dict, api: str) -> str | FakeReply:
        reply = super().__call__(body, api)
        if not isinstance(reply, FakeReply) or reply.logprobs is None:
            return reply
        tokens: list[FakeToken] = []
        for piece in reply.logprobs:
            if piece.token.strip().isdigit() and len(piece.top) > 1:  # an activation: keep its distribution
                tokens.append(FakeToken(piece.token, piece.logprob, self._padded(piece.top)))
                continue
            for part in _PIECES.findall(piece.token):
                tokens.append(FakeToken(part, -0.01, self._padded([(part, -0.01)])))
        return FakeReply(text=reply.text, logprobs=tokens)

    def _padded(self, top: list[tuple[str, float]]) -> list[tuple[str, float]]:
        return top + [(f"alt{k}", -9.0 - k) for k in range(self.top - len(top))]


def _serve(latency: float, pipe: Connection, api_like: bool, replay: bool) -> None:
    """Child process: the fake server, out of the measured process's GIL; answers "cpu" with its
    CPU seconds so far, and stops on anything else."""
    responder = APILikeResponder() if api_like else SimulatingResponder()
    with FakeLLMServer(responder, latency_s=latency, replay=replay, keep_alive=True) as server:
        pipe.send(server.openai_base_url)
        while pipe.recv() == "cpu":
            pipe.send(time.process_time())


@contextmanager
def _served(latency: float, api_like: bool = False, replay: bool = False) -> Iterator[tuple[str, Callable[[], float]]]:
    """The fake server in a child process; yields its base URL and a function that reads the
    server's CPU seconds so far."""
    pipe, child_end = multiprocessing.Pipe()
    server = multiprocessing.Process(target=_serve, args=(latency, child_end, api_like, replay), daemon=True)
    server.start()

    def server_cpu() -> float:
        pipe.send("cpu")
        return pipe.recv()

    try:
        yield pipe.recv(), server_cpu
    finally:
        pipe.send("stop")
        server.join(timeout=10)


def _request_kind(request: dict) -> str:
    system = next((m["content"] for m in request.get("messages", []) if m.get("role") == "system"), "")
    if "Explanation: <your explanation>" in system:
        return "explain"
    if "random tokens" in system:
        return "fuzzing"
    if "anywhere" in system:
        return "detection"
    return "simulation"


def run_llm(units: int, latency: float, concurrency: int) -> dict:
    harvests = [planted_harvest(u) for u in planted_units(units)]
    with _served(latency) as (base_url, server_cpu), tempfile.TemporaryDirectory() as folder:
        store = open_store(Path(folder) / "bench.db")
        store.put_source(SOURCE, {"bench": True})
        store.put_units(SOURCE, harvests)
        client = make_llm_client(
            "openai:gpt-4o-mini", base_url=base_url, ledger=store.ledger, concurrency=concurrency, timeout=30
        )
        explainer, simulator = LLMExplainer(client), LLMSimulator(client)
        raw_rate = asyncio.run(_raw_rate(client, concurrency))
        calibration = store.db.execute("SELECT COUNT(*) FROM llm_calls").fetchone()[0]
        started, cpu_started, server_started = time.perf_counter(), time.process_time(), server_cpu()
        explained = asyncio.run(
            closing(explain_units(store, SOURCE, None, explainer, concurrency=concurrency, progress=False), explainer)
        )
        scored = asyncio.run(closing(
            score_units(store, SOURCE, None, explanation_settings_hash=explainer.settings_hash, scorers=SCORERS,
                        simulator=simulator, concurrency=concurrency, progress=False), simulator
        ))  # fmt: skip
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
        server_spent = server_cpu() - server_started
        tokens: dict[str, list[float]] = defaultdict(lambda: [0, 0, 0])  # prompt, completion, prompt chars
        for e in store.explanations(SOURCE):
            tokens["explain"][0] += e.prompt_tokens
            tokens["explain"][1] += e.completion_tokens
        for sc in store.scores(SOURCE):
            tokens[sc.scorer][0] += sc.prompt_tokens
            tokens[sc.scorer][1] += sc.completion_tokens
        for (request_json,) in store.db.execute("SELECT request FROM llm_cache"):
            request = json.loads(request_json)
            if request["messages"][0]["role"] != "system":
                continue  # a calibration request
            tokens[_request_kind(request)][2] += sum(len(m["content"]) for m in request["messages"])
        calls = store.db.execute("SELECT COUNT(*) FROM llm_calls WHERE status = 'ok'").fetchone()[0] - calibration
        retried = store.db.execute("SELECT COUNT(*) FROM llm_calls WHERE status = 'error'").fetchone()[0]
        store.close()
    return {
        "requests": calls,
        "errors": retried,
        "wall_s": wall,
        "cpu_s": cpu,
        "server_cpu_s": server_spent,
        "raw_rate": raw_rate,
        "failed": explained.failed + scored.failed,
        "tokens": {k: [v / units for v in values] for k, values in tokens.items()},
    }


async def _raw_rate(client, concurrency: int) -> float:
    """Requests per second of bare, trivial requests at the same concurrency: the ceiling set by the
    SDK, the fake server and this machine, which no pipeline on top of them can beat. Closes the
    client's connections of this loop after."""
    await client.complete(ChatRequest(messages=[ChatMessage(role="user", content="warm-up")]))
    count = max(64, 8 * concurrency)
    started = time.perf_counter()
    await asyncio.gather(
        *(
            client.complete(ChatRequest(messages=[ChatMessage(role="user", content=f"calibration {i}")]))
            for i in range(count)
        )
    )
    rate = count / (time.perf_counter() - started)
    await client.aclose()
    return rate


def run_simulation_path(units: int, latency: float, concurrency: int, per_call: int = 1) -> dict:
    """Simulate the score examples of `units` planted units through the logprob path only, with
    `per_call` examples per request: requests per second against the ideal C / L, requests per unit
    and the bytes cached per simulation answer. A first, unmeasured pass has the server compute
    every reply; the measured pass (a fresh cache, so every request goes out) is answered with
    those bytes, so the server's CPU stays out of the client's way on a small machine."""
    harvests = [planted_harvest(u) for u in planted_units(units, seed=2)]
    offline = OfflineExplainer()
    jobs = [(offline.explain_now(h).text, [e.tokens for e in h.examples_for("score")]) for h in harvests]
    config = LLMSimulatorConfig(simulation_examples_per_call=per_call)

    def simulate_all(client: LLMClient) -> None:
        simulator = LLMSimulator(client, config)

        async def every_unit() -> None:
            await asyncio.gather(*(simulator.simulate(text, examples) for text, examples in jobs))

        asyncio.run(closing(every_unit(), simulator))

    replayed = _served(latency, api_like=True, replay=True)
    with replayed as (base_url, server_cpu), tempfile.TemporaryDirectory() as folder:
        simulate_all(make_llm_client("openai:gpt-4o-mini", base_url=base_url, concurrency=concurrency, timeout=30))
        store = open_store(Path(folder) / "bench.db")
        client = make_llm_client("openai:gpt-4o-mini", base_url=base_url, ledger=store.ledger,
                                 concurrency=concurrency, timeout=30)  # fmt: skip
        asyncio.run(_raw_rate(client, concurrency))  # warm the connections up
        started, cpu_started, server_started = time.perf_counter(), time.process_time(), server_cpu()
        simulate_all(client)
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
        server_spent = server_cpu() - server_started
        rows = store.db.execute(
            "SELECT LENGTH(response), LENGTH(request) FROM llm_cache WHERE request LIKE '%top_logprobs\":20%'"
        ).fetchall()
        store.close()
    return {
        "per_unit": len(rows) / units,
        "server_cpu_ms": server_spent / len(rows) * 1000,
        "requests": len(rows),
        "rate": len(rows) / wall,
        "ideal": concurrency / latency,
        "cpu_ms": cpu / len(rows) * 1000,
        "response_bytes": sum(r[0] for r in rows) / len(rows),
        "request_bytes": sum(r[1] for r in rows) / len(rows),
    }


def run_cpu_split(latency: float, concurrency: int, count: int) -> dict[str, tuple[float, float]]:
    """CPU ms per trivial request (client, server) for: the SDK alone, our client, our client with
    the catalog's ledger; `count` requests at `concurrency`, after a warm-up round."""

    def request(i: int) -> ChatRequest:
        return ChatRequest(messages=[ChatMessage(role="user", content=f"split {i} " + "word " * 200)])

    async def timed(
        send: Callable[[int], Awaitable[object]], close: Callable[[], Awaitable[object]], tag: int
    ) -> tuple[float, float]:
        slots = asyncio.Semaphore(concurrency)

        async def one(i: int) -> None:
            async with slots:
                await send(i)

        await asyncio.gather(*(one(tag + i) for i in range(concurrency)))  # warm-up: connections
        cpu, server = time.process_time(), server_cpu()
        await asyncio.gather(*(one(tag + concurrency + i) for i in range(count)))
        spent = (time.process_time() - cpu) / count * 1000, (server_cpu() - server) / count * 1000
        await close()
        return spent

    rows = ["SDK httpx2", "SDK aiohttp", "our client", "+ ledger"]
    split: dict[str, tuple[float, float]] = {}
    with _served(latency) as (base_url, server_cpu), tempfile.TemporaryDirectory() as folder:
        store = open_store(Path(folder) / "split.db")
        for tag, label in enumerate(rows):
            client = OpenAIClient("gpt-4o-mini", api_key="sk-bench", base_url=base_url, concurrency=concurrency,
                                  ledger=store.ledger if label == "+ ledger" else None, timeout_s=30)  # fmt: skip
            # the SDK as our client builds it (aiohttp), or as it comes (httpx2) with our client's settings
            if label == "SDK httpx2":
                sdk = openai.AsyncOpenAI(api_key="sk-bench", base_url=base_url, max_retries=0, timeout=30)
            else:
                sdk = client._make_sdk()

            async def sdk_post(i: int, client: OpenAIClient = client, sdk: openai.AsyncOpenAI = sdk) -> object:
                body = client.wire_params(client.with_model(request(i)))
                return await sdk.post("/chat/completions", cast_to=httpx2.Response, body=body)

            async def complete(i: int, client: OpenAIClient = client) -> object:
                return await client.complete(request(i))

            if label.startswith("SDK"):
                split[label] = asyncio.run(timed(sdk_post, sdk.close, tag * 1_000_000))
            else:
                split[label] = asyncio.run(timed(complete, client.aclose, tag * 1_000_000))
        store.close()
    return split


def run_offline(units: int, window: int, rounds: int = 3) -> float:
    """Offline explainer throughput in units per minute (one process, no store), the fastest of
    `rounds` passes, each over its own units (none sees text an earlier one cached): a short loop's
    speed on a shared machine swings widely."""
    explainer = OfflineExplainer()
    fastest = float("inf")
    for round_ in range(rounds):
        harvests = [planted_harvest(u, window=window) for u in planted_units(units, seed=1 + round_)]
        started = time.perf_counter()
        for harvest in harvests:
            explainer.explain_now(harvest)
        fastest = min(fastest, time.perf_counter() - started)
    return units / fastest * 60


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--units", type=int, default=24)
    parser.add_argument("--latency", type=float, default=0.05, help="fake server reply latency, seconds")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[4, 16])
    parser.add_argument("--offline-units", type=int, default=300)
    parser.add_argument("--simulation-units", type=int, default=12, help="units for the logprob path table")
    parser.add_argument("--examples-per-call", type=int, default=8, help="the several-examples mode's N")
    parser.add_argument("--split-requests", type=int, default=640, help="requests per row of the CPU split")
    args = parser.parse_args()
    os.environ.setdefault("OPENAI_API_KEY", "sk-bench-not-a-real-key")

    print(
        f"Logprob simulation path, C = 32, L = 100 ms, 20 top logprobs per token, {args.simulation_units} units "
        "(server replies replayed as bytes, so the share of ideal is the client's)"
    )
    print(
        f"{'examples/request':>16} {'requests':>8} {'req/unit':>8} {'req/s':>6} {'C/L':>5} {'share':>5} "
        f"{'client CPU ms/req':>17} {'server':>6} {'cached B/answer':>15} {'request B':>9}"
    )
    for per_call in sorted({1, args.examples_per_call}):
        sim = run_simulation_path(args.simulation_units, 0.1, 32, per_call)
        print(
            f"{per_call:>16} {sim['requests']:>8} {sim['per_unit']:>8.1f} {sim['rate']:>6.1f} {sim['ideal']:>5.0f} "
            f"{sim['rate'] / sim['ideal']:>5.2f} {sim['cpu_ms']:>17.1f} {sim['server_cpu_ms']:>6.1f} "
            f"{sim['response_bytes']:>15,.0f} {sim['request_bytes']:>9,.0f}"
        )
    print()

    print(f"LLM path, fake server, L = {args.latency * 1000:.0f} ms, {args.units} units, scorers {', '.join(SCORERS)}")
    print(
        f"{'C':>3} {'requests':>8} {'req/unit':>8} {'wall s':>6} {'req/s':>6} {'C/L':>6} {'ratio':>5} "
        f"{'raw req/s':>9} {'ratio':>5} {'units/s':>7} {'CPU ms/req client+server':>25}"
    )
    results = []
    for concurrency in args.concurrency:
        r = run_llm(args.units, args.latency, concurrency)
        results.append(r)
        rate = r["requests"] / r["wall_s"]
        ideal = concurrency / args.latency
        print(
            f"{concurrency:>3} {r['requests']:>8} {r['requests'] / args.units:>8.1f} {r['wall_s']:>6.2f} {rate:>6.1f} "
            f"{ideal:>6.1f} {rate / ideal:>5.2f} {r['raw_rate']:>9.1f} "
            f"{rate / r['raw_rate']:>5.2f} {args.units / r['wall_s']:>7.2f} {r['cpu_s'] / r['requests'] * 1000:>12.1f} + {r['server_cpu_s'] / r['requests'] * 1000:<10.1f}"
            + (f"  ({r['failed']} failed, {r['errors']} call errors)" if r["failed"] or r["errors"] else "")
        )
    top = max(args.concurrency)
    split = run_cpu_split(args.latency, top, args.split_requests)
    ideal = top / args.latency
    print(f"\nCPU per trivial request at C = {top}, L = {args.latency * 1000:.0f} ms ({args.split_requests} requests); "
          f"the ideal {ideal:.0f} req/s needs, of one core:")  # fmt: skip
    print(f"{'':>11} {'client ms':>9} {'server ms':>9} {'client cores':>12} {'all cores':>9}")
    for label, (client_ms, server_ms) in split.items():
        print(f"{label:>11} {client_ms:>9.2f} {server_ms:>9.2f} {ideal * client_ms / 1000:>12.2f} "
              f"{ideal * (client_ms + server_ms) / 1000:>9.2f}")  # fmt: skip

    print("\nTokens per unit (fake-server word counts; ~tok = prompt chars / 4)")
    print(f"{'stage':>11} {'prompt':>8} {'completion':>11} {'~tok prompt':>12}")
    for stage in ["explain", *SCORERS]:
        prompt, completion, chars = results[-1]["tokens"].get(stage, [0, 0, 0])
        print(f"{stage:>11} {prompt:>8.0f} {completion:>11.0f} {chars / 4:>12.0f}")

    for window in (24, 64):
        per_minute = run_offline(args.offline_units, window)
        print(
            f"\noffline explainer, {window}-token windows: {per_minute:,.0f} units/minute (1 core, fastest of 3)",
            end="",
        )
    print()


if __name__ == "__main__":
    main()
