'use strict'
// Starting and stopping the real servers. Used by the global setup and by fault
// tests that kill a server and start it again on the same port.
const { spawn } = require('node:child_process')
const { mkdirSync } = require('node:fs')
const net = require('node:net')
const path = require('node:path')
const { ROOT, s3sFsBinary } = require('./tools')

const S3_ACCESS_KEY = 'stowage-test-access'
const S3_SECRET_KEY = 'stowage-test-secret-0123456789'
const BUCKET = 'stowage-test'
const AZURITE_ACCOUNT = 'devstoreaccount1'
const AZURITE_KEY = 'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=='
const CONTAINER = 'stowage-test'

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer()
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address()
      srv.close(() => resolve(port))
    })
    srv.on('error', reject)
  })
}

async function waitForPort(port, child, name, timeoutMs = 60000) {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`${name} exited with ${child.exitCode}`)
    const ok = await new Promise((resolve) => {
      const sock = net.connect(port, '127.0.0.1', () => {
        sock.end()
        resolve(true)
      })
      sock.on('error', () => resolve(false))
    })
    if (ok) return
    await new Promise((r) => setTimeout(r, 100))
  }
  throw new Error(`${name} did not listen on ${port} within ${timeoutMs} ms`)
}

function stopper(child) {
  return () =>
    new Promise((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) return resolve()
      child.once('exit', () => resolve())
      child.kill('SIGKILL')
    })
}

/** s3s-fs: a real S3 server that checks SigV4 signatures; buckets are folders. */
async function startS3(dir, port) {
  mkdirSync(path.join(dir, BUCKET), { recursive: true })
  port = port || (await freePort())
  const child = spawn(
    s3sFsBinary(),
    ['--host', '127.0.0.1', '--port', String(port), '--access-key', S3_ACCESS_KEY, '--secret-key', S3_SECRET_KEY, dir],
    { stdio: ['ignore', 'ignore', 'inherit'] },
  )
  await waitForPort(port, child, 's3s-fs')
  const info = {
    dir,
    port,
    bucket: BUCKET,
    endpoint: `http://127.0.0.1:${port}`,
    accessKeyId: S3_ACCESS_KEY,
    secretAccessKey: S3_SECRET_KEY,
    region: 'us-east-1',
  }
  return { info, child, stop: stopper(child) }
}

/** Azurite's blob service, with the container the tests use. */
async function startAzurite(dir, port) {
  mkdirSync(dir, { recursive: true })
  port = port || (await freePort())
  const bin = path.join(ROOT, 'node_modules', '.bin', 'azurite-blob')
  const child = spawn(
    bin,
    ['--blobHost', '127.0.0.1', '--blobPort', String(port), '--location', dir, '--silent', '--skipApiVersionCheck', '--loose', '--disableTelemetry'],
    { stdio: ['ignore', 'ignore', 'inherit'] },
  )
  await waitForPort(port, child, 'azurite')
  const blobEndpoint = `http://127.0.0.1:${port}/${AZURITE_ACCOUNT}`
  const connectionString = `DefaultEndpointsProtocol=http;AccountName=${AZURITE_ACCOUNT};AccountKey=${AZURITE_KEY};BlobEndpoint=${blobEndpoint};`
  const { BlobServiceClient } = require('@azure/storage-blob')
  await BlobServiceClient.fromConnectionString(connectionString).getContainerClient(CONTAINER).createIfNotExists()
  const info = { dir, port, container: CONTAINER, connectionString, blobEndpoint }
  return { info, child, stop: stopper(child) }
}

module.exports = { startS3, startAzurite, freePort }
