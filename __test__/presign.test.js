'use strict'
// Presigned URLs against the real servers: a fresh GET and PUT are accepted; a
// tampered path or signature, an expired URL and another key's URL are refused.
const { StorageManager } = require('..')
const { tmpDir, sha256, runPrefix, s3Options, azureOptions } = require('./helpers')

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

function tamperSignature(url, param) {
  const u = new URL(url)
  const sig = u.searchParams.get(param)
  u.searchParams.set(param, (sig[0] === 'a' ? 'b' : 'a') + sig.slice(1))
  return u.toString()
}

const stores = {
  s3: { options: s3Options, signature: 'X-Amz-Signature', putHeaders: {} },
  azure: { options: azureOptions, signature: 'sig', putHeaders: { 'x-ms-blob-type': 'BlockBlob' } },
}

describe.each(Object.keys(stores))('presigned URLs on %s', (kind) => {
  const { options, signature, putHeaders } = stores[kind]
  let storage
  let p
  beforeAll(async () => {
    storage = new StorageManager({ local: tmpDir(`presign-${kind}`), mode: 'cloud', ...options() })
    p = runPrefix(`presign-${kind}`)
    await storage.put(`${p}/hello.txt`, 'hello presigned world')
    await storage.put(`${p}/other.txt`, 'another object')
  })

  test('a fresh GET URL is accepted and serves the bytes', async () => {
    const url = storage.presignGet(`${p}/hello.txt`, { expiresIn: 300 })
    const res = await fetch(url)
    expect(res.status).toBe(200)
    expect(await res.text()).toBe('hello presigned world')
  })

  test('responseContentDisposition is signed and served', async () => {
    const url = storage.presignGet(`${p}/hello.txt`, { responseContentDisposition: 'attachment; filename="greeting.txt"' })
    const res = await fetch(url)
    expect(res.status).toBe(200)
    expect(res.headers.get('content-disposition')).toBe('attachment; filename="greeting.txt"')
  })

  test('a fresh PUT URL uploads; the bytes land under the key', async () => {
    const key = `${p}/uploaded/ünï code+plus.bin`
    const body = Buffer.from('uploaded through a presigned URL')
    const url = storage.presignPut(key, { contentType: 'application/octet-stream' })
    const res = await fetch(url, { method: 'PUT', body, headers: { 'content-type': 'application/octet-stream', ...putHeaders } })
    expect(res.status).toBeLessThan(300)
    expect(sha256(await storage.get(key))).toBe(sha256(body))
  })

  test('tampered path, tampered signature, another key, expired: all refused', async () => {
    const url = storage.presignGet(`${p}/hello.txt`, { expiresIn: 300 })
    const otherPath = url.replace('hello.txt', 'other.txt')
    expect((await fetch(otherPath)).status).toBe(403)
    expect((await fetch(tamperSignature(url, signature))).status).toBe(403)
    // A valid URL for another key grants that key only.
    const other = storage.presignGet(`${p}/other.txt`)
    expect(await (await fetch(other)).text()).toBe('another object')
    const swapped = new URL(url)
    swapped.searchParams.set(signature, new URL(other).searchParams.get(signature))
    expect((await fetch(swapped.toString())).status).toBe(403)

    const short = storage.presignGet(`${p}/hello.txt`, { expiresIn: 1 })
    await sleep(2100)
    expect((await fetch(short)).status).toBe(403)
  })

  test('a PUT URL does not allow GET, and a tampered PUT is refused', async () => {
    const key = `${p}/put-only.txt`
    const url = storage.presignPut(key)
    expect((await fetch(url)).status).toBe(403)
    const res = await fetch(tamperSignature(url, signature), { method: 'PUT', body: 'x', headers: putHeaders })
    expect(res.status).toBe(403)
    await expect(storage.exists(key)).resolves.toBe(false)
  })

  test('presignMany signs each key, and matches presignGet', async () => {
    const keys = [`${p}/hello.txt`, `${p}/other.txt`]
    const urls = storage.presignMany(keys, { expiresIn: 600 })
    expect(urls).toHaveLength(2)
    expect(await (await fetch(urls[1])).text()).toBe('another object')
    expect(() => storage.presignMany([`${p}/ok`, '../bad'])).toThrow(expect.objectContaining({ code: 'INVALID_KEY' }))
  })

  test('presignMany on a large batch (signed on several threads) keeps order and every URL works', async () => {
    const keys = Array.from({ length: 5000 }, (_, i) => (i % 2 ? `${p}/hello.txt` : `${p}/other.txt`))
    const urls = storage.presignMany(keys)
    expect(urls).toHaveLength(keys.length)
    for (const i of [0, 1, 2499, 2500, 2501, 4998, 4999]) {
      expect(await (await fetch(urls[i])).text()).toBe(i % 2 ? 'hello presigned world' : 'another object')
    }
    const bad = [...keys]
    bad[4321] = 'a//b'
    expect(() => storage.presignMany(bad)).toThrow(expect.objectContaining({ code: 'INVALID_KEY' }))
  })
})

describe('local signed URLs and the CDN', () => {
  const secret = 'a-local-secret-of-at-least-32-bytes!!'
  const storage = () =>
    new StorageManager({ local: tmpDir('local-sign'), mode: 'local', presign: { localBaseUrl: 'https://app.example/files', localSecret: secret } })

  test('sign and verify round-trip; every tamper is SIGNATURE_INVALID; expiry is SIGNATURE_EXPIRED', async () => {
    const s = storage()
    const url = s.presignGet('dir/scan 1.dcm')
    expect(url.startsWith('https://app.example/files/dir/scan%201.dcm?')).toBe(true)
    expect(s.verifySignedUrl(url, 'GET')).toBe('dir/scan 1.dcm')
    expect(s.verifySignedUrl(new URL(url).pathname + new URL(url).search, 'GET')).toBe('dir/scan 1.dcm')
    const bad = (u, m = 'GET') => {
      try {
        s.verifySignedUrl(u, m)
        return 'accepted'
      } catch (e) {
        return e.code
      }
    }
    expect(bad(url.replace('scan%201', 'scan%202'))).toBe('SIGNATURE_INVALID')
    expect(bad(tamperSignature(url, 'X-Stowage-Signature'))).toBe('SIGNATURE_INVALID')
    expect(bad(url, 'PUT')).toBe('SIGNATURE_INVALID')
    expect(bad(url.replace(/X-Stowage-Expires=\d+/, 'X-Stowage-Expires=9999999999'))).toBe('SIGNATURE_INVALID')
    expect(bad(url.replace('dir/scan%201.dcm', 'dir/..%2F..%2Fetc/passwd'))).toBe('SIGNATURE_INVALID')
    const expired = s.presignGet('dir/scan 1.dcm', { expiresIn: 1 })
    await sleep(2100)
    expect(bad(expired)).toBe('SIGNATURE_EXPIRED')
  })

  test('without a local base URL, presigning says which setting is missing', () => {
    const s = new StorageManager({ local: tmpDir('nosign'), mode: 'local' })
    expect(() => s.presignGet('a.txt')).toThrow(expect.objectContaining({ code: 'INVALID_CONFIG', message: expect.stringContaining('presign.localBaseUrl') }))
  })

  test('a short secret or a base URL that is not http(s) is refused at construction', () => {
    // Signed URLs end up in pages, where a javascript: base would run.
    const bases = [{ cdnBaseUrl: 'javascript:alert(1)' }, { cdnBaseUrl: ' https://cdn.example.com' }, { cdnBaseUrl: 'http:/cdn.example.com' }, { localBaseUrl: 'data:text/html,x', localSecret: 'a-local-secret-of-at-least-32-bytes!!' }]
    for (const presign of bases) {
      expect(() => new StorageManager({ local: tmpDir('scheme'), presign })).toThrow(
        expect.objectContaining({ code: 'INVALID_CONFIG', message: expect.stringContaining('must be an http:// or https:// URL') }),
      )
    }
    expect(() => new StorageManager({ local: tmpDir('short'), presign: { localBaseUrl: 'https://x', localSecret: 'short' } })).toThrow(
      expect.objectContaining({ code: 'INVALID_CONFIG', message: expect.stringContaining('presign.localSecret') }),
    )
  })

  test('cdnBaseUrl: GET URLs point at the CDN', () => {
    const s = new StorageManager({ local: tmpDir('cdn'), mode: 'cloud', ...s3Options(), presign: { cdnBaseUrl: 'https://cdn.example.com/media/' } })
    expect(s.presignGet('a b/c.webp')).toBe('https://cdn.example.com/media/a%20b/c.webp')
    expect(s.presignPut('a b/c.webp')).toContain('X-Amz-Signature=')
  })
})
