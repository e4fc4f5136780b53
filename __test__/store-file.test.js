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
