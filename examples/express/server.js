'use strict'
// An upload/download service in the middle of a migration: every upload is written
// to local disk and to the cloud (dual-write), downloads go through signed URLs, and
// /health shows what is still waiting to reach both sides.
//
//   PORT=3000 DATA_DIR=./data node examples/express/server.js
// Without S3_BUCKET in the environment the "cloud" is a second local folder.
const path = require('node:path')
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

function createApp(storage) {
  const app = express()
  app.use('/files', signedUrls(storage))

  // PUT /upload/<key> with the file as the body; streamed, never buffered whole.
  app.put('/upload/*key', async (req, res, next) => {
    try {
      const key = req.params.key.join('/')
      const fs = require('node:fs')
      const os = require('node:os')
      const temp = path.join(os.tmpdir(), `upload-${process.pid}-${Date.now()}-${Math.random()}`)
      await require('node:stream/promises').pipeline(req, fs.createWriteStream(temp))
      const result = await storage.putFile(key, temp, { contentType: req.headers['content-type'] })
      fs.rm(temp, { force: true }, () => {})
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

  app.get('/health', async (req, res) => {
    res.json({ ok: true, pendingRepairs: await storage.pendingRepairs(), stats: storage.stats() })
  })

  app.use((err, req, res, _next) => res.status(err.code === 'INVALID_KEY' ? 400 : 500).json({ code: err.code, message: err.message }))
  return app
}

if (require.main === module) {
  const port = Number(process.env.PORT || 3000)
  const storage = createStorage({ dataDir: process.env.DATA_DIR || './data', baseUrl: `http://127.0.0.1:${port}` })
  storage.startRepairer({ intervalMs: 10_000 })
  createApp(storage).listen(port, '127.0.0.1', () => console.log(`listening on http://127.0.0.1:${port}`))
}

module.exports = { createApp, createStorage }
