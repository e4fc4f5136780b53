#!/usr/bin/env node
// `npm run bench:dualwrite`: 2,000 × 50 KiB dual writes (local folder + one local
// s3s-fs server), stowage vs `fs.promises` + AWS SDK under `Promise.allSettled`,
// interleaved round by round in fresh processes, against the server's ceiling.
'use strict'
const { startBench } = require('./harness')
const { median, machine, writeSection } = require('./results')

const ROUNDS = Number(process.env.BENCH_ROUNDS || 3)

async function main() {
  const bench = await startBench()
  const samples = []
  try {
    for (let round = 0; round < ROUNDS; round++) {
      samples.push(...bench.ceiling().filter((r) => r.workload === 'small-put'))
      for (const client of round % 2 ? ['sdk', 'stowage'] : ['stowage', 'sdk']) samples.push(bench.worker(client, 'dual-put'))
    }
  } finally {
    await bench.stop()
  }
  const m = (client, f) => median(samples.filter((r) => r.client === client).map(f))
  const fps = (c) => m(c, (r) => r.files / r.seconds)
  const cpu = (c) => m(c, (r) => (r.cpuSeconds / r.files) * 1000)
  const p99 = (c) => m(c, (r) => r.eventLoopP99Ms)
  const rss = (c) => m(c, (r) => r.peakRssMiB)
  writeSection(
    'dualwrite',
    `## Dual writes: stowage vs fs.promises + AWS SDK (\`npm run bench:dualwrite\`)

${machine()}; ${ROUNDS} interleaved rounds, medians; 2,000 × 50 KiB at concurrency 16, each file to a
local folder and to one local s3s-fs server. Both sides hash with SHA-256 and store it; stowage also
journals every write in SQLite (intent + settle). Ceiling = cloud-only PUTs from a plain Rust loop.

| | stowage | fs + SDK | ratio |
|---|---|---|---|
| files/s | ${fps('stowage').toFixed(0)} | ${fps('sdk').toFixed(0)} | **${(fps('stowage') / fps('sdk')).toFixed(2)}×** |
| % of the server's ceiling (${fps('ceiling').toFixed(0)} PUT/s) | ${((fps('stowage') / fps('ceiling')) * 100).toFixed(0)} % | ${((fps('sdk') / fps('ceiling')) * 100).toFixed(0)} % | |
| client CPU ms per file | ${cpu('stowage').toFixed(2)} | ${cpu('sdk').toFixed(2)} | **${(cpu('sdk') / cpu('stowage')).toFixed(1)}× less** |
| event-loop p99 ms | ${p99('stowage').toFixed(1)} | ${p99('sdk').toFixed(1)} | |
| peak RSS MiB | ${rss('stowage').toFixed(0)} | ${rss('sdk').toFixed(0)} | |
`,
  )
  console.log('wrote bench/RESULTS.md')
}

main().catch((e) => {
  console.error(e)
  process.exit(1)
})
