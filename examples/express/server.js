'use strict'
// An upload/download service in the middle of a migration: every upload is written
// to local disk and to the cloud (dual-write), downloads go through signed URLs, and
// /health shows what is still waiting to reach both sides. POST /studies ingests a
// DICOM file and serves its WebP rendition and thumbnails.
//
//   PORT=3000 DATA_DIR=./data node examples/express/server.js
// Without S3_BUCKET in the environment the "cloud" is a second local folder.
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { pipeline } = require('node:stream/promises')
const express = require('express')
const { StorageManager } = require('../..')
const { signedUrls } = require('../../express')

function createStorage({ dataDir, baseUrl }) {
  return new StorageManager({
    local: path.join(dataDir, 'uploads'),
    cloud: process.env.S3_BUCKET ? undefined : `file://${path.resolve(dataDir, 'cloud')}`,
    mode: 'dual',
    presign: { localBaseUrl: `${baseUrl}/files`, localSecret: process.env.STOWAGE_SECRET || 'example-secret-change-me-0123456789abcdef' },
    onEvent: (e) => e.code && console.error(`[stowage] ${e.type} ${e.key}: ${e.code}`),
  })
}

/** Streams a request body to a temporary file, runs `use(file)`, and removes the file. */
async function withBodyInFile(req, use) {
  const temp = path.join(os.tmpdir(), `upload-${process.pid}-${Date.now()}-${Math.random()}`)
  try {
    await pipeline(req, fs.createWriteStream(temp))
    return await use(temp)
  } finally {
    fs.rm(temp, { force: true }, () => {})
  }
}

/** The client's mistakes are 400s (a key, a content type or a DICOM file stowage
 * refuses), a cloud that is down or a key waiting for its repair 503s. */
function statusOf(err) {
  const status = { INVALID_KEY: 400, INVALID_CONFIG: 400, DICOM_INVALID: 400, DICOM_UNSUPPORTED: 400, UNAVAILABLE: 503, TIMEOUT: 503 }
  return status[err.code] ?? 500
}

function createApp(storage) {
  const app = express()
  app.use('/files', signedUrls(storage))

  // PUT /upload/<key> with the file as the body; streamed, never buffered whole.
  app.put('/upload/*key', async (req, res, next) => {
    try {
      const key = req.params.key.join('/')
      const contentType = req.headers['content-type'] || undefined
      const result = await withBodyInFile(req, (file) => storage.putFile(key, file, { contentType }))
      res.status(201).json(result)
    } catch (err) {
      next(err)
    }
  })

  // GET /download/<key> → 302 to a short-lived signed URL.
  app.get('/download/*key', async (req, res, next) => {
    try {
      const key = req.params.key.join('/')
      if (!(await storage.exists(key))) return res.status(404).json({ code: 'NOT_FOUND' })
      res.redirect(302, storage.presignGet(key, { expiresIn: 300 }))
    } catch (err) {
      next(err)
    }
  })

  // POST /studies with a DICOM file as the body: stored with its WebP rendition and
  // 256/64 px thumbnails, through the same dual-write.
  app.post('/studies', async (req, res, next) => {
    try {
      const { keys, metadata } = await withBodyInFile(req, (file) => storage.ingestDicom(file))
      res.status(201).json({ keys, modality: metadata.modality, rows: metadata.rows, columns: metadata.columns })
    } catch (err) {
      next(err)
    }
  })

  // Renditions and thumbnails are served through short-lived signed URLs.
  const redirectTo = async (res, key) => {
    if (!(await storage.exists(key))) return res.status(404).json({ code: 'NOT_FOUND' })
    res.redirect(302, storage.presignGet(key, { expiresIn: 300 }))
  }
  app.get('/studies/:study/:series/:sop/image', (req, res, next) => {
    const { study, series, sop } = req.params
    redirectTo(res, `images/${study}/${series}/${sop}.webp`).catch(next)
  })
  app.get('/studies/:sop/thumbnail/:size', (req, res, next) => {
    if (!['256', '64'].includes(req.params.size)) return res.status(400).json({ code: 'INVALID_SIZE' })
    redirectTo(res, `thumbnails/${req.params.sop}_${req.params.size}.webp`).catch(next)
  })

  app.get('/health', async (req, res) => {
    res.json({ ok: true, pendingRepairs: await storage.pendingRepairs(), stats: storage.stats() })
  })

  // Express's own errors (a URL it cannot decode) carry their status.
  app.use((err, req, res, _next) => res.status(err.status ?? statusOf(err)).json({ code: err.code, message: err.message }))
  return app
}

if (require.main === module) {
  const port = Number(process.env.PORT || 3000)
  const storage = createStorage({ dataDir: process.env.DATA_DIR || './data', baseUrl: `http://127.0.0.1:${port}` })
  storage.startRepairer({ intervalMs: 10_000 })
  const server = createApp(storage).listen(port, '127.0.0.1', () => console.log(`listening on http://127.0.0.1:${port}`))
  // Graceful shutdown: stop taking requests, let the uploads in flight reach both sides.
  for (const signal of ['SIGINT', 'SIGTERM']) {
    process.once(signal, () => server.close(() => storage.close().then(() => process.exit(0))))
  }
}

module.exports = { createApp, createStorage }
