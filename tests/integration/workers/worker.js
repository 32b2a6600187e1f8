#!/usr/bin/env node
// A jobbridge process-handler worker: one JSON object per line in, one per line out.
const readline = require("readline");
const rl = readline.createInterface({ input: process.stdin, terminal: false });
const send = (o) => process.stdout.write(JSON.stringify(o) + "\n");

rl.on("line", (line) => {                   // one job per line
  const job = JSON.parse(line);
  const p = job.payload;
  if (p.progress) send({ id: job.id, progress: 50, message: "half way" });
  if (p.crash_once && job.retry_count === 0) process.exit(3); // dies mid-job: retried
  if (p.garbage_once && job.retry_count === 0) {
    process.stdout.write("this is not JSON\n");
    return;
  }
  if (p.fail) send({ id: job.id, ok: false, retry: p.retry !== false, error: p.fail });
  else send({ id: job.id, ok: true, result: { n: p.n, lang: "node" } });
});
rl.on("close", () => process.exit(0));      // end-of-file: jobbridge is done
