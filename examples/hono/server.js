'use strict'
// The dual-write migration service of examples/express, on Hono: uploads go to
// local disk and the cloud at once, downloads through signed URLs, /health shows
// the repair backlog.
//
//   PORT=3000 DATA_DIR=./data node examples/hono/server.js
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { Readable } = require('node:stream')
const { pipeline } = require('node:stream/promises')
const { Hono } = require('hono')
const { serve } = require('@hono/node-server')
const { StorageManager } = require('../..')
const { signedUrls } = require('../../hono')

/** The client's mistakes are 400s (a key or a content type stowage refuses), a cloud
 * that is down or a key waiting for its repair 503s. */
function statusOf(err) {
  const status = { INVALID_KEY: 400, INVALID_CONFIG: 400, UNAVAILABLE: 503, TIMEOUT: 503 }
  return status[err.code] ?? 500
}

function createApp({ dataDir, baseUrl }) {
  const storage = new StorageManager({
    local: path.join(dataDir, 'uploads'),
    cloud: process.env.S3_BUCKET ? undefined : `file://${path.resolve(dataDir, 'cloud')}`,
    mode: 'dual',
    presign: { localBaseUrl: `${baseUrl}/files`, localSecret: process.env.STOWAGE_SECRET || 'example-secret-change-me-0123456789abcdef' },
  })
  const app = new Hono()
  app.use('/files/*', signedUrls(storage))

  app.put('/upload/:key{.+}', async (c) => {
    const temp = path.join(os.tmpdir(), `upload-${process.pid}-${Date.now()}-${Math.random()}`)
    try {
      await pipeline(Readable.fromWeb(c.req.raw.body), fs.createWriteStream(temp))
      const result = await storage.putFile(c.req.param('key'), temp, { contentType: c.req.header('content-type') || undefined })
      return c.json(result, 201)
    } catch (err) {
      return c.json({ code: err.code, message: err.message }, statusOf(err))
    } finally {
      fs.rm(temp, { force: true }, () => {})
    }
  })

  app.get('/download/:key{.+}', async (c) => {
    const key = c.req.param('key')
    try {
      if (!(await storage.exists(key))) return c.json({ code: 'NOT_FOUND' }, 404)
      return c.redirect(storage.presignGet(key, { expiresIn: 300 }), 302)
    } catch (err) {
      return c.json({ code: err.code, message: err.message }, statusOf(err))
    }
  })

  app.get('/health', async (c) => c.json({ ok: true, pendingRepairs: await storage.pendingRepairs(), stats: storage.stats() }))
  return { app, storage }
}

if (require.main === module) {
  const port = Number(process.env.PORT || 3000)
  const { app, storage } = createApp({ dataDir: process.env.DATA_DIR || './data', baseUrl: `http://127.0.0.1:${port}` })
  storage.startRepairer({ intervalMs: 10_000 })
  serve({ fetch: app.fetch, port, hostname: '127.0.0.1' }, () => console.log(`listening on http://127.0.0.1:${port}`))
}

module.exports = { createApp }
