'use strict'
// Faults with real processes: the S3 server killed mid-run, and a writer killed
// with SIGKILL at random points. Afterwards repair() must bring both sides to
// parity, file by file, by SHA-256, and no acknowledged write may be missing.
const { execFileSync, spawn } = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')
const { StorageManager } = require('..')
const { tmpDir, sha256, bytes, callElsewhere, stopServer, withOwnS3 } = require('./helpers')

const wait = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

/** Every key under `prefix` on each side, with its SHA-256 computed from the bytes. */
async function snapshot(storage, prefix) {
  const keys = []
  let next
  do {
    const page = await storage.list({ prefix, startAfter: next, limit: 1000 })
    keys.push(...page.objects.map((o) => o.key))
    next = page.next
  } while (next)
  const out = new Map()
  let i = 0
  await Promise.all(
    Array.from({ length: 32 }, async () => {
      while (i < keys.length) {
        const key = keys[i++]
        out.set(key, sha256(await storage.get(key)))
      }
    }),
  )
  return out
}

async function expectParity(local, cloudOpts, prefix) {
  const localView = new StorageManager({ local, mode: 'local' })
  const cloudView = new StorageManager({ local: tmpDir('view'), mode: 'cloud', ...cloudOpts })
  const [l, c] = await Promise.all([snapshot(localView, `${prefix}/`), snapshot(cloudView, `${prefix}/`)])
  expect([...l.keys()].sort()).toEqual([...c.keys()].sort())
  for (const [key, digest] of l) expect(`${key} ${c.get(key)}`).toBe(`${key} ${digest}`)
  return l
}

/** `withOwnS3` with a local folder, and dual-mode managers on it and the server. */
const withDual = (label, body) =>
  withOwnS3(label, ({ opts, open, ...rest }) => {
    const local = tmpDir(`${label}-local`)
    const manager = (extra = {}) => open({ local, mode: 'dual', ...opts, ...extra })
    return body({ ...rest, opts, local, manager })
  })

test.each([
  ['of another size', 60_000],
  ['of the same size', 40_000],
])('a repair copies again when the cloud holds the recorded SHA-256 on old bytes %s (a torn upload)', (_, size) =>
  // s3s-fs killed while completing a repair's upload wrote the new object's metadata over
  // the old bytes; the next repair took the matching SHA-256 for a copy already made, said
  // "repaired", and left the old bytes there for good.
  withDual(`torn-${size}`, async ({ server, local, manager, restart }) => {
    const storage = manager()
    const key = 'torn/scan.bin'
    const [before, after] = [bytes(40_000, 1), bytes(size, 2)]
    await storage.put(key, before)
    await server.stop()
    expect(await storage.put(key, after)).toMatchObject({ local: 'written', cloud: 'queued' })
    const { dir, bucket } = server.info
    const metadata = fs.readdirSync(dir).find((f) => f.endsWith(`.object-${Buffer.from(key).toString('base64url')}.metadata.json`))
    const file = path.join(dir, metadata)
    fs.writeFileSync(file, fs.readFileSync(file, 'utf8').replace(sha256(before), sha256(after)))

    await restart()
    expect(await storage.repair()).toEqual({ repaired: 1, failed: 0, remaining: 0 })
    expect(sha256(fs.readFileSync(path.join(dir, bucket, key)))).toBe(sha256(after))
    expect(sha256(fs.readFileSync(path.join(local, key)))).toBe(sha256(after))
  }))

describe('a cloud found down is not waited on in dual mode', () => {
  const quick = (opts, extra) => ({ ...extra, cloudOptions: { ...opts.cloudOptions, maxRetries: 0 } })
  const cloudEvents = (events) => events.filter((e) => ['cloud-down', 'cloud-up'].includes(e.type)).map((e) => `${e.type} ${e.key}`)

  test('while it hangs, writes are queued and reads served locally at once; repair() ends the outage', () =>
    withDual('hung', async ({ server, opts, local, manager, restart }) => {
      const events = []
      const storage = manager(quick(opts, { outageCooldownMs: 600_000, onEvent: (e) => events.push(e) }))
      const old = bytes(5000, 1)
      await storage.put('hung/old.bin', old)
      await server.stop()
      const first = await storage.put('hung/first.bin', bytes(5000, 2))
      expect(first).toMatchObject({ cloud: 'queued', errors: [{ side: 'cloud', code: 'UNAVAILABLE' }] })
      expect(first.errors[0].message).not.toMatch(/not tried/)
      expect(cloudEvents(events)).toEqual(['cloud-down hung/first.bin'])

      // The cloud is back but hangs (SIGSTOP): any call that went to it would wait for
      // the 60 s request timeout.
      const hung = await restart()
      hung.child.kill('SIGSTOP')
      const files = Array.from({ length: 10 }, (_, i) => [`hung/f${i}.bin`, bytes(3000 + i, 10 + i)])
      const results = await Promise.all(files.map(([key, data]) => storage.put(key, data)))
      for (const r of results) {
        expect(r).toMatchObject({ local: 'written', cloud: 'queued', errors: [{ side: 'cloud', code: 'UNAVAILABLE' }] })
        expect(r.errors[0].message).toMatch(/^storage unavailable: cloud: not tried; it has been down for \d+ ms \(UNAVAILABLE\), next try in \d+ ms$/)
      }
      expect(sha256(await storage.get('hung/old.bin'))).toBe(sha256(old))
      expect(await storage.head('hung/old.bin')).toMatchObject({ location: 'local' })
      const listed = await storage.list({ prefix: 'hung/' })
      expect(listed.objects.map((o) => o.key)).toEqual([...files.map(([key]) => key), 'hung/first.bin', 'hung/old.bin'])
      // Missing locally and not asked of the cloud: the outage, not NOT_FOUND.
      await expect(storage.exists('hung/never.bin')).rejects.toMatchObject({ code: 'UNAVAILABLE' })
      await storage.delete('hung/old.bin')
      expect(await storage.pendingRepairs()).toBe(12)

      // A repair always tries the cloud; once through, the calls go there again.
      hung.child.kill('SIGCONT')
      expect(await storage.repair()).toEqual({ repaired: 12, failed: 0, remaining: 0 })
      expect(cloudEvents(events)).toEqual(['cloud-down hung/first.bin', expect.stringMatching(/^cloud-up hung\//)])
      expect(await storage.put('hung/after.bin', bytes(100, 3))).toMatchObject({ local: 'written', cloud: 'written' })
      const l = await expectParity(local, opts, 'hung')
      expect(l.size).toBe(12)
      for (const [key, data] of files) expect(l.get(key)).toBe(sha256(data))
    }))

  test('after the cooldown one call tries the cloud again, and its success ends the outage', () =>
    withDual('cooldown', async ({ server, opts, manager, restart }) => {
      const events = []
      const storage = manager(quick(opts, { outageCooldownMs: 300, onEvent: (e) => events.push(e) }))
      await server.stop()
      expect(await storage.put('cd/a.bin', bytes(100, 1))).toMatchObject({ cloud: 'queued' })
      const held = await storage.put('cd/b.bin', bytes(100, 2))
      expect(held.errors[0].message).toMatch(/not tried/)
      await restart()
      await wait(400)
      expect(await storage.put('cd/c.bin', bytes(100, 3))).toMatchObject({ local: 'written', cloud: 'written' })
      expect(cloudEvents(events)).toEqual(['cloud-down cd/a.bin', 'cloud-up cd/c.bin'])
    }))

  test('outageCooldownMs: 0 tries the cloud on every call', () =>
    withDual('no-cooldown', async ({ server, opts, manager }) => {
      const events = []
      const storage = manager(quick(opts, { outageCooldownMs: 0, onEvent: (e) => events.push(e) }))
      await server.stop()
      for (const key of ['nc/a.bin', 'nc/b.bin']) {
        const r = await storage.put(key, bytes(100, 1))
        expect(r).toMatchObject({ cloud: 'queued', errors: [{ code: 'UNAVAILABLE' }] })
        expect(r.errors[0].message).not.toMatch(/not tried/)
      }
      expect(cloudEvents(events)).toEqual([])
    }))
})

describe('a failure outside the cloud does not mark it down', () => {
  test('a getToFile whose destination hits a file-size limit fails without trying the other side', () =>
    withDual('fsize', async ({ opts, local, manager }) => {
      const data = bytes(3 << 20, 4)
      const writer = manager()
      expect(await writer.put('fsize/big.bin', data)).toMatchObject({ local: 'written', cloud: 'written' })
      await writer.close()
      // A real file-system limit (RLIMIT_FSIZE): the child's writes past 1 MiB fail
      // with EFBIG, as a full disk fails with ENOSPC.
      const dest = path.join(tmpDir('fsize-dest'), 'big.bin')
      const script = `
        const { StorageManager } = require(process.argv[1])
        const [local, opts, dest] = [process.argv[2], JSON.parse(process.argv[3]), process.argv[4]]
        const events = []
        const storage = new StorageManager({ local, mode: 'dual', ...opts, onEvent: (e) => events.push(e) })
        ;(async () => {
          const failed = await storage.getToFile('fsize/big.bin', dest).then(() => null, (e) => ({ code: e.code, message: e.message }))
          const after = await storage.put('fsize/after.bin', 'after')
          await new Promise((resolve) => setTimeout(resolve, 50))
          await storage.close()
          console.log(JSON.stringify({ failed, after: after.cloud, events: events.map((e) => e.type) }))
        })()`
      const args = [process.execPath, '-e', script, path.join(__dirname, '..'), local, JSON.stringify(opts), dest]
      const out = JSON.parse(execFileSync('sh', ['-c', 'ulimit -f 1024; exec "$@"', 'sh', ...args], { encoding: 'utf8' }))
      expect(out.failed).toMatchObject({ code: 'UNAVAILABLE', message: expect.stringMatching(/File too large/) })
      expect(out.after).toBe('written')
      expect(out.events).toEqual(['put'])
      expect(fs.readdirSync(path.dirname(dest))).toEqual([])
    }))

  test('a file:// cloud whose folder became a file is an outage: writes queue, reads go local, repair levels', async () => {
    const local = tmpDir('file-cloud-local')
    const folder = tmpDir('file-cloud')
    const events = []
    const storage = new StorageManager({ local, mode: 'dual', cloud: `file://${folder}`, onEvent: (e) => events.push(e) })
    try {
      const [v1, v2] = [bytes(5000, 1), bytes(5000, 2)]
      await storage.put('fc/a.bin', v1)
      fs.renameSync(folder, `${folder}.moved`)
      fs.writeFileSync(folder, 'not a folder')
      const put = await storage.put('fc/a.bin', v2)
      expect(put).toMatchObject({ local: 'written', cloud: 'queued', errors: [{ side: 'cloud', code: 'UNAVAILABLE' }] })
      expect(put.errors[0].message).toContain("the store's folder is not a folder any more")
      expect(sha256(await storage.get('fc/a.bin'))).toBe(sha256(v2))
      await expect(storage.get('fc/b.bin')).rejects.toMatchObject({ code: 'UNAVAILABLE' })
      expect(events.map((e) => e.type)).toContain('cloud-down')

      fs.rmSync(folder)
      fs.renameSync(`${folder}.moved`, folder)
      expect(await storage.repair()).toEqual({ repaired: 1, failed: 0, remaining: 0 })
      expect(sha256(fs.readFileSync(path.join(folder, 'fc/a.bin')))).toBe(sha256(v2))
    } finally {
      await storage.close()
    }
  })
})

test('S3 server killed during 500 dual writes: every write succeeds locally, repair restores parity', () =>
  withDual('kill', async ({ server, opts, local, manager, restart }) => {
    const storage = manager()
    const prefix = 'killed'
    const files = Array.from({ length: 500 }, (_, i) => [`${prefix}/f${String(i).padStart(3, '0')}.bin`, bytes(2000 + i * 13, i + 1)])
    const results = []
    let next = 0
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        while (next < files.length) {
          const [key, data] = files[next++]
          if (next === 150) await server.stop() // the cloud dies mid-run
          results.push(await storage.put(key, data))
        }
      }),
    )
    expect(results).toHaveLength(500)
    expect(results.every((r) => r.local === 'written')).toBe(true)
    const queued = results.filter((r) => r.cloud === 'queued')
    expect(queued.length).toBeGreaterThan(300)
    expect(queued.every((r) => r.errors[0].code === 'UNAVAILABLE')).toBe(true)
    await expect(storage.pendingRepairs()).resolves.toBe(queued.length)

    await restart()
    const progress = []
    const report = await storage.repair({ onProgress: (p) => progress.push(p) })
    expect(report).toEqual({ repaired: queued.length, failed: 0, remaining: 0 })
    await expect(storage.pendingRepairs()).resolves.toBe(0)
    // A second pass finds nothing to do.
    expect(await storage.repair()).toEqual({ repaired: 0, failed: 0, remaining: 0 })

    const l = await expectParity(local, opts, prefix)
    expect(l.size).toBe(500)
    for (const [key, data] of files) expect(l.get(key)).toBe(sha256(data))
  }))

test('repair: progress comes key by key, and two processes repairing one journal count each key once', () =>
  withDual('repairers', async ({ server, opts, local, manager, restart }) => {
    const storage = manager({ concurrency: 2 })
    const keys = Array.from({ length: 300 }, (_, i) => `rep/f${i}.bin`)
    await server.stop()
    await Promise.all(keys.map((key, i) => storage.put(key, bytes(1000, i))))
    await expect(storage.pendingRepairs()).resolves.toBe(300)
    const restarted = await restart()
    const { dir, bucket } = restarted.info
    // Progress came after each batch of 256 keys: the first call found them all copied.
    let inCloudAtFirstCall
    const onProgress = () => (inCloudAtFirstCall ??= fs.readdirSync(path.join(dir, bucket, 'rep')).length)
    expect(await storage.repair({ onProgress })).toEqual({ repaired: 300, failed: 0, remaining: 0 })
    expect(inCloudAtFirstCall).toBeLessThan(100)

    // Each repairer counted the keys the other had settled while it waited for their locks.
    await restarted.stop()
    await Promise.all(keys.map((key, i) => storage.put(key, bytes(1000, i + 1000))))
    await expect(storage.pendingRepairs()).resolves.toBe(300)
    await restart()
    const repairers = [0, 1].map(() => callElsewhere({ local, mode: 'dual', ...opts }, 'repair', []))
    const reports = (await Promise.all(repairers.map((r) => r.done))).map((d) => d.result)
    expect(reports.map((r) => r.failed)).toEqual([0, 0])
    expect(reports[0].repaired + reports[1].repaired).toBe(300)
    const l = await expectParity(local, opts, 'rep')
    for (const [i, key] of keys.entries()) expect(l.get(key)).toBe(sha256(bytes(1000, i + 1000)))
  }))

test('copies and renames while the S3 server is down are journalled; repair finishes them on both sides', () =>
  withDual('moves', async ({ server, opts, local, manager, restart }) => {
    const storage = manager({ read: 'local-first' })
    const prefix = 'moves'
    const data = Array.from({ length: 4 }, (_, i) => bytes(3000 + i, 40 + i))
    for (let i = 0; i < 4; i++) await storage.put(`${prefix}/src${i}.bin`, data[i])
    // A long name is refused before the cloud side runs, not copied there alone.
    await expect(storage.copy(`${prefix}/src0.bin`, `${prefix}/${'n'.repeat(254)}`)).rejects.toMatchObject({ code: 'INVALID_KEY' })
    await server.stop()

    // Each succeeds on the local side and is queued for the cloud, as a dual put is.
    expect(await storage.copy(`${prefix}/src0.bin`, `${prefix}/copy0.bin`)).toMatchObject({ location: 'local', size: data[0].length })
    expect(await storage.rename(`${prefix}/src1.bin`, `${prefix}/moved1.bin`)).toMatchObject({ location: 'local' })
    expect(await storage.rename(`${prefix}/src2.bin`, `${prefix}/sub/moved2.bin`)).toMatchObject({ location: 'local' })
    // Keys: copy0 (put), moved1 and src1, moved2 and src2.
    await expect(storage.pendingRepairs()).resolves.toBe(5)
    await expect(storage.exists(`${prefix}/src1.bin`)).resolves.toBe(false)

    await restart()
    expect(await storage.repair()).toEqual({ repaired: 5, failed: 0, remaining: 0 })
    const l = await expectParity(local, opts, prefix)
    expect(Object.fromEntries(l)).toEqual({
      [`${prefix}/src0.bin`]: sha256(data[0]),
      [`${prefix}/copy0.bin`]: sha256(data[0]),
      [`${prefix}/moved1.bin`]: sha256(data[1]),
      [`${prefix}/sub/moved2.bin`]: sha256(data[2]),
      [`${prefix}/src3.bin`]: sha256(data[3]),
    })

    // With both sides up nothing is queued.
    await storage.rename(`${prefix}/src3.bin`, `${prefix}/moved3.bin`)
    await storage.copy(`${prefix}/moved3.bin`, `${prefix}/copy3.bin`)
    await expect(storage.pendingRepairs()).resolves.toBe(0)
    const after = await expectParity(local, opts, prefix)
    expect(after.has(`${prefix}/src3.bin`)).toBe(false)
    expect(after.get(`${prefix}/copy3.bin`)).toBe(sha256(data[3]))
  }))

test('a copy or rename of a key whose write waits for a repair moves that write\'s bytes on both sides', () =>
  withDual('stale-move', async ({ server, opts, local, manager, restart }) => {
    const storage = manager()
    const [older, newer] = [bytes(7000, 61), bytes(9000, 62)]
    for (const key of ['stale/a.bin', 'stale/b.bin']) await storage.put(key, older)
    await server.stop()
    for (const key of ['stale/a.bin', 'stale/b.bin']) expect((await storage.put(key, newer)).cloud).toBe('queued')
    await restart()
    // The cloud still held the older bytes under both names, and moved them: the new
    // names differed between the sides for good, with nothing queued to level them.
    await expect(storage.rename('stale/a.bin', 'stale/renamed.bin')).resolves.toMatchObject({ sha256: sha256(newer) })
    await expect(storage.copy('stale/b.bin', 'stale/copied.bin')).resolves.toMatchObject({ sha256: sha256(newer) })
    await expect(storage.pendingRepairs()).resolves.toBe(0)
    expect(Object.fromEntries(await expectParity(local, opts, 'stale'))).toEqual({
      'stale/b.bin': sha256(newer),
      'stale/copied.bin': sha256(newer),
      'stale/renamed.bin': sha256(newer),
    })
  }))

test('a copy or rename onto itself while the S3 server is down answers as head does, from local', () =>
  withDual('self-outage', async ({ server, manager }) => {
    const storage = manager()
    const data = bytes(3000, 63)
    await storage.put('self/k.bin', data)
    await server.stop()
    const kept = { key: 'self/k.bin', location: 'local', size: data.length, sha256: sha256(data) }
    await expect(storage.head('self/k.bin')).resolves.toMatchObject(kept)
    await expect(storage.copy('self/k.bin', 'self/k.bin')).resolves.toMatchObject(kept)
    await expect(storage.rename('self/k.bin', 'self/k.bin')).resolves.toMatchObject(kept)
    expect(sha256(await storage.get('self/k.bin'))).toBe(sha256(data))
  }))

test('while a rename waits for its repair, list leaves the old name out, as reads miss it', () =>
  withDual('list-renamed', async ({ server, manager, restart }) => {
    const storage = manager()
    for (const key of ['q/a', 'q/z']) await storage.put(key, bytes(2000, 64))
    await server.stop()
    await storage.rename('q/a', 'q/b')
    await restart()
    // The cloud still lists the old name: the whole listing failed NOT_FOUND naming it.
    await expect(storage.exists('q/a')).resolves.toBe(false)
    expect((await storage.list({ prefix: 'q/' })).objects.map((o) => o.key)).toEqual(['q/b', 'q/z'])
  }))

test('a delete queued while the tiers\' server was down removes the warm copy too when repaired', () =>
  withDual('tier-delete', async ({ server, opts, manager, restart }) => {
    const warm = `${opts.cloud}/warm-tier`
    const storage = manager({ cloud: `${opts.cloud}/hot`, tiers: { warm, warmOptions: opts.cloudOptions } })
    const data = bytes(5000, 65)
    await storage.put('t/x.bin', data)
    await storage.setTier('t/x.bin', 'warm')
    await server.stop()
    await storage.delete('t/x.bin')
    await restart()
    await expect(storage.exists('t/x.bin')).resolves.toBe(false)
    expect(await storage.repair()).toMatchObject({ repaired: 1, failed: 0, remaining: 0 })
    // The repair deleted the local and hot copies only: the warm one was read again.
    await expect(storage.exists('t/x.bin')).resolves.toBe(false)
    const warmView = manager({ mode: 'cloud', cloud: warm, local: tmpDir('tier-delete-view') })
    await expect(warmView.exists('t/x.bin')).resolves.toBe(false)
  }))

test('a rename during an outage of a key whose write was queued: the old name\'s stale cloud copy is not read, and repair deletes it', () =>
  withDual('rename-stale-old', async ({ server, opts, local, manager, restart }) => {
    const storage = manager() // reads prefer the cloud
    const [older, newer] = [bytes(5000, 66), bytes(6000, 67)]
    await storage.put('rs/old.bin', older)
    await server.stop()
    expect((await storage.put('rs/old.bin', newer)).cloud).toBe('queued')
    expect(await storage.rename('rs/old.bin', 'rs/new.bin')).toMatchObject({ location: 'local', sha256: sha256(newer) })
    await restart()
    // The cloud came back with the bytes the queued write replaced under the old name:
    // reads served them, and the repair kept them there for good.
    await expect(storage.exists('rs/old.bin')).resolves.toBe(false)
    expect(await storage.repair()).toMatchObject({ failed: 0, remaining: 0 })
    expect(Object.fromEntries(await expectParity(local, opts, 'rs'))).toEqual({ 'rs/new.bin': sha256(newer) })
  }))

test.each([
  ['renamed again', (s) => s.rename('rc/b.bin', 'rc/c.bin'), { 'rc/c.bin': 'moved' }],
  ['deleted', (s) => s.delete('rc/b.bin'), {}],
  ['rewritten', (s) => s.put('rc/b.bin', bytes(4000, 69)), { 'rc/b.bin': 'rewritten' }],
])('a rename a→b queued in an outage, then b %s: the old name a stays gone after the repair', (_, change, expected) =>
  withDual('rename-chain', async ({ server, opts, local, manager, restart }) => {
    const storage = manager()
    const data = bytes(5000, 68)
    await storage.put('rc/a.bin', data)
    await server.stop()
    expect(await storage.rename('rc/a.bin', 'rc/b.bin')).toMatchObject({ location: 'local' })
    await restart()
    await change(storage)
    // The repair of `a` judged the move from `b`, which no longer held the moved
    // bytes, so it took the move for one that never happened and restored `a`.
    await expect(storage.exists('rc/a.bin')).resolves.toBe(false)
    expect(await storage.repair()).toMatchObject({ failed: 0, remaining: 0 })
    const digests = { moved: sha256(data), rewritten: sha256(bytes(4000, 69)) }
    const want = Object.fromEntries(Object.entries(expected).map(([k, v]) => [k, digests[v]]))
    expect(Object.fromEntries(await expectParity(local, opts, 'rc'))).toEqual(want)
  }))

test('a write queued while the tiers\' server was down replaces a warm copy: repair deletes the stale warm bytes', () =>
  withDual('tier-write', async ({ server, opts, manager, restart }) => {
    const warm = `${opts.cloud}/warm-tier`
    const storage = manager({ cloud: `${opts.cloud}/hot`, tiers: { warm, warmOptions: opts.cloudOptions } })
    const [older, newer] = [bytes(5000, 70), bytes(6000, 71)]
    for (const key of ['tw/put.bin', 'tw/renamed.bin']) {
      await storage.put(key, older)
      await storage.setTier(key, 'warm')
    }
    await storage.put('tw/source.bin', newer)
    await server.stop()
    expect((await storage.put('tw/put.bin', newer)).cloud).toBe('queued')
    await storage.rename('tw/source.bin', 'tw/renamed.bin')
    await restart()
    expect(await storage.repair()).toMatchObject({ failed: 0, remaining: 0 })
    const warmView = manager({ mode: 'cloud', cloud: warm, local: tmpDir('tier-write-view') })
    for (const key of ['tw/put.bin', 'tw/renamed.bin']) {
      expect(sha256(await storage.get(key))).toBe(sha256(newer))
      await expect(storage.tierOf(key)).resolves.toBe('hot')
      // The write recorded the key hot before its warm copy was deleted, which failed:
      // the older bytes stayed in the warm tier for good.
      await expect(warmView.exists(key)).resolves.toBe(false)
    }
  }))

test('until its repair, reads skip the side a queued write or delete left stale, after a restart too', () =>
  withDual('stale-read', async ({ server, local, manager, restart }) => {
    const storage = manager() // reads prefer the cloud
    const [old, newer] = [bytes(3000, 1), bytes(3000, 2)]
    await storage.put('sr/replaced.bin', old)
    await storage.put('sr/deleted.bin', old)
    await server.stop()
    expect(await storage.put('sr/replaced.bin', newer)).toMatchObject({ local: 'written', cloud: 'queued' })
    await storage.delete('sr/deleted.bin')
    await restart()

    // The cloud is back with the old bytes and the deleted object; no repair yet.
    const reopened = manager()
    for (const reader of [storage, reopened]) {
      expect(sha256(await reader.get('sr/replaced.bin'))).toBe(sha256(newer))
      expect(await reader.head('sr/replaced.bin')).toMatchObject({ location: 'local', sha256: sha256(newer) })
      await expect(reader.exists('sr/deleted.bin')).resolves.toBe(false)
      await expect(reader.get('sr/deleted.bin')).rejects.toMatchObject({ code: 'NOT_FOUND' })
      expect((await reader.list({ prefix: 'sr/' })).objects.map((o) => o.key)).toEqual(['sr/replaced.bin'])
    }

    // A presigned cloud URL would serve the old bytes (and the deleted object) too:
    // the URL is a local one, which the middleware serves as reads go, or none.
    const presign = { localBaseUrl: 'https://app.example/files', localSecret: 'a-local-secret-of-at-least-32-bytes!!' }
    const signing = manager({ presign })
    await signing.exists('sr/replaced.bin') // its first read loads the queued intents
    for (const key of ['sr/replaced.bin', 'sr/deleted.bin']) {
      expect(signing.presignGet(key)).toMatch(/^https:\/\/app\.example\/files\//)
      expect(signing.verifySignedUrl(signing.presignGet(key), 'GET')).toBe(key)
      expect(() => storage.presignGet(key)).toThrow(expect.objectContaining({ code: 'UNAVAILABLE', message: expect.stringContaining('waits for a repair') }))
    }
    const [queuedUrl, settledUrl] = signing.presignMany(['sr/replaced.bin', 'sr/other.bin'])
    expect(queuedUrl).toMatch(/^https:\/\/app\.example\//)
    expect(settledUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+\//)

    expect(await storage.repair()).toMatchObject({ repaired: 2, remaining: 0 })
    expect(await storage.head('sr/replaced.bin')).toMatchObject({ location: 'cloud', sha256: sha256(newer) })
    const served = await fetch(storage.presignGet('sr/replaced.bin'))
    expect(sha256(Buffer.from(await served.arrayBuffer()))).toBe(sha256(newer))
  }))

test('a queued write whose bytes neither side holds (the app rewrote the file) is read from local, as repair will settle it', () =>
  withDual('rewritten', async ({ server, local, manager, restart }) => {
    const storage = manager() // reads prefer the cloud
    await storage.put('rw/doc.txt', 'old bytes')
    await server.stop()
    expect(await storage.put('rw/doc.txt', 'new bytes')).toMatchObject({ local: 'written', cloud: 'queued' })
    fs.writeFileSync(path.join(local, 'rw', 'doc.txt'), 'rewritten by the app')
    await restart()

    // Before, the cloud's old bytes were served until the repair put the app's back.
    for (const reader of [storage, manager()]) {
      expect((await reader.get('rw/doc.txt')).toString()).toBe('rewritten by the app')
      expect(await reader.head('rw/doc.txt')).toMatchObject({ location: 'local', size: 20 })
      expect((await reader.list({ prefix: 'rw/' })).objects).toMatchObject([{ key: 'rw/doc.txt', location: 'local' }])
    }
    expect(await storage.repair()).toMatchObject({ repaired: 1, remaining: 0 })
    expect((await storage.get('rw/doc.txt')).toString()).toBe('rewritten by the app')
    expect(await storage.head('rw/doc.txt')).toMatchObject({ location: 'cloud', size: 20 })
  }))

test('a rename during an outage, then a file the app writes under the old name: reads find it, and repair keeps it', () =>
  withDual('rename-outage', async ({ server, local, manager, restart }) => {
    const storage = manager()
    await storage.put('ro/old.txt', 'original')
    await server.stop()
    await storage.rename('ro/old.txt', 'ro/new.txt')
    await expect(storage.exists('ro/old.txt')).resolves.toBe(false)
    fs.writeFileSync(path.join(local, 'ro', 'old.txt'), 'the app wrote this since')
    await restart()
    // The cloud came back with the old name's original bytes: those are not served.
    expect((await storage.get('ro/old.txt')).toString()).toBe('the app wrote this since')
    expect(await storage.repair()).toMatchObject({ remaining: 0 })
    // Before, the repair deleted the app's file with the moved original.
    expect(fs.readFileSync(path.join(local, 'ro', 'old.txt'), 'utf8')).toBe('the app wrote this since')
    expect((await storage.get('ro/new.txt')).toString()).toBe('original')
    const cloudView = manager({ local: tmpDir('ro-view'), mode: 'cloud' })
    await expect(cloudView.exists('ro/old.txt')).resolves.toBe(false)
    expect((await cloudView.get('ro/new.txt')).toString()).toBe('original')
  }))

test('a key whose queued write only the cloud holds is UNAVAILABLE while the cloud is down, not NOT_FOUND', () =>
  withDual('cloud-holds', async ({ server, manager }) => {
    const storage = manager()
    const cloudOnly = manager({ local: tmpDir('ch-view'), mode: 'cloud' })
    await cloudOnly.put('ch/a.txt', 'only in the cloud')
    await cloudOnly.put('ch/c.txt', 'only in the cloud')
    // A target whose old bytes the local side keeps: they were served while the cloud
    // was down, in place of the acknowledged rename.
    await storage.put('ch/d.txt', 'old bytes of d')
    // The renames land in the cloud only; the local side is queued for the targets.
    expect(await storage.rename('ch/a.txt', 'ch/b.txt')).toMatchObject({ location: 'cloud' })
    expect(await storage.rename('ch/c.txt', 'ch/d.txt')).toMatchObject({ location: 'cloud' })
    await server.stop()
    for (const key of ['ch/b.txt', 'ch/d.txt']) {
      for (const read of [() => storage.get(key), () => storage.head(key), () => storage.exists(key)]) {
        await expect(read()).rejects.toMatchObject({ code: 'UNAVAILABLE' })
      }
    }
    await expect(storage.list({ prefix: 'ch/' })).rejects.toMatchObject({ code: 'UNAVAILABLE' })
  }))

test('cloud mode: the cloud must take a delete, and a write removes the local copy an outage would serve', () =>
  withDual('cloud-mode', async ({ server, local, manager, restart }) => {
    fs.mkdirSync(path.join(local, 'cm'))
    fs.writeFileSync(path.join(local, 'cm', 'legacy.txt'), 'legacy v1')
    const storage = manager({ mode: 'cloud' })
    await storage.put('cm/gone.txt', 'to delete')
    expect(await storage.put('cm/legacy.txt', 'cloud v2')).toMatchObject({ cloud: 'written', local: 'skipped' })
    // Before, the legacy v1 stayed on disk and was served whenever the cloud was down.
    expect(fs.existsSync(path.join(local, 'cm', 'legacy.txt'))).toBe(false)
    await server.stop()
    await expect(storage.get('cm/legacy.txt')).rejects.toMatchObject({ code: 'UNAVAILABLE' })
    // Before, this succeeded with only the local fallback deleted: every other reader
    // of the cloud still got the object, and nothing said so.
    await expect(storage.delete('cm/gone.txt')).rejects.toMatchObject({ code: 'UNAVAILABLE' })
    await restart()
    const elsewhere = manager({ local: tmpDir('cm-view'), mode: 'cloud' })
    expect((await elsewhere.get('cm/gone.txt')).toString()).toBe('to delete')
    // The app asked for the delete: the journal keeps it, and repair carries it out.
    expect(await storage.repair()).toMatchObject({ repaired: 1, remaining: 0 })
    await expect(elsewhere.exists('cm/gone.txt')).resolves.toBe(false)
    expect((await elsewhere.get('cm/legacy.txt')).toString()).toBe('cloud v2')
  }))

test('a write another manager on the journal queued is seen by this one\'s reads within moments', () =>
  withDual('other-worker', async ({ server, manager, restart }) => {
    // Two managers on one local folder and journal, as two workers of one app are.
    // Each waits on the cloud (no outage cooldown): worker 1 would otherwise read its
    // local side until the cooldown it began ended, as worker 2's repair is not its own.
    const waiting = { outageCooldownMs: 0 }
    const [worker1, worker2] = [manager(waiting), manager(waiting)] // reads prefer the cloud
    const [old, newer] = [bytes(3000, 1), bytes(3000, 2)]
    await worker1.put('ow/k.bin', old)
    await worker1.put('ow/gone.bin', old)
    expect(sha256(await worker2.get('ow/k.bin'))).toBe(sha256(old)) // its queued keys are loaded
    await server.stop()
    expect(await worker1.put('ow/k.bin', newer)).toMatchObject({ local: 'written', cloud: 'queued' })
    await worker1.delete('ow/gone.bin')
    await restart()

    // The cloud is back with the old bytes and the deleted object; worker 2 must not
    // serve them.
    await wait(100)
    expect(sha256(await worker2.get('ow/k.bin'))).toBe(sha256(newer))
    await expect(worker2.exists('ow/gone.bin')).resolves.toBe(false)
    expect(await worker2.repair()).toMatchObject({ repaired: 2, remaining: 0 })
    await wait(100)
    expect(sha256(await worker1.get('ow/k.bin'))).toBe(sha256(newer))
    expect(await worker1.head('ow/k.bin')).toMatchObject({ location: 'cloud' })
  }))

test('a repair never replays an intent that a write made since has superseded', () =>
  withDual('stale', async ({ server, opts, local, manager, restart }) => {
    // One key at a time, so the rows a repair pass read wait for their turn; the write
    // below goes to the cloud while the repair waits on it (no outage cooldown).
    const storage = manager({ concurrency: 1, outageCooldownMs: 0 })
    await storage.put('stale/k.bin', bytes(1000, 1))
    await server.stop()
    await storage.put('stale/a.bin', bytes(1000, 2)) // queued first, repaired first
    await storage.delete('stale/k.bin') // queued: delete k on the cloud side
    const restarted = await restart()

    // The pass has read both rows and waits on the stopped server over a.bin while
    // the app writes k.bin again; the write completes on both sides once it goes on.
    const requestHeld = stopServer(restarted)
    const repairing = storage.repair()
    await requestHeld()
    const newer = bytes(1000, 3)
    const written = storage.put('stale/k.bin', newer)
    await new Promise((resolve) => setTimeout(resolve, 200))
    restarted.child.kill('SIGCONT')
    expect(await written).toMatchObject({ local: 'written', cloud: 'written' })
    expect(await repairing).toMatchObject({ failed: 0, remaining: 0 })

    // Replaying the old delete would have removed the acknowledged write from both.
    const l = await expectParity(local, opts, 'stale')
    expect(l.get('stale/k.bin')).toBe(sha256(newer))
    expect(sha256(await storage.get('stale/k.bin'))).toBe(sha256(newer))
  }))

test('a dual rename killed with SIGKILL mid-way: repair finishes the move, the old name gone from both sides', () =>
  withDual('rename-crash', async ({ server, opts, local, manager }) => {
    const data = bytes(5000, 7)
    await manager().put('rc/from.bin', data)
    // The local side renames at once; the cloud's copy is held by the stopped server.
    const requestHeld = stopServer(server)
    const renamer = { local, mode: 'dual', read: 'local-first', ...opts }
    const { child, done } = callElsewhere(renamer, 'rename', ['rc/from.bin', 'rc/to.bin'])
    while (!fs.existsSync(path.join(local, 'rc', 'to.bin'))) await wait(5)
    await requestHeld()
    child.kill('SIGKILL')
    expect(await done).toMatchObject({ code: null })
    server.child.kill('SIGCONT')

    const storage = manager()
    expect(await storage.repair()).toMatchObject({ failed: 0, remaining: 0 })
    const l = await expectParity(local, opts, 'rc')
    expect(Object.fromEntries(l)).toEqual({ 'rc/to.bin': sha256(data) })
    await expect(storage.exists('rc/from.bin')).resolves.toBe(false)
  }))

test('a dual writer killed with SIGKILL 10 times: repair() restores parity and keeps every acknowledged write', () =>
  withDual('crash', async ({ opts, local, manager }) => {
    const prefix = 'crash'
    const acked = new Map()
    let interrupted = 0
    let seed = 42
    const random = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31
      return seed / 2 ** 31
    }
    for (let run = 0; run < 10; run++) {
      const child = spawn(process.execPath, [path.join(__dirname, 'fixtures', 'dual-writer.js'), local, JSON.stringify(opts), `${prefix}/r${run}`], {
        stdio: ['ignore', 'pipe', 'inherit'],
      })
      let buffered = ''
      child.stdout.on('data', (chunk) => {
        buffered += chunk
        const lines = buffered.split('\n')
        buffered = lines.pop()
        for (const line of lines) {
          const [, key, digest] = line.split(' ')
          acked.set(key, digest)
        }
      })
      const exited = new Promise((resolve) => child.on('exit', resolve))
      await new Promise((r) => setTimeout(r, 200 + random() * 600))
      child.kill('SIGKILL')
      await exited

      const storage = manager()
      const report = await storage.repair()
      expect(report.failed).toBe(0)
      expect(report.remaining).toBe(0)
      interrupted += report.repaired
      const l = await expectParity(local, opts, prefix)
      for (const [key, digest] of acked) expect(`${key} ${l.get(key)}`).toBe(`${key} ${digest}`)
    }
    expect(acked.size).toBeGreaterThan(100)
    // The kills did land mid-write: their intents were left for repair to settle.
    expect(interrupted).toBeGreaterThan(0)
  }), 300_000)

