'use strict'
// stowage/express and stowage/hono over real HTTP in real apps: Range, conditional
// requests, cache headers, signed PUT uploads, refusals, aborted and failed downloads,
// and objects in a colder tier (Azurite).
const fs = require('node:fs')
const http = require('node:http')
const path = require('node:path')
const { StorageManager } = require('..')
const { freePort } = require('./servers/servers')
const { tmpDir, sha256, bytes, azureOptions, runPrefix, flipByteKeepingMtime } = require('./helpers')

const SECRET = 'middleware-test-secret-0123456789abcdef'
const DAY = 86_400_000

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

/** Waits up to `ms` for `check()` to hold. */
async function until(check, ms = 2000) {
  for (const end = Date.now() + ms; !check() && Date.now() < end; ) await sleep(20)
}

/** How many descriptors this process (the servers run in it) has open on `file`. */
function openFds(file) {
  return fs.readdirSync('/proc/self/fd').filter((fd) => {
    try {
      return fs.readlinkSync(`/proc/self/fd/${fd}`) === file
    } catch {
      return false // closed since the listing
    }
  }).length
}

/** A request as sent on the wire: status, raw headers (fetch hides Transfer-Encoding)
 * and body. */
function raw(url, headers) {
  return new Promise((resolve, reject) => {
    http.get(url, { headers, agent: false }, (res) => {
      const chunks = []
      res.on('data', (c) => chunks.push(c))
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }))
    }).on('error', reject)
  })
}

async function expressApp(storage, port) {
  const express = require('express')
  const { signedUrls } = require('../express')
  const app = express()
  app.use('/files', signedUrls(storage))
  app.use((req, res) => res.status(404).send('not ours'))
  const server = http.createServer(app)
  await new Promise((r) => server.listen(port, '127.0.0.1', r))
  return () => new Promise((r) => server.close(r))
}

async function honoApp(storage, port) {
  const { Hono } = require('hono')
  const { serve } = require('@hono/node-server')
  const { signedUrls } = require('../hono')
  const app = new Hono()
  app.use('/files/*', signedUrls(storage))
  app.all('*', (c) => c.text('not ours', 404))
  const server = await new Promise((resolve) => {
    const s = serve({ fetch: app.fetch, port, hostname: '127.0.0.1' }, () => resolve(s))
  })
  return () => new Promise((r) => server.close(r))
}

describe.each([
  ['express', expressApp],
  ['hono', honoApp],
])('%s middleware', (name, start) => {
  let storage
  let stop
  const local = tmpDir(`mw-${name}`)
  const data = bytes(100_000, 5)
  beforeAll(async () => {
    const port = await freePort()
    const az = azureOptions()
    storage = new StorageManager({
      local,
      mode: 'local',
      presign: { localBaseUrl: `http://127.0.0.1:${port}/files`, localSecret: SECRET },
      tiers: { cold: `${az.cloud}/${runPrefix(`mw-${name}-cold`)}`, coldOptions: az.cloudOptions },
    })
    await storage.put('scans/ct 1.dcm', data)
    stop = await start(storage, port)
  })
  afterAll(async () => {
    await stop()
    await storage.close()
  })

  test('GET serves the bytes with type, cache and ETag headers', async () => {
    const res = await fetch(storage.presignGet('scans/ct 1.dcm'))
    expect(res.status).toBe(200)
    expect(res.headers.get('content-type')).toBe('application/dicom')
    expect(res.headers.get('cache-control')).toBe('public, max-age=2592000, immutable')
    expect(res.headers.get('etag')).toBe(`"${sha256(data)}"`)
    expect(res.headers.get('accept-ranges')).toBe('bytes')
    expect(res.headers.get('x-content-type-options')).toBe('nosniff')
    expect(res.headers.get('content-security-policy')).toBeNull()
    expect(sha256(Buffer.from(await res.arrayBuffer()))).toBe(sha256(data))
  })

  test('If-None-Match → 304 without a body', async () => {
    const res = await fetch(storage.presignGet('scans/ct 1.dcm'), { headers: { 'if-none-match': `"${sha256(data)}"` } })
    expect(res.status).toBe(304)
    expect((await res.arrayBuffer()).byteLength).toBe(0)
  })

  test('Range requests: bounded, open-ended, suffix, unsatisfiable', async () => {
    const url = storage.presignGet('scans/ct 1.dcm')
    const get = (range) => fetch(url, { headers: { range } })
    let res = await get('bytes=10-19')
    expect(res.status).toBe(206)
    expect(res.headers.get('content-range')).toBe(`bytes 10-19/${data.length}`)
    expect(Buffer.compare(Buffer.from(await res.arrayBuffer()), data.subarray(10, 20))).toBe(0)
    res = await get(`bytes=${data.length - 5}-`)
    expect(Buffer.compare(Buffer.from(await res.arrayBuffer()), data.subarray(data.length - 5))).toBe(0)
    res = await get('bytes=-7')
    expect(Buffer.compare(Buffer.from(await res.arrayBuffer()), data.subarray(data.length - 7))).toBe(0)
    res = await get(`bytes=${data.length}-`)
    expect(res.status).toBe(416)
    expect(res.headers.get('content-range')).toBe(`bytes */${data.length}`)
    // Several ranges or another unit: the whole object, as RFC 9110 allows, not a 416.
    for (const range of ['bytes=0-1, 5-6', 'items=0-5']) {
      res = await get(range)
      expect(res.status).toBe(200)
      expect(sha256(Buffer.from(await res.arrayBuffer()))).toBe(sha256(data))
    }
  })

  test('conditional requests: If-Match, If-Unmodified-Since, If-Modified-Since, If-Range', async () => {
    const url = storage.presignGet('scans/ct 1.dcm')
    const etag = `"${sha256(data)}"`
    const modified = (await storage.head('scans/ct 1.dcm')).lastModified
    const date = (ms) => new Date(modified.getTime() + ms).toUTCString()
    const range = 'bytes=10-19'
    const answers = {
      200: [sha256(data), String(data.length)],
      206: [sha256(data.subarray(10, 20)), '10'],
      304: [sha256(''), null],
      412: [sha256(''), '0'],
    }
    const cases = [
      [{ 'if-match': etag }, 200],
      [{ 'if-match': `"other", ${etag}` }, 200],
      [{ 'if-match': '*' }, 200],
      [{ 'if-match': '"other"' }, 412],
      [{ 'if-match': `W/${etag}` }, 412], // strong comparison
      [{ 'if-match': etag, 'if-unmodified-since': date(-DAY) }, 200], // If-Match decides
      [{ 'if-unmodified-since': date(-DAY) }, 412],
      [{ 'if-unmodified-since': date(0) }, 200], // HTTP dates have whole seconds
      [{ 'if-unmodified-since': 'yesterday' }, 200], // not a date: ignored
      [{ 'if-modified-since': date(0) }, 304],
      [{ 'if-modified-since': date(DAY) }, 304],
      [{ 'if-modified-since': date(-DAY) }, 200],
      [{ 'if-modified-since': date(0), 'if-none-match': '"other"' }, 200], // If-None-Match decides
      [{ 'if-none-match': `W/${etag}` }, 304], // weak comparison
      [{ range, 'if-range': etag }, 206],
      [{ range, 'if-range': date(0) }, 206],
      [{ range, 'if-range': '"other"' }, 200],
      [{ range, 'if-range': `W/${etag}` }, 200],
      [{ range, 'if-range': date(-DAY) }, 200],
      [{ range: `bytes=${data.length}-`, 'if-range': '"other"' }, 200], // the Range is ignored, so no 416
      [{ range, 'if-range': '"other"', 'if-match': '"other"' }, 412],
    ]
    for (const [headers, status] of cases) {
      for (const method of ['GET', 'HEAD']) {
        const res = await fetch(url, { method, headers })
        const body = sha256(Buffer.from(await res.arrayBuffer()))
        const [sha, length] = answers[status]
        expect([method, headers, res.status, body, res.headers.get('content-length')])
          .toEqual([method, headers, status, method === 'HEAD' ? sha256('') : sha, length])
      }
    }
  })

  test('304, 412 and 416 carry no body; 412 and 416 have Content-Length: 0, not chunks', async () => {
    const url = storage.presignGet('scans/ct 1.dcm')
    const shape = (res) => [res.status, res.body.length, res.headers['transfer-encoding'], res.headers['content-length']]
    let res = await raw(url, { 'if-none-match': `"${sha256(data)}"` })
    expect(shape(res)).toEqual([304, 0, undefined, undefined])
    expect(res.headers.etag).toBe(`"${sha256(data)}"`)
    // A cache applies a 304's headers to the copy it keeps: a Content-Type there would
    // replace the object's. @hono/node-server 1.x adds `text/plain; charset=UTF-8` to
    // every response without one (honojs/node-server#341 stops that for null bodies).
    if (name === 'express') expect(res.headers['content-type']).toBeUndefined()
    res = await raw(url, { 'if-match': '"other"' })
    expect(shape(res)).toEqual([412, 0, undefined, '0'])
    res = await raw(url, { range: `bytes=${data.length}-` })
    expect(shape(res)).toEqual([416, 0, undefined, '0'])
    expect(res.headers['content-range']).toBe(`bytes */${data.length}`)
  })

  test('HEAD answers headers only', async () => {
    const res = await fetch(storage.presignGet('scans/ct 1.dcm'), { method: 'HEAD' })
    expect(res.status).toBe(200)
    expect(res.headers.get('content-length')).toBe(String(data.length))
  })

  test('signed PUT uploads stream into the store', async () => {
    const body = bytes(300_000, 9)
    const res = await fetch(storage.presignPut('uploads/new.png'), { method: 'PUT', body, headers: { 'content-type': 'image/png' } })
    expect(res.status).toBe(201)
    expect(res.headers.get('x-content-type-options')).toBe('nosniff')
    expect((await res.json()).sha256).toBe(sha256(body))
    expect(sha256(await storage.get('uploads/new.png'))).toBe(sha256(body))
    expect((await storage.head('uploads/new.png')).contentType).toBe('image/png')
  })

  test('in dual mode a PUT URL goes through the app, so the upload reaches both sides', async () => {
    // A URL straight to the cloud missed the local side: local-first reads served the
    // old bytes, and a migration from local copied them back over the upload.
    const port = await freePort()
    const az = azureOptions()
    const cloud = `${az.cloud}/${runPrefix(`mw-${name}-dual`)}`
    const dualLocal = tmpDir(`mw-${name}-dual`)
    const dual = new StorageManager({ local: dualLocal, mode: 'dual', ...az, cloud, presign: { localBaseUrl: `http://127.0.0.1:${port}/files`, localSecret: SECRET } })
    const stopDual = await start(dual, port)
    const cloudView = new StorageManager({ local: tmpDir(`mw-${name}-view`), mode: 'cloud', ...az, cloud })
    const bare = new StorageManager({ local: tmpDir(`mw-${name}-bare`), mode: 'dual', ...az, cloud })
    try {
      await dual.put('uploads/scan.bin', 'old bytes')
      const body = bytes(200_000, 11)
      const url = dual.presignPut('uploads/scan.bin')
      expect(url.startsWith(`http://127.0.0.1:${port}/files/`)).toBe(true)
      const res = await fetch(url, { method: 'PUT', body })
      expect(res.status).toBe(201)
      await expect(dual.pendingRepairs()).resolves.toBe(0)
      expect(sha256(fs.readFileSync(path.join(dualLocal, 'uploads', 'scan.bin')))).toBe(sha256(body))
      expect(sha256(await cloudView.get('uploads/scan.bin'))).toBe(sha256(body))
      // Without a base URL for the app, no URL reaches both sides.
      expect(() => bare.presignPut('uploads/other.bin')).toThrow(expect.objectContaining({ code: 'INVALID_CONFIG', message: expect.stringContaining('presign.localBaseUrl') }))
      expect(bare.presignGet('uploads/scan.bin')).toContain('sig=')
    } finally {
      await stopDual()
      for (const m of [dual, cloudView, bare]) await m.close()
    }
  })

  test('a PUT URL signed for a content type takes uploads of that type only', async () => {
    // Unsigned, the type was the uploader's choice: a URL meant for an image could
    // store text/html that the app then served from its own origin.
    const url = storage.presignPut('uploads/avatar.png', { contentType: 'image/png' })
    expect(url).toContain('X-Stowage-Content-Type=image%2Fpng')
    for (const headers of [{ 'content-type': 'text/html' }, {}]) {
      const res = await fetch(url, { method: 'PUT', body: '<script>alert(1)</script>', headers })
      expect(res.status).toBe(403)
      expect((await res.json()).code).toBe('SIGNATURE_INVALID')
    }
    await expect(storage.exists('uploads/avatar.png')).resolves.toBe(false)
    const body = bytes(2000, 3)
    const res = await fetch(url, { method: 'PUT', body, headers: { 'content-type': 'image/png' } })
    expect(res.status).toBe(201)
    expect(sha256(await storage.get('uploads/avatar.png'))).toBe(sha256(body))
    expect((await storage.head('uploads/avatar.png')).contentType).toBe('image/png')
    // An HTML upload (through a URL signed for it) runs sandboxed, not as the app.
    const page = storage.presignPut('uploads/page.html', { contentType: 'text/html; charset=utf-8' })
    expect((await fetch(page, { method: 'PUT', body: '<script>1</script>', headers: { 'content-type': 'text/html; charset=utf-8' } })).status).toBe(201)
    const served = await fetch(storage.presignGet('uploads/page.html'))
    expect(served.headers.get('content-type')).toBe('text/html; charset=utf-8')
    expect(served.headers.get('content-security-policy')).toBe('sandbox')
    for (const type of ['image/svg+xml', 'application/atom+xml', 'text/xml']) {
      await storage.put('uploads/feed', 'x', { contentType: type })
      expect([type, (await fetch(storage.presignGet('uploads/feed'))).headers.get('content-security-policy')]).toEqual([type, 'sandbox'])
    }
    // The type cannot be swapped in the URL either.
    const swapped = url.replace('image%2Fpng', 'text%2Fhtml')
    expect((await fetch(swapped, { method: 'PUT', body: 'x', headers: { 'content-type': 'text/html' } })).status).toBe(403)
  })

  test('a comma-separated type runs sandboxed when any of its types would run scripts', async () => {
    // A browser reads `image/png,text/html` as text/html (Fetch "extract a MIME type"
    // keeps the last type it parses); only the first type used to be checked.
    const types = [
      ['image/png,text/html', 'sandbox'],
      ['text/html,', 'sandbox'],
      ['text/plain, image/svg+xml; charset=utf-8', 'sandbox'],
      ['image/png, application/pdf', null],
    ]
    for (const [type, csp] of types) {
      await storage.put('uploads/mixed', 'x', { contentType: type })
      const res = await fetch(storage.presignGet('uploads/mixed'))
      expect([res.headers.get('content-type'), res.headers.get('content-security-policy')]).toEqual([type, csp])
      await res.arrayBuffer()
    }
  })

  test('a client that leaves mid-download releases the file at once', async () => {
    // `pipe` left an abandoned download's stream open, with its file (or S3
    // connection), until the garbage collector found it.
    const key = 'media/big.bin'
    await storage.put(key, Buffer.alloc(16 << 20, 7))
    const file = fs.realpathSync(path.join(local, key))
    const clients = await Promise.all([1, 2, 3, 4].map(() => new Promise((resolve, reject) => {
      const req = http.get(storage.presignGet(key), { agent: false }, (res) => {
        res.once('data', () => {
          res.pause()
          resolve(req)
        })
      })
      req.on('error', reject)
    })))
    expect(openFds(file)).toBe(clients.length)
    for (const req of clients) req.destroy()
    await until(() => openFds(file) === 0)
    expect(openFds(file)).toBe(0)
  })

  test('a damaged object is cut short, never served as a complete response', async () => {
    // Bit rot in the local file (size and mtime kept): the read fails INTEGRITY, and
    // the client must see an incomplete response, not all Content-Length bytes.
    const key = 'scans/rotten.bin'
    // 5 bytes past 1 MiB: the last chunk, held back until the SHA-256 is checked, is
    // shorter than any error text a server might write into the body in its place.
    const stored = bytes((1 << 20) + 5, 11)
    await storage.put(key, stored)
    flipByteKeepingMtime(path.join(local, key), 1000)
    const got = await fetch(storage.presignGet(key))
      .then((res) => res.arrayBuffer())
      .then((b) => `complete (${sha256(Buffer.from(b)) === sha256(stored) ? 'intact' : 'damaged'})`, () => 'cut short')
    expect(got).toBe('cut short')
  })

  test('a local signed URL serves an object from a colder tier, as get does', async () => {
    // Unlike a cloud presigned URL, which points at the hot store alone, it is served
    // by the middleware, which reads through the tiers.
    const key = 'archive/old.dcm'
    const old = bytes(50_000, 21)
    await storage.put(key, old)
    await storage.setTier(key, 'cold')
    expect(await storage.tierOf(key)).toBe('cold')
    expect(fs.existsSync(path.join(local, key))).toBe(false)
    const url = storage.presignGet(key)
    let res = await fetch(url)
    expect(res.status).toBe(200)
    expect(sha256(Buffer.from(await res.arrayBuffer()))).toBe(sha256(old))
    res = await fetch(url, { headers: { range: 'bytes=100-199' } })
    expect(res.status).toBe(206)
    expect(sha256(Buffer.from(await res.arrayBuffer()))).toBe(sha256(old.subarray(100, 200)))
  })

  test('an object rewritten between its head and its read is served as one version, headers and bytes', async () => {
    // The headers came from head() and the bytes from a second read: 200s with one
    // version's length and ETag and another's bytes.
    const port = await freePort()
    const signer = new StorageManager({ local, mode: 'local', presign: { localBaseUrl: `http://127.0.0.1:${port}/files`, localSecret: SECRET } })
    const version = (n) => bytes(50_000 + n * 1000, 70 + n)
    let rewrites = 0
    const racing = new Proxy(signer, {
      get(target, prop) {
        if (prop === 'head') {
          return async (key) => {
            const info = await target.head(key)
            if (rewrites > 0) await target.put(key, version(--rewrites))
            return info
          }
        }
        const value = target[prop]
        return typeof value === 'function' ? value.bind(target) : value
      },
    })
    const stopRacing = await start(racing, port)
    try {
      await signer.put('race/doc.bin', version(9))
      rewrites = 1
      const res = await fetch(signer.presignGet('race/doc.bin'))
      const body = Buffer.from(await res.arrayBuffer())
      expect(res.status).toBe(200)
      expect(`${res.headers.get('etag')} ${res.headers.get('content-length')}`).toBe(`"${sha256(body)}" ${body.length}`)
      expect(sha256(body)).toBe(sha256(version(0)))
      // Rewritten before every read: an honest 503, not a torn 200.
      rewrites = 3
      const busy = await fetch(signer.presignGet('race/doc.bin'))
      expect(busy.status).toBe(503)
      expect(busy.headers.get('retry-after')).toBe('1')
    } finally {
      await stopRacing()
      await signer.close()
    }
  })

  test('refusals: tampered, wrong method, expired, missing object, unsigned', async () => {
    const url = storage.presignGet('scans/ct 1.dcm')
    let res = await fetch(url.replace('ct%201', 'ct%202'))
    expect(res.status).toBe(403)
    expect((await res.json()).code).toBe('SIGNATURE_INVALID')
    res = await fetch(url, { method: 'PUT', body: 'x' })
    expect(res.status).toBe(403)
    res = await fetch(storage.presignGet('scans/missing.dcm'))
    expect(res.status).toBe(404)
    // The error names the key, which the signer chose: no browser may sniff it as HTML.
    expect(res.headers.get('content-type')).toMatch(/^application\/json\b/)
    expect(res.headers.get('x-content-type-options')).toBe('nosniff')
    const base = new URL(url)
    res = await fetch(`${base.origin}${base.pathname}`)
    expect(res.status).toBe(404)
    expect(await res.text()).toBe('not ours')
    // A query parameter of that name signs a request, not the text anywhere in the URL.
    for (const unsigned of [`${base.pathname}?q=X-Stowage-Signature=`, '/X-Stowage-Signature=1/a.txt']) {
      res = await fetch(`${base.origin}${unsigned}`)
      expect(`${res.status} ${await res.text()}`).toBe('404 not ours')
    }
    const short = storage.presignGet('scans/ct 1.dcm', { expiresIn: 1 })
    await new Promise((r) => setTimeout(r, 2100))
    res = await fetch(short)
    expect(res.status).toBe(403)
    expect((await res.json()).code).toBe('SIGNATURE_EXPIRED')
  })
})
