"""A real OpenAI-compatible HTTP server on 127.0.0.1 for the endpoint-teacher tests.

`/v1/completions` with `echo` returns true token log-probabilities of the prompt computed by a
(tiny) causal language model; `/v1/chat/completions` returns `n` answers from a fixed list. The
`behaviour` attribute switches it to the failures a client must survive.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import torch


class OpenAICompatibleServer:
    def __init__(self, model, tokenizer, chat_answers=("go forward",)):
        self.model, self.tokenizer, self.chat_answers = model, tokenizer, list(chat_answers)
        self.behaviour = "ok"  # ok | slow | error | malformed | no_logprobs
        self.requests = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                server.requests += 1
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if server.behaviour == "slow":
                    time.sleep(1.0)
                if server.behaviour == "error":
                    return self._send(500, b'{"error": "boom"}')
                if server.behaviour == "malformed":
                    return self._send(200, b'{"choices": [ {"logprobs": ')
                if self.path.endswith("/completions") and "chat" not in self.path:
                    if server.behaviour == "no_logprobs":
                        return self._send(400, b'{"error": "echo is not supported"}')
                    reply = {"choices": [server.complete(p, i) for i, p in enumerate(body["prompt"])]}
                else:
                    n = body.get("n", 1)
                    answers = [server.chat_answers[i % len(server.chat_answers)] for i in range(n)]
                    reply = {"choices": [{"index": i, "message": {"role": "assistant", "content": a}}
                                         for i, a in enumerate(answers)]}
                self._send(200, json.dumps(reply).encode())

            def _send(self, code, data):
                try:
                    self.send_response(code)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
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
