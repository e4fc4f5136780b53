#!/usr/bin/env node
// `npm run bench:dicom`: stowage's dicom.render vs the common Node stack — dicom-parser,
// a hand-written modality/VOI LUT in JavaScript and sharp for WebP q90 plus 256/64
// thumbnails — on the 21 shared files. Both sides run in one process, interleaved round
// by round (the side that goes first alternates), one file at a time and with
// cores × 2 files in flight. Writes the `dicom` section of bench/RESULTS.md.
'use strict'
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { monitorEventLoopDelay } = require('node:perf_hooks')
const dicomParser = require('dicom-parser')
const { PNG } = require('pngjs')
const { dicom } = require('..')
const { median, machine, writeSection } = require('./results')

let sharp
try {
  sharp = require('sharp')
} catch (err) {
  console.error(`sharp cannot be loaded (${err.message}); npm install sharp (its prebuilt binary is the npm package @img/sharp-${process.platform}-${process.arch})`)
  process.exit(1)
}

const DIR = process.env.STOWAGE_DICOM_DIR || path.join(__dirname, '..', '..', 'shared', 'dicom')
const ROUNDS = Number(process.env.BENCH_ROUNDS || 5)
const REPEAT = Number(process.env.BENCH_REPEAT || 4) // passes over the file set per run
const CORES = os.availableParallelism ? os.availableParallelism() : os.cpus().length
const CONCURRENCY = [1, CORES * 2]
const THUMBS = [256, 64]
// sharp's and stowage's default effort, then a faster one that both sides are given alike.
const DEFAULT_EFFORT = 4
const EFFORTS = [DEFAULT_EFFORT, 2]

// ---------------------------------------------------------------------------------
// The JavaScript side: what a Node backend writes with dicom-parser and sharp. Native
// little endian only (plain or deflated), 8/16 bits, MONOCHROME1/2 and RGB: dicom-parser
// has no image codecs, and palette, YBR, LUT sequences and enhanced multi-frame
// functional groups need code nobody writes by hand. Those files are reported as
// unsupported.

// dicom-parser inflates Deflated Explicit VR with Node's zlib when given a Buffer.
const NATIVE_LE = new Set(['1.2.840.10008.1.2', '1.2.840.10008.1.2.1', '1.2.840.10008.1.2.1.99'])

class Unsupported extends Error {}

function jsPixels(buffer) {
  const ds = dicomParser.parseDicom(buffer)
  const ts = (ds.string('x00020010') || '').replace(/\0/g, '').trim()
  if (!NATIVE_LE.has(ts)) throw new Unsupported(`transfer syntax ${ts}`)
  const rows = ds.uint16('x00280010')
  const cols = ds.uint16('x00280011')
  const spp = ds.uint16('x00280002') || 1
  const photometric = (ds.string('x00280004') || '').trim()
  const bitsAllocated = ds.uint16('x00280100')
  const bitsStored = ds.uint16('x00280101') || bitsAllocated
  const signed = ds.uint16('x00280103') === 1
  const pixel = ds.elements.x7fe00010
  if (!pixel) throw new Unsupported('no pixel data')
  if (ds.elements.x52009229 || ds.elements.x52009230) throw new Unsupported('enhanced multi-frame functional groups')
  const n = rows * cols
  const bytes = ds.byteArray

  if (photometric === 'RGB' && spp === 3 && bitsAllocated === 8) {
    const src = bytes.subarray(pixel.dataOffset, pixel.dataOffset + n * 3)
    if (ds.uint16('x00280006') !== 1) return { data: Buffer.from(src), width: cols, height: rows, channels: 3 }
    const out = Buffer.alloc(n * 3)
    for (let i = 0; i < n; i++) {
      out[i * 3] = src[i]
      out[i * 3 + 1] = src[n + i]
      out[i * 3 + 2] = src[2 * n + i]
    }
    return { data: out, width: cols, height: rows, channels: 3 }
  }
  if (spp !== 1 || !photometric.startsWith('MONOCHROME')) throw new Unsupported(`photometric ${photometric}`)
  if (ds.elements.x00283000) throw new Unsupported('Modality LUT Sequence')
  if (ds.elements.x00283010) throw new Unsupported('VOI LUT Sequence')
  const fn = (ds.string('x00281056') || 'LINEAR').trim()
  if (fn !== 'LINEAR') throw new Unsupported(`VOI LUT function ${fn}`)
  if (bitsAllocated !== 8 && bitsAllocated !== 16) throw new Unsupported(`${bitsAllocated} bits`)

  // Stored values: a typed-array view when aligned, a copy otherwise.
  const offset = bytes.byteOffset + pixel.dataOffset
  let stored
  if (bitsAllocated === 8) {
    stored = signed ? new Int8Array(bytes.buffer, offset, n) : new Uint8Array(bytes.buffer, offset, n)
  } else {
    const Typed = signed ? Int16Array : Uint16Array
    stored = offset % 2 === 0 ? new Typed(bytes.buffer, offset, n) : new Typed(bytes.buffer.slice(offset, offset + n * 2))
  }
  // Bits Stored < Bits Allocated: mask (unsigned) or sign-extend (signed) the high bits.
  const shift = 32 - bitsStored
  const clean = bitsStored === bitsAllocated ? (v) => v : signed ? (v) => (v << shift) >> shift : (v) => v & ((1 << bitsStored) - 1)
  const lo = signed ? -(2 ** (bitsStored - 1)) : 0
  const hi = signed ? 2 ** (bitsStored - 1) - 1 : 2 ** bitsStored - 1

  const slope = ds.floatString('x00281053') ?? 1
  const intercept = ds.floatString('x00281052') ?? 0
  const center = ds.floatString('x00281050', 0)
  const width = ds.floatString('x00281051', 0)
  let toByte
  if (center !== undefined && width !== undefined && width >= 1) {
    // PS3.3 C.11.2.1.2.1 (LINEAR)
    const c = center - 0.5
    const w = width - 1
    toByte = (x) => (x <= c - w / 2 ? 0 : x > c + w / 2 ? 255 : ((x - c) / w + 0.5) * 255)
  } else {
    let min = Infinity
    let max = -Infinity
    for (let i = 0; i < n; i++) {
      const x = slope * clean(stored[i]) + intercept
      if (x < min) min = x
      if (x > max) max = x
    }
    toByte = max > min ? (x) => ((x - min) / (max - min)) * 255 : () => 0
  }
  // One LUT entry per possible stored value, then one lookup per pixel.
  const invert = photometric === 'MONOCHROME1'
  const lut = new Uint8Array(hi - lo + 1)
  for (let s = lo; s <= hi; s++) {
    const v = Math.floor(Math.min(255, Math.max(0, toByte(slope * s + intercept))) + 0.5)
    lut[s - lo] = invert ? 255 - Math.min(v, 255) : Math.min(v, 255)
  }
  const out = Buffer.alloc(n)
  for (let i = 0; i < n; i++) out[i] = lut[clean(stored[i]) - lo]
  return { data: out, width: cols, height: rows, channels: 1 }
}

/** sharp's part alone: WebP q90 of the 8-bit pixels, plus the two thumbnails. */
async function jsEncode(px, effort = DEFAULT_EFFORT) {
  const raw = { raw: { width: px.width, height: px.height, channels: px.channels } }
  const webp = { quality: 90, effort }
  const [image, ...thumbs] = await Promise.all([
    sharp(px.data, raw).webp(webp).toBuffer(),
    ...THUMBS.map((size) => sharp(px.data, raw).resize(size, size, { fit: 'inside', withoutEnlargement: true }).webp(webp).toBuffer()),
  ])
  return { image, thumbnails: Object.fromEntries(THUMBS.map((s, i) => [s, thumbs[i]])) }
}

const jsRender = (buffer, effort) => jsEncode(jsPixels(buffer), effort)

const stowageRender = (buffer, effort = DEFAULT_EFFORT) => dicom.render(buffer, { format: 'webp', quality: 90, effort, thumbnails: THUMBS })

// ---------------------------------------------------------------------------------
// Which files each side renders correctly: the same tolerances as the Jest suite.

function decodePng(buffer) {
  const png = PNG.sync.read(buffer)
  const channels = png.colorType === 0 || png.colorType === 4 ? 1 : 3
  const data = Buffer.alloc(png.width * png.height * channels)
  for (let p = 0; p < png.width * png.height; p++) for (let c = 0; c < channels; c++) data[p * channels + c] = png.data[p * 4 + c]
  return { width: png.width, height: png.height, channels, data }
}

function matches(px, entry) {
  const ref = decodePng(fs.readFileSync(path.join(DIR, entry.reference.file)))
  if (px.width !== ref.width || px.height !== ref.height || px.channels !== ref.channels) return `size ${px.width}x${px.height}x${px.channels}`
  let max = 0
  let sum = 0
  let over4 = 0
  for (let i = 0; i < ref.data.length; i++) {
    const d = Math.abs(px.data[i] - ref.data[i])
    max = Math.max(max, d)
    sum += d
    if (d > 4) over4++
  }
  const mean = sum / ref.data.length
  const ok = entry.reference.lossy_codec
    ? mean <= 1 && over4 / ref.data.length < 0.01
    : max <= (entry.photometric_interpretation.startsWith('YBR_FULL') ? 2 : 1)
  return ok ? null : `differs from the reference (max ${max}, mean ${mean.toFixed(2)})`
}

async function support(files) {
  const rows = []
  for (const { entry, bytes } of files) {
    const row = { file: entry.name, stowage: 'yes', js: 'yes' }
    try {
      const out = await dicom.render(bytes, { format: 'png' })
      row.stowage = matches(decodePng(out.image), entry) || 'yes'
    } catch (err) {
      row.stowage = `${err.code}: ${err.message}`
    }
    try {
      row.js = matches(jsPixels(bytes), entry) || 'yes'
      await jsRender(bytes)
    } catch (err) {
      row.js = err instanceof Unsupported ? `unsupported: ${err.message}` : `error: ${err.message}`
    }
    rows.push(row)
  }
  return rows
}

// ---------------------------------------------------------------------------------

async function run(render, files, concurrency, effort = DEFAULT_EFFORT) {
  const queue = []
  for (let r = 0; r < REPEAT; r++) queue.push(...files)
  const histogram = monitorEventLoopDelay({ resolution: 1 })
  const ticker = setInterval(() => {}, 1)
  histogram.enable()
  const started = process.hrtime.bigint()
  let next = 0
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < queue.length) {
        const { bytes } = queue[next++]
        await render(bytes, effort)
      }
    }),
  )
  const seconds = Number(process.hrtime.bigint() - started) / 1e9
  histogram.disable()
  clearInterval(ticker)
  return { images: queue.length, seconds, p99: histogram.percentile(99) / 1e6 }
}

/**
 * Median milliseconds per call of each of `calls` ({ name: () => Promise }), one at a
 * time, taking turns call by call so that the machine's slow spells hit all alike.
 */
async function perFile(calls, times = 9) {
  const names = Object.keys(calls)
  const ms = Object.fromEntries(names.map((n) => [n, []]))
  for (let i = 0; i < times; i++) {
    for (const name of i % 2 ? [...names].reverse() : names) {
      const t = process.hrtime.bigint()
      await calls[name]()
      ms[name].push(Number(process.hrtime.bigint() - t) / 1e6)
    }
  }
  return Object.fromEntries(names.map((n) => [n, median(ms[n])]))
}

async function main() {
  const manifest = JSON.parse(fs.readFileSync(path.join(DIR, 'manifest.json'), 'utf8')).files
  const files = manifest.map((entry) => ({ entry, bytes: fs.readFileSync(path.join(DIR, entry.name)) }))

  console.log('checking which files each side renders correctly…')
  const supported = await support(files)
  console.table(supported)
  const both = files.filter((f) => {
    const row = supported.find((r) => r.file === f.entry.name)
    return row.stowage === 'yes' && row.js === 'yes'
  })
  const stowageOnly = files.filter((f) => supported.find((r) => r.file === f.entry.name).stowage === 'yes')
  console.log(`both sides: ${both.map((f) => f.entry.name).join(', ')}`)

  // Warm up both (thread pools, code caches).
  for (const f of both) {
    await stowageRender(f.bytes)
    await jsRender(f.bytes)
  }

  const samples = []
  for (let round = 0; round < ROUNDS; round++) {
    for (const effort of EFFORTS) {
      for (const concurrency of CONCURRENCY) {
        const order = (round + concurrency) % 2 ? [['js', jsRender], ['stowage', stowageRender]] : [['stowage', stowageRender], ['js', jsRender]]
        for (const [side, render] of order) {
          const r = await run(render, both, concurrency, effort)
          samples.push({ side, concurrency, effort, set: 'both', ...r })
          console.log(`round ${round + 1}, effort ${effort}, ${concurrency} in flight: ${side.padEnd(7)} ${(r.images / r.seconds).toFixed(1)} images/s, event-loop p99 ${r.p99.toFixed(1)} ms`)
        }
      }
    }
    // stowage on all the files it supports, for the record.
    const r = await run(stowageRender, stowageOnly, CORES * 2)
    samples.push({ side: 'stowage', concurrency: CORES * 2, effort: DEFAULT_EFFORT, set: 'all', ...r })
  }

  const latency = []
  for (const f of files) {
    const ok = (side) => supported.find((s) => s.file === f.entry.name)[side] === 'yes'
    const calls = {}
    if (ok('stowage')) calls.stowage = () => stowageRender(f.bytes)
    if (ok('js')) {
      const px = jsPixels(f.bytes)
      calls.js = () => jsRender(f.bytes)
      calls.encode = () => jsEncode(px)
    }
    latency.push({ file: f.entry.name, ...(await perFile(calls)) })
  }

  const md = report(supported, both, stowageOnly, samples, latency)
  writeSection('dicom', md)
  console.log(md)
  console.log('wrote bench/RESULTS.md')
}

function report(supported, both, stowageOnly, samples, latency) {
  const rate = (side, concurrency, set = 'both', effort = DEFAULT_EFFORT) => {
    const s = samples.filter((x) => x.side === side && x.concurrency === concurrency && x.set === set && x.effort === effort)
    return { ips: median(s.map((x) => x.images / x.seconds)), p99: median(s.map((x) => x.p99)) }
  }
  const count = (side) => supported.filter((r) => r[side] === 'yes').length
  const lines = []
  lines.push('## DICOM rendering: stowage vs dicom-parser + JS LUT + sharp')
  lines.push('')
  lines.push(`${machine()}; sharp ${sharp.versions ? sharp.versions.sharp || '' : ''} (libvips ${sharp.versions ? sharp.versions.vips : '?'}), dicom-parser ${require('dicom-parser/package.json').version}.`)
  lines.push(`Each image: decode frame 0, modality LUT → window → 8 bits, WebP q90 plus 256 and 64 px WebP thumbnails.`)
  lines.push(`Median of ${ROUNDS} interleaved rounds (the side that goes first alternates); each run renders the file set ${REPEAT} times.`)
  lines.push('UV_THREADPOOL_SIZE is the default (4); sharp uses its own libvips threads as well.')
  lines.push('')
  lines.push(`**Files rendered within the reference tolerances: stowage ${count('stowage')}/21, JS stack ${count('js')}/21.** ` +
    `Both: ${both.map((f) => f.entry.name).join(', ')}.`)
  lines.push('')
  lines.push('| files both support | WebP effort | in flight | stowage images/s | JS images/s | ratio | event-loop p99 stowage | event-loop p99 JS |')
  lines.push('|---|---:|---:|---:|---:|---:|---:|---:|')
  for (const effort of EFFORTS) {
    for (const c of CONCURRENCY) {
      const s = rate('stowage', c, 'both', effort)
      const j = rate('js', c, 'both', effort)
      const label = effort === DEFAULT_EFFORT ? `${effort} (default)` : `${effort} (both sides)`
      lines.push(`| ${both.length} files | ${label} | ${c} | ${s.ips.toFixed(1)} | ${j.ips.toFixed(1)} | **${(s.ips / j.ips).toFixed(2)}×** | ${s.p99.toFixed(1)} ms | ${j.p99.toFixed(1)} ms |`)
    }
  }
  lines.push('')
  lines.push(`Effort ${EFFORTS[1]} is \`effort: ${EFFORTS[1]}\` on both sides (libwebp's method ${EFFORTS[1]}; stowage's bytes are sharp's at each effort): ` +
    'a cheaper encoder leaves more of each render to the work around it, where the two sides differ. The target is measured at the default.')
  const all = rate('stowage', CORES * 2, 'all')
  lines.push('')
  lines.push(`stowage on all ${stowageOnly.length} files it supports, ${CORES * 2} in flight: ${all.ips.toFixed(1)} images/s, event-loop p99 ${all.p99.toFixed(1)} ms.`)
  lines.push('')
  lines.push('Milliseconds per file, one at a time (median of 9, the sides taking turns; — = not supported):')
  lines.push('')
  lines.push('| file | stowage ms | JS ms | ratio | of the JS ms, sharp encoding | JS ms ÷ encoding |')
  lines.push('|---|---:|---:|---:|---:|---:|')
  for (const r of latency) {
    const fmt = (v) => (v == null ? '—' : v.toFixed(1))
    const ratio = r.stowage != null && r.js != null ? `${(r.js / r.stowage).toFixed(2)}×` : ''
    const bound = r.encode != null ? `${(r.js / r.encode).toFixed(2)}×` : ''
    lines.push(`| ${r.file} | ${fmt(r.stowage)} | ${fmt(r.js)} | ${ratio} | ${r.encode == null ? '' : fmt(r.encode)} | ${bound} |`)
  }
  lines.push('')
  lines.push('"Sharp encoding" is the JS side\'s WebP step alone, given pixels already made: libwebp at quality 90 and effort 4 ' +
    'for the image and both thumbnails. stowage calls the same libwebp (1.6) with the same settings, and its image is ' +
    'byte-identical to sharp\'s encoding of the same pixels (__test__/dicom.test.js checks it; the thumbnails differ ' +
    'by the resampler). "JS ms ÷ encoding" is how much faster than the JS stack a renderer would be that decoded ' +
    'for free but encoded through sharp. stowage gets past it because its own calls into libwebp cost less than sharp\'s ' +
    '(no libvips pipeline around them, grayscale passed as YUV planes, the encoder\'s analysis pass on two threads, ' +
    'SIMD Lanczos3 thumbnails, an image that fits a thumbnail box encoded once); the encoder itself sets the floor.')
  const why = supported.filter((r) => r.js !== 'yes')
  if (why.length) {
    lines.push('')
    lines.push('Why the JS stack misses the others: ' + why.map((r) => `${r.file} (${r.js})`).join('; ') + '.')
  }
  const missing = supported.filter((r) => r.stowage !== 'yes')
  if (missing.length) lines.push(`\nstowage misses: ${missing.map((r) => `${r.file} (${r.stowage})`).join('; ')}.`)
  return lines.join('\n')
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
