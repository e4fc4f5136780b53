'use strict'
// `stowage/express`: serves local signed URLs (`presign.localBaseUrl`) with Range,
// conditional requests (ETag, dates → 304 / 412) and the object's Cache-Control;
// accepts signed PUT uploads.
//
//   const { signedUrls } = require('stowage/express')
//   app.use('/files', signedUrls(storage))
const { pipeline } = require('node:stream')
const { handleSigned } = require('./lib/signed-request')

function signedUrls(storage) {
  return function stowageSignedUrls(req, res, next) {
    handleSigned(storage, { method: req.method, url: req.originalUrl, headers: req.headers, body: req })
      .then((answer) => {
        if (!answer) return next()
        res.status(answer.status)
        for (const [name, value] of Object.entries(answer.headers)) res.setHeader(name, value)
        if (answer.body === null) return res.end()
        // Not `pipe`: a client that goes away must release the object (a file, a
        // connection) now, not at garbage collection, and a read that fails
        // (INTEGRITY) must cut the response short (its socket closed) rather than end
        // it cleanly. `pipeline` destroys the other side in both cases.
        if (typeof answer.body.pipe === 'function') return pipeline(answer.body, res, () => {})
        return res.json(answer.body)
      })
      .catch(next)
  }
}

module.exports = { signedUrls }
