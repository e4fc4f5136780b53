'use strict'
const crypto = require('node:crypto')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { StorageManager } = require('..')
const { execFileSync, spawn } = require('node:child_process')
const { startS3 } = require('./servers/servers')

function servers() {
  return JSON.parse(fs.readFileSync(process.env.STOWAGE_TEST_SERVERS, 'utf8'))
}

function tmpDir(label) {
  return fs.mkdtempSync(path.join(servers().work, 'tmp', `${label}-`))
}

const sha256 = (data) => crypto.createHash('sha256').update(data).digest('hex')

/** Deterministic pseudo-random bytes, so a failure reproduces. */
function bytes(n, seed = 1) {
  const out = Buffer.alloc(n)
  let x = seed >>> 0 || 1
  for (let i = 0; i < n; i++) {
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    out[i] = x & 0xff
  }
  return out
}

/** When legacy trees were written: long enough ago that a file's mtime shows any
 * rewrite (a file modified within the last 2 s is one stowage re-checks by content). */
const LEGACY_MTIME = new Date('2024-01-02T03:04:05Z')

/** Writes `files` ({ key: Buffer }) under `root` with plain fs, as a legacy app did. */
function writeTree(root, files, mtime = LEGACY_MTIME) {
  for (const [key, data] of Object.entries(files)) {
    const file = path.join(root, key)
    fs.mkdirSync(path.dirname(file), { recursive: true })
    fs.writeFileSync(file, data)
    fs.utimesSync(file, mtime, mtime)
  }
}

/** A unique prefix per test run, so stores shared by several suites never collide. */
const runPrefix = (label) => `${label}-${process.pid}-${crypto.randomBytes(4).toString('hex')}`

/** Manager options for the S3 server `s3` (the suites' shared one by default). */
function s3Options(extra = {}, s3 = servers().s3) {
  return {
    cloud: `s3://${s3.bucket}`,
    cloudOptions: {
      endpoint: s3.endpoint,
      region: s3.region,
      accessKeyId: s3.accessKeyId,
      secretAccessKey: s3.secretAccessKey,
      allowHttp: true,
      maxRetries: 1,
      retryTimeoutMs: 2000,
      ...extra,
    },
  }
}

function azureOptions(extra = {}) {
  const az = servers().azure
  return {
    cloud: `az://${az.container}`,
    cloudOptions: { connectionString: az.connectionString, maxRetries: 1, retryTimeoutMs: 2000, ...extra },
  }
}

/** A manager whose only side is the store of `kind`, as the conformance suite needs. */
function cloudOnly(kind, extra = {}) {
  const local = tmpDir(`local-${kind}`)
  switch (kind) {
    case 'file':
      return new StorageManager({ local, mode: 'local', ...extra })
    case 'memory':
      return new StorageManager({ local, cloud: 'memory://', mode: 'cloud', ...extra })
    case 's3':
      return new StorageManager({ local, mode: 'cloud', ...s3Options(), ...extra })
    case 'azure':
      return new StorageManager({ local, mode: 'cloud', ...azureOptions(), ...extra })
    default:
      throw new Error(`unknown store ${kind}`)
  }
}

/** Where the s3s-fs server `s3` (the suites' shared one by default) keeps the bytes of
 * `key`: a plain file in its folder. */
function s3ObjectFile(key, s3 = servers().s3) {
  return path.join(s3.dir, s3.bucket, key)
}

/** Calls `storage[method](...args)` on a `new StorageManager(manager)` in a process of
 * its own (fixtures/caller.js), so a test can kill it mid-call. `done` resolves to its
 * exit code and the call's result. */
function callElsewhere(manager, method, args) {
  const call = JSON.stringify({ manager, method, args })
  const child = spawn(process.execPath, [path.join(__dirname, 'fixtures', 'caller.js'), call], { stdio: ['ignore', 'pipe', 'inherit'] })
  let out = ''
  child.stdout.on('data', (chunk) => (out += chunk))
  const done = new Promise((resolve) => child.on('exit', (code) => resolve({ code, result: out && JSON.parse(out) })))
  return { child, done }
}

/** Options for a test's own S3 server, which it stops and starts: quick to give up. */
const s3OptionsFor = (info) => s3Options({ retryTimeoutMs: 500, requestTimeoutMs: 5000 }, info)

/** The local addresses of this machine's established TCP connections to `port`. */
function connectionsTo(port) {
  const remote = `:${port.toString(16).toUpperCase().padStart(4, '0')}`
  return fs
    .readFileSync('/proc/net/tcp', 'utf8')
    .split('\n')
    .map((line) => line.trim().split(/\s+/))
    .filter((fields) => fields[2]?.endsWith(remote) && fields[3] === '01')
    .map((fields) => fields[1])
}

/** Stops the test's own S3 server `server` (SIGSTOP) until `server.child.kill('SIGCONT')`.
 * Returns a function that resolves once a new connection reached it: a request is
 * then in flight, held until the server goes on. */
function stopServer(server) {
  server.child.kill('SIGSTOP')
  // The startup probe's connection may not have closed yet.
  const before = connectionsTo(server.info.port)
  return async function requestHeld() {
    while (connectionsTo(server.info.port).every((local) => before.includes(local))) {
      await new Promise((resolve) => setTimeout(resolve, 5))
    }
  }
}

/** Runs `body` against an S3 server of its own, which it may stop: `opts` are manager
 * options for it, `restart()` starts it again on the same port and folder, `open(options)`
 * opens a manager. Afterwards every manager is closed and every server stopped. */
async function withOwnS3(label, body) {
  const server = await startS3(path.join(tmpDir(`s3-${label}`), 'data'))
  const servers = [server]
  const managers = []
  const open = (options) => {
    managers.push(new StorageManager(options))
    return managers[managers.length - 1]
  }
  const restart = async () => {
    servers.push(await startS3(server.info.dir, server.info.port))
    return servers[servers.length - 1]
  }
  try {
    await body({ server, opts: s3OptionsFor(server.info), restart, open })
  } finally {
    for (const s of servers) s.child.kill('SIGCONT')
    for (const m of managers) await m.close()
    for (const s of servers) await s.stop()
  }
}

/** Overwrites one byte of `file`, keeping its size and (to the nanosecond) its mtime,
 * as bit rot would. */
function flipByteKeepingMtime(file, offset) {
  const { mtimeNs } = fs.statSync(file, { bigint: true })
  const fd = fs.openSync(file, 'r+')
  const one = Buffer.alloc(1)
  fs.readSync(fd, one, 0, 1, offset)
  one[0] ^= 0xff
  fs.writeSync(fd, one, 0, 1, offset)
  fs.closeSync(fd)
  const ns = String(mtimeNs % 1_000_000_000n).padStart(9, '0')
  execFileSync('touch', ['-m', '-d', `@${mtimeNs / 1_000_000_000n}.${ns}`, file])
  if (fs.statSync(file, { bigint: true }).mtimeNs !== mtimeNs) throw new Error(`could not restore the mtime of ${file}`)
}

module.exports = { servers, tmpDir, sha256, bytes, writeTree, runPrefix, s3Options, azureOptions, cloudOnly, s3ObjectFile, callElsewhere, flipByteKeepingMtime, stopServer, connectionsTo, withOwnS3 }
