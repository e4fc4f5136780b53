'use strict'
// The `stowage` command line, run as a real process against the S3 test server.
const { execFile } = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')
const { StorageManager } = require('..')
const { tmpDir, sha256, bytes, writeTree, runPrefix, servers, s3Options, s3ObjectFile } = require('./helpers')

const BIN = path.join(__dirname, '..', 'bin', 'stowage.js')

function s3Env(overrides = {}) {
  const s3 = servers().s3
  return {
    ...process.env,
    S3_ENDPOINT: s3.endpoint,
    S3_ACCESS_KEY: s3.accessKeyId,
    S3_SECRET_KEY: s3.secretAccessKey,
    S3_REGION: s3.region,
    ...overrides,
  }
}

/** Runs the CLI; resolves with its exit code and output (never rejects on exit codes). */
function cli(args, env = s3Env()) {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { env }, (err, stdout, stderr) => {
      resolve({ code: err ? err.code : 0, stdout, stderr })
    })
  })
}

function tree(prefix, n) {
  const files = {}
  for (let i = 0; i < n; i++) files[`${prefix}/dir${i % 3}/f${i}.bin`] = bytes(3000 + i * 11, i + 1)
  return files
}

const bucket = () => `s3://${servers().s3.bucket}`
const cloudView = () => new StorageManager({ local: tmpDir('view'), mode: 'cloud', ...s3Options() })

test('migrate: dry run, progress in a log, a verified copy, resumable re-run, shards and --delete-source', async () => {
  const local = tmpDir('cli-mig')
  const prefix = runPrefix('cli')
  const files = tree(prefix, 30)
  writeTree(local, files)

  const dry = await cli(['migrate', local, bucket(), '--prefix', `${prefix}/`, '--dry-run'])
  expect(dry.code).toBe(0)
  expect(dry.stdout).toMatch(/^completed: would copy 30, skipped 0/m)
  expect(await cloudView().exists(Object.keys(files)[0])).toBe(false)

  const half = await cli(['migrate', local, bucket(), '--prefix', `${prefix}/`, '--shard', '0/2'])
  expect(half.code).toBe(0)
  const copiedByShard = Number(/copied (\d+)/.exec(half.stdout)[1])
  expect(copiedByShard).toBeGreaterThan(5)
  expect(copiedByShard).toBeLessThan(25)

  const run = await cli(['migrate', local, bucket(), '--prefix', `${prefix}/`, '--bwlimit', '10M'])
  expect(run.code).toBe(0)
  expect(run.stdout).toContain(`copied ${30 - copiedByShard}, skipped ${copiedByShard}`)
  // Not a terminal: plain progress lines, the last one at 100 %.
  expect(run.stderr).toMatch(/\[#+\] 100% 30\/30 files/)
  for (const [key, data] of Object.entries(files)) expect(sha256(await cloudView().get(key))).toBe(sha256(data))

  const verify = await cli(['verify', local, bucket(), '--prefix', `${prefix}/`])
  expect(verify).toMatchObject({ code: 0 })
  expect(verify.stdout).toContain('30 checked, 0 missing or different')

  const moved = await cli(['migrate', local, bucket(), '--prefix', `${prefix}/`, '--delete-source'])
  expect(moved).toMatchObject({ code: 0 })
  expect(moved.stdout).toContain('skipped 30')
  for (const key of Object.keys(files)) expect(fs.existsSync(path.join(local, key))).toBe(false)
})

test('an exported S3_BUCKET is not the cloud of the folder being verified', async () => {
  // The folder's manager took s3://$S3_BUCKET as its cloud and listed its objects as the folder's.
  const local = tmpDir('cli-verify-env')
  const prefix = runPrefix('ver-env')
  writeTree(local, tree(prefix, 2))
  expect((await cli(['migrate', local, bucket(), '--prefix', `${prefix}/`])).code).toBe(0)
  const view = cloudView()
  await view.put(`${prefix}/only-in-the-bucket.bin`, bytes(10, 3))
  const r = await cli(['verify', local, bucket(), '--prefix', `${prefix}/`], s3Env({ S3_BUCKET: servers().s3.bucket }))
  expect(r.stdout).toContain('2 checked, 0 missing or different')
  expect(r.code).toBe(0)
})

test('verify reports missing and different copies with exit code 1', async () => {
  const local = tmpDir('cli-verify')
  const prefix = runPrefix('ver')
  const files = tree(prefix, 4)
  writeTree(local, files)
  expect((await cli(['migrate', local, bucket(), '--prefix', `${prefix}/`])).code).toBe(0)
  const [changed, missing] = Object.keys(files)
  fs.writeFileSync(path.join(local, changed), bytes(files[changed].length, 999))
  await cloudView().delete(missing)
  const r = await cli(['verify', local, bucket(), '--prefix', `${prefix}/`])
  expect(r.code).toBe(1)
  expect(r.stdout).toContain(`MISSING ${missing}`)
  expect(r.stdout).toContain(`SHA-256 ${changed}`)
  expect(r.stdout).toContain('4 checked, 2 missing or different')

  // A copy damaged at rest keeps its size and recorded SHA-256: only --full reads it.
  const [, , damaged] = Object.keys(files)
  const stored = s3ObjectFile(damaged)
  const flipped = fs.readFileSync(stored)
  flipped[100] ^= 0xff
  fs.writeFileSync(stored, flipped)
  expect((await cli(['verify', local, bucket(), '--prefix', `${prefix}/`])).stdout).not.toContain(damaged)
  const full = await cli(['verify', local, bucket(), '--prefix', `${prefix}/`, '--full'])
  expect(full.code).toBe(1)
  expect(full.stdout).toContain(`DAMAGED ${damaged}`)
  expect(full.stdout).toContain('4 checked, 3 missing or different')
})

test('failures exit 1 without leaking the secret; bad usage exits 2', async () => {
  const local = tmpDir('cli-bad')
  writeTree(local, { 'a.txt': bytes(10) })
  const secret = 'definitely-wrong-secret-value-123'
  const denied = await cli(['migrate', local, bucket()], s3Env({ S3_SECRET_KEY: secret }))
  expect(denied.code).toBe(1)
  expect(denied.stdout).toContain('ACCESS_DENIED')
  expect(denied.stdout + denied.stderr).not.toContain(secret)

  // A mistyped folder was created, with a journal, and the run reported success.
  const typo = path.join(local, 'no-such-folder')
  for (const args of [['migrate', local], ['migrate', local, bucket(), '--shard', '3/2'], ['migrate', local, bucket(), '--bwlimit', 'fast'], ['frobnicate'], ['migrate', '--no-such-flag'], ['migrate', typo, bucket()], ['verify', typo, bucket()], ['verify', local, bucket(), '--journal', tmpDir('cli-journal-folder')]]) {
    const r = await cli(args)
    expect(`${args.join(' ')} → ${r.code}`).toBe(`${args.join(' ')} → 2`)
    expect(r.stderr).toMatch(/usage: stowage|INVALID_CONFIG/)
  }
  expect(fs.existsSync(typo)).toBe(false)

  // S3_USE_SSL as fromEnv reads it: OFF sent the first request to https://, and a
  // value it does not know was read as "yes".
  const hostPort = servers().s3.endpoint.replace('http://', '')
  const off = await cli(['verify', local, bucket()], s3Env({ S3_ENDPOINT: hostPort, S3_USE_SSL: 'OFF' }))
  expect(off.stdout).toContain('MISSING a.txt')
  const maybe = await cli(['verify', local, bucket()], s3Env({ S3_ENDPOINT: hostPort, S3_USE_SSL: 'maybe' }))
  expect(maybe.code).toBe(2)
  expect(maybe.stderr).toContain('S3_USE_SSL: "maybe" is not one of')
  // Empty variables are unset, as fromEnv reads them: S3_USE_SSL= was refused, and an
  // empty S3_REGION or S3_SECRET_KEY hid the AWS_* one behind it.
  const s3 = servers().s3
  const empty = s3Env({ S3_USE_SSL: '', S3_REGION: '', AWS_REGION: s3.region, S3_SECRET_KEY: '', AWS_SECRET_ACCESS_KEY: s3.secretAccessKey })
  const unset = await cli(['verify', local, bucket()], empty)
  expect(`${unset.code} ${unset.stderr}`).toBe('1 ')
  expect(unset.stdout).toContain('MISSING a.txt')
  // Messages name the variable to fix, not options a command line cannot set; and
  // S3_USE_SSL=true with an http:// endpoint is refused, as fromEnv refuses it.
  for (const [vars, named] of [
    [{ S3_REGION: 'us-east-1\nx' }, 'S3_REGION'],
    [{ S3_REGION: '', AWS_REGION: 'us-east-1\nx' }, 'AWS_REGION'],
    [{ S3_ENDPOINT: 'http://127.0.0.1:99999' }, 'S3_ENDPOINT'],
    [{ S3_USE_SSL: 'true' }, 'S3_USE_SSL'],
  ]) {
    const r = await cli(['verify', local, bucket()], s3Env(vars))
    expect(`${r.code} ${r.stderr}`).toMatch(new RegExp(`^2 stowage verify: INVALID_CONFIG: invalid ${named}[: ]`))
    expect(r.stderr).not.toContain('cloudOptions')
  }
})

test('repair, tier-cycle and stats', async () => {
  const local = tmpDir('cli-ops')
  const warm = tmpDir('cli-warm')
  const prefix = runPrefix('ops')
  // A dual write while the cloud is unreachable (nothing listens on port 9) is queued.
  const down = s3Options({ endpoint: 'http://127.0.0.1:9', maxRetries: 0, retryTimeoutMs: 100 })
  const storage = new StorageManager({ local, mode: 'dual', ...down })
  const queued = await storage.put(`${prefix}/a.bin`, bytes(2000, 1))
  expect(queued.cloud).toBe('queued')
  const repaired = await cli(['repair', local, bucket()])
  expect(repaired).toMatchObject({ code: 0 })
  expect(repaired.stdout).toContain('repaired 1, failed 0, still pending 0')
  // Its progress in a log counts keys replayed, failed ones too ("repaired 2/2" read as a
  // success when both failed), and keys (the migration's printer showed NaN MiB/s).
  expect(repaired.stderr).toBe('replayed 1/1 keys\n')
  expect(sha256(await cloudView().get(`${prefix}/a.bin`))).toBe(sha256(bytes(2000, 1)))

  const tiered = new StorageManager({ local, mode: 'cloud', ...s3Options(), tiers: { warm: `file://${warm}` } })
  await tiered.put(`${prefix}/c.bin`, bytes(5000, 3))
  const later = new Date(Date.now() + 40 * 86_400_000).toISOString()
  const cycle = await cli(['tier-cycle', local, bucket(), '--warm', `file://${warm}`, '--now', later])
  expect(cycle.code).toBe(0)
  expect(cycle.stdout).toMatch(/moved [1-9]\d* to warm/)
  expect(sha256(fs.readFileSync(path.join(warm, `${prefix}/c.bin`)))).toBe(sha256(bytes(5000, 3)))

  const stats = await cli(['stats', local, bucket(), '--warm', `file://${warm}`])
  expect(stats.code).toBe(0)
  expect(stats.stdout).toContain('pending repairs: 0')
  expect(stats.stdout).toMatch(/warm\s+[1-9]\d* objects/)
})
