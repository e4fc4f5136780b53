'use strict'
// The example services, started as their own processes and driven over HTTP.
const { spawn } = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')
const { freePort } = require('./servers/servers')
const { tmpDir, sha256, bytes } = require('./helpers')

async function startExample(name) {
  const port = await freePort()
  const dataDir = tmpDir(`example-${name}`)
  const child = spawn(process.execPath, [path.join(__dirname, '..', 'examples', name, 'server.js')], {
    env: { ...process.env, PORT: String(port), DATA_DIR: dataDir, S3_BUCKET: '' },
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  await new Promise((resolve, reject) => {
    child.stdout.on('data', (d) => String(d).includes('listening') && resolve())
    child.on('exit', (code) => reject(new Error(`${name} exited with ${code}`)))
  })
  return { base: `http://127.0.0.1:${port}`, dataDir, stop: () => child.kill('SIGKILL') }
}

describe.each(['express', 'hono'])('examples/%s', (name) => {
  let app
  beforeAll(async () => {
    app = await startExample(name)
  })
  afterAll(() => app.stop())

  test('upload dual-writes, download redirects to a signed URL, health reports', async () => {
    const body = bytes(250_000, 21)
    const up = await fetch(`${app.base}/upload/reports/2026/scan.png`, { method: 'PUT', body, headers: { 'content-type': 'image/png' } })
    expect(up.status).toBe(201)
    expect(await up.json()).toMatchObject({ local: 'written', cloud: 'written', sha256: sha256(body) })
    for (const side of ['uploads', 'cloud']) {
      expect(sha256(fs.readFileSync(path.join(app.dataDir, side, 'reports/2026/scan.png')))).toBe(sha256(body))
    }

    const down = await fetch(`${app.base}/download/reports/2026/scan.png`, { redirect: 'manual' })
    expect(down.status).toBe(302)
    const signed = down.headers.get('location')
    expect(signed).toContain('X-Stowage-Signature=')
    const file = await fetch(signed)
    expect(file.status).toBe(200)
    expect(file.headers.get('content-type')).toBe('image/png')
    expect(sha256(Buffer.from(await file.arrayBuffer()))).toBe(sha256(body))

    expect((await fetch(`${app.base}/download/reports/none.png`, { redirect: 'manual' })).status).toBe(404)
    // A key the API refuses is the client's mistake: 400, not a 500 (as Hono gave).
    for (const bad of ['..%2Fetc%2Fpasswd', 'a%5Cb']) {
      const res = await fetch(`${app.base}/download/${bad}`, { redirect: 'manual' })
      expect([bad, res.status, (await res.json()).code]).toEqual([bad, 400, 'INVALID_KEY'])
    }
    // So is a content type stowage cannot store (the one from the extension is used
    // when there is none), and, on Express, a URL it cannot decode.
    const typed = await fetch(`${app.base}/upload/reports/typed.png`, { method: 'PUT', body: 'x', headers: { 'content-type': 'image/png\u00e9' } })
    expect([typed.status, (await typed.json()).code]).toEqual([400, 'INVALID_CONFIG'])
    const untyped = await fetch(`${app.base}/upload/reports/untyped.png`, { method: 'PUT', body: 'x', headers: { 'content-type': '' } })
    expect(untyped.status).toBe(201)
    const served = await fetch(`${app.base}/download/reports/untyped.png`)
    expect([served.status, served.headers.get('content-type')]).toEqual([200, 'image/png'])
    if (name === 'express') expect((await fetch(`${app.base}/download/%ZZ`, { redirect: 'manual' })).status).toBe(400)
    const health = await (await fetch(`${app.base}/health`)).json()
    expect(health).toMatchObject({ ok: true, pendingRepairs: 0 })
    expect(health.stats.local.writes).toBe(2)
    expect(health.stats.cloud.writes).toBe(2)
  })
})

describe('examples/express DICOM routes', () => {
  let app
  beforeAll(async () => {
    app = await startExample('express')
  })
  afterAll(() => app.stop())

  test('POST /studies ingests; the rendition and thumbnails are served as WebP', async () => {
    const dcm = fs.readFileSync(path.join(__dirname, '..', '..', 'shared', 'dicom', 'CT_small.dcm'))
    const res = await fetch(`${app.base}/studies`, { method: 'POST', body: dcm, headers: { 'content-type': 'application/dicom' } })
    expect(res.status).toBe(201)
    const { keys, modality, rows } = await res.json()
    expect(modality).toBe('CT')
    expect(rows).toBe(128)
    for (const side of ['uploads', 'cloud']) {
      expect(sha256(fs.readFileSync(path.join(app.dataDir, side, keys.original)))).toBe(sha256(dcm))
    }
    const [, study, series, file] = keys.original.split('/')
    const sop = file.replace(/\.dcm$/, '')
    for (const route of [`/studies/${study}/${series}/${sop}/image`, `/studies/${sop}/thumbnail/64`]) {
      const img = await fetch(`${app.base}${route}`)
      expect(img.status).toBe(200)
      expect(img.headers.get('content-type')).toBe('image/webp')
      const bytes = Buffer.from(await img.arrayBuffer())
      expect(bytes.subarray(0, 4).toString('latin1')).toBe('RIFF')
      expect(bytes.subarray(8, 12).toString('latin1')).toBe('WEBP')
    }
    const bad = await fetch(`${app.base}/studies`, { method: 'POST', body: Buffer.from('%PDF-1.7 not dicom') })
    expect(bad.status).toBe(400)
    expect((await bad.json()).code).toBe('DICOM_INVALID')
  })
})
