'use strict'
// App writes racing the background work that copies a key and then deletes its source:
// a migration with deleteSource and a tier move. In every mode a write of the key waits
// for that work (and the work for the write), so no acknowledged write is deleted.
// Each race is run twice: held open with a stopped server (SIGSTOP) at the worst
// moment, and as a few seconds of writers against loops of that work. Dual writes of
// one key from two processes on one local folder take turns as well.
const crypto = require('node:crypto')
const fs = require('node:fs')
const path = require('node:path')
const { StorageManager } = require('..')
const { tmpDir, sha256, bytes, writeTree, callElsewhere, stopServer, withOwnS3 } = require('./helpers')

/** `putFile(key, file)` in a process of its own, through a dual-mode manager. */
const putFileElsewhere = (manager, key, file) => callElsewhere({ mode: 'dual', ...manager }, 'putFile', [key, file]).done

const wait = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

/** Starts `work` and holds its first request on the stopped `server`, then starts
 * `write`, and lets the server go on 300 ms later. Returns what `work` returned, and
 * whether the write waited for the server (and so for the work). */
async function writeDuringWork(server, work, write) {
  const requestHeld = stopServer(server)
  const working = work()
  await requestHeld()
  let wrote
  const written = write().then(() => {
    wrote = process.hrtime.bigint()
  })
  await wait(300)
  const resumed = process.hrtime.bigint()
  server.child.kill('SIGCONT')
  await written
  return { waited: wrote > resumed, work: await working }
}

test('a put waits for the migration of its key: deleteSource deletes only the bytes it copied', () =>
  withOwnS3('race-mig', async ({ server, opts, open }) => {
    const local = tmpDir('race-mig')
    const key = 'scans/1.dcm'
    writeTree(local, { [key]: bytes(10 * 1024, 1) })
    const storage = open({ local, mode: 'local', ...opts })
    const newer = bytes(10 * 1024, 2)
    // The migration's PUT waits on the stopped server, holding the key.
    const migrate = () => storage.migrate({ prefix: 'scans/', deleteSource: true })
    const { waited, work: job } = await writeDuringWork(server, migrate, () => storage.put(key, newer))
    expect(waited).toBe(true)
    expect(await job.done).toMatchObject({ copied: 1, failedCount: 0 })
    expect(sha256(fs.readFileSync(path.join(local, key)))).toBe(sha256(newer))
    expect(sha256(await storage.get(key))).toBe(sha256(newer))
  }))

test('a put waits for the tier move of its key: the move never deletes the newer bytes', () =>
  withOwnS3('race-tier', async ({ server, opts, open }) => {
    const hot = tmpDir('race-hot')
    const storage = open({
      local: tmpDir('race-tier'),
      cloud: `file://${hot}`,
      mode: 'cloud',
      tiers: { warm: `s3://${server.info.bucket}`, warmOptions: opts.cloudOptions },
    })
    const key = 'scans/2.dcm'
    const newer = bytes(10 * 1024, 4)
    await storage.put(key, bytes(10 * 1024, 3))
    // The move's PUT to the warm tier waits on the stopped server, holding the key.
    const setTier = () => storage.setTier(key, 'warm')
    expect(await writeDuringWork(server, setTier, () => storage.put(key, newer))).toMatchObject({ waited: true })
    expect(await storage.tierOf(key)).toBe('hot')
    expect(sha256(fs.readFileSync(path.join(hot, key)))).toBe(sha256(newer))
    expect(sha256(await storage.get(key))).toBe(sha256(newer))
  }))

test('dual writes of one key from two processes take turns: both sides end with the last one', () =>
  withOwnS3('race-procs', async ({ server, opts, open }) => {
    const local = tmpDir('race-procs')
    const key = 'shared/report.pdf'
    const [first, second] = [bytes(20_000, 1), bytes(30_000, 2)]
    const files = [first, second].map((data, i) => {
      const file = path.join(tmpDir('race-procs-src'), `${i}.bin`)
      fs.writeFileSync(file, data)
      return file
    })
    // The first process has written the local side; its cloud PUT waits on the server.
    const requestHeld = stopServer(server)
    const firstDone = putFileElsewhere({ local, ...opts }, key, files[0])
    await requestHeld()
    const localFile = path.join(local, key)
    while (!fs.existsSync(localFile) || sha256(fs.readFileSync(localFile)) !== sha256(first)) await wait(5)
    // Another worker writes the key meanwhile: it must wait, or its local write would
    // land after the first one and its cloud PUT possibly before.
    const secondDone = putFileElsewhere({ local, ...opts }, key, files[1])
    await wait(1500)
    expect(sha256(fs.readFileSync(localFile))).toBe(sha256(first))
    server.child.kill('SIGCONT')
    expect(await firstDone).toMatchObject({ code: 0, result: { local: 'written', cloud: 'written' } })
    expect(await secondDone).toMatchObject({ code: 0, result: { local: 'written', cloud: 'written' } })

    const storage = open({ local, mode: 'dual', ...opts })
    await expect(storage.pendingRepairs()).resolves.toBe(0)
    const cloud = open({ local: tmpDir('race-procs-view'), mode: 'cloud', ...opts })
    expect(sha256(fs.readFileSync(localFile))).toBe(sha256(second))
    expect(sha256(await cloud.get(key))).toBe(sha256(second))
  }))

test('a tier cycle leaves hot an object written after the cycle picked it', () =>
  withOwnS3('race-cycle', async ({ server, opts, open }) => {
    // One move at a time, so the rows a cycle picked wait for their turn.
    const storage = open({
      local: tmpDir('race-cycle'),
      cloud: `file://${tmpDir('race-cycle-hot')}`,
      mode: 'cloud',
      concurrency: 1,
      // Hot for one second.
      tiers: { warm: `s3://${server.info.bucket}`, warmOptions: opts.cloudOptions, policy: { hotToWarmDays: 1 / 86_400 } },
    })
    await storage.put('scans/a.dcm', bytes(2000, 5))
    await storage.put('scans/b.dcm', bytes(2000, 6))
    await wait(1200)
    // The cycle picks both and waits on the stopped server over a.dcm while b.dcm is written.
    const cycle = () => storage.runTierCycle()
    const { work: report } = await writeDuringWork(server, cycle, () => storage.put('scans/b.dcm', bytes(2000, 7)))
    expect(report).toMatchObject({ toWarm: 1, failed: [] })
    expect(await storage.tierOf('scans/a.dcm')).toBe('warm')
    expect(await storage.tierOf('scans/b.dcm')).toBe('hot')
    expect(sha256(await storage.get('scans/b.dcm'))).toBe(sha256(bytes(2000, 7)))
  }))

/** Four writers, each with its own keys, put and delete versions for `ms` while
 * `work` loops; returns each key's last acknowledged SHA-256 (null: deleted). */
async function race(storage, ms, work) {
  const keys = 40
  const last = new Map()
  let stop = false
  const writer = async (w) => {
    for (let v = 0; !stop; v++) {
      const key = `k/${w + 4 * (v % (keys / 4))}.bin`
      if (v % 13 === 12) {
        await storage.delete(key)
        last.set(key, null)
      } else {
        const data = crypto.randomBytes(1000 + (v % 50))
        await storage.put(key, data)
        last.set(key, sha256(data))
      }
    }
  }
  const worker = async () => {
    while (!stop) await work()
  }
  const running = [0, 1, 2, 3].map(writer).concat([worker()])
  await wait(ms)
  stop = true
  await Promise.all(running)
  return last
}

async function expectLastVersions(storage, last) {
  for (const [key, expected] of last) {
    const got = await storage.get(key).then(sha256, (e) => (e.code === 'NOT_FOUND' ? null : e.code))
    expect(`${key} ${got}`).toBe(`${key} ${expected}`)
  }
}

test('writers racing migrations with deleteSource keep every last write, in each mode', async () => {
  for (const mode of ['local', 'dual']) {
    const local = tmpDir(`race-mig-${mode}`)
    const storage = new StorageManager({ local, cloud: `file://${tmpDir('race-mig-cloud')}`, mode })
    let copied = 0
    const last = await race(storage, 3000, async () => {
      copied += (await storage.migrate({ prefix: 'k/', deleteSource: true }).done).copied
    })
    expect(copied).toBeGreaterThan(0)
    await expectLastVersions(storage, last)
    await storage.close()
  }
})

test('writers racing tier cycles keep every last write', async () => {
  const storage = new StorageManager({
    local: tmpDir('race-tiers'),
    cloud: `file://${tmpDir('race-tiers-hot')}`,
    mode: 'cloud',
    tiers: { warm: `file://${tmpDir('race-tiers-warm')}`, policy: { hotToWarmDays: 1 } },
  })
  const later = new Date(Date.now() + 2 * 86_400_000)
  let moved = 0
  const last = await race(storage, 3000, async () => {
    moved += (await storage.runTierCycle({ now: later })).toWarm
  })
  expect(moved).toBeGreaterThan(0)
  await expectLastVersions(storage, last)
  await storage.close()
})
