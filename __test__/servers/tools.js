'use strict'
// Locates (and when missing, installs) the S3 server the tests run against.
const { existsSync, mkdirSync } = require('node:fs')
const { execFileSync } = require('node:child_process')
const path = require('node:path')

const ROOT = path.join(__dirname, '..', '..')
const TOOLS = process.env.STOWAGE_TOOLS_DIR || path.join(ROOT, '.tools')
const S3S_VERSION = '0.14.1'

function s3sFsBinary() {
  const bin = path.join(TOOLS, 'bin', 's3s-fs')
  if (!existsSync(bin)) {
    mkdirSync(TOOLS, { recursive: true })
    console.log(`installing s3s-fs ${S3S_VERSION} into ${TOOLS} (once)`)
    execFileSync(
      'cargo',
      ['install', 's3s-fs', '--version', S3S_VERSION, '--features', 'binary', '--locked', '--root', TOOLS],
      { stdio: 'inherit' },
    )
  }
  return bin
}

module.exports = { ROOT, s3sFsBinary }
