'use strict'
// dicom.render / dicom.metadata against the 21 shared files and their reference PNGs.
const { execFileSync } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { getEventListeners, setMaxListeners } = require('node:events')
const { monitorEventLoopDelay } = require('node:perf_hooks')
const { types } = require('node:util')
const { dicom } = require('..')
const { FIXTURE_DIR, manifest, file, read, readFixture, entry, decodePng, webpInfo, jpegInfo } = require('./dicom-helpers')

let sharp = null
try {
  sharp = require('sharp')
} catch {
  // Only the lossless WebP round trip needs a WebP decoder.
}

/** Per-sample comparison of our PNG with the reference PNG. */
function compare(ours, ref) {
  expect([ours.width, ours.height, ours.channels]).toEqual([ref.width, ref.height, ref.channels])
  let max = 0
  let sum = 0
  let over4 = 0
  for (let i = 0; i < ref.data.length; i++) {
    const d = Math.abs(ours.data[i] - ref.data[i])
    if (d > max) max = d
    if (d > 4) over4++
    sum += d
  }
  return { max, mean: sum / ref.data.length, over4: over4 / ref.data.length }
}

/** The README's tolerances: lossless ±1 (±2 for YBR colour); lossy mean ≤ 1 and < 1 % off by > 4. */
function tolerance(e) {
  if (e.reference.lossy_codec) return { kind: 'lossy', ok: (s) => s.mean <= 1 && s.over4 < 0.01 }
  const limit = e.photometric_interpretation.startsWith('YBR_FULL') ? 2 : 1
  return { kind: `±${limit}`, ok: (s) => s.max <= limit }
}

describe('reference renderings', () => {
  const worst = []
  afterAll(() => {
    console.table(worst)
    fs.writeFileSync(path.join(os.tmpdir(), 'stowage-dicom-worst.json'), JSON.stringify(worst, null, 1))
  })

  test('all 21 files are in the manifest', () => {
    expect(manifest).toHaveLength(21)
  })

  test.each(manifest.map((e) => [e.name, e]))('%s matches NAME.ref.png', async (name, e) => {
    const out = await dicom.render(read(name), { format: 'png' })
    const ours = decodePng(out.image)
    const ref = decodePng(fs.readFileSync(file(e.reference.file)))
    const stats = compare(ours, ref)
    const tol = tolerance(e)
    worst.push({
      file: name,
      tolerance: tol.kind,
      maxDiff: stats.max,
      meanDiff: Number(stats.mean.toFixed(4)),
      'off>4': `${(stats.over4 * 100).toFixed(3)}%`,
    })
    expect({ name, ...stats, ok: tol.ok(stats) }).toEqual({ name, ...stats, ok: true })
    expect([out.width, out.height, out.frames]).toEqual([e.columns, e.rows, e.number_of_frames])
  })
})

describe('YBR_FULL through lossless codecs', () => {
  // fixtures/dicom/make.py re-encodes SC_ybr_full_uncompressed.dcm with each codec. They keep the
  // stored YBR_FULL samples, so each must render exactly like the original; these rendered the
  // samples as if they were RGB.
  const names = fs.readdirSync(FIXTURE_DIR).filter((name) => name.startsWith('ybr_full_'))
  const render = async (bytes) => decodePng((await dicom.render(bytes, { format: 'png' })).image)
  let original
  let ref
  beforeAll(async () => {
    original = await render(read('SC_ybr_full_uncompressed.dcm'))
    ref = decodePng(fs.readFileSync(file('SC_ybr_full_uncompressed.ref.png')))
  })

  test('RLE, JPEG-LS, JPEG 2000 and JPEG lossless are all there', () => {
    expect(names.sort()).toEqual([
      'ybr_full_j2k.dcm',
      'ybr_full_jpeg_lossless.dcm',
      'ybr_full_jpegls.dcm',
      'ybr_full_jpegls_planar.dcm',
      'ybr_full_rle.dcm',
    ])
  })

  test.each(names)('%s renders like the uncompressed original', async (name) => {
    const ours = await render(readFixture(name))
    expect(compare(ours, ref).max).toBeLessThanOrEqual(2)
    expect(ours.data.equals(original.data)).toBe(true)
  })
})

describe('High-Throughput JPEG 2000', () => {
  // No shared file is HTJ2K; fixtures/dicom/make.py re-encodes two with OpenJPH, losslessly.
  test.each([
    ['htj2k_ct_small.dcm', 'CT_small.dcm', 'MONOCHROME2'],
    ['htj2k_color_pl_rct.dcm', 'color-pl.dcm', 'YBR_RCT'],
  ])('%s renders exactly like %s', async (name, source, photometric) => {
    const ours = await dicom.render(readFixture(name), { format: 'png' })
    const original = await dicom.render(read(source), { format: 'png' })
    expect(ours.metadata).toMatchObject({ transferSyntaxUid: '1.2.840.10008.1.2.4.201', photometricInterpretation: photometric })
    expect(decodePng(ours.image).data.equals(decodePng(original.image).data)).toBe(true)
  })
})

describe('encodings', () => {
  test('default is lossy WebP at the image size, no thumbnails', async () => {
    const out = await dicom.render(read('US1_J2KR.dcm'))
    expect(Buffer.isBuffer(out.image)).toBe(true)
    expect(webpInfo(out.image)).toEqual({ chunk: 'VP8 ', width: 640, height: 480 })
    expect(out.thumbnails).toEqual({})
    expect([out.width, out.height, out.frames]).toEqual([640, 480, 1])
  })

  test('JPEG output has the image size and a colour or gray frame', async () => {
    const rgb = await dicom.render(read('US1_J2KR.dcm'), { format: 'jpeg', quality: 80 })
    expect(jpegInfo(rgb.image)).toEqual({ width: 640, height: 480, components: 3 })
    const gray = await dicom.render(read('CT_small.dcm'), { format: 'jpeg' })
    expect(jpegInfo(gray.image)).toEqual({ width: 128, height: 128, components: 1 })
  })

  test('quality changes the size of lossy output', async () => {
    const bytes = read('MR2_UNCR.dcm')
    const low = await dicom.render(bytes, { quality: 10 })
    const high = await dicom.render(bytes, { quality: 100 })
    expect(low.image.length).toBeLessThan(high.image.length)
  })

  test('thumbnails fit in N×N, keep the aspect ratio and never upscale', async () => {
    const wide = await dicom.render(read('US1_J2KR.dcm'), { format: 'png', thumbnails: [256, 64] })
    expect(Object.keys(wide.thumbnails).sort()).toEqual(['256', '64'])
    expect(decodePng(wide.thumbnails[256])).toMatchObject({ width: 256, height: 192 })
    expect(decodePng(wide.thumbnails[64])).toMatchObject({ width: 64, height: 48 })

    const tall = await dicom.render(read('JPGExtended.dcm'), { thumbnails: [256, 64] })
    expect(webpInfo(tall.thumbnails[256])).toMatchObject({ width: 64, height: 256 })
    expect(webpInfo(tall.thumbnails[64])).toMatchObject({ width: 16, height: 64 })

    const small = await dicom.render(read('MR_small_RLE.dcm'), { format: 'png', thumbnails: [256] })
    expect(decodePng(small.thumbnails[256])).toMatchObject({ width: 64, height: 64 })
  })

  test('lossless WebP round-trips the pixels of the PNG rendition', async () => {
    if (!sharp) throw new Error('sharp is not installed: npm install')
    for (const name of ['CT_small.dcm', 'color-pl.dcm']) {
      const bytes = read(name)
      const png = decodePng((await dicom.render(bytes, { format: 'png' })).image)
      const webp = await dicom.render(bytes, { format: 'webp', lossless: true })
      expect(webpInfo(webp.image).chunk).toBe('VP8L')
      const { data, info } = await sharp(webp.image).removeAlpha().raw().toBuffer({ resolveWithObject: true })
      expect([info.width, info.height]).toEqual([png.width, png.height])
      for (let p = 0; p < png.width * png.height; p++) {
        for (let c = 0; c < 3; c++) {
          const expected = png.data[p * png.channels + (png.channels === 1 ? 0 : c)]
          if (data[p * 3 + c] !== expected) throw new Error(`${name}: pixel ${p} channel ${c}: ${data[p * 3 + c]} != ${expected}`)
        }
      }
    }
  })

  // bench/RESULTS.md compares the two at equal output; the grayscale files take stowage's
  // YUV import, the colour one libwebp's RGB import, and the 1024² one libwebp's
  // two-thread analysis.
  test('lossy WebP is byte-identical to sharp encoding the same pixels at the same quality', async () => {
    if (!sharp) throw new Error('sharp is not installed: npm install')
    for (const name of ['MR2_UNCR.dcm', 'CT_small.dcm', 'color-pl.dcm']) {
      const bytes = read(name)
      const png = decodePng((await dicom.render(bytes, { format: 'png' })).image)
      const raw = { raw: { width: png.width, height: png.height, channels: png.channels } }
      for (const quality of [90, 50]) {
        const ours = (await dicom.render(bytes, { format: 'webp', quality })).image
        const theirs = await sharp(png.data, raw).webp({ quality }).toBuffer()
        expect({ name, quality, identical: ours.equals(theirs) }).toEqual({ name, quality, identical: true })
      }
    }
  })

  test('effort is sharp\'s effort: each level gives sharp\'s bytes, and the default is 4', async () => {
    if (!sharp) throw new Error('sharp is not installed: npm install')
    const bytes = read('CT_small.dcm')
    const png = decodePng((await dicom.render(bytes, { format: 'png' })).image)
    const raw = { raw: { width: png.width, height: png.height, channels: png.channels } }
    const byEffort = []
    for (const effort of [0, 2, 4, 6]) {
      const ours = (await dicom.render(bytes, { effort })).image
      const theirs = await sharp(png.data, raw).webp({ quality: 90, effort }).toBuffer()
      expect({ effort, identical: ours.equals(theirs) }).toEqual({ effort, identical: true })
      byEffort.push(ours)
    }
    expect(new Set(byEffort.map((b) => b.toString('base64'))).size).toBe(4)
    expect((await dicom.render(bytes)).image.equals(byEffort[2])).toBe(true)
    const lossless = await dicom.render(bytes, { lossless: true, effort: 0 })
    expect(lossless.image.equals((await dicom.render(bytes, { lossless: true })).image)).toBe(false)
    expect(webpInfo(lossless.image).chunk).toBe('VP8L')
  })

  test('a window override changes the rendering and follows the linear rule', async () => {
    const bytes = read('CT_small.dcm')
    const auto = decodePng((await dicom.render(bytes, { format: 'png' })).image)
    const narrow = decodePng((await dicom.render(bytes, { format: 'png', window: { center: 40, width: 80 } })).image)
    expect(narrow.data.equals(auto.data)).toBe(false)
    const levels = new Set(narrow.data)
    expect(levels.has(0) && levels.has(255)).toBe(true)
    // A 1-wide window is a threshold: only 0 and 255 remain.
    const threshold = decodePng((await dicom.render(bytes, { format: 'png', window: { center: 0, width: 1 } })).image)
    expect([...new Set(threshold.data)].sort((a, b) => a - b)).toEqual([0, 255])
  })

  test('frame selects one frame of a multi-frame file', async () => {
    const bytes = read('examples_ybr_color.dcm')
    const first = await dicom.render(bytes, { format: 'png' })
    const last = await dicom.render(bytes, { format: 'png', frame: 29 })
    expect(first.frames).toBe(30)
    expect(last.frames).toBe(30)
    expect(decodePng(last.image).data.equals(decodePng(first.image).data)).toBe(false)
    const again = await dicom.render(bytes, { format: 'png', frame: 0 })
    expect(again.image.equals(first.image)).toBe(true)
    await expect(dicom.render(bytes, { frame: 30 })).rejects.toMatchObject({ code: 'INVALID_CONFIG', message: expect.stringContaining('frame') })
  })

  test('bad options reject with INVALID_CONFIG naming the option', async () => {
    const bytes = read('CT_small.dcm')
    const cases = [
      [{ format: 'gif' }, 'format'],
      [{ quality: 0 }, 'quality'],
      [{ quality: 101 }, 'quality'],
      [{ quality: 50.5 }, 'quality'],
      [{ frame: -1 }, 'frame'],
      [{ thumbnails: [0] }, 'thumbnails'],
      [{ thumbnails: [5000] }, 'thumbnails'],
      [{ window: { center: 0, width: 0 } }, 'window'],
      [{ format: 'jpeg', lossless: true }, 'lossless'],
      [{ effort: 7 }, 'effort'],
      [{ effort: -1 }, 'effort'],
      [{ effort: 2.5 }, 'effort'],
      [{ format: 'png', effort: 2 }, 'effort'],
      [{ format: 'jpeg', effort: 0 }, 'effort'],
    ]
    for (const [opts, field] of cases) {
      const err = await dicom.render(bytes, opts).then(() => null, (e) => e)
      expect(types.isNativeError(err)).toBe(true)
      expect({ opts, code: err.code, named: err.message.includes(field) }).toEqual({ opts, code: 'INVALID_CONFIG', named: true })
    }
  })
})

describe('input', () => {
  test('a path, a Buffer and a Uint8Array give the same rendition', async () => {
    const bytes = read('MR_small_RLE.dcm')
    const fromBuffer = await dicom.render(bytes, { format: 'png' })
    const fromPath = await dicom.render(file('MR_small_RLE.dcm'), { format: 'png' })
    const fromArray = await dicom.render(new Uint8Array(bytes), { format: 'png' })
    expect(fromPath.image.equals(fromBuffer.image)).toBe(true)
    expect(fromArray.image.equals(fromBuffer.image)).toBe(true)
    expect(await dicom.metadata(file('MR_small_RLE.dcm'))).toEqual(await dicom.metadata(bytes))
  })

  test('a missing path rejects with NOT_FOUND', async () => {
    const missing = path.join(os.tmpdir(), 'stowage-no-such-file.dcm')
    await expect(dicom.render(missing)).rejects.toMatchObject({ code: 'NOT_FOUND', message: expect.stringContaining(missing) })
    await expect(dicom.metadata(missing)).rejects.toMatchObject({ code: 'NOT_FOUND' })
  })

  test('a path that cannot exist is NOT_FOUND or a bad path, never an outage to retry', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'stowage-paths-'))
    const loop = path.join(dir, 'loop.dcm')
    fs.symlinkSync(loop, loop)
    const throughFile = path.join(__filename, 'x.dcm')
    await expect(dicom.render(throughFile)).rejects.toMatchObject({ code: 'NOT_FOUND', message: expect.stringContaining(throughFile) })
    await expect(dicom.metadata(throughFile)).rejects.toMatchObject({ code: 'NOT_FOUND' })
    for (const input of [loop, path.join(dir, `${'y'.repeat(300)}.dcm`), path.join(dir, 'a\0b.dcm')]) {
      const expected = { code: 'INVALID_CONFIG', message: expect.stringContaining('path') }
      await expect(dicom.render(input)).rejects.toMatchObject(expected)
      await expect(dicom.metadata(input)).rejects.toMatchObject(expected)
    }
  })

  test('a directory, /dev/zero or a FIFO is refused at once instead of read', async () => {
    const fifo = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'stowage-fifo-')), 'scan.dcm')
    execFileSync('mkfifo', [fifo])
    // If read, /dev/zero would never end and the FIFO (no writer) would never open.
    for (const [input, kind] of [[os.tmpdir(), 'a directory'], ['/dev/zero', 'a device'], [fifo, 'a device, FIFO']]) {
      const expected = { code: 'DICOM_INVALID', message: expect.stringContaining(`${input} is ${kind}`) }
      await expect(dicom.render(input)).rejects.toMatchObject(expected)
      await expect(dicom.metadata(input)).rejects.toMatchObject(expected)
    }
  })
})

describe('metadata', () => {
  test.each(manifest.map((e) => [e.name]))('%s matches manifest.json', async (name) => {
    const e = entry(name)
    const m = await dicom.metadata(read(name))
    expect({
      rows: m.rows,
      columns: m.columns,
      frames: m.frames,
      bitsAllocated: m.bitsAllocated,
      bitsStored: m.bitsStored,
      pixelRepresentation: m.pixelRepresentation,
      samplesPerPixel: m.samplesPerPixel,
      photometricInterpretation: m.photometricInterpretation,
      transferSyntaxUid: m.transferSyntaxUid,
      transferSyntaxName: m.transferSyntaxName,
    }).toEqual({
      rows: e.rows,
      columns: e.columns,
      frames: e.number_of_frames,
      bitsAllocated: e.bits_allocated,
      bitsStored: e.bits_stored,
      pixelRepresentation: e.pixel_representation,
      samplesPerPixel: e.samples_per_pixel,
      photometricInterpretation: e.photometric_interpretation,
      transferSyntaxUid: e.transfer_syntax_uid,
      transferSyntaxName: expect.any(String),
    })
    if (e.modality) expect(m.modality).toBe(e.modality)
    if (e.has_window) {
      expect(m.windowCenter[0]).toBeCloseTo(e.window_center[0], 6)
      expect(m.windowWidth[0]).toBeCloseTo(e.window_width[0], 6)
    } else {
      expect(m.windowCenter).toEqual([])
    }
    // As stored: bad_sequence's Study Instance UID is an anonymiser's hash, JLSL has none.
    expect(typeof m.sopInstanceUid).toBe('string')
  })

  test('is JSON-friendly: no binary or private elements', async () => {
    const m = await dicom.metadata(read('MR2_UNCR.dcm'))
    expect(JSON.parse(JSON.stringify(m))).toEqual(JSON.parse(JSON.stringify(m)))
    for (const value of Object.values(m)) {
      expect(Buffer.isBuffer(value) || ArrayBuffer.isView(value)).toBe(false)
    }
    expect(m).toMatchObject({ modality: 'MR', rows: 1024, columns: 1024, frames: 1 })
    expect(m.transferSyntaxName).toMatch(/Explicit VR Little Endian/i)
  })

  test('render returns the same metadata', async () => {
    const bytes = read('CT_small.dcm')
    const out = await dicom.render(bytes)
    expect(out.metadata).toEqual(await dicom.metadata(bytes))
    expect(out.metadata.pixelSpacing).toHaveLength(2)
  })
})

describe('threads', () => {
  test('16 renders in parallel do not block the event loop', async () => {
    const bytes = read('MR2_UNCR.dcm')
    const histogram = monitorEventLoopDelay({ resolution: 1 })
    let ticks = 0
    const ticker = setInterval(() => ticks++, 1)
    histogram.enable()
    const started = performance.now()
    const outs = await Promise.all(Array.from({ length: 16 }, () => dicom.render(bytes, { thumbnails: [256, 64] })))
    const elapsed = performance.now() - started
    histogram.disable()
    clearInterval(ticker)
    const p99 = histogram.percentile(99) / 1e6
    console.log(`16 renders of MR2_UNCR: ${elapsed.toFixed(0)} ms, event-loop delay p99 ${p99.toFixed(1)} ms, ${ticks} ticks`)
    for (const out of outs) expect(out.image.equals(outs[0].image)).toBe(true)
    expect(p99).toBeLessThan(50)
    expect(ticks).toBeGreaterThan(elapsed / 50)
  })

  // OpenJPEG runs a pool of worker threads for each decode. It must size it by the CPUs
  // this process may run on, not by every CPU of the host (64 threads per frame in a
  // container given 2 of 64). A child process counts its threads during a JPEG 2000
  // render to PNG without thumbnails, which starts no thread of its own, so every thread
  // counted is OpenJPEG's. Pinned to one CPU with taskset it must start none; unpinned,
  // the same count must see the pool, so the pinned zero is not a count that saw nothing.
  const j2kDecodeThreads = (pinned) => {
    const script = `
      const fs = require('node:fs')
      const { dicom } = require(${JSON.stringify(path.join(__dirname, '..'))})
      const threads = () => fs.readdirSync('/proc/self/task').length
      ;(async () => {
        await dicom.render(fs.readFileSync(${JSON.stringify(file('CT_small.dcm'))}), { format: 'png' })
        const before = threads()
        let peak = before
        const timer = setInterval(() => { peak = Math.max(peak, threads()) }, 1)
        await dicom.render(fs.readFileSync(${JSON.stringify(file('RG3_J2KI.dcm'))}), { format: 'png' })
        clearInterval(timer)
        process.stdout.write(String(peak - before))
      })()`
    const [command, args] = pinned ? ['taskset', ['-c', '0', process.execPath]] : [process.execPath, []]
    return Number(execFileSync(command, [...args, '-e', script], { encoding: 'utf8' }))
  }

  test('a JPEG 2000 decode starts no more threads than the CPUs the process may run on', () => {
    expect(j2kDecodeThreads(true)).toBe(0)
    const cpus = os.availableParallelism()
    if (cpus >= 2) {
      const unpinned = j2kDecodeThreads(false)
      expect(unpinned).toBeGreaterThanOrEqual(2)
      expect(unpinned).toBeLessThanOrEqual(cpus)
    }
  })

  test('an already-aborted signal rejects with ABORTED', async () => {
    const signal = AbortSignal.abort()
    await expect(dicom.render(read('CT_small.dcm'), { signal })).rejects.toMatchObject({ code: 'ABORTED' })
    expect(getEventListeners(signal, 'abort')).toHaveLength(0)
  })

  test('aborting in flight rejects what has not finished with ABORTED and removes the listeners', async () => {
    const bytes = read('MR2_UNCR.dcm')
    const controller = new AbortController()
    setMaxListeners(32, controller.signal) // 16 listeners at once is what this test is about
    const calls = Array.from({ length: 16 }, () => dicom.render(bytes, { signal: controller.signal }))
    expect(getEventListeners(controller.signal, 'abort')).toHaveLength(16)
    setTimeout(() => controller.abort(), 5)
    const settled = await Promise.allSettled(calls)
    const codes = settled.map((s) => (s.status === 'fulfilled' ? 'ok' : s.reason.code))
    expect(codes.filter((c) => c !== 'ok' && c !== 'ABORTED')).toEqual([])
    expect(codes).toContain('ABORTED')
    expect(getEventListeners(controller.signal, 'abort')).toHaveLength(0)
  })

  test('a signal that is never aborted does not get in the way', async () => {
    const controller = new AbortController()
    const out = await dicom.render(read('CT_small.dcm'), { signal: controller.signal })
    expect(out.width).toBe(128)
    expect(getEventListeners(controller.signal, 'abort')).toHaveLength(0)
  })
})
