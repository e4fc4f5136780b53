'use strict'
// Jest global setup: real servers on free loopback ports, described to the tests
// through STOWAGE_TEST_SERVERS (a JSON file path).
const { mkdtempSync, mkdirSync, writeFileSync } = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { startS3, startAzurite } = require('./servers')

module.exports = async function setup() {
  const work = mkdtempSync(path.join(os.tmpdir(), 'stowage-test-'))
  const s3 = await startS3(path.join(work, 's3'))
  const azure = await startAzurite(path.join(work, 'azurite'))
  globalThis.__STOWAGE_SERVERS__ = [s3, azure]
  const info = path.join(work, 'servers.json')
  writeFileSync(info, JSON.stringify({ work, s3: s3.info, azure: azure.info }, null, 2))
  process.env.STOWAGE_TEST_SERVERS = info
  mkdirSync(path.join(work, 'tmp'), { recursive: true })
}
