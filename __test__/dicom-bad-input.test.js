'use strict'
// Hostile and broken input: every failure is DICOM_INVALID or DICOM_UNSUPPORTED with a
// message that says what is wrong, never a crash or a hang.
const { types } = require('node:util')
const { dicom } = require('..')
const { manifest, read, xorshift, findTag } = require('./dicom-helpers')

const DICOM_CODES = ['DICOM_INVALID', 'DICOM_UNSUPPORTED']

async function rejection(input, opts) {
  try {
    await dicom.render(input, opts)
  } catch (err) {
    return err
  }
  throw new Error('render resolved')
}

/** A copy of CT_small (explicit VR little endian) with a US element's value replaced. */
function withUS(group, element, value) {
  const copy = Buffer.from(read('CT_small.dcm'))
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

test('seeded mutation fuzz: every result resolves or rejects with a DICOM code', async () => {
  // The small files, so a few hundred cases stay fast; big ones are covered above.
  const seeds = manifest.filter((e) => e.size_bytes < 600_000).map((e) => read(e.name))
  const next = xorshift(0x5eed)
  const CASES = Number(process.env.DICOM_FUZZ_CASES || 400)
  const tally = { resolved: 0, DICOM_INVALID: 0, DICOM_UNSUPPORTED: 0 }
  const unexpected = []
  const mutate = (source) => {
    let buf = Buffer.from(source)
    const edits = 1 + (next() % 6)
    for (let k = 0; k < edits; k++) {
      const at = next() % buf.length
      switch (next() % 5) {
        case 0: // flip a bit, most often in the header where it matters
          buf[next() % Math.min(buf.length, 2048)] ^= 1 << (next() % 8)
          break
        case 1: // random byte
          buf[at] = next() & 0xff
          break
        case 2: // 0xFFFF lengths and counts
          buf.writeUInt16LE(0xffff, Math.min(at, buf.length - 2))
          break
        case 3: // truncate
          buf = buf.subarray(0, Math.max(1, at))
          break
        case 4: // duplicate a chunk
          buf = Buffer.concat([buf.subarray(0, at), buf.subarray(at, at + (next() % 512)), buf.subarray(at)])
          break
      }
    }
    return buf
  }
  const inputs = Array.from({ length: CASES }, (_, i) => [i, mutate(seeds[next() % seeds.length])])
  // Four at a time: the thread pool stays busy without queueing everything at once.
  for (let i = 0; i < inputs.length; i += 4) {
    await Promise.all(
      inputs.slice(i, i + 4).map(async ([n, bytes]) => {
        try {
          await dicom.render(bytes, { thumbnails: [64] })
          tally.resolved++
        } catch (err) {
          if (DICOM_CODES.includes(err.code)) tally[err.code]++
          else unexpected.push({ case: n, code: err.code, message: err.message })
        }
      }),
    )
  }
  console.log(`fuzz: ${CASES} cases`, tally)
  expect(unexpected).toEqual([])
  expect(tally.DICOM_INVALID + tally.DICOM_UNSUPPORTED).toBeGreaterThan(0)
})
