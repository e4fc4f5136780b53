'use strict'
// storage.ingestDicom on a dual-write manager: a local folder and a memory:// cloud.
const fs = require('node:fs')
const path = require('node:path')
const { StorageManager, dicom } = require('..')
const crypto = require('node:crypto')
const { tmpDir, sha256, s3Options } = require('./helpers')
const { read, file, webpInfo } = require('./dicom-helpers')

const IMMUTABLE = 'public, max-age=2592000, immutable'
const IMAGE = 'public, max-age=86400'

function dual() {
  const local = tmpDir('dicom-ingest')
  const storage = new StorageManager({ local, cloud: 'memory://', mode: 'dual', read: 'cloud-first' })
  // A second manager on the same folder reads the local side only.
  const localOnly = new StorageManager({ local, mode: 'local' })
  return { local, storage, localOnly }
}

const allKeys = (keys) => [keys.original, keys.image, keys.thumbnails[256], keys.thumbnails[64]]

describe('ingestDicom', () => {
  test('stores the original, the rendition and two thumbnails on both sides', async () => {
    const { local, storage, localOnly } = dual()
    const bytes = read('US1_J2KR.dcm')
    const r = await storage.ingestDicom(bytes)
    const m = r.metadata
    const [study, series, sop] = [m.studyInstanceUid, m.seriesInstanceUid, m.sopInstanceUid]
    expect(r.keys).toEqual({
      original: `dicom/${study}/${series}/${sop}.dcm`,
      image: `images/${study}/${series}/${sop}.webp`,
      thumbnails: { 256: `thumbnails/${sop}_256.webp`, 64: `thumbnails/${sop}_64.webp` },
    })
    expect(m).toEqual(await dicom.metadata(bytes))
    expect(r.results.map((x) => [x.key, x.local, x.cloud])).toEqual(allKeys(r.keys).map((k) => [k, 'written', 'written']))

    const expected = {
      [r.keys.original]: ['application/dicom', IMMUTABLE],
      [r.keys.image]: ['image/webp', IMAGE],
      [r.keys.thumbnails[256]]: ['image/webp', IMAGE],
      [r.keys.thumbnails[64]]: ['image/webp', IMAGE],
    }
    for (const [key, [contentType, cacheControl]] of Object.entries(expected)) {
      for (const [manager, location] of [[storage, 'cloud'], [localOnly, 'local']]) {
        const info = await manager.head(key)
        expect({ key, location: info.location, contentType: info.contentType, cacheControl: info.cacheControl }).toEqual({ key, location, contentType, cacheControl })
        expect(info.metadata).toMatchObject({ sop_instance_uid: sop, study_instance_uid: study })
      }
      expect(fs.existsSync(path.join(local, key))).toBe(true)
    }

    const original = await storage.get(r.keys.original)
    expect(sha256(original)).toBe(sha256(bytes))
    expect(sha256(await localOnly.get(r.keys.original))).toBe(sha256(bytes))

    const image = webpInfo(await storage.get(r.keys.image))
    expect([image.width, image.height]).toEqual([640, 480])
    for (const size of [256, 64]) {
      const thumb = webpInfo(await storage.get(r.keys.thumbnails[size]))
      expect(Math.max(thumb.width, thumb.height)).toBe(size)
      expect(thumb.width).toBeLessThanOrEqual(size)
      expect(thumb.height).toBeLessThanOrEqual(size)
      expect(thumb.width / thumb.height).toBeCloseTo(640 / 480, 1)
    }
  })

  test('ingesting twice gives the same keys and bytes', async () => {
    const { storage } = dual()
    const first = await storage.ingestDicom(file('CT_small.dcm'))
    const before = await Promise.all(allKeys(first.keys).map((k) => storage.get(k)))
    const second = await storage.ingestDicom(read('CT_small.dcm'))
    expect(second.keys).toEqual(first.keys)
    expect(second.results.map((x) => x.sha256)).toEqual(first.results.map((x) => x.sha256))
    const after = await Promise.all(allKeys(first.keys).map((k) => storage.get(k)))
    after.forEach((buf, i) => expect(buf.equals(before[i])).toBe(true))
    const listed = await storage.list()
    expect(listed.objects.map((o) => o.key).sort()).toEqual(allKeys(first.keys).sort())
  })

  test('a multi-frame instance gets a rendition of frame 0', async () => {
    const { storage } = dual()
    const r = await storage.ingestDicom(read('examples_ybr_color.dcm'))
    expect(r.metadata.frames).toBe(30)
    const frame0 = await dicom.render(read('examples_ybr_color.dcm'))
    expect((await storage.get(r.keys.image)).equals(frame0.image)).toBe(true)
  })

  test('a PDF rejects with DICOM_INVALID and writes nothing', async () => {
    const { storage, localOnly } = dual()
    const pdf = Buffer.from('%PDF-1.7\n1 0 obj\n<< /Type /Catalog >>\nendobj\n')
    await expect(storage.ingestDicom(pdf)).rejects.toMatchObject({ code: 'DICOM_INVALID' })
    expect((await storage.list()).objects).toEqual([])
    expect((await localOnly.list()).objects).toEqual([])
  })

  test('an instance whose UID is not digits and dots is refused before any write', async () => {
    const { storage } = dual()
    const bytes = Buffer.from(read('CT_small.dcm'))
    const sop = (await dicom.metadata(bytes)).sopInstanceUid
    // The data set's copy (the last one; the file meta has the first), same length so
    // the element stays well-formed: only the value is bad.
    const at = bytes.lastIndexOf(sop)
    expect(at).toBeGreaterThan(bytes.indexOf(sop))
    bytes.write('a/b', at, 'ascii')
    const err = await storage.ingestDicom(bytes).then(() => null, (e) => e)
    expect(err).toMatchObject({ code: 'DICOM_INVALID', message: expect.stringContaining('SOP Instance UID') })
    expect((await storage.list()).objects).toEqual([])
  })

  test('shared files whose UIDs cannot be keys are refused: an anonymiser hash, a missing UID', async () => {
    const { storage } = dual()
    await expect(storage.ingestDicom(read('bad_sequence.dcm'))).rejects.toMatchObject({ code: 'DICOM_INVALID', message: expect.stringContaining('Study Instance UID') })
    await expect(storage.ingestDicom(read('JLSL_16_15_1_1F.dcm'))).rejects.toMatchObject({ code: 'DICOM_INVALID', message: expect.stringContaining('missing') })
    expect((await storage.list()).objects).toEqual([])
  })

  test('a missing path rejects with NOT_FOUND; bad options with INVALID_CONFIG', async () => {
    const { storage } = dual()
    await expect(storage.ingestDicom('/nonexistent/stowage.dcm')).rejects.toMatchObject({ code: 'NOT_FOUND' })
    await expect(storage.ingestDicom('/dev/zero')).rejects.toMatchObject({ code: 'DICOM_INVALID', message: expect.stringContaining('device') })
    await expect(storage.ingestDicom(read('CT_small.dcm'), { quality: 0 })).rejects.toMatchObject({ code: 'INVALID_CONFIG' })
    expect((await storage.list()).objects).toEqual([])
  })

  test('a rendition the local folder cannot hold fails the ingest, and the writes under way still reach both sides', async () => {
    // Cut short when a thumbnail's write failed, the image's dual write was left on
    // the local side only, with its journal row hidden from this manager's repair().
    const local = tmpDir('ingest-cut')
    fs.writeFileSync(path.join(local, 'thumbnails'), 'a file the app keeps here')
    const { cloud, cloudOptions } = s3Options()
    const options = { cloud: `${cloud}/c${crypto.randomBytes(3).toString('hex')}`, cloudOptions }
    const storage = new StorageManager({ local, mode: 'dual', ...options })
    const cloudView = new StorageManager({ local: tmpDir('ingest-cut-view'), mode: 'cloud', ...options })
    try {
      const bytes = read('MR2_UNCR.dcm')
      await expect(storage.ingestDicom(bytes, { lossless: true })).rejects.toMatchObject({ code: 'INVALID_KEY', message: expect.stringContaining('thumbnails/') })
      const m = await dicom.metadata(bytes)
      const image = `images/${m.studyInstanceUid}/${m.seriesInstanceUid}/${m.sopInstanceUid}.webp`
      const written = sha256(fs.readFileSync(path.join(local, image)))
      expect(sha256(await cloudView.get(image))).toBe(written)
      expect(await storage.pendingRepairs()).toBe(0)
    } finally {
      await storage.close()
      await cloudView.close()
    }
  })

  test('lossless renditions when asked', async () => {
    const { storage } = dual()
    const r = await storage.ingestDicom(read('CT_small.dcm'), { lossless: true })
    expect(webpInfo(await storage.get(r.keys.image)).chunk).toBe('VP8L')
  })

  test('effort reaches the stored rendition and thumbnails', async () => {
    const { storage } = dual()
    const bytes = read('CT_small.dcm')
    const r = await storage.ingestDicom(bytes, { effort: 0 })
    const rendered = await dicom.render(bytes, { effort: 0, thumbnails: [256, 64] })
    const byDefault = await dicom.render(bytes, { thumbnails: [256, 64] })
    expect(rendered.image.equals(byDefault.image)).toBe(false)
    expect((await storage.get(r.keys.image)).equals(rendered.image)).toBe(true)
    expect((await storage.get(r.keys.thumbnails[64])).equals(rendered.thumbnails[64])).toBe(true)
    await expect(storage.ingestDicom(bytes, { effort: 7 })).rejects.toMatchObject({ code: 'INVALID_CONFIG', message: expect.stringContaining('effort') })
  })
})
