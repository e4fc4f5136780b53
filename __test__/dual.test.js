'use strict'
// Dual-write against real servers: both sides written, reads fall back, failures
// are queued in the journal and reported, never dropped.
const { execFileSync } = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')
const { StorageManager } = require('..')
const { tmpDir, sha256, bytes, runPrefix, s3Options, azureOptions, s3ObjectFile, flipByteKeepingMtime } = require('./helpers')
const { collect, expectCode } = require('./conformance')
const { freePort } = require('./servers/servers')

function dual(extra = {}) {
  const local = tmpDir('dual')
  const events = []
  const storage = new StorageManager({ local, mode: 'dual', ...s3Options(), onEvent: (e) => events.push(e), ...extra })
  const cloud = new StorageManager({ local: tmpDir('dual-cloud-view'), mode: 'cloud', ...s3Options() })
  return { storage, cloud, local, events }
}

const tick = () => new Promise((r) => setTimeout(r, 50))

describe('dual mode', () => {
  test('writes both sides with the same bytes and hash', async () => {
    const { storage, cloud, local } = dual()
    const p = runPrefix('dual')
    const data = bytes(30_000, 3)
    const r = await storage.put(`${p}/a.bin`, data)
    expect(r).toMatchObject({ local: 'written', cloud: 'written', sha256: sha256(data) })
    expect(sha256(fs.readFileSync(path.join(local, p, 'a.bin')))).toBe(sha256(data))
    expect((await cloud.head(`${p}/a.bin`)).sha256).toBe(sha256(data))
    expect(sha256(await cloud.get(`${p}/a.bin`))).toBe(sha256(data))
    await expect(storage.pendingRepairs()).resolves.toBe(0)
  })

  test('reads follow the preference and fall back on NOT_FOUND', async () => {
    const { storage, cloud, local } = dual()
    const p = runPrefix('fallback')
    await storage.put(`${p}/both.txt`, 'both')
    expect((await storage.head(`${p}/both.txt`)).location).toBe('cloud')
    const localFirst = new StorageManager({ local, mode: 'dual', read: 'local-first', ...s3Options() })
    expect((await localFirst.head(`${p}/both.txt`)).location).toBe('local')

    // Only on local disk (a file from before the migration): served from there.
    fs.mkdirSync(path.join(local, p), { recursive: true })
    fs.writeFileSync(path.join(local, p, 'legacy.txt'), 'legacy')
    expect((await storage.get(`${p}/legacy.txt`)).toString()).toBe('legacy')
    expect((await storage.head(`${p}/legacy.txt`)).location).toBe('local')
    // Only in the cloud: served from there by a local-first reader too.
    await cloud.put(`${p}/cloud-only.txt`, 'cloud')
    expect((await localFirst.get(`${p}/cloud-only.txt`)).toString()).toBe('cloud')
    expect((await localFirst.head(`${p}/cloud-only.txt`)).location).toBe('cloud')
  })

  test('a copy that fails its SHA-256 is reported and the other side serves the object', async () => {
    const { local, events } = dual()
    const p = runPrefix('damaged')
    const key = `${p}/scan.bin`
    const data = bytes(100_000, 9)
    const localFirst = new StorageManager({ local, mode: 'dual', read: 'local-first', ...s3Options(), onEvent: (e) => events.push(e) })
    await localFirst.put(key, data)

    flipByteKeepingMtime(path.join(local, key), 4_321)
    expect(sha256(await localFirst.get(key))).toBe(sha256(data))
    const dest = path.join(tmpDir('damaged-out'), 'scan.bin')
    expect((await localFirst.getToFile(key, dest)).location).toBe('cloud')
    expect(sha256(fs.readFileSync(dest))).toBe(sha256(data))
    // A stream finds out at its end, after the bytes went on: it fails, and reports.
    await expectCode(collect(localFirst.createReadStream(key)), 'INTEGRITY')
    await tick()
    const damaged = events.filter((e) => e.type === 'integrity-failed')
    expect(damaged).toHaveLength(3)
    for (const e of damaged) expect(e).toMatchObject({ key, side: 'local', code: 'INTEGRITY' })

    // With both copies damaged there is nothing good to serve.
    flipByteKeepingMtime(s3ObjectFile(key), 99)
    await expectCode(localFirst.get(key), 'INTEGRITY')
  })

  test('deletes remove both sides', async () => {
    const { storage, cloud, local } = dual()
    const p = runPrefix('del')
    await storage.put(`${p}/x.txt`, 'x')
    await storage.delete(`${p}/x.txt`)
    expect(fs.existsSync(path.join(local, p, 'x.txt'))).toBe(false)
    await expect(cloud.exists(`${p}/x.txt`)).resolves.toBe(false)
    await expectCode(storage.get(`${p}/x.txt`), 'NOT_FOUND')
  })

  test('wrong cloud credentials: written locally, queued, reported as ACCESS_DENIED; repair after the fix', async () => {
    const local = tmpDir('badcreds')
    const events = []
    const bad = new StorageManager({
      local,
      mode: 'dual',
      ...s3Options({ secretAccessKey: 'wrong-secret-for-this-test' }),
      onEvent: (e) => events.push(e),
    })
    const p = runPrefix('creds')
    const r = await bad.put(`${p}/a.txt`, 'hello')
    expect(r).toMatchObject({ local: 'written', cloud: 'queued' })
    expect(r.errors).toEqual([expect.objectContaining({ side: 'cloud', code: 'ACCESS_DENIED' })])
    expect(JSON.stringify(r)).not.toContain('wrong-secret-for-this-test')
    await tick()
    const failed = events.find((e) => e.type === 'cloud-write-failed')
    expect(failed).toMatchObject({ key: `${p}/a.txt`, side: 'cloud', code: 'ACCESS_DENIED' })
    expect(JSON.stringify(events)).not.toContain('wrong-secret-for-this-test')
    await expect(bad.pendingRepairs()).resolves.toBe(1)
    const stillBad = await bad.repair()
    expect(stillBad).toMatchObject({ repaired: 0, failed: 1, remaining: 1 })

    // Same local folder and journal, right credentials: the queued write reaches the cloud.
    const good = new StorageManager({ local, mode: 'dual', ...s3Options() })
    await expect(good.pendingRepairs()).resolves.toBe(1)
    expect(await good.repair()).toMatchObject({ repaired: 1, failed: 0, remaining: 0 })
    const cloud = new StorageManager({ local: tmpDir('v'), mode: 'cloud', ...s3Options() })
    expect((await cloud.get(`${p}/a.txt`)).toString()).toBe('hello')
    expect((await cloud.head(`${p}/a.txt`)).sha256).toBe(sha256(Buffer.from('hello')))
  })

  test('an event handler that throws does not break storage', async () => {
    const { storage } = dual({
      onEvent: () => {
        throw new Error('handler bug')
      },
    })
    const p = runPrefix('throwing')
    for (let i = 0; i < 20; i++) await storage.put(`${p}/${i}`, `v${i}`)
    await tick()
    expect((await storage.get(`${p}/19`)).toString()).toBe('v19')
  })

  test('progress callbacks that throw do not end the app: putFile, getToFile, repair and migrate carry on', async () => {
    // A throw in onProgress was an uncaught exception: the process died mid-transfer.
    const dir = tmpDir('throwing-progress')
    const p = runPrefix('throwing-progress')
    const down = s3Options({ endpoint: `http://127.0.0.1:${await freePort()}`, maxRetries: 0 })
    const script = `const { StorageManager } = require(${JSON.stringify(path.resolve(__dirname, '..'))})
      const crypto = require('node:crypto'), fs = require('node:fs'), path = require('node:path')
      const [dir, p, up, down] = [process.argv[1], process.argv[2], JSON.parse(process.argv[3]), JSON.parse(process.argv[4])]
      const boom = () => { throw new Error('progress bug') }
      const sha = (bytes) => crypto.createHash('sha256').update(bytes).digest('hex')
      ;(async () => {
        const local = path.join(dir, 'local'), src = path.join(dir, 'src.bin')
        // The cloud at a port nothing listens on: the write is queued for repair.
        const offline = new StorageManager({ local, mode: 'dual', ...down })
        const queued = await offline.put(p + '/b.bin', 'queued bytes')
        await offline.close()
        const m = new StorageManager({ local, mode: 'dual', ...up })
        const repaired = await m.repair({ onProgress: boom })
        fs.writeFileSync(src, crypto.randomBytes(3_000_000))
        await m.putFile(p + '/a.bin', src, { onProgress: boom })
        await m.getToFile(p + '/a.bin', path.join(dir, 'back.bin'), { onProgress: boom })
        const migrated = await m.migrate({ prefix: p + '/', onProgress: boom }).done
        await new Promise((resolve) => setTimeout(resolve, 100))
        await m.close()
        const cloud = new StorageManager({ local: path.join(dir, 'view'), mode: 'cloud', ...up })
        console.log(JSON.stringify({ queued: queued.cloud, repaired, migrated: migrated.failedCount,
          a: sha(await cloud.get(p + '/a.bin')), back: sha(fs.readFileSync(path.join(dir, 'back.bin'))),
          b: (await cloud.get(p + '/b.bin')).toString() }))
        await cloud.close()
      })()`
    const args = ['-e', script, dir, p, JSON.stringify(s3Options()), JSON.stringify(down)]
    const out = JSON.parse(execFileSync(process.execPath, args, { encoding: 'utf8' }))
    const src = sha256(fs.readFileSync(path.join(dir, 'src.bin')))
    expect(out).toEqual({ queued: 'queued', repaired: { repaired: 1, failed: 0, remaining: 0 }, migrated: 0, a: src, back: src, b: 'queued bytes' })
  })

  test('events and stats count both sides', async () => {
    const { storage, events } = dual()
    const p = runPrefix('stats')
    await storage.put(`${p}/a`, bytes(1000))
    await storage.get(`${p}/a`)
    await storage.delete(`${p}/a`)
    await tick()
    expect(events.map((e) => e.type)).toEqual(['put', 'delete'])
    expect(events[0]).toMatchObject({ key: `${p}/a`, size: 1000 })
    const s = storage.stats()
    expect(s.local).toMatchObject({ writes: 1, bytesWritten: 1000, deletes: 1 })
    expect(s.cloud).toMatchObject({ writes: 1, bytesWritten: 1000, reads: 1, bytesRead: 1000, deletes: 1 })
  })

  test('copy, rename and read streams count in stats and events', async () => {
    const { storage, events } = dual()
    const p = runPrefix('stats-moves')
    await storage.put(`${p}/a`, bytes(3000))
    await storage.copy(`${p}/a`, `${p}/b`)
    await storage.rename(`${p}/b`, `${p}/c`)
    expect((await collect(storage.createReadStream(`${p}/c`))).length).toBe(3000)
    await tick()
    expect(events.map((e) => `${e.type} ${e.key}`)).toEqual([`put ${p}/a`, `put ${p}/b`, `put ${p}/c`, `delete ${p}/b`])
    const s = storage.stats()
    for (const side of ['local', 'cloud']) expect(s[side]).toMatchObject({ writes: 3, bytesWritten: 9000, deletes: 1 })
    expect(s.cloud).toMatchObject({ reads: 1, bytesRead: 3000 })
  })

  test('a multipart putFile reports its progress against the file, not the two sides together', async () => {
    const { storage } = dual({ multipartThreshold: 5 * 1024 * 1024, partSize: 5 * 1024 * 1024 })
    const p = runPrefix('dual-progress')
    const src = path.join(tmpDir('dual-progress'), 'big.bin')
    const data = bytes(11 * 1024 * 1024, 6)
    fs.writeFileSync(src, data)
    const seen = []
    const r = await storage.putFile(`${p}/big.bin`, src, { onProgress: (x) => seen.push(x) })
    expect(r).toMatchObject({ size: data.length, local: 'written', cloud: 'written', sha256: sha256(data) })
    await tick()
    expect(seen.every((x) => x.total === data.length && x.bytes <= data.length)).toBe(true)
    expect(seen.at(-1)).toEqual({ bytes: data.length, total: data.length })

  })

  test('background repairer drains the journal', async () => {
    const local = tmpDir('bg')
    const p = runPrefix('bg')
    const bad = new StorageManager({ local, mode: 'dual', ...s3Options({ secretAccessKey: 'nope-nope-nope' }) })
    await bad.put(`${p}/q.txt`, 'queued')
    const good = new StorageManager({ local, mode: 'dual', ...s3Options() })
    good.startRepairer({ intervalMs: 50 })
    const deadline = Date.now() + 10_000
    while ((await good.pendingRepairs()) > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50))
    good.stopRepairer()
    await expect(good.pendingRepairs()).resolves.toBe(0)
    expect(good.stats().repaired).toBe(1)
  })

  test('ifNotExists holds for the key on either side, and writes nothing when a side cannot answer', async () => {
    const { storage, cloud, local, events } = dual()
    const p = runPrefix('excl')
    const legacy = path.join(local, p, 'legacy.txt')
    fs.mkdirSync(path.dirname(legacy), { recursive: true })
    fs.writeFileSync(legacy, 'LEGACY-ORIGINAL')
    await cloud.put(`${p}/cloud-only.txt`, 'CLOUD-ORIGINAL')

    // The local side refused, the cloud took it: the cloud's copy is deleted again,
    // where a queued repair used to copy the new bytes over the legacy file.
    await expectCode(storage.put(`${p}/legacy.txt`, 'new', { ifNotExists: true }), 'ALREADY_EXISTS')
    expect(fs.readFileSync(legacy, 'utf8')).toBe('LEGACY-ORIGINAL')
    await expect(cloud.exists(`${p}/legacy.txt`)).resolves.toBe(false)
    await expectCode(storage.put(`${p}/cloud-only.txt`, 'new', { ifNotExists: true }), 'ALREADY_EXISTS')
    expect(fs.existsSync(path.join(local, p, 'cloud-only.txt'))).toBe(false)
    expect((await cloud.get(`${p}/cloud-only.txt`)).toString()).toBe('CLOUD-ORIGINAL')
    await expect(storage.pendingRepairs()).resolves.toBe(0)
    await storage.repair()
    expect(fs.readFileSync(legacy, 'utf8')).toBe('LEGACY-ORIGINAL')
    // A refusal is the call's answer, not a side's failure to alert on.
    await tick()
    expect(events.filter((e) => e.type.endsWith('write-failed'))).toEqual([])

    const data = bytes(5000, 4)
    await expect(storage.put(`${p}/new.bin`, data, { ifNotExists: true })).resolves.toMatchObject({ local: 'written', cloud: 'written', sha256: sha256(data) })
    expect(sha256(await cloud.get(`${p}/new.bin`))).toBe(sha256(data))

    // In cloud mode the local folder is a read fallback, so its file takes the name too.
    const cloudMode = new StorageManager({ local, mode: 'cloud', ...s3Options() })
    await expectCode(cloudMode.put(`${p}/legacy.txt`, 'new', { ifNotExists: true }), 'ALREADY_EXISTS')
    await expect(cloud.exists(`${p}/legacy.txt`)).resolves.toBe(false)

    // A cloud that is down might hold the key: nothing is written, nothing is queued.
    const down = new StorageManager({ local, mode: 'dual', ...s3Options({ endpoint: 'http://127.0.0.1:9', maxRetries: 0, retryTimeoutMs: 100 }) })
    await expectCode(down.put(`${p}/while-down.txt`, 'x', { ifNotExists: true }), 'UNAVAILABLE')
    expect(fs.existsSync(path.join(local, p, 'while-down.txt'))).toBe(false)
    await expect(down.pendingRepairs()).resolves.toBe(0)
    await expect(down.put(`${p}/while-down.txt`, 'x')).resolves.toMatchObject({ local: 'written', cloud: 'queued' })
  })

  test('copy and rename onto a key from a source on one side serve the new bytes before the repair', async () => {
    // The cloud source runs on Azurite: s3s-fs keeps a copy target's old metadata when
    // the source has none, which real S3 does not.
    for (const [op, read, sourceSide, cloudOptions] of [
      ['rename', 'cloud-first', 'local', s3Options()],
      ['copy', 'cloud-first', 'local', s3Options()],
      ['copy', 'local-first', 'cloud', azureOptions()],
    ]) {
      const local = tmpDir('onto')
      const storage = new StorageManager({ local, mode: 'dual', read, ...cloudOptions })
      const p = runPrefix(`onto-${op}`)
      await storage.put(`${p}/current.txt`, 'OLD')
      // A source with no SHA-256 recorded, on one side only: a legacy file, or an
      // object another tool uploaded (here through a cloud-mode manager's presigned URL;
      // a dual-mode one goes through the app, to both sides).
      if (sourceSide === 'local') {
        fs.writeFileSync(path.join(local, p, 'upload.txt'), 'NEW')
      } else {
        const tool = new StorageManager({ local: tmpDir('onto-tool'), mode: 'cloud', ...cloudOptions })
        const url = tool.presignPut(`${p}/upload.txt`)
        await tool.close()
        const res = await fetch(url, { method: 'PUT', body: 'NEW', headers: { 'x-ms-blob-type': 'BlockBlob' } })
        expect(res.status).toBe(201)
        expect(fs.existsSync(path.join(local, p, 'upload.txt'))).toBe(false)
      }
      expect((await storage.head(`${p}/upload.txt`)).sha256).toBeUndefined()
      await storage[op](`${p}/upload.txt`, `${p}/current.txt`)
      await expect(storage.pendingRepairs()).resolves.toBeGreaterThan(0)
      expect([op, read, (await storage.get(`${p}/current.txt`)).toString()]).toEqual([op, read, 'NEW'])
      expect((await storage.head(`${p}/current.txt`)).location).toBe(sourceSide)
      await storage.repair()
      await expect(storage.pendingRepairs()).resolves.toBe(0)
      expect((await storage.get(`${p}/current.txt`)).toString()).toBe('NEW')
    }
  })

  test('a key whose write or delete waits for a repair: list and ifNotExists go by what reads find', async () => {
    const { storage, cloud, local } = dual()
    const p = runPrefix('queued-view')
    const [written, deleted] = [`${p}/doc.txt`, `${p}/gone.txt`]
    await storage.put(written, 'old')
    await storage.put(deleted, 'to delete')
    // Wrong credentials: the cloud refuses, the local side takes it, the cloud side is queued.
    const refused = new StorageManager({ local, mode: 'dual', ...s3Options({ secretAccessKey: 'a-wrong-secret-value' }) })
    expect(await refused.put(written, 'new bytes, longer')).toMatchObject({ local: 'written', cloud: 'queued' })
    await refused.delete(deleted)
    await expect(cloud.exists(deleted)).resolves.toBe(true)
    await new Promise((r) => setTimeout(r, 60)) // another manager's intents show within 50 ms

    // The cloud still lists its old copy of the written key, which reads skip.
    expect((await storage.get(written)).toString()).toBe('new bytes, longer')
    const { objects } = await storage.list({ prefix: `${p}/` })
    expect(objects).toEqual([expect.objectContaining({ key: written, size: 17, location: 'local', sha256: sha256(Buffer.from('new bytes, longer')) })])

    // A create-if-absent of the deleted key finishes the delete first, then writes.
    await expect(storage.exists(deleted)).resolves.toBe(false)
    await expect(storage.put(deleted, 'again', { ifNotExists: true })).resolves.toMatchObject({ local: 'written', cloud: 'written' })
    expect((await cloud.get(deleted)).toString()).toBe('again')
    await expectCode(storage.put(written, 'x', { ifNotExists: true }), 'ALREADY_EXISTS')
    // That one was levelled too, by the same rule: both sides hold its newest bytes.
    expect((await cloud.get(written)).toString()).toBe('new bytes, longer')
    await expect(storage.pendingRepairs()).resolves.toBe(0)
  })

  test('cloud mode reads the cloud first whatever read says: local is the fallback', async () => {
    const local = tmpDir('cloud-mode-read')
    const p = runPrefix('cloud-mode-read')
    fs.mkdirSync(path.join(local, p), { recursive: true })
    fs.writeFileSync(path.join(local, p, 'report.txt'), 'legacy-old')
    const storage = new StorageManager({ local, mode: 'cloud', read: 'local-first', ...s3Options() })
    expect(await storage.put(`${p}/report.txt`, 'new-cloud-bytes')).toMatchObject({ local: 'skipped', cloud: 'written' })
    expect((await storage.get(`${p}/report.txt`)).toString()).toBe('new-cloud-bytes')
    expect((await storage.head(`${p}/report.txt`)).location).toBe('cloud')
    expect((await storage.get(`${p}/report.txt`)).toString()).toBe('new-cloud-bytes')
    expect((await storage.head(`${p}/other.txt`).catch((e) => e.code))).toBe('NOT_FOUND')
  })

  test('cloud mode copies and renames a legacy file that only the local fallback holds', async () => {
    // Reads and listings showed it, and copy and rename failed NOT_FOUND.
    const local = tmpDir('cloud-mode-moves')
    const p = runPrefix('cloud-mode-moves')
    const data = bytes(4000, 31)
    fs.mkdirSync(path.join(local, p), { recursive: true })
    for (const name of ['a.bin', 'b.bin']) fs.writeFileSync(path.join(local, p, name), data)
    const storage = new StorageManager({ local, mode: 'cloud', ...s3Options() })
    const cloud = new StorageManager({ local: tmpDir('cloud-mode-moves-view'), mode: 'cloud', ...s3Options() })
    await expect(storage.copy(`${p}/a.bin`, `${p}/a-copy.bin`)).resolves.toMatchObject({ location: 'cloud', sha256: sha256(data) })
    await expect(storage.rename(`${p}/b.bin`, `${p}/b-moved.bin`)).resolves.toMatchObject({ location: 'cloud', sha256: sha256(data) })
    for (const key of [`${p}/a.bin`, `${p}/a-copy.bin`, `${p}/b-moved.bin`]) expect(sha256(await cloud.get(key))).toBe(sha256(data))
    // The renamed legacy file is gone from the fallback too, so the old name stays gone.
    expect(fs.existsSync(path.join(local, p, 'b.bin'))).toBe(false)
    await expect(storage.exists(`${p}/b.bin`)).resolves.toBe(false)
    expect((await storage.list({ prefix: `${p}/` })).objects.map((o) => o.key)).toEqual([`${p}/a-copy.bin`, `${p}/a.bin`, `${p}/b-moved.bin`])
  })

  test('list shows the keys of both sides, as reads find them, page by page', async () => {
    const { storage, cloud, local } = dual()
    const p = runPrefix('merged')
    const legacy = ['a-legacy', 'c-legacy', 'e-legacy'].map((k) => `${p}/${k}`)
    for (const key of legacy) {
      fs.mkdirSync(path.join(local, p), { recursive: true })
      fs.writeFileSync(path.join(local, key), key)
    }
    const cloudOnly = [`${p}/b-cloud`, `${p}/d-cloud`]
    for (const key of cloudOnly) await cloud.put(key, key)
    await storage.put(`${p}/f-both`, 'both')
    const all = [...legacy, ...cloudOnly, `${p}/f-both`].sort()

    const page = await storage.list({ prefix: `${p}/` })
    // API.md's `location: 'both'`: a dual write put the key on both sides alike.
    expect(page.objects.map((o) => [o.key, o.location])).toEqual(
      all.map((k) => [k, k.includes('legacy') ? 'local' : k.endsWith('both') ? 'both' : 'cloud']),
    )
    for (const key of all) await expect(storage.exists(key)).resolves.toBe(true)
    const seen = []
    let next
    do {
      const one = await storage.list({ prefix: `${p}/`, startAfter: next, limit: 2 })
      expect(one.objects.length).toBeLessThanOrEqual(2)
      seen.push(...one.objects.map((o) => o.key))
      next = one.next
    } while (next)
    expect(seen).toEqual(all)
  })
})
