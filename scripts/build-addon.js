#!/usr/bin/env node
// Builds the native addon from source when this is a git checkout (npm's `prepare`).
// Installs from the registry get the prebuilt per-platform package instead.
'use strict'
const { existsSync } = require('node:fs')
const { execFileSync } = require('node:child_process')
const path = require('node:path')

const root = path.join(__dirname, '..')
if (!existsSync(path.join(root, 'Cargo.toml'))) process.exit(0)
const built = existsSync(path.join(root, `stowage.${process.platform}-${process.arch}-gnu.node`))
if (built && !process.argv.includes('--force') && !process.env.CI) {
  // cargo would only confirm nothing changed; `npm run build` rebuilds on demand.
  // On stderr: `npm pack --json` runs this first, and its stdout must stay JSON.
  console.error('stowage: native addon present (npm run build to rebuild)')
  process.exit(0)
}
execFileSync('npx', ['napi', 'build', '--platform', '--release'], { cwd: root, stdio: 'inherit' })
