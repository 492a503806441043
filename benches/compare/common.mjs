// Shared bits for graphile.mjs and bullmq.mjs: argument parsing, percentiles and
// output formatting that mirror `hangar bench` (src/bench.rs).

import { performance } from "node:perf_hooks";

export const ENQUEUE_BATCH = 5_000; // hangar: ENQUEUE_BATCH
export const THROUGHPUT_CONCURRENCY = 100; // hangar: --concurrency default
export const LATENCY_CONCURRENCY = 10; // hangar: bench latency uses a pool of 10
export const IDLE_BEFORE_LATENCY_MS = 300; // hangar: sleep before the first enqueue
export const START_TIMEOUT_MS = 60_000; // hangar: "no job started for 60 s"
export const LATENCY_JOB_TIMEOUT_MS = 10_000; // hangar: "did not start within 10 s"
export const DRAIN_POLL_MS = 5; // hangar: polls the store every 5 ms for open jobs

export function usage(script, extra = "") {
  return (
    `usage: node ${script} throughput [--jobs N] [--concurrency C]${extra}\n` +
    `       node ${script} latency [--jobs N] [--interval-ms MS]`
  );
}

/** Parses `throughput|latency` and its flags; exits 2 on bad input (like hangar). */
export function parseArgs(argv, script, { allowBatched = false } = {}) {
  const [mode, ...rest] = argv;
  const fail = (msg) => {
    console.error(`${script}: ${msg}\n${usage(script, allowBatched ? " [--batched]" : "")}`);
    process.exit(2);
  };
  if (mode !== "throughput" && mode !== "latency") fail(`unknown mode '${mode ?? ""}'`);
  const opts = {
    mode,
    jobs: mode === "throughput" ? 50_000 : 1_000,
    concurrency: mode === "throughput" ? THROUGHPUT_CONCURRENCY : LATENCY_CONCURRENCY,
    intervalMs: 20,
    batched: false,
  };
  const int = (name, v) => {
    if (v === undefined || !/^\d+$/.test(v)) fail(`${name}: expected a non-negative integer, got '${v ?? ""}'`);
    return Number(v);
  };
  for (let i = 0; i < rest.length; i++) {
    const a = rest[i];
    if (a === "--jobs") opts.jobs = int(a, rest[++i]);
    else if (a === "--interval-ms" && mode === "latency") opts.intervalMs = int(a, rest[++i]);
    else if (a === "--concurrency" && mode === "throughput") opts.concurrency = int(a, rest[++i]);
    else if (a === "--batched" && allowBatched && mode === "throughput") opts.batched = true;
    else fail(`unexpected argument '${a}'`);
  }
  if (opts.jobs < 1) fail("--jobs: must be at least 1");
  if (opts.concurrency < 1) fail("--concurrency: must be at least 1");
  return opts;
}

/** Same rule as hangar: sort ascending, value at index round(p/100*(n-1)). */
export function percentile(sorted, p) {
  if (sorted.length === 0) return 0;
  const rank = Math.round((p / 100) * (sorted.length - 1));
  return sorted[Math.min(rank, sorted.length - 1)];
}

export function sortNumeric(values) {
  return Float64Array.from(values).sort();
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
export const now = () => performance.now();

export function peakRssMib() {
  return process.resourceUsage().maxRSS / 1024; // maxRSS is in KiB
}

/**
 * Counts handler starts; `wait(n)` resolves once n have started and rejects if
 * none started for `stallMs` (hangar gives up when no job started for 60 s).
 * The stall check runs on a 1 s interval so the handler itself only bumps a counter.
 */
export function progressWaiter(stallMs = START_TIMEOUT_MS) {
  let count = 0;
  let target = Infinity;
  let resolve;
  const done = new Promise((res) => (resolve = res));
  return {
    tick() {
      if (++count >= target) resolve();
    },
    get count() {
      return count;
    },
    wait(n) {
      target = n;
      if (count >= target) return Promise.resolve();
      let seen = count;
      let lastMove = now();
      let timer;
      const stalled = new Promise((_, reject) => {
        timer = setInterval(() => {
          if (count !== seen) {
            seen = count;
            lastMove = now();
          } else if (now() - lastMove >= stallMs) {
            reject(new Error(`no job started for ${stallMs / 1000} s (${count}/${n} started); giving up`));
          }
        }, 1000);
      });
      return Promise.race([done, stalled]).finally(() => clearInterval(timer));
    },
  };
}

/**
 * Per-job start notifications keyed by job id, safe against the handler starting
 * before the enqueue call has returned its id.
 */
export function startRegistry() {
  const started = new Map(); // id -> performance.now() at handler start
  const waiters = new Map(); // id -> resolve
  return {
    started(id, t) {
      const w = waiters.get(id);
      if (w) {
        waiters.delete(id);
        w(t);
      } else started.set(id, t);
    },
    waitFor(id, timeoutMs) {
      if (started.has(id)) {
        const t = started.get(id);
        started.delete(id);
        return Promise.resolve(t);
      }
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          waiters.delete(id);
          reject(new Error(`job ${id} did not start within ${timeoutMs / 1000} s`));
        }, timeoutMs);
        waiters.set(id, (t) => {
          clearTimeout(timer);
          resolve(t);
        });
      });
    },
  };
}

export function printThroughput({ backend, jobs, concurrency, drainSecs, waits, extra = "" }) {
  const sorted = sortNumeric(waits);
  const jobsPerSec = jobs / drainSecs;
  console.error(
    `backend=${backend} jobs=${jobs} concurrency=${concurrency} drain_s=${drainSecs.toFixed(3)}` +
      `${extra} peak_rss_mib=${peakRssMib().toFixed(1)}`,
  );
  console.log(
    `jobs_per_sec=${jobsPerSec.toFixed(0)} p50_ms=${percentile(sorted, 50).toFixed(1)} p99_ms=${percentile(sorted, 99).toFixed(1)}`,
  );
}

export function printLatency({ backend, jobs, intervalMs, latencies, enqueueMs }) {
  const lat = sortNumeric(latencies);
  const enq = sortNumeric(enqueueMs);
  console.error(
    `enqueue call alone: p50_ms=${percentile(enq, 50).toFixed(2)} p99_ms=${percentile(enq, 99).toFixed(2)}`,
  );
  console.error(
    `backend=${backend} jobs=${jobs} interval_ms=${intervalMs} peak_rss_mib=${peakRssMib().toFixed(1)}`,
  );
  const max = lat.length ? lat[lat.length - 1] : 0;
  console.log(
    `p50_ms=${percentile(lat, 50).toFixed(2)} p99_ms=${percentile(lat, 99).toFixed(2)} max_ms=${max.toFixed(2)}`,
  );
}
