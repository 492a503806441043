#!/usr/bin/env node
// graphile-worker under the `hangar bench` protocol (see README.md).
//
//   node graphile.mjs throughput [--jobs 50000] [--concurrency 100] [--batched]
//   node graphile.mjs latency    [--jobs 1000]  [--interval-ms 20]
//
// DATABASE_URL names the PostgreSQL server (default postgres://postgres@127.0.0.1:5432/postgres).
// Every run drops and re-creates the database `compare_graphile` on it, and drops it afterwards.

import pg from "pg";
import { run, makeWorkerUtils, Logger } from "graphile-worker";
import {
  ENQUEUE_BATCH,
  IDLE_BEFORE_LATENCY_MS,
  LATENCY_JOB_TIMEOUT_MS,
  DRAIN_POLL_MS,
  START_TIMEOUT_MS,
  parseArgs,
  progressWaiter,
  startRegistry,
  printThroughput,
  printLatency,
  sleep,
  now,
} from "./common.mjs";

const DB_NAME = "compare_graphile";
const opts = parseArgs(process.argv.slice(2), "graphile.mjs", { allowBatched: true });

const serverUrl = process.env.DATABASE_URL || "postgres://postgres@127.0.0.1:5432/postgres";
const adminUrl = new URL(serverUrl);
if (adminUrl.pathname === `/${DB_NAME}` || adminUrl.pathname === "/" || adminUrl.pathname === "") {
  adminUrl.pathname = "/postgres";
}
const benchUrl = new URL(serverUrl);
benchUrl.pathname = `/${DB_NAME}`;
const connectionString = benchUrl.toString();

// graphile-worker's default logger prints an info line per completed job; keep
// only warnings and errors so a 50k-job run does not benchmark the terminal.
const logger = new Logger(() => (level, message) => {
  if (level === "error" || level === "warning") console.error(`[graphile-worker ${level}] ${message}`);
});

// "Batched mode": the configuration from graphile-worker's performance docs
// (https://worker.graphile.org/docs/performance#batching), i.e. a local queue that
// fetches+locks jobs in batches and batched completion/failure.
const BATCHED = {
  localQueue: { size: 500 },
  completeJobBatchDelay: 0,
  failJobBatchDelay: 0,
};

async function withAdmin(fn) {
  const client = new pg.Client({ connectionString: adminUrl.toString() });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

async function freshDatabase() {
  await withAdmin(async (c) => {
    await c.query(`DROP DATABASE IF EXISTS ${DB_NAME} WITH (FORCE)`);
    await c.query(`CREATE DATABASE ${DB_NAME}`);
  });
}

async function dropDatabase() {
  if (process.env.KEEP_DB) return;
  await withAdmin((c) => c.query(`DROP DATABASE IF EXISTS ${DB_NAME} WITH (FORCE)`));
}

function workerPreset(concurrency, batched) {
  return {
    worker: {
      connectionString,
      concurrentJobs: concurrency,
      // Not part of the protocol: left at graphile-worker's default (10) unless set.
      ...(process.env.GRAPHILE_MAX_POOL_SIZE ? { maxPoolSize: Number(process.env.GRAPHILE_MAX_POOL_SIZE) } : {}),
      logger,
      ...(batched ? BATCHED : {}),
    },
  };
}

async function throughput({ jobs, concurrency, batched }) {
  const utils = await makeWorkerUtils({ preset: workerPreset(concurrency, false) });
  const probe = new pg.Client({ connectionString });
  let runner = null;
  try {
    await utils.migrate();
    await probe.connect();

    // 1. Enqueue everything first, in batches of 5000 through add_jobs (one
    //    statement per batch: graphile-worker's documented bulk path).
    const enqueueStarted = now();
    const spec = { identifier: "noop", payload: {} };
    for (let done = 0; done < jobs; done += ENQUEUE_BATCH) {
      const n = Math.min(ENQUEUE_BATCH, jobs - done);
      await utils.addJobs(Array.from({ length: n }, () => spec));
    }
    const enqueueSecs = (now() - enqueueStarted) / 1000;
    console.error(
      `enqueued ${jobs} jobs in ${enqueueSecs.toFixed(2)}s (${(jobs / enqueueSecs).toFixed(0)}/s); draining`,
    );

    // 2. Start the worker and drain.
    const waits = new Float64Array(jobs); // locked_at - created_at (claim minus insert, DB clock)
    const handlerWaits = new Float64Array(jobs); // handler start (Node clock) - created_at
    const progress = progressWaiter();
    const taskList = {
      noop: async (_payload, helpers) => {
        const t = Date.now();
        const i = progress.count;
        if (i < jobs) {
          const created = helpers.job.created_at.getTime();
          waits[i] = helpers.job.locked_at.getTime() - created;
          handlerWaits[i] = t - created;
        }
        progress.tick();
      },
    };
    const drainStarted = now();
    runner = await run({
      taskList,
      parsedCronItems: [],
      noHandleSignals: true,
      preset: workerPreset(concurrency, batched),
    });
    await progress.wait(jobs);
    // Started is not done: wait until the completions are committed. graphile-worker
    // deletes a job row when it completes, so "done" is an empty jobs table.
    let lastOpen = -1;
    let lastChange = now();
    for (;;) {
      const { rows } = await probe.query("select count(*)::int as n from graphile_worker._private_jobs");
      const open = rows[0].n;
      if (open === 0) break;
      if (open !== lastOpen) {
        lastOpen = open;
        lastChange = now();
      } else if (now() - lastChange > START_TIMEOUT_MS) {
        throw new Error(`${open} jobs still in the table after ${START_TIMEOUT_MS / 1000} s`);
      }
      await sleep(DRAIN_POLL_MS);
    }
    const drainSecs = (now() - drainStarted) / 1000;
    await runner.stop();
    runner = null;
    if (progress.count !== jobs) throw new Error(`handler ran ${progress.count} times for ${jobs} jobs`);

    const sortedHandler = Float64Array.from(handlerWaits).sort();
    const pct = (p) => sortedHandler[Math.round((p / 100) * (sortedHandler.length - 1))].toFixed(1);
    console.error(`handler-start minus created_at: p50_ms=${pct(50)} p99_ms=${pct(99)}`);
    printThroughput({
      backend: `graphile-worker(${batched ? "batched" : "unbatched"})`,
      jobs,
      concurrency,
      drainSecs,
      waits,
      extra: ` enqueue_s=${enqueueSecs.toFixed(3)}`,
    });
  } finally {
    if (runner) await runner.stop().catch(() => {});
    await probe.end().catch(() => {});
    await utils.release();
  }
}

async function latency({ jobs, concurrency, intervalMs }) {
  const starts = startRegistry();
  const taskList = {
    noop: async (_payload, helpers) => {
      starts.started(helpers.job.id, now());
    },
  };
  // Defaults except concurrency: LISTEN/NOTIFY wake-ups, pollInterval 2000 ms.
  const runner = await run({
    taskList,
    parsedCronItems: [],
    noHandleSignals: true,
    preset: workerPreset(concurrency, false),
  });
  let notifications = 0;
  runner.events.on("pool:listen:notification", (e) => {
    if (e.message.channel === "jobs:insert") notifications++;
  });
  try {
    // Let the pool reach its idle wait (and LISTEN) before measuring.
    await sleep(IDLE_BEFORE_LATENCY_MS);
    const latencies = [];
    const enqueueMs = [];
    for (let i = 0; i < jobs; i++) {
      const sent = now();
      const job = await runner.addJob("noop", {});
      enqueueMs.push(now() - sent);
      const started = await starts.waitFor(job.id, LATENCY_JOB_TIMEOUT_MS);
      latencies.push(started - sent);
      await sleep(intervalMs);
    }
    console.error(`jobs:insert notifications received: ${notifications}`);
    printLatency({ backend: "graphile-worker", jobs, intervalMs, latencies, enqueueMs });
  } finally {
    await runner.stop();
  }
}

let code = 0;
try {
  await freshDatabase();
  if (opts.mode === "throughput") await throughput(opts);
  else await latency(opts);
} catch (err) {
  console.error(`graphile.mjs: ${err?.stack ?? err}`);
  code = 1;
} finally {
  await dropDatabase().catch((e) => console.error(`graphile.mjs: dropping ${DB_NAME}: ${e.message}`));
}
process.exit(code);
