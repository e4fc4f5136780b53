'use strict'
// What the S3 benchmarks share: a local s3s-fs server, the Rust ceiling client, and
// running one measured worker process at a time.
const { execFileSync } = require('node:child_process')
const crypto = require('node:crypto')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { startS3 } = require('../__test__/servers/servers')

const ROOT = path.join(__dirname, '..')

// This file system (ext4 without a journal) will not reuse an inode freed in the last
// 60 s, or 300 s while its inode-table block is dirty, as a busy server keeps it
// (fs/ext4/ialloc.c, recently_deleted). Each file it creates checks free inodes one by
// one until it finds an old one, so a run that starts soon after thousands of deletions
// or overwrites spends up to half of the server's time in that scan (perf: ext4_create
// → find_inode_bit → recently_deleted). The check only reads inode tables that are in
// the page cache. Every measured run therefore starts after one of two settles:
// - by default, a wait until SETTLE_MS after the benchmark last deleted or overwrote
//   objects, then a `sync`: it removes the 60 s part, not the 300 s one;
// - with `dropCaches` (root only, else the wait): a `sync`, the clean page cache dropped,
//   and the files the run reads loaded back. This VM hands dropped pages back to its host,
//   and the next writes into fresh page cache pay for that (a getToFile run used 70
//   instead of 38 ms of CPU per file), so only the migration benchmark, whose clients
//   write no more than a journal locally, settles this way.
const DROP_CACHES = '/proc/sys/vm/drop_caches'
const SETTLE_MS = 31_000
let lastFreed = 0

/** Records that objects were just deleted or overwritten. */
function freed() {
  lastFreed = Date.now()
}

function canDropCaches() {
  try {
    fs.accessSync(DROP_CACHES, fs.constants.W_OK)
    return true
  } catch {
    return false
  }
}

/** Reads every file under `dir` into the page cache. */
function warm(dir) {
  for (const e of fs.readdirSync(dir, { recursive: true, withFileTypes: true })) {
    if (e.isFile()) fs.readFileSync(path.join(e.parentPath ?? e.path, e.name))
  }
}

/** Loads ext4's block-allocator state (bitmaps and buddy pages) of every group back into
 * memory: the dropped page cache held it. */
function warmAllocators() {
  const proc = '/proc/fs/ext4'
  if (!fs.existsSync(proc)) return
  for (const device of fs.readdirSync(proc)) {
    const groups = path.join(proc, device, 'mb_groups')
    if (fs.existsSync(groups)) fs.readFileSync(groups)
  }
}

/** Puts the server's file system in the same state before every run (see above);
 * `dir` holds everything the run reads. */
function settle(dir, { dropCaches = false } = {}) {
  if (dropCaches && canDropCaches()) {
    execFileSync('sync')
    fs.writeFileSync(DROP_CACHES, '1')
    warm(dir)
    warmAllocators()
    return
  }
  const wait = lastFreed + SETTLE_MS - Date.now()
  if (wait > 0) execFileSync('sleep', [String(wait / 1000)])
  execFileSync('sync')
}

function runJsonLines(cmd, args) {
  return execFileSync(cmd, args, { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 1 << 24 })
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l))
}

/** Starts s3s-fs in a fresh folder; `work` also holds a 20 MiB test file. */
async function startBench() {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'stowage-bench-'))
  const server = await startS3(path.join(work, 's3'))
  // A benchmark that throws must not leave the server behind (it would hold the caller's
  // stdout open); killing a server that already stopped is harmless.
  process.once('exit', () => server.child.kill('SIGKILL'))
  const serverFile = path.join(work, 'server.json')
  // The pid lets a client read the server's CPU time (/proc) around its timed part.
  fs.writeFileSync(serverFile, JSON.stringify({ ...server.info, pid: server.child.pid }))
  const bigFile = path.join(work, 'big-20MiB.bin')
  fs.writeFileSync(bigFile, crypto.randomBytes(20 * 1024 * 1024))
  const ceilingBin = path.join(ROOT, 'target', 'release', 'examples', 's3_ceiling')
  // BENCH_SKIP_CEILING_BUILD=1: no cargo run (e.g. while someone else is building the
  // crate); the ceiling uses an existing binary, or returns no samples without one.
  const skipBuild = process.env.BENCH_SKIP_CEILING_BUILD === '1'
  if (!skipBuild) {
    console.log('building the ceiling client (cargo, release)…')
    execFileSync('cargo', ['build', '--release', '--quiet', '--example', 's3_ceiling'], { cwd: ROOT, stdio: 'inherit' })
  } else if (!fs.existsSync(ceilingBin)) {
    console.log(`BENCH_SKIP_CEILING_BUILD=1 and ${path.relative(ROOT, ceilingBin)} is missing: no ceiling samples`)
  }
  const s = server.info
  // Puts free inodes: a client's puts use the same keys every round, and s3s-fs deletes a
  // multipart upload's part files when it completes.
  const writes = (workload) => workload.includes('put')
  const measured = (wrote, run, settleOpts) => {
    settle(work, settleOpts)
    const result = run()
    if (wrote) freed()
    return result
  }
  return {
    work,
    serverFile,
    server: s,
    settle: (opts) => settle(work, opts),
    freed,
    /** Every ceiling workload in one process, or only the ones named (their gets read
     * what an earlier full run stored). */
    ceiling: (settleOpts, workloads = []) =>
      skipBuild && !fs.existsSync(ceilingBin)
        ? []
        : measured(
            !workloads.length || workloads.some(writes),
            () => runJsonLines(ceilingBin, [s.endpoint, s.bucket, s.accessKeyId, s.secretAccessKey, bigFile, String(server.child.pid), ...workloads]),
            settleOpts,
          ),
    worker: (client, workload) => {
      const [r] = measured(writes(workload), () => runJsonLines(process.execPath, [path.join(__dirname, 'transfer-worker.js'), client, workload, serverFile, work]))
      console.log(`${client.padEnd(8)} ${workload.padEnd(10)} ${(r.files / r.seconds).toFixed(1)} files/s, cpu ${r.cpuSeconds.toFixed(2)} s, p99 ${r.eventLoopP99Ms.toFixed(1)} ms, rss ${r.peakRssMiB.toFixed(0)} MiB`)
      return r
    },
    stop: async () => {
      await server.stop()
      fs.rmSync(work, { recursive: true, force: true })
    },
  }
}

module.exports = { startBench, runJsonLines }
