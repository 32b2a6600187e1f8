#!/usr/bin/env python3
"""A jobbridge process-handler worker: one JSON object per line in, one per line out."""
import json
import os
import sys
import time

for line in sys.stdin:                      # one job per line; end-of-file: jobbridge is done
    job = json.loads(line)
    p = job["payload"]
    if p.get("progress"):                   # progress lines may come before the answer
        print(json.dumps({"id": job["id"], "progress": 50, "message": "half way"}), flush=True)
    if p.get("hang_once") and job["retry_count"] == 0:   # for a test that kills us (-9)
        with open(p["hang_once"], "w") as f:
            f.write(str(os.getpid()))
        time.sleep(600)
    if p.get("crash_once") and job["retry_count"] == 0:
        sys.exit(3)                         # dies mid-job: jobbridge retries the job
    if p.get("garbage_once") and job["retry_count"] == 0:
        print("this is not JSON", flush=True)
        continue
    if p.get("fail"):
        out = {"id": job["id"], "ok": False, "retry": p.get("retry", True), "error": p["fail"]}
    else:
        out = {"id": job["id"], "ok": True, "result": {"n": p.get("n"), "lang": "python"}}
    sys.stdout.write(json.dumps(out) + "\n")
    sys.stdout.flush()
