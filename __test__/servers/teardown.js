'use strict'
const { rmSync } = require('node:fs')
const { readFileSync } = require('node:fs')

module.exports = async function teardown() {
  for (const server of globalThis.__STOWAGE_SERVERS__ || []) await server.stop()
  const info = process.env.STOWAGE_TEST_SERVERS
  if (info) rmSync(JSON.parse(readFileSync(info, 'utf8')).work, { recursive: true, force: true })
}
