'use strict'
const fs = require('node:fs')
const path = require('node:path')
const { StorageManager } = require('..')
const { tmpDir, sha256, bytes } = require('./helpers')

require('./conformance').conformance('file')

describe('folders of a file store', () => {
  test('a folder goes with its last object, freeing its name for an object', async () => {
    // On S3 `a` and `a/b` are unrelated names; a file store left the emptied folder
    // `a/` behind, and a write of `a` was refused for ever after.
    const root = tmpDir('folders')
    const storage = new StorageManager({ local: root, mode: 'local' })
    const kept = bytes(100, 31)
    for (const key of ['emptied/deep/leaf.bin', 'moved-away/deep/leaf.bin', 'kept/one.bin', 'kept/two.bin']) {
      await storage.put(key, kept)
    }
    await storage.delete('emptied/deep/leaf.bin')
    await storage.rename('moved-away/deep/leaf.bin', 'arrived.bin')
    await storage.delete('kept/one.bin')
    expect(fs.readdirSync(root).sort()).toEqual(['.stowage', 'arrived.bin', 'kept'])
    for (const name of ['emptied', 'emptied/deep', 'moved-away']) {
      const data = bytes(200, name.length)
      await storage.put(name, data)
      expect(sha256(await storage.get(name))).toBe(sha256(data))
      await storage.delete(name)
    }
    // A folder that still holds an object keeps it; the root stays when emptied.
    expect(fs.readdirSync(path.join(root, 'kept'))).toEqual(['two.bin'])
    expect(sha256(await storage.get('arrived.bin'))).toBe(sha256(kept))
    await storage.delete('kept/two.bin')
    await storage.delete('arrived.bin')
    expect(fs.readdirSync(root)).toEqual(['.stowage'])
  })
})

describe('copies in a file store', () => {
  test('a copy is a file of its own: rewriting its source in place leaves it be', async () => {
    // A copy was a hard link: the app's in-place rewrite of the source changed the
    // copy too, and copying onto it again left `b.bin#n` staging links behind.
    const root = tmpDir('copies')
    const storage = new StorageManager({ local: root, mode: 'local' })
    const original = bytes(5000, 43)
    await storage.put('a.bin', original)
    for (let i = 0; i < 3; i++) {
      expect(await storage.copy('a.bin', 'b.bin')).toMatchObject({ size: 5000, sha256: sha256(original) })
    }
    expect(fs.readdirSync(root).sort()).toEqual(['.stowage', 'a.bin', 'b.bin'])
    const [a, b] = ['a.bin', 'b.bin'].map((name) => fs.statSync(path.join(root, name)))
    expect([b.nlink, b.ino === a.ino]).toEqual([1, false])
    fs.writeFileSync(path.join(root, 'a.bin'), bytes(5000, 44))
    expect(sha256(await storage.get('b.bin'))).toBe(sha256(original))
  })

  test('a rename between two links of one file removes the old name', async () => {
    // POSIX rename(2) does nothing when both names are links of one file, and says
    // it succeeded: the old name stayed, readable.
    const root = tmpDir('links')
    const storage = new StorageManager({ local: root, mode: 'local' })
    await storage.put('x.bin', 'linked')
    fs.linkSync(path.join(root, 'x.bin'), path.join(root, 'y.bin'))
    await storage.rename('x.bin', 'y.bin')
    await expect(storage.exists('x.bin')).resolves.toBe(false)
    expect((await storage.get('y.bin')).toString()).toBe('linked')
    expect(fs.readdirSync(root).sort()).toEqual(['.stowage', 'y.bin'])
  })
})
