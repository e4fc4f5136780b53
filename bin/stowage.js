#!/usr/bin/env node
'use strict'
// The `stowage` command line: migrate, verify, repair, tier-cycle, stats.
// Cloud credentials come from the environment (S3_* / AWS_* / AZURE_STORAGE_*), never
// from arguments, so they stay out of shell history and process listings.
const crypto = require('node:crypto')
const fs = require('node:fs')
const { parseArgs } = require('node:util')
const { StorageManager } = require('..')

const USAGE = `usage: stowage <command> [options]

  migrate <from> <to>     copy every file under <from> (a folder) to <to> (a store URL),
                          verified by SHA-256; re-run to resume
      --prefix P  --concurrency N  --verify sha256|full  --dry-run
      --bwlimit RATE (e.g. 20M = 20 MiB/s)  --shard I/N  --delete-source
  verify <from> <to>      report keys whose copy in <to> is missing or differs
      --prefix P  --full (read and hash every copy, not only its recorded SHA-256)
  repair <local> <cloud>  replay the dual-write journal until both sides match
  tier-cycle <local> <cloud> --warm URL [--cold URL]
      --hot-to-warm-days D  --warm-to-cold-days D  --now ISO-DATE
  stats <local> [<cloud>] pending repairs and, with --warm/--cold, objects per tier

  --journal FILE          the SQLite journal (default <local>/.stowage/journal.db)

Cloud settings: S3_ENDPOINT S3_ACCESS_KEY S3_SECRET_KEY S3_REGION S3_USE_SSL,
AWS_* as usual, AZURE_STORAGE_CONNECTION_STRING for az:// URLs.
Exit codes: 0 done, 1 something failed or differs, 2 bad usage.`

class UsageError extends Error {}

const OPTIONS = {
  prefix: { type: 'string', default: '' },
  concurrency: { type: 'string' },
  verify: { type: 'string' },
  'dry-run': { type: 'boolean', default: false },
  bwlimit: { type: 'string' },
  shard: { type: 'string' },
  'delete-source': { type: 'boolean', default: false },
  full: { type: 'boolean', default: false },
  journal: { type: 'string' },
  warm: { type: 'string' },
  cold: { type: 'string' },
  'hot-to-warm-days': { type: 'string' },
  'warm-to-cold-days': { type: 'string' },
  now: { type: 'string' },
  help: { type: 'boolean', short: 'h', default: false },
}

/** S3 credentials from the environment; the first variable set wins. */
const CREDENTIAL_VARIABLES = {
  accessKeyId: ['S3_ACCESS_KEY', 'AWS_ACCESS_KEY_ID'],
  secretAccessKey: ['S3_SECRET_KEY', 'AWS_SECRET_ACCESS_KEY'],
  region: ['S3_REGION', 'AWS_REGION'],
}

/** The variables each store option may come from. */
const OPTION_VARIABLES = { ...CREDENTIAL_VARIABLES, endpoint: ['S3_ENDPOINT'], allowHttp: ['S3_USE_SSL', 'S3_ENDPOINT'] }

const firstSet = (names) => names.find((name) => variable(name) !== undefined)

/** Store options for a cloud URL, from the environment, as `StorageManager.fromEnv()` reads them. */
function cloudOptions(url) {
  // Azure stores read AZURE_STORAGE_* themselves.
  if (!/^s3a?:\/\//.test(url)) return {}
  const ssl = useSsl(variable('S3_USE_SSL'))
  let endpoint = variable('S3_ENDPOINT')
  if (endpoint && !endpoint.includes('://')) endpoint = `${ssl === false ? 'http' : 'https'}://${endpoint}`
  // S3_USE_SSL=true with an http:// endpoint is refused, not overridden by the scheme.
  const options = endpoint ? { endpoint, allowHttp: ssl === undefined ? /^http:\/\//i.test(endpoint) : !ssl } : {}
  for (const [option, names] of Object.entries(CREDENTIAL_VARIABLES)) {
    const name = firstSet(names)
    if (name) options[option] = variable(name)
  }
  return options
}

/** A configuration message with the variable each store option came from: the command
 * line's user set variables, and has no `cloudOptions.region` to fix. */
function inVariables(message) {
  return message.replace(/\b(?:cloudOptions|tiers\.\w+Options)\.(\w+)/g, (named, option) => firstSet(OPTION_VARIABLES[option] ?? []) ?? named)
}

/** A variable of the environment; an empty one (`S3_REGION=` in a shell or a `.env`
 * file) is unset, as `StorageManager.fromEnv()` reads it. */
function variable(name) {
  return process.env[name] || undefined
}

const SSL_VALUES = { true: true, 1: true, yes: true, on: true, false: false, 0: false, no: false, off: false }

/** S3_USE_SSL as `StorageManager.fromEnv()` reads it: `FALSE` or `off` taken for "yes" would send the first request to an `https://` endpoint that is not there. */
function useSsl(value) {
  if (value === undefined) return undefined
  const ssl = SSL_VALUES[value.toLowerCase()]
  if (ssl === undefined) {
    throw new UsageError(`S3_USE_SSL: ${JSON.stringify(value)} is not one of ${Object.keys(SSL_VALUES).join(', ')}`)
  }
  return ssl
}

function manager(local, cloud, opts, extra = {}) {
  // A mistyped folder would be created, with a journal in it, and report 0 files.
  if (!fs.statSync(local, { throwIfNoEntry: false })?.isDirectory()) throw new UsageError(`${local} is not a folder`)
  return new StorageManager({
    local,
    // null, not undefined: an exported S3_BUCKET would be the cloud of a folder's manager.
    cloud: cloud ?? null,
    cloudOptions: cloud ? cloudOptions(cloud) : undefined,
    journal: opts.journal,
    mode: cloud ? 'dual' : 'local',
    ...extra,
  })
}

function positionals(args, n, names) {
  if (args.length < n) throw new UsageError(`expected ${names}`)
  return args
}

function integer(value, flag) {
  if (value === undefined) return undefined
  const n = Number(value)
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`--${flag} must be a positive integer`)
  return n
}

/** `20M` → 20 MiB/s; plain numbers are bytes per second. */
function rate(value) {
  if (value === undefined) return undefined
  const m = /^(\d+(?:\.\d+)?)([KMG]?)i?B?$/i.exec(value)
  if (!m) throw new UsageError('--bwlimit must look like 500K, 20M or 1G')
  const unit = { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3 }[m[2].toUpperCase()]
  return Math.round(Number(m[1]) * unit)
}

function shard(value) {
  if (value === undefined) return undefined
  const m = /^(\d+)\/(\d+)$/.exec(value)
  if (!m) throw new UsageError('--shard must look like 0/4')
  return { index: Number(m[1]), count: Number(m[2]) }
}

const mib = (bytes) => `${(bytes / 1024 / 1024).toFixed(1)} MiB`

function duration(seconds) {
  if (seconds === undefined || seconds === null || !Number.isFinite(seconds)) return '?'
  const s = Math.round(seconds)
  return s >= 3600 ? `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m` : s >= 60 ? `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s` : `${s}s`
}

/** A redrawn bar on a terminal; a plain line every 5 s in a log. */
function progressPrinter(stream = process.stderr) {
  let lastLine = 0
  return (p) => {
    const pct = p.totalKnown && p.total > 0 ? p.done / p.total : undefined
    const width = 24
    const filled = pct === undefined ? 0 : Math.round(pct * width)
    const bar = `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}]`
    const count = `${p.done}/${p.totalKnown ? p.total : `${p.total}+`} files`
    const line = `${bar} ${pct === undefined ? '  ?%' : `${Math.floor(pct * 100)}%`.padStart(4)} ${count}, ${mib(p.bytes)} at ${mib(p.rate)}/s, ETA ${duration(p.etaSeconds)}${p.failed ? `, ${p.failed} failed` : ''}${p.state === 'paused' ? ' (paused)' : ''}`
    if (stream.isTTY) {
      stream.write(`\r${line}\x1b[K`)
    } else if (Date.now() - lastLine >= 5000 || p.state !== 'running') {
      lastLine = Date.now()
      stream.write(`${line}\n`)
    }
  }
}

/** `done/total` keys, redrawn on a terminal; in a log every 5 s and at the end. */
function keyPrinter(verb, stream = process.stderr) {
  let lastLine = 0
  return ({ done, total }) => {
    const line = `${verb} ${done}/${total} keys`
    if (stream.isTTY) {
      stream.write(`\r${line}\x1b[K`)
    } else if (Date.now() - lastLine >= 5000 || done === total) {
      lastLine = Date.now()
      stream.write(`${line}\n`)
    }
  }
}

function printFailures(failed, count) {
  for (const f of failed) console.log(`  FAILED ${f.key}: ${f.code} ${f.message}`)
  if (count > failed.length) console.log(`  … and ${count - failed.length} more`)
}

async function migrate(args, opts) {
  const [from, to] = positionals(args, 2, '<from> <to>')
  const storage = manager(from, to, opts, { mode: 'local' })
  const job = storage.migrate({
    from: 'local',
    to: 'cloud',
    prefix: opts.prefix,
    concurrency: integer(opts.concurrency, 'concurrency'),
    verify: opts.verify,
    dryRun: opts['dry-run'],
    bandwidthLimit: rate(opts.bwlimit),
    shard: shard(opts.shard),
    deleteSource: opts['delete-source'],
    onProgress: progressPrinter(),
  })
  // Ctrl-C stops cleanly: what is verified stays recorded, a re-run resumes.
  process.once('SIGINT', () => job.abort())
  const report = await job.done
  if (process.stderr.isTTY) process.stderr.write('\n')
  const verb = report.dryRun ? 'would copy' : 'copied'
  console.log(`${report.state}: ${verb} ${report.copied}, skipped ${report.skipped} (already verified), failed ${report.failedCount}; ${mib(report.bytes)} in ${report.seconds.toFixed(1)} s (migration ${report.id})`)
  printFailures(report.failed, report.failedCount)
  return report.failedCount === 0 && report.state === 'completed' ? 0 : 1
}

/** The SHA-256 recorded with an object, or (with `read`, or none recorded) of its bytes. */
async function digestOf(storage, info, read = false) {
  if (info.sha256 && !read) return info.sha256
  const hash = crypto.createHash('sha256')
  for await (const chunk of storage.createReadStream(info.key)) hash.update(chunk)
  return hash.digest('hex')
}

async function verify(args, opts) {
  const [from, to] = positionals(args, 2, '<from> <to>')
  const source = manager(from, undefined, opts)
  const target = new StorageManager({ cloud: to, cloudOptions: cloudOptions(to), mode: 'cloud' })
  let checked = 0
  let mismatches = 0
  let startAfter
  do {
    const page = await source.list({ prefix: opts.prefix, startAfter, limit: 1000 })
    const results = await Promise.all(
      page.objects.map(async (info) => {
        const copy = await target.head(info.key).catch((e) => (e.code === 'NOT_FOUND' ? null : Promise.reject(e)))
        if (!copy) return `MISSING ${info.key}`
        if (copy.size !== info.size) return `SIZE ${info.key}: ${info.size} here, ${copy.size} there`
        const a = await digestOf(source, info)
        // A whole-object read fails INTEGRITY when the bytes differ from their record.
        const b = await digestOf(target, copy, opts.full).catch((e) => (e.code === 'INTEGRITY' ? 'damaged' : Promise.reject(e)))
        if (b === 'damaged') return `DAMAGED ${info.key}: its bytes there differ from the SHA-256 stored with them`
        return a === b ? null : `SHA-256 ${info.key}: ${a} here, ${b} there`
      }),
    )
    for (const r of results.filter(Boolean)) console.log(r)
    checked += page.objects.length
    mismatches += results.filter(Boolean).length
    startAfter = page.next
  } while (startAfter)
  console.log(`${checked} checked, ${mismatches} missing or different`)
  return mismatches ? 1 : 0
}

async function repair(args, opts) {
  const [local, cloud] = positionals(args, 2, '<local> <cloud>')
  const report = await manager(local, cloud, opts).repair({ onProgress: keyPrinter('replayed') })
  if (process.stderr.isTTY) process.stderr.write('\n')
  console.log(`repaired ${report.repaired}, failed ${report.failed}, still pending ${report.remaining}`)
  return report.failed || report.remaining ? 1 : 0
}

function tierOptions(opts) {
  if (!opts.warm && !opts.cold) return undefined
  const days = (v, flag) => {
    if (v === undefined) return undefined
    const n = Number(v)
    if (!(n >= 0)) throw new UsageError(`--${flag} must be a number of days`)
    return n
  }
  return {
    warm: opts.warm,
    cold: opts.cold,
    warmOptions: opts.warm ? cloudOptions(opts.warm) : undefined,
    coldOptions: opts.cold ? cloudOptions(opts.cold) : undefined,
    policy: { hotToWarmDays: days(opts['hot-to-warm-days'], 'hot-to-warm-days'), warmToColdDays: days(opts['warm-to-cold-days'], 'warm-to-cold-days') },
  }
}

async function tierCycle(args, opts) {
  const [local, cloud] = positionals(args, 2, '<local> <cloud>')
  if (!opts.warm && !opts.cold) throw new UsageError('tier-cycle needs --warm and/or --cold')
  const now = opts.now === undefined ? undefined : new Date(opts.now)
  if (now && Number.isNaN(now.getTime())) throw new UsageError('--now must be an ISO date')
  const storage = manager(local, cloud, opts, { mode: 'cloud', tiers: tierOptions(opts) })
  const r = await storage.runTierCycle({ now })
  console.log(`moved ${r.toWarm} to warm, ${r.toCold} to cold (${mib(r.bytes)}), failed ${r.failed.length}, in ${r.seconds.toFixed(1)} s`)
  printFailures(r.failed, r.failed.length)
  return r.failed.length ? 1 : 0
}

async function stats(args, opts) {
  const [local, cloud] = positionals(args, 1, '<local> [<cloud>]')
  const tiers = tierOptions(opts)
  const storage = manager(local, cloud, opts, tiers ? { mode: 'cloud', tiers } : {})
  console.log(`pending repairs: ${await storage.pendingRepairs()}`)
  if (tiers) {
    const t = await storage.tierStats()
    for (const [name, v] of Object.entries(t.perTier)) console.log(`${name.padEnd(5)} ${String(v.objects).padStart(8)} objects ${mib(v.bytes).padStart(12)}`)
  }
  return 0
}

const COMMANDS = { migrate, verify, repair, 'tier-cycle': tierCycle, stats }

async function main(argv) {
  let parsed
  try {
    parsed = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true })
  } catch (e) {
    console.error(`stowage: ${e.message}\n\n${USAGE}`)
    return 2
  }
  const [command, ...rest] = parsed.positionals
  if (parsed.values.help || !command) {
    console.log(USAGE)
    return command || parsed.values.help ? 0 : 2
  }
  const run = COMMANDS[command]
  if (!run) {
    console.error(`stowage: unknown command ${command}\n\n${USAGE}`)
    return 2
  }
  try {
    return await run(rest, parsed.values)
  } catch (e) {
    if (e instanceof UsageError) {
      console.error(`stowage ${command}: ${e.message}\n\n${USAGE}`)
      return 2
    }
    const message = e.code === 'INVALID_CONFIG' ? inVariables(e.message) : e.message
    console.error(`stowage ${command}: ${e.code ? `${e.code}: ` : ''}${message}`)
    return e.code === 'INVALID_CONFIG' ? 2 : 1
  }
}

main(process.argv.slice(2)).then((code) => {
  process.exitCode = code
})
