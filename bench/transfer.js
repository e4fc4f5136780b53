#!/usr/bin/env node
// `npm run bench:transfer`: stowage vs @aws-sdk/client-s3 + lib-storage against one
// local s3s-fs server, interleaved round by round, each run in a fresh process so
// CPU and RSS belong to one client. Also measures the server's ceiling with a plain
// Rust client. Writes bench/RESULTS.md.
'use strict'
const { execFileSync } = require('node:child_process')
const crypto = require('node:crypto')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { startS3 } = require('../__test__/servers/servers')
const { median, machine, writeSection } = require('./results')

const ROUNDS = Number(process.env.BENCH_ROUNDS || 3)
const WORKLOADS = ['small-put', 'small-get', 'large-put', 'large-get']
const ROOT = path.join(__dirname, '..')

function run(cmd, args) {
  return execFileSync(cmd, args, { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 1 << 24 })
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l))
}

async function main() {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'stowage-bench-'))
  const server = await startS3(path.join(work, 's3'))
  try {
    const serverFile = path.join(work, 'server.json')
    fs.writeFileSync(serverFile, JSON.stringify(server.info))
    fs.writeFileSync(path.join(work, 'big-20MiB.bin'), crypto.randomBytes(20 * 1024 * 1024))

    console.log('building the ceiling client (cargo, release)…')
    execFileSync('cargo', ['build', '--release', '--quiet', '--example', 's3_ceiling'], { cwd: ROOT, stdio: 'inherit' })
    const ceilingBin = path.join(ROOT, 'target', 'release', 'examples', 's3_ceiling')
    const s = server.info
    const ceilingArgs = [s.endpoint, s.bucket, s.accessKeyId, s.secretAccessKey, path.join(work, 'big-20MiB.bin')]

    const samples = []
    for (let round = 0; round < ROUNDS; round++) {
      const order = round % 2 ? ['sdk', 'stowage'] : ['stowage', 'sdk']
      samples.push(...run(ceilingBin, ceilingArgs))
      for (const workload of WORKLOADS) {
        for (const client of order) {
          const [r] = run(process.execPath, [path.join(__dirname, 'transfer-worker.js'), client, workload, serverFile, work])
          console.log(`round ${round + 1}: ${client.padEnd(8)} ${workload.padEnd(10)} ${(r.files / r.seconds).toFixed(1)} files/s, cpu ${r.cpuSeconds.toFixed(2)} s, p99 ${r.eventLoopP99Ms.toFixed(1)} ms, rss ${r.peakRssMiB.toFixed(0)} MiB`)
          samples.push(r)
        }
      }
    }
    writeSection('transfer', report(samples))
    console.log('wrote bench/RESULTS.md')
  } finally {
    await server.stop()
    fs.rmSync(work, { recursive: true, force: true })
  }
}

function report(samples) {
  const stat = (client, workload, f) => median(samples.filter((r) => r.client === client && r.workload === workload).map(f))
  const rows = []
  for (const w of WORKLOADS) {
    const ceiling = stat('ceiling', w, (r) => r.files / r.seconds)
    const st = (f) => stat('stowage', w, f)
    const sdk = (f) => stat('sdk', w, f)
    const fps = [st((r) => r.files / r.seconds), sdk((r) => r.files / r.seconds)]
    const mibs = [st((r) => r.bytes / 1048576 / r.seconds), sdk((r) => r.bytes / 1048576 / r.seconds)]
    const cpuPerFile = [st((r) => (r.cpuSeconds / r.files) * 1000), sdk((r) => (r.cpuSeconds / r.files) * 1000)]
    const p99 = [st((r) => r.eventLoopP99Ms), sdk((r) => r.eventLoopP99Ms)]
    const rss = [st((r) => r.peakRssMiB), sdk((r) => r.peakRssMiB)]
    rows.push(
      `| ${w} | ${fps[0].toFixed(1)} / ${fps[1].toFixed(1)} | **${(fps[0] / fps[1]).toFixed(2)}×** | ${((fps[0] / ceiling) * 100).toFixed(0)} % | ${mibs[0].toFixed(1)} / ${mibs[1].toFixed(1)} | ${cpuPerFile[0].toFixed(2)} / ${cpuPerFile[1].toFixed(2)} | **${(cpuPerFile[1] / cpuPerFile[0]).toFixed(1)}×** | ${p99[0].toFixed(1)} / ${p99[1].toFixed(1)} | ${rss[0].toFixed(0)} / ${rss[1].toFixed(0)} |`,
    )
  }
  return `## Transfers: stowage vs AWS SDK v3 (\`npm run bench:transfer\`)

${machine()}; one local s3s-fs server; ${ROUNDS} interleaved rounds, medians; each run a fresh process.
small = 2,000 × 50 KiB at concurrency 16; large = 20 × 20 MiB files (putFile/getToFile vs
lib-storage \`Upload\` + \`GetObject\` to a file) at 4 in flight. Both sides hash with SHA-256,
store it as metadata and verify it on download. Ceiling = object_store in a plain Rust loop
(no Node, no hashing), same concurrency.

| workload | files/s stowage / SDK | speed ratio | stowage vs ceiling | MiB/s stowage / SDK | CPU ms per file stowage / SDK | CPU ratio (SDK ÷ stowage) | event-loop p99 ms | peak RSS MiB |
|---|---|---|---|---|---|---|---|---|
${rows.join('\n')}
`
}

main().catch((e) => {
  console.error(e)
  process.exit(1)
})
