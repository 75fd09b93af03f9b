"""A local stand-in for the two W&B endpoints muse-train uses, for
tests/e2e/wandb_test.sh.

    wandb_server.py PORT_FILE KEY [--fail-every N] [--rate-limit-at N]
                    [--drop-at N] [--hang-at N --hang-seconds S]

POST /graphql answers the RunResumeStatus query (the line counts and the
summary the server holds, as a resuming client needs them), the UpsertBucket
mutation and CreateRunFiles (an upload URL per file, here, with a header the
upload must carry); PUT /upload/RUN/FILE stores an uploaded file. POST
/files/ENTITY/PROJECT/RUN/file_stream stores history lines at their offsets
(a resent offset replaces, a gap is a 400; a replaced line whose content
differs is counted as overwritten), every summary received, console lines,
system-metric rows, the files listed as uploaded, and the preempting,
complete and exitcode flags. Every request must carry
HTTP Basic auth "api:KEY" (401 otherwise). Faults, by request number
(1-based, over all requests): --fail-every N answers every Nth with 500;
--rate-limit-at N answers the Nth with 429 and Retry-After: 1; --drop-at N
processes the Nth and closes the connection without answering; --hang-at N
sleeps S seconds before answering the Nth. GET /state returns everything
received as JSON. The chosen port is written to PORT_FILE.
"""

import argparse
import base64
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

lock = threading.Lock()
state = {"runs": {}, "requests": 0, "unauthorized": 0, "failed": 0, "rate_limited": 0,
         "dropped": 0, "hung": 0}


def run_state(name):
    return state["runs"].setdefault(name, {
        "upserts": [], "history": [], "summary": None, "summaries": [], "output": [],
        "events": [], "overwritten": [], "files": {}, "uploaded": [], "preempting": False,
        "complete": False, "exitcode": None})

UPLOAD_HEADER = ("X-Upload-Check", "signed")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, status, body, headers=()):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == "/state":
            with lock:
                self.reply(200, state)
        else:
            self.reply(404, {"error": "not found"})

    def do_PUT(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        m = re.fullmatch(r"/upload/([^/]+)/([^/]+)", self.path)
        if not m:
            return self.reply(404, {"error": "unknown upload " + self.path})
        if self.headers.get(UPLOAD_HEADER[0]) != UPLOAD_HEADER[1]:
            return self.reply(403, {"error": "the upload lacks the headers CreateRunFiles gave"})
        with lock:
            run_state(m.group(1))["files"][m.group(2)] = body.decode()
        self.reply(200, {})

    def do_POST(self):
        length = int(self.headers.get("Content-Length", 0))
        body = self.rfile.read(length)
        expected = "Basic " + base64.b64encode(f"api:{args.key}".encode()).decode()
        with lock:
            state["requests"] += 1
            n = state["requests"]
            if self.headers.get("Authorization") != expected:
                state["unauthorized"] += 1
                return self.reply(401, {"error": "bad credentials"})
            if args.fail_every and n % args.fail_every == 0:
                state["failed"] += 1
                return self.reply(500, {"error": "injected failure"})
            if n == args.rate_limit_at:
                state["rate_limited"] += 1
                return self.reply(429, {"error": "slow down"}, [("Retry-After", "1")])
        if n == args.hang_at:
            with lock:
                state["hung"] += 1
            time.sleep(args.hang_seconds)
        request = json.loads(body)
        with lock:
            status, answer = self.answer(request)
            if n == args.drop_at:
                state["dropped"] += 1
                self.close_connection = True
                self.connection.shutdown(2)
                return
        self.reply(status, answer)

    def answer(self, request):
        if self.path == "/graphql" and request.get("operationName") == "RunResumeStatus":
            v = request["variables"]
            assert "bucket(name: $name, missingOk: true)" in request["query"]
            if v["name"] not in state["runs"]:
                return 200, {"data": {"model": {"id": "p", "name": v["project"], "bucket": None}}}
            run = state["runs"][v["name"]]
            return 200, {"data": {"model": {"id": "p", "name": v["project"], "bucket": {
                "id": "storage-" + v["name"], "name": v["name"],
                "historyLineCount": len(run["history"]), "logLineCount": len(run["output"]),
                "eventsLineCount": len(run["events"]),
                "summaryMetrics": json.dumps(run["summary"] or {})}}}}
        if self.path == "/graphql" and request.get("operationName") == "CreateRunFiles":
            v = request["variables"]
            assert "createRunFiles(input: {entityName: $entity" in request["query"]
            host = self.headers["Host"]
            return 200, {"data": {"createRunFiles": {
                "runID": "storage-" + v["run"], "uploadHeaders": [":".join(UPLOAD_HEADER)],
                "files": [{"name": f, "uploadUrl": f"http://{host}/upload/{v['run']}/{f}"}
                          for f in v["files"]]}}}
        if self.path == "/graphql":
            v = request["variables"]
            assert "upsertBucket(input: {name: $name, modelName: $project" in request["query"]
            run = run_state(v["name"])
            inserted = not run["upserts"]
            run["upserts"].append(v)
            entity = v.get("entity") or "default-entity"
            return 200, {"data": {"upsertBucket": {"inserted": inserted, "bucket": {
                "id": "storage-" + v["name"], "name": v["name"], "displayName": v["displayName"],
                "historyLineCount": len(run["history"]),
                "project": {"id": "p", "name": v["project"], "entity": {"id": "e", "name": entity}}}}}}
        m = re.fullmatch(r"/files/([^/]+)/([^/]+)/([^/]+)/file_stream", self.path)
        if not m:
            return 404, {"error": "unknown endpoint " + self.path}
        run = run_state(m.group(3))
        files = request.get("files", {})
        for name, key in (("wandb-history.jsonl", "history"), ("output.log", "output"),
                          ("wandb-events.jsonl", "events")):
            if name in files:
                offset, content = files[name]["offset"], files[name]["content"]
                lines = run[key]
                if offset > len(lines):
                    return 400, {"error": f"{name}: offset {offset} leaves a gap after {len(lines)}"}
                run["overwritten"] += [f"{name}:{offset + i}" for i, line in enumerate(content)
                                       if offset + i < len(lines) and lines[offset + i] != line]
                lines[offset:offset + len(content)] = content
        if "wandb-summary.json" in files:
            run["summary"] = json.loads(files["wandb-summary.json"]["content"][-1])
            run["summaries"].append(run["summary"])
        run["uploaded"] += request.get("uploaded", [])
        if request.get("preempting"):
            run["preempting"] = True
        if request.get("complete"):
            run["complete"] = True
            run["exitcode"] = request.get("exitcode")
        return 200, {"exitcode": None, "limits": {}}


parser = argparse.ArgumentParser()
parser.add_argument("port_file")
parser.add_argument("key")
parser.add_argument("--fail-every", type=int, default=0)
parser.add_argument("--rate-limit-at", type=int, default=0)
parser.add_argument("--drop-at", type=int, default=0)
parser.add_argument("--hang-at", type=int, default=0)
parser.add_argument("--hang-seconds", type=float, default=0)
args = parser.parse_args()
server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
with open(args.port_file, "w") as f:
    f.write(str(server.server_address[1]))
server.serve_forever()
