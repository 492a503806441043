#!/usr/bin/env node
// BullMQ under the `hangar bench` protocol (see README.md).
//
//   node bullmq.mjs throughput [--jobs 50000] [--concurrency 100]
//   node bullmq.mjs latency    [--jobs 1000]  [--interval-ms 20]
//
// REDIS_URL names the Redis server (default redis://127.0.0.1:6379). Each run uses a
// queue name of its own and obliterates that queue (only its keys) afterwards.

import { Queue, Worker } from "bullmq";
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

const opts = parseArgs(process.argv.slice(2), "bullmq.mjs");
const connection = { url: process.env.REDIS_URL || "redis://127.0.0.1:6379" };
const queueName = `compare-bullmq-${opts.mode}-${process.pid}-${Date.now()}`;
// Keep completed jobs, like hangar keeps completed rows (BullMQ's default too).
const JOB_OPTS = { removeOnComplete: false, removeOnFail: false };

const queue = new Queue(queueName, { connection });

async function throughput({ jobs, concurrency }) {
  // 1. Enqueue everything first: Queue.addBulk in chunks of 5000.
  const enqueueStarted = now();
  for (let done = 0; done < jobs; done += ENQUEUE_BATCH) {
    const n = Math.min(ENQUEUE_BATCH, jobs - done);
    await queue.addBulk(Array.from({ length: n }, () => ({ name: "noop", data: {}, opts: JOB_OPTS })));
  }
  const enqueueSecs = (now() - enqueueStarted) / 1000;
  console.error(
    `enqueued ${jobs} jobs in ${enqueueSecs.toFixed(2)}s (${(jobs / enqueueSecs).toFixed(0)}/s); draining`,
  );

  // 2. Start the worker and drain.
  const waits = new Float64Array(jobs); // processedOn - timestamp (both stored on the job)
  const progress = progressWaiter();
  const drainStarted = now();
  const worker = new Worker(
    queueName,
    async (job) => {
      const i = progress.count;
      if (i < jobs) waits[i] = job.processedOn - job.timestamp;
      progress.tick();
    },
    { connection, concurrency },
  );
  worker.on("error", (e) => console.error(`[bullmq worker error] ${e.message}`));
  try {
    await progress.wait(jobs);
    // Started is not done: wait until every job sits in the completed set.
    let lastCompleted = -1;
    let lastChange = now();
    for (;;) {
      const counts = await queue.getJobCounts("completed", "failed");
      if (counts.failed > 0) throw new Error(`${counts.failed} jobs failed`);
      if (counts.completed >= jobs) break;
      if (counts.completed !== lastCompleted) {
        lastCompleted = counts.completed;
        lastChange = now();
      } else if (now() - lastChange > START_TIMEOUT_MS) {
        throw new Error(`only ${counts.completed}/${jobs} completed after ${START_TIMEOUT_MS / 1000} s`);
      }
      await sleep(DRAIN_POLL_MS);
    }
    const drainSecs = (now() - drainStarted) / 1000;
    const counts = await queue.getJobCounts("completed", "wait", "active", "delayed", "prioritized", "failed");
    printThroughput({
      backend: "bullmq",
      jobs,
      concurrency,
      drainSecs,
      waits,
      extra:
        ` enqueue_s=${enqueueSecs.toFixed(3)} completed=${counts.completed} open=` +
        `${counts.wait + counts.active + counts.delayed + counts.prioritized} failed=${counts.failed}`,
    });
  } finally {
    await worker.close();
  }
}

async function latency({ jobs, concurrency, intervalMs }) {
  const starts = startRegistry();
  const worker = new Worker(
    queueName,
    async (job) => {
      starts.started(job.id, now());
    },
    { connection, concurrency },
  );
  worker.on("error", (e) => console.error(`[bullmq worker error] ${e.message}`));
  try {
    await worker.waitUntilReady();
    // Let the worker reach its idle (blocking) wait before measuring.
    await sleep(IDLE_BEFORE_LATENCY_MS);
    const latencies = [];
    const enqueueMs = [];
    for (let i = 0; i < jobs; i++) {
      const sent = now();
      const job = await queue.add("noop", {}, JOB_OPTS);
      enqueueMs.push(now() - sent);
      const started = await starts.waitFor(job.id, LATENCY_JOB_TIMEOUT_MS);
      latencies.push(started - sent);
      await sleep(intervalMs);
    }
    printLatency({ backend: "bullmq", jobs, intervalMs, latencies, enqueueMs });
  } finally {
    await worker.close();
  }
}

let code = 0;
try {
  await queue.waitUntilReady();
  if (opts.mode === "throughput") await throughput(opts);
  else await latency(opts);
} catch (err) {
  console.error(`bullmq.mjs: ${err?.stack ?? err}`);
  code = 1;
} finally {
  try {
    await queue.obliterate({ force: true });
  } catch (e) {
    console.error(`bullmq.mjs: obliterating ${queueName}: ${e.message}`);
  }
  await queue.close();
}
process.exit(code);
