'use strict'
// While HTTP_PROXY (or http_proxy, ALL_PROXY, all_proxy) is set, requests go through
// object_store's reqwest client, which sends them to the proxy unless NO_PROXY names
// the host (src/store/http/). The proxy here is a real forwarding proxy; the client
// runs in a child process, since environment variables are process-wide.
const { execFile } = require('node:child_process')
const http = require('node:http')
const { promisify } = require('node:util')
const { sha256, bytes } = require('./helpers')

/** The object each client run writes and reads back. */
const SIZE = 64 * 1024
const SEED = 5

const CLIENT = `
const { StorageManager } = require(${JSON.stringify(require.resolve('..'))})
const { s3Options, tmpDir, bytes, sha256 } = require(${JSON.stringify(require.resolve('./helpers'))})
;(async () => {
  const storage = new StorageManager({ local: tmpDir('proxy'), mode: 'cloud', ...s3Options() })
  const key = process.argv[1]
  await storage.put(key, bytes(${SIZE}, ${SEED}))
  process.stdout.write(sha256(await storage.get(key)))
})().catch((e) => { console.error(e.code, e.message); process.exit(1) })
`

/** A forward proxy for plain HTTP that records the absolute URLs it is asked for. */
async function startProxy() {
  const seen = []
  const server = http.createServer((req, res) => {
    seen.push(`${req.method} ${req.url}`)
    const target = new URL(req.url)
    const upstream = http.request(
      { host: target.hostname, port: target.port, path: target.pathname + target.search, method: req.method, headers: req.headers },
      (answer) => {
        res.writeHead(answer.statusCode, answer.headers)
        answer.pipe(res)
      },
    )
    upstream.on('error', (e) => res.writeHead(502).end(String(e)))
    req.pipe(upstream)
  })
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  return { url: `http://127.0.0.1:${server.address().port}`, seen, close: () => new Promise((r) => server.close(r)) }
}

/** Runs the client with these variables added to (and proxy variables cleared from) the environment. */
async function runClient(key, vars) {
  const env = { ...process.env }
  for (const name of ['http_proxy', 'HTTP_PROXY', 'all_proxy', 'ALL_PROXY', 'no_proxy', 'NO_PROXY']) delete env[name]
  const { stdout } = await promisify(execFile)(process.execPath, ['-e', CLIENT, key], { env: { ...env, ...vars } })
  return stdout
}

let proxy
beforeAll(async () => {
  proxy = await startProxy()
})
afterAll(() => proxy.close())

const expected = sha256(bytes(SIZE, SEED))

test.each(['HTTP_PROXY', 'http_proxy', 'ALL_PROXY'])('%s sends every request through the proxy', async (name) => {
  proxy.seen.length = 0
  const key = `proxy/${name}-${process.pid}.bin`
  await expect(runClient(key, { [name]: proxy.url })).resolves.toBe(expected)
  expect(proxy.seen).toEqual(expect.arrayContaining([expect.stringMatching(new RegExp(`^PUT http://127\\.0\\.0\\.1:\\d+/.+/${key}$`)), expect.stringMatching(new RegExp(`^GET http://127\\.0\\.0\\.1:\\d+/.+/${key}$`))]))
})

test('NO_PROXY keeps the named host direct', async () => {
  proxy.seen.length = 0
  const key = `proxy/bypass-${process.pid}.bin`
  await expect(runClient(key, { HTTP_PROXY: proxy.url, NO_PROXY: '127.0.0.1' })).resolves.toBe(expected)
  expect(proxy.seen).toEqual([])
})
