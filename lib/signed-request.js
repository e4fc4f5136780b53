'use strict'
// What the `stowage/express` and `stowage/hono` middleware have in common: serving
// a request that carries a local signed URL. Framework-free: takes the method, URL,
// headers and body, and answers `{ status, headers, body }` where `body` is a Node
// Readable, a JSON-able object or null.
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const crypto = require('node:crypto')
const { pipeline } = require('node:stream/promises')

const SIGNATURE_PARAM = 'X-Stowage-Signature'

/** Whether the query names the signature: the text alone may be in a path or a value. */
function isSigned(url) {
  const query = url.indexOf('?')
  return query !== -1 && new URLSearchParams(url.slice(query + 1).split('#')[0]).has(SIGNATURE_PARAM)
}

/** Headers of every JSON answer: a browser must not sniff an error that echoes a key
 * into a document. A new object each time: a framework may add to it. */
function jsonHeaders() {
  return { 'content-type': 'application/json', 'x-content-type-options': 'nosniff' }
}

function errorResponse(status, err) {
  return { status, headers: jsonHeaders(), body: { code: err.code, message: err.message } }
}

const STATUS_OF = { SIGNATURE_INVALID: 403, SIGNATURE_EXPIRED: 403, NOT_FOUND: 404, INVALID_KEY: 400, INVALID_CONFIG: 400, ALREADY_EXISTS: 409, INTEGRITY: 422 }

/**
 * `bytes=a-b`, `bytes=a-` or `bytes=-n` against `size`; `null` when unsatisfiable.
 * `undefined` when absent or in a form served whole instead (several ranges, another
 * unit): RFC 9110 section 14.2 lets a server ignore a Range header.
 */
function parseRange(header, size) {
  if (!header) return undefined
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim())
  if (!m) return undefined
  if (m[1] === '' && m[2] === '') return null
  let start
  let end
  if (m[1] === '') {
    const suffix = Number(m[2])
    if (suffix === 0) return null
    start = Math.max(0, size - suffix)
    end = size - 1
  } else {
    start = Number(m[1])
    end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1)
  }
  if (start >= size || end < start) return null
  return { start, end }
}

/** Types a browser opens as a document that can run scripts: HTML, and any XML (an
 * XHTML `<script>` runs in an `application/atom+xml` document too). */
const RUNS_SCRIPTS = /^\s*(text\/html|text\/xml|[a-z]+\/([^;\s]+\+)?xml)\s*(;|$)/i

/** Whether any part of a comma-separated type runs scripts: a browser reads
 * `image/png,text/html` as `text/html` (Fetch "extract a MIME type" keeps the last
 * type it can parse). */
function runsScripts(type) {
  return String(type).split(',').some((part) => RUNS_SCRIPTS.test(part))
}

function etagOf(info) {
  return `"${info.sha256 || (info.etag || '').replace(/"/g, '') || `${info.size}-${info.lastModified.getTime()}`}"`
}

/** Whether an If-Match / If-None-Match list names `etag` (`*` names any object). Only
 * If-None-Match compares weakly, taking `W/"…"` for `"…"` (RFC 9110 section 8.8.3.2). */
function matchesEtag(header, etag, weak) {
  return header.split(',').some((t) => {
    const tag = t.trim()
    return tag === '*' || tag === etag || (weak && tag === `W/${etag}`)
  })
}

/** If-Range holds for an entity tag equal to `etag` (strong comparison: never a weak
 * tag) or for the exact Last-Modified date; otherwise the Range is ignored. */
function ifRangeHolds(header, etag, lastModified) {
  if (header === undefined) return true
  const value = header.trim()
  return /^(W\/)?"/.test(value) ? value === etag : Date.parse(value) === lastModified
}

/** Reads of an object rewritten between its `head()` and its opening, in a row,
 * before the request is answered 503: each would have sent one version's headers
 * with another's bytes. */
const VERSION_ATTEMPTS = 3

async function serveGet(storage, key, method, headers) {
  for (let attempt = 1; attempt <= VERSION_ATTEMPTS; attempt++) {
    const info = await storage.head(key)
    const { range, ...answer } = respond(info, method, headers)
    if (answer.body === null) return answer
    // The response's headers describe `info`: the bytes must be that version's.
    const { info: opened, stream } = await storage.openReadStream(key, range)
    if (etagOf(opened) === etagOf(info) && opened.size === info.size) return { ...answer, body: stream }
    stream.destroy()
  }
  return { status: 503, headers: { 'retry-after': '1', 'content-length': '0' }, body: null }
}

/** The answer to a GET or HEAD of the object `info` describes: with `body: null`, or
 * with the `range` of it to stream (`undefined`: all of it). */
function respond(info, method, headers) {
  const etag = etagOf(info)
  const common = {
    etag,
    'cache-control': info.cacheControl,
    'last-modified': info.lastModified.toUTCString(),
    'accept-ranges': 'bytes',
    'x-content-type-options': 'nosniff',
  }
  // Uploads are served from the app's own origin: an uploaded HTML or SVG file must
  // not run there with the app's cookies (stored XSS). Other types keep their viewers
  // (a browser's PDF viewer does not open in a sandbox).
  if (runsScripts(info.contentType)) common['content-security-policy'] = 'sandbox'

  // Preconditions in the order of RFC 9110 section 13.2.2, as serve-static has them.
  // HTTP dates have whole seconds; an invalid or absent one parses to NaN, never true.
  const lastModified = Math.floor(info.lastModified.getTime() / 1000) * 1000
  const unchanged = headers['if-match'] === undefined
    ? !(lastModified > Date.parse(headers['if-unmodified-since']))
    : matchesEtag(headers['if-match'], etag, false)
  if (!unchanged) return { status: 412, headers: { 'content-length': '0' }, body: null }
  const notModified = headers['if-none-match'] === undefined
    ? lastModified <= Date.parse(headers['if-modified-since'])
    : matchesEtag(headers['if-none-match'], etag, true)
  if (notModified) return { status: 304, headers: common, body: null }
  // A Range for a representation the client no longer has would splice two versions.
  const range = ifRangeHolds(headers['if-range'], etag, lastModified) ? parseRange(headers.range, info.size) : undefined
  if (range === null) {
    return { status: 416, headers: { ...common, 'content-range': `bytes */${info.size}`, 'content-length': '0' }, body: null }
  }
  const length = range ? range.end - range.start + 1 : info.size
  const out = { ...common, 'content-type': info.contentType, 'content-length': String(length) }
  if (range) out['content-range'] = `bytes ${range.start}-${range.end}/${info.size}`
  const status = range ? 206 : 200
  if (method === 'HEAD' || length === 0) return { status, headers: out, body: null }
  return { status, headers: out, range }
}

/** Streams the upload to a temporary file, then `putFile`: memory stays flat. */
async function servePut(storage, key, headers, body) {
  const temp = path.join(os.tmpdir(), `stowage-upload-${process.pid}-${crypto.randomBytes(8).toString('hex')}`)
  try {
    await pipeline(body, fs.createWriteStream(temp))
    const contentType = headers['content-type']
    const r = await storage.putFile(key, temp, contentType ? { contentType } : undefined)
    return { status: 201, headers: { ...jsonHeaders(), etag: `"${r.sha256}"` }, body: r }
  } finally {
    fs.rm(temp, { force: true }, () => {})
  }
}

/**
 * Serves one signed request. `body` (PUT only) is an async iterable of chunks.
 * Answers `null` when the request carries no stowage signature (not ours).
 */
async function handleSigned(storage, { method, url, headers, body }) {
  if (!isSigned(url)) return null
  const signedMethod = method === 'HEAD' ? 'GET' : method
  if (signedMethod !== 'GET' && signedMethod !== 'PUT') return { status: 405, headers: { allow: 'GET, HEAD, PUT' }, body: null }
  try {
    // An upload URL signed for a content type is good only with that type.
    const key = storage.verifySignedUrl(url, signedMethod, { contentType: headers['content-type'] })
    return signedMethod === 'PUT' ? await servePut(storage, key, headers, body) : await serveGet(storage, key, method, headers)
  } catch (err) {
    const status = STATUS_OF[err.code]
    if (!status) throw err
    return errorResponse(status, err)
  }
}

module.exports = { handleSigned, parseRange }
