'use strict'
// Bytes damaged at rest are refused on the way out: `get`, `getToFile` and a whole
// `createReadStream` check the SHA-256 recorded at upload. The damage is real: one
// stored byte is flipped in place, on local disk, in the S3 server's own folder and in
// Azurite's extent files.
const crypto = require('node:crypto')
const fs = require('node:fs')
const path = require('node:path')
const { StorageManager } = require('..')
const { servers, tmpDir, sha256, runPrefix, s3Options, azureOptions, s3ObjectFile, flipByteKeepingMtime } = require('./helpers')
const { collect } = require('./conformance')

/** The one file under `dir` that holds `data`, and where: Azurite appends each
 * upload's bytes to shared extent files. Random data makes a second match impossible. */
function findStored(dir, data) {
  const found = []
  for (const e of fs.readdirSync(dir, { recursive: true, withFileTypes: true })) {
    if (!e.isFile()) continue
    const file = path.join(e.parentPath, e.name)
    const at = fs.readFileSync(file).indexOf(data)
    if (at >= 0) found.push({ file, at })
  }
  if (found.length !== 1) throw new Error(`expected the object's bytes in one file under ${dir}, found ${found.length}`)
  return found[0]
}

// Each store says how to flip the byte at `offset` of a stored object.
const stores = {
  file: () => {
    const local = tmpDir('integrity-file')
    return { storage: new StorageManager({ local, mode: 'local' }), damage: (key, _data, offset) => flipByteKeepingMtime(path.join(local, key), offset) }
  },
  s3: () => {
    const storage = new StorageManager({ local: tmpDir('integrity-s3'), mode: 'cloud', ...s3Options() })
    return { storage, damage: (key, _data, offset) => flipByteKeepingMtime(s3ObjectFile(key), offset) }
  },
  azure: () => {
    const storage = new StorageManager({ local: tmpDir('integrity-azure'), mode: 'cloud', ...azureOptions() })
    const damage = (_key, data, offset) => {
      const { file, at } = findStored(servers().azure.dir, data)
      flipByteKeepingMtime(file, at + offset)
    }
    return { storage, damage }
  },
}

describe.each(Object.keys(stores))('integrity on %s', (kind) => {
  const prefix = runPrefix(`integrity-${kind}`)
  const { storage, damage } = stores[kind]()

  test('get, getToFile and createReadStream refuse bytes that no longer match their SHA-256', async () => {
    const key = `${prefix}/rotten.bin`
    const data = crypto.randomBytes(200 * 1024)
    await storage.put(key, data)
    await expect(storage.get(key)).resolves.toEqual(data)

    damage(key, data, 123_456)
    const err = await storage.get(key).catch((e) => e)
    expect(err.code).toBe('INTEGRITY')
    expect(err.message).toContain(sha256(data))

    const dest = path.join(tmpDir(`integrity-${kind}-out`), 'rotten.bin')
    await expect(storage.getToFile(key, dest)).rejects.toMatchObject({ code: 'INTEGRITY' })
    expect(fs.existsSync(dest)).toBe(false)
    // A stream hands the bytes on as they come, then fails instead of ending cleanly,
    // so a response it is piped into is aborted rather than completed with bad bytes.
    await expect(collect(storage.createReadStream(key))).rejects.toMatchObject({ code: 'INTEGRITY' })
    // So is a range over all of it, as a browser's `Range: bytes=0-` asks (it was passed through).
    for (const range of [{ start: 0 }, { start: 0, end: data.length - 1 }, { end: Infinity }]) {
      await expect(collect(storage.createReadStream(key, range))).rejects.toMatchObject({ code: 'INTEGRITY' })
    }
    // A shorter range cannot be checked against the whole object's hash; it is passed through.
    const part = await collect(storage.createReadStream(key, { start: 123_450, end: 123_459 }))
    const damaged = Buffer.from(data.subarray(123_450, 123_460))
    damaged[6] ^= 0xff
    expect(part).toEqual(damaged)
    // The object itself is left alone, for whoever repairs it.
    await expect(storage.head(key)).resolves.toMatchObject({ size: data.length, sha256: sha256(data) })
  })

  test('an intact neighbour still reads', async () => {
    const key = `${prefix}/sound.bin`
    const data = crypto.randomBytes(3 * 1024 * 1024)
    await storage.put(key, data)
    expect(sha256(await storage.get(key))).toBe(sha256(data))
    expect(sha256(await collect(storage.createReadStream(key)))).toBe(sha256(data))
  })
})

test('a local file the app rewrote itself is served as it is now', async () => {
  // Apps keep writing into the local folder with `fs` during a migration. A file whose
  // size or mtime moved since stowage recorded it has no known SHA-256 to check.
  const local = tmpDir('integrity-rewritten')
  const storage = new StorageManager({ local, mode: 'local' })
  await storage.put('page.html', '<p>old</p>')
  fs.writeFileSync(path.join(local, 'page.html'), '<p>new, longer</p>')
  await expect(storage.get('page.html')).resolves.toEqual(Buffer.from('<p>new, longer</p>'))
})

// A copy recorded the source's SHA-256 with the mtime of whatever file stood at the
// target afterwards: with another copy onto the same key in between, the pair named
// one file's hash and another's mtime, and every later read of the key failed INTEGRITY.
test.each(['local', 'cloud', 'dual'])('concurrent copies, renames and writes onto the same keys of file stores (%s mode) never make a read fail', async (mode) => {
  const storage = new StorageManager({ local: tmpDir('race-local'), cloud: `file://${tmpDir('race-cloud')}`, mode })
  const keys = ['a', 'b', 'c', 'd'].map((k) => `race/${k}.bin`)
  // One size for all, so size alone cannot tell the files apart.
  const content = new Map(keys.map((k) => [k, crypto.randomBytes(4096)]))
  for (const [k, data] of content) await storage.put(k, data)
  let seed = 11
  const pick = () => {
    seed = (seed * 1103515245 + 12345) >>> 0
    return keys[seed % keys.length]
  }
  const integrity = []
  const ops = Array.from({ length: 1500 }, (_, i) => {
    const [from, to] = [pick(), pick()]
    const op = [
      () => storage.copy(from, to),
      () => storage.rename(from, to),
      () => storage.put(from, crypto.randomBytes(4096)),
      () => storage.get(to),
    ][i % 4]
    return op().catch((e) => {
      if (e.code === 'INTEGRITY') integrity.push(e.message)
      else expect(e.code).toBe('NOT_FOUND') // a rename moved the source away
    })
  })
  await Promise.all(ops)
  expect(integrity).toEqual([])
  // Afterwards every key reads, and a recorded SHA-256 is the bytes' own.
  const { objects } = await storage.list({ prefix: 'race/' })
  expect(objects.length).toBeGreaterThan(0)
  for (const { key } of objects) {
    const [data, info] = [await storage.get(key), await storage.head(key)]
    if (info.sha256) expect(info.sha256).toBe(sha256(data))
  }
  await storage.close()
})
