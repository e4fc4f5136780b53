'use strict'
// One measured run of one client on one workload; prints a JSON line.
// Usage: node bench/transfer-worker.js <stowage|sdk> <small-put|small-get|large-put|large-get|dual-put> <server.json> <workdir>
// dual-put writes each small file to a local folder and the S3 server at once.
const crypto = require('node:crypto')
const fs = require('node:fs')
const path = require('node:path')
const { monitorEventLoopDelay } = require('node:perf_hooks')
const { pipeline } = require('node:stream/promises')

const [client, workload, serverFile, workdir] = process.argv.slice(2)
const server = JSON.parse(fs.readFileSync(serverFile, 'utf8'))
const SMALL_COUNT = 2000
const SMALL_SIZE = 50 * 1024
const LARGE_COUNT = 20
const SMALL_CONCURRENCY = 16
const LARGE_CONCURRENCY = 4
// Untimed operations before a small workload's clock starts, as before the ceiling's
// (bench/s3_ceiling.rs): a fresh process first opens its 16 connections, compiles its hot
// paths and grows its heaps, costs a long-running app pays once.
const SMALL_WARMUP = 256

async function pool(items, concurrency, fn) {
  let next = 0
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < items.length) await fn(items[next++])
    }),
  )
}

function stowageClient(mode, localDir) {
  const { StorageManager } = require('..')
  const storage = new StorageManager({
    local: localDir,
    mode,
    cloud: `s3://${server.bucket}`,
    cloudOptions: { endpoint: server.endpoint, region: server.region, accessKeyId: server.accessKeyId, secretAccessKey: server.secretAccessKey, allowHttp: true },
  })
  return {
    put: (key, data) => storage.put(key, data),
    dualPut: (key, data) => storage.put(key, data),
    get: (key) => storage.get(key),
    putFile: (key, file) => storage.putFile(key, file),
    getToFile: (key, file) => storage.getToFile(key, file),
  }
}

/** What a careful app does with the AWS SDK: hash with `crypto`, keep the hash as
 * metadata, verify it on the way back, and replace a downloaded file only once it is on
 * disk. */
function sdkClient(localDir) {
  const { PutObjectCommand, GetObjectCommand } = require('@aws-sdk/client-s3')
  const { Upload } = require('@aws-sdk/lib-storage')
  const s3 = require('./sdk').s3Client(server)
  const sha = (b) => crypto.createHash('sha256').update(b).digest('hex')
  const hashFile = async (file) => {
    const h = crypto.createHash('sha256')
    for await (const c of fs.createReadStream(file)) h.update(c)
    return h.digest('hex')
  }
  const put = (key, data, digest) => s3.send(new PutObjectCommand({ Bucket: server.bucket, Key: key, Body: data, Metadata: { sha256: digest } }))
  return {
    put: (key, data) => put(key, data, sha(data)),
    /** The hand-rolled dual write: local file and S3 object, both attempted. */
    dualPut: async (key, data) => {
      const digest = sha(data)
      const file = path.join(localDir, key)
      const results = await Promise.allSettled([
        fs.promises.mkdir(path.dirname(file), { recursive: true }).then(() => fs.promises.writeFile(file, data)),
        put(key, data, digest),
      ])
      if (results.every((r) => r.status === 'rejected')) throw results[0].reason
    },
    get: async (key) => {
      const r = await s3.send(new GetObjectCommand({ Bucket: server.bucket, Key: key }))
      const body = Buffer.from(await r.Body.transformToByteArray())
      if (r.Metadata?.sha256 && r.Metadata.sha256 !== sha(body)) throw new Error('integrity')
      return body
    },
    putFile: async (key, file) => {
      const digest = await hashFile(file)
      await new Upload({ client: s3, params: { Bucket: server.bucket, Key: key, Body: fs.createReadStream(file), Metadata: { sha256: digest } } }).done()
    },
    getToFile: async (key, file) => {
      const r = await s3.send(new GetObjectCommand({ Bucket: server.bucket, Key: key }))
      const h = crypto.createHash('sha256')
      const tmp = `${file}.tmp`
      await pipeline(
        r.Body,
        async function* (source) {
          for await (const c of source) {
            h.update(c)
            yield c
          }
        },
        // `flush`: fsync before close, as stowage does. A rename before the bytes are on
        // disk may leave an empty file after a power loss; and without it the kernel's
        // flusher threads, outside this process, would pay for writing these bytes while
        // stowage pays for its own.
        fs.createWriteStream(tmp, { flush: true }),
      )
      if (r.Metadata?.sha256 && r.Metadata.sha256 !== h.digest('hex')) throw new Error('integrity')
      fs.renameSync(tmp, file)
    },
  }
}

/** CPU seconds (user + system, all threads) of process `pid` so far, from /proc; the
 * kernel counts them in ticks of 1/100 s (USER_HZ on Linux). */
function processCpuSeconds(pid) {
  const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')
  return (Number(fields[11]) + Number(fields[12])) / 100
}

/** Warm-up puts write keys of their own, outside the timed set. */
async function warmUp(c, workload, small, payload) {
  const keys = small.slice(0, SMALL_WARMUP)
  if (workload === 'small-get') await pool(keys, SMALL_CONCURRENCY, (k) => c.get(k))
  if (workload === 'small-put') await pool(keys, SMALL_CONCURRENCY, (k) => c.put(k.replace('/small/', '/warmup/'), payload))
}

async function main() {
  const localDir = path.join(workdir, `local-${client}-${process.pid}`)
  const c = client === 'stowage' ? stowageClient(workload === 'dual-put' ? 'dual' : 'cloud', localDir) : sdkClient(localDir)
  const prefix = `bench/${client}`
  const small = Array.from({ length: SMALL_COUNT }, (_, i) => `${prefix}/small/${i}.bin`)
  const large = Array.from({ length: LARGE_COUNT }, (_, i) => i)
  const payload = crypto.randomBytes(SMALL_SIZE)
  const bigFile = path.join(workdir, 'big-20MiB.bin')
  const outDir = path.join(workdir, `out-${client}`)
  fs.mkdirSync(outDir, { recursive: true })

  await warmUp(c, workload, small, payload)
  const delay = monitorEventLoopDelay({ resolution: 1 })
  let peakRss = process.memoryUsage().rss
  const sampler = setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage().rss)), 10)
  delay.enable()
  const serverCpu0 = processCpuSeconds(server.pid)
  const cpu0 = process.cpuUsage()
  const t0 = process.hrtime.bigint()
  let files = 0
  let bytes = 0
  switch (workload) {
    case 'small-put':
      await pool(small, SMALL_CONCURRENCY, (k) => c.put(k, payload))
      ;[files, bytes] = [SMALL_COUNT, SMALL_COUNT * SMALL_SIZE]
      break
    case 'dual-put':
      await pool(small, SMALL_CONCURRENCY, (k) => c.dualPut(k, payload))
      ;[files, bytes] = [SMALL_COUNT, SMALL_COUNT * SMALL_SIZE]
      break
    case 'small-get':
      await pool(small, SMALL_CONCURRENCY, async (k) => {
        if ((await c.get(k)).length !== SMALL_SIZE) throw new Error('short read')
      })
      ;[files, bytes] = [SMALL_COUNT, SMALL_COUNT * SMALL_SIZE]
      break
    case 'large-put':
      await pool(large, LARGE_CONCURRENCY, (i) => c.putFile(`${prefix}/large/${i}.bin`, bigFile))
      ;[files, bytes] = [LARGE_COUNT, LARGE_COUNT * fs.statSync(bigFile).size]
      break
    case 'large-get':
      await pool(large, LARGE_CONCURRENCY, (i) => c.getToFile(`${prefix}/large/${i}.bin`, path.join(outDir, `${i}.bin`)))
      ;[files, bytes] = [LARGE_COUNT, LARGE_COUNT * fs.statSync(bigFile).size]
      break
    default:
      throw new Error(`unknown workload ${workload}`)
  }
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9
  const cpu = process.cpuUsage(cpu0)
  const serverCpuSeconds = processCpuSeconds(server.pid) - serverCpu0
  delay.disable()
  clearInterval(sampler)
  fs.rmSync(outDir, { recursive: true, force: true })
  fs.rmSync(localDir, { recursive: true, force: true })
  process.stdout.write(
    JSON.stringify({
      client,
      workload,
      seconds,
      files,
      bytes,
      cpuSeconds: (cpu.user + cpu.system) / 1e6,
      serverCpuSeconds,
      eventLoopP99Ms: delay.percentile(99) / 1e6,
      peakRssMiB: peakRss / 1048576,
    }) + '\n',
  )
}

main().catch((e) => {
  console.error(e)
  process.exit(1)
})
