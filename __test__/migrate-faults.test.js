'use strict'
// Migration faults with real processes: a migrating child killed with SIGKILL at
// random points 20 times (deleteSource on, so a crash between copy and delete is
// exercised), a file or folder the migrating user cannot read, and an abort in the
// middle of a multipart upload.
const { spawn, execFileSync } = require('node:child_process')
const crypto = require('node:crypto')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { StorageManager } = require('..')
const { tmpDir, sha256, bytes, writeTree, runPrefix, s3Options, s3ObjectFile, flipByteKeepingMtime, stopServer, withOwnS3 } = require('./helpers')

const MIGRATOR = path.join(__dirname, 'fixtures', 'migrator.js')

/** Runs the migrator; kills it with SIGKILL after `killAfterMs` unless it ends first. */
function runMigrator(config, { killAfterMs, uid, gid } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [MIGRATOR, JSON.stringify(config)], {
      stdio: ['ignore', 'pipe', 'pipe'],
      uid,
      gid,
    })
    let out = ''
    let err = ''
    child.stdout.on('data', (d) => (out += d))
    child.stderr.on('data', (d) => (err += d))
    const timer = killAfterMs === undefined ? null : setTimeout(() => child.kill('SIGKILL'), killAfterMs)
    child.on('error', reject)
    child.on('exit', (code, signal) => {
      clearTimeout(timer)
      if (signal === 'SIGKILL') return resolve({ killed: true })
      if (code !== 0) return reject(new Error(`migrator exited ${code}: ${err}`))
      resolve({ killed: false, report: JSON.parse(out) })
    })
  })
}

/** Runs `check` over `items`, 16 at a time. */
async function inParallel(items, check) {
  let i = 0
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      while (i < items.length) await check(items[i++])
    }),
  )
}

test('a migrating process killed with SIGKILL 20 times loses nothing, and a re-run completes verified', async () => {
  const local = tmpDir('mig-kill')
  const prefix = runPrefix('kill')
  const files = {}
  for (let i = 0; i < 1000; i++) files[`${prefix}/s${i % 10}/f${String(i).padStart(4, '0')}.bin`] = bytes(2048 + (i % 5) * 1000, i + 1)
  for (let i = 0; i < 5; i++) files[`${prefix}/large/v${i}.bin`] = bytes(9 * 1024 * 1024 + i * 4096, 5000 + i)
  writeTree(local, files)
  const config = {
    manager: { local, mode: 'local', ...s3Options() },
    migrate: { prefix: `${prefix}/`, deleteSource: true, concurrency: 8, bandwidthLimit: 256 * 1024 },
  }
  const cloud = new StorageManager({ local: tmpDir('view'), mode: 'cloud', ...s3Options() })
  // Each file must be, at every crash point, in at least one place with its bytes.
  const checkNothingLost = () =>
    inParallel(Object.entries(files), async ([key, data]) => {
      const file = path.join(local, key)
      if (fs.existsSync(file)) {
        expect(`${key} ${sha256(fs.readFileSync(file))}`).toBe(`${key} ${sha256(data)}`)
      } else {
        const info = await cloud.head(key)
        expect(`${key} ${info.size} ${info.sha256}`).toBe(`${key} ${data.length} ${sha256(data)}`)
      }
    })
  let seed = 12345
  const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31)
  // 20 runs, each killed at a random point. The bandwidth limit stretches the whole
  // migration over more than 20 runs, so the kills land while files are being copied.
  let kills = 0
  for (let round = 0; round < 20; round++) {
    const result = await runMigrator(config, { killAfterMs: 250 + Math.floor(random() * 700) })
    if (result.killed) kills++
    await checkNothingLost()
  }
  expect(kills).toBeGreaterThanOrEqual(18)
  const final = await runMigrator({ ...config, migrate: { ...config.migrate, bandwidthLimit: undefined } })
  expect(final.report).toMatchObject({ state: 'completed', failedCount: 0 })
  await inParallel(Object.entries(files), async ([key, data]) => {
    expect(fs.existsSync(path.join(local, key))).toBe(false)
    expect(`${key} ${sha256(await cloud.get(key))}`).toBe(`${key} ${sha256(data)}`)
  })
  // Runs continue the unfinished migration's id; once one run completes, the next
  // starts a new id. Rolling back every id this journal holds restores every file.
  const storage = new StorageManager(config.manager)
  let restored = 0
  for (let id = 1; id <= final.report.id; id++) {
    const back = await storage.rollback(id)
    expect(back.failed).toEqual([])
    restored += back.restored
  }
  expect(restored).toBe(1005)
  for (const [key, data] of Object.entries(files)) {
    expect(`${key} ${sha256(fs.readFileSync(path.join(local, key)))}`).toBe(`${key} ${sha256(data)}`)
  }
}, 400000)

test('a source rewritten in place while its upload is in flight, keeping size and mtime, is copied again as it is now', () =>
  withOwnS3('stopped', async ({ server, opts, open }) => {
    const local = tmpDir('mig-inflight')
    const key = `${runPrefix('inflight')}/scan.bin`
    const file = path.join(local, key)
    writeTree(local, { [key]: bytes(10 * 1024, 7) }, new Date())
    const storage = open({ local, mode: 'local', ...opts })
    // The file is read, then its PUT waits on the stopped server while the app
    // rewrites it within the same mtime tick: the copy sent the old bytes.
    const requestHeld = stopServer(server)
    const job = storage.migrate({ prefix: key, deleteSource: true })
    await requestHeld()
    flipByteKeepingMtime(file, 5)
    const rewritten = fs.readFileSync(file)
    server.child.kill('SIGCONT')
    // Hashed again after the copy, it no longer matches: copied again, then deleted.
    expect(await job.done).toMatchObject({ copied: 1, failedCount: 0 })
    expect(fs.existsSync(file)).toBe(false)
    const cloud = open({ local: tmpDir('view'), mode: 'cloud', ...opts })
    expect(sha256(await cloud.get(key))).toBe(sha256(rewritten))
  }))

test('an object rewritten on the S3 server while its download is in flight is not deleted: the newer bytes survive', () =>
  withOwnS3('cloud-rewrite', async ({ server, opts, open }) => {
    const key = `${runPrefix('cloudsrc')}/scan.bin`
    const older = bytes(64 * 1024 * 1024, 11) // above 32 MiB: downloaded through a temporary file
    await open({ local: tmpDir('cloud-writer'), mode: 'cloud', ...opts }).put(key, older)
    const local = tmpDir('mig-cloudsrc')
    const storage = open({ local, mode: 'local', ...opts })
    const job = storage.migrate({ from: 'cloud', to: 'local', prefix: key, deleteSource: true })

    // Once the download has begun, the server stops mid-stream and another writer
    // replaces the object, as s3s-fs's own PUT does: a new file renamed over the old.
    const temp = path.join(local, '.stowage', 'tmp')
    const downloaded = () => {
      try {
        return fs.readdirSync(temp).map((f) => fs.statSync(path.join(temp, f)).size)[0] ?? 0
      } catch {
        return 0
      }
    }
    while (downloaded() === 0) await new Promise((resolve) => setTimeout(resolve, 1))
    server.child.kill('SIGSTOP')
    await new Promise((resolve) => setTimeout(resolve, 100))
    expect(downloaded()).toBeLessThan(older.length)
    const newer = bytes(1024 * 1024, 12)
    const dataFile = s3ObjectFile(key, server.info)
    const staged = path.join(server.info.dir, 'rewrite.tmp')
    fs.writeFileSync(staged, newer)
    fs.renameSync(staged, dataFile)
    server.child.kill('SIGCONT')

    // The download finishes with the older bytes; deleting the source now would lose
    // the newer ones, so it must find them there and leave the source be.
    await job.done
    const held = [dataFile, path.join(local, key)].filter((f) => fs.existsSync(f)).map((f) => sha256(fs.readFileSync(f)))
    expect(held).toContain(sha256(newer))
  }))

/** `files` under `uploads/` of a world-accessible folder outside the test tree, since
 * the migrator runs as nobody; the journal goes beside `uploads/`. */
function treeForNobody(files) {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'stowage-perm-'))
  fs.chmodSync(root, 0o777)
  const local = path.join(root, 'uploads')
  writeTree(local, files)
  execFileSync('chmod', ['-R', 'a+rwX', local])
  return { root, local }
}

/** uid/gid of `nobody`, so the permission bits apply (the tests may run as root). */
function nobody() {
  const id = (flag) => Number(execFileSync('id', [flag, 'nobody'], { encoding: 'utf8' }).trim())
  return { uid: id('-u'), gid: id('-g') }
}

test('an aborted migration leaves no unfinished multipart upload on the server', () =>
  withOwnS3('mpu-abort', async ({ server, opts, open }) => {
    // The cancelled copy dropped its upload without aborting it: the parts already
    // sent stayed on the server (on AWS, billed until a lifecycle rule removes them).
    const local = tmpDir('mig-mpu')
    const key = `${runPrefix('mpu')}/volume.bin`
    writeTree(local, { [key]: crypto.randomBytes(96 * 1024 * 1024) })
    const storage = open({ local, mode: 'local', partSize: 5 * 1024 * 1024, multipartThreshold: 8 * 1024 * 1024, ...opts })
    const uploads = () => fs.readdirSync(server.info.dir).filter((name) => name.includes('upload'))
    const job = storage.migrate({ prefix: `${key.split('/')[0]}/` })
    const deadline = Date.now() + 30_000
    while (uploads().length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20))
    expect(uploads().length).toBeGreaterThan(0)
    job.abort()
    expect(await job.done).toMatchObject({ state: 'aborted', copied: 0 })
    const settled = Date.now() + 10_000
    while (uploads().length > 0 && Date.now() < settled) await new Promise((r) => setTimeout(r, 50))
    expect(uploads()).toEqual([])
    await expect(storage.exists(key)).resolves.toBe(true)
  }))

test('a folder the migrating user cannot read stops the job with ACCESS_DENIED, not a complete report without it', async () => {
  // The walk skipped the folder: the job said `completed`, nothing failed, and the
  // files in it were never copied.
  const prefix = runPrefix('perm-dir')
  const files = {}
  for (let i = 0; i < 4; i++) files[`${prefix}/a-open/f-${i}.bin`] = bytes(2048, i + 1)
  for (let i = 0; i < 3; i++) files[`${prefix}/b-locked/f-${i}.bin`] = bytes(2048, i + 11)
  const { root, local } = treeForNobody(files)
  fs.chmodSync(path.join(local, `${prefix}/b-locked`), 0o000)
  const config = {
    manager: { local, mode: 'local', journal: path.join(root, 'journal.db'), ...s3Options() },
    migrate: { prefix: `${prefix}/` },
  }
  const cloud = new StorageManager({ local: tmpDir('view'), mode: 'cloud', ...s3Options() })
  try {
    await expect(runMigrator(config, nobody())).rejects.toThrow(`ACCESS_DENIED: access denied: ${prefix}/b-locked/`)
    await expect(cloud.exists(`${prefix}/b-locked/f-0.bin`)).resolves.toBe(false)
    fs.chmodSync(path.join(local, `${prefix}/b-locked`), 0o777)
    const { report } = await runMigrator(config, nobody())
    expect(report).toMatchObject({ state: 'completed', failedCount: 0 })
    expect(report.copied + report.skipped).toBe(7)
    for (const [key, data] of Object.entries(files)) {
      expect(`${key} ${sha256(await cloud.get(key))}`).toBe(`${key} ${sha256(data)}`)
    }
  } finally {
    fs.rmSync(root, { recursive: true, force: true })
  }
})

test('a file the migrating user cannot read fails with ACCESS_DENIED; the rest is copied', async () => {
  const prefix = runPrefix('perm')
  const files = {}
  for (let i = 0; i < 8; i++) files[`${prefix}/ok-${i}.bin`] = bytes(4096, i + 1)
  files[`${prefix}/secret.bin`] = bytes(4096, 99)
  const { root, local } = treeForNobody(files)
  fs.chmodSync(path.join(local, `${prefix}/secret.bin`), 0o000)
  const user = nobody()
  try {
    const { report } = await runMigrator(
      {
        manager: { local, mode: 'local', journal: path.join(root, 'journal.db'), ...s3Options() },
        migrate: { prefix: `${prefix}/` },
      },
      user,
    )
    expect(report.copied).toBe(8)
    expect(report.failed).toEqual([{ key: `${prefix}/secret.bin`, code: 'ACCESS_DENIED', message: expect.stringContaining('secret.bin') }])
    const cloud = new StorageManager({ local: tmpDir('view'), mode: 'cloud', ...s3Options() })
    expect(await cloud.exists(`${prefix}/secret.bin`)).toBe(false)
    expect(sha256(await cloud.get(`${prefix}/ok-3.bin`))).toBe(sha256(files[`${prefix}/ok-3.bin`]))
  } finally {
    fs.rmSync(root, { recursive: true, force: true })
  }
})

test('deleteSource never deletes a file the app replaced after its copy was read', async () => {
  const local = tmpDir('mig-replaced')
  const prefix = runPrefix('replaced')
  const keys = Array.from({ length: 30 }, (_, i) => `${prefix}/f${i}.txt`)
  const newest = {}
  // The app replaces each file every few milliseconds, half by a rename into place,
  // half by rewriting it in place.
  const write = (key, version) => {
    const file = path.join(local, key)
    const data = Buffer.from(`${key} version ${version} `.repeat(50 + (version % 7)))
    fs.mkdirSync(path.dirname(file), { recursive: true })
    if (version % 2) {
      fs.writeFileSync(`${file}.tmp~`, data)
      fs.renameSync(`${file}.tmp~`, file)
    } else fs.writeFileSync(file, data)
    newest[key] = sha256(data)
  }
  for (const key of keys) write(key, 0)
  const storage = new StorageManager({ local, mode: 'dual', ...s3Options() })
  let stop = false
  const deleted = {}
  const app = keys.map(async (key) => {
    for (let version = 1; !stop; version++) {
      write(key, version)
      await new Promise((resolve) => setTimeout(resolve, 2 + Math.random() * 40))
      // Only the migration deletes: what the file held last must be in the cloud.
      if (!fs.existsSync(path.join(local, key))) return (deleted[key] = newest[key])
    }
  })
  const report = await storage.migrate({ prefix: `${prefix}/`, deleteSource: true, concurrency: 4 }).done
  stop = true
  await Promise.all(app)
  expect(report.state).toBe('completed')
  expect(Object.keys(deleted).length).toBeGreaterThan(0)
  const cloud = new StorageManager({ local: tmpDir('view'), mode: 'cloud', ...s3Options() })
  for (const [key, sha] of Object.entries(deleted)) expect(`${key} ${sha256(await cloud.get(key))}`).toBe(`${key} ${sha}`)
  await Promise.all([storage.close(), cloud.close()])
})
