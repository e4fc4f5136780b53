'use strict'
// Shared by the DICOM suites: the shared test set, PNG decoding and image headers.
const fs = require('node:fs')
const path = require('node:path')
const { PNG } = require('pngjs')

const DICOM_DIR = process.env.STOWAGE_DICOM_DIR || path.join(__dirname, '..', '..', 'shared', 'dicom')
const manifest = JSON.parse(fs.readFileSync(path.join(DICOM_DIR, 'manifest.json'), 'utf8')).files
const file = (name) => path.join(DICOM_DIR, name)
const read = (name) => fs.readFileSync(file(name))
const entry = (name) => manifest.find((e) => e.name === name)
/** Shared files re-encoded by other encoders (fixtures/dicom/make.py). */
const FIXTURE_DIR = path.join(__dirname, 'fixtures', 'dicom')
const readFixture = (name) => fs.readFileSync(path.join(FIXTURE_DIR, name))

/** `{ width, height, channels, data }` with 1 (gray) or 3 (RGB) samples per pixel. */
function decodePng(buffer) {
  const png = PNG.sync.read(buffer)
  // colorType 0 = gray, 4 = gray + alpha; pngjs always expands to RGBA.
  const channels = png.colorType === 0 || png.colorType === 4 ? 1 : 3
  const data = Buffer.alloc(png.width * png.height * channels)
  for (let p = 0, n = png.width * png.height; p < n; p++) {
    for (let c = 0; c < channels; c++) data[p * channels + c] = png.data[p * 4 + c]
  }
  return { width: png.width, height: png.height, channels, data }
}

/** Dimensions from a WebP header (lossy VP8, lossless VP8L or extended VP8X). */
function webpInfo(buf) {
  if (buf.toString('ascii', 0, 4) !== 'RIFF' || buf.toString('ascii', 8, 12) !== 'WEBP') {
    throw new Error('not a WebP file')
  }
  const chunk = buf.toString('ascii', 12, 16)
  if (chunk === 'VP8 ') {
    if (buf[23] !== 0x9d || buf[24] !== 0x01 || buf[25] !== 0x2a) throw new Error('bad VP8 start code')
    return { chunk, width: buf.readUInt16LE(26) & 0x3fff, height: buf.readUInt16LE(28) & 0x3fff }
  }
  if (chunk === 'VP8L') {
    if (buf[20] !== 0x2f) throw new Error('bad VP8L signature')
    const bits = buf.readUInt32LE(21)
    return { chunk, width: (bits & 0x3fff) + 1, height: ((bits >>> 14) & 0x3fff) + 1 }
  }
  if (chunk === 'VP8X') {
    return { chunk, width: buf.readUIntLE(24, 3) + 1, height: buf.readUIntLE(27, 3) + 1 }
  }
  throw new Error(`unknown WebP chunk ${chunk}`)
}

/** Dimensions from a JPEG's first SOFn marker. */
function jpegInfo(buf) {
  if (buf[0] !== 0xff || buf[1] !== 0xd8) throw new Error('not a JPEG file')
  let i = 2
  while (i + 9 < buf.length) {
    if (buf[i] !== 0xff) throw new Error(`bad JPEG marker at ${i}`)
    const marker = buf[i + 1]
    const len = buf.readUInt16BE(i + 2)
    if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) {
      return { height: buf.readUInt16BE(i + 5), width: buf.readUInt16BE(i + 7), components: buf[i + 9] }
    }
    i += 2 + len
  }
  throw new Error('no SOF marker')
}

/** xorshift32: the same cases on every run, so a failure reproduces. */
function xorshift(seed) {
  let x = seed >>> 0 || 1
  return () => {
    x ^= x << 13
    x >>>= 0
    x ^= x >>> 17
    x ^= x << 5
    x >>>= 0
    return x
  }
}

/** Offset of the first occurrence of a tag's little-endian bytes at or after `from`. */
function findTag(buf, group, element, from = 0) {
  const needle = Buffer.alloc(4)
  needle.writeUInt16LE(group, 0)
  needle.writeUInt16LE(element, 2)
  return buf.indexOf(needle, from)
}

module.exports = { DICOM_DIR, FIXTURE_DIR, manifest, file, read, readFixture, entry, decodePng, webpInfo, jpegInfo, xorshift, findTag }
