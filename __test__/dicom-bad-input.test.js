'use strict'
// Hostile and broken input: every failure is DICOM_INVALID or DICOM_UNSUPPORTED with a
// message that says what is wrong, never a crash or a hang.
const { execFile } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { types } = require('node:util')
const { dicom } = require('..')
const { read, readFixture, findTag } = require('./dicom-helpers')

const DICOM_CODES = ['DICOM_INVALID', 'DICOM_UNSUPPORTED']
const FUZZER = path.join(__dirname, 'fixtures', 'dicom-fuzz.js')

/** Runs a script with this Node; resolves with how it ended and what it printed. */
function runNode(script, args, nodeFlags = []) {
  return new Promise((resolve) => {
    execFile(process.execPath, [...nodeFlags, script, ...args], { maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      resolve({ code: err ? err.code : 0, signal: err ? err.signal : null, stdout, stderr })
    })
  })
}

async function rejection(input, opts) {
  try {
    await dicom.render(input, opts)
  } catch (err) {
    return err
  }
  throw new Error('render resolved')
}

/** A copy of an explicit VR little endian file (CT_small) with a US element's value replaced. */
function withUS(group, element, value, name = 'CT_small.dcm') {
  const copy = Buffer.from(read(name))
  const at = findTag(copy, group, element, 132 + 12)
  expect(copy.toString('ascii', at + 4, at + 6)).toBe('US')
  copy.writeUInt16LE(value, at + 8)
  return copy
}

describe('broken files', () => {
  const cases = {
    'zero bytes': () => [Buffer.alloc(0), 'DICOM_INVALID', /empty|short|preamble|DICM|not a DICOM/i],
    'a PDF header': () => [Buffer.from('%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n'), 'DICOM_INVALID', /DICM|not a DICOM|preamble/i],
    'a file truncated in the header': () => [read('CT_small.dcm').subarray(0, 200), 'DICOM_INVALID', /.+/],
    'a file truncated in the pixel data': () => [read('MR2_UNCR.dcm').subarray(0, 1_000_000), 'DICOM_INVALID', /.+/],
    'the DICM magic bit-flipped': () => {
      const copy = Buffer.from(read('CT_small.dcm'))
      copy[128 + 3] ^= 0x04
      return [copy, 'DICOM_INVALID', /DICM|not a DICOM|preamble/i]
    },
    'a bit-flipped transfer syntax': () => {
      const copy = Buffer.from(read('CT_small.dcm'))
      const at = copy.indexOf('1.2.840.10008.1.2.1')
      copy[at + 2] ^= 0x01 // "1.2.840…" → "1.3.840…": an unknown transfer syntax
      return [copy, null, /transfer syntax/i]
    },
    'a 60000×60000 claim': () => [withBoth(), 'DICOM_UNSUPPORTED', /60000/],
    'a DICOM object without Pixel Data': () => {
      const bytes = read('CT_small.dcm')
      const at = bytes.lastIndexOf(Buffer.from([0xe0, 0x7f, 0x10, 0x00]))
      return [bytes.subarray(0, at), 'DICOM_UNSUPPORTED', /Pixel Data/]
    },
    'bits allocated 0': () => [withUS(0x0028, 0x0100, 0), null, /bits/i],
    'samples per pixel 4': () => [withUS(0x0028, 0x0002, 4), 'DICOM_UNSUPPORTED', /samples per pixel/i],
    // The parser would read one value and then the rest of the file a byte out of step.
    'a US value 3 bytes long': () => {
      const copy = Buffer.from(read('CT_small.dcm'))
      copy.writeUInt16LE(3, findTag(copy, 0x0028, 0x0010, 132 + 12) + 6)
      return [copy, 'DICOM_INVALID', /\(0028,0010\) \(US\) is 3 bytes long/]
    },
    'an RLE frame claiming 2³² − 1 segments': () => [rleSegments(0xffffffff), 'DICOM_INVALID', /4294967295 segment/],
    'an RLE frame with fewer segments than samples need': () => [rleSegments(0), 'DICOM_INVALID', /0 segment.*needs 2/],
    // dicom-rs's decoder indexed past a short segment and panicked.
    'an RLE segment that decodes short': () => [rleShortSegment(), 'DICOM_INVALID', /RLE segment 1 decodes to \d+ bytes, the frame has 4096 pixels/],
    'a JPEG frame of 48 MiB from 1.5 KiB': () => [jpegBomb(), 'DICOM_UNSUPPORTED', /decompression bomb/],
    // Said "no decoder for transfer syntax Explicit VR Little Endian", a supported one.
    'compressed fragments under an uncompressed transfer syntax': () => {
      const copy = Buffer.from(read('SC_rgb_jpeg_dcmtk.dcm'))
      const at = copy.indexOf('1.2.840.10008.1.2.4.50')
      copy.write('1.2.840.10008.1.2.1\0\0\0', at, 'latin1')
      return [copy, 'DICOM_INVALID', /encapsulated \(compressed fragments\), but its transfer syntax Explicit VR Little Endian/]
    },
    // YBR_RCT/ICT and YBR_PARTIAL_* are a JPEG or JPEG 2000 codec's transform: these rendered as RGB.
    'native pixel data in a codec colour space': () => [
      withPhotometric(read('SC_ybr_full_uncompressed.dcm'), 'YBR_ICT '),
      'DICOM_UNSUPPORTED',
      /YBR_ICT is the colour transform of a JPEG or JPEG 2000 codec, but the pixel data is native/,
    ],
    'RLE pixel data in a codec colour space': () => [
      withPhotometric(readFixture('ybr_full_rle.dcm'), 'YBR_RCT '),
      'DICOM_UNSUPPORTED',
      /YBR_RCT is the colour transform .* but the pixel data is RLE Lossless/,
    ],
    'native YBR_FULL_422 with an odd number of columns': () => [
      withUS(0x0028, 0x0011, 99, 'SC_ybr_full_422_uncompressed.dcm'),
      'DICOM_INVALID',
      /YBR_FULL_422 .* 99 columns must be an even number/,
    ],
  }
  /** A copy with its 8-byte YBR_FULL Photometric Interpretation replaced by another 8 bytes. */
  function withPhotometric(bytes, value) {
    const copy = Buffer.from(bytes)
    const at = findTag(copy, 0x0028, 0x0004, 132 + 12)
    expect(copy.toString('latin1', at + 8, at + 16)).toBe('YBR_FULL')
    copy.write(value, at + 8, 'latin1')
    return copy
  }
  /** A 100x100 RGB JPEG whose data set and SOF0 header both claim 4096x4096 (48 MiB). */
  function jpegBomb() {
    const copy = Buffer.from(read('SC_rgb_jpeg_dcmtk.dcm'))
    const sof = copy.indexOf(Buffer.from([0xff, 0xc0]))
    copy.writeUInt16BE(4096, sof + 5)
    copy.writeUInt16BE(4096, sof + 7)
    for (const element of [0x0010, 0x0011]) copy.writeUInt16LE(4096, findTag(copy, 0x0028, element, 132 + 12) + 8)
    return copy
  }
  /** MR_small_RLE and where its first frame's fragment item starts. */
  function rleFrame() {
    const copy = Buffer.from(read('MR_small_RLE.dcm'))
    // Pixel Data (OB, undefined length), the offset table item, then the first fragment's item.
    const pixelData = findTag(copy, 0x7fe0, 0x0010, 132 + 12)
    const offsetTable = pixelData + 12
    const fragment = offsetTable + 8 + copy.readUInt32LE(offsetTable + 4)
    expect(copy.readUInt32LE(fragment)).toBe(0xe000fffe)
    return [copy, fragment]
  }
  /** The first frame's segment count replaced. */
  function rleSegments(count) {
    const [copy, fragment] = rleFrame()
    copy.writeUInt32LE(count, fragment + 8)
    return copy
  }
  /** The last quarter of the first frame zeroed: literal runs of one byte, half as long. */
  function rleShortSegment() {
    const [copy, fragment] = rleFrame()
    const end = fragment + 8 + copy.readUInt32LE(fragment + 4)
    copy.fill(0, end - Math.floor((end - fragment) / 4), end)
    return copy
  }
  function withBoth() {
    const copy = withUS(0x0028, 0x0010, 60000)
    const at = findTag(copy, 0x0028, 0x0011, 132 + 12)
    copy.writeUInt16LE(60000, at + 8)
    return copy
  }

  test.each(Object.keys(cases))('%s', async (name) => {
    const [bytes, code, message] = cases[name]()
    const started = Date.now()
    const err = await rejection(bytes)
    expect(types.isNativeError(err)).toBe(true)
    expect(DICOM_CODES).toContain(err.code)
    if (code) expect(err.code).toBe(code)
    expect(err.message).toMatch(message)
    expect(Date.now() - started).toBeLessThan(5000)
    // metadata() parses the same header: it fails the same way or succeeds, never crashes.
    await dicom.metadata(bytes).catch((e) => expect(DICOM_CODES).toContain(e.code))
  })
})

test('seeded mutation fuzz: no crash, no hang, bounded memory, only DICOM error codes', async () => {
  // Over all 21 files in a child process: a crash or an abort on a failed allocation
  // ends that process, and its peak RSS is the fuzzing's alone. A corrupt length once
  // made the parser zero-fill 500 MiB for a 7 KiB file; four of those in flight
  // peaked at 1.4 GiB, against about 250 MiB now.
  const cases = Number(process.env.DICOM_FUZZ_CASES || 1000)
  const { code, signal, stdout, stderr } = await runNode(FUZZER, [JSON.stringify({ seed: 0x5eed, cases })], ['--expose-gc'])
  // Decoder panics are caught and returned as errors; none may print to stderr.
  expect({ code, signal, stderr }).toEqual({ code: 0, signal: null, stderr: '' })
  const report = JSON.parse(stdout)
  console.log(`fuzz: ${cases} cases`, report.tally, `slowest ${report.slowest.ms} ms, peak RSS ${report.peakRssMiB} MiB`)
  expect(report.unexpected).toEqual([])
  expect(report.tally.resolved).toBeGreaterThan(0)
  expect(report.tally.DICOM_INVALID + report.tally.DICOM_UNSUPPORTED).toBeGreaterThan(0)
  expect(report.slowest.ms).toBeLessThan(5000)
  expect(report.peakRssMiB).toBeLessThan(512)
})

test('a path to a huge sparse file is refused without reading it', async () => {
  // In a child limited to 2 GiB of address space: reading the file whole, as render
  // once did, fails there at once instead of growing until the OOM killer comes.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'stowage-huge-'))
  const notDicom = path.join(dir, 'disk.img')
  const hugeDicom = path.join(dir, 'huge.dcm')
  fs.writeFileSync(notDicom, '')
  fs.writeFileSync(hugeDicom, read('CT_small.dcm'))
  for (const file of [notDicom, hugeDicom]) fs.truncateSync(file, 2 ** 40)
  const script = `require(${JSON.stringify(path.join(__dirname, '..'))}).dicom.render(process.argv[1])
    .then(() => console.log('resolved'), (e) => console.log(e.code + ': ' + e.message))`
  const render = (file) =>
    new Promise((resolve) => {
      execFile('sh', ['-c', 'ulimit -v 2097152; exec "$0" -e "$1" "$2"', process.execPath, script, file], (err, stdout, stderr) =>
        resolve({ signal: err && err.signal, stdout: stdout.trim(), stderr }),
      )
    })
  try {
    const [plain, dicomTail] = [await render(notDicom), await render(hugeDicom)]
    expect(plain).toEqual({ signal: null, stdout: expect.stringMatching(/^DICOM_INVALID: .*no 'DICM' marker/), stderr: '' })
    expect(dicomTail).toEqual({ signal: null, stdout: expect.stringMatching(/^DICOM_UNSUPPORTED: .*over 4 GiB/), stderr: '' })
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
})
