#!/usr/bin/env node
// `npm run demo`: the migration story on the embedded default — a local uploads
// folder plus a file:// "cloud" folder, no server needed.
'use strict'
const crypto = require('node:crypto')
const fs = require('node:fs')
const path = require('node:path')
const { StorageManager } = require('..')

const work = path.join(__dirname, '..', '.stowage-demo')
const local = path.join(work, 'uploads')
const cloud = path.join(work, 'cloud')
const sha256 = (b) => crypto.createHash('sha256').update(b).digest('hex')

async function main() {
  fs.rmSync(work, { recursive: true, force: true })
  // An app that has been writing plain files for years.
  fs.mkdirSync(path.join(local, 'avatars'), { recursive: true })
  fs.writeFileSync(path.join(local, 'avatars', 'legacy.png'), crypto.randomBytes(2048))

  const storage = new StorageManager({ local, cloud: `file://${cloud}`, mode: 'dual', read: 'cloud-first' })
  console.log(`local folder: ${local}\ncloud folder: file://${cloud}\nmode: dual (every write goes to both)\n`)

  const files = Array.from({ length: 200 }, (_, i) => [`reports/2026/report-${i}.json`, Buffer.from(JSON.stringify({ i, at: Date.now() }))])
  const started = process.hrtime.bigint()
  const results = await Promise.all(files.map(([key, data]) => storage.put(key, data)))
  const ms = Number(process.hrtime.bigint() - started) / 1e6
  const bothSides = results.filter((r) => r.local === 'written' && r.cloud === 'written').length
  console.log(`dual-wrote ${results.length} files in ${ms.toFixed(0)} ms; ${bothSides} on both sides`)

  let verified = 0
  for (const [key, data] of files) {
    const got = await storage.get(key)
    const onDisk = fs.readFileSync(path.join(local, key))
    const inCloud = fs.readFileSync(path.join(cloud, key))
    if (sha256(got) === sha256(data) && sha256(onDisk) === sha256(data) && sha256(inCloud) === sha256(data)) verified++
  }
  console.log(`verified ${verified}/${files.length} by SHA-256 on both sides`)

  const legacy = await storage.head('avatars/legacy.png')
  console.log(`legacy file still served from ${legacy.location}: avatars/legacy.png (${legacy.size} bytes, ${legacy.contentType})`)

  const info = await storage.head('reports/2026/report-7.json')
  console.log(`head reports/2026/report-7.json → ${info.location}, ${info.contentType}, "${info.cacheControl}", sha256 ${info.sha256.slice(0, 16)}…`)

  let pages = 0
  let listed = 0
  let next
  do {
    const page = await storage.list({ prefix: 'reports/', startAfter: next, limit: 64 })
    pages++
    listed += page.objects.length
    next = page.next
  } while (next)
  console.log(`listed ${listed} objects in ${pages} pages`)

  // The files written before stowage: a verified background migration moves them too.
  const job = storage.migrate({ from: 'local', to: 'cloud' })
  const report = await job.done
  const legacyInCloud = fs.existsSync(path.join(cloud, 'avatars', 'legacy.png'))
  console.log(`migrated the legacy tree: ${report.copied} copied, ${report.skipped} already in the cloud (verified by SHA-256), ${report.failedCount} failed; legacy.png in the cloud: ${legacyInCloud}`)

  if (verified !== files.length || bothSides !== files.length || !legacyInCloud || report.failedCount) {
    console.error('demo failed: not every file is on both sides')
    process.exit(1)
  }
  await storage.close() // the journal and stores are released before the process exits
  console.log('\nok')
}

main().catch((err) => {
  console.error(`demo failed: ${err.code || ''} ${err.message}`)
  process.exit(1)
})
