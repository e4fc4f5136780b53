'use strict'
// `stowage/hono`: the same as `stowage/express` for Hono (Node adapter or any
// runtime with Node streams).
//
//   const { signedUrls } = require('stowage/hono')
//   app.use('/files/*', signedUrls(storage))
const { Readable } = require('node:stream')
const { handleSigned } = require('./lib/signed-request')

function signedUrls(storage) {
  return async function stowageSignedUrls(c, next) {
    const req = c.req.raw
    const url = new URL(req.url)
    const headers = Object.fromEntries(req.headers)
    const body = req.body ? Readable.fromWeb(req.body) : Readable.from([])
    const answer = await handleSigned(storage, { method: req.method, url: url.pathname + url.search, headers, body })
    if (!answer) return next()
    let payload = null
    if (answer.body !== null) {
      payload = typeof answer.body.pipe === 'function' ? Readable.toWeb(answer.body) : JSON.stringify(answer.body)
    }
    return new Response(payload, { status: answer.status, headers: answer.headers })
  }
}

module.exports = { signedUrls }
