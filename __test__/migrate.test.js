'use strict'
// Background migration of a tree written long before stowage (plain fs writes) to
// a real S3 server: verified copies, resumable re-runs, dry runs, shards, pacing,
// pause/resume/abort, per-file failures, deleteSource and rollback.
const fs = require('node:fs')
const path = require('node:path')
const { StorageManager } = require('..')
const { tmpDir, sha256, bytes, writeTree, runPrefix, s3Options, flipByteKeepingMtime } = require('./helpers')

/** `n` files under `prefix/`, sizes 0 … ~64 KiB, and `large` 12 MiB ones (above the in-memory limit). */
function corpus(prefix, n, large = 0) {
  const files = {}
  for (let i = 0; i < n; i++) {
    const name = `${prefix}/d${i % 7}/${i % 3 ? 'scan' : 'photo'}-${String(i).padStart(4, '0')}.${i % 2 ? 'jpg' : 'dcm'}`
    files[name] = bytes((i * 977) % 65536, i + 1)
  }
  for (let i = 0; i < large; i++) files[`${prefix}/large/vol-${i}.bin`] = bytes(12 * 1024 * 1024 + i, 1000 + i)
  return files
}

/** A new local folder holding `corpus(prefix, n, large)` under a fresh prefix. */
function legacyTree(label, n, large = 0) {
  const local = tmpDir(`mig-${label}`)
  const prefix = runPrefix(label)
  const files = corpus(prefix, n, large)
  writeTree(local, files)
  return { local, prefix, files }
}

function manager(local, extra = {}) {
  return new StorageManager({ local, mode: 'local', ...s3Options(), ...extra })
}

/** A view of the S3 bucket alone. */
function cloudView() {
  return new StorageManager({ local: tmpDir('view'), mode: 'cloud', ...s3Options() })
}

/** Lays out the files `makeFiles(prefix)` gives, under a fresh prefix in a new local
 * folder, and moves them all to the cloud with `deleteSource`. */
async function movedToCloud(label, makeFiles) {
  const local = tmpDir(`mig-${label}`)
  const prefix = runPrefix(label)
  const files = makeFiles(prefix)
  writeTree(local, files)
  const storage = manager(local)
  const report = await storage.migrate({ prefix: `${prefix}/`, deleteSource: true }).done
  expect(report).toMatchObject({ state: 'completed', copied: Object.keys(files).length, failedCount: 0 })
  return { local, files, storage, report }
}

async function expectInCloud(files) {
  const cloud = cloudView()
  for (const [key, data] of Object.entries(files)) {
    const got = await cloud.get(key)
    expect(`${key} ${sha256(got)}`).toBe(`${key} ${sha256(data)}`)
    expect((await cloud.head(key)).sha256).toBe(sha256(data))
  }
}

const wait = (ms) => new Promise((r) => setTimeout(r, ms))

test('copies a legacy tree to S3 verified, with progress and events; a re-run skips what is done', async () => {
  const local = tmpDir('mig-basic')
  const prefix = runPrefix('mig')
  const files = corpus(prefix, 120, 2)
  writeTree(local, files)
  const events = []
  const storage = manager(local, { onEvent: (e) => events.push(e) })
  const progress = []
  const job = storage.migrate({ prefix: `${prefix}/`, onProgress: (p) => progress.push(p) })
  const report = await job.done
  const total = Object.values(files).reduce((n, b) => n + b.length, 0)
  expect(report).toMatchObject({ state: 'completed', copied: 122, skipped: 0, failedCount: 0, bytes: total, dryRun: false })
  expect(report.failed).toEqual([])
  expect(typeof report.id).toBe('number')
  await expectInCloud(files)
  // Headers travel with the copy: the type comes from the extension.
  expect((await cloudView().head(`${prefix}/d1/scan-0001.jpg`)).contentType).toBe('image/jpeg')

  const last = progress[progress.length - 1]
  expect(last).toMatchObject({ state: 'completed', total: 122, totalKnown: true, done: 122, copied: 122, bytes: total, bytesTotal: total })
  expect(job.progress()).toMatchObject({ state: 'completed', done: 122 })
  const migrated = events.filter((e) => e.type === 'migrated').map((e) => e.key).sort()
  expect(migrated).toEqual(Object.keys(files).sort())

  const again = await storage.migrate({ prefix: `${prefix}/` }).done
  expect(again).toMatchObject({ state: 'completed', copied: 0, skipped: 122, failedCount: 0 })

  // A file changed since its copy was verified is copied again.
  const changed = `${prefix}/d2/scan-0002.dcm`
  files[changed] = bytes(3000, 77)
  writeTree(local, { [changed]: files[changed] })
  const third = await storage.migrate({ prefix: `${prefix}/`, verify: 'full' }).done
  expect(third).toMatchObject({ copied: 1, skipped: 121, failedCount: 0 })
  await expectInCloud({ [changed]: files[changed] })
})

test('objects a dual write already put in the cloud are verified in place, not copied again', async () => {
  const local = tmpDir('mig-dual')
  const prefix = runPrefix('dualmig')
  const legacy = corpus(`${prefix}/legacy`, 5)
  writeTree(local, legacy)
  const storage = new StorageManager({ local, mode: 'dual', ...s3Options() })
  const written = {}
  for (let i = 0; i < 8; i++) {
    written[`${prefix}/new/${i}.bin`] = bytes(700 + i, 300 + i)
    await storage.put(`${prefix}/new/${i}.bin`, written[`${prefix}/new/${i}.bin`])
  }
  // One cloud copy went missing behind stowage's back: that one is copied.
  await cloudView().delete(`${prefix}/new/3.bin`)
  const events = []
  const migrating = new StorageManager({ local, mode: 'dual', ...s3Options(), onEvent: (e) => events.push(e) })
  const report = await migrating.migrate({ prefix: `${prefix}/` }).done
  expect(report).toMatchObject({ copied: 6, skipped: 7, failedCount: 0 })
  expect(events.filter((e) => e.type === 'migrated').map((e) => e.key).sort()).toEqual([...Object.keys(legacy), `${prefix}/new/3.bin`].sort())
  await expectInCloud({ ...legacy, ...written })
  // Recorded as verified: the next run skips all 13. (The 8 written just now are
  // checked in place again: their mtimes are too recent to vouch for their bytes.)
  expect(await migrating.migrate({ prefix: `${prefix}/` }).done).toMatchObject({ copied: 0, skipped: 13 })
})

test('a key the app keeps rewriting through stowage during the migration is copied, not failed INTEGRITY', async () => {
  // The retry read the source before taking the key's lock, so a write came in
  // between every time and the key failed as "changed while it was copied".
  const local = tmpDir('mig-hot')
  const prefix = runPrefix('hot')
  const key = `${prefix}/hot.json`
  writeTree(local, { [key]: bytes(1000, 70) })
  const storage = new StorageManager({ local, mode: 'dual', ...s3Options() })
  let stop = false
  let last
  const writers = Array.from({ length: 4 }, async (_, w) => {
    for (let i = 0; !stop; i++) {
      const data = bytes(1000 + ((i * 4 + w) % 7) * 100, 71 + w + i * 4)
      await storage.put(key, data)
      last = data
    }
  })
  await new Promise((resolve) => setTimeout(resolve, 100))
  const report = await storage.migrate({ prefix: `${prefix}/` }).done
  stop = true
  await Promise.all(writers)
  expect(report).toMatchObject({ failed: [], failedCount: 0 })
  expect(sha256(await cloudView().get(key))).toBe(sha256(last))
  expect(sha256(fs.readFileSync(path.join(local, key)))).toBe(sha256(last))
})

test('a key whose dual rename waits for a repair is left to the repair, not copied over from its stale side', async () => {
  // a.txt moved to the cloud; renamed onto b.txt, a file from before stowage. The rename
  // reached only the cloud, and the migration copied the old local b.txt over it.
  const { local, files } = await movedToCloud('rename-then-migrate', (p) => ({ [`${p}/a.txt`]: bytes(4000, 41) }))
  const [a] = Object.keys(files)
  const b = a.replace('a.txt', 'b.txt')
  writeTree(local, { [b]: bytes(3000, 42) })
  const dual = manager(local, { mode: 'dual' })
  await dual.rename(a, b)
  expect(await dual.pendingRepairs()).toBe(2)
  const report = await dual.migrate({ prefix: path.dirname(b) + '/' }).done
  expect(report).toMatchObject({ copied: 0, skipped: 1, failedCount: 0 })
  expect(sha256(await dual.get(b))).toBe(sha256(files[a]))
  expect(await dual.repair()).toMatchObject({ remaining: 0 })
  expect(sha256(fs.readFileSync(path.join(local, b)))).toBe(sha256(files[a]))
  await expectInCloud({ [b]: files[a] })
  await expect(dual.exists(a)).resolves.toBe(false)
})

test('a file the app writes under a renamed key\'s old name is kept: the rename never deletes it', async () => {
  // x.txt only on local disk, renamed in dual mode: the cloud never had it, yet the
  // rename queued its deletion, which hid the app's new x.txt and then deleted it.
  const local = tmpDir('mig-rename-old-name')
  const p = runPrefix('rename-old-name')
  writeTree(local, { [`${p}/x.txt`]: bytes(2000, 43) })
  const dual = manager(local, { mode: 'dual' })
  await dual.rename(`${p}/x.txt`, `${p}/y.txt`)
  fs.writeFileSync(path.join(local, p, 'x.txt'), 'written by the app since')
  expect((await dual.get(`${p}/x.txt`)).toString()).toBe('written by the app since')
  await dual.migrate({ prefix: `${p}/` }).done
  expect(await dual.repair()).toMatchObject({ remaining: 0 })
  expect((await dual.get(`${p}/x.txt`)).toString()).toBe('written by the app since')
  expect(fs.readFileSync(path.join(local, p, 'x.txt'), 'utf8')).toBe('written by the app since')
  await expectInCloud({ [`${p}/y.txt`]: bytes(2000, 43) })
})

test('dryRun counts what would be copied and writes nothing', async () => {
  const { local, prefix, files } = legacyTree('dry', 30)
  const report = await manager(local).migrate({ prefix: `${prefix}/`, dryRun: true }).done
  const total = Object.values(files).reduce((n, b) => n + b.length, 0)
  expect(report).toMatchObject({ dryRun: true, copied: 30, bytes: total, failedCount: 0 })
  expect((await cloudView().list({ prefix: `${prefix}/` })).objects).toEqual([])
})

test('shards split the keys: three cooperating migrations copy each key exactly once, as one migration', async () => {
  const { local, prefix, files } = legacyTree('shard', 90)
  const events = []
  const reports = await Promise.all(
    [0, 1, 2].map((index) =>
      manager(local, { onEvent: (e) => events.push(e) }).migrate({ prefix: `${prefix}/`, shard: { index, count: 3 }, deleteSource: true }).done,
    ),
  )
  expect(reports.map((r) => r.copied).reduce((a, b) => a + b)).toBe(90)
  for (const r of reports) expect(r.copied).toBeGreaterThan(10)
  const keys = events.filter((e) => e.type === 'migrated').map((e) => e.key)
  expect(new Set(keys).size).toBe(90)
  await expectInCloud(files)
  // README: the shards "share one migration": one id, whose rollback restores every
  // shard's files (each shard had its own id, and a rollback restored a third).
  expect(new Set(reports.map((r) => r.id)).size).toBe(1)
  for (const key of Object.keys(files)) expect(fs.existsSync(path.join(local, key))).toBe(false)
  await expect(manager(local).rollback(reports[0].id)).resolves.toEqual({ restored: 90, failed: [] })
  for (const [key, data] of Object.entries(files)) {
    expect(`${key} ${sha256(fs.readFileSync(path.join(local, key)))}`).toBe(`${key} ${sha256(data)}`)
  }
  expect(() => manager(local).migrate({ shard: { index: 3, count: 3 } })).toThrow(expect.objectContaining({ code: 'INVALID_CONFIG' }))
})

test('bandwidthLimit paces the whole job', async () => {
  const local = tmpDir('mig-bw')
  const prefix = runPrefix('bw')
  const files = {}
  for (let i = 0; i < 12; i++) files[`${prefix}/f${i}.bin`] = bytes(50 * 1024, i + 1)
  writeTree(local, files)
  const started = Date.now()
  const report = await manager(local).migrate({ prefix: `${prefix}/`, bandwidthLimit: 300 * 1024 }).done
  const seconds = (Date.now() - started) / 1000
  expect(report.copied).toBe(12)
  // 600 KiB at 300 KiB/s: the job ends only after all of it has had its time (pacing
  // only the starts let the last file through unpaced, and a single file at once).
  expect(seconds).toBeGreaterThanOrEqual(600 / 300 - 0.05)
  await expectInCloud(files)

  const single = { [`${prefix}/one/large.bin`]: bytes(256 * 1024, 40) }
  writeTree(local, single)
  const t0 = Date.now()
  await manager(local).migrate({ prefix: `${prefix}/one/`, bandwidthLimit: 256 * 1024 }).done
  expect((Date.now() - t0) / 1000).toBeGreaterThanOrEqual(1 - 0.05)
  await expectInCloud(single)
})

test('pause holds the workers, resume finishes; abort stops and a new run continues', async () => {
  const local = tmpDir('mig-pause')
  const prefix = runPrefix('pause')
  const files = {}
  for (let i = 0; i < 40; i++) files[`${prefix}/f${String(i).padStart(2, '0')}.bin`] = bytes(20 * 1024, i + 1)
  writeTree(local, files)
  const storage = manager(local)
  const slow = { prefix: `${prefix}/`, concurrency: 2, bandwidthLimit: 200 * 1024 }
  const job = storage.migrate(slow)
  await wait(300)
  job.pause()
  await wait(250)
  const paused = job.progress()
  expect(paused.state).toBe('paused')
  await wait(500)
  // Copies that were in flight may land; nothing new starts.
  expect(job.progress().done).toBeLessThanOrEqual(paused.done + 2)
  expect(job.progress().done).toBeLessThan(40)
  job.resume()
  expect(job.progress().state).toBe('running')
  const report = await job.done
  expect(report).toMatchObject({ state: 'completed', copied: 40, failedCount: 0 })

  const prefix2 = runPrefix('abort')
  const more = {}
  for (let i = 0; i < 40; i++) more[`${prefix2}/f${String(i).padStart(2, '0')}.bin`] = bytes(20 * 1024, 100 + i)
  writeTree(local, more)
  const first = storage.migrate({ ...slow, prefix: `${prefix2}/` })
  await wait(600)
  first.abort()
  const aborted = await first.done
  expect(aborted.state).toBe('aborted')
  expect(aborted.copied).toBeGreaterThan(0)
  expect(aborted.copied).toBeLessThan(40)
  const rest = await storage.migrate({ prefix: `${prefix2}/` }).done
  expect(rest.id).toBe(aborted.id)
  expect(rest.copied + rest.skipped).toBe(40)
  expect(rest.skipped).toBeGreaterThanOrEqual(aborted.copied)
  await expectInCloud(more)
})

test('a file that vanished during the job fails alone, with a code; one that changed is copied as it is now', async () => {
  const local = tmpDir('mig-fail')
  const prefix = runPrefix('fail')
  const files = {}
  for (let i = 0; i < 10; i++) files[`${prefix}/a${i}.bin`] = bytes(10 * 1024, i + 1)
  files[`${prefix}/z-changed.bin`] = bytes(10 * 1024, 50)
  files[`${prefix}/z-vanished.bin`] = bytes(10 * 1024, 51)
  writeTree(local, files)
  const storage = manager(local)
  // One worker, paced: the z-files come last, well after the walk listed them.
  const job = storage.migrate({ prefix: `${prefix}/`, concurrency: 1, bandwidthLimit: 40 * 1024 })
  while (!job.progress().totalKnown) await wait(20)
  fs.rmSync(path.join(local, `${prefix}/z-vanished.bin`))
  const changed = bytes(10 * 1024, 99)
  fs.writeFileSync(path.join(local, `${prefix}/z-changed.bin`), changed)
  const report = await job.done
  expect(report.state).toBe('completed')
  expect(report.copied).toBe(11)
  expect(report.failed).toEqual([{ key: `${prefix}/z-vanished.bin`, code: 'NOT_FOUND', message: expect.stringContaining('z-vanished.bin') }])
  expect(report.failedCount).toBe(1)
  // The failed file's bytes will never come: nothing is left to wait for.
  expect(job.progress()).toMatchObject({ state: 'completed', done: 12, failed: 1, etaSeconds: 0 })
  await expectInCloud({ [`${prefix}/z-changed.bin`]: changed })
  // Recorded with the bytes it has now: the next run skips it.
  const next = await storage.migrate({ prefix: `${prefix}/` }).done
  expect(next).toMatchObject({ copied: 0, skipped: 11, failedCount: 0 })
})

test('a re-run copies again a source rewritten with the same size and mtime; deleteSource never drops the new bytes', async () => {
  const local = tmpDir('mig-racy')
  const prefix = runPrefix('racy')
  // Written just now: a rewrite within the same clock tick would keep its mtime.
  const inPlace = `${prefix}/in-place.bin`
  // Old, then replaced by a rename with the same mtime, as `rsync -a` does.
  const replaced = `${prefix}/replaced.bin`
  writeTree(local, { [inPlace]: bytes(8192, 1) }, new Date())
  writeTree(local, { [replaced]: bytes(8192, 2) })
  const old = fs.statSync(path.join(local, replaced)).mtime
  const storage = manager(local)
  expect(await storage.migrate({ prefix: `${prefix}/` }).done).toMatchObject({ copied: 2, failedCount: 0 })

  flipByteKeepingMtime(path.join(local, inPlace), 100)
  const temp = path.join(local, 'replaced.tmp')
  fs.writeFileSync(temp, bytes(8192, 3))
  fs.utimesSync(temp, old, old)
  fs.renameSync(temp, path.join(local, replaced))
  const now = Object.fromEntries([inPlace, replaced].map((k) => [k, fs.readFileSync(path.join(local, k))]))

  const report = await storage.migrate({ prefix: `${prefix}/`, deleteSource: true }).done
  expect(report).toMatchObject({ copied: 2, skipped: 0, failedCount: 0 })
  await expectInCloud(now)
  expect(await storage.rollback(report.id)).toEqual({ restored: 2, failed: [] })
  for (const [key, data] of Object.entries(now)) {
    expect(`${key} ${sha256(fs.readFileSync(path.join(local, key)))}`).toBe(`${key} ${sha256(data)}`)
  }
})

test('deleteSource removes each file only after its verified copy; rollback restores them all', async () => {
  const { local, files, storage, report } = await movedToCloud('move', (prefix) => corpus(prefix, 60, 1))
  for (const key of Object.keys(files)) expect(fs.existsSync(path.join(local, key))).toBe(false)
  await expectInCloud(files)
  // Reads still find every file, now in the cloud.
  const key = Object.keys(files)[5]
  expect(sha256(await storage.get(key))).toBe(sha256(files[key]))

  // A file the app wrote again after the migration is newer than its copy: kept.
  const rewritten = Object.keys(files)[7]
  const newer = bytes(5000, 77)
  await storage.put(rewritten, newer)
  const restored = await storage.rollback(report.id)
  expect(restored).toEqual({ restored: 60, failed: [{ key: rewritten, code: 'ALREADY_EXISTS', message: expect.stringContaining(rewritten) }] })
  for (const [k, data] of Object.entries({ ...files, [rewritten]: newer })) {
    expect(`${k} ${sha256(fs.readFileSync(path.join(local, k)))}`).toBe(`${k} ${sha256(data)}`)
  }
  // Rolling back twice restores nothing more; an unknown id is NOT_FOUND.
  expect(await storage.rollback(report.id)).toMatchObject({ restored: 0, failed: [{ key: rewritten }] })
  await expect(storage.rollback(999999)).rejects.toMatchObject({ code: 'NOT_FOUND' })
})

test('a deleteSource re-run that copies again a copy gone from the cloud counts it as copied', async () => {
  const { local, prefix, files } = legacyTree('recount', 4)
  const events = []
  const storage = manager(local, { onEvent: (e) => events.push(e) })
  await expect(storage.migrate({ prefix: `${prefix}/` }).done).resolves.toMatchObject({ copied: 4 })
  const [gone] = Object.keys(files).filter((k) => files[k].length > 0)
  await cloudView().delete(gone)
  events.length = 0
  const report = await storage.migrate({ prefix: `${prefix}/`, deleteSource: true }).done
  // It was reported skipped, with no bytes and no event, though it was uploaded again.
  expect(report).toMatchObject({ copied: 1, skipped: 3, bytes: files[gone].length, failedCount: 0 })
  expect(events.filter((e) => e.type === 'migrated').map((e) => e.key)).toEqual([gone])
  await expectInCloud(files)
  for (const key of Object.keys(files)) expect(fs.existsSync(path.join(local, key))).toBe(false)
})

test('a re-run copies again copies gone from the cloud or replaced there, which it skipped on the journal\'s word', async () => {
  const { local, prefix, files } = legacyTree('regone', 5)
  const storage = manager(local)
  await expect(storage.migrate({ prefix: `${prefix}/` }).done).resolves.toMatchObject({ copied: 5 })
  const [gone, replaced] = Object.keys(files).filter((k) => files[k].length > 0)
  await cloudView().delete(gone)
  await cloudView().put(replaced, bytes(5, 9))
  const report = await storage.migrate({ prefix: `${prefix}/` }).done
  expect(report).toMatchObject({ copied: 2, skipped: 3, bytes: files[gone].length + files[replaced].length, failedCount: 0 })
  await expectInCloud(files)
  // Sources stay without deleteSource.
  for (const key of Object.keys(files)) expect(fs.existsSync(path.join(local, key))).toBe(true)
})

test('a rollback cut short finishes when run again: files it already put back are not newer writes', async () => {
  const { local, files, storage, report } = await movedToCloud('again', (prefix) => corpus(prefix, 6))
  // A rollback killed after restoring two files, before it cleared their marks: the
  // next one called them written again (ALREADY_EXISTS), on every run.
  const [first, second] = Object.keys(files)
  writeTree(local, { [first]: files[first], [second]: files[second] })
  expect(await storage.rollback(report.id)).toEqual({ restored: 6, failed: [] })
  expect(await storage.rollback(report.id)).toEqual({ restored: 0, failed: [] })
  for (const [key, data] of Object.entries(files)) {
    expect(`${key} ${sha256(fs.readFileSync(path.join(local, key)))}`).toBe(`${key} ${sha256(data)}`)
  }
})

test('a rollback whose copy no longer holds the migrated bytes writes nothing and says so each time', async () => {
  const { local, files, storage, report } = await movedToCloud('rbint', (prefix) => ({ [`${prefix}/b1.bin`]: bytes(11, 1) }))
  const [key] = Object.keys(files)
  // Another app server writes the key in the cloud after the migration.
  await cloudView().put(key, bytes(9, 2))
  for (let run = 0; run < 2; run++) {
    expect(await storage.rollback(report.id)).toMatchObject({ restored: 0, failed: [{ key, code: 'INTEGRITY' }] })
    expect(fs.existsSync(path.join(local, key))).toBe(false)
  }
})

test('a file the app writes while a rollback downloads its copy is kept, not replaced', async () => {
  const original = bytes(48 * 1024 * 1024, 3)
  const { local, files, storage, report } = await movedToCloud('rbrace', (prefix) => ({ [`${prefix}/video.bin`]: original }))
  const [key] = Object.keys(files)
  const file = path.join(local, key)
  const rollback = storage.rollback(report.id)
  await new Promise((resolve) => setTimeout(resolve, 20))
  // The download of 48 MiB takes longer than this; if it did not, the restore is checked instead.
  const appWrote = !fs.existsSync(file)
  const upload = Buffer.from('the app uploaded a new video.bin')
  if (appWrote) {
    fs.mkdirSync(path.dirname(file), { recursive: true })
    fs.writeFileSync(file, upload)
  }
  const result = await rollback
  if (appWrote) {
    expect(result).toMatchObject({ restored: 0, failed: [{ key, code: 'ALREADY_EXISTS' }] })
    expect(fs.readFileSync(file).toString()).toBe(upload.toString())
  } else {
    expect(result).toEqual({ restored: 1, failed: [] })
    expect(sha256(fs.readFileSync(file))).toBe(sha256(original))
  }
})

test('from the cloud to local disk, and back by rollback, headers and metadata travel with the bytes', async () => {
  // S3 listings carry no headers: the copies took the extension defaults and no metadata,
  // and a rollback after deleteSource wrote those back, losing the originals for good.
  const prefix = runPrefix('down')
  const cloud = cloudView()
  const objects = {
    [`${prefix}/report.bin`]: { data: bytes(3000, 5), opts: { contentType: 'text/x-report', cacheControl: 'private, max-age=5', metadata: { patient_id: 'P-1' } } },
    [`${prefix}/large/vol.bin`]: { data: bytes(12 * 1024 * 1024 + 3, 6), opts: { contentType: 'application/x-volume', metadata: { series: 'S2' } } },
  }
  for (const [key, { data, opts }] of Object.entries(objects)) await cloud.put(key, data, opts)
  const stored = async (storage, key) => {
    const { contentType, cacheControl, metadata, sha256: sha } = await storage.head(key)
    return { contentType, cacheControl, metadata, sha }
  }
  const before = {}
  for (const key of Object.keys(objects)) before[key] = await stored(cloud, key)

  const local = tmpDir('mig-down')
  const storage = manager(local)
  const report = await storage.migrate({ from: 'cloud', to: 'local', prefix: `${prefix}/`, deleteSource: true }).done
  expect(report).toMatchObject({ state: 'completed', copied: 2, failedCount: 0 })
  const localOnly = new StorageManager({ local, mode: 'local' })
  for (const [key, { data }] of Object.entries(objects)) {
    expect(sha256(fs.readFileSync(path.join(local, key)))).toBe(sha256(data))
    expect(await stored(localOnly, key)).toEqual(before[key])
    await expect(cloud.exists(key)).resolves.toBe(false)
  }
  expect(await storage.rollback(report.id)).toEqual({ restored: 2, failed: [] })
  for (const [key, { data }] of Object.entries(objects)) {
    expect(sha256(await cloud.get(key))).toBe(sha256(data))
    expect(await stored(cloud, key)).toEqual(before[key])
  }
})

test('bad options throw INVALID_CONFIG naming the field', () => {
  const storage = manager(tmpDir('mig-bad'))
  const field = (opts) => {
    try {
      storage.migrate(opts)
    } catch (e) {
      return [e.code, e.message]
    }
    return 'accepted'
  }
  expect(field({ from: 'cloud', to: 'cloud' })).toEqual(['INVALID_CONFIG', expect.stringContaining('to')])
  expect(field({ from: 'disk' })).toEqual(['INVALID_CONFIG', expect.stringContaining('from')])
  expect(field({ verify: 'md5' })).toEqual(['INVALID_CONFIG', expect.stringContaining('verify')])
  expect(field({ concurrency: 0 })).toEqual(['INVALID_CONFIG', expect.stringContaining('concurrency')])
  expect(field({ bandwidthLimit: 0 })).toEqual(['INVALID_CONFIG', expect.stringContaining('bandwidthLimit')])
  const localOnly = new StorageManager({ local: tmpDir('mig-bad2'), mode: 'local' })
  expect(() => localOnly.migrate()).toThrow(expect.objectContaining({ code: 'INVALID_CONFIG' }))
})
