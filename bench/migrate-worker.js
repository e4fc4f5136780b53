'use strict'
// One measured migration by one client; prints a JSON line.
// Usage: node bench/migrate-worker.js <stowage|node|rclone> <server.json> <corpus dir> <bucket> <workdir> <round>
// The bucket must exist and be empty. CPU, peak RSS and event-loop delay belong to this
// process (for rclone: to the rclone child, read from /proc).
const { spawn } = require('node:child_process')
const crypto = require('node:crypto')
const fs = require('node:fs')
const path = require('node:path')
const { monitorEventLoopDelay } = require('node:perf_hooks')

const [client, serverFile, corpus, bucket, workdir, round] = process.argv.slice(2)
const server = JSON.parse(fs.readFileSync(serverFile, 'utf8'))
const STOWAGE_CONCURRENCY = 16
const NODE_FILES_IN_FLIGHT = 32
const PART_SIZE = 10 * 1024 * 1024
const RCLONE_TRANSFERS = 16

/** stowage: one call; hashing, upload, metadata and verification happen on native threads. */
async function stowage() {
  const { StorageManager } = require('..')
  return async () => {
    const s = new StorageManager({
      local: corpus,
      cloud: `s3://${bucket}`,
      cloudOptions: { endpoint: server.endpoint, accessKeyId: server.accessKeyId, secretAccessKey: server.secretAccessKey, region: server.region, allowHttp: true },
      mode: 'local',
      // A fresh journal per round: the default one (<local>/.stowage/journal.db) would make
      // the next round skip every file it already verified.
      journal: path.join(workdir, `journal-${round}.db`),
    })
    const job = s.migrate({ from: 'local', to: 'cloud', concurrency: STOWAGE_CONCURRENCY })
    const report = await job.done
    return {
      copied: report.copied,
      skipped: report.skipped,
      failedCount: report.failedCount,
      failed: report.failed.slice(0, 5),
      state: report.state,
      bytes: report.bytes,
      reportedSeconds: report.seconds,
    }
  }
}

/** What a careful user writes with the AWS SDK: walk, hash with `crypto`, upload with
 * the hash as metadata, then HEAD each object and compare its metadata and length. */
async function node() {
  const { PutObjectCommand, HeadObjectCommand } = require('@aws-sdk/client-s3')
  const { Upload } = require('@aws-sdk/lib-storage')
  const { s3Client } = require('./sdk')
  return async () => {
    const s3 = s3Client(server)
    const entries = await fs.promises.readdir(corpus, { recursive: true, withFileTypes: true })
    const files = entries.filter((e) => e.isFile()).map((e) => path.join(e.parentPath ?? e.path, e.name))
    const failed = []
    let copied = 0
    let bytes = 0
    const one = async (file) => {
      const key = path.relative(corpus, file).split(path.sep).join('/')
      try {
        const { size } = await fs.promises.stat(file)
        let sha256
        if (size <= PART_SIZE) {
          const body = await fs.promises.readFile(file)
          sha256 = crypto.createHash('sha256').update(body).digest('hex')
          await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body, Metadata: { sha256 } }))
        } else {
          // The hash has to be known before the upload starts (metadata travels with
          // CreateMultipartUpload), so large files are read twice, both times streamed.
          const h = crypto.createHash('sha256')
          for await (const chunk of fs.createReadStream(file, { highWaterMark: 1 << 20 })) h.update(chunk)
          sha256 = h.digest('hex')
          await new Upload({
            client: s3,
            params: { Bucket: bucket, Key: key, Body: fs.createReadStream(file, { highWaterMark: 1 << 20 }), Metadata: { sha256 } },
            partSize: PART_SIZE,
            queueSize: 4,
          }).done()
        }
        const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key }))
        if (head.Metadata?.sha256 !== sha256 || head.ContentLength !== size) throw new Error(`verify: stored ${head.Metadata?.sha256}/${head.ContentLength}`)
        copied++
        bytes += size
      } catch (e) {
        failed.push({ key, message: String(e.message || e) })
      }
    }
    let next = 0
    await Promise.all(
      Array.from({ length: NODE_FILES_IN_FLIGHT }, async () => {
        while (next < files.length) await one(files[next++])
      }),
    )
    s3.destroy()
    return { copied, failedCount: failed.length, failed: failed.slice(0, 5), bytes }
  }
}

/** Clock ticks this process's waited-for children have used (utime + stime). */
function childrenCpuTicks() {
  const stat = fs.readFileSync('/proc/self/stat', 'utf8')
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  // fields[0] is field 3 (state); cutime and cstime are fields 16 and 17.
  return Number(fields[13]) + Number(fields[14])
}

/** `rclone copy --checksum`, configured through the environment. */
async function rclone() {
  const env = {
    ...process.env,
    RCLONE_CONFIG_BENCH_TYPE: 's3',
    RCLONE_CONFIG_BENCH_PROVIDER: 'Other',
    RCLONE_CONFIG_BENCH_ENDPOINT: server.endpoint,
    RCLONE_CONFIG_BENCH_ACCESS_KEY_ID: server.accessKeyId,
    RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY: server.secretAccessKey,
    RCLONE_CONFIG_BENCH_REGION: server.region,
    RCLONE_CONFIG_BENCH_FORCE_PATH_STYLE: 'true',
  }
  // The endpoint is plain http on localhost; rclone's AWS SDK refuses to start at all when
  // AWS_CA_BUNDLE is set ("unable to load custom CA bundle, … unsupported transport").
  delete env.AWS_CA_BUNDLE
  const ticksPerSecond = 100 // USER_HZ on Linux x86-64
  return async () => {
    const ticks0 = childrenCpuTicks()
    const child = spawn(
      'rclone',
      ['copy', '--checksum', '--transfers', String(RCLONE_TRANSFERS), '--checkers', '16', '--use-json-log', '--log-level', 'INFO', '--stats', '0', corpus, `bench:${bucket}`],
      { env, stdio: ['ignore', 'ignore', 'pipe'] },
    )
    // VmHWM is the process's own peak RSS; the last reading before it exits is the peak
    // to within one 10 ms sampling interval.
    let peakKiB = 0
    const sampler = setInterval(() => {
      try {
        const m = /VmHWM:\s+(\d+)/.exec(fs.readFileSync(`/proc/${child.pid}/status`, 'utf8'))
        if (m) peakKiB = Math.max(peakKiB, Number(m[1]))
      } catch {}
    }, 10)
    let copied = 0
    let bytes = 0
    const errors = []
    let buf = ''
    child.stderr.setEncoding('utf8')
    child.stderr.on('data', (d) => {
      buf += d
      let nl
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl)
        buf = buf.slice(nl + 1)
        let rec
        try {
          rec = JSON.parse(line)
        } catch {
          if (line.trim()) errors.push(line.trim())
          continue
        }
        if (rec.msg === 'Copied (new)') {
          copied++
          bytes += fs.statSync(path.join(corpus, rec.object)).size
        } else if (rec.level === 'error') errors.push(`${rec.object || ''} ${rec.msg}`.trim())
      }
    })
    const code = await new Promise((resolve, reject) => {
      child.on('error', reject)
      child.on('close', resolve)
    })
    clearInterval(sampler)
    if (code !== 0) errors.push(`rclone exited with ${code}`)
    return {
      copied,
      failedCount: errors.length,
      failed: errors.slice(0, 5).map((message) => ({ message })),
      bytes,
      childCpuSeconds: (childrenCpuTicks() - ticks0) / ticksPerSecond,
      childPeakRssMiB: peakKiB / 1024,
    }
  }
}

async function main() {
  const run = await { stowage, node, rclone }[client]()
  const delay = monitorEventLoopDelay({ resolution: 1 })
  delay.enable()
  const cpu0 = process.cpuUsage()
  const t0 = process.hrtime.bigint()
  const r = await run()
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9
  const cpu = process.cpuUsage(cpu0)
  delay.disable()
  const own = client !== 'rclone'
  process.stdout.write(
    JSON.stringify({
      client,
      round: Number(round),
      seconds,
      ...r,
      cpuSeconds: own ? (cpu.user + cpu.system) / 1e6 : r.childCpuSeconds,
      eventLoopP99Ms: own ? delay.percentile(99) / 1e6 : null,
      peakRssMiB: own ? process.resourceUsage().maxRSS / 1024 : r.childPeakRssMiB,
    }) + '\n',
  )
}

main().catch((e) => {
  console.error(e)
  process.exit(1)
})
