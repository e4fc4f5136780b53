'use strict'
// Bytes damaged at rest are refused on the way out: `get`, `getToFile` and a whole
// `createReadStream` check the SHA-256 recorded at upload. The damage is real: the
// stored file is overwritten in place, on local disk and in the S3 server's own folder.
const fs = require('node:fs')
const path = require('node:path')
const { StorageManager } = require('..')
const { servers, tmpDir, sha256, bytes, runPrefix, s3Options, flipByteKeepingMtime } = require('./helpers')
const { collect } = require('./conformance')

const stores = {
  file: () => {
    const local = tmpDir('integrity-file')
    return { storage: new StorageManager({ local, mode: 'local' }), stored: (key) => path.join(local, key) }
  },
  s3: () => {
    const s3 = servers().s3
    const storage = new StorageManager({ local: tmpDir('integrity-s3'), mode: 'cloud', ...s3Options() })
    return { storage, stored: (key) => path.join(s3.dir, s3.bucket, key) }
  },
}

describe.each(Object.keys(stores))('integrity on %s', (kind) => {
  const prefix = runPrefix(`integrity-${kind}`)
  const { storage, stored } = stores[kind]()

  test('get, getToFile and createReadStream refuse bytes that no longer match their SHA-256', async () => {
    const key = `${prefix}/rotten.bin`
    const data = bytes(200 * 1024, 7)
    await storage.put(key, data)
    await expect(storage.get(key)).resolves.toEqual(data)

    flipByteKeepingMtime(stored(key), 123_456)
    const err = await storage.get(key).catch((e) => e)
    expect(err.code).toBe('INTEGRITY')
    expect(err.message).toContain(sha256(data))

    const dest = path.join(tmpDir(`integrity-${kind}-out`), 'rotten.bin')
    await expect(storage.getToFile(key, dest)).rejects.toMatchObject({ code: 'INTEGRITY' })
    expect(fs.existsSync(dest)).toBe(false)
    // A stream hands the bytes on as they come, then fails instead of ending cleanly,
    // so a response it is piped into is aborted rather than completed with bad bytes.
    await expect(collect(storage.createReadStream(key))).rejects.toMatchObject({ code: 'INTEGRITY' })
    // A range cannot be checked against the whole object's hash; it is passed through.
    const part = await collect(storage.createReadStream(key, { start: 123_450, end: 123_459 }))
    const damaged = Buffer.from(data.subarray(123_450, 123_460))
    damaged[6] ^= 0xff
    expect(part).toEqual(damaged)
    // The object itself is left alone, for whoever repairs it.
    await expect(storage.head(key)).resolves.toMatchObject({ size: data.length, sha256: sha256(data) })
  })

  test('an intact neighbour still reads', async () => {
    const key = `${prefix}/sound.bin`
    const data = bytes(3 * 1024 * 1024, 11)
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
