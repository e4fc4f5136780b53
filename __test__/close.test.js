'use strict'
// close(): a manager lets go of its journal, stores and background services when
// told to, after the work it already started, instead of whenever V8 collects it.
const fs = require('node:fs')
const path = require('node:path')
const { StorageManager } = require('..')
const { tmpDir, sha256, bytes, s3Options, runPrefix, connectionsTo, withOwnS3 } = require('./helpers')

/** Descriptors this process holds open on files under `dir`. */
function openUnder(dir) {
  return fs.readdirSync('/proc/self/fd').filter((fd) => {
    try {
      return fs.readlinkSync(`/proc/self/fd/${fd}`).startsWith(dir)
    } catch {
      return false // the descriptor readdir itself used is gone already
    }
  }).length
}

/** Rejects if `promise` has not settled within `ms`. */
function within(ms, promise) {
  let timer
  const late = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`still pending after ${ms} ms`)), ms)
  })
  return Promise.race([promise, late]).finally(() => clearTimeout(timer))
}

test('close() lets a dual write in flight finish, then releases the journal and refuses new calls', async () => {
  const local = tmpDir('close-local')
  const cloud = `file://${tmpDir('close-cloud')}`
  const storage = new StorageManager({ local, cloud, mode: 'dual' })
  storage.startRepairer({ intervalMs: 10 })
  storage.startTierService({ intervalMs: 10 })
  const data = bytes(24 * 1024 * 1024, 7)
  await storage.put('warm-up.txt', 'opens the journal')
  expect(openUnder(path.join(local, '.stowage'))).toBeGreaterThan(0)

  const writing = storage.put('big.bin', data)
  await within(30000, storage.close())
  // The write was not cut short: both sides took it and its intent was settled.
  expect(await writing).toMatchObject({ local: 'written', cloud: 'written', sha256: sha256(data) })
  expect(openUnder(path.join(local, '.stowage'))).toBe(0)

  const closed = { code: 'UNAVAILABLE', message: expect.stringContaining('closed') }
  await expect(storage.get('big.bin')).rejects.toMatchObject(closed)
  await expect(storage.put('other.txt', 'x')).rejects.toMatchObject(closed)
  await expect(storage.list()).rejects.toMatchObject(closed)
  for (const call of [
    () => storage.stats(),
    () => storage.presignGet('big.bin'),
    () => storage.createReadStream('big.bin'),
    () => storage.migrate(),
    () => storage.startRepairer(),
  ]) {
    expect(call).toThrow(expect.objectContaining(closed))
  }
  await within(1000, storage.close()) // a second close has nothing left to wait for

  const reopened = new StorageManager({ local, cloud, mode: 'dual' })
  expect(sha256(await reopened.get('big.bin'))).toBe(sha256(data))
  expect(await reopened.pendingRepairs()).toBe(0)
  expect((await reopened.list()).objects.map((o) => o.key)).toEqual(['big.bin', 'warm-up.txt'])
  await reopened.close()
})

test('managers closed in a loop leave no descriptors behind', async () => {
  const root = tmpDir('close-many')
  const before = openUnder(root)
  for (let i = 0; i < 300; i++) {
    const storage = new StorageManager({ local: root, ...s3Options(), mode: 'dual' })
    await storage.exists('anything')
    await storage.close()
  }
  // Each open manager holds the journal's database and write-ahead log (3 or more).
  expect(openUnder(root) - before).toBe(0)
})

test('a destroyed read stream lets the manager close, read or not', async () => {
  const local = tmpDir('close-streams')
  const storage = new StorageManager({ local, mode: 'local' })
  await storage.put('large.bin', bytes(8 * 1024 * 1024, 3))
  const unread = storage.createReadStream('large.bin')
  const partly = storage.createReadStream('large.bin')
  await new Promise((resolve) => partly.once('data', resolve))
  expect(openUnder(local)).toBeGreaterThan(0) // the object's file, open mid-read
  unread.destroy()
  partly.destroy()
  await within(5000, storage.close())
  expect(openUnder(local)).toBe(0)
})

test('a read stream destroyed while its S3 server stalls lets go of the connection at once; close() does not wait for the request to time out', () =>
  withOwnS3('close-stalled', async ({ server, opts, open }) => {
    const cloudOptions = { ...opts.cloudOptions, requestTimeoutMs: 60000 }
    const storage = open({ local: tmpDir('close-stalled'), mode: 'cloud', ...opts, cloudOptions })
    const data = bytes(64 * 1024 * 1024, 5)
    await storage.put('big.bin', data)
    const stream = storage.createReadStream('big.bin')
    await new Promise((resolve) => stream.once('data', resolve))
    server.child.kill('SIGSTOP')
    // The socket's buffered bytes drain; then a read waits on the stalled server.
    await new Promise((resolve) => setTimeout(resolve, 500))
    expect(connectionsTo(server.info.port).length).toBeGreaterThan(0)
    stream.destroy()
    await new Promise((resolve) => setTimeout(resolve, 200))
    // The waiting read kept the connection until the request timed out, and close()
    // waited for it.
    expect(connectionsTo(server.info.port)).toEqual([])
    await within(10000, storage.close())
  }))

test('close() waits for a stream read partly and paused, and its file stays open until the stream ends', async () => {
  const local = tmpDir('close-paused')
  const storage = new StorageManager({ local, mode: 'local' })
  const data = bytes(8 * 1024 * 1024, 4)
  await storage.put('large.bin', data)
  const stream = storage.createReadStream('large.bin')
  const chunks = [await new Promise((resolve) => stream.once('data', resolve))]
  stream.pause()
  let closed = false
  const closing = storage.close().then(() => (closed = true))
  await new Promise((resolve) => setTimeout(resolve, 300))
  expect({ closed, open: openUnder(local) > 0 }).toEqual({ closed: false, open: true })
  stream.on('data', (chunk) => chunks.push(chunk)).resume()
  await new Promise((resolve, reject) => stream.on('end', resolve).on('error', reject))
  await within(5000, closing)
  expect(sha256(Buffer.concat(chunks))).toBe(sha256(data))
  expect(openUnder(local)).toBe(0)
})

test('a paused migration is aborted by close(), which would otherwise wait for it forever; a new run finishes it', async () => {
  const local = tmpDir('close-paused')
  const p = runPrefix('paused')
  for (let i = 0; i < 20; i++) {
    fs.mkdirSync(path.join(local, p), { recursive: true })
    fs.writeFileSync(path.join(local, p, `f${i}.bin`), bytes(20_000, i + 1))
  }
  const storage = new StorageManager({ local, mode: 'local', ...s3Options() })
  // 100 kB/s: about 4 files copied before the pause.
  const job = storage.migrate({ prefix: `${p}/`, concurrency: 1, bandwidthLimit: 100_000 })
  await new Promise((r) => setTimeout(r, 300))
  job.pause()
  await within(5000, storage.close())
  const report = await job.done
  expect(report.state).toBe('aborted')
  expect(report.copied).toBeLessThan(20)

  const again = new StorageManager({ local, mode: 'local', ...s3Options() })
  const rest = await again.migrate({ prefix: `${p}/` }).done
  expect(rest).toMatchObject({ state: 'completed', failedCount: 0 })
  expect(rest.copied + rest.skipped).toBe(20)
  const cloud = new StorageManager({ local: tmpDir('close-paused-view'), mode: 'cloud', ...s3Options() })
  for (let i = 0; i < 20; i++) expect(sha256(await cloud.get(`${p}/f${i}.bin`))).toBe(sha256(bytes(20_000, i + 1)))
})
