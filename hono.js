'use strict'
// `stowage/hono`: the same as `stowage/express` for Hono (Node adapter or any
// runtime with Node streams).
//
//   const { signedUrls } = require('stowage/hono')
//   app.use('/files/*', signedUrls(storage))
const { Readable, finished } = require('node:stream')
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
    if (answer.body !== null && typeof answer.body.pipe === 'function') {
      // On the Node adapter, tie the object's stream to the response as `pipeline`
      // does for Express: a client gone even before this answer releases the object
      // (a file, a connection) now, and a read that fails (INTEGRITY) closes the
      // socket at once; @hono/node-server would first write `Error: <message>` into
      // the body, where the client takes it for the object's last bytes. Listening
      // before `toWeb` puts this ahead of the adapter.
      const outgoing = c.env?.outgoing
      if (outgoing) {
        answer.body.once('error', () => outgoing.destroy())
        finished(outgoing, () => answer.body.destroy())
      }
      payload = Readable.toWeb(answer.body)
    } else if (answer.body !== null) {
      payload = JSON.stringify(answer.body)
    }
    return new Response(payload, { status: answer.status, headers: answer.headers })
  }
}

module.exports = { signedUrls }
