'use strict'
// `stowage/express`: serves local signed URLs (`presign.localBaseUrl`) with Range,
// ETag / If-None-Match → 304 and the object's Cache-Control; accepts signed PUT uploads.
//
//   const { signedUrls } = require('stowage/express')
//   app.use('/files', signedUrls(storage))
const { handleSigned } = require('./lib/signed-request')

function signedUrls(storage) {
  return function stowageSignedUrls(req, res, next) {
    handleSigned(storage, { method: req.method, url: req.originalUrl, headers: req.headers, body: req })
      .then((answer) => {
        if (!answer) return next()
        res.status(answer.status)
        for (const [name, value] of Object.entries(answer.headers)) res.setHeader(name, value)
        if (answer.body === null) return res.end()
        if (typeof answer.body.pipe === 'function') {
          answer.body.on('error', (err) => res.destroy(err))
          return answer.body.pipe(res)
        }
        return res.json(answer.body)
      })
      .catch(next)
  }
}

module.exports = { signedUrls }
