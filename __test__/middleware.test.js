'use strict'
// stowage/express and stowage/hono over real HTTP in real apps: Range, ETag → 304,
// cache headers, signed PUT uploads, and refusals.
const http = require('node:http')
const { StorageManager } = require('..')
const { freePort } = require('./servers/servers')
const { tmpDir, sha256, bytes } = require('./helpers')

const SECRET = 'middleware-test-secret-0123456789abcdef'

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
  const data = bytes(100_000, 5)
  beforeAll(async () => {
    const port = await freePort()
    storage = new StorageManager({
      local: tmpDir(`mw-${name}`),
      mode: 'local',
      presign: { localBaseUrl: `http://127.0.0.1:${port}/files`, localSecret: SECRET },
    })
    await storage.put('scans/ct 1.dcm', data)
    stop = await start(storage, port)
  })
  afterAll(() => stop())

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
    const short = storage.presignGet('scans/ct 1.dcm', { expiresIn: 1 })
    await new Promise((r) => setTimeout(r, 2100))
    res = await fetch(short)
    expect(res.status).toBe(403)
    expect((await res.json()).code).toBe('SIGNATURE_EXPIRED')
  })
})
