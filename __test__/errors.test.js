'use strict'
// Failures a user will meet first: bad settings, wrong credentials, a missing bucket.
// Each has a stable code, and no message carries a secret.
const fs = require('node:fs')
const path = require('node:path')
const { execFileSync } = require('node:child_process')
const { StorageManager, ErrorCode } = require('..')
const { tmpDir, s3Options, azureOptions, servers, runPrefix, sha256, bytes, s3ObjectFile } = require('./helpers')
const { expectCode } = require('./conformance')

function noSecretIn(err, secret) {
  expect(String(err.message)).not.toContain(secret)
  expect(JSON.stringify(err)).not.toContain(secret)
}

/** `StorageManager.fromEnv()` in a child process with the S3_BUCKET `b` and `vars` set
 * (Jest's sandboxed process.env never reaches the real environment): 'constructed', or
 * the error's code and message. */
function fromEnvWith(vars) {
  const script = `
    const { StorageManager } = require(${JSON.stringify(require.resolve('..'))})
    try { StorageManager.fromEnv(); console.log('constructed') } catch (e) { console.log(e.code, e.message) }`
  return execFileSync(process.execPath, ['-e', script], {
    encoding: 'utf8',
    env: { ...process.env, S3_BUCKET: 'b', STOWAGE_LOCAL: tmpDir('env'), STOWAGE_MODE: 'cloud', ...vars },
  }).trim()
}

/** A folder whose subfolders are the stores of the nesting cases below. */
const NESTING = tmpDir('nesting')
const JOURNAL_HOME = tmpDir('journal-home')

describe('configuration', () => {
  test.each([
    [{ local: tmpDir('c'), mode: 'sideways' }, 'mode'],
    [{ local: tmpDir('c'), read: 'sometimes' }, 'read'],
    [{ local: tmpDir('c'), mode: 'dual' }, 'cloud'],
    [{ cloud: 'ftp://x' , mode: 'cloud' }, 'cloud'],
    [{ local: tmpDir('c'), partSize: 1024 }, 'partSize'],
    [{ local: tmpDir('c'), concurrency: 0 }, 'concurrency'],
    [{ local: tmpDir('c'), cloud: 's3://', mode: 'dual' }, 'cloud'],
    // A mistyped URL, not a folder named "s3:bucket" under the working directory.
    [{ local: tmpDir('c'), cloud: 's3:bucket', mode: 'dual' }, 'cloud'],
    [{ local: tmpDir('c'), cloud: 'AZ:/container', mode: 'dual' }, 'cloud'],
    [{ local: `${tmpDir('c')}/a\0b` }, 'local'],
    [{ local: tmpDir('c'), cloud: `file://${tmpDir('c')}/x%00y`, mode: 'dual' }, 'cloud'],
    [{}, 'local'],
    // A file where the folder should be: the journal could not be opened under it.
    [{ local: __filename }, 'local'],
    [{ local: `${__filename}/uploads` }, 'local'],
    // stowage's own HTTP client took plain http:// whatever allowHttp said.
    [{ local: tmpDir('c'), cloud: 's3://b', mode: 'dual', cloudOptions: { endpoint: 'http://127.0.0.1:9000' } }, 'cloudOptions.allowHttp'],
    [{ local: tmpDir('c'), cloud: 'az://c', mode: 'dual', cloudOptions: { endpoint: 'http://127.0.0.1:10000/acct', allowHttp: false } }, 'cloudOptions.allowHttp'],
    // object_store's signer parsed each request's URL again and panicked on these:
    // every call was "Panic in async function", and a dual put wrote neither side.
    [{ local: tmpDir('c'), ...s3Options({ endpoint: 'http://127.0.0.1:99999' }), mode: 'dual' }, 'cloudOptions.endpoint'],
    [{ local: tmpDir('c'), ...s3Options({ endpoint: 'http://[::1:9000' }), mode: 'dual' }, 'cloudOptions.endpoint'],
    // A line break in a header made object_store panic at the first write.
    [{ local: tmpDir('c'), ...s3Options({ storageClass: 'STANDARD\nx-amz-acl: public-read' }), mode: 'dual' }, 'storage class'],
    [{ local: tmpDir('c'), cacheControl: { png: 'private\r\n' } }, 'cacheControl.png'],
    // Credentials go out in headers: a line break made object_store's signer panic on
    // every request, and a dual store could then neither read nor write either side.
    [{ local: tmpDir('c'), ...s3Options({ sessionToken: 'part-1\npart-2' }), mode: 'dual' }, 'cloudOptions.sessionToken'],
    [{ local: tmpDir('c'), ...s3Options({ region: 'us-east-1\r\n' }), mode: 'dual' }, 'cloudOptions.region'],
    // An empty journal path was a throw-away journal: queued repairs vanished on reopen.
    [{ local: tmpDir('c'), journal: '' }, 'journal'],
    // Whitespace at a path's ends (a quoting slip) made a folder named "   " or " .".
    [{ local: '   ' }, 'local: "   " has whitespace at its start or end'],
    [{ local: ` ${tmpDir('c')}` }, 'has whitespace at its start or end'],
    [{ local: tmpDir('c'), journal: `${tmpDir('c')}/j.db\n` }, 'journal: '],
    // SQLite keeps `:memory:` in memory: queued repairs would vanish with the process.
    [{ local: tmpDir('c'), journal: ':memory:' }, 'journal'],
    // Folders that cannot be made were NOT_FOUND or ALREADY_EXISTS, naming no option.
    [{ local: tmpDir('c'), journal: `${__filename}/journal.db` }, 'journal'],
    [{ local: tmpDir('c'), journal: '/proc/stowage-none/journal.db' }, 'journal'],
    [{ local: '/proc/stowage-none/uploads' }, 'local'],
    [{ local: tmpDir('c'), cloud: 'file:///proc/stowage-none/cloud', mode: 'dual' }, 'cloud'],
    [{ local: tmpDir('c'), cacheControl: 'private' }, 'cacheControl: expected an object'],
    // A store inside another: its objects were listed, migrated and deleted as keys.
    [{ local: tmpDir('c'), ...s3Options(), mode: 'cloud', tiers: { warm: `${s3Options().cloud}/archive` } }, 'tiers.warm: is inside cloud'],
    [{ local: NESTING, cloud: `file://${NESTING}/cloud`, mode: 'dual' }, 'cloud: is inside local'],
    [{ local: `${NESTING}/uploads`, tiers: { cold: `file://${NESTING}` } }, 'local: is inside tiers.cold'],
    // The same folder twice was taken: a migration copied each file onto itself.
    [{ local: NESTING, cloud: `file://${NESTING}/`, mode: 'dual' }, 'cloud: is the same folder as local'],
    [{ local: NESTING, cloud: 'memory://', mode: 'cloud', tiers: { warm: `file://${NESTING}` } }, 'tiers.warm: is the same folder as local'],
    // A journal among a store's files: list showed it and delete('j.db') removed the live journal.
    [{ local: JOURNAL_HOME, journal: `${JOURNAL_HOME}/j.db` }, "journal: is among local's files"],
    [{ local: tmpDir('c'), cloud: `file://${JOURNAL_HOME}`, mode: 'dual', journal: `${JOURNAL_HOME}/new/j.db` }, "journal: is among cloud's files"],
    [{ local: JOURNAL_HOME, journal: `${JOURNAL_HOME}/.stowage` }, "journal: is among local's files"],
    // Parts of a store URL that name no place were dropped: the write went to AWS's
    // s3://host, in the hot tier's class, with none of the credentials in the URL.
    [{ local: tmpDir('c'), cloud: 's3://minio.lan:9000/bucket', mode: 'dual' }, 'cloud: has a port'],
    [{ local: tmpDir('c'), cloud: 's3://bucket?storageClass=GLACIERX', mode: 'dual' }, 'cloud: has a ?query'],
    [{ local: tmpDir('c'), cloud: 'az://container#x', mode: 'dual' }, 'cloud: has a #fragment'],
    [{ local: tmpDir('c'), cloud: 's3://AKIDEXAMPLE:s3cr3t@bucket', mode: 'dual' }, 'cloud: carries user info'],
    [{ local: tmpDir('c'), ...s3Options(), mode: 'cloud', tiers: { warm: 's3://b?storageClass=STANDARD_IA#cold' } }, 'tiers.warm: has a #fragment'],
    [{ local: 'file:///tmp/stowage-uploads?x=1' }, 'local: has a ?query'],
    // Keys were appended after the query: every URL pointed at the same path.
    [{ local: tmpDir('c'), presign: { cdnBaseUrl: 'https://cdn.example/files?token=t0k3n' } }, 'presign.cdnBaseUrl'],
    [{ local: tmpDir('c'), presign: { localBaseUrl: 'https://app.example/f#x', localSecret: 'x'.repeat(32) } }, 'presign.localBaseUrl'],
  ])('%j throws INVALID_CONFIG naming %s', (options, field) => {
    let thrown
    try {
      new StorageManager(options)
    } catch (e) {
      thrown = e
    }
    // Jest's sandbox has its own Error class; the addon's errors come from Node's realm.
    expect(Object.prototype.toString.call(thrown)).toBe('[object Error]')
    expect(thrown.code).toBe('INVALID_CONFIG')
    expect(thrown.message).toContain(field)
  })

  test('StorageManager called without new throws a TypeError and wraps nothing', () => {
    // It returned globalThis with a manager (journal open) wrapped into it.
    const options = { local: tmpDir('no-new') }
    for (const call of [() => StorageManager(options), () => StorageManager.call({}, options)]) {
      let thrown
      try {
        call()
      } catch (e) {
        thrown = e
      }
      expect(thrown?.name).toBe('TypeError')
      expect(thrown.message).toBe("Class constructor StorageManager cannot be invoked without 'new'")
    }
    expect(fs.readdirSync(options.local)).toEqual([])
  })

  test('a refused store inside local leaves no journal there, which local would list as a key', async () => {
    const local = tmpDir('nested-journal')
    fs.writeFileSync(path.join(local, 'a.txt'), 'hello')
    expect(() => new StorageManager({ local, cloud: `file://${local}/sub`, mode: 'dual' })).toThrow(/cloud: is inside local/)
    expect(() => new StorageManager({ local, cloud: `file://${local}`, mode: 'dual' })).toThrow(/cloud: is the same folder as local/)
    expect(() => new StorageManager({ local, journal: `${local}/j.db` })).toThrow(/journal: is among local's files/)
    expect(fs.readdirSync(local, { recursive: true }).sort()).toEqual(['a.txt', 'sub'])
    // The store's own .stowage folder may hold it: its keys are refused.
    const own = new StorageManager({ local, journal: `${local}/.stowage/other.db` })
    await own.put('b.txt', 'b')
    expect((await own.list()).objects.map((o) => o.key)).toEqual(['a.txt', 'b.txt'])
    await own.close()
    fs.rmSync(path.join(local, 'b.txt'))
    const storage = new StorageManager({ local })
    expect((await storage.list()).objects.map((o) => o.key)).toEqual(['a.txt'])
    await storage.close()
  })

  test('a relative journal path starting with file: is a file of that name, not an SQLite URI', () => {
    // As a URI, `file:j.db?mode=memory` was a journal in memory, gone with the process.
    const cwd = tmpDir('uri-journal')
    const addon = JSON.stringify(path.resolve(__dirname, '..'))
    const script = `const { StorageManager } = require(${addon})
      const s = new StorageManager({ local: 'files', journal: 'file:j.db?mode=memory' })
      s.put('a.txt', 'x').then(() => s.close())`
    execFileSync(process.execPath, ['-e', script], { cwd })
    expect(fs.statSync(path.join(cwd, 'file:j.db?mode=memory')).size).toBeGreaterThan(0)
  })

  // napi's integer conversions would wrap or truncate these without a word: -1 retries
  // became 4294967295, a concurrency of 2 ** 32 + 4 became 4, NaN became 0.
  test.each([
    [{ concurrency: 2 ** 32 + 4 }, 'concurrency', 'in 1..=256, got 4294967300'],
    [{ partSize: 2 ** 53 }, 'partSize', 'in 5242880..=5368709120, got 9007199254740992'],
    [{ cloud: 'memory://', mode: 'dual', cloudOptions: { maxRetries: -1 } }, 'cloudOptions.maxRetries', 'got -1'],
    [{ cloud: 'memory://', mode: 'dual', cloudOptions: { requestTimeoutMs: 1.5 } }, 'cloudOptions.requestTimeoutMs', 'got 1.5'],
    [{ cloud: 'memory://', mode: 'dual', cloudOptions: { requestTimeoutMs: 0 } }, 'cloudOptions.requestTimeoutMs', 'got 0'],
    [{ cloud: 'memory://', mode: 'dual', tiers: { warm: 'memory://', warmOptions: { retryTimeoutMs: NaN } } }, 'tiers.warmOptions.retryTimeoutMs', 'got NaN'],
    [{ partSize: NaN }, 'partSize', 'got NaN'],
    [{ cloud: 'memory://', mode: 'dual', outageCooldownMs: -5 }, 'outageCooldownMs', 'got -5'],
    [{ presign: { expiresIn: Infinity } }, 'presign.expiresIn', 'got Infinity'],
  ])('a number that is not a whole number in range: %j names %s', (options, field, got) => {
    let thrown
    try {
      new StorageManager({ local: tmpDir('n'), ...options })
    } catch (e) {
      thrown = e
    }
    expect(thrown).toMatchObject({ code: 'INVALID_CONFIG', message: expect.stringContaining(field) })
    expect(thrown.message).toContain(got)
  })

  test('a part size above the default multipart threshold raises it; a threshold set below the part size names both', async () => {
    // The default threshold refused partSize 200 MiB, naming multipartThreshold, which was never set.
    const storage = new StorageManager({ local: tmpDir('parts'), cloud: 'memory://', mode: 'dual', partSize: 200 * 2 ** 20 })
    const data = bytes(300_000, 5)
    expect((await storage.put('k.bin', data)).sha256).toBe(sha256(data))
    await storage.close()
    expect(() => new StorageManager({ local: tmpDir('parts'), multipartThreshold: 6 * 2 ** 20 })).toThrow(
      expect.objectContaining({ code: 'INVALID_CONFIG', message: 'invalid multipartThreshold: 6291456 is below partSize (10485760): set it to at least partSize' }),
    )
  })

  test('call arguments are whole numbers too; Infinity ends a range', async () => {
    const storage = new StorageManager({
      local: tmpDir('n-calls'),
      presign: { localBaseUrl: 'https://app.example/files', localSecret: 'a-local-secret-of-at-least-32-bytes!!' },
    })
    await storage.put('a.txt', 'hello world')
    const refused = (fn, field) => {
      expect(fn).toThrow(expect.objectContaining({ code: 'INVALID_CONFIG', message: expect.stringContaining(field) }))
    }
    refused(() => storage.presignGet('a.txt', { expiresIn: 2 ** 32 + 3600 }), 'expiresIn: must be a whole number in 1..=604800')
    refused(() => storage.presignPut('a.txt', { expiresIn: -1 }), 'expiresIn')
    refused(() => storage.presignMany(['a.txt'], { expiresIn: 1.5 }), 'expiresIn')
    refused(() => storage.createReadStream('a.txt', { start: 1.5 }), 'start')
    refused(() => storage.migrate({ shard: { index: -1, count: 2 } }), 'shard.index')
    await expectCode(storage.getRange('a.txt', NaN, 4), 'INVALID_CONFIG')
    await expectCode(storage.getRange('a.txt', 0, 4.5), 'INVALID_CONFIG')
    for (const limit of [0, 10_001, 2.5]) await expectCode(storage.list({ limit }), 'INVALID_CONFIG')
    expect((await storage.getRange('a.txt', 6, Infinity)).toString()).toBe('world')
    const chunks = []
    for await (const chunk of storage.createReadStream('a.txt', { start: 6, end: Infinity })) chunks.push(chunk)
    expect(Buffer.concat(chunks).toString()).toBe('world')
    expect((await storage.list({ limit: 10_000 })).objects.map((o) => o.key)).toEqual(['a.txt'])
  })

  // napi converts arguments before a method runs and would throw its own codes
  // (StringExpected, InvalidArg) with Rust type names; every one is the API's now.
  describe('arguments of the wrong type', () => {
    const { dicom } = require('..')
    let storage
    let job
    beforeAll(async () => {
      storage = new StorageManager({
        local: tmpDir('types'),
        cloud: `file://${tmpDir('types-cloud')}`,
        mode: 'dual',
        presign: { localBaseUrl: 'https://app.example/files', localSecret: 'a-local-secret-of-at-least-32-bytes!!' },
      })
      await storage.put('a.txt', 'kept')
      job = storage.migrate({ dryRun: true })
      await job.done
    })
    afterAll(() => {
      storage.stopRepairer()
      storage.stopTierService()
    })
    const buf = Buffer.from('x')
    // [call, code, what the message names]: async methods reject, sync ones throw.
    const rejected = [
      [() => storage.put(123, buf), 'INVALID_KEY', '`key` must be a string, not a number'],
      [() => storage.put('b.txt', 5), 'INVALID_CONFIG', 'data: must be a Buffer, a Uint8Array or a string, not a number'],
      [() => storage.put('b.txt', buf, 'text/plain'), 'INVALID_CONFIG', 'options: must be an object, not a string'],
      [() => storage.put('b.txt', buf, { contentType: 5 }), 'INVALID_CONFIG', 'contentType: expected a string'],
      [() => storage.put('b.txt', buf, { metadata: { a: 5 } }), 'INVALID_CONFIG', 'metadata: expected a string'],
      // napi's own map conversion threw a bare TypeError on null and took 5 for {}.
      [() => storage.put('b.txt', buf, { metadata: null }), 'INVALID_CONFIG', 'metadata: expected an object'],
      [() => storage.put('b.txt', buf, { metadata: 5 }), 'INVALID_CONFIG', 'metadata: expected an object'],
      [() => storage.putFile('b.txt', '/etc/hosts', { metadata: true }), 'INVALID_CONFIG', 'metadata: expected an object'],
      [() => storage.put('b.txt', buf, { onProgress: 'yes' }), 'INVALID_CONFIG', 'onProgress: expected a function'],
      [() => storage.putFile('b.txt', { path: '/etc/hosts' }), 'INVALID_CONFIG', 'path: must be a string, not an object'],
      [() => storage.get(), 'INVALID_KEY', '`key` must be a string, not undefined'],
      [() => storage.get(null), 'INVALID_KEY', 'not null'],
      [() => storage.getRange('a.txt', '0', 2), 'INVALID_CONFIG', 'start: must be a number, not a string'],
      [() => storage.getToFile('a.txt', 7), 'INVALID_CONFIG', 'path: must be a string, not a number'],
      [() => storage.head(['a.txt']), 'INVALID_KEY', 'not an array'],
      [() => storage.exists(Symbol('a')), 'INVALID_KEY', 'not a symbol'],
      [() => storage.delete(1n), 'INVALID_KEY', 'not a bigint'],
      [() => storage.copy('a.txt'), 'INVALID_KEY', '`to` must be a string, not undefined'],
      [() => storage.rename(buf, 'c.txt'), 'INVALID_KEY', '`from` must be a string, not an object'],
      [() => storage.list(5), 'INVALID_CONFIG', 'options: must be an object, not a number'],
      [() => storage.list([]), 'INVALID_CONFIG', 'options: must be an object, not an array'],
      [() => storage.list({ prefix: 1 }), 'INVALID_CONFIG', 'prefix: expected a string'],
      [() => storage.repair({ onProgress: 1 }), 'INVALID_CONFIG', 'onProgress: expected a function'],
      [() => storage.rollback('1'), 'INVALID_CONFIG', 'id: must be a number, not a string'],
      // napi's i64 would have truncated it to migration 1.
      [() => storage.rollback(1.5), 'INVALID_CONFIG', 'id: must be a whole number'],
      [() => storage.tierOf(true), 'INVALID_KEY', 'not a boolean'],
      [() => storage.setTier('a.txt', 5), 'INVALID_CONFIG', "tier: must be 'hot', 'warm' or 'cold', not a number"],
      [() => storage.runTierCycle({ now: 'yesterday' }), 'INVALID_CONFIG', 'now: expected a Date'],
      [() => storage.ingestDicom(42), 'INVALID_CONFIG', 'input: must be a Buffer, a Uint8Array or a path, not a number'],
      [() => dicom.render({}), 'INVALID_CONFIG', 'input: must be a Buffer, a Uint8Array or a path, not an object'],
      [() => dicom.render(buf, { format: 5 }), 'INVALID_CONFIG', 'format: expected a string'],
      [() => dicom.render(buf, { window: { center: 40 } }), 'INVALID_CONFIG', 'window.width: is required'],
      [() => dicom.render(buf, { thumbnails: 256 }), 'INVALID_CONFIG', 'thumbnails: expected an array'],
      [() => dicom.render(buf, { signal: {} }), 'INVALID_CONFIG', 'signal: expected an AbortSignal'],
      // An options object read from null left a bare TypeError pending, thrown with no code.
      [() => dicom.render(buf, { window: null }), 'INVALID_CONFIG', 'window'],
      [() => dicom.render(buf, { signal: null }), 'INVALID_CONFIG', 'signal'],
      [() => dicom.metadata(null), 'INVALID_CONFIG', 'not null'],
    ]
    const thrown = [
      [() => new StorageManager(5), 'INVALID_CONFIG', 'options: must be an object, not a number'],
      [() => new StorageManager({ local: 5 }), 'INVALID_CONFIG', 'local: expected a string'],
      [() => new StorageManager({ cloud: 'memory://', cloudOptions: { allowHttp: 'yes' } }), 'INVALID_CONFIG', 'cloudOptions.allowHttp: expected a boolean'],
      [() => storage.createReadStream(5), 'INVALID_KEY', 'not a number'],
      [() => storage.createReadStream('a.txt', { start: '1' }), 'INVALID_CONFIG', 'start: expected a number'],
      [() => storage.presignGet({}), 'INVALID_KEY', 'not an object'],
      [() => storage.presignPut('a.txt', { expiresIn: '60' }), 'INVALID_CONFIG', 'expiresIn: expected a number'],
      [() => storage.presignMany('a.txt'), 'INVALID_CONFIG', 'keys: must be an array of strings, not a string'],
      // README: "a key that is not a string is INVALID_KEY", in an array too.
      [() => storage.presignMany([1]), 'INVALID_KEY', '`keys[0]` must be a string, not a number'],
      [() => storage.presignMany(['a.txt', null]), 'INVALID_KEY', '`keys[1]` must be a string, not null'],
      [() => storage.presignMany([, 'a.txt']), 'INVALID_KEY', '`keys[0]` must be a string, not undefined'],
      [() => storage.verifySignedUrl(1, 'GET'), 'INVALID_CONFIG', 'url: must be a string, not a number'],
      [() => storage.verifySignedUrl('/files/a.txt', undefined), 'INVALID_CONFIG', 'method: must be a string, not undefined'],
      [() => storage.migrate('all'), 'INVALID_CONFIG', 'options: must be an object, not a string'],
      [() => storage.migrate({ prefix: 1 }), 'INVALID_CONFIG', 'prefix: expected a string'],
      // napi's u32 would have made these 49 days.
      [() => storage.startRepairer({ intervalMs: -1 }), 'INVALID_CONFIG', 'intervalMs: must be a whole number'],
      [() => storage.startTierService({ intervalMs: 1.5 }), 'INVALID_CONFIG', 'intervalMs: must be a whole number'],
      [() => storage.startTierService('hourly'), 'INVALID_CONFIG', 'options: must be an object, not a string'],
    ]
    const noRustIn = (err) => expect(err.message).not.toMatch(/rust type|Vec<|String`|napi|f64|u32|i64/)

    test.each(rejected.map(([call, code, says]) => [String(call).slice(6).replace(/\s+/g, ' '), call, code, says]))(
      '%s rejects', async (_, call, code, says) => {
        let result
        expect(() => { result = call() }).not.toThrow()
        const err = await result.then(() => null, (e) => e)
        expect(err).toMatchObject({ code, message: expect.stringContaining(says) })
        noRustIn(err)
      })

    test.each(thrown.map(([call, code, says]) => [String(call).slice(6).replace(/\s+/g, ' '), call, code, says]))(
      '%s throws', (_, call, code, says) => {
        let err
        try {
          call()
        } catch (e) {
          err = e
        }
        expect(err).toMatchObject({ code, message: expect.stringContaining(says) })
        noRustIn(err)
      })

    test('nothing was written or changed by the refused calls', async () => {
      expect((await storage.list()).objects.map((o) => o.key)).toEqual(['a.txt'])
      expect((await storage.get('a.txt')).toString()).toBe('kept')
      expect(await storage.pendingRepairs()).toBe(0)
    })
  })

  test('a journal path SQLite cannot use is INVALID_CONFIG naming journal, and the file is left as it was', () => {
    const notJournal = path.join(tmpDir('journal'), 'notes.txt')
    const text = 'not a journal\n'.repeat(100)
    fs.writeFileSync(notJournal, text)
    for (const journal of [tmpDir('journal-folder'), notJournal]) {
      let err
      try {
        new StorageManager({ local: tmpDir('c'), journal })
      } catch (e) {
        err = e
      }
      expect(err).toMatchObject({ code: 'INVALID_CONFIG', message: expect.stringContaining('journal') })
    }
    expect(fs.readFileSync(notJournal, 'utf8')).toBe(text)
  })

  test('fromEnv reads the S3_* variables', () => {
    // A child process: Jest's sandboxed process.env never reaches the real environment.
    const s3 = servers().s3
    const script = `
      const { StorageManager } = require(${JSON.stringify(require.resolve('..'))})
      const storage = StorageManager.fromEnv()
      storage.put('from-env/hello.txt', 'hi')
        .then(() => storage.head('from-env/hello.txt'))
        .then((info) => console.log(JSON.stringify(info)))
        .catch((e) => { console.error(e.code, e.message); process.exit(1) })`
    const out = execFileSync(process.execPath, ['-e', script], {
      encoding: 'utf8',
      env: {
        ...process.env,
        S3_ENDPOINT: s3.endpoint.replace('http://', ''),
        S3_USE_SSL: 'false',
        S3_ACCESS_KEY: s3.accessKeyId,
        S3_SECRET_KEY: s3.secretAccessKey,
        S3_BUCKET: s3.bucket,
        S3_REGION: s3.region,
        STOWAGE_LOCAL: tmpDir('env'),
        STOWAGE_MODE: 'cloud',
      },
    })
    expect(JSON.parse(out)).toMatchObject({ key: 'from-env/hello.txt', size: 2, location: 'cloud' })
  })

  test('an empty S3_BUCKET (a shell\'s `S3_BUCKET=`) is unset: no cloud, rather than s3:// with no bucket', () => {
    const script = `
      const { StorageManager } = require(${JSON.stringify(require.resolve('..'))})
      const local = process.argv[1]
      for (const open of [() => new StorageManager({ local }), () => StorageManager.fromEnv()]) {
        try {
          const storage = open()
          storage.put('a.txt', 'local only').then((r) => console.log(r.local, r.cloud))
        } catch (e) { console.log(e.code, e.message) }
      }`
    const out = execFileSync(process.execPath, ['-e', script, tmpDir('env-empty')], {
      encoding: 'utf8',
      env: { ...process.env, S3_BUCKET: '', STOWAGE_LOCAL: tmpDir('env-empty-local'), STOWAGE_MODE: '' },
    })
    expect(out.trim().split('\n')).toEqual(['written skipped', 'written skipped'])
  })
})

describe('credentials and buckets', () => {
  test('S3: wrong secret is ACCESS_DENIED and the secret is not in the message', async () => {
    const secret = 'definitely-wrong-secret-value'
    const storage = new StorageManager({ local: tmpDir('s'), mode: 'cloud', ...s3Options({ secretAccessKey: secret }) })
    const err = await storage.put('x/y.txt', 'data').catch((e) => e)
    expect(err.code).toBe('ACCESS_DENIED')
    noSecretIn(err, secret)
    await expectCode(storage.get('x/y.txt'), 'ACCESS_DENIED')
  })

  test('credentials in an endpoint URL are refused, and not repeated', () => {
    const secret = 'Sup3rS3cretPassw0rd'
    for (const endpoint of [`https://minio:${secret}@minio.internal:9000`, `http://minio:${secret}@127.0.0.1:9000`]) {
      let thrown
      try {
        new StorageManager({ local: tmpDir('s'), ...s3Options({ endpoint }), mode: 'dual' })
      } catch (e) {
        thrown = e
      }
      expect(thrown).toMatchObject({ code: 'INVALID_CONFIG', message: expect.stringContaining('cloudOptions.endpoint') })
      noSecretIn(thrown, secret)
    }
  })

  test('an endpoint is checked without credentials too, and its query (a signature) is not repeated', () => {
    const secret = 'SECRETSIGNATURE123'
    const s3 = (endpoint) => ({ ...s3Options({ endpoint, accessKeyId: undefined, secretAccessKey: undefined }) })
    const cases = [
      s3('ht tp://nowhere'),
      s3(`http://127.0.0.1:9/?X-Amz-Signature=${secret}`),
      s3Options({ endpoint: `http://127.0.0.1:9/?sv=1&sig=${secret}` }),
      azureOptions({ connectionString: `AccountName=acct;AccountKey=a2V5;BlobEndpoint=http://127.0.0.1:1/acct?sig=${secret}%3D` }),
    ]
    for (const options of cases) {
      let thrown
      try {
        new StorageManager({ local: tmpDir('s'), mode: 'cloud', ...options })
      } catch (e) {
        thrown = e
      }
      expect(thrown).toMatchObject({ code: 'INVALID_CONFIG', message: expect.stringMatching(/endpoint/i) })
      noSecretIn(thrown, secret)
    }
  })

  test('S3_USE_SSL takes true/false, 1/0, yes/no, on/off in any case, and refuses the rest', () => {
    const run = (flag) => fromEnvWith({ S3_ENDPOINT: '127.0.0.1:9', S3_USE_SSL: flag })
    for (const flag of ['FALSE', 'off', '0', 'True', 'on', '1']) expect(`${flag}: ${run(flag)}`).toBe(`${flag}: constructed`)
    expect(run('maybe')).toMatch(/^INVALID_CONFIG .*S3_USE_SSL/)
    // Empty is unset, as for every variable: the endpoint without a scheme is https.
    expect(run('')).toBe('constructed')
  })

  test('S3: a request the server can never take is INVALID_CONFIG, not an outage to queue', async () => {
    const local = tmpDir('s')
    const storage = new StorageManager({ local, mode: 'dual', ...s3Options({ storageClass: 'GLACIERX' }) })
    const r = await storage.put('class/a.txt', 'x')
    expect(r).toMatchObject({ local: 'written', cloud: 'queued', errors: [{ side: 'cloud', code: 'INVALID_CONFIG' }] })
    expect(r.errors[0].message).toMatch(/InvalidStorageClass/)
  })

  test('S3: missing bucket is NO_SUCH_BUCKET on reads and lists', async () => {
    // (s3s-fs creates a bucket's folder on PUT, so writes are checked on Azure below.)
    const opts = s3Options()
    const storage = new StorageManager({ local: tmpDir('s'), ...opts, cloud: 's3://no-such-bucket-here', mode: 'cloud' })
    await expectCode(storage.head('a.txt'), 'NO_SUCH_BUCKET')
    await expectCode(storage.exists('a.txt'), 'NO_SUCH_BUCKET')
    await expectCode(storage.get('a.txt'), 'NO_SUCH_BUCKET')
    await expectCode(storage.list(), 'NO_SUCH_BUCKET')
  })

  test('S3: a bucket name the server refuses is INVALID_CONFIG, not an outage', async () => {
    // Two characters: S3 bucket names need at least three, and s3s-fs answers InvalidBucketName.
    const storage = new StorageManager({ local: tmpDir('s'), ...s3Options(), cloud: 's3://b0', mode: 'cloud' })
    const err = await storage.put('a.txt', 'x').catch((e) => e)
    expect(err.code).toBe('INVALID_CONFIG')
    expect(err.message).toMatch(/InvalidBucketName/)
  })

  test('Azure: wrong account key is ACCESS_DENIED and the key is not in the message', async () => {
    const az = servers().azure
    const wrongKey = Buffer.from('not the azurite key at all, 32+ bytes long').toString('base64')
    const cs = az.connectionString.replace(/AccountKey=[^;]+/, `AccountKey=${wrongKey}`)
    const storage = new StorageManager({ local: tmpDir('a'), mode: 'cloud', ...azureOptions({ connectionString: cs }) })
    const err = await storage.put('x/y.txt', 'data').catch((e) => e)
    expect(err.code).toBe('ACCESS_DENIED')
    noSecretIn(err, wrongKey)
  })

  test('Azure: AZURE_STORAGE_CONNECTION_STRING stands in for cloudOptions.connectionString; its key is never shown', () => {
    // A child process: Jest's sandboxed process.env never reaches the real environment.
    const az = servers().azure
    const key = /AccountKey=([^;]+)/.exec(az.connectionString)[1]
    const script = `
      const { StorageManager } = require(${JSON.stringify(require.resolve('..'))})
      try {
        const storage = new StorageManager({ local: process.argv[1], mode: 'cloud', cloud: process.argv[2],
          cloudOptions: { maxRetries: 0 } })
        storage.put('from-env/a.txt', 'from the environment')
          .then(() => storage.head('from-env/a.txt'))
          .then((info) => console.log(info.location, info.size))
          .catch((e) => console.log(e.code, e.message))
      } catch (e) { console.log(e.code, e.message) }`
    const run = (cs) =>
      execFileSync(process.execPath, ['-e', script, tmpDir('az-env'), `az://${az.container}`], {
        encoding: 'utf8',
        env: { ...process.env, AZURE_STORAGE_CONNECTION_STRING: cs },
      }).trim()
    expect(run(az.connectionString)).toBe('cloud 20')
    const typo = run(az.connectionString.replace('AccountKey=', 'AcountKey='))
    expect(typo).toMatch(/^INVALID_CONFIG .*AZURE_STORAGE_CONNECTION_STRING.*unknown setting AcountKey/)
    expect(typo).not.toContain(key)
    const wrongKey = Buffer.from('not the azurite key at all, 32+ bytes long').toString('base64')
    const denied = run(az.connectionString.replace(key, wrongKey))
    expect(denied).toMatch(/^ACCESS_DENIED /)
    expect(denied).not.toContain(wrongKey)
  })

  describe('endpoints from the environment', () => {
    // The store builders read these themselves: they were used unchecked (user info shown
    // in messages, plain http without AWS_ALLOW_HTTP) while URLs were signed for AWS.
    // A child process: Jest's sandboxed process.env never reaches the real environment.
    const script = `
      const { StorageManager } = require(${JSON.stringify(require.resolve('..'))})
      const main = async () => {
        const storage = new StorageManager(JSON.parse(process.argv[1]))
        await storage.put('env-endpoint/a.txt', 'signed for the server in use')
        const url = await storage.presignGet('env-endpoint/a.txt')
        const res = await fetch(url)
        return [new URL(url).host, res.status, await res.text()].join(' ')
      }
      main().then(console.log, (e) => console.log(e.code, e.message))`
    const run = (options, env) =>
      execFileSync(process.execPath, ['-e', script, JSON.stringify({ local: tmpDir('env-endpoint'), mode: 'cloud', ...options })], {
        encoding: 'utf8',
        env: { ...process.env, ...env },
      }).trim()
    const password = 'EnvPassw0rdNotShown'
    const withUser = (endpoint) => endpoint.replace('://', `://admin:${password}@`)

    test('S3: AWS_ENDPOINT_URL and AWS_ENDPOINT are checked as cloudOptions.endpoint is, and signed for', () => {
      const s3 = servers().s3
      const options = s3Options({ endpoint: undefined, allowHttp: undefined, maxRetries: 0 })
      const served = `${new URL(s3.endpoint).host} 200 signed for the server in use`
      expect(run(options, { AWS_ENDPOINT_URL: s3.endpoint, AWS_ALLOW_HTTP: 'true' })).toBe(served)
      expect(run(options, { AWS_ENDPOINT: s3.endpoint })).toMatch(/^INVALID_CONFIG .*AWS_ALLOW_HTTP: AWS_ENDPOINT is plain http/)
      expect(run(options, { AWS_ENDPOINT_URL: 'http://127.0.0.1:99999', AWS_ALLOW_HTTP: 'true' })).toMatch(
        /^INVALID_CONFIG .*AWS_ENDPOINT_URL: .*not a valid URL/,
      )
      const withPassword = run(options, { AWS_ENDPOINT_URL: withUser(s3.endpoint), AWS_ALLOW_HTTP: 'true' })
      expect(withPassword).toMatch(/^INVALID_CONFIG .*AWS_ENDPOINT_URL: must not carry user:password@/)
      expect(withPassword).not.toContain(password)
      // The option wins over every variable, AWS_ENDPOINT_URL_S3 included.
      expect(run(s3Options({ maxRetries: 0 }), { AWS_ENDPOINT_URL_S3: 'http://127.0.0.1:9', AWS_ALLOW_HTTP: 'true' })).toBe(served)
    })

    test('Azure: AZURE_STORAGE_ENDPOINT and AZURE_STORAGE_USE_EMULATOR are where URLs are signed for too', () => {
      const az = servers().azure
      const options = { cloud: `az://${az.container}`, cloudOptions: { maxRetries: 0 } }
      const account = {
        AZURE_STORAGE_ACCOUNT_NAME: /AccountName=([^;]+)/.exec(az.connectionString)[1],
        AZURE_STORAGE_ACCOUNT_KEY: /AccountKey=([^;]+)/.exec(az.connectionString)[1],
      }
      const served = `${new URL(az.blobEndpoint).host} 200 signed for the server in use`
      const endpoint = { ...account, AZURE_STORAGE_ENDPOINT: az.blobEndpoint }
      expect(run(options, { ...endpoint, AZURE_ALLOW_HTTP: 'true' })).toBe(served)
      expect(run(options, endpoint)).toMatch(/^INVALID_CONFIG .*AZURE_ALLOW_HTTP: AZURE_STORAGE_ENDPOINT is plain http/)
      const withPassword = run(options, { ...endpoint, AZURE_STORAGE_ENDPOINT: withUser(az.blobEndpoint), AZURE_ALLOW_HTTP: 'true' })
      expect(withPassword).toMatch(/^INVALID_CONFIG .*AZURE_STORAGE_ENDPOINT: must not carry user:password@/)
      expect(withPassword).not.toContain(password)
      const emulator = { AZURE_STORAGE_USE_EMULATOR: 'true', AZURITE_BLOB_STORAGE_URL: new URL(az.blobEndpoint).origin }
      expect(run(options, emulator)).toBe(served)
      // object_store reads the key under other names too; presigning did not.
      const accessKey = { ...endpoint, AZURE_ALLOW_HTTP: 'true', AZURE_STORAGE_ACCOUNT_KEY: '' }
      expect(run(options, { ...accessKey, AZURE_STORAGE_ACCESS_KEY: account.AZURE_STORAGE_ACCOUNT_KEY })).toBe(served)
      // object_store's builder showed a URL it could not parse whole, password and all.
      const badEmulator = run(options, { ...emulator, AZURITE_BLOB_STORAGE_URL: withUser('http://127.0.0.1:99999') })
      expect(badEmulator).toMatch(/^INVALID_CONFIG invalid AZURITE_BLOB_STORAGE_URL: /)
      const blobEndpoint = withUser('http://127.0.0.1:99999/devstoreaccount1')
      const connectionString = az.connectionString.replace(/BlobEndpoint=[^;]+/, `BlobEndpoint=${blobEndpoint}`)
      const badBlobEndpoint = run({ ...options, cloudOptions: { connectionString, maxRetries: 0 } }, {})
      expect(badBlobEndpoint).toMatch(/^INVALID_CONFIG invalid cloudOptions.connectionString BlobEndpoint: /)
      for (const shown of [badEmulator, badBlobEndpoint]) expect(shown).not.toContain(password)
    })

    test('fromEnv: a bad S3_ENDPOINT names S3_ENDPOINT or S3_USE_SSL, not options the app never set', () => {
      expect(fromEnvWith({ S3_ENDPOINT: 'http://127.0.0.1:9', S3_USE_SSL: 'true' })).toMatch(/^INVALID_CONFIG invalid S3_USE_SSL: S3_ENDPOINT is plain http/)
      expect(fromEnvWith({ S3_ENDPOINT: '127.0.0.1:99999', S3_USE_SSL: 'false' })).toMatch(/^INVALID_CONFIG invalid S3_ENDPOINT: .*not a valid URL/)
      const withPassword = fromEnvWith({ S3_ENDPOINT: `admin:${password}@127.0.0.1:9`, S3_USE_SSL: 'false' })
      expect(withPassword).toMatch(/^INVALID_CONFIG invalid S3_ENDPOINT: must not carry user:password@/)
      expect(withPassword).not.toContain(password)
      // S3_USE_SSL says the scheme of S3_ENDPOINT; AWS_ENDPOINT_URL's is AWS_ALLOW_HTTP's.
      expect(fromEnvWith({ S3_USE_SSL: 'true', AWS_ENDPOINT_URL: 'http://127.0.0.1:9', AWS_ALLOW_HTTP: 'true' })).toBe('constructed')
    })
  })

  test('fromEnv: a bad variable is named, never the option it would have filled', () => {
    // These named `cloud`, `mode`, `cloudOptions.region` or an endpoint nobody set, and
    // S3_BUCKET=s3://b was taken as the bucket "s3" with the prefix "b".
    expect(fromEnvWith({ S3_BUCKET: 's3://radcase' })).toMatch(/^INVALID_CONFIG invalid S3_BUCKET: must be a bucket name/)
    expect(fromEnvWith({ S3_BUCKET: '   ' })).toMatch(/^INVALID_CONFIG invalid S3_BUCKET: /)
    expect(fromEnvWith({ STOWAGE_MODE: 'Cloud' })).toMatch(/^INVALID_CONFIG invalid STOWAGE_MODE: must be local, dual or cloud/)
    expect(fromEnvWith({ S3_REGION: ' eu-west-1' })).toMatch(/^INVALID_CONFIG invalid S3_REGION: must not start or end with spaces/)
    const secret = 'wJalrXUtnFEMI/K7MDENG'
    const keyWithBreak = fromEnvWith({ S3_ACCESS_KEY: 'AKID', S3_SECRET_KEY: `${secret}\nx` })
    expect(keyWithBreak).toMatch(/^INVALID_CONFIG invalid S3_SECRET_KEY: must be printable ASCII$/)
    // The scheme is case-insensitive, as the endpoint check is: HTTP:// is plain http.
    expect(fromEnvWith({ S3_ENDPOINT: 'HTTP://127.0.0.1:9' })).toBe('constructed')
    expect(fromEnvWith({ S3_BUCKET: 'radcase/scans' })).toBe('constructed')
  })

  test('cloud: null is no cloud, where an omitted cloud is S3_BUCKET', async () => {
    // An exported S3_BUCKET was the cloud of every manager that gave none: its objects
    // were listed (and deleted) as the local folder's, and `stowage verify` reported them MISSING.
    const s3 = servers().s3
    const prefix = runPrefix('null-cloud')
    const cloudOnly = new StorageManager({ ...s3Options(), mode: 'cloud' })
    await cloudOnly.put(`${prefix}/in-bucket.txt`, 'only in the bucket')
    const script = `
      const { StorageManager } = require(${JSON.stringify(require.resolve('..'))})
      const options = { local: process.argv[1], mode: 'local' }
      if (process.argv[2] !== 'omitted') options.cloud = JSON.parse(process.argv[2])
      const storage = new StorageManager(options)
      storage.list({ prefix: process.argv[3] }).then((page) => console.log(page.objects.map((o) => o.key).join(',') || 'none'))`
    const env = {
      ...process.env,
      S3_BUCKET: s3.bucket,
      S3_ENDPOINT: s3.endpoint,
      S3_ACCESS_KEY: s3.accessKeyId,
      S3_SECRET_KEY: s3.secretAccessKey,
      S3_REGION: s3.region,
    }
    const run = (cloud) => execFileSync(process.execPath, ['-e', script, tmpDir('null-cloud'), cloud, prefix], { encoding: 'utf8', env }).trim()
    expect(run('null')).toBe('none')
    expect(run('omitted')).toBe(`${prefix}/in-bucket.txt`)
    await cloudOnly.delete(`${prefix}/in-bucket.txt`)
    await cloudOnly.close()
  })

  test('S3: a session token from the environment is checked as the option is', () => {
    const script = `
      const { StorageManager } = require(${JSON.stringify(require.resolve('..'))})
      try {
        new StorageManager(JSON.parse(process.argv[1]))
        console.log('constructed')
      } catch (e) { console.log(e.code, e.message) }`
    const options = { local: tmpDir('token-env'), mode: 'dual', ...s3Options() }
    const out = execFileSync(process.execPath, ['-e', script, JSON.stringify(options)], {
      encoding: 'utf8',
      env: { ...process.env, AWS_SESSION_TOKEN: 'secret-token\nsecond-line' },
    }).trim()
    expect(out).toMatch(/^INVALID_CONFIG invalid AWS_SESSION_TOKEN: must be printable ASCII$/)
  })

  test('Azure: a mistyped connection string is INVALID_CONFIG, without the key in the message', () => {
    // Unknown settings were dropped: with its key left out, the store asked the VM's
    // metadata service for a managed identity at the first call.
    const az = servers().azure
    const key = /AccountKey=([^;]+)/.exec(az.connectionString)[1]
    for (const [cs, reason] of [
      [az.connectionString.replace('AccountKey=', 'AcountKey='), 'unknown setting AcountKey'],
      [az.connectionString.replace('AccountKey=', 'AccountKey'), "a key without its `=`"],
      [az.connectionString.replace(/AccountKey=[^;]+/, 'AccountKey='), 'AccountKey is empty'],
    ]) {
      let err
      try {
        new StorageManager({ local: tmpDir('a'), mode: 'cloud', ...azureOptions({ connectionString: cs }) })
      } catch (e) {
        err = e
      }
      expect(err).toMatchObject({ code: 'INVALID_CONFIG', message: expect.stringContaining(reason) })
      expect(err.message).toContain('cloudOptions.connectionString')
      noSecretIn(err, key)
    }
  })

  test("Azure: the portal's SAS connection string, which names the account by its endpoint alone", async () => {
    const { StorageSharedKeyCredential, generateAccountSASQueryParameters, AccountSASPermissions, AccountSASResourceTypes, AccountSASServices } = require('@azure/storage-blob')
    const az = servers().azure
    const account = /AccountName=([^;]+)/.exec(az.connectionString)[1]
    const key = /AccountKey=([^;]+)/.exec(az.connectionString)[1]
    const sas = generateAccountSASQueryParameters(
      {
        expiresOn: new Date(Date.now() + 3_600_000),
        permissions: AccountSASPermissions.parse('rwdlac'),
        resourceTypes: AccountSASResourceTypes.parse('sco').toString(),
        services: AccountSASServices.parse('b').toString(),
      },
      new StorageSharedKeyCredential(account, key),
    ).toString()
    const cs = `BlobEndpoint=${az.blobEndpoint};QueueEndpoint=http://127.0.0.1:1/q;SharedAccessSignature=${sas}`
    const storage = new StorageManager({ local: tmpDir('a'), mode: 'cloud', ...azureOptions({ connectionString: cs }) })
    const data = bytes(3000, 8)
    const k = `${runPrefix('sas')}/a.bin`
    await storage.put(k, data)
    expect(sha256(await storage.get(k))).toBe(sha256(data))
    await storage.close()
  })

  test('Azure: missing container is NO_SUCH_BUCKET', async () => {
    const storage = new StorageManager({ local: tmpDir('a'), mode: 'cloud', ...azureOptions(), cloud: 'az://no-such-container' })
    await expectCode(storage.put('a.txt', 'x'), 'NO_SUCH_BUCKET')
    await expectCode(storage.head('a.txt'), 'NO_SUCH_BUCKET')
  })

  test('a server that is down is UNAVAILABLE after retries, not a hang', async () => {
    const storage = new StorageManager({
      local: tmpDir('d'),
      mode: 'cloud',
      ...s3Options({ endpoint: 'http://127.0.0.1:9', maxRetries: 2, retryTimeoutMs: 1500 }),
    })
    const started = Date.now()
    await expectCode(storage.put('a.txt', 'x'), 'UNAVAILABLE')
    expect(Date.now() - started).toBeLessThan(30000)
  })
})

describe('local root', () => {
  test('a symlink out of the local root is refused', async () => {
    const fs = require('node:fs')
    const path = require('node:path')
    const root = tmpDir('root')
    const outside = tmpDir('outside')
    fs.writeFileSync(path.join(outside, 'secret.txt'), 'secret')
    fs.symlinkSync(outside, path.join(root, 'escape'))
    const storage = new StorageManager({ local: root, mode: 'local' })
    await expectCode(storage.get('escape/secret.txt'), 'INVALID_KEY')
    await expect(storage.put('escape/new.txt', 'x')).rejects.toMatchObject({
      code: 'INVALID_KEY',
      message: `invalid key "escape/new.txt": key leads outside ${fs.realpathSync(root)} through a symlink`,
    })
    expect(fs.existsSync(path.join(outside, 'new.txt'))).toBe(false)
  })

  test('FIFOs, sockets and devices are not objects: not listed, read, migrated or written over', async () => {
    const fs = require('node:fs')
    const net = require('node:net')
    const path = require('node:path')
    const root = tmpDir('special')
    fs.mkdirSync(path.join(root, 'uploads'))
    fs.writeFileSync(path.join(root, 'uploads', 'scan.dcm'), 'regular bytes')
    execFileSync('mkfifo', [path.join(root, 'uploads', 'pipe')])
    const socket = net.createServer().listen(path.join(root, 'uploads', 'app.sock'))
    await new Promise((resolve) => socket.once('listening', resolve))
    try {
      const storage = new StorageManager({ local: root, cloud: `file://${tmpDir('special-cloud')}`, mode: 'local' })
      expect((await storage.list()).objects.map((o) => o.key)).toEqual(['uploads/scan.dcm'])
      // Opening the FIFO would block until a writer came.
      for (const key of ['uploads/pipe', 'uploads/app.sock']) {
        expect(await storage.exists(key)).toBe(false)
        await expectCode(storage.head(key), 'NOT_FOUND')
        await expectCode(storage.get(key), 'NOT_FOUND')
        await expectCode(storage.copy(key, 'copied'), 'NOT_FOUND')
      }
      // Reading any of these would block on the FIFO, never end, or fail as an outage.
      for (const input of [path.join(root, 'uploads', 'pipe'), '/dev/zero', root]) {
        await expect(storage.putFile('k', input)).rejects.toMatchObject({
          code: 'INVALID_CONFIG',
          message: expect.stringContaining(`${input} is not a regular file`),
        })
      }
      // getToFile renames its download into place, which would replace a FIFO (or, as
      // root, a device node such as /dev/null) and fail on a directory after the download.
      for (const dest of [path.join(root, 'uploads', 'pipe'), path.join(root, 'uploads')]) {
        await expect(storage.getToFile('uploads/scan.dcm', dest)).rejects.toMatchObject({
          code: 'INVALID_CONFIG',
          message: expect.stringContaining(`${dest} exists and is not a regular file`),
        })
      }
      expect(fs.statSync(path.join(root, 'uploads', 'pipe')).isFIFO()).toBe(true)
      expect(fs.readdirSync(path.join(root, 'uploads')).sort()).toEqual(['app.sock', 'pipe', 'scan.dcm'])
      const report = await storage.migrate({}).done
      expect(report).toMatchObject({ copied: 1, failed: [] })
    } finally {
      socket.close()
    }
  })

  test('file names of up to 255 bytes are keys; local folders are written under 253 at most', async () => {
    const fs = require('node:fs')
    const path = require('node:path')
    // UTF-8: '€' is three bytes. 253 bytes leave room for the '#n' of a staged local write.
    const fits = `scans/${'€'.repeat(84)}x`
    const tooLong = `scans/${'€'.repeat(84)}xy`
    const data = Buffer.from('x'.repeat(1000))
    const cloud = tmpDir('long-cloud')
    const root = tmpDir('long')
    const storage = new StorageManager({ local: root, cloud: `file://${cloud}`, mode: 'dual' })
    expect(await storage.put(fits, data)).toMatchObject({ local: 'written', cloud: 'written' })
    expect((await storage.get(fits)).equals(data)).toBe(true)
    // Refused before either side is written, instead of a repair that could never succeed.
    await expect(storage.put(tooLong, data)).rejects.toMatchObject({ code: 'INVALID_KEY', message: expect.stringContaining('253 bytes') })
    expect(await storage.pendingRepairs()).toBe(0)
    const cloudOnly = new StorageManager({ local: tmpDir('long-view'), cloud: `file://${cloud}`, mode: 'cloud' })
    expect((await cloudOnly.list()).objects.map((o) => o.key)).toEqual([fits])
    // A 255-byte name a legacy app wrote is an object: listed, read and migrated.
    const legacy = `scans/${'€'.repeat(85)}`
    fs.writeFileSync(path.join(root, legacy), data)
    const localOnly = new StorageManager({ local: root, mode: 'local' })
    expect((await localOnly.list()).objects.map((o) => o.key)).toEqual([fits, legacy].sort())
    expect((await localOnly.get(legacy)).equals(data)).toBe(true)
    // Into a file:// cloud it cannot go, and says why; into object storage it can.
    const intoFolder = await storage.migrate({}).done
    expect(intoFolder.failed.map((f) => [f.key, f.code])).toEqual([[legacy, 'INVALID_KEY']])
    const intoMemory = new StorageManager({ local: root, cloud: 'memory://', mode: 'local' })
    expect(await intoMemory.migrate({}).done).toMatchObject({ copied: 2, failed: [] })
    // Deleting or renaming only names the file, which any file name allows.
    await localOnly.rename(legacy, `${legacy.slice(0, -3)}old`)
    await localOnly.delete(`${legacy.slice(0, -3)}old`)
    expect(fs.readdirSync(path.join(root, 'scans'))).toEqual([fits.slice('scans/'.length)])
    // getToFile's temporary sibling of a 250-byte file name still fits in 255 bytes.
    const dest = path.join(tmpDir('long-dest'), 'd'.repeat(250))
    await storage.getToFile(fits, dest)
    expect(fs.readFileSync(dest).equals(data)).toBe(true)
  })

  test('files written before stowage are served, without a SHA-256', async () => {
    const fs = require('node:fs')
    const path = require('node:path')
    const root = tmpDir('legacy')
    fs.mkdirSync(path.join(root, 'uploads'), { recursive: true })
    fs.writeFileSync(path.join(root, 'uploads', 'old.png'), 'legacy bytes')
    const storage = new StorageManager({ local: root, mode: 'local' })
    expect((await storage.get('uploads/old.png')).toString()).toBe('legacy bytes')
    const info = await storage.head('uploads/old.png')
    expect(info).toMatchObject({ size: 12, contentType: 'image/png', location: 'local' })
    expect(info.sha256 ?? null).toBeNull()
    // A file rewritten behind stowage's back loses its recorded hash instead of lying.
    await storage.put('uploads/tracked.txt', 'v1')
    expect((await storage.head('uploads/tracked.txt')).sha256).toBeTruthy()
    await new Promise((r) => setTimeout(r, 20))
    fs.writeFileSync(path.join(root, 'uploads', 'tracked.txt'), 'v2 longer')
    expect((await storage.head('uploads/tracked.txt')).sha256 ?? null).toBeNull()
  })
})

describe('names a local folder cannot hold', () => {
  test('a file and a folder cannot share a name: INVALID_KEY before either side is written', async () => {
    // Azurite keeps blobs in a database: s3s-fs keeps them as files and folders, with
    // the local side's limits.
    const local = tmpDir('clash')
    const storage = new StorageManager({ local, mode: 'dual', ...azureOptions() })
    const cloud = new StorageManager({ local: tmpDir('clash-view'), mode: 'cloud', ...azureOptions() })
    const p = runPrefix('clash')
    await storage.put(`${p}/report`, 'a file')
    await storage.put(`${p}/dir/x`, 'x')
    // The cloud took these and the local side failed as an outage, queued for a
    // repair that could never succeed.
    for (const write of [
      () => storage.put(`${p}/report/2024.pdf`, 'x'),
      () => storage.put(`${p}/dir`, 'x'),
      () => storage.copy(`${p}/report`, `${p}/dir`),
      () => storage.rename(`${p}/dir/x`, `${p}/report/2024.pdf`),
    ]) {
      // The message names the folder that cannot hold it: here the local side's.
      await expect(write()).rejects.toMatchObject({ code: 'INVALID_KEY', message: expect.stringContaining(` in ${fs.realpathSync(local)}`) })
    }
    await expect(cloud.exists(`${p}/report/2024.pdf`)).resolves.toBe(false)
    await expect(cloud.exists(`${p}/dir`)).resolves.toBe(false)
    await expect(storage.pendingRepairs()).resolves.toBe(0)
    // Below a file there is nothing to read or delete.
    await expectCode(storage.get(`${p}/report/2024.pdf`), 'NOT_FOUND')
    await expect(storage.delete(`${p}/report/2024.pdf`)).resolves.toBeUndefined()
    expect((await storage.get(`${p}/report`)).toString()).toBe('a file')
  })

  test('a rename onto a name the folder cannot hold is INVALID_KEY, and the source stays', async () => {
    // Local and cloud-mode renames answered NOT_FOUND (of the source) or UNAVAILABLE.
    for (const options of [{ local: tmpDir('rename-clash') }, { local: tmpDir('rename-clash-cloud'), mode: 'cloud', cloud: `file://${tmpDir('rename-clash-folder')}` }]) {
      const storage = new StorageManager(options)
      await storage.put('f', 'a file')
      await storage.put('h/i', 'source bytes')
      await storage.put('j', 'other source')
      await expectCode(storage.rename('h/i', 'f/y'), 'INVALID_KEY')
      await expectCode(storage.rename('j', 'h'), 'INVALID_KEY')
      expect((await storage.get('h/i')).toString()).toBe('source bytes')
      expect((await storage.get('j')).toString()).toBe('other source')
      expect((await storage.get('f')).toString()).toBe('a file')
    }
  })

  test('getToFile into a folder that does not exist: the path is wrong, not the object', async () => {
    const local = tmpDir('no-folder')
    const storage = new StorageManager({ local, mode: 'dual', ...s3Options() })
    const p = runPrefix('no-folder')
    await storage.put(`${p}/a.txt`, 'a')
    const dest = path.join(local, 'no', 'such', 'folder', 'a.txt')
    await expect(storage.getToFile(`${p}/a.txt`, dest)).rejects.toMatchObject({ code: 'INVALID_CONFIG', message: expect.stringContaining('its folder does not exist') })
    expect(fs.existsSync(path.dirname(dest))).toBe(false)
  })
})

describe('arguments the file system or UTF-8 would misread', () => {
  test("an empty path is INVALID_CONFIG naming it, not NOT_FOUND of an object that exists", async () => {
    const storage = new StorageManager({ local: tmpDir('empty-path') })
    await storage.put('a.txt', 'kept')
    for (const call of [() => storage.getToFile('a.txt', ''), () => storage.putFile('a.txt', '')]) {
      await expect(call()).rejects.toMatchObject({ code: 'INVALID_CONFIG', message: 'invalid path: is empty' })
    }
    expect((await storage.get('a.txt')).toString()).toBe('kept')
  })

  test('a key with a lone UTF-16 surrogate is INVALID_KEY: UTF-8 would have made two keys one', async () => {
    const local = tmpDir('surrogate')
    const storage = new StorageManager({ local })
    await storage.put('ok.txt', 'kept')
    for (const key of ['scans/\ud800.dcm', 'scans/\udc00.dcm', 'x\udbff']) {
      await expect(storage.put(key, 'patient')).rejects.toMatchObject({ code: 'INVALID_KEY', message: expect.stringContaining('lone UTF-16 surrogate') })
      await expectCode(storage.get(key), 'INVALID_KEY')
      await expectCode(storage.copy('ok.txt', key), 'INVALID_KEY')
      await expectCode(storage.rename('ok.txt', key), 'INVALID_KEY')
      expect(() => storage.presignMany(['ok.txt', key])).toThrow(expect.objectContaining({ code: 'INVALID_KEY', message: expect.stringContaining('keys[1]') }))
    }
    expect(fs.readdirSync(local).filter((n) => n !== '.stowage')).toEqual(['ok.txt'])
    // U+FFFD itself, and a well-formed pair, are keys like any other.
    for (const key of ['\ufffd.txt', 'pair-\ud83d\ude00.txt']) {
      await storage.put(key, key)
      expect((await storage.get(key)).toString()).toBe(key)
    }
  })

  test("keys in '.stowage', the folder of the journal, are INVALID_KEY on every store", async () => {
    const local = tmpDir('state-dir')
    const storage = new StorageManager({ local, mode: 'dual', ...s3Options() })
    await storage.put('keep.txt', 'kept', { metadata: { patient_id: 'P-1' } })
    const journal = fs.readFileSync(path.join(local, '.stowage', 'journal.db'))
    for (const key of ['.stowage', '.stowage/journal.db', '.stowage/tmp/x']) {
      await expectCode(storage.put(key, 'not a database'), 'INVALID_KEY')
      await expectCode(storage.delete(key), 'INVALID_KEY')
      await expectCode(storage.copy('keep.txt', key), 'INVALID_KEY')
    }
    expect(fs.readFileSync(path.join(local, '.stowage', 'journal.db')).equals(journal)).toBe(true)
    await storage.close()
    const reopened = new StorageManager({ local, mode: 'dual', ...s3Options() })
    await expect(reopened.head('keep.txt')).resolves.toMatchObject({ metadata: { patient_id: 'P-1' }, sha256: sha256(Buffer.from('kept')) })
  })
})

test('objects another tool put under names that are not keys neither show nor cut a listing short', async () => {
  const p = runPrefix('not-keys')
  const storage = new StorageManager({ local: tmpDir('not-keys'), mode: 'cloud', ...s3Options() })
  for (const k of ['a', 'b', 'c', 'd']) await storage.put(`${p}/${k}`, k)
  // s3s-fs serves the files in its folder as objects: `a#1` is a staging name, no key.
  fs.writeFileSync(s3ObjectFile(`${p}/a#1`), 'not a key')
  fs.mkdirSync(path.dirname(s3ObjectFile(`${p}/b#2/x`)), { recursive: true })
  fs.writeFileSync(s3ObjectFile(`${p}/b#2/x`), 'a key under a folder that is not one')
  const pages = []
  let next
  do {
    const page = await storage.list({ prefix: `${p}/`, startAfter: next, limit: 3 })
    pages.push(page.objects.map((o) => o.key.slice(p.length + 1)))
    next = page.next
  } while (next)
  // The first page was a, b, c with no `next`: the names it left out filled it.
  expect(pages).toEqual([['a', 'b', 'b#2/x'], ['c', 'd']])
})

describe('keys and a bucket prefix', () => {
  test('a key too long once the cloud URL prefix is added is INVALID_KEY before either side is written', async () => {
    // Azurite: s3s-fs names a file after the whole key and cannot hold keys this long.
    const local = tmpDir('prefix-long')
    const prefix = runPrefix('tenant')
    const cloud = `${azureOptions().cloud}/${prefix}`
    const storage = new StorageManager({ local, mode: 'dual', ...azureOptions(), cloud })
    const room = 1024 - prefix.length - 1
    let fits = ''
    while (fits.length + 200 < room) fits += `${'k'.repeat(199)}/`
    fits += 'x'.repeat(room - fits.length)
    const over = `${fits}y`
    expect([Buffer.byteLength(fits), Buffer.byteLength(over)]).toEqual([room, room + 1])
    await expect(storage.put(fits, 'fits')).resolves.toMatchObject({ local: 'written', cloud: 'written' })
    await expect(storage.put(over, 'over')).rejects.toMatchObject({ code: 'INVALID_KEY', message: expect.stringContaining("store's prefix") })
    expect(fs.existsSync(path.join(local, over))).toBe(false)
    await expect(storage.pendingRepairs()).resolves.toBe(0)
    const cloudOnly = new StorageManager({ mode: 'cloud', ...azureOptions(), cloud })
    await expectCode(cloudOnly.put(over, 'over'), 'INVALID_KEY')
    // Nor may a delete leave an intent in the journal that no repair could carry out.
    await expectCode(storage.delete(over), 'INVALID_KEY')
    await expectCode(cloudOnly.delete(over), 'INVALID_KEY')
    await expect(storage.pendingRepairs()).resolves.toBe(0)
    await expect(cloudOnly.pendingRepairs()).resolves.toBe(0)
    expect((await cloudOnly.get(fits)).toString()).toBe('fits')
  })
})

test("ErrorCode lists API.md's codes, the core's codes, and index.d.ts declares it", () => {
  const api = fs.readFileSync(path.join(__dirname, '..', '..', 'shared', 'API.md'), 'utf8')
  const section = api.slice(api.indexOf('## Errors'), api.indexOf('index.d.ts` declares'))
  const documented = [...section.matchAll(/`([A-Z_]+)`/g)].map((m) => m[1]).sort()
  const core = fs.readFileSync(path.join(__dirname, '..', 'src', 'error.rs'), 'utf8')
  const returned = [...new Set([...core.matchAll(/=> "([A-Z_]+)"/g)].map((m) => m[1]))].sort()
  expect(documented).toHaveLength(15)
  expect(Object.values(ErrorCode).sort()).toEqual(documented)
  expect(returned).toEqual(documented)
  expect(ErrorCode.NotFound).toBe('NOT_FOUND')
  const dts = fs.readFileSync(path.join(__dirname, '..', 'index.d.ts'), 'utf8')
  for (const code of documented) expect(dts).toContain(`'${code}'`)
})
