'use strict'
// Hierarchical storage against real stores: hot = S3, warm = a folder, cold = Azure
// (Azurite). Cycles run with a clock override; every move is checked by bytes.
const fs = require('node:fs')
const http = require('node:http')
const path = require('node:path')
const { StorageManager } = require('..')
const { startS3 } = require('./servers/servers')
const { tmpDir, sha256, bytes, runPrefix, s3Options, azureOptions, servers, writeTree, s3ObjectFile, flipByteKeepingMtime, withOwnS3 } = require('./helpers')

const DAY = 86_400_000

function tiered(policy = {}, extra = {}) {
  const az = azureOptions()
  const prefix = runPrefix('cold')
  return new StorageManager({
    local: tmpDir('tier-local'),
    mode: 'cloud',
    ...s3Options(),
    tiers: {
      warm: `file://${tmpDir('tier-warm')}`,
      cold: `${az.cloud}/${prefix}`,
      coldOptions: az.cloudOptions,
      policy: { hotToWarmDays: 30, warmToColdDays: 365, ...policy },
    },
    ...extra,
  })
}

/** The hot store (the S3 bucket) alone. */
function hotView() {
  return new StorageManager({ local: tmpDir('view'), mode: 'cloud', ...s3Options() })
}

async function putAll(storage, prefix, n) {
  const files = {}
  for (let i = 0; i < n; i++) {
    const key = `${prefix}/obj-${i}.bin`
    files[key] = bytes(1000 + i * 37, i + 1)
    await storage.put(key, files[key])
  }
  return files
}

/** Where `list` says each key of `files` is, in key order. */
async function listed(storage, prefix) {
  return (await storage.list({ prefix: `${prefix}/` })).objects.map((o) => `${o.key} ${o.location}`)
}

const at = (files, location) => Object.keys(files).sort().map((key) => `${key} ${location}`)

async function expectBytes(storage, files) {
  for (const [key, data] of Object.entries(files)) {
    expect(`${key} ${sha256(await storage.get(key))}`).toBe(`${key} ${sha256(data)}`)
  }
}

test('objects age hot → warm → cold by last access; reads find them anywhere with the right bytes', async () => {
  const events = []
  const storage = tiered({}, { onEvent: (e) => events.push(e) })
  const prefix = runPrefix('age')
  const files = await putAll(storage, prefix, 6)
  const key0 = `${prefix}/obj-0.bin`
  expect(await storage.tierOf(key0)).toBe('hot')

  const now = Date.now()
  expect(await storage.runTierCycle({ now: new Date(now + 29 * DAY) })).toMatchObject({ toWarm: 0, toCold: 0, failed: [] })
  const cycle = await storage.runTierCycle({ now: new Date(now + 31 * DAY) })
  const total = Object.values(files).reduce((n, b) => n + b.length, 0)
  expect(cycle).toMatchObject({ toWarm: 6, toCold: 0, bytes: total, failed: [] })
  for (const key of Object.keys(files)) expect(await storage.tierOf(key)).toBe('warm')
  // Moved, not copied: the hot store no longer holds them.
  expect(await hotView().exists(key0)).toBe(false)
  const info = await storage.head(key0)
  expect(info).toMatchObject({ location: 'warm', tier: 'warm', sha256: sha256(files[key0]) })
  await expectBytes(storage, files)
  // Listings show what reads find: the moved objects, from their tier.
  expect(await listed(storage, prefix)).toEqual(at(files, 'warm'))

  const cold = await storage.runTierCycle({ now: new Date(now + 31 * DAY + 366 * DAY) })
  expect(cold).toMatchObject({ toCold: 6, toWarm: 0, failed: [] })
  expect(await storage.tierOf(key0)).toBe('cold')
  expect((await storage.head(key0)).location).toBe('cold')
  await expectBytes(storage, files)
  expect(await listed(storage, prefix)).toEqual(at(files, 'cold'))

  const moved = events.filter((e) => e.type === 'tier-moved')
  expect(moved.length).toBe(12)
  expect(moved.filter((e) => e.side === 'cold').map((e) => e.key).sort()).toEqual(Object.keys(files).sort())

  const stats = await storage.tierStats()
  expect(stats).toMatchObject({
    running: false,
    cyclesCompleted: 3,
    perTier: { hot: { objects: 0, bytes: 0 }, warm: { objects: 0, bytes: 0 }, cold: { objects: 6, bytes: total } },
    totals: { objects: 6, bytes: total },
  })
  expect(stats.lastCycle).toMatchObject({ toCold: 6 })

  // Writing an object again brings it back hot and drops the stale cold copy.
  const fresh = bytes(500, 4242)
  await storage.put(key0, fresh)
  expect(await storage.tierOf(key0)).toBe('hot')
  expect(sha256(await storage.get(key0))).toBe(sha256(fresh))
  expect((await storage.head(key0)).location).toBe('cloud')
  expect(await listed(storage, prefix)).toEqual([`${key0} cloud`, ...at(files, 'cold').slice(1)])
})

test('files migrated by a manager without tiers are aged by their mtime once tiers are set up', async () => {
  // The `stowage migrate` command has no tier options: its files were never aged, and
  // a later `stowage tier-cycle` moved none of them.
  const local = tmpDir('tier-mig')
  const prefix = runPrefix('tier-mig')
  const key = `${prefix}/2024/scan.dcm`
  const data = bytes(4000, 8)
  writeTree(local, { [key]: data }) // last modified in 2024
  const plain = new StorageManager({ local, mode: 'local', ...s3Options() })
  expect(await plain.migrate({ prefix: `${prefix}/` }).done).toMatchObject({ copied: 1, failedCount: 0 })
  const storage = new StorageManager({ local, mode: 'cloud', ...s3Options(), tiers: { warm: `file://${tmpDir('tier-mig-warm')}`, policy: { hotToWarmDays: 30 } } })
  expect(await storage.runTierCycle()).toMatchObject({ toWarm: 1, failed: [] })
  expect(await storage.tierOf(key)).toBe('warm')
  expect(sha256(await storage.get(key))).toBe(sha256(data))
})

test('a rename leaves no copy of the old name on a colder tier that kept one (deleteAfterMove: false)', async () => {
  const storage = tiered({ deleteAfterMove: false })
  const prefix = runPrefix('rename-kept')
  const [from, to] = [`${prefix}/old.bin`, `${prefix}/new.bin`]
  const data = bytes(3000, 12)
  await storage.put(from, data)
  expect(await storage.runTierCycle({ now: new Date(Date.now() + 31 * DAY) })).toMatchObject({ toWarm: 1 })
  await storage.rename(from, to)
  // The warm copy stayed behind, and reads and listings found the old name again.
  await expect(storage.exists(from)).resolves.toBe(false)
  expect(await listed(storage, prefix)).toEqual([`${to} cloud`])
  expect(sha256(await storage.get(to))).toBe(sha256(data))
})

test('a read keeps an object hot: ages count from the last access', async () => {
  const storage = tiered({ hotToWarmDays: 0 })
  const prefix = runPrefix('touch')
  const files = await putAll(storage, prefix, 2)
  const [read, unread] = Object.keys(files)
  await new Promise((r) => setTimeout(r, 20))
  await storage.get(read)
  // The cycle's clock sits between the writes and the read.
  const cycle = await storage.runTierCycle({ now: new Date(Date.now() - 5) })
  expect(cycle.toWarm).toBe(1)
  expect(await storage.tierOf(read)).toBe('hot')
  expect(await storage.tierOf(unread)).toBe('warm')
})

test('cycle budgets: maxObjectsPerCycle and maxBytesPerCycle', async () => {
  const byCount = tiered({ maxObjectsPerCycle: 3 })
  const files = await putAll(byCount, runPrefix('budget'), 7)
  const later = { now: new Date(Date.now() + 40 * DAY) }
  expect((await byCount.runTierCycle(later)).toWarm).toBe(3)
  expect((await byCount.runTierCycle(later)).toWarm).toBe(3)
  expect((await byCount.runTierCycle(later)).toWarm).toBe(1)
  await expectBytes(byCount, files)

  const byBytes = tiered({ maxBytesPerCycle: 2500 })
  await putAll(byBytes, runPrefix('bytes'), 4) // 1000, 1037, 1074, 1111 bytes
  const first = await byBytes.runTierCycle(later)
  expect(first).toMatchObject({ toWarm: 2, bytes: 2037 })

  // An object larger than the whole byte budget goes alone when it comes first: every
  // cycle stopped at it, and nothing behind it ever moved.
  const oversize = tiered({ maxBytesPerCycle: 1500 })
  const prefix = runPrefix('oversize')
  const big = { [`${prefix}/big.bin`]: bytes(5000, 9) }
  await oversize.put(`${prefix}/big.bin`, big[`${prefix}/big.bin`])
  await new Promise((r) => setTimeout(r, 20))
  const small = await putAll(oversize, prefix, 3) // 1000, 1037, 1074 bytes
  const cycles = []
  for (let i = 0; i < 4; i++) cycles.push(await oversize.runTierCycle(later))
  expect(cycles.map((c) => [c.toWarm, c.bytes])).toEqual([[1, 5000], [1, 1000], [1, 1037], [1, 1074]])
  await expectBytes(oversize, { ...big, ...small })
  for (const key of Object.keys({ ...big, ...small })) expect(await oversize.tierOf(key)).toBe('warm')
})

test('setTier moves one object now, verified, and back to hot', async () => {
  const storage = tiered()
  const prefix = runPrefix('set')
  const files = await putAll(storage, prefix, 2)
  const key = `${prefix}/obj-1.bin`
  await storage.setTier(key, 'cold')
  expect(await storage.tierOf(key)).toBe('cold')
  expect(await hotView().exists(key)).toBe(false)
  expect(sha256(await storage.get(key))).toBe(sha256(files[key]))
  await storage.setTier(key, 'hot')
  expect(await storage.tierOf(key)).toBe('hot')
  expect(sha256(await hotView().get(key))).toBe(sha256(files[key]))
  await expect(storage.setTier(key, 'lukewarm')).rejects.toMatchObject({ code: 'INVALID_CONFIG' })
  await expect(storage.tierOf(`${prefix}/missing`)).rejects.toMatchObject({ code: 'NOT_FOUND' })
  await expect(storage.tierOf('../x')).rejects.toMatchObject({ code: 'INVALID_KEY' })
})

test('copy and rename are writes: targets land hot and age; a source in a colder tier comes back first', async () => {
  const storage = tiered()
  const prefix = runPrefix('moves')
  const files = await putAll(storage, prefix, 3)
  const [warm, cold, hot] = Object.keys(files)
  await storage.setTier(warm, 'warm')
  await storage.setTier(cold, 'cold')

  await storage.copy(warm, `${prefix}/copied.bin`)
  await storage.rename(cold, `${prefix}/renamed-cold.bin`)
  await storage.rename(hot, `${prefix}/renamed-hot.bin`)
  const now = {
    [warm]: files[warm],
    [`${prefix}/copied.bin`]: files[warm],
    [`${prefix}/renamed-cold.bin`]: files[cold],
    [`${prefix}/renamed-hot.bin`]: files[hot],
  }
  await expectBytes(storage, now)
  for (const key of Object.keys(now)) expect(`${key} ${await storage.tierOf(key)}`).toBe(`${key} hot`)
  for (const gone of [cold, hot]) {
    await expect(storage.get(gone)).rejects.toMatchObject({ code: 'NOT_FOUND' })
    await expect(storage.tierOf(gone)).rejects.toMatchObject({ code: 'NOT_FOUND' })
  }

  // Tracked like writes: all four age on to the warm tier.
  const cycle = await storage.runTierCycle({ now: new Date(Date.now() + 31 * DAY) })
  expect(cycle).toMatchObject({ toWarm: 4, failed: [] })
  for (const key of Object.keys(now)) expect(`${key} ${await storage.tierOf(key)}`).toBe(`${key} warm`)
  await expectBytes(storage, now)
})

test('an unreachable tier fails moves in the report and in events, never by throwing; nothing is lost', async () => {
  const events = []
  const s3 = s3Options()
  const storage = new StorageManager({
    local: tmpDir('tier-down'),
    mode: 'cloud',
    ...s3,
    tiers: {
      warm: s3.cloud,
      // Nothing listens on port 9: every request to the warm tier is refused.
      warmOptions: { ...s3.cloudOptions, endpoint: 'http://127.0.0.1:9', maxRetries: 0, retryTimeoutMs: 100 },
      policy: { hotToWarmDays: 1 },
    },
    onEvent: (e) => events.push(e),
  })
  const prefix = runPrefix('down')
  const files = await putAll(storage, prefix, 3)
  const report = await storage.runTierCycle({ now: new Date(Date.now() + 2 * DAY) })
  expect(report.toWarm).toBe(0)
  expect(report.failed.map((f) => f.code)).toEqual(['UNAVAILABLE', 'UNAVAILABLE', 'UNAVAILABLE'])
  const failed = events.filter((e) => e.type === 'tier-move-failed')
  expect(failed.map((e) => [e.code, e.side])).toEqual(Array(3).fill(['UNAVAILABLE', 'warm']))
  for (const key of Object.keys(files)) expect(await storage.tierOf(key)).toBe('hot')
  await expectBytes(storage, files)
})

test('the tier service runs cycles on an interval until stopped', async () => {
  const storage = tiered({ hotToWarmDays: 0 })
  const files = await putAll(storage, runPrefix('svc'), 2)
  storage.startTierService({ intervalMs: 150 })
  const running = await storage.tierStats()
  expect(running.running).toBe(true)
  expect(running.nextCycleInMs).toBeLessThanOrEqual(150)
  await new Promise((r) => setTimeout(r, 700))
  const after = await storage.tierStats()
  expect(after.cyclesCompleted).toBeGreaterThanOrEqual(2)
  expect(after.perTier.warm.objects).toBe(2)
  storage.stopTierService()
  await new Promise((r) => setTimeout(r, 50))
  const stopped = await storage.tierStats()
  expect(stopped.running).toBe(false)
  expect(stopped.nextCycleInMs).toBeUndefined()
  await expectBytes(storage, files)
})

test('one bucket, another storage class: S3 and Azure Cool rewrite in place', async () => {
  const s3 = servers().s3
  const withClass = (storageClass) =>
    new StorageManager({
      local: tmpDir('tier-class'),
      mode: 'cloud',
      ...s3Options(),
      tiers: { warm: `s3://${s3.bucket}?storageClass=${storageClass}`, policy: { hotToWarmDays: 1 } },
    })
  // s3s-fs knows only STANDARD and REDUCED_REDUNDANCY: its refusal of STANDARD_IA
  // shows the class reaches the server, and the failed move leaves the object hot.
  const refused = withClass('STANDARD_IA')
  const kept = await putAll(refused, runPrefix('ia'), 1)
  const refusal = await refused.runTierCycle({ now: new Date(Date.now() + 2 * DAY) })
  expect(refusal.toWarm).toBe(0)
  expect(refusal.failed[0].message).toContain('InvalidStorageClass')
  expect(await refused.tierOf(Object.keys(kept)[0])).toBe('hot')
  await expectBytes(refused, kept)

  const storage = withClass('REDUCED_REDUNDANCY')
  const files = await putAll(storage, runPrefix('class'), 2)
  const report = await storage.runTierCycle({ now: new Date(Date.now() + 2 * DAY) })
  expect(report).toMatchObject({ toWarm: 2, failed: [] })
  for (const key of Object.keys(files)) expect(await storage.tierOf(key)).toBe('warm')
  // Same bucket: the object stays where it was, with its bytes.
  await expectBytes(hotView(), files)

  const az = azureOptions()
  // A rewrite of a key moved to the same bucket deleted the new bytes as a stale copy.
  const [rewritten] = Object.keys(files)
  await storage.put(rewritten, 'written again')
  expect((await hotView().get(rewritten)).toString()).toBe('written again')
  expect(await storage.tierOf(rewritten)).toBe('hot')

  const azure = new StorageManager({
    local: tmpDir('tier-az'),
    mode: 'cloud',
    ...az,
    tiers: { warm: `${az.cloud}?storageClass=Cool`, policy: { hotToWarmDays: 1 } },
  })
  const azFiles = await putAll(azure, runPrefix('cool'), 2)
  const azReport = await azure.runTierCycle({ now: new Date(Date.now() + 2 * DAY) })
  expect(azReport).toMatchObject({ toWarm: 2, failed: [] })
  await expectBytes(azure, azFiles)
})

test('an Azure Archive object cannot be read until rehydrated: ACCESS_DENIED saying so, not ALREADY_EXISTS', async () => {
  const az = azureOptions()
  const storage = new StorageManager({
    local: tmpDir('tier-archive'),
    mode: 'cloud',
    ...az,
    cloud: `${az.cloud}/${runPrefix('unarchived')}`,
    tiers: { cold: `${az.cloud}/${runPrefix('archive')}?storageClass=Archive`, coldOptions: az.cloudOptions },
  })
  const [key] = Object.keys(await putAll(storage, runPrefix('archived'), 1))
  await storage.setTier(key, 'cold')
  expect(await storage.head(key)).toMatchObject({ tier: 'cold', size: 1000 })
  for (const read of [() => storage.get(key), () => storage.getRange(key, 0, 10)]) {
    const err = await read().catch((e) => e)
    expect(err.code).toBe('ACCESS_DENIED')
    expect(err.message).toContain('archived')
  }
  await storage.close()
})

test('tiers are told apart by where their objects are, not by how their URLs are spelled', async () => {
  const s3 = servers().s3
  const prefix = runPrefix('spelled')
  const data = bytes(2000, 41)
  // `//` names the prefix the hot store uses: a move copied the object onto itself and
  // then deleted it.
  const respelled = new StorageManager({
    local: tmpDir('tier-spelled'),
    mode: 'cloud',
    ...s3Options(),
    cloud: `s3://${s3.bucket}/${prefix}`,
    tiers: { warm: `s3://${s3.bucket}//${prefix}/` },
  })
  await respelled.put('scan.dcm', data)
  await respelled.setTier('scan.dcm', 'warm')
  expect(sha256(await hotView().get(`${prefix}/scan.dcm`))).toBe(sha256(data))
  expect(sha256(await respelled.get('scan.dcm'))).toBe(sha256(data))

  // A bucket of the same name on another server is another place: the hot copy goes.
  const other = await startS3(tmpDir('s3-other'))
  try {
    const elsewhere = new StorageManager({
      local: tmpDir('tier-elsewhere'),
      mode: 'cloud',
      ...s3Options(),
      tiers: { warm: `s3://${s3.bucket}`, warmOptions: s3Options({}, other.info).cloudOptions },
    })
    const key = `${prefix}/moved.dcm`
    await elsewhere.put(key, data)
    await elsewhere.setTier(key, 'warm')
    await expect(hotView().exists(key)).resolves.toBe(false)
    expect(await elsewhere.head(key)).toMatchObject({ location: 'warm', sha256: sha256(data) })
    expect(sha256(await elsewhere.get(key))).toBe(sha256(data))
    await elsewhere.close()
  } finally {
    await other.stop()
  }
})

test('a rewrite deletes the copies colder tiers kept (deleteAfterMove: false), which an outage would serve', async () => {
  const warm = tmpDir('tier-kept-warm')
  const storage = new StorageManager({
    local: tmpDir('tier-kept'),
    mode: 'cloud',
    ...s3Options(),
    tiers: { warm: `file://${warm}`, policy: { deleteAfterMove: false } },
  })
  const key = `${runPrefix('kept')}/report.pdf`
  await storage.put(key, 'version 1')
  await storage.setTier(key, 'warm')
  await storage.setTier(key, 'hot')
  expect(fs.readFileSync(path.join(warm, key), 'utf8')).toBe('version 1')
  await storage.put(key, 'version 2')
  expect(fs.existsSync(path.join(warm, key))).toBe(false)
  expect((await storage.get(key)).toString()).toBe('version 2')
})

test('bytes written past the tier record (a manager without tiers, a presigned upload) are the object; its colder copy never comes back over them', async () => {
  const [warm, cold] = [tmpDir('rewrite-warm'), tmpDir('rewrite-cold')]
  const storage = new StorageManager({
    local: tmpDir('rewrite'),
    mode: 'cloud',
    ...s3Options(),
    tiers: { warm: `file://${warm}`, cold: `file://${cold}`, policy: { hotToWarmDays: 30, warmToColdDays: 365 } },
  })
  const prefix = runPrefix('rewrite')
  const [a, b, c] = ['a', 'b', 'c'].map((name) => `${prefix}/${name}.bin`)
  for (const key of [a, b, c]) {
    await storage.put(key, 'old bytes')
    await storage.setTier(key, 'warm')
  }
  await hotView().put(a, 'new bytes from a worker')
  await hotView().put(c, 'new bytes from a worker')
  const upload = await fetch(storage.presignPut(b), { method: 'PUT', body: 'new bytes from a browser' })
  expect(upload.status).toBe(200)

  // Reads serve the new bytes; tierOf says so, and setTier, copy and a cycle keep them.
  expect(await storage.tierOf(a)).toBe('hot')
  await storage.setTier(a, 'hot')
  await storage.copy(b, `${prefix}/b-copy.bin`)
  const cycle = await storage.runTierCycle({ now: new Date(Date.now() + 400 * DAY) })
  expect(cycle).toMatchObject({ toCold: 0, failed: [] })
  await expectBytes(storage, {
    [b]: 'new bytes from a browser',
    [`${prefix}/b-copy.bin`]: 'new bytes from a browser',
    [c]: 'new bytes from a worker',
  })
  expect((await storage.get(a)).toString()).toBe('new bytes from a worker')
  // The cycle took c's new bytes on to the warm tier; no stale copy is left to serve.
  expect(fs.readFileSync(path.join(warm, c), 'utf8')).toBe('new bytes from a worker')
  for (const key of [a, b, c]) expect(fs.existsSync(path.join(cold, key))).toBe(false)
})

test('a write or delete while the warm tier is down: its outdated copy is never read, never hides the write, and goes once the tier is back', () =>
  withOwnS3('tier-down-warm', (warm) =>
    withOwnS3('tier-down-hot', async (hot) => {
      const tiers = { warm: `${warm.opts.cloud}/warm`, warmOptions: warm.opts.cloudOptions }
      const storage = hot.open({ local: tmpDir('tier-down'), mode: 'cloud', ...hot.opts, cloud: `${hot.opts.cloud}/hot`, tiers })
      const [older, newer] = [bytes(4000, 80), bytes(5000, 81)]
      const [rewritten, redone, deleted, kept, gone] = ['td/rewritten.bin', 'td/deleted-then-put.bin', 'td/deleted.bin', 'td/kept.bin', 'td/gone.bin']
      for (const key of [rewritten, redone, deleted, kept, gone]) {
        await storage.put(key, older)
        await storage.setTier(key, 'warm')
      }
      await warm.server.stop()
      await storage.put(rewritten, newer)
      await storage.delete(deleted)
      await storage.delete(redone)
      // Before, the delete stayed queued for the warm tier: it hid this write from
      // reads, and its repair deleted the write.
      await storage.put(redone, newer)
      for (const key of [rewritten, redone]) {
        expect(sha256(await storage.get(key))).toBe(sha256(newer))
        await expect(storage.tierOf(key)).resolves.toBe('hot')
      }
      await warm.restart()
      // The warm tier still lists the deleted key: neither list nor tierOf show it.
      const listed = async () => (await storage.list({ prefix: 'td/' })).objects.map((o) => `${o.key} ${o.location}`)
      expect(await listed()).toEqual([`${redone} cloud`, `${gone} warm`, `${kept} warm`, `${rewritten} cloud`])
      await expect(storage.tierOf(deleted)).rejects.toMatchObject({ code: 'NOT_FOUND' })
      // With the hot store down, reads fell back to the warm tier's older bytes.
      await hot.server.stop()
      expect(await listed()).toEqual([`${gone} warm`, `${kept} warm`])
      // The current warm copy is read, and tierOf answers from the record (it threw UNAVAILABLE).
      expect(sha256(await storage.get(kept))).toBe(sha256(older))
      await expect(storage.tierOf(kept)).resolves.toBe('warm')
      // The hot store must take a delete: it stays queued for the repair.
      await expect(storage.delete(gone)).rejects.toMatchObject({ code: 'UNAVAILABLE' })
      for (const key of [rewritten, redone]) await expect(storage.get(key)).rejects.toMatchObject({ code: 'UNAVAILABLE' })
      await hot.restart()
      expect(await storage.repair()).toMatchObject({ failed: 0, remaining: 0 })
      const warmView = hot.open({ local: tmpDir('tier-down-view'), mode: 'cloud', cloud: tiers.warm, cloudOptions: tiers.warmOptions })
      for (const key of [rewritten, redone]) expect(sha256(await storage.get(key))).toBe(sha256(newer))
      for (const key of [rewritten, redone, deleted, gone]) await expect(warmView.exists(key)).resolves.toBe(false)
      // The repaired delete kept the key's tier record: tierOf said warm, and it was counted.
      await expect(storage.tierOf(gone)).rejects.toMatchObject({ code: 'NOT_FOUND' })
      expect((await storage.tierStats()).perTier.warm).toEqual({ objects: 1, bytes: older.length })
    })))

test('local mode: a delete while the warm tier is down succeeds; reads and ifNotExists skip the warm copy, and repair deletes it', () =>
  withOwnS3('tier-down-local', async (warm) => {
    const tiers = { warm: `${warm.opts.cloud}/warm`, warmOptions: warm.opts.cloudOptions }
    const storage = warm.open({ local: tmpDir('tier-down-local'), mode: 'local', tiers })
    const [older, newer] = [bytes(3000, 82), bytes(3500, 83)]
    await storage.put('tl/k.bin', older)
    await storage.setTier('tl/k.bin', 'warm')
    await warm.server.stop()
    // Before, it failed UNAVAILABLE with the local copy gone, and the warm one was read again.
    await storage.delete('tl/k.bin')
    await warm.restart()
    await expect(storage.exists('tl/k.bin')).resolves.toBe(false)
    await expect(storage.tierOf('tl/k.bin')).rejects.toMatchObject({ code: 'NOT_FOUND' })
    await expect(storage.put('tl/k.bin', newer, { ifNotExists: true })).resolves.toMatchObject({ sha256: sha256(newer) })
    // Before, a repair without a cloud returned at once and left the copy.
    expect(await storage.repair()).toMatchObject({ failed: 0, remaining: 0 })
    const warmView = warm.open({ local: tmpDir('tier-down-local-view'), mode: 'cloud', cloud: tiers.warm, cloudOptions: tiers.warmOptions })
    await expect(warmView.exists('tl/k.bin')).resolves.toBe(false)
    expect(sha256(await storage.get('tl/k.bin'))).toBe(sha256(newer))
  }))

test('a move whose old copy cannot be deleted is undone: the object stays where it was, no copy goes stale', async () => {
  const s3 = servers().s3
  let refuseDeletes = false
  // In front of the warm tier: DELETEs are refused (a bucket policy without delete rights).
  const proxy = http.createServer((req, res) => {
    if (refuseDeletes && (req.method === 'DELETE' || req.url.includes('delete'))) {
      res.writeHead(403, { 'content-type': 'application/xml' })
      return res.end('<Error><Code>AccessDenied</Code><Message>no deletes here</Message></Error>')
    }
    const { port } = new URL(s3.endpoint)
    const forward = http.request({ host: '127.0.0.1', port, method: req.method, path: req.url, headers: req.headers }, (up) => {
      res.writeHead(up.statusCode, up.headers)
      up.pipe(res)
    })
    forward.on('error', () => res.destroy())
    req.pipe(forward)
  })
  await new Promise((resolve) => proxy.listen(0, '127.0.0.1', resolve))
  try {
    const cold = tmpDir('undo-cold')
    const warmPrefix = runPrefix('undo-warm')
    const events = []
    const storage = new StorageManager({
      local: tmpDir('undo'),
      mode: 'cloud',
      ...s3Options(),
      cloud: `s3://${s3.bucket}/${runPrefix('undo-hot')}`,
      tiers: {
        warm: `s3://${s3.bucket}/${warmPrefix}`,
        warmOptions: { ...s3Options().cloudOptions, endpoint: `http://127.0.0.1:${proxy.address().port}`, maxRetries: 0 },
        cold: `file://${cold}`,
        policy: { hotToWarmDays: 30, warmToColdDays: 365 },
      },
      onEvent: (e) => events.push(e),
    })
    const key = 'scans/1.dcm'
    await storage.put(key, 'version 1')
    await storage.setTier(key, 'warm')
    refuseDeletes = true
    const report = await storage.runTierCycle({ now: new Date(Date.now() + 400 * DAY) })
    expect(report.toCold).toBe(0)
    expect(report.failed.map((f) => `${f.key} ${f.code}`)).toEqual([`${key} ACCESS_DENIED`])
    expect(events.filter((e) => e.type === 'tier-move-failed').map((e) => e.side)).toEqual(['cold'])
    expect(await storage.tierOf(key)).toBe('warm')
    expect(fs.existsSync(path.join(cold, key))).toBe(false)
    expect(await storage.head(key)).toMatchObject({ location: 'warm', tier: 'warm' })

    // Written again, the key's warm copy is the one a write deletes: nothing stale anywhere.
    refuseDeletes = false
    await storage.put(key, 'version 2')
    await expect(storage.runTierCycle({ now: new Date(Date.now() + 20 * DAY) })).resolves.toMatchObject({ failed: [] })
    expect((await storage.get(key)).toString()).toBe('version 2')
    expect(await storage.tierOf(key)).toBe('hot')
    expect(fs.existsSync(s3ObjectFile(`${warmPrefix}/${key}`))).toBe(false)
    await storage.close()
  } finally {
    proxy.closeAllConnections()
    await new Promise((resolve) => proxy.close(resolve))
  }
})

test('tier moves and writes of one key at once keep it tracked: later cycles still age it', async () => {
  const storage = tiered()
  const prefix = runPrefix('overlap')
  const [a, c] = [`${prefix}/a.bin`, `${prefix}/c.bin`]
  await storage.put(a, 'a')
  await storage.put(c, 'c')
  await storage.setTier(c, 'warm')
  // Each read its tier before taking the key's lock: the second move found no object
  // where the first had left it, and dropped the key from the journal.
  await Promise.all([storage.setTier(a, 'warm'), storage.setTier(a, 'warm'), storage.put(c, 'c2'), storage.setTier(c, 'cold')])
  expect((await storage.tierStats()).totals.objects).toBe(2)
  expect((await storage.get(c)).toString()).toBe('c2')
  await storage.runTierCycle({ now: new Date(Date.now() + 3650 * DAY) })
  await storage.runTierCycle({ now: new Date(Date.now() + 3650 * DAY) })
  expect([await storage.tierOf(a), await storage.tierOf(c)]).toEqual(['cold', 'cold'])
  expect((await storage.get(c)).toString()).toBe('c2')
})

test('a damaged copy in a colder tier is INTEGRITY, not NOT_FOUND', async () => {
  const warm = tmpDir('rot-warm')
  const storage = new StorageManager({ local: tmpDir('rot'), mode: 'cloud', ...s3Options(), tiers: { warm: `file://${warm}` } })
  const key = `${runPrefix('rot')}/scan.bin`
  await storage.put(key, bytes(5000, 9))
  await storage.setTier(key, 'warm')
  flipByteKeepingMtime(path.join(warm, key), 100)
  await expect(storage.get(key)).rejects.toMatchObject({ code: 'INTEGRITY' })
  await expect(storage.getToFile(key, path.join(tmpDir('rot-out'), 'scan.bin'))).rejects.toMatchObject({ code: 'INTEGRITY' })
})

test('the tier service counts as running from start, through a restart', async () => {
  const storage = tiered()
  for (let i = 0; i < 20; i++) {
    storage.startTierService({ intervalMs: 60_000 })
    storage.stopTierService()
    storage.startTierService({ intervalMs: 60_000 })
    await new Promise((resolve) => setTimeout(resolve, 5))
    expect(await storage.tierStats()).toMatchObject({ running: true, nextCycleInMs: expect.any(Number) })
  }
  storage.stopTierService()
  await new Promise((resolve) => setTimeout(resolve, 50))
  expect((await storage.tierStats()).running).toBe(false)
})

test('tiers need a warm or cold store; bad policies name their field', async () => {
  const plain = new StorageManager({ local: tmpDir('tier-none'), mode: 'local' })
  await expect(plain.runTierCycle()).rejects.toMatchObject({ code: 'INVALID_CONFIG' })
  expect(() => tiered({ hotToWarmDays: -1 })).toThrow(expect.objectContaining({ code: 'INVALID_CONFIG', message: expect.stringContaining('hotToWarmDays') }))
  expect(() => tiered({ maxObjectsPerCycle: -5 })).toThrow(expect.objectContaining({ code: 'INVALID_CONFIG', message: expect.stringContaining('maxObjectsPerCycle') }))
  // Not objects: napi read the fields of a string and took it for an empty object.
  for (const [options, field] of [
    [{ tiers: 'cold' }, 'tiers'],
    [{ tiers: { warm: 'memory://', policy: 'fast' } }, 'tiers.policy'],
    [{ tiers: { warm: 'memory://', warmOptions: 5 } }, 'tiers.warmOptions'],
    [{ presign: 'x' }, 'presign'],
    [{ cloudOptions: 'x' }, 'cloudOptions'],
  ]) {
    expect(() => new StorageManager({ local: tmpDir('tier-types'), mode: 'local', ...options })).toThrow(
      expect.objectContaining({ code: 'INVALID_CONFIG', message: `invalid ${field}: expected an object` }),
    )
  }
  // A misspelt storage class was dropped, and the tier took the hot tier's class.
  expect(() => new StorageManager({ local: tmpDir('tier-query'), tiers: { warm: 'memory://?storageclass=Cool' } })).toThrow(
    expect.objectContaining({ code: 'INVALID_CONFIG', message: expect.stringContaining('unknown setting ?storageclass=') }),
  )
  // An invalid Date ran a cycle dated 1970; so did, in its report, the last ones JS has.
  for (const now of [new Date('garbage'), new Date(8.64e15)]) {
    await expect(tiered().runTierCycle({ now })).rejects.toMatchObject({
      code: 'INVALID_CONFIG',
      message: 'invalid now: expected a valid Date',
    })
  }
})

test('a move cut short after its copy (the hot server killed mid-cycle) leaves no copy that reads serve after a rewrite', () =>
  withOwnS3('tier-cut', async ({ server, opts, restart, open }) => {
    // The copy reached warm, the move then failed: warm held a copy the record did not
    // know, the rewrite left it there, and with the hot store down get() served it.
    const warm = s3Options({}, servers().s3)
    const warmUrl = `${warm.cloud}/${runPrefix('tier-cut-warm')}`
    const tiers = { warm: warmUrl, warmOptions: warm.cloudOptions, policy: { hotToWarmDays: 1 } }
    // Both servers name their bucket alike: the hot side takes a prefix of its own.
    const storage = open({ local: tmpDir('tier-cut'), mode: 'cloud', ...opts, cloud: `${opts.cloud}/hot`, tiers })
    const warmView = open({ local: tmpDir('tier-cut-view'), mode: 'cloud', cloud: warmUrl, cloudOptions: warm.cloudOptions })
    const files = {}
    for (let i = 0; i < 24; i++) {
      const key = `cut/${String(i).padStart(2, '0')}.bin`
      files[key] = bytes(700_000 + i, i + 7)
      await storage.put(key, files[key])
    }
    let hot = server
    let cut = []
    for (let attempt = 0; attempt < 10 && cut.length === 0; attempt++) {
      const cycle = storage.runTierCycle({ now: new Date(Date.now() + 2 * DAY) })
      await new Promise((r) => setTimeout(r, 150 + attempt * 50))
      await hot.stop()
      await cycle
      hot = await restart()
      for (const o of (await warmView.list({ prefix: 'cut/' })).objects) {
        if ((await storage.tierOf(o.key)) === 'hot') cut.push(o.key)
      }
    }
    expect(cut.length).toBeGreaterThan(0)
    const key = cut[0]
    await storage.put(key, 'version 2, written after the move was cut short')
    await hot.stop()
    await expect(storage.get(key)).rejects.toMatchObject({ code: 'UNAVAILABLE' })
    // The next cycle deletes the copies the record does not name.
    await restart()
    await storage.runTierCycle()
    for (const k of cut) expect([k, await warmView.exists(k)]).toEqual([k, false])
    expect((await storage.get(key)).toString()).toBe('version 2, written after the move was cut short')
    for (const [k, data] of Object.entries(files)) if (k !== key) expect([k, sha256(await storage.get(k))]).toEqual([k, sha256(data)])
  }))
