#!/usr/bin/env python3
"""A minimal agent loop that asks `rcv decide` what to do after every call.

The model is simulated (it fails with real-looking provider errors a few
times, then answers), so the example runs anywhere without network access:

    cargo build --release
    python3 examples/agent_loop.py policies/tool_chain.rcv
"""
import json
import os
import random
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
RCV = shutil.which("rcv") or os.path.join(HERE, "..", "target", "release", "rcv")

RATE_LIMIT = (
    "openai.RateLimitError: Error code: 429 - {'error': {'message': 'Rate limit reached for gpt-4o "
    "on tokens per min (TPM): Limit 30000, Used 29804, Requested 1422.', 'type': 'tokens', "
    "'param': None, 'code': 'rate_limit_exceeded'}}"
)
OVERLOADED = '{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}'


def call_model(rng, model, strategy, attempt):
    """Stands in for a real provider call: fails twice, then succeeds."""
    if attempt <= 2:
        raw = RATE_LIMIT if model == "gpt-4o" else OVERLOADED
        status = 429 if model == "gpt-4o" else 529
        return {"kind": "model_call", "model": model, "strategy": strategy, "outcome": "error",
                "error": {"raw": raw, "http_status": status}, "latency_ms": rng.randint(200, 900)}
    return {"kind": "model_call", "model": model, "strategy": strategy, "outcome": "ok",
            "output": {"schema_valid": True, "confidence": 0.91},
            "latency_ms": rng.randint(800, 2000), "cost_usd": 0.004}


def decide(policy, event, request, state):
    payload = json.dumps({"event": event, "request": request, "state": state})
    out = subprocess.run([RCV, "decide", "--compact", policy], input=payload,
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def main():
    policy = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "policies", "tool_chain.rcv")
    rng = random.Random(7)
    request = {"request_id": "demo-1", "risk": "medium", "intent": "summarize_ticket"}
    model, strategy, state, attempt = "gpt-4o", "direct", {}, 0
    while True:
        attempt += 1
        event = call_model(rng, model, strategy, attempt)
        event["request_id"] = request["request_id"]
        answer = decide(policy, event, request, state)
        state, decision = answer["state"], answer["decision"]
        if decision is None:
            print(f"attempt {attempt}: ok on {model} ({strategy}); done")
            return 0
        action = decision["action"]
        print(f"attempt {attempt}: {decision['class']} -> {action['kind']} ({decision['reason']})")
        if action["kind"] in ("escalate", "abort"):
            print(f"handing request to queue {action.get('queue') or 'default'}")
            return 0
        time.sleep(action.get("delay_ms", 0) / 1000)
        model = action.get("provider_model") or model
        strategy = action.get("strategy") or strategy


if __name__ == "__main__":
    sys.exit(main())
