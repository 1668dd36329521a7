"""A real OpenAI-compatible HTTP server on 127.0.0.1 for the endpoint-teacher tests.

`/v1/completions` with `echo` returns true token log-probabilities of the prompt computed by a
(tiny) causal language model; `/v1/chat/completions` returns `n` answers from a fixed list. The
`behaviour` attribute switches it to the failures a client must survive; `delay` and `serial`
make it slow the way llama.cpp's server is on a small CPU (seconds per request, one at a time).
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import torch


class OpenAICompatibleServer:
    def __init__(self, model, tokenizer, chat_answers=("go forward",), port: int = 0):
        self.model, self.tokenizer, self.chat_answers = model, tokenizer, list(chat_answers)
        self.behaviour = "ok"  # ok | slow | error | malformed | no_logprobs | no_lists
        self.delay, self.serial = 0.0, False  # seconds added to every request; answer one request at a time
        self._one_at_a_time = threading.Lock()
        self.requests = 0
        self.list_requests = 0
        self.chat_requests = 0
        self.max_concurrent = 0
        self._in_flight = 0
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                with server._lock:
                    server.requests += 1
                    server._in_flight += 1
                    server.max_concurrent = max(server.max_concurrent, server._in_flight)
                try:
                    if server.serial:
                        with server._one_at_a_time:
                            time.sleep(server.delay)
                            code, data = self._answer()
                    else:
                        time.sleep(server.delay)
                        code, data = self._answer()
                finally:  # counted out before the reply leaves: the client may send its next at once
                    with server._lock:
                        server._in_flight -= 1
                self._send(code, data)

            def _answer(self) -> tuple[int, bytes]:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if server.behaviour == "slow":
                    time.sleep(1.0)
                if server.behaviour == "error":
                    return (500, b'{"error": "boom"}')
                if server.behaviour == "malformed":
                    return (200, b'{"choices": [ {"logprobs": ')
                if self.path.endswith("/completions") and "chat" not in self.path:
                    if server.behaviour == "no_logprobs":
                        return (400, b'{"error": "echo is not supported"}')
                    if isinstance(body["prompt"], list):
                        with server._lock:
                            server.list_requests += 1
                    if isinstance(body["prompt"], str):  # one prompt: llama.cpp's server answers these
                        time.sleep(0.01)  # long enough for requests sent together to overlap
                        reply = {"choices": [server.complete(body["prompt"], 0)]}
                    elif server.behaviour == "no_lists":  # as llama.cpp's server answers a list of prompts
                        return (500, b'{"error": {"code": 500, "message": "prompt must be a string"}}')
                    else:
                        reply = {"choices": [server.complete(p, i) for i, p in enumerate(body["prompt"])]}
                else:
                    server.chat_requests += 1
                    n = body.get("n", 1)
                    answers = [server.chat_answers[i % len(server.chat_answers)] for i in range(n)]
                    reply = {"choices": [{"index": i, "message": {"role": "assistant", "content": a}}
                                         for i, a in enumerate(answers)]}
                return 200, json.dumps(reply).encode()

            def _send(self, code, data):
                try:
                    self.send_response(code)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def complete(self, prompt: str, index: int) -> dict:
        """Echo the prompt with each token's log-probability given the tokens before it."""
        enc = self.tokenizer(prompt, return_offsets_mapping=True, add_special_tokens=False)
        ids = torch.tensor([enc.input_ids])
        with torch.no_grad():
            logp = torch.log_softmax(self.model(ids).logits[0].float(), -1)
        values = [None] + [logp[t - 1, ids[0, t]].item() for t in range(1, ids.shape[1])]
        offsets = [start for start, _ in enc.offset_mapping]
        tokens = [prompt[s:e] for s, e in enc.offset_mapping]
        return {"index": index, "text": prompt, "logprobs": {"tokens": tokens, "token_logprobs": values, "text_offset": offsets}}

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
